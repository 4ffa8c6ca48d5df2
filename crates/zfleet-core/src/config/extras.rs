//! sanoid's hook and monitoring keys, which ride along with a snapshot policy:
//! `pre_snapshot_script`, `script_timeout`, `hourly_warn`, `capacity_crit`, …
//! Same names and meanings as in `sanoid.conf`, so an imported configuration
//! reads the same.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::Period;

/// A hook as written: one string (run like sanoid's Perl `system`: through
/// `/bin/sh -c` only when it contains shell syntax, else split on whitespace and
/// run directly), or a list of words (always run directly, no shell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HookCommand {
    Line(String),
    Argv(Vec<String>),
}

/// Characters that make Perl's `system(STRING)` hand the line to `/bin/sh -c`.
const SHELL_META: &[char] = &[
    '$', '&', '*', '(', ')', '{', '}', '[', ']', '\'', '"', ';', '\\', '|', '?', '<', '>', '~',
    '`', '\n',
];

impl HookCommand {
    /// The words to execute: `["/bin/sh", "-c", LINE]` when the line needs a
    /// shell, else the line's words.
    pub fn argv(&self) -> Vec<String> {
        match self {
            HookCommand::Argv(v) => v.clone(),
            HookCommand::Line(l) if l.contains(SHELL_META) => {
                vec!["/bin/sh".into(), "-c".into(), l.clone()]
            }
            HookCommand::Line(l) => l.split_whitespace().map(str::to_string).collect(),
        }
    }

    pub fn uses_shell(&self) -> bool {
        matches!(self, HookCommand::Line(l) if l.contains(SHELL_META))
    }

    pub fn is_empty(&self) -> bool {
        match self {
            HookCommand::Line(l) => l.trim().is_empty(),
            HookCommand::Argv(v) => v.is_empty() || v[0].is_empty(),
        }
    }

    /// For messages.
    pub fn display(&self) -> String {
        match self {
            HookCommand::Line(l) => l.clone(),
            HookCommand::Argv(v) => crate::exec::quote::display_line(v.iter().map(String::as_str)),
        }
    }
}

/// sanoid's default `script_timeout`.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hooks {
    pub pre_snapshot: Option<HookCommand>,
    pub post_snapshot: Option<HookCommand>,
    pub pre_pruning: Option<HookCommand>,
    pub pruning: Option<HookCommand>,
    /// `None`: no limit (`script_timeout = 0`).
    #[serde(with = "opt_secs")]
    pub timeout: Option<Duration>,
    /// A failing pre-snapshot hook skips the dataset's snapshots.
    pub no_inconsistent_snapshot: bool,
    /// Run the post-snapshot hook even after the pre-snapshot hook failed.
    pub force_post_snapshot: bool,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            pre_snapshot: None,
            post_snapshot: None,
            pre_pruning: None,
            pruning: None,
            timeout: Some(DEFAULT_SCRIPT_TIMEOUT),
            no_inconsistent_snapshot: false,
            force_post_snapshot: false,
        }
    }
}

impl Hooks {
    pub fn is_default(&self) -> bool {
        *self == Hooks::default()
    }

    pub fn any_snapshot_hook(&self) -> bool {
        self.pre_snapshot.is_some() || self.post_snapshot.is_some()
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// `zfleet check-snapshots` / `check-pools` limits, sanoid's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Monitor {
    pub enabled: bool,
    /// Report warnings, but exit OK.
    pub dont_warn: bool,
    /// Report criticals, but exit OK.
    pub dont_crit: bool,
    /// Per period (frequently … yearly): the age in seconds of the newest
    /// snapshot above which to warn; 0 = not checked.
    pub warn: [u64; 6],
    pub crit: [u64; 6],
    /// Pool capacity in percent; 0 = not checked.
    pub capacity_warn: u32,
    pub capacity_crit: u32,
}

impl Default for Monitor {
    fn default() -> Self {
        let (m, h, d) = (60, 3600, 86_400);
        Self {
            enabled: true,
            dont_warn: false,
            dont_crit: false,
            //      frequently hourly  daily    weekly monthly  yearly
            warn: [0, 90 * m, 28 * h, 0, 32 * d, 0],
            crit: [0, 360 * m, 32 * h, 0, 40 * d, 0],
            capacity_warn: 80,
            capacity_crit: 95,
        }
    }
}

impl Monitor {
    pub fn is_default(&self) -> bool {
        *self == Monitor::default()
    }
}

/// An age limit as written: a number (in units of the next shorter period, as
/// in sanoid: `hourly_warn = 90` is 90 minutes) or a string with a unit
/// (`"90m"`, `"28h"`, `"32d"`, `"5w"`, `"1y"`, `"30s"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawAge {
    Number(u64),
    Text(String),
}

