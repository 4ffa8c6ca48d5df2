//! `--at TIME`: the moment a restore goes back to, as people write it.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Reads `2026-11-25 14:00` (local time in `tz`, seconds optional, `T` or a
/// space between date and time) or RFC 3339 with an offset
/// (`2026-11-25T14:00:00Z`, `2026-11-25T14:00:00+01:00`). Returns Unix seconds.
///
/// A local time that a DST change makes ambiguous or skips is resolved the
/// way most software does (jiff's "compatible" rule: the earlier of two
/// readings, the later side of a gap), and a date without a time is refused,
/// because "at 2026-11-25" could mean its start or its end.
pub fn parse_at(text: &str, tz: &TimeZone) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts.as_second());
    }
    // A bare date parses as a civil DateTime at midnight: refuse it first.
    if t.len() == 10 && t.parse::<jiff::civil::Date>().is_ok() {
        return Err(format!(
            "`{t}` has no time of day; write it like `{t} 23:59` (local time) or `{t}T23:59:00Z`"
        ));
    }
    match t.parse::<DateTime>() {
        Ok(dt) => dt
            .to_zoned(tz.clone())
            .map(|z| z.timestamp().as_second())
            .map_err(|e| format!("`{t}`: {e}")),
        Err(_) => Err(format!(
            "`{t}` is not a time; write it like `2026-11-25 14:00` (local time) or `2026-11-25T14:00:00Z`"
        )),
    }
}

/// `20261125T140000Z`: the UTC stamp in the names zfleet gives safety
/// snapshots and set-aside datasets (sortable, and valid in any ZFS name).
pub fn stamp(unix: i64) -> String {
    Timestamp::from_second(unix)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(TimeZone::UTC)
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn local_and_rfc3339() {
        // 2026-11-25 14:00 in Berlin is 13:00 UTC (CET, +01:00).
        let want = "2026-11-25T13:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second();
        for text in [
            "2026-11-25 14:00",
            "2026-11-25 14:00:00",
            "2026-11-25T14:00",
            " 2026-11-25 14:00 ",
            "2026-11-25T13:00:00Z",
            "2026-11-25T14:00:00+01:00",
            "2026-11-25 14:00:00+01:00",
        ] {
            assert_eq!(parse_at(text, &berlin()), Ok(want), "{text}");
        }
        assert_eq!(
            parse_at("2026-11-25 14:00", &TimeZone::UTC),
            Ok(want + 3600)
        );
    }

    #[test]
    fn refused_with_a_hint() {
        let e = parse_at("2026-11-25", &berlin()).unwrap_err();
        assert!(e.contains("no time of day"), "{e}");
        let e = parse_at("yesterday", &berlin()).unwrap_err();
        assert!(e.contains("`yesterday` is not a time"), "{e}");
        assert!(parse_at("2026-13-01 00:00", &berlin()).is_err());
    }

    #[test]
    fn dst_gap_and_fold() {
        // 2026-03-29 02:30 does not exist in Berlin; 2026-10-25 02:30 exists twice.
        let gap = parse_at("2026-03-29 02:30", &berlin()).unwrap();
        assert_eq!(
            gap,
            "2026-03-29T01:30:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
        );
        let fold = parse_at("2026-10-25 02:30", &berlin()).unwrap();
        assert_eq!(
            fold,
            "2026-10-25T00:30:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
        );
    }

    #[test]
    fn stamps_are_utc() {
        let t = "2026-11-25T13:00:05Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second();
        assert_eq!(stamp(t), "20261125T130005Z");
    }
}
