//! `fleet.toml` as written: serde structs that reject unknown keys. Meaning
//! (defaults, references between sections, checks across hosts) is given in
//! `resolve`, so that every rule lives in one place and reports a key path.

use indexmap::IndexMap;
use serde::Deserialize;

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleetSettings {
    pub backup_user: Option<String>,
    pub backup_identity: Option<String>,
    pub state_dir: Option<String>,
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
