//! What a lab consists of: hosts, their pools and datasets. Plain values with
//! builder methods; [`LabSpec::seed`] is the fleet of the seed article.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{bail, Result};

/// Default size of a pool's sparse file vdev. Sparse, so only written blocks cost
/// disk; zfs-fuse refuses vdevs under 64 MiB.
pub const DEFAULT_VDEV_SIZE: u64 = 256 << 20;

/// Where lab directories live unless `ZFLEET_LAB_ROOT` or [`LabSpec::root`] says
/// otherwise.
pub const DEFAULT_ROOT: &str = "/tmp/zfleet-lab";

/// A whole lab: a name (made unique per start) and its hosts.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// Prefix of the lab's directory name; the pid and a counter are appended.
    pub name: String,
    pub hosts: Vec<HostSpec>,
    /// Directory holding all labs; `None` means `$ZFLEET_LAB_ROOT` or [`DEFAULT_ROOT`].
    pub root: Option<PathBuf>,
}

/// One simulated host.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// Host name: hostname inside, name in `/etc/hosts` and `known_hosts`.
    pub name: String,
    pub pools: Vec<PoolSpec>,
    /// Run the host's zfs-fuse and commands under libfaketime so tests can set
    /// its clock with [`Host::set_time`](super::Host::set_time).
    pub faketime: bool,
    /// zfs-fuse's ARC limit in MiB (`--max-arc-size`, 16 at least); `None`
    /// leaves zfs-fuse's default, which lets each daemon grow past 100 MiB.
    pub max_arc_mib: Option<u32>,
}

/// A pool on one sparse file vdev.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    pub name: String,
    pub vdev_size: u64,
    /// File system properties of the pool's root dataset (`zpool create -O`).
    /// Without a `mountpoint` the pool mounts at `/<name>` under the host's altroot.
    pub properties: Vec<(String, String)>,
    /// Created in order with `zfs create -p`.
    pub datasets: Vec<DatasetSpec>,
}

/// A dataset to create, with properties and snapshots to take right after.
#[derive(Clone, Debug)]
pub struct DatasetSpec {
    /// Full name, starting with the pool's name.
    pub name: String,
    pub properties: Vec<(String, String)>,
    /// Snapshot names (without `dataset@`), taken after all datasets exist.
    pub snapshots: Vec<String>,
}

impl LabSpec {
    pub fn new(name: impl Into<String>) -> Self {
        LabSpec {
            name: name.into(),
            hosts: Vec::new(),
            root: None,
        }
    }

    pub fn host(mut self, host: HostSpec) -> Self {
        self.hosts.push(host);
        self
    }

    /// Turns libfaketime on or off for every host added so far.
    pub fn faketime(mut self, on: bool) -> Self {
        for h in &mut self.hosts {
            h.faketime = on;
        }
        self
    }

