//! Retries of a failed job: the first after `first`, each later one twice as
//! long after the last, never longer than `max`, at most `retries` times;
//! then the job waits for its next scheduled run. A retry never pushes past
//! that run either: the schedule wins.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    /// Seconds before the first retry.
    pub first: i64,
    /// Longest wait between two attempts, in seconds.
    pub max: i64,
    /// Retries after the failed scheduled run (0: none).
    pub retries: u32,
}

pub const DEFAULT_BACKOFF: Backoff = Backoff {
    first: 60,
    max: 3600,
    retries: 5,
};

impl Default for Backoff {
    fn default() -> Self {
        DEFAULT_BACKOFF
    }
}

/// What comes after an attempt that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "then", rename_all = "snake_case")]
pub enum AfterFailure {
    /// Retry at `at`; this is retry number `attempt` of the streak.
    Retry { attempt: u32, at: i64 },
    /// The retries are used up (or the next run comes first): wait for `at`,
    /// the next scheduled run, or for a person when there is none.
    GiveUp { at: Option<i64> },
}

impl Backoff {
    /// Seconds to wait after the `failures`-th failure in a row (1 = the
    /// scheduled run failed); `None` once the retries are used up.
    pub fn delay(&self, failures: u32) -> Option<i64> {
        if failures == 0 || failures > self.retries {
            return None;
        }
        let doubling = 1i64.checked_shl(failures - 1).unwrap_or(i64::MAX);
        Some(self.first.saturating_mul(doubling).min(self.max).max(1))
    }

    /// The decision after the `failures`-th failure in a row at `now`, with
    /// the job's next scheduled run.
    pub fn after_failure(
        &self,
        failures: u32,
        now: i64,
        next_scheduled: Option<i64>,
    ) -> AfterFailure {
        match self.delay(failures) {
            Some(d) if next_scheduled.map_or(true, |n| now + d < n) => AfterFailure::Retry {
                attempt: failures,
                at: now + d,
            },
            _ => AfterFailure::GiveUp { at: next_scheduled },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, None)]
    #[case(1, Some(60))]
    #[case(2, Some(120))]
    #[case(3, Some(240))]
    #[case(4, Some(480))]
    #[case(5, Some(960))]
    #[case(6, None)]
    fn doubles_up_to_the_count(#[case] failures: u32, #[case] want: Option<i64>) {
        assert_eq!(DEFAULT_BACKOFF.delay(failures), want);
    }

    #[test]
    fn capped_at_max() {
        let b = Backoff {
            first: 600,
            max: 1800,
            retries: 40,
        };
        assert_eq!(b.delay(1), Some(600));
        assert_eq!(b.delay(2), Some(1200));
        assert_eq!(b.delay(3), Some(1800));
        assert_eq!(b.delay(40), Some(1800));
    }

    #[test]
    fn no_retries_means_wait_for_the_schedule() {
        let b = Backoff {
            retries: 0,
            ..DEFAULT_BACKOFF
        };
        assert_eq!(
            b.after_failure(1, 1000, Some(5000)),
            AfterFailure::GiveUp { at: Some(5000) }
        );
    }

    #[rstest]
    #[case(1, Some(100_000), AfterFailure::Retry { attempt: 1, at: 1060 })]
    #[case(3, None, AfterFailure::Retry { attempt: 3, at: 1240 })]
    // The next run comes before the retry would: wait for it.
    #[case(2, Some(1100), AfterFailure::GiveUp { at: Some(1100) })]
    #[case(6, Some(100_000), AfterFailure::GiveUp { at: Some(100_000) })]
    #[case(6, None, AfterFailure::GiveUp { at: None })]
    fn decisions(#[case] failures: u32, #[case] next: Option<i64>, #[case] want: AfterFailure) {
        assert_eq!(DEFAULT_BACKOFF.after_failure(failures, 1000, next), want);
    }
}
