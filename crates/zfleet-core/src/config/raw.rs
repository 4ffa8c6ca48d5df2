//! `fleet.toml` as written: serde structs that reject unknown keys. Meaning
//! (defaults, references between sections, checks across hosts) is given in
//! `resolve`, so that every rule lives in one place and reports a key path.

use indexmap::IndexMap;
use serde::Deserialize;

use super::extras::{HookCommand, RawAge, RawTimeout};
use super::policy::Period;
use super::raw_daemon::{RawDaemon, RawNotify};
use crate::zfs::DatasetName;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    #[serde(default)]
    pub fleet: RawFleetSettings,
    #[serde(default)]
    pub ssh: RawSsh,
    #[serde(default)]
    pub templates: IndexMap<String, RawPolicy>,
    /// Dataset policies every host gets; a host's own entry for the same dataset wins.
    #[serde(default)]
    pub snapshots: IndexMap<String, RawPolicy>,
    #[serde(default)]
    pub hosts: IndexMap<String, RawHost>,
    /// `zfleet daemon`'s settings (see `raw_daemon`).
    pub daemon: Option<RawDaemon>,
    /// Where the daemon sends notifications (see `raw_daemon`).
    #[serde(default)]
    pub notify: IndexMap<String, RawNotify>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleetSettings {
    pub backup_user: Option<String>,
    pub backup_identity: Option<String>,
    pub state_dir: Option<String>,
    /// The zfleet program on the other hosts (`zfleet status` runs it there).
    pub zfleet_path: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<String>,
    pub known_hosts: Option<String>,
    pub connect_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub address: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<String>,
    pub known_hosts: Option<String>,
    pub connect_timeout: Option<String>,
    pub backup: Option<RawClient>,
    pub server: Option<RawServer>,
    #[serde(default)]
    pub snapshots: IndexMap<String, RawPolicy>,
    pub unlock: Option<RawUnlock>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub enabled: Option<bool>,
    pub datasets: Option<Vec<DatasetName>>,
    pub user: Option<String>,
    pub push: Option<bool>,
    pub public_key: Option<String>,
    /// A push client's schedule, and its lateness threshold on every server.
    pub schedule: Option<String>,
    pub jitter: Option<String>,
    pub late_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub target_root: DatasetName,
    pub retention: Option<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub extra_clients: Vec<RawExtraClient>,
    pub parallel: Option<u32>,
    pub preserve_properties: Option<Vec<String>>,
    pub sync_snapshot: Option<bool>,
    pub compress: Option<String>,
    pub public_key: Option<String>,
    /// When the daemon runs this server's backups.
    pub schedule: Option<String>,
    pub jitter: Option<String>,
    pub late_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtraClient {
    pub name: String,
    pub address: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity: Option<String>,
    pub known_hosts: Option<String>,
    pub datasets: Option<Vec<DatasetName>>,
}

/// One section of sanoid's vocabulary. Templates and dataset entries share it;
/// `resolve` refuses the keys that make sense only on a dataset.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub use_template: Option<Vec<String>>,
    pub recursive: Option<RawRecursive>,
    pub process_children_only: Option<bool>,
    pub autosnap: Option<bool>,
    pub autoprune: Option<bool>,
    pub frequently: Option<u32>,
    pub frequent_period: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub hourly_min: Option<u32>,
    pub daily_hour: Option<u32>,
    pub daily_min: Option<u32>,
    pub weekly_wday: Option<u32>,
    pub weekly_hour: Option<u32>,
    pub weekly_min: Option<u32>,
    pub monthly_mday: Option<u32>,
    pub monthly_hour: Option<u32>,
    pub monthly_min: Option<u32>,
    pub yearly_mon: Option<u32>,
    pub yearly_mday: Option<u32>,
    pub yearly_hour: Option<u32>,
    pub yearly_min: Option<u32>,
    // Hooks, as in sanoid.
    pub pre_snapshot_script: Option<HookCommand>,
    pub post_snapshot_script: Option<HookCommand>,
    pub pre_pruning_script: Option<HookCommand>,
    pub pruning_script: Option<HookCommand>,
    pub script_timeout: Option<RawTimeout>,
    pub no_inconsistent_snapshot: Option<bool>,
    pub force_post_snapshot_script: Option<bool>,
    // Monitoring, as in sanoid.
    pub monitor: Option<bool>,
    pub monitor_dont_warn: Option<bool>,
    pub monitor_dont_crit: Option<bool>,
    pub frequently_warn: Option<RawAge>,
    pub frequently_crit: Option<RawAge>,
    pub hourly_warn: Option<RawAge>,
    pub hourly_crit: Option<RawAge>,
    pub daily_warn: Option<RawAge>,
    pub daily_crit: Option<RawAge>,
    pub weekly_warn: Option<RawAge>,
    pub weekly_crit: Option<RawAge>,
    pub monthly_warn: Option<RawAge>,
    pub monthly_crit: Option<RawAge>,
    pub yearly_warn: Option<RawAge>,
    pub yearly_crit: Option<RawAge>,
    pub capacity_warn: Option<u32>,
    pub capacity_crit: Option<u32>,
}

impl RawPolicy {
    /// The `<period>_warn` and `<period>_crit` keys, by period.
    pub fn age_limits(&self) -> [(Period, &'static str, &Option<RawAge>); 12] {
        [
            (Period::Frequently, "frequently_warn", &self.frequently_warn),
            (Period::Frequently, "frequently_crit", &self.frequently_crit),
            (Period::Hourly, "hourly_warn", &self.hourly_warn),
            (Period::Hourly, "hourly_crit", &self.hourly_crit),
            (Period::Daily, "daily_warn", &self.daily_warn),
            (Period::Daily, "daily_crit", &self.daily_crit),
            (Period::Weekly, "weekly_warn", &self.weekly_warn),
            (Period::Weekly, "weekly_crit", &self.weekly_crit),
            (Period::Monthly, "monthly_warn", &self.monthly_warn),
            (Period::Monthly, "monthly_crit", &self.monthly_crit),
            (Period::Yearly, "yearly_warn", &self.yearly_warn),
            (Period::Yearly, "yearly_crit", &self.yearly_crit),
        ]
    }
}

/// `recursive = true | false | "zfs"`, as in sanoid.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawRecursive {
    Bool(bool),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnlock {
    pub method: String,
    pub secret: String,
    pub initrd_address: Option<String>,
    pub initrd_port: Option<u16>,
    pub initrd_user: Option<String>,
    pub initrd_known_hosts: Option<String>,
    pub initrd_command: Option<String>,
    pub retries: Option<u32>,
    pub encryption_roots: Option<Vec<DatasetName>>,
    pub services: Option<Vec<String>>,
    pub timeout: Option<String>,
}
