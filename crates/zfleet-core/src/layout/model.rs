//! What a host has: block devices, signatures on them, pools (imported or
//! waiting to be imported), datasets and their blank snapshots, mounts. Plain
//! values filled by `observe` and read by the planners; tests build them from
//! captured output.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    /// Every block device `lsblk` lists, parents before children.
    pub devices: Vec<BlockDevice>,
    /// Symlinks under /dev/disk and /dev/mapper → the device node they name.
    pub links: BTreeMap<String, String>,
    /// Signatures `wipefs --no-act` finds on a device (by device node).
    pub signatures: BTreeMap<String, Vec<Signature>>,
    /// File vdevs named in the layout: path → size, for those that exist.
    pub files: BTreeMap<String, u64>,
    pub imported: Vec<PoolState>,
    /// Pools `zpool import` would import.
    pub importable: Vec<Importable>,
    /// Properties of the imported planned pools (`zpool get`).
    pub pool_props: BTreeMap<String, BTreeMap<String, Prop>>,
    /// File systems and volumes of the imported planned pools.
    pub datasets: BTreeMap<String, BTreeMap<String, Prop>>,
    /// Blank snapshots (`DS@empty`) that exist.
    pub blanks: BTreeMap<String, Blank>,
    pub mounts: Vec<Mount>,
    /// `hostid` of the running system.
    pub hostid: Option<String>,
    /// OpenZFS (`zfs create -u`, `zfs diff`, `zfs holds`, `zpool status -P`)
    /// rather than the old dialect of zfs-fuse.
    pub modern: bool,
    /// Files the mount step writes, as they are now (absent: not there).
    pub facts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockDevice {
    pub path: String,
    /// `disk`, `part`, `crypt`, `loop`, …
    pub kind: String,
    pub size: u64,
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub partlabel: Option<String>,
    pub parttype: Option<String>,
    pub pttype: Option<String>,
    pub mountpoint: Option<String>,
    pub parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// `gpt`, `PMBR`, `zfs_member`, `crypto_LUKS`, `vfat`, `ext4`, …
    pub kind: String,
    pub offset: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prop {
    pub value: String,
    pub source: String,
}

/// An imported pool and its vdev tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolState {
    pub name: String,
    pub state: String,
    pub vdevs: Vec<Vdev>,
}

/// A pool `zpool import` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Importable {
    pub name: String,
    pub id: String,
    pub state: String,
    pub status: Option<String>,
    pub action: Option<String>,
    /// The pool was last used by another system and not exported: importing
    /// takes `-f` (disko's "potentially active pool").
    pub other_system: bool,
    pub vdevs: Vec<Vdev>,
}

/// One line of a `config:` tree: a group (`mirror-0`) or a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vdev {
    pub name: String,
    pub state: String,
    pub children: Vec<Vdev>,
}

impl Vdev {
    /// `mirror-0`, `raidz1-0`, … rather than a device.
    pub fn is_group(&self) -> bool {
        !self.children.is_empty()
            || ["mirror-", "raidz", "draid", "replacing-", "spare-"]
                .iter()
                .any(|p| self.name.starts_with(p))
    }

    /// The devices at the leaves.
    pub fn leaves(&self) -> Vec<&str> {
        if self.children.is_empty() {
            vec![self.name.as_str()]
        } else {
            self.children.iter().flat_map(Vdev::leaves).collect()
        }
    }
}

impl PoolState {
    pub fn leaves(&self) -> Vec<&str> {
        self.vdevs.iter().flat_map(Vdev::leaves).collect()
    }
}

impl Importable {
    pub fn leaves(&self) -> Vec<&str> {
        self.vdevs.iter().flat_map(Vdev::leaves).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blank {
    pub guid: String,
    pub userrefs: u64,
    /// Hold tags, where the dialect lists them.
    pub holds: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
}

impl Observed {
    /// The device node a path names: itself, or where its symlink points.
    pub fn resolve(&self, path: &str) -> String {
        let mut p = path.to_string();
        // Links to links (by-id → ../../dm-0) resolve in one or two steps.
        for _ in 0..4 {
            match self.links.get(&p) {
                Some(t) if *t != p => p = t.clone(),
                _ => break,
            }
        }
        p
    }

    /// lsblk names dm devices `/dev/mapper/NAME` and the rest by node; both
    /// sides are compared as nodes.
    pub fn device(&self, path: &str) -> Option<&BlockDevice> {
        let node = self.resolve(path);
        self.devices
            .iter()
            .find(|d| d.path == path || self.resolve(&d.path) == node)
    }

    pub fn children(&self, parent: &str) -> Vec<&BlockDevice> {
        let node = self.resolve(parent);
        self.devices
            .iter()
            .filter(|d| {
                d.parent
                    .as_deref()
                    .is_some_and(|p| p == parent || self.resolve(p) == node)
            })
            .collect()
    }

    pub fn signatures_of(&self, path: &str) -> &[Signature] {
        let node = self.resolve(path);
        self.signatures
            .get(&node)
            .or_else(|| self.signatures.get(path))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn imported(&self, pool: &str) -> Option<&PoolState> {
        self.imported.iter().find(|p| p.name == pool)
    }

    pub fn importable(&self, pool: &str) -> Vec<&Importable> {
        self.importable.iter().filter(|p| p.name == pool).collect()
    }

    /// Whether `path` (any name of it) is a leaf of an imported pool: which pool.
    pub fn pool_of(&self, path: &str) -> Option<&str> {
        let node = self.resolve(path);
        self.imported.iter().find_map(|p| {
            p.leaves()
                .iter()
                .any(|l| self.same_device(l, &node))
                .then_some(p.name.as_str())
        })
    }

    /// `zpool status` names a leaf by path, or by a short name (`vdb2`,
    /// `crypted1`) in `zpool import`; both are compared by device node.
    pub fn same_device(&self, leaf: &str, node: &str) -> bool {
        if leaf.starts_with('/') {
            return self.resolve(leaf) == node;
        }
        let by_dev = format!("/dev/{leaf}");
        let by_mapper = format!("/dev/mapper/{leaf}");
        let by_id = format!("/dev/disk/by-id/{leaf}");
        [by_dev, by_mapper, by_id]
            .iter()
            .any(|p| self.resolve(p) == node)
    }

    pub fn mounted_at(&self, target: &str) -> Option<&Mount> {
        self.mounts.iter().rev().find(|m| m.target == target)
    }

    pub fn mounts_of(&self, source: &str) -> Vec<&Mount> {
        self.mounts.iter().filter(|m| m.source == source).collect()
    }
}
