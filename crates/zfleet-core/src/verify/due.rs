//! Which level the daemon verifies at after a backup (pure: the schedule,
//! the last runs and `now` in, a level out). A drill is due when the last
//! drill is older than its interval, content when the last content check
//! or drill is; otherwise the level for every backup. And whether a job's
//! last failed verification still stands ([`standing`]).

use super::run::Level;
use crate::config::VerifySchedule;
use crate::state::VerificationRecord;

pub fn due(
    s: &VerifySchedule,
    last_content: Option<i64>,
    last_drill: Option<i64>,
    now: i64,
) -> Option<Level> {
    let older = |last: Option<i64>, every: Option<std::time::Duration>| match every {
        None => false,
        Some(e) => last.map_or(true, |t| now - t >= e.as_secs() as i64),
    };
    if older(last_drill, s.drill_every) {
        return Some(Level::Drill);
    }
    let content = last_content.max(last_drill);
    if older(content, s.content_every) {
        return Some(Level::Content);
    }
    s.after_backup
}

/// The failed verification of one job that still stands, given its newest
/// record per level: one that no later passing verification at the same or
/// a more thorough level has cleared. A content failure stays until content
/// or a drill passes again, so the daemon does not tell it "recovered"
/// because the next backup's quick check passed.
pub fn standing<'a>(newest: &[&'a VerificationRecord]) -> Option<&'a VerificationRecord> {
    let level = |v: &VerificationRecord| Level::parse(&v.level).unwrap_or(Level::Quick);
    newest
        .iter()
        .copied()
        .filter(|f| !f.ok)
        .filter(|f| {
            !newest
                .iter()
                .any(|p| p.ok && level(p) >= level(f) && p.finished >= f.finished)
        })
        .max_by_key(|f| f.finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn rec(level: &str, finished: i64, ok: bool) -> VerificationRecord {
        VerificationRecord {
            level: level.into(),
            finished,
            ok,
            ..VerificationRecord::default()
        }
    }

    #[rstest]
    #[case::all_passed(&[("quick", 10, true), ("content", 5, true)], None)]
    #[case::quick_failed(&[("quick", 10, false), ("content", 5, true)], Some(("quick", 10)))]
    #[case::a_later_quick_pass_does_not_clear_content(&[("quick", 20, true), ("content", 10, false)], Some(("content", 10)))]
    #[case::a_later_content_pass_clears_quick(&[("quick", 10, false), ("content", 20, true)], None)]
    #[case::a_later_drill_pass_clears_content(&[("content", 10, false), ("drill", 20, true)], None)]
    #[case::an_earlier_drill_pass_does_not(&[("content", 20, false), ("drill", 10, true)], Some(("content", 20)))]
    #[case::the_newest_standing_failure(&[("quick", 30, false), ("content", 20, false), ("drill", 10, true)], Some(("quick", 30)))]
    #[case::none_at_all(&[], None)]
    fn standing_failures(#[case] rows: &[(&str, i64, bool)], #[case] want: Option<(&str, i64)>) {
        let recs: Vec<VerificationRecord> = rows.iter().map(|(l, f, ok)| rec(l, *f, *ok)).collect();
        let refs: Vec<&VerificationRecord> = recs.iter().collect();
        assert_eq!(
            standing(&refs).map(|v| (v.level.as_str(), v.finished)),
            want
        );
    }
    use std::time::Duration;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    fn sched(after: Option<Level>, content: Option<i64>, drill: Option<i64>) -> VerifySchedule {
        VerifySchedule {
            after_backup: after,
            content_every: content.map(|d| Duration::from_secs((d * DAY) as u64)),
            drill_every: drill.map(|d| Duration::from_secs((d * DAY) as u64)),
        }
    }

    #[rstest]
    #[case::never_verified_drills_first(
        sched(Some(Level::Quick), Some(7), Some(30)),
        None,
        None,
        Some(Level::Drill)
    )]
    #[case::drill_recent_content_old(sched(Some(Level::Quick), Some(7), Some(30)), Some(NOW - 8 * DAY), Some(NOW - 20 * DAY), Some(Level::Content))]
    #[case::a_recent_drill_counts_as_content(sched(Some(Level::Quick), Some(7), Some(30)), Some(NOW - 20 * DAY), Some(NOW - 2 * DAY), Some(Level::Quick))]
    #[case::both_recent(sched(Some(Level::Quick), Some(7), Some(30)), Some(NOW - DAY), Some(NOW - 10 * DAY), Some(Level::Quick))]
    #[case::drill_due(sched(Some(Level::Quick), Some(7), Some(30)), Some(NOW - DAY), Some(NOW - 30 * DAY), Some(Level::Drill))]
    #[case::no_drills(sched(Some(Level::Quick), Some(7), None), Some(NOW - 7 * DAY), None, Some(Level::Content))]
    #[case::nothing_after_backup(sched(None, None, None), None, None, None)]
    fn levels(
        #[case] s: VerifySchedule,
        #[case] content: Option<i64>,
        #[case] drill: Option<i64>,
        #[case] want: Option<Level>,
    ) {
        assert_eq!(due(&s, content, drill, NOW), want);
    }
}
