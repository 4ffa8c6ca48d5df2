//! Disk layouts as the rest of zfleet sees them: each host's pools with the
//! disks, topology, encryption, partitions and datasets they should have.
//! `layout::plan` compares this with what a host has.

use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;

use super::SecretRef;

/// The built-in layouts, as TOML in the fleet file's own syntax.
pub const BUILTIN_LAYOUTS: &str = include_str!("builtin_layouts.toml");

/// Where the ESP is mounted and how (the seed's `/boot`, `umask=0077`).
pub const ESP_MOUNTPOINT: &str = "/boot";
pub const ESP_MOUNT_OPTIONS: &[&str] = &["defaults", "umask=0077"];

/// The dataset that holds the pool's reservation (the seed's `reserved`).
pub const RESERVED_DATASET: &str = "reserved";

/// What a pool is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    /// The installed system: ESP on the first disk, the root file system,
    /// recreated by `disks apply --reinstall`.
    Root,
    /// Everything else (storage); kept across reinstalls.
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// One LUKS2 container per disk, the pool on the opened mappings.
    Luks,
    /// ZFS native encryption on the pool's root file system.
    Zfs,
    None,
}

impl Encryption {
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Luks => "luks",
            Encryption::Zfs => "zfs",
            Encryption::None => "none",
        }
    }
}

/// How the pool's disks are combined. Always named: two disks are never
/// silently a stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    Single,
    Stripe,
    Mirror,
    Raidz1,
    Raidz2,
    Raidz3,
}

impl Topology {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "single" => Topology::Single,
            "stripe" => Topology::Stripe,
            "mirror" => Topology::Mirror,
            "raidz" | "raidz1" => Topology::Raidz1,
            "raidz2" => Topology::Raidz2,
            "raidz3" => Topology::Raidz3,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Stripe => "stripe",
            Topology::Mirror => "mirror",
            Topology::Raidz1 => "raidz1",
            Topology::Raidz2 => "raidz2",
            Topology::Raidz3 => "raidz3",
        }
    }

    /// The vdev word for `zpool create`, if the topology has one.
    pub fn vdev_word(self) -> Option<&'static str> {
        match self {
            Topology::Single | Topology::Stripe => None,
            Topology::Mirror => Some("mirror"),
            Topology::Raidz1 => Some("raidz1"),
            Topology::Raidz2 => Some("raidz2"),
            Topology::Raidz3 => Some("raidz3"),
        }
    }

    /// Fewest disks the topology takes.
    pub fn min_disks(self) -> usize {
        match self {
            Topology::Single => 1,
            Topology::Stripe | Topology::Mirror | Topology::Raidz1 => 2,
            Topology::Raidz2 => 3,
            Topology::Raidz3 => 4,
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolved layout template (`[layouts.NAME]` or a built-in).
#[derive(Debug, Clone, Serialize)]
pub struct LayoutTemplate {
    pub name: String,
    pub builtin: bool,
    pub kind: LayoutKind,
    pub encryption: Encryption,
    /// Bytes; 0 for none. Only root layouts have an ESP.
    pub esp_size: u64,
    pub swap_size: u64,
    pub reservation: u64,
    pub luks_name: String,
    pub luks_discards: bool,
    pub pool_options: IndexMap<String, String>,
    pub root_options: IndexMap<String, String>,
    pub datasets: IndexMap<String, DatasetLayout>,
}

/// One dataset of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetLayout {
    /// Relative to the pool: `root`, `persist/save`.
    pub name: String,
    /// Where the installed system mounts it; `None`: not mounted.
    pub mountpoint: Option<String>,
    /// ZFS properties it is created with and kept at, including the ZFS
    /// `mountpoint` (`legacy`, or `mountpoint` when not given).
    pub options: IndexMap<String, String>,
    pub mount_options: Vec<String>,
    pub blank: bool,
    pub ephemeral: bool,
    pub persist: Vec<String>,
    pub needed_for_boot: bool,
    pub server_only: bool,
}

impl DatasetLayout {
    /// Mounted with `mount -t zfs` from fstab rather than by ZFS itself.
    pub fn legacy(&self) -> bool {
        self.options.get("mountpoint").map(String::as_str) == Some("legacy")
    }
}

/// A disk as fleet.toml names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskRef {
    pub path: String,
}

impl DiskRef {
    /// A regular file used as a vdev (labs, tests): no partitions, no LUKS.
    pub fn is_file(&self) -> bool {
        !self.path.starts_with("/dev/")
    }

    /// A kernel name (`/dev/sda`, `/dev/nvme0n1`) rather than a stable id:
    /// kernel names can change between boots.
    pub fn is_kernel_name(&self) -> bool {
        let Some(rest) = self.path.strip_prefix("/dev/") else {
            return false;
        };
        !rest.contains('/')
            && ["sd", "hd", "vd", "xvd", "nvme", "mmcblk"]
                .iter()
                .any(|p| rest.starts_with(p))
    }
}

