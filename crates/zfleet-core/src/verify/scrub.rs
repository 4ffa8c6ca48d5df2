//! What `zpool status POOL` says about the pool's last scrub and its data
//! errors (pure: captured output in, facts out), and whether that is good
//! enough for a backup (`now` and the allowed age are parameters).

use jiff::tz::TimeZone;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scrub", rename_all = "snake_case")]
pub enum Scrub {
    /// `none requested`.
    Never,
    Running {
        since: Option<i64>,
    },
    Finished {
        errors: u64,
        at: Option<i64>,
    },
    Canceled,
    /// The last scan was something else (a resilver), or a line zfleet
    /// does not know; kept as it was printed.
    Other {
        line: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolHealth {
    pub state: String,
    pub scrub: Scrub,
    /// The `errors:` line, unless it says there are none.
    pub data_errors: Option<String>,
    /// When the pool was created (its root dataset's `creation`), where
    /// known: a pool younger than the allowed scrub age needs no scrub yet.
    pub created: Option<i64>,
}

/// How the pool's health counts for a backup on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Passes, but someone should look (a new pool not scrubbed yet).
    Warn,
    Fail,
}

/// Parses `zpool status POOL` of OpenZFS (`scan:`) and zfs-fuse (`scrub:`).
/// Times are the host's local time, read in `tz`.
pub fn parse_status(text: &str, tz: &TimeZone) -> PoolHealth {
    let mut h = PoolHealth {
        state: String::new(),
        scrub: Scrub::Other {
            line: String::new(),
        },
        data_errors: None,
        created: None,
    };
    let mut scanned = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix("state:") {
            h.state = s.trim().to_string();
        } else if let Some(s) = t.strip_prefix("scan:").or_else(|| t.strip_prefix("scrub:")) {
            scanned = true;
            h.scrub = scan(s.trim(), tz);
        } else if let Some(s) = t.strip_prefix("errors:") {
            let s = s.trim();
            if s != "No known data errors" {
                h.data_errors = Some(s.to_string());
            }
        }
    }
    // OpenZFS 2.x prints no `scan:` line at all for a pool never scanned.
    if !scanned && !h.state.is_empty() {
        h.scrub = Scrub::Never;
    }
    h
}

fn scan(s: &str, tz: &TimeZone) -> Scrub {
    let at = |rest: &str| parse_time(rest, tz);
    if s == "none requested" {
        Scrub::Never
    } else if let Some(rest) = s.strip_prefix("scrub in progress since ") {
        Scrub::Running { since: at(rest) }
    } else if s.starts_with("scrub canceled") {
        Scrub::Canceled
    } else if s.starts_with("scrub repaired") || s.starts_with("scrub completed") {
        // `… with N errors on DATE`
        let errors = s
            .split_once(" with ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        let when = s.split_once(" errors on ").and_then(|(_, d)| at(d));
        match errors {
            Some(errors) => Scrub::Finished { errors, at: when },
            None => Scrub::Other {
                line: s.to_string(),
            },
        }
    } else {
        Scrub::Other {
            line: s.to_string(),
        }
    }
}

/// `Wed Dec  2 00:29:56 2026` (ctime format, local time) as Unix seconds.
fn parse_time(s: &str, tz: &TimeZone) -> Option<i64> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let [_, month, day, time, year, ..] = words.as_slice() else {
        return None;
    };
    let text = format!("{month} {day:0>2} {time} {year}");
    let dt = jiff::civil::DateTime::strptime("%b %d %H:%M:%S %Y", &text).ok()?;
    Some(dt.to_zoned(tz.clone()).ok()?.timestamp().as_second())
}

