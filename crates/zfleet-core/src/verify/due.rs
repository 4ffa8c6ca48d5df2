//! Which level the daemon verifies at after a backup (pure: the schedule,
//! the last runs and `now` in, a level out). A drill is due when the last
//! drill is older than its interval, content when the last content check
//! or drill is; otherwise the level for every backup.

use super::run::Level;
use crate::config::VerifySchedule;

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

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
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
