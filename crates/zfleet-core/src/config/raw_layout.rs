//! The disk layout keys of `fleet.toml` as written: `[layouts.NAME]` templates
//! and each host's `[hosts.NAME.pools.POOL]`. Like `raw`, these only reject
//! unknown keys and wrong types; `resolve::layouts` gives them meaning.

use indexmap::IndexMap;
use serde::Deserialize;

/// `[layouts.NAME]`: a pool layout shared by hosts.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawLayout {
    /// Start from another layout (built-in or defined here) and change it.
    pub from: Option<String>,
    /// `root` (ESP, the installed system's datasets) or `data`.
    pub kind: Option<String>,
    pub encryption: Option<String>,
    pub esp_size: Option<RawSize>,
    pub swap_size: Option<RawSize>,
    pub reservation: Option<RawSize>,
    /// LUKS mappings are named `<luks_name><N>` (the seed's `crypted1`, `stg1`).
    pub luks_name: Option<String>,
    pub luks_discards: Option<bool>,
    #[serde(default)]
    pub pool_options: IndexMap<String, RawValue>,
    #[serde(default)]
    pub root_options: IndexMap<String, RawValue>,
    #[serde(default)]
    pub datasets: IndexMap<String, RawDataset>,
}

/// One dataset of a layout, relative to the pool.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawDataset {
    /// Where the installed system mounts it (disko's `mountpoint`).
    pub mountpoint: Option<String>,
    /// ZFS properties set at creation and kept (disko's `options`).
    #[serde(default)]
    pub options: IndexMap<String, RawValue>,
    pub mount_options: Option<Vec<String>>,
    /// Take and hold an `@empty` snapshot right after creating it.
    pub blank: Option<bool>,
    /// Rolled back to its blank snapshot at every boot (impermanence's root).
    pub ephemeral: Option<bool>,
    /// Paths of the running system that are kept in this dataset.
    pub persist: Option<Vec<String>>,
    /// Mounted by the initrd, before the system starts (NixOS `neededForBoot`).
    pub needed_for_boot: Option<bool>,
    /// Only on hosts that are backup servers (the seed's `zstorage/backups`).
    pub server_only: Option<bool>,
}

/// `[hosts.NAME.pools.POOL]`: which layout a pool of this host gets, on which
/// disks, and what this host changes.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub layout: Option<String>,
    pub disks: Option<Vec<String>>,
    pub topology: Option<String>,
    pub encryption: Option<String>,
    pub esp_size: Option<RawSize>,
    pub swap_size: Option<RawSize>,
    pub reservation: Option<RawSize>,
    /// The LUKS passphrase or ZFS key; default: the host's `unlock.secret`.
    pub secret: Option<String>,
    #[serde(default)]
    pub pool_options: IndexMap<String, RawValue>,
    #[serde(default)]
    pub root_options: IndexMap<String, RawValue>,
    /// More datasets for this host, or changes to the layout's.
    #[serde(default)]
    pub datasets: IndexMap<String, RawDataset>,
    /// More persisted paths, by dataset: `persist = { persistSave = ["/home/me"] }`.
    #[serde(default)]
    pub persist: IndexMap<String, Vec<String>>,
}

/// A size: `"2GiB"`, `"512M"`, `"0"` or a number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(u64),
    Text(String),
}

/// A property value: TOML strings, integers and booleans are all accepted
/// (`ashift = 12`, `autotrim = "on"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl RawValue {
    pub fn text(&self) -> String {
        match self {
            RawValue::Text(s) => s.clone(),
            RawValue::Int(i) => i.to_string(),
            RawValue::Bool(true) => "on".to_string(),
            RawValue::Bool(false) => "off".to_string(),
        }
    }
}
