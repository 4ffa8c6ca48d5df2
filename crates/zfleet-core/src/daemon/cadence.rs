//! When the daemon runs `zfleet run` on a host: at every preferred time of
//! every period a policy of the host keeps (its shortest period sets the
//! pace: every 15 minutes for `frequently`, each hour at `hourly_min` for
//! `hourly`, …), and at the longer periods' times too, so a monthly snapshot
//! due at 00:00 on the 1st is not taken at the next daily time instead.
//!
//! The snapshot planner still decides what is due; running at these times
//! only makes sure it is asked when something becomes due.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use crate::config::{ExpandedPolicy, Period, Policy};

/// The next time after `t` at which a snapshot of some policy becomes due or
/// a prune could destroy one; `None` when no policy takes or prunes anything.
pub fn next_snapshot_run(policies: &[ExpandedPolicy], t: i64, tz: &TimeZone) -> Option<i64> {
    policies
        .iter()
        .filter(|e| e.policy.autosnap || e.policy.autoprune)
        .flat_map(|e| {
            Period::ALL
                .into_iter()
                .filter(|p| keeps(&e.policy, *p))
                .filter_map(|p| next_preferred(&e.policy, p, t, tz))
        })
        .min()
}

/// The shortest period the host's policies keep, for people (`zfleet status`).
pub fn shortest_period(policies: &[ExpandedPolicy]) -> Option<Period> {
    policies
        .iter()
        .filter(|e| e.policy.autosnap || e.policy.autoprune)
        .flat_map(|e| Period::ALL.into_iter().filter(|p| keeps(&e.policy, *p)))
        .min()
}

fn keeps(p: &Policy, period: Period) -> bool {
    match period {
        Period::Frequently => p.frequently > 0,
        Period::Hourly => p.hourly > 0,
        Period::Daily => p.daily > 0,
        Period::Weekly => p.weekly > 0,
        Period::Monthly => p.monthly > 0,
        Period::Yearly => p.yearly > 0,
    }
}

/// The first preferred time of `period` strictly after `t`, in local time.
pub fn next_preferred(p: &Policy, period: Period, t: i64, tz: &TimeZone) -> Option<i64> {
    let z = Timestamp::from_second(t).ok()?.to_zoned(tz.clone());
    let after = |cand: Zoned| (cand.timestamp().as_second() > t).then_some(cand);
    let at = |d: Date, h: u32, m: u32| -> Option<Zoned> {
        let time = Time::new(
            i8::try_from(h.min(23)).ok()?,
            i8::try_from(m.min(59)).ok()?,
            0,
            0,
        )
        .ok()?;
        d.to_datetime(time).to_zoned(tz.clone()).ok()
    };
    let next = match period {
        Period::Frequently => {
            let fp = i64::from(p.frequent_period.clamp(1, 60));
            let this_hour = z
                .with()
                .minute(0)
                .second(0)
                .subsec_nanosecond(0)
                .build()
                .ok()?;
            let min = i64::from(z.minute());
            let slot = (min / fp + 1) * fp;
            let cand = this_hour.checked_add(slot.minutes()).ok()?;
            // A period that does not divide the hour restarts at the full hour.
            let next_hour = this_hour.checked_add(1.hour()).ok()?;
            if cand.timestamp() < next_hour.timestamp() {
                cand
            } else {
                next_hour
            }
        }
        Period::Hourly => {
            let m = i8::try_from(p.hourly_min.min(59)).ok()?;
            let this = z
                .with()
                .minute(m)
                .second(0)
                .subsec_nanosecond(0)
                .build()
                .ok()?;
            match after(this.clone()) {
                Some(c) => c,
                None => this.checked_add(1.hour()).ok()?,
            }
        }
        Period::Daily => {
            let today = at(z.date(), p.daily_hour, p.daily_min)?;
            match after(today) {
                Some(c) => c,
                None => at(z.date().tomorrow().ok()?, p.daily_hour, p.daily_min)?,
            }
        }
        Period::Weekly => {
            // sanoid: 0 = Sunday.
            let want = i64::from(p.weekly_wday % 7);
            let have = i64::from(z.date().weekday().to_sunday_zero_offset());
            let mut d = z
                .date()
                .checked_add(((want - have).rem_euclid(7)).days())
                .ok()?;
            loop {
                if let Some(c) = at(d, p.weekly_hour, p.weekly_min).and_then(after) {
                    break c;
                }
                d = d.checked_add(7.days()).ok()?;
            }
        }
        Period::Monthly => {
            let mut first = z.date().first_of_month();
            loop {
                let d = clamp_day(first, p.monthly_mday);
                if let Some(c) = at(d, p.monthly_hour, p.monthly_min).and_then(after) {
                    break c;
                }
                first = first.checked_add(1.month()).ok()?;
            }
        }
        Period::Yearly => {
            let mut year = z.date().year();
            loop {
                let month = i8::try_from(p.yearly_mon.clamp(1, 12)).ok()?;
                let first = Date::new(year, month, 1).ok()?;
                let d = clamp_day(first, p.yearly_mday);
                if let Some(c) = at(d, p.yearly_hour, p.yearly_min).and_then(after) {
                    break c;
                }
                year = year.checked_add(1)?;
            }
        }
    };
    Some(next.timestamp().as_second())
}