/// Whether the pool's health is good enough, in words either way.
///
/// A pool that was never scrubbed fails only once it is older than the
/// allowed scrub age: a new backup server would otherwise fail every
/// verification from its first backup on, before a monthly scrub could
/// have run. Until then it is a warning. A pool whose age is unknown is
/// treated as old.
pub fn judge(h: &PoolHealth, pool: &str, now: i64, max_age_days: u32) -> (Verdict, String) {
    use Verdict::{Fail, Pass, Warn};
    let max = i64::from(max_age_days) * 86_400;
    let days = |t: i64| (now - t).max(0) / 86_400;
    if let Some(e) = &h.data_errors {
        return (Fail, format!("pool {pool} reports data errors: {e}"));
    }
    if !h.state.is_empty() && h.state != "ONLINE" {
        return (Fail, format!("pool {pool} is {}", h.state));
    }
    match &h.scrub {
        Scrub::Never => match h.created {
            Some(c) if now - c <= max => (
                Warn,
                format!(
                    "pool {pool} has not been scrubbed yet (created {} days ago; from {max_age_days} days on this fails: schedule `zpool scrub {pool}`)",
                    days(c)
                ),
            ),
            _ => (
                Fail,
                format!("pool {pool} was never scrubbed (run `zpool scrub {pool}` regularly)"),
            ),
        },
        Scrub::Canceled => (Fail, format!("the last scrub of {pool} was canceled")),
        Scrub::Other { line } => (
            Fail,
            format!("pool {pool} has no finished scrub on record (last scan: {line})"),
        ),
        Scrub::Finished { errors, .. } if *errors > 0 => (
            Fail,
            format!("the last scrub of {pool} found {errors} errors"),
        ),
        Scrub::Finished { at: Some(t), .. } | Scrub::Running { since: Some(t) }
            if now - t > max =>
        {
            (
                Fail,
                format!(
                    "the last scrub of {pool} was {} days ago (allowed: {max_age_days})",
                    days(*t)
                ),
            )
        }
        Scrub::Finished { at, .. } => (
            Pass,
            match at {
                Some(t) => format!("{pool} scrubbed {} days ago, no errors", days(*t)),
                None => format!("{pool} scrubbed, no errors"),
            },
        ),
        Scrub::Running { .. } => (Pass, format!("a scrub of {pool} is running")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const FUSE: &str = "  pool: zroot\n state: ONLINE\n scrub: scrub completed after 0h0m with 0 errors on Wed Dec  2 00:27:06 2026\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\tzroot ONLINE 0 0 0\n\nerrors: No known data errors\n";
    const OPENZFS: &str = "  pool: tank\n state: ONLINE\n  scan: scrub repaired 0B in 00:00:01 with 0 errors on Sun Nov 15 03:10:00 2026\nconfig:\n\nerrors: No known data errors\n";
    const DAMAGED_NEVER: &str =
        " state: ONLINE\n scrub: none requested\nerrors: 2 data errors, use '-v' for a list\n";
    const DAMAGED: &str = "  pool: zstorage\n state: ONLINE\nstatus: One or more devices has experienced an error resulting in data\n\tcorruption.\n scrub: scrub completed after 0h0m with 3 errors on Wed Dec  2 00:27:06 2026\nconfig:\n\nerrors: 1 data errors, use '-v' for a list\n";

    fn at(s: &str) -> i64 {
        jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s)
            .unwrap()
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second()
    }

    #[test]
    fn both_dialects_parse() {
        let h = parse_status(FUSE, &TimeZone::UTC);
        assert_eq!(
            h.scrub,
            Scrub::Finished {
                errors: 0,
                at: Some(at("2026-12-02 00:27:06"))
            }
        );
        assert_eq!((h.state.as_str(), h.data_errors), ("ONLINE", None));
        let h = parse_status(OPENZFS, &TimeZone::UTC);
        assert_eq!(
            h.scrub,
            Scrub::Finished {
                errors: 0,
                at: Some(at("2026-11-15 03:10:00"))
            }
        );
        let h = parse_status(
            " state: ONLINE\n  scan: none requested\nerrors: No known data errors\n",
            &TimeZone::UTC,
        );
        assert_eq!(h.scrub, Scrub::Never);
        // OpenZFS 2.x on a pool never scrubbed: no `scan:` line at all
        // (what the guest test met).
        let h = parse_status(
            "  pool: zstorage\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tzstorage    ONLINE       0     0     0\n\t  vdc       ONLINE       0     0     0\n\nerrors: No known data errors\n",
            &TimeZone::UTC,
        );
        assert_eq!((h.scrub, h.data_errors), (Scrub::Never, None));
    }

    #[rstest]
    #[case::never_age_unknown(
        " state: ONLINE\n scrub: none requested\n",
        "2026-12-02 01:00:00",
        None,
        Verdict::Fail,
        "pool p was never scrubbed (run `zpool scrub p` regularly)"
    )]
    #[case::never_and_new(
        " state: ONLINE\n scrub: none requested\n",
        "2026-12-02 01:00:00",
        Some("2026-11-20 01:00:00"),
        Verdict::Warn,
        "pool p has not been scrubbed yet (created 12 days ago; from 35 days on this fails: schedule `zpool scrub p`)"
    )]
    #[case::never_and_just_35_days_old(
        " state: ONLINE\n scrub: none requested\n",
        "2026-12-02 01:00:00",
        Some("2026-10-28 01:00:00"),
        Verdict::Warn,
        "pool p has not been scrubbed yet (created 35 days ago; from 35 days on this fails: schedule `zpool scrub p`)"
    )]
    #[case::never_and_older_than_the_scrub_age(
        " state: ONLINE\n scrub: none requested\n",
        "2026-12-02 01:00:00",
        Some("2026-10-28 00:59:59"),
        Verdict::Fail,
        "pool p was never scrubbed (run `zpool scrub p` regularly)"
    )]
    #[case::never_new_but_damaged(
        DAMAGED_NEVER,
        "2026-12-02 01:00:00",
        Some("2026-12-01 01:00:00"),
        Verdict::Fail,
        "pool p reports data errors: 2 data errors, use '-v' for a list"
    )]
    #[case::degraded(
        " state: DEGRADED\n scrub: none requested\n",
        "2026-12-02 01:00:00",
        Some("2026-12-01 01:00:00"),
        Verdict::Fail,
        "pool p is DEGRADED"
    )]
    fn never_scrubbed(
        #[case] text: &str,
        #[case] now: &str,
        #[case] created: Option<&str>,
        #[case] verdict: Verdict,
        #[case] why: &str,
    ) {
        let mut h = parse_status(text, &TimeZone::UTC);
        h.created = created.map(at);
        assert_eq!(judge(&h, "p", at(now), 35), (verdict, why.to_string()));
    }

    #[rstest]
    #[case::recent(
        FUSE,
        "2026-12-03 00:00:00",
        Verdict::Pass,
        "zroot scrubbed 0 days ago, no errors"
    )]
    #[case::too_old(
        OPENZFS,
        "2027-01-01 00:00:00",
        Verdict::Fail,
        "the last scrub of tank was 46 days ago (allowed: 35)"
    )]
    #[case::errors(
        DAMAGED,
        "2026-12-02 01:00:00",
        Verdict::Fail,
        "pool zstorage reports data errors: 1 data errors, use '-v' for a list"
    )]
    fn judged(#[case] text: &str, #[case] now: &str, #[case] ok: Verdict, #[case] why: &str) {
        let h = parse_status(text, &TimeZone::UTC);
        let pool = if text.contains("pool:") {
            text.lines()
                .next()
                .unwrap()
                .trim()
                .trim_start_matches("pool: ")
                .to_string()
        } else {
            "p".to_string()
        };
        assert_eq!(judge(&h, &pool, at(now), 35), (ok, why.to_string()));
    }
}
