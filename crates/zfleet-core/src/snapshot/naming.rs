//! sanoid's snapshot names: `autosnap_YYYY-MM-DD_HH:MM:SS_<period>`, in local
//! time, so that a fleet moving from sanoid keeps its history and its pruning.
//!
//! On the day DST ends an hour repeats, and the hourly taken in the second pass
//! would get the name of the first. sanoid then retries with `dst` in front of
//! the period (its substitution `s/_([a-z]+)$/dst_$1/` yields
//! `…_02:00:00dst_hourly`); zfleet writes the same name and also recognises
//! `…_02:00:00_dst_hourly`.
//!
//! Only names that parse here are zfleet's own: everything else on a dataset is
//! foreign and never destroyed.

use jiff::civil::{Date, DateTime, Time};

use crate::config::Period;

pub const PREFIX: &str = "autosnap_";

/// A parsed name of a snapshot that sanoid or zfleet took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoName {
    /// The local wall-clock time written in the name.
    pub local: DateTime,
    /// Taken in the repeated hour after DST ended.
    pub dst: bool,
    pub period: Period,
}

impl AutoName {
    /// The part after `@`.
    pub fn format(&self) -> String {
        let d = self.local;
        format!(
            "{PREFIX}{:04}-{:02}-{:02}_{:02}:{:02}:{:02}{}_{}",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            if self.dst { "dst" } else { "" },
            self.period.as_str()
        )
    }

    /// Parses the part after `@`; `None` for anything zfleet did not make.
    pub fn parse(name: &str) -> Option<AutoName> {
        let rest = name.strip_prefix(PREFIX)?;
        let b = rest.as_bytes();
        // YYYY-MM-DD_HH:MM:SS is 19 bytes, then `_`, `dst_` or `_dst_`.
        if b.len() < 20 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i32> {
            let s = &b[r];
            if !s.iter().all(u8::is_ascii_digit) {
                return None;
            }
            s.iter().try_fold(0i32, |acc, d| {
                acc.checked_mul(10)?.checked_add(i32::from(d - b'0'))
            })
        };
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'_' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let year = i16::try_from(num(0..4)?).ok()?;
        let month = i8::try_from(num(5..7)?).ok()?;
        let day = i8::try_from(num(8..10)?).ok()?;
        let hour = i8::try_from(num(11..13)?).ok()?;
        let minute = i8::try_from(num(14..16)?).ok()?;
        let second = i8::try_from(num(17..19)?).ok()?;
        let date = Date::new(year, month, day).ok()?;
        let time = Time::new(hour, minute, second, 0).ok()?;
        let tail = &rest[19..];
        let (dst, period) = if let Some(p) = tail.strip_prefix("dst_") {
            (true, p)
        } else if let Some(p) = tail.strip_prefix("_dst_") {
            (true, p)
        } else {
            (false, tail.strip_prefix('_')?)
        };
        let period = Period::ALL.into_iter().find(|p| p.as_str() == period)?;
        Some(AutoName {
            local: date.to_datetime(time),
            dst,
            period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("autosnap_2017-01-01_00:00:00_hourly", false, Period::Hourly)]
    #[case("autosnap_2017-10-29_02:00:00dst_hourly", true, Period::Hourly)]
    #[case("autosnap_2017-10-29_02:00:00_dst_hourly", true, Period::Hourly)]
    #[case("autosnap_2024-02-29_23:59:00_daily", false, Period::Daily)]
    #[case("autosnap_2024-03-01_00:15:00_frequently", false, Period::Frequently)]
    #[case("autosnap_2024-03-04_23:30:00_weekly", false, Period::Weekly)]
    #[case("autosnap_2024-03-01_00:00:00_monthly", false, Period::Monthly)]
    #[case("autosnap_2024-01-01_00:00:00_yearly", false, Period::Yearly)]
    fn sanoid_names_are_ours(#[case] name: &str, #[case] dst: bool, #[case] period: Period) {
        let n = AutoName::parse(name).unwrap();
        assert_eq!((n.dst, n.period), (dst, period));
        if !name.contains("_dst_") {
            assert_eq!(n.format(), name);
        }
    }

    #[rstest]
    #[case("autosnap_2017-01-01_00:00:00_hourlyx")]
    #[case("autosnap_2017-01-01_00:00:00_secondly")]
    #[case("autosnap_2017-02-30_00:00:00_daily")]
    #[case("autosnap_2017-01-01_24:00:00_daily")]
    #[case("autosnap_2017-01-01T00:00:00_daily")]
    #[case("autosnap_2017-01-01_00:00:00")]
    #[case("autosnap_manual_hourly")]
    #[case("syncoid_vault_2017-01-01:00:00:00-GMT00:00")]
    #[case("zfleet-before-upgrade")]
    #[case("autosnap_+017-01-01_00:00:00_daily")]
    #[case("autosnap_2017-01-01_00:00:00__hourly")]
    #[case("Autosnap_2017-01-01_00:00:00_hourly")]
    fn everything_else_is_foreign(#[case] name: &str) {
        assert_eq!(AutoName::parse(name), None, "{name}");
    }
}