/// Day `mday` of `first`'s month, or its last day when the month is shorter
/// (sanoid does the same for `monthly_mday = 31`).
fn clamp_day(first: Date, mday: u32) -> Date {
    let last = first.days_in_month();
    let day = i8::try_from(mday.clamp(1, 31)).unwrap_or(1).min(last);
    first.with().day(day).build().unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Recursive;
    use crate::zfs::DatasetName;
    use rstest::rstest;

    fn tz() -> TimeZone {
        TimeZone::get("Europe/Vienna").unwrap()
    }

    fn at(s: &str) -> i64 {
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        dt.to_zoned(tz()).unwrap().timestamp().as_second()
    }

    fn show(t: i64) -> String {
        Timestamp::from_second(t)
            .unwrap()
            .to_zoned(tz())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    fn entry(f: impl FnOnce(&mut Policy)) -> ExpandedPolicy {
        let mut policy = Policy {
            frequently: 0,
            hourly: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
            yearly: 0,
            ..Policy::default()
        };
        f(&mut policy);
        ExpandedPolicy {
            dataset: DatasetName::parse("zroot/data").unwrap(),
            source: "test".into(),
            policy,
            recursive: Recursive::No,
            process_children_only: false,
        }
    }

    #[rstest]
    #[case::frequent_every_15(|p: &mut Policy| p.frequently = 4, "2026-06-10 10:07", "2026-06-10 10:15")]
    #[case::frequent_at_the_slot(|p: &mut Policy| p.frequently = 4, "2026-06-10 10:15", "2026-06-10 10:30")]
    #[case::frequent_last_of_the_hour(|p: &mut Policy| p.frequently = 4, "2026-06-10 10:50", "2026-06-10 11:00")]
    #[case::frequent_7_restarts_at_the_hour(|p: &mut Policy| { p.frequently = 4; p.frequent_period = 7 }, "2026-06-10 10:57", "2026-06-10 11:00")]
    #[case::hourly_at_its_minute(|p: &mut Policy| { p.hourly = 24; p.hourly_min = 5 }, "2026-06-10 10:07", "2026-06-10 11:05")]
    #[case::daily(|p: &mut Policy| p.daily = 7, "2026-06-10 10:00", "2026-06-10 23:59")]
    #[case::daily_after_its_time(|p: &mut Policy| p.daily = 7, "2026-06-10 23:59", "2026-06-11 23:59")]
    // sanoid's default weekly is Monday 23:30; 2026-06-10 is a Wednesday.
    #[case::weekly(|p: &mut Policy| p.weekly = 4, "2026-06-10 10:00", "2026-06-15 23:30")]
    #[case::monthly(|p: &mut Policy| p.monthly = 6, "2026-06-10 10:00", "2026-07-01 00:00")]
    #[case::monthly_31st_in_june(|p: &mut Policy| { p.monthly = 6; p.monthly_mday = 31 }, "2026-06-10 10:00", "2026-06-30 00:00")]
    #[case::yearly(|p: &mut Policy| p.yearly = 1, "2026-06-10 10:00", "2027-01-01 00:00")]
    // The shortest period sets the pace, but a longer one's time still counts.
    #[case::daily_and_monthly(|p: &mut Policy| { p.daily = 7; p.monthly = 3 }, "2026-06-30 23:59", "2026-07-01 00:00")]
    #[case::hourly_and_daily(|p: &mut Policy| { p.hourly = 24; p.daily = 7 }, "2026-06-10 23:30", "2026-06-10 23:59")]
    fn next_run(#[case] f: fn(&mut Policy), #[case] after: &str, #[case] want: &str) {
        let e = entry(f);
        let got = next_snapshot_run(&[e], at(after), &tz()).unwrap();
        assert_eq!(show(got), want);
    }

    #[test]
    fn nothing_kept_means_no_runs() {
        let e = entry(|_| {});
        assert_eq!(next_snapshot_run(&[e], at("2026-06-10 10:00"), &tz()), None);
        let off = entry(|p| {
            p.hourly = 24;
            p.autosnap = false;
            p.autoprune = false;
        });
        assert_eq!(
            next_snapshot_run(&[off], at("2026-06-10 10:00"), &tz()),
            None
        );
    }

    #[test]
    fn prune_only_retention_still_runs() {
        // A server's retention of received backups: no autosnap, but prunes.
        let e = entry(|p| {
            p.hourly = 48;
            p.autosnap = false;
        });
        assert_eq!(
            show(
                next_snapshot_run(std::slice::from_ref(&e), at("2026-06-10 10:30"), &tz()).unwrap()
            ),
            "2026-06-10 11:00"
        );
        assert_eq!(shortest_period(&[e]), Some(Period::Hourly));
    }

    #[test]
    fn the_earliest_of_several_datasets() {
        let a = entry(|p| p.daily = 7);
        let b = entry(|p| p.frequently = 4);
        assert_eq!(
            show(
                next_snapshot_run(&[a.clone(), b.clone()], at("2026-06-10 10:01"), &tz()).unwrap()
            ),
            "2026-06-10 10:15"
        );
        assert_eq!(shortest_period(&[a, b]), Some(Period::Frequently));
    }

    #[test]
    fn every_hour_once_across_the_autumn_change() {
        let e = entry(|p| p.hourly = 48);
        let mut t = at("2026-10-25 00:00");
        let end = at("2026-10-26 00:00");
        let mut n = 0;
        while let Some(next) =
            next_snapshot_run(std::slice::from_ref(&e), t, &tz()).filter(|x| *x < end)
        {
            assert!(next > t);
            t = next;
            n += 1;
        }
        // 01:00 … 23:00 plus the repeated 02:00 = 24 runs after midnight.
        assert_eq!(n, 24);
    }
}
