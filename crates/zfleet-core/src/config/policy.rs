//! Snapshot policies in sanoid's terms: how many snapshots of each period to keep,
//! when each period's snapshot is due, and whether to take and prune at all.

use serde::Serialize;

use super::extras::{parse_age, parse_timeout, Hooks, Monitor};
use super::raw::RawPolicy;

/// Periods from shortest to longest, with sanoid's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Frequently,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    pub const ALL: [Period; 6] = [
        Period::Frequently,
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    /// Longest first: the order sanoid takes snapshots in, and reports them.
    pub const LONGEST_FIRST: [Period; 6] = [
        Period::Yearly,
        Period::Monthly,
        Period::Weekly,
        Period::Daily,
        Period::Hourly,
        Period::Frequently,
    ];

    /// The word sanoid puts at the end of a snapshot name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Frequently => "frequently",
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }
}

/// `recursive` on a dataset entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Recursive {
    /// Only the dataset itself.
    #[default]
    No,
    /// The dataset and every descendant, each planned on its own.
    Yes,
    /// One atomic `zfs snapshot -r` for the whole tree, as sanoid's `recursive = zfs`.
    Zfs,
}

/// A fully resolved policy: sanoid's defaults, then the templates, then the
/// dataset's own keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub autosnap: bool,
    pub autoprune: bool,
    pub frequently: u32,
    /// Minutes between frequent snapshots.
    pub frequent_period: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub hourly_min: u32,
    pub daily_hour: u32,
    pub daily_min: u32,
    pub weekly_wday: u32,
    pub weekly_hour: u32,
    pub weekly_min: u32,
    pub monthly_mday: u32,
    pub monthly_hour: u32,
    pub monthly_min: u32,
    pub yearly_mon: u32,
    pub yearly_mday: u32,
    pub yearly_hour: u32,
    pub yearly_min: u32,
    #[serde(skip_serializing_if = "Hooks::is_default")]
    pub hooks: Hooks,
    #[serde(skip_serializing_if = "Monitor::is_default")]
    pub monitor: Monitor,
}

impl Default for Policy {
    /// sanoid's `sanoid.defaults.conf`, so that a dataset configured the same way
    /// behaves the same way under both tools.
    fn default() -> Self {
        Self {
            autosnap: true,
            autoprune: true,
            frequently: 0,
            frequent_period: 15,
            hourly: 48,
            daily: 90,
            weekly: 0,
            monthly: 6,
            yearly: 0,
            hourly_min: 0,
            daily_hour: 23,
            daily_min: 59,
            weekly_wday: 1,
            weekly_hour: 23,
            weekly_min: 30,
            monthly_mday: 1,
            monthly_hour: 0,
            monthly_min: 0,
            yearly_mon: 1,
            yearly_mday: 1,
            yearly_hour: 0,
            yearly_min: 0,
            hooks: Hooks::default(),
            monitor: Monitor::default(),
        }
    }
}

impl Policy {
    pub fn count(&self, p: Period) -> u32 {
        match p {
            Period::Frequently => self.frequently,
            Period::Hourly => self.hourly,
            Period::Daily => self.daily,
            Period::Weekly => self.weekly,
            Period::Monthly => self.monthly,
            Period::Yearly => self.yearly,
        }
    }

    /// Laid over `self`: every key the section sets replaces ours.
    pub fn apply(&mut self, r: &RawPolicy) {
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = r.$f { self.$f = v; } )* };
        }
        take!(
            autosnap,
            autoprune,
            frequently,
            frequent_period,
            hourly,
            daily,
            weekly,
            monthly,
            yearly,
            hourly_min,
            daily_hour,
            daily_min,
            weekly_wday,
            weekly_hour,
            weekly_min,
            monthly_mday,
            monthly_hour,
            monthly_min,
            yearly_mon,
            yearly_mday,
            yearly_hour,
            yearly_min
        );
        let h = &mut self.hooks;
        macro_rules! hook {
            ($($raw:ident => $f:ident),*) => { $( if let Some(v) = &r.$raw { h.$f = (!v.is_empty()).then(|| v.clone()); } )* };
        }
        hook!(
            pre_snapshot_script => pre_snapshot,
            post_snapshot_script => post_snapshot,
            pre_pruning_script => pre_pruning,
            pruning_script => pruning
        );
        // Invalid values were reported by `resolve`; they leave the default.
        if let Some(Ok(t)) = r.script_timeout.as_ref().map(parse_timeout) {
            h.timeout = t;
        }
        if let Some(v) = r.no_inconsistent_snapshot {
            h.no_inconsistent_snapshot = v;
        }
        if let Some(v) = r.force_post_snapshot_script {
            h.force_post_snapshot = v;
        }
        let m = &mut self.monitor;
        if let Some(v) = r.monitor {
            m.enabled = v;
        }
        if let Some(v) = r.monitor_dont_warn {
            m.dont_warn = v;
        }
        if let Some(v) = r.monitor_dont_crit {
            m.dont_crit = v;
        }
        for (period, key, raw) in r.age_limits() {
            if let Some(Ok(secs)) = raw.as_ref().map(|a| parse_age(a, period)) {
                let slot = if key.ends_with("_warn") {
                    &mut m.warn
                } else {
                    &mut m.crit
                };
                slot[period as usize] = secs;
            }
        }
        if let Some(v) = r.capacity_warn {
            m.capacity_warn = v;
        }
        if let Some(v) = r.capacity_crit {
            m.capacity_crit = v;
        }
    }

    /// One line for humans: `hourly 8, daily 1, monthly 1, yearly 1 (autosnap, autoprune)`.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = Period::ALL
            .iter()
            .filter(|p| self.count(**p) > 0)
            .map(|p| match p {
                Period::Frequently => format!(
                    "frequently {} every {} min",
                    self.frequently, self.frequent_period
                ),
                p => format!("{} {}", p.as_str(), self.count(*p)),
            })
            .collect();
        let counts = if counts.is_empty() {
            "keeps no periodic snapshots".to_string()
        } else {
            counts.join(", ")
        };
        let mode = match (self.autosnap, self.autoprune) {
            (true, true) => "snapshot and prune",
            (true, false) => "snapshot only",
            (false, true) => "prune only",
            (false, false) => "neither snapshot nor prune",
        };
        format!("{counts} ({mode})")
    }
}

/// The ranges sanoid's timing keys may take; checked in `resolve`.
/// A timing key: its name, how to read it, and its inclusive range.
pub(crate) type TimingKey = (&'static str, fn(&RawPolicy) -> Option<u32>, u32, u32);

pub(crate) fn timing_limits() -> [TimingKey; 14] {
    [
        ("hourly_min", |r| r.hourly_min, 0, 59),
        ("daily_hour", |r| r.daily_hour, 0, 23),
        ("daily_min", |r| r.daily_min, 0, 59),
        ("weekly_wday", |r| r.weekly_wday, 0, 6),
        ("weekly_hour", |r| r.weekly_hour, 0, 23),
        ("weekly_min", |r| r.weekly_min, 0, 59),
        ("monthly_mday", |r| r.monthly_mday, 1, 31),
        ("monthly_hour", |r| r.monthly_hour, 0, 23),
        ("monthly_min", |r| r.monthly_min, 0, 59),
        ("yearly_mon", |r| r.yearly_mon, 1, 12),
        ("yearly_mday", |r| r.yearly_mday, 1, 31),
        ("yearly_hour", |r| r.yearly_hour, 0, 23),
        ("yearly_min", |r| r.yearly_min, 0, 59),
        ("frequent_period", |r| r.frequent_period, 1, 1440),
    ]
}
