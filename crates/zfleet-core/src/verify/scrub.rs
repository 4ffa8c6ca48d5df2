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
    };
    for line in text.lines() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix("state:") {
            h.state = s.trim().to_string();
        } else if let Some(s) = t.strip_prefix("scan:").or_else(|| t.strip_prefix("scrub:")) {
            h.scrub = scan(s.trim(), tz);
        } else if let Some(s) = t.strip_prefix("errors:") {
            let s = s.trim();
            if s != "No known data errors" {
                h.data_errors = Some(s.to_string());
            }
        }
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
pub fn judge(h: &PoolHealth, pool: &str, now: i64, max_age_days: u32) -> (bool, String) {
    let max = i64::from(max_age_days) * 86_400;
    let days = |t: i64| (now - t).max(0) / 86_400;
    if let Some(e) = &h.data_errors {
        return (false, format!("pool {pool} reports data errors: {e}"));
    }
    if !h.state.is_empty() && h.state != "ONLINE" {
        return (false, format!("pool {pool} is {}", h.state));
    }
    match &h.scrub {
        Scrub::Never => (
            false,
            format!("pool {pool} was never scrubbed (run `zpool scrub {pool}` regularly)"),
        ),
        Scrub::Canceled => (false, format!("the last scrub of {pool} was canceled")),
        Scrub::Other { line } => (
            false,
            format!("pool {pool} has no finished scrub on record (last scan: {line})"),
        ),
        Scrub::Finished { errors, .. } if *errors > 0 => (
            false,
            format!("the last scrub of {pool} found {errors} errors"),
        ),
        Scrub::Finished { at: Some(t), .. } | Scrub::Running { since: Some(t) }
            if now - t > max =>
        {
            (
                false,
                format!(
                    "the last scrub of {pool} was {} days ago (allowed: {max_age_days})",
                    days(*t)
                ),
            )
        }
        Scrub::Finished { at, .. } => (
            true,
            match at {
                Some(t) => format!("{pool} scrubbed {} days ago, no errors", days(*t)),
                None => format!("{pool} scrubbed, no errors"),
            },
        ),
        Scrub::Running { .. } => (true, format!("a scrub of {pool} is running")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const FUSE: &str = "  pool: zroot\n state: ONLINE\n scrub: scrub completed after 0h0m with 0 errors on Wed Dec  2 00:27:06 2026\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\tzroot ONLINE 0 0 0\n\nerrors: No known data errors\n";
    const OPENZFS: &str = "  pool: tank\n state: ONLINE\n  scan: scrub repaired 0B in 00:00:01 with 0 errors on Sun Nov 15 03:10:00 2026\nconfig:\n\nerrors: No known data errors\n";
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
    }

    #[rstest]
    #[case::recent(
        FUSE,
        "2026-12-03 00:00:00",
        true,
        "zroot scrubbed 0 days ago, no errors"
    )]
    #[case::too_old(
        OPENZFS,
        "2027-01-01 00:00:00",
        false,
        "the last scrub of tank was 46 days ago (allowed: 35)"
    )]
    #[case::errors(
        DAMAGED,
        "2026-12-02 01:00:00",
        false,
        "pool zstorage reports data errors: 1 data errors, use '-v' for a list"
    )]
    #[case::never(
        " state: ONLINE\n scrub: none requested\n",
        "2026-12-02 01:00:00",
        false,
        "pool p was never scrubbed (run `zpool scrub p` regularly)"
    )]
    #[case::degraded(
        " state: DEGRADED\n scrub: none requested\n",
        "2026-12-02 01:00:00",
        false,
        "pool p is DEGRADED"
    )]
    fn judged(#[case] text: &str, #[case] now: &str, #[case] ok: bool, #[case] why: &str) {
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
