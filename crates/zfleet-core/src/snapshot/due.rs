//! When each period's snapshot is due: sanoid's `take_snapshots` arithmetic.
//!
//! For every period sanoid computes the most recent *preferred* time (e.g. the
//! last `HH:hourly_min`, the last `daily_hour:daily_min`) and takes a snapshot
//! when the newest one of that period is older than it. The arithmetic — its
//! fixed-length months (31 days) and years (31 × 365.25 days, sic), its weeks of
//! 7 × 86400 s, its DST corrections — is kept as it is, because users rely on
//! zfleet taking exactly the snapshots sanoid took.
//!
//! Two places where sanoid would die (Time::Local refuses a day that is not in
//! the month: `monthly_mday = 31` in April, `yearly_mday = 29` in February of a
//! common year) use the month's last day instead.

use jiff::tz::TimeZone;

use super::localtime::{days_in_month, localtime, timelocal, Tm};
use crate::config::{Period, Policy};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// What sanoid's `get_date` and the DST check at the top of `take_snapshots`
/// compute once per run.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub t: i64,
    pub tm: Tm,
    /// 3600 after DST ended earlier today, else 0.
    pub dst_offset: i64,
}

impl Now {
    pub fn new(t: i64, tz: &TimeZone) -> Self {
        let tm = localtime(tz, t);
        let day_start = timelocal_clamped(tz, tm.year, tm.mon, tm.mday, 0, 0, 0);
        let start_dst = localtime(tz, day_start).isdst;
        let dst_offset = if start_dst != tm.isdst && start_dst {
            HOUR
        } else {
            0
        };
        Now { t, tm, dst_offset }
    }
}

fn timelocal_clamped(tz: &TimeZone, year: i32, mon: u32, mday: u32, h: u32, m: u32, s: u32) -> i64 {
    let mday = mday.clamp(1, days_in_month(year, mon));
    // In range after clamping; the fallback is unreachable.
    timelocal(tz, year, mon, mday, h, m, s)
        .unwrap_or_else(|e| super::localtime::timegm(e.year, e.mon, e.max, h, m, s))
}

/// The most recent preferred time of `period` at `now`, and whether a name
/// collision may be the repeated hour after DST ended (sanoid's `handleDst`).
pub fn last_preferred(policy: &Policy, period: Period, now: &Now, tz: &TimeZone) -> (i64, bool) {
    let tm = &now.tm;
    let t = now.t;
    match period {
        Period::Frequently => {
            let fp = policy.frequent_period.max(1);
            let slice = tm.min / fp;
            let mut lp = timelocal_clamped(tz, tm.year, tm.mon, tm.mday, tm.hour, slice * fp, 0);
            if lp > t {
                lp -= 60 * i64::from(fp);
            }
            (lp, false)
        }
        Period::Hourly => {
            let mut lp =
                timelocal_clamped(tz, tm.year, tm.mon, tm.mday, tm.hour, policy.hourly_min, 0);
            let mut handle_dst = false;
            if now.dst_offset != 0 {
                lp += now.dst_offset;
                handle_dst = true;
            }
            if lp > t {
                lp -= HOUR;
            }
            (lp, handle_dst)
        }
        Period::Daily => {
            let mut lp = timelocal_clamped(
                tz,
                tm.year,
                tm.mon,
                tm.mday,
                policy.daily_hour,
                policy.daily_min,
                0,
            );
            lp += now.dst_offset;
            let lp_dst = localtime(tz, lp).isdst;
            if lp_dst != tm.isdst && !lp_dst {
                lp -= HOUR;
            }
            if lp > t {
                lp -= DAY;
                // Going back a day, the DST difference counts the other way.
                lp -= 2 * now.dst_offset;
            }
            (lp, false)
        }
        Period::Weekly => {
            let want = policy.weekly_wday;
            let mut days = i64::from(want) - i64::from(tm.wday);
            if want < tm.wday {
                days += 7;
            }
            let mut lp = timelocal_clamped(
                tz,
                tm.year,
                tm.mon,
                tm.mday,
                policy.weekly_hour,
                policy.weekly_min,
                0,
            );
            lp += days * DAY;
            if lp > t {
                lp -= 7 * DAY;
            }
            (lp, false)
        }
        Period::Monthly => {
            let mut lp = timelocal_clamped(
                tz,
                tm.year,
                tm.mon,
                policy.monthly_mday,
                policy.monthly_hour,
                policy.monthly_min,
                0,
            );
            if lp > t {
                lp -= 31 * DAY;
            }
            (lp, false)
        }
        Period::Yearly => {
            let mut lp = timelocal_clamped(
                tz,
                tm.year,
                policy.yearly_mon,
                policy.yearly_mday,
                policy.yearly_hour,
                policy.yearly_min,
                0,
            );
            if lp > t {
                // sanoid subtracts 60*60*24*31*365.25 seconds here: 31 years,
                // not one. Kept: it decides whether a missed yearly is caught up.
                lp -= 31 * 31_557_600;
            }
            (lp, false)
        }
    }
}

/// Seconds sanoid's pruning treats as one period.
pub fn period_seconds(policy: &Policy, period: Period) -> i64 {
    match period {
        Period::Frequently => 60 * i64::from(policy.frequent_period),
        Period::Hourly => HOUR,
        Period::Daily => DAY,
        Period::Weekly => 7 * DAY,
        Period::Monthly => 31 * DAY,
        // 365.25 days, a whole number of seconds.
        Period::Yearly => 31_557_600,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vienna() -> TimeZone {
        TimeZone::get("Europe/Vienna").unwrap()
    }

    fn lp(policy: &Policy, period: Period, t: i64) -> (i64, bool) {
        let tz = vienna();
        last_preferred(policy, period, &Now::new(t, &tz), &tz)
    }

    #[test]
    fn dst_offset_only_after_the_autumn_change() {
        let tz = vienna();
        // 2017-10-29 01:30 CEST (before the change), 02:30 CET (after), next day.
        assert_eq!(Now::new(1_509_233_400, &tz).dst_offset, 0);
        assert_eq!(Now::new(1_509_240_600, &tz).dst_offset, 3600);
        assert_eq!(Now::new(1_509_400_800, &tz).dst_offset, 0);
        // Spring: the day starts in winter time and goes on in summer time.
        assert_eq!(Now::new(1_490_500_000, &tz).dst_offset, 0);
    }

    #[test]
    fn hourly_in_the_repeated_hour() {
        let p = Policy::default();
        // 02:00 CET, the second 02:00 (01:00 UTC): its preferred time is itself.
        assert_eq!(lp(&p, Period::Hourly, 1_509_238_800), (1_509_238_800, true));
        // 02:00 CEST, the first one.
        assert_eq!(
            lp(&p, Period::Hourly, 1_509_235_200),
            (1_509_235_200, false)
        );
    }

    #[test]
    fn daily_and_monthly_basics() {
        let p = Policy::default();
        // 2017-01-02 00:00 CET: yesterday 23:59.
        assert_eq!(lp(&p, Period::Daily, 1_483_311_600).0, 1_483_311_540);
        // 2017-01-15: the 1st at 00:00.
        assert_eq!(lp(&p, Period::Monthly, 1_484_434_800).0, 1_483_225_200);
    }

    #[test]
    fn monthly_mday_beyond_the_month_uses_its_last_day() {
        let p = Policy {
            monthly_mday: 31,
            ..Policy::default()
        };
        // 2017-04-30 12:00 CEST: April has no 31st; the 30th at 00:00 counts.
        let (t, _) = lp(&p, Period::Monthly, 1_493_546_400);
        assert_eq!(t, 1_493_503_200);
    }
}