    /// Sets the vdev size of every pool added so far.
    pub fn vdev_size(mut self, bytes: u64) -> Self {
        for p in self.hosts.iter_mut().flat_map(|h| h.pools.iter_mut()) {
            p.vdev_size = bytes;
        }
        self
    }

    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// The seed article's fleet: `client1` and `client2` with `zroot/persist` and
    /// `zroot/persistSave`, and the backup server `backup` with
    /// `zstorage/backups`. Faketime is on for all three.
    pub fn seed() -> Self {
        LabSpec::new("seed")
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_client("client2"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(true)
    }

    /// [`LabSpec::seed`] with the clients' full disko layout: also `zroot/root` and
    /// `zroot/nix`, and an `@empty` snapshot of each client dataset.
    pub fn seed_full() -> Self {
        LabSpec::new("seedfull")
            .host(HostSpec::seed_client_full("client1"))
            .host(HostSpec::seed_client_full("client2"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(true)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !is_simple_name(&self.name, 40) {
            bail!(
                "lab name `{}` must be 1-40 characters of a-z, 0-9 and `-`, starting with a letter",
                self.name
            );
        }
        if self.hosts.is_empty() {
            bail!("lab `{}` has no hosts", self.name);
        }
        if self.hosts.len() > MAX_HOSTS {
            bail!(
                "a lab holds at most {MAX_HOSTS} hosts, not {}",
                self.hosts.len()
            );
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if self.hosts[..i].iter().any(|o| o.name == h.name) {
                bail!("host `{}` appears twice", h.name);
            }
            h.validate()?;
        }
        Ok(())
    }
}

/// Addresses run from `10.231.0.10` upwards inside the lab's own switch.
pub(crate) const MAX_HOSTS: usize = 200;

pub(crate) fn host_addr(index: usize) -> Ipv4Addr {
    // validate() caps the index, so the octet cannot overflow.
    Ipv4Addr::new(10, 231, 0, (10 + index.min(MAX_HOSTS)) as u8)
}

pub(crate) const PREFIX_LEN: u8 = 24;

impl HostSpec {
    pub fn new(name: impl Into<String>) -> Self {
        HostSpec {
            name: name.into(),
            pools: Vec::new(),
            faketime: false,
            max_arc_mib: None,
        }
    }

    /// Caps zfs-fuse's ARC, for labs of many hosts.
    pub fn max_arc_mib(mut self, mib: u32) -> Self {
        self.max_arc_mib = Some(mib.max(16));
        self
    }

    pub fn pool(mut self, pool: PoolSpec) -> Self {
        self.pools.push(pool);
        self
    }

    pub fn faketime(mut self, on: bool) -> Self {
        self.faketime = on;
        self
    }

    /// A client as in the seed: pool `zroot` (not mounted itself, like the seed's
    /// `mountpoint=none`) with `zroot/persist` at `/persist` and
    /// `zroot/persistSave` at `/persist/save`.
    pub fn seed_client(name: impl Into<String>) -> Self {
        HostSpec::new(name).pool(
            seed_zroot()
                .dataset(DatasetSpec::new("zroot/persist").property("mountpoint", "/persist"))
                .dataset(
                    DatasetSpec::new("zroot/persistSave").property("mountpoint", "/persist/save"),
                ),
        )
    }

    /// A client with the seed's whole root pool: `zroot/root` and `zroot/nix` too
    /// (not mounted: the lab does not boot from them), each dataset with `@empty`.
    pub fn seed_client_full(name: impl Into<String>) -> Self {
        HostSpec::new(name).pool(
            seed_zroot()
                .dataset(
                    DatasetSpec::new("zroot/root")
                        .property("mountpoint", "none")
                        .snapshot("empty"),
                )
                .dataset(
                    DatasetSpec::new("zroot/nix")
                        .property("mountpoint", "none")
                        .property("atime", "off")
                        .snapshot("empty"),
                )
                .dataset(
                    DatasetSpec::new("zroot/persist")
                        .property("mountpoint", "/persist")
                        .snapshot("empty"),
                )
                .dataset(
                    DatasetSpec::new("zroot/persistSave")
                        .property("mountpoint", "/persist/save")
                        .snapshot("empty"),
                ),
        )
    }

    /// A backup server as in the seed: pool `zstorage` with `zstorage/backups`.
    pub fn seed_backup(name: impl Into<String>) -> Self {
        HostSpec::new(name)
            .pool(PoolSpec::new("zstorage").dataset(DatasetSpec::new("zstorage/backups")))
    }

    fn validate(&self) -> Result<()> {
        // Also a directory name and a word in /etc/hosts; "switch" and the lab's
        // own files live beside the host directories.
        if !is_simple_name(&self.name, 30) || RESERVED.contains(&self.name.as_str()) {
            bail!(
                "host name `{}` must be 1-30 characters of a-z, 0-9 and `-`, starting with a letter, and not one of {RESERVED:?}",
                self.name
            );
        }
        for (i, p) in self.pools.iter().enumerate() {
            if self.pools[..i].iter().any(|o| o.name == p.name) {
                bail!("host `{}`: pool `{}` appears twice", self.name, p.name);
            }
            p.validate()
                .map_err(|e| e.context(format!("host `{}`", self.name)))?;
        }
        Ok(())
    }
}

const RESERVED: &[&str] = &["switch"];

fn seed_zroot() -> PoolSpec {
    // zfs-fuse (pool version 23) knows neither zstd nor edonr; the rest of the
    // seed's rootFsOptions that matter to backups are kept.
    PoolSpec::new("zroot")
        .property("mountpoint", "none")
        .property("canmount", "off")
        .property("compression", "on")
        .property("com.sun:auto-snapshot", "false")
}

impl PoolSpec {
    pub fn new(name: impl Into<String>) -> Self {
        PoolSpec {
            name: name.into(),
            vdev_size: DEFAULT_VDEV_SIZE,
            properties: Vec::new(),
            datasets: Vec::new(),
        }
    }

    pub fn vdev_size(mut self, bytes: u64) -> Self {
        self.vdev_size = bytes;
        self
    }

    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    pub fn dataset(mut self, dataset: DatasetSpec) -> Self {
        self.datasets.push(dataset);
        self
    }

    pub(crate) fn mountpoint(&self) -> String {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == "mountpoint")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("/{}", self.name))
    }

    fn validate(&self) -> Result<()> {
        if !is_zfs_name(&self.name) || self.name.contains('/') {
            bail!("pool name `{}` is not a plain pool name", self.name);
        }
        if self.vdev_size < 64 << 20 {
            bail!(
                "pool `{}`: vdev size {} is below zfs-fuse's minimum of 64 MiB",
                self.name,
                self.vdev_size
            );
        }
        for d in &self.datasets {
            if !is_zfs_name(&d.name) || !d.name.starts_with(&format!("{}/", self.name)) {
                bail!(
                    "dataset `{}` must be a plain name under pool `{}`",
                    d.name,
                    self.name
                );
            }
            if let Some(s) = d
                .snapshots
                .iter()
                .find(|s| !is_zfs_name(s) || s.contains('/'))
            {
                bail!("dataset `{}`: bad snapshot name `{s}`", d.name);
            }
        }
        Ok(())
    }
}

impl DatasetSpec {
    pub fn new(name: impl Into<String>) -> Self {
        DatasetSpec {
            name: name.into(),
            properties: Vec::new(),
            snapshots: Vec::new(),
        }
    }

    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    pub fn snapshot(mut self, name: impl Into<String>) -> Self {
        self.snapshots.push(name.into());
        self
    }
}

fn is_simple_name(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Conservative: what zfs accepts minus anything a shell or a log would mangle.
fn is_zfs_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 200
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_valid_and_has_the_seed_layout() {
        let spec = LabSpec::seed();
        spec.validate().unwrap();
        let names: Vec<_> = spec.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["client1", "client2", "backup"]);
        let client = &spec.hosts[0].pools[0];
        assert_eq!(client.name, "zroot");
        let ds: Vec<_> = client.datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(ds, ["zroot/persist", "zroot/persistSave"]);
        assert_eq!(spec.hosts[2].pools[0].datasets[0].name, "zstorage/backups");
        assert!(spec.hosts.iter().all(|h| h.faketime));
        LabSpec::seed_full().validate().unwrap();
    }

