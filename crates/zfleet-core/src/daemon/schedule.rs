//! When a scheduled job runs: `"daily 02:00"`, `"hourly"`, `"hourly :30"`,
//! `"every 15m"` or `"manual"`, in the host's time zone, with an optional
//! jitter that spreads servers over a window without moving from run to run.
//!
//! Everything here is a function of (schedule, instant, zone): the daemon
//! asks again after every run and after every clock jump, so a suspended
//! laptop or an NTP step never leaves a stale "next run" behind.

use std::fmt;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::Serialize;

const DAY: i64 = 86_400;

/// A job's schedule, as written in the fleet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at a local time (`daily` alone is midnight, as in systemd).
    Daily { hour: u8, minute: u8 },
    /// Every hour at a minute past it.
    Hourly { minute: u8 },
    /// Every `seconds`, counted from local midnight, so `every 15m` runs at
    /// :00, :15, :30 and :45 whenever the daemon started.
    Every { seconds: u32 },
    /// The daemon does not run it; a timer or a person does.
    Manual,
}

pub const SCHEDULE_FORMS: &str =
    "\"daily HH:MM\", \"hourly\", \"hourly :MM\", \"every 15m\" or \"manual\"";

impl Schedule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let bad = || format!("`{s}` is not a schedule; write {SCHEDULE_FORMS}");
        match words.as_slice() {
            ["manual"] => Ok(Schedule::Manual),
            ["daily"] => Ok(Schedule::Daily { hour: 0, minute: 0 }),
            ["daily", hm] => {
                let (h, m) = hm.split_once(':').ok_or_else(bad)?;
                let hour: u8 = h.parse().map_err(|_| bad())?;
                let minute: u8 = m.parse().map_err(|_| bad())?;
                if h.len() > 2 || m.len() != 2 || hour > 23 || minute > 59 {
                    return Err(format!(
                        "`{s}`: the time must be HH:MM between 00:00 and 23:59"
                    ));
                }
                Ok(Schedule::Daily { hour, minute })
            }
            ["hourly"] => Ok(Schedule::Hourly { minute: 0 }),
            ["hourly", m] => {
                let m = m.strip_prefix(':').ok_or_else(bad)?;
                let minute: u8 = m.parse().map_err(|_| bad())?;
                if m.len() != 2 || minute > 59 {
                    return Err(format!("`{s}`: the minute must be :00 to :59"));
                }
                Ok(Schedule::Hourly { minute })
            }
            ["every", rest @ ..] if !rest.is_empty() => {
                let d = parse_span(&rest.join(" ")).map_err(|_| bad())?;
                if !(60..=DAY).contains(&d) || d % 60 != 0 {
                    return Err(format!(
                        "`{s}`: the interval must be whole minutes, from 1m to 24h"
                    ));
                }
                Ok(Schedule::Every { seconds: d as u32 })
            }
            _ => Err(bad()),
        }
    }

    /// Seconds between two runs; `None` for `manual`. What "late" is measured in.
    pub fn interval(&self) -> Option<i64> {
        match self {
            Schedule::Daily { .. } => Some(DAY),
            Schedule::Hourly { .. } => Some(3600),
            Schedule::Every { seconds } => Some(i64::from(*seconds)),
            Schedule::Manual => None,
        }
    }

    /// The first run strictly after `t`.
    pub fn next_after(&self, t: i64, tz: &TimeZone) -> Option<i64> {
        let z = zoned(t, tz);
        let next = match *self {
            Schedule::Manual => return None,
            Schedule::Daily { hour, minute } => {
                let at = Time::constant(hour as i8, minute as i8, 0, 0);
                let today = z.date().to_datetime(at).to_zoned(tz.clone()).ok()?;
                if today.timestamp().as_second() > t {
                    today
                } else {
                    z.date()
                        .tomorrow()
                        .ok()?
                        .to_datetime(at)
                        .to_zoned(tz.clone())
                        .ok()?
                }
            }
            Schedule::Hourly { minute } => {
                let this = hour_at(&z, minute)?;
                if this.timestamp().as_second() > t {
                    this
                } else {
                    this.checked_add(1.hour()).ok()?
                }
            }
            Schedule::Every { seconds } => {
                let n = i64::from(seconds);
                let sod = z.start_of_day().ok()?.timestamp().as_second();
                let tomorrow = z
                    .date()
                    .tomorrow()
                    .ok()?
                    .to_zoned(tz.clone())
                    .ok()?
                    .timestamp()
                    .as_second();
                let k = (t - sod).div_euclid(n) + 1;
                return Some((sod + k * n).min(tomorrow));
            }
        };
        Some(next.timestamp().as_second())
    }

    /// The last run at or before `t`: the one a daemon that was not running
    /// at the time has missed.
    pub fn last_at_or_before(&self, t: i64, tz: &TimeZone) -> Option<i64> {
        let z = zoned(t, tz);
        let last = match *self {
            Schedule::Manual => return None,
            Schedule::Daily { hour, minute } => {
                let at = Time::constant(hour as i8, minute as i8, 0, 0);
                let today = z.date().to_datetime(at).to_zoned(tz.clone()).ok()?;
                if today.timestamp().as_second() <= t {
                    today
                } else {
                    z.date()
                        .yesterday()
                        .ok()?
                        .to_datetime(at)
                        .to_zoned(tz.clone())
                        .ok()?
                }
            }
            Schedule::Hourly { minute } => {
                let this = hour_at(&z, minute)?;
                if this.timestamp().as_second() <= t {
                    this
                } else {
                    this.checked_sub(1.hour()).ok()?
                }
            }
            Schedule::Every { seconds } => {
                let n = i64::from(seconds);
                let sod = z.start_of_day().ok()?.timestamp().as_second();
                return Some(sod + (t - sod).div_euclid(n) * n);
            }
        };
        Some(last.timestamp().as_second())
    }

    /// The same times as systemd's `OnCalendar=`, where it can say them.
    pub fn on_calendar(&self) -> Option<String> {
        match *self {
            Schedule::Daily { hour, minute } => Some(format!("*-*-* {hour:02}:{minute:02}:00")),
            Schedule::Hourly { minute } => Some(format!("*-*-* *:{minute:02}:00")),
            Schedule::Every { seconds } => {
                let m = seconds / 60;
                if m < 60 && 60 % m == 0 {
                    Some(format!("*-*-* *:00/{m}:00"))
                } else if m % 60 == 0 && 24 % (m / 60) == 0 {
                    Some(format!("*-*-* 00/{}:00:00", m / 60))
                } else {
                    None
                }
            }
            Schedule::Manual => None,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Daily { hour, minute } => write!(f, "daily {hour:02}:{minute:02}"),
            Schedule::Hourly { minute } => write!(f, "hourly :{minute:02}"),
            Schedule::Every { seconds } if seconds % 3600 == 0 => {
                write!(f, "every {}h", seconds / 3600)
            }
            Schedule::Every { seconds } => write!(f, "every {}m", seconds / 60),
            Schedule::Manual => f.write_str("manual"),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A schedule and the jitter window of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timing {
    pub schedule: Schedule,
    /// Seconds; each job gets a fixed offset within it ([`jitter_offset`]).
    pub jitter: u32,
}

impl Timing {
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            jitter: 0,
        }
    }

    /// The next run of the job named `key` strictly after `t`.
    pub fn next_after(&self, key: &str, t: i64, tz: &TimeZone) -> Option<i64> {
        let o = jitter_offset(key, self.jitter);
        self.schedule.next_after(t - o, tz).map(|s| s + o)
    }

    /// The last run of `key` at or before `t`.
    pub fn last_at_or_before(&self, key: &str, t: i64, tz: &TimeZone) -> Option<i64> {
        let o = jitter_offset(key, self.jitter);
        self.schedule.last_at_or_before(t - o, tz).map(|s| s + o)
    }

    /// Whether a job whose last attempt started at `last_attempt` missed a
    /// run before `now` (the daemon was stopped, the machine off): it then
    /// runs once at start, not once per missed run.
    pub fn missed(&self, key: &str, last_attempt: Option<i64>, now: i64, tz: &TimeZone) -> bool {
        match (last_attempt, self.last_at_or_before(key, now, tz)) {
            (Some(last), Some(slot)) => last < slot,
            // Never run: wait for the first slot rather than start a full
            // backup the moment the daemon is installed.
            _ => false,
        }
    }
}