/// The unit a bare number means for `period`'s limits (sanoid's
/// `convertTimePeriod` fallback).
fn bare_unit(period: Period) -> u64 {
    match period {
        Period::Frequently => 1,
        Period::Hourly => 60,
        Period::Daily => 3600,
        Period::Weekly => 86_400,
        Period::Monthly => 7 * 86_400,
        Period::Yearly => 31 * 86_400,
    }
}

/// Seconds. sanoid's `y` is 31 × 365 days (a slip for 365); zfleet's is 365.
pub fn parse_age(raw: &RawAge, period: Period) -> Result<u64, String> {
    match raw {
        RawAge::Number(n) => Ok(n.saturating_mul(bare_unit(period))),
        RawAge::Text(t) => {
            let t = t.trim();
            let (num, unit) = match t.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], Some(c.to_ascii_lowercase())),
                _ => (t, None),
            };
            let n: u64 = num.parse().map_err(|_| {
                format!("`{t}` is not an age; write a number with s, m, h, d, w or y (\"90m\", \"28h\")")
            })?;
            let unit = match unit {
                None => bare_unit(period),
                Some('s') => 1,
                Some('m') => 60,
                Some('h') => 3600,
                Some('d') => 86_400,
                Some('w') => 7 * 86_400,
                Some('y') => 365 * 86_400,
                Some(u) => {
                    return Err(format!(
                        "`{u}` in `{t}` is not a unit; use s, m, h, d, w or y"
                    ))
                }
            };
            Ok(n.saturating_mul(unit))
        }
    }
}

/// `script_timeout`: seconds as a number (sanoid), or a duration string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawTimeout {
    Seconds(u64),
    Text(String),
}

pub fn parse_timeout(raw: &RawTimeout) -> Result<Option<Duration>, String> {
    match raw {
        RawTimeout::Seconds(0) => Ok(None),
        RawTimeout::Seconds(s) => Ok(Some(Duration::from_secs(*s))),
        RawTimeout::Text(t) => {
            let d: jiff::SignedDuration = t.parse().map_err(|_| {
                format!(
                    "`{t}` is not a duration; write seconds (5) or a duration (\"30s\", \"2m\")"
                )
            })?;
            if d.is_negative() {
                return Err(format!("`{t}` must not be negative"));
            }
            if d.is_zero() {
                return Ok(None);
            }
            Duration::try_from(d).map(Some).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_like_sanoid() {
        let n = |v| RawAge::Number(v);
        let t = |s: &str| RawAge::Text(s.into());
        assert_eq!(parse_age(&n(90), Period::Hourly), Ok(5400));
        assert_eq!(parse_age(&n(28), Period::Daily), Ok(28 * 3600));
        assert_eq!(parse_age(&n(5), Period::Monthly), Ok(5 * 7 * 86_400));
        assert_eq!(parse_age(&t("90m"), Period::Hourly), Ok(5400));
        assert_eq!(parse_age(&t("32D"), Period::Monthly), Ok(32 * 86_400));
        assert_eq!(parse_age(&t("360"), Period::Hourly), Ok(360 * 60));
        assert!(parse_age(&t("5 parsecs"), Period::Hourly).is_err());
        assert!(parse_age(&t("5q"), Period::Hourly).is_err());
    }

    #[test]
    fn hooks_run_without_a_shell_unless_needed() {
        let l = |s: &str| HookCommand::Line(s.into());
        assert_eq!(
            l("/usr/local/bin/pre --fast").argv(),
            ["/usr/local/bin/pre", "--fast"]
        );
        assert_eq!(
            l("echo $SANOID_TARGET >> /tmp/log").argv(),
            ["/bin/sh", "-c", "echo $SANOID_TARGET >> /tmp/log"]
        );
        assert!(!l("/bin/true").uses_shell());
        assert_eq!(
            HookCommand::Argv(vec!["/bin/echo".into(), "a b;c".into()]).argv(),
            ["/bin/echo", "a b;c"]
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(&RawTimeout::Seconds(0)), Ok(None));
        assert_eq!(
            parse_timeout(&RawTimeout::Seconds(5)),
            Ok(Some(Duration::from_secs(5)))
        );
        assert_eq!(
            parse_timeout(&RawTimeout::Text("2m".into())),
            Ok(Some(Duration::from_secs(120)))
        );
        assert!(parse_timeout(&RawTimeout::Text("soon".into())).is_err());
    }
}