    #[test]
    fn bad_specs_are_refused() {
        let dup = LabSpec::new("x")
            .host(HostSpec::new("a"))
            .host(HostSpec::new("a"));
        assert!(dup.validate().is_err());
        assert!(LabSpec::new("x").validate().is_err(), "no hosts");
        assert!(LabSpec::new("x")
            .host(HostSpec::new("Bad"))
            .validate()
            .is_err());
        assert!(LabSpec::new("x")
            .host(HostSpec::new("switch"))
            .validate()
            .is_err());
        let outside = LabSpec::new("x")
            .host(HostSpec::new("a").pool(PoolSpec::new("p").dataset(DatasetSpec::new("q/x"))));
        assert!(outside.validate().is_err());
        let small =
            LabSpec::new("x").host(HostSpec::new("a").pool(PoolSpec::new("p").vdev_size(1 << 20)));
        assert!(small.validate().is_err());
        let semicolon = LabSpec::new("x")
            .host(HostSpec::new("a").pool(PoolSpec::new("p").dataset(DatasetSpec::new("p/a;b"))));
        assert!(semicolon.validate().is_err());
    }

    #[test]
    fn pools_mount_under_their_name_unless_told() {
        assert_eq!(PoolSpec::new("tank").mountpoint(), "/tank");
        assert_eq!(seed_zroot().mountpoint(), "none");
        assert_eq!(host_addr(0), Ipv4Addr::new(10, 231, 0, 10));
    }
}