/// One pool of one host: its template with the host's changes applied.
#[derive(Debug, Clone, Serialize)]
pub struct PoolLayout {
    pub pool: String,
    pub template: String,
    pub kind: LayoutKind,
    pub encryption: Encryption,
    pub topology: Topology,
    pub disks: Vec<DiskRef>,
    pub esp_size: u64,
    pub swap_size: u64,
    pub reservation: u64,
    pub luks_name: String,
    pub luks_discards: bool,
    pub secret: Option<SecretRef>,
    pub pool_options: IndexMap<String, String>,
    /// Options of the pool's root file system (`zpool create -O`), including
    /// the encryption properties for `encryption = "zfs"`.
    pub root_options: IndexMap<String, String>,
    /// Datasets below the pool, parents before children, `reserved` first.
    pub datasets: Vec<DatasetLayout>,
}

impl PoolLayout {
    /// The LUKS mapping of the `index`-th disk (0-based): `crypted1`, …
    pub fn luks_mapping(&self, index: usize) -> String {
        format!("{}{}", self.luks_name, index + 1)
    }

    pub fn dataset(&self, name: &str) -> Option<&DatasetLayout> {
        self.datasets.iter().find(|d| d.name == name)
    }

    pub fn ephemeral(&self) -> Option<&DatasetLayout> {
        self.datasets.iter().find(|d| d.ephemeral)
    }

    pub fn full_name(&self, dataset: &str) -> String {
        format!("{}/{}", self.pool, dataset)
    }

    /// The directories holding the pool's file vdevs, sorted and each once:
    /// what `zpool import -d` must search, since file vdevs are not found by
    /// the default device scan.
    pub fn file_vdev_dirs(&self) -> Vec<String> {
        self.disks
            .iter()
            .filter(|d| d.is_file())
            .filter_map(|d| d.path.rsplit_once('/').map(|(dir, _)| dir.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// A host's disks: its pools, and the hostid its pools are created under.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostLayout {
    /// 8 hex digits (the seed's `networking.hostId`).
    pub host_id: Option<String>,
    pub pools: Vec<PoolLayout>,
}

impl HostLayout {
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    pub fn root_pool(&self) -> Option<&PoolLayout> {
        self.pools.iter().find(|p| p.kind == LayoutKind::Root)
    }

    pub fn pool(&self, name: &str) -> Option<&PoolLayout> {
        self.pools.iter().find(|p| p.pool == name)
    }
}

/// Properties fixed when a dataset is created (`PROP_ONETIME` in OpenZFS):
/// a difference can only be reported.
pub const ONETIME_PROPERTIES: &[&str] = &[
    "encryption",
    "casesensitivity",
    "utf8only",
    "normalization",
    "volblocksize",
    "pbkdf2iters",
    "keyformat",
];

/// Pool properties only `zpool create` sets for the pool's vdevs.
pub const CREATE_ONLY_POOL_PROPERTIES: &[&str] = &["ashift"];

/// Dataset properties whose values are sizes, compared as numbers of bytes.
pub const SIZE_PROPERTIES: &[&str] = &[
    "reservation",
    "refreservation",
    "quota",
    "refquota",
    "recordsize",
    "volsize",
    "special_small_blocks",
];

/// `"2GiB"`, `"512M"`, `"1.5T"`, `"0"`, `"4096"` → bytes. Units are powers of
/// 1024 whether written `G`, `GB` or `GiB`, as ZFS and disko read them.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        _ => {
            return Err(format!(
                "`{}` is not a size; write it like \"2GiB\", \"512M\" or \"0\"",
                s.escape_default()
            ))
        }
    };
    let bad = || {
        format!(
            "`{}` is not a size; write it like \"2GiB\", \"512M\" or \"0\"",
            s.escape_default()
        )
    };
    if num.is_empty() {
        return Err(bad());
    }
    if let Some((int, frac)) = num.split_once('.') {
        let int: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        if frac.is_empty() || frac.contains('.') || shift == 0 {
            return Err(bad());
        }
        let frac_val: u64 = frac.parse().map_err(|_| bad())?;
        let scale = 10u64.checked_pow(frac.len() as u32).ok_or_else(bad)?;
        let unit = 1u64 << shift;
        let whole = int.checked_mul(unit).ok_or_else(bad)?;
        let part = (frac_val as u128 * unit as u128 / scale as u128) as u64;
        return whole.checked_add(part).ok_or_else(bad);
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// Bytes in the largest unit that divides them: `2G`, `512M`, `4096`.
/// The form sfdisk, disko and ZFS all read.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        let u = 1u64 << shift;
        if bytes >= u && bytes % u == 0 {
            return format!("{}{unit}", bytes / u);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2048M"), Ok(2 << 30));
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("1.5T"), Ok(3 << 39));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 8 GB"), Ok(8 << 30));
        assert!(parse_size("2X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(2048 << 20), "2G");
        assert_eq!(format_size(100 << 20), "100M");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn kernel_names_and_files() {
        let d = |p: &str| DiskRef { path: p.into() };
        assert!(d("/dev/sda").is_kernel_name());
        assert!(d("/dev/nvme0n1").is_kernel_name());
        assert!(d("/dev/vdb").is_kernel_name());
        assert!(!d("/dev/disk/by-id/nvme-Samsung_SSD_970").is_kernel_name());
        assert!(!d("/dev/mapper/x").is_kernel_name());
        assert!(d("/var/lib/lab/disk1.img").is_file());
        assert!(!d("/dev/sda").is_file());
    }
}
