//! Local time the way sanoid computes it, so that due times match to the second.
//!
//! sanoid works in Perl's `localtime` (broken-down local time with a DST flag)
//! and `Time::Local::timelocal` (back to epoch seconds). `timelocal` has its own
//! answers for the hour that repeats when DST ends (the earlier instant) and the
//! hour that does not exist when it begins (one hour later); [`timelocal`]
//! follows its algorithm (Time::Local 1.30, Debian 12) step by step, over a
//! `jiff` time zone instead of the process's `TZ`.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Perl's `localtime`, with the month 1-based and the year in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tm {
    pub year: i32,
    /// 1-12.
    pub mon: u32,
    pub mday: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// 0 = Sunday.
    pub wday: u32,
    pub isdst: bool,
}

/// The offset from UTC in seconds at `t`. Out-of-range instants (beyond
/// year ±9999) are clamped; zfleet never plans there.
pub fn offset(tz: &TimeZone, t: i64) -> i64 {
    let ts = timestamp(t);
    i64::from(tz.to_offset(ts).seconds())
}

fn timestamp(t: i64) -> Timestamp {
    let t = t.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn localtime(tz: &TimeZone, t: i64) -> Tm {
    let ts = timestamp(t);
    let info = tz.to_offset_info(ts);
    let dt = info.offset().to_datetime(ts);
    Tm {
        year: i32::from(dt.year()),
        mon: dt.month().unsigned_abs().into(),
        mday: dt.day().unsigned_abs().into(),
        hour: dt.hour().unsigned_abs().into(),
        min: dt.minute().unsigned_abs().into(),
        sec: dt.second().unsigned_abs().into(),
        wday: dt.weekday().to_sunday_zero_offset().unsigned_abs().into(),
        isdst: info.dst().is_dst(),
    }
}

/// Days in a month of a (proleptic Gregorian) year.
pub fn days_in_month(year: i32, mon: u32) -> u32 {
    match mon {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days from 1970-01-01 to the given civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, mon: u32, mday: u32) -> i64 {
    let y = i64::from(year) - i64::from(mon <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(mon);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(mday) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Time::Local's `timegm`: the fields read as UTC. Fields must be in range.
pub fn timegm(year: i32, mon: u32, mday: u32, hour: u32, min: u32, sec: u32) -> i64 {
    days_from_civil(year, mon, mday) * 86_400
        + i64::from(hour) * 3600
        + i64::from(min) * 60
        + i64::from(sec)
}

/// A local time that does not name a day of its month (Time::Local croaks here,
/// and sanoid dies with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("day {mday} is out of range 1..{max} for {year}-{mon:02}")]
pub struct DayOutOfRange {
    pub year: i32,
    pub mon: u32,
    pub mday: u32,
    pub max: u32,
}

/// Time::Local's `timelocal` for local wall-clock fields (month 1-based).
///
/// An hour that repeats gives its earlier instant; a time in the hour that is
/// skipped gives the instant one hour later (02:30 → 03:30 CEST).
pub fn timelocal(
    tz: &TimeZone,
    year: i32,
    mon: u32,
    mday: u32,
    hour: u32,
    min: u32,
    sec: u32,
) -> Result<i64, DayOutOfRange> {
    let max = days_in_month(year, mon);
    if mday < 1 || mday > max {
        return Err(DayOutOfRange {
            year,
            mon,
            mday,
            max,
        });
    }
    let ref_t = timegm(year, mon, mday, hour, min, sec);
    // `_timegm(localtime($t))` is `$t` plus the offset in force at `$t`.
    let zone_off = offset(tz, ref_t);
    if zone_off == 0 {
        return Ok(ref_t);
    }
    let mut loc_t = ref_t - zone_off;
    let dst_off = zone_off - offset(tz, loc_t);
    // The second hour after clocks went back: prefer the first.
    if dst_off == 0 && zone_off - offset(tz, loc_t - 3600) < 0 {
        return Ok(loc_t - 3600);
    }
    loc_t += dst_off;
    if dst_off > 0 {
        return Ok(loc_t);
    }
    // A time in the gap of a forward jump: undo the adjustment.
    let tm = localtime(tz, loc_t);
    if tm.sec != sec || tm.min != min || tm.hour != hour {
        loc_t -= dst_off;
    }
    Ok(loc_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vienna() -> TimeZone {
        TimeZone::get("Europe/Vienna").unwrap()
    }

    #[test]
    fn localtime_fields() {
        let tz = vienna();
        // 2017-01-01 00:00:00 CET, a Sunday.
        let tm = localtime(&tz, 1_483_225_200);
        assert_eq!(
            tm,
            Tm {
                year: 2017,
                mon: 1,
                mday: 1,
                hour: 0,
                min: 0,
                sec: 0,
                wday: 0,
                isdst: false
            }
        );
        assert!(localtime(&tz, 1_500_000_000).isdst);
    }

    #[test]
    fn timelocal_round_trips_ordinary_times() {
        let tz = vienna();
        for t in (1_483_225_200..1_514_761_199).step_by(3_607) {
            let tm = localtime(&tz, t);
            let back = timelocal(&tz, tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec).unwrap();
            // Only the repeated hour may map to its earlier instant.
            if back != t {
                assert_eq!(back, t - 3600, "{tm:?}");
                assert_eq!((tm.mon, tm.mday, tm.hour), (10, 29, 2));
            }
        }
    }

    /// Values from Perl: `TZ=Europe/Vienna perl -MTime::Local -e 'print timelocal(0,30,2,29,9,2017)'`.
    #[test]
    fn dst_edges_like_time_local() {
        let tz = vienna();
        // Autumn: 02:30 happens twice; the earlier (CEST, 00:30 UTC) is chosen.
        assert_eq!(timelocal(&tz, 2017, 10, 29, 2, 30, 0), Ok(1_509_237_000));
        // Spring: 02:30 does not exist; Time::Local answers 03:30 CEST (01:30 UTC).
        assert_eq!(timelocal(&tz, 2017, 3, 26, 2, 30, 0), Ok(1_490_491_800));
        assert_eq!(timelocal(&tz, 2017, 3, 26, 3, 0, 0), Ok(1_490_490_000));
        assert_eq!(timelocal(&tz, 2017, 3, 26, 1, 59, 59), Ok(1_490_489_999));
    }

    #[test]
    fn utc_and_days() {
        assert_eq!(
            timelocal(&TimeZone::UTC, 2024, 2, 29, 12, 0, 0),
            Ok(1_709_208_000)
        );
        assert_eq!(
            timelocal(&TimeZone::UTC, 2023, 2, 29, 0, 0, 0),
            Err(DayOutOfRange {
                year: 2023,
                mon: 2,
                mday: 29,
                max: 28
            })
        );
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(timegm(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(timegm(1969, 12, 31, 23, 59, 59), -1);
    }
}