/// A job's fixed place in its jitter window: the same on every start and
/// every host that computes it, different between jobs. FNV-1a, because the
/// standard hasher may change between Rust releases.
pub fn jitter_offset(key: &str, jitter: u32) -> i64 {
    if jitter == 0 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(jitter)) as i64
}

/// `"15m"`, `"2h"`, `"1h 30m"` → seconds.
pub fn parse_span(s: &str) -> Result<i64, String> {
    let d: jiff::SignedDuration = s.trim().parse().map_err(|_| {
        format!("`{s}` is not a duration; write it like \"30s\", \"15m\" or \"1h 30m\"")
    })?;
    if d.is_negative() {
        return Err(format!("`{s}` must not be negative"));
    }
    Ok(d.as_secs())
}

fn zoned(t: i64, tz: &TimeZone) -> Zoned {
    Timestamp::from_second(t)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
}

/// This hour of `z` at `minute`.
fn hour_at(z: &Zoned, minute: u8) -> Option<Zoned> {
    z.with()
        .minute(minute as i8)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn vienna() -> TimeZone {
        TimeZone::get("Europe/Vienna").unwrap()
    }

    /// `2026-03-29 01:30` in Vienna (the later of a repeated hour with `!`).
    fn at(s: &str) -> i64 {
        let later = s.ends_with('!');
        let dt: jiff::civil::DateTime = s.trim_end_matches('!').parse().unwrap();
        let z = vienna()
            .to_ambiguous_zoned(dt)
            .later()
            .unwrap()
            .timestamp()
            .as_second();
        let earlier = vienna()
            .to_ambiguous_zoned(dt)
            .earlier()
            .unwrap()
            .timestamp()
            .as_second();
        if later {
            z
        } else {
            earlier
        }
    }

    fn show(t: i64) -> String {
        zoned(t, &vienna())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    #[rstest]
    #[case("daily 02:00", "daily 02:00", Some(86_400))]
    #[case("daily", "daily 00:00", Some(86_400))]
    #[case("  daily   9:05 ", "daily 09:05", Some(86_400))]
    #[case("hourly", "hourly :00", Some(3600))]
    #[case("hourly :30", "hourly :30", Some(3600))]
    #[case("every 15m", "every 15m", Some(900))]
    #[case("every 1h 30m", "every 90m", Some(5400))]
    #[case("every 2h", "every 2h", Some(7200))]
    #[case("manual", "manual", None)]
    fn parses(#[case] s: &str, #[case] shown: &str, #[case] interval: Option<i64>) {
        let sch = Schedule::parse(s).unwrap();
        assert_eq!(sch.to_string(), shown);
        assert_eq!(sch.interval(), interval);
        // What is shown parses back to the same schedule.
        assert_eq!(Schedule::parse(shown).unwrap(), sch);
    }

    #[rstest]
    #[case("nightly", "is not a schedule")]
    #[case("daily 24:00", "between 00:00 and 23:59")]
    #[case("daily 2", "is not a schedule")]
    #[case("daily 02:7", "between 00:00 and 23:59")]
    #[case("hourly 30", "is not a schedule")]
    #[case("hourly :60", ":00 to :59")]
    #[case("every 30s", "from 1m to 24h")]
    #[case("every 25h", "from 1m to 24h")]
    #[case("every 90s", "whole minutes")]
    #[case("every", "is not a schedule")]
    #[case("every soon", "is not a schedule")]
    #[case("", "is not a schedule")]
    fn refuses(#[case] s: &str, #[case] why: &str) {
        let e = Schedule::parse(s).unwrap_err();
        assert!(e.contains(why), "{s}: {e}");
    }

    #[rstest]
    // Ordinary days.
    #[case("daily 02:00", "2026-06-10 01:59:59", "2026-06-10 02:00:00 CEST")]
    #[case("daily 02:00", "2026-06-10 02:00:00", "2026-06-11 02:00:00 CEST")]
    #[case("daily 02:00", "2026-06-10 01:00:00", "2026-06-10 02:00:00 CEST")]
    // Spring forward: 02:30 does not exist on 2026-03-29; it runs at 03:30,
    // the instant the same distance after 02:00 as the clocks say.
    #[case("daily 02:30", "2026-03-29 00:00:00", "2026-03-29 03:30:00 CEST")]
    // Fall back: 02:30 happens twice on 2026-10-25; it runs once, the first time.
    #[case("daily 02:30", "2026-10-25 00:00:00", "2026-10-25 02:30:00 CEST")]
    #[case("daily 02:30", "2026-10-25 02:30:00", "2026-10-26 02:30:00 CET")]
    #[case("hourly", "2026-06-10 10:00:00", "2026-06-10 11:00:00 CEST")]
    #[case("hourly :30", "2026-06-10 10:29:00", "2026-06-10 10:30:00 CEST")]
    #[case("hourly :30", "2026-06-10 23:45:00", "2026-06-11 00:30:00 CEST")]
    // The repeated hour has two :30s, an hour apart, and both run.
    #[case("hourly :30", "2026-10-25 02:30:00", "2026-10-25 02:30:00 CET")]
    #[case("every 15m", "2026-06-10 10:07:00", "2026-06-10 10:15:00 CEST")]
    #[case("every 15m", "2026-06-10 10:15:00", "2026-06-10 10:30:00 CEST")]
    #[case("every 15m", "2026-06-10 23:50:00", "2026-06-11 00:00:00 CEST")]
    // Slots are counted from local midnight; a day's last one may be short.
    #[case("every 7h", "2026-06-10 21:00:00", "2026-06-11 00:00:00 CEST")]
    fn next_run(#[case] s: &str, #[case] after: &str, #[case] want: &str) {
        let sch = Schedule::parse(s).unwrap();
        let got = sch.next_after(at(after), &vienna()).unwrap();
        assert_eq!(show(got), want, "{s} after {after}");
        assert!(got > at(after));
        // The run just found is the last one at or before itself.
        assert_eq!(sch.last_at_or_before(got, &vienna()), Some(got));
        assert!(sch.last_at_or_before(got - 1, &vienna()).unwrap() < got);
    }

    #[test]
    fn hourly_runs_once_per_hour_through_both_dst_changes() {
        let tz = vienna();
        for (day, hours) in [("2026-03-29", 23), ("2026-10-25", 25), ("2026-06-10", 24)] {
            let sch = Schedule::parse("hourly :05").unwrap();
            let start = at(&format!("{day} 00:00:00"));
            let end = zoned(start, &tz)
                .date()
                .tomorrow()
                .unwrap()
                .to_zoned(tz.clone())
                .unwrap()
                .timestamp()
                .as_second();
            let mut t = start;
            let mut runs = 0;
            while let Some(n) = sch.next_after(t, &tz).filter(|n| *n < end) {
                assert!(n > t);
                t = n;
                runs += 1;
            }
            assert_eq!(runs, hours, "{day}");
        }
    }

    #[test]
    fn daily_runs_once_per_day_across_a_year() {
        let tz = vienna();
        let sch = Schedule::parse("daily 02:30").unwrap();
        let mut t = at("2026-01-01 00:00:00");
        let mut days = std::collections::BTreeSet::new();
        for _ in 0..365 {
            t = sch.next_after(t, &tz).unwrap();
            assert!(days.insert(zoned(t, &tz).date()), "{}", show(t));
        }
        assert_eq!(days.len(), 365);
    }

    #[test]
    fn jitter_is_fixed_per_job_and_within_the_window() {
        let tz = vienna();
        let timing = Timing {
            schedule: Schedule::parse("daily 02:00").unwrap(),
            jitter: 3600,
        };
        let a = timing
            .next_after("backup vault", at("2026-06-10 00:00:00"), &tz)
            .unwrap();
        let b = timing
            .next_after("backup safe", at("2026-06-10 00:00:00"), &tz)
            .unwrap();
        assert_ne!(a, b, "two jobs should not share their offset");
        for t in [a, b] {
            let off = t - at("2026-06-10 02:00:00");
            assert!((0..3600).contains(&off), "{}", show(t));
        }
        // The same job asks again after its run: one day later, same offset.
        let a2 = timing.next_after("backup vault", a, &tz).unwrap();
        assert_eq!(a2 - a, 86_400);
        assert_eq!(timing.last_at_or_before("backup vault", a, &tz), Some(a));
        assert_eq!(jitter_offset("backup vault", 0), 0);
    }

    #[rstest]
    // Last attempt before the 02:00 slot that has passed: missed.
    #[case(Some("2026-06-09 02:00:00"), "2026-06-10 09:00:00", true)]
    // Ran at 02:00 today: nothing missed.
    #[case(Some("2026-06-10 02:00:05"), "2026-06-10 09:00:00", false)]
    // Before today's slot, yesterday's ran: nothing missed.
    #[case(Some("2026-06-09 02:00:00"), "2026-06-10 01:00:00", false)]
    #[case(None, "2026-06-10 09:00:00", false)]
    fn missed_runs(#[case] last: Option<&str>, #[case] now: &str, #[case] want: bool) {
        let timing = Timing::new(Schedule::parse("daily 02:00").unwrap());
        assert_eq!(
            timing.missed("backup vault", last.map(at), at(now), &vienna()),
            want
        );
    }

    #[rstest]
    #[case("daily 02:00", Some("*-*-* 02:00:00"))]
    #[case("hourly :15", Some("*-*-* *:15:00"))]
    #[case("every 15m", Some("*-*-* *:00/15:00"))]
    #[case("every 6h", Some("*-*-* 00/6:00:00"))]
    #[case("every 7m", None)]
    #[case("manual", None)]
    fn systemd_calendar(#[case] s: &str, #[case] want: Option<&str>) {
        assert_eq!(Schedule::parse(s).unwrap().on_calendar().as_deref(), want);
    }

    #[test]
    fn later_marker_in_tests_means_the_second_hour() {
        assert_eq!(at("2026-10-25 02:30:00!") - at("2026-10-25 02:30:00"), 3600);
    }
}
