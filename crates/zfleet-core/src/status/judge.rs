//! Where one backup stands, from its history and the clock: the one
//! judgement `zfleet status`, `zfleet check-backups`, the status page, the
//! metrics and the notifications all share.

use serde::Serialize;

/// The state of one server × client × dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    Ok,
    /// Never succeeded yet, and the last attempt did not fail (a new client).
    Never,
    /// Not backed up on purpose (`enabled = false`, or a manual schedule
    /// nobody runs).
    Paused,
    /// The last attempt failed; retries may still fix it.
    Failing,
    /// No success within the threshold, whatever the attempts say.
    Late,
}

impl BackupState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Ok => "ok",
            BackupState::Never => "never",
            BackupState::Paused => "paused",
            BackupState::Failing => "failing",
            BackupState::Late => "late",
        }
    }

    /// What people read: "never backed up" rather than "never".
    pub fn describe(self) -> &'static str {
        match self {
            BackupState::Never => "never backed up",
            s => s.as_str(),
        }
    }

    /// Nagios' view: late and failing are what someone must look at.
    pub fn level(self) -> crate::snapshot::monitor::Level {
        use crate::snapshot::monitor::Level;
        match self {
            BackupState::Ok | BackupState::Paused => Level::Ok,
            BackupState::Never | BackupState::Failing => Level::Warning,
            BackupState::Late => Level::Critical,
        }
    }
}

/// What the judgement looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    pub paused: bool,
    /// When the last successful run finished.
    pub last_success: Option<i64>,
    /// The newest finished attempt failed (or was refused).
    pub last_failed: bool,
}

/// How long without a success makes a backup late: `late_after` when set,
/// else twice the schedule's interval, else (no schedule: timers or by hand)
/// two days.
pub fn late_threshold(late_after: Option<i64>, interval: Option<i64>) -> i64 {
    late_after.unwrap_or_else(|| interval.map_or(2 * 86_400, |i| 2 * i))
}

pub fn judge(h: &History, now: i64, late_after: i64) -> BackupState {
    if h.paused {
        return BackupState::Paused;
    }
    match h.last_success {
        None if h.last_failed => BackupState::Failing,
        None => BackupState::Never,
        Some(t) if now - t > late_after => BackupState::Late,
        Some(_) if h.last_failed => BackupState::Failing,
        Some(_) => BackupState::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const H: i64 = 3600;

    #[rstest]
    #[case::fresh_success(false, Some(-H), false, BackupState::Ok)]
    #[case::success_then_a_failure(false, Some(-H), true, BackupState::Failing)]
    #[case::failing_past_the_threshold(false, Some(-49 * H), true, BackupState::Late)]
    #[case::no_attempt_past_the_threshold(false, Some(-49 * H), false, BackupState::Late)]
    #[case::exactly_at_the_threshold(false, Some(-48 * H), false, BackupState::Ok)]
    #[case::new_client(false, None, false, BackupState::Never)]
    #[case::never_worked(false, None, true, BackupState::Failing)]
    #[case::paused_wins(true, Some(-100 * H), true, BackupState::Paused)]
    fn states(
        #[case] paused: bool,
        #[case] success: Option<i64>,
        #[case] failed: bool,
        #[case] want: BackupState,
    ) {
        let now = 1_000_000;
        let h = History {
            paused,
            last_success: success.map(|s| now + s),
            last_failed: failed,
        };
        assert_eq!(judge(&h, now, late_threshold(None, Some(24 * H))), want);
    }

    #[rstest]
    #[case(None, Some(86_400), 172_800)]
    #[case(None, Some(900), 1800)]
    #[case(Some(26 * H), Some(86_400), 26 * H)]
    #[case(None, None, 172_800)]
    fn thresholds(#[case] set: Option<i64>, #[case] interval: Option<i64>, #[case] want: i64) {
        assert_eq!(late_threshold(set, interval), want);
    }

    #[test]
    fn words() {
        assert_eq!(BackupState::Never.describe(), "never backed up");
        assert_eq!(
            serde_json::to_value(BackupState::Failing).unwrap(),
            serde_json::json!("failing")
        );
    }
}
