//! The layout planner: from a host's layout (fleet.toml) and what the host has
//! (`Observed`) to the steps that make them agree, each with its reason. Pure:
//! no I/O, no clock.
//!
//! Incremental: what exists and matches is kept, what is missing is created, a
//! property that differs is set (or reported when only creation sets it), and a
//! disk added to a single-disk pool is attached as a mirror. Nothing outside
//! the plan is touched: a disk that holds a pool, a file system, a partition
//! table or a LUKS header the layout does not expect is refused by name unless
//! `--wipe DISK` names it, and a pool that the plan keeps (a storage pool on a
//! reinstall) is imported and adopted, never recreated. `--reinstall`
//! recreates the root pool and nothing else.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Observed, Prop, Vdev};
use crate::config::{
    DatasetLayout, DiskRef, Encryption, HostLayout, LayoutKind, PoolLayout, SecretRef, Topology,
    CREATE_ONLY_POOL_PROPERTIES, ONETIME_PROPERTIES, SIZE_PROPERTIES,
};

/// The tag of the hold on every blank snapshot zfleet takes.
pub const BLANK_HOLD: &str = "zfleet-blank";
/// The user property recording the blank snapshot's guid at layout time.
pub const BLANK_PROPERTY: &str = "zfleet:blank";
/// The name of blank snapshots (the seed's).
pub const BLANK_SNAPSHOT: &str = "empty";
/// A dataset that references more than this is not blank any more; zfleet
/// will not take its `@empty` after the fact.
pub const BLANK_LIMIT: u64 = 1 << 20;

/// GPT partition types.
pub const TYPE_ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
pub const TYPE_SWAP: &str = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f";
pub const TYPE_LUKS: &str = "ca7d7ccb-63ed-4c53-861c-1742536059cc";
pub const TYPE_ZFS: &str = "6a898cc3-1dd2-11b2-99a6-080020736631";

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Disks whose contents may be destroyed (as written in fleet.toml, or a
    /// device node).
    pub wipe: Vec<String>,
    /// Recreate the root pool's layout; keep every other pool.
    pub reinstall: bool,
    /// Pools that may be imported with `-f` although another system used them last.
    pub force_import: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub host: String,
    pub disks: Vec<DiskSummary>,
    pub steps: Vec<Step>,
    /// Reasons nothing may be done: when there is one, `apply` runs nothing.
    pub refusals: Vec<Refusal>,
    /// Differences zfleet reports but does not change.
    pub notes: Vec<Note>,
    /// Pools whose contents can only be compared once this plan has run
    /// (imported or unlocked by it): `apply` observes and plans again.
    pub rescan: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.steps.len()
    }
    pub fn is_refused(&self) -> bool {
        !self.refusals.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskSummary {
    pub pool: String,
    pub disk: String,
    /// The device node it resolves to.
    pub device: Option<String>,
    pub size: Option<u64>,
    /// `missing`, `empty`, `laid out`, `to wipe`, `foreign`.
    pub state: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// The disk, pool or dataset it is about.
    pub subject: String,
    pub problem: String,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub subject: String,
    pub message: String,
}

/// One partition of a disk's GPT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionSpec {
    pub number: usize,
    pub name: String,
    pub type_guid: String,
    /// Bytes; `None` takes the rest of the disk.
    pub size: Option<u64>,
    pub role: PartRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartRole {
    Esp,
    Swap,
    Data,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `zgenhostid -f ID`: pools record the hostid of the system that creates them.
    SetHostId {
        id: String,
    },
    /// Only with `--reinstall`, only the root pool.
    DestroyPool {
        pool: String,
    },
    CloseLuks {
        mapping: String,
    },
    /// Removes every signature from a disk and its partitions (`--wipe`,
    /// `--reinstall`): ZFS labels, LUKS headers, file systems, the GPT.
    Wipe {
        disk: String,
        partitions: Vec<String>,
        zfs_labels: Vec<String>,
    },
    Partition {
        disk: String,
        partitions: Vec<PartitionSpec>,
    },
    FormatEsp {
        device: String,
    },
    Mkswap {
        device: String,
    },
    LuksFormat {
        device: String,
        label: String,
        secret: SecretRef,
    },
    LuksOpen {
        device: String,
        mapping: String,
        discards: bool,
        secret: SecretRef,
    },
    ImportPool {
        pool: String,
        force: bool,
        /// Directories to search (file vdevs); empty: the default scan.
        dirs: Vec<String>,
    },
    CreatePool {
        pool: String,
        topology: Topology,
        vdevs: Vec<String>,
        pool_options: Vec<(String, String)>,
        root_options: Vec<(String, String)>,
        /// The ZFS key goes to `zpool create` on stdin.
        secret: Option<SecretRef>,
    },
    /// `zpool attach POOL EXISTING NEW`: a single disk becomes a mirror.
    Attach {
        pool: String,
        existing: String,
        device: String,
    },
    LoadKey {
        dataset: String,
        secret: SecretRef,
    },
    SetPoolProperty {
        pool: String,
        property: String,
        value: String,
        was: String,
    },
    CreateDataset {
        dataset: String,
        options: Vec<(String, String)>,
    },
    SetProperty {
        dataset: String,
        property: String,
        value: String,
        was: String,
    },
    Snapshot {
        snapshot: String,
    },
    Hold {
        snapshot: String,
        tag: String,
    },
    /// Records the blank snapshot's guid in `zfleet:blank`, which `root
    /// rollback` checks before rolling back.
    RecordBlank {
        dataset: String,
        snapshot: String,
    },
    /// `disks mount`: a file system at its place below the installer's root.
    Mount {
        source: String,
        target: String,
        fstype: String,
        options: Vec<String>,
    },
    /// `disks mount`: one of the facts for the installed system.
    WriteFile {
        path: String,
        content: String,
    },
    /// `disks mount`: the initrd's own ssh host key, made on the host.
    GenerateHostKey {
        path: String,
        comment: String,
    },
    /// `disks mount`: that key pinned in this machine's `initrd_known_hosts`
    /// file, so `zfleet unlock` trusts that initrd and no other.
    PinHostKey {
        public_key: String,
        pin_file: String,
        host: String,
        address: String,
        port: u16,
    },
}

impl Action {
    /// One line for people.
    pub fn summary(&self) -> String {
        match self {
            Action::SetHostId { id } => format!("set the hostid to {id}"),
            Action::DestroyPool { pool } => format!("destroy pool {pool}"),
            Action::CloseLuks { mapping } => format!("close LUKS mapping {mapping}"),
            Action::Wipe { disk, .. } => format!("wipe {disk}"),
            Action::Partition { disk, partitions } => format!(
                "partition {disk}: GPT, {}",
                partitions
                    .iter()
                    .map(|p| format!(
                        "{} {}",
                        p.name,
                        p.size
                            .map(crate::config::format_size)
                            .unwrap_or_else(|| "rest".into())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::FormatEsp { device } => format!("format {device} as FAT32 (ESP)"),
            Action::Mkswap { device } => format!("make swap on {device}"),
            Action::LuksFormat { device, label, .. } => {
                format!("luksFormat {device} (LUKS2, label {label})")
            }
            Action::LuksOpen {
                device, mapping, ..
            } => format!("open {device} as /dev/mapper/{mapping}"),
            Action::ImportPool { pool, force, .. } => {
                format!("import pool {pool}{}", if *force { " (-f)" } else { "" })
            }
            Action::CreatePool {
                pool,
                topology,
                vdevs,
                ..
            } => format!("create pool {pool} ({topology}: {})", vdevs.join(" ")),
            Action::Attach {
                pool,
                existing,
                device,
            } => format!("attach {device} to {existing} in {pool} (mirror)"),
            Action::LoadKey { dataset, .. } => format!("load the key of {dataset}"),
            Action::SetPoolProperty {
                pool,
                property,
                value,
                was,
            } => format!("set {property}={value} on pool {pool} (was {was})"),
            Action::CreateDataset { dataset, .. } => format!("create {dataset}"),
            Action::SetProperty {
                dataset,
                property,
                value,
                was,
            } => format!("set {property}={value} on {dataset} (was {was})"),
            Action::Snapshot { snapshot } => format!("snapshot {snapshot}"),
            Action::Hold { snapshot, tag } => format!("hold {snapshot} ({tag})"),
            Action::RecordBlank { dataset, snapshot } => {
                format!("record the guid of {snapshot} in {dataset} ({BLANK_PROPERTY})")
            }
            Action::Mount {
                source,
                target,
                fstype,
                ..
            } => format!("mount {source} at {target} ({fstype})"),
            Action::WriteFile { path, .. } => format!("write {path}"),
            Action::GenerateHostKey { path, .. } => format!("generate the initrd host key {path}"),
            Action::PinHostKey { pin_file, host, .. } => {
                format!("pin {host}'s initrd host key in {pin_file}")
            }
        }
    }
}

/// The partitions of the `index`-th disk of a pool.
pub fn partitions(pool: &PoolLayout, index: usize) -> Vec<PartitionSpec> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut next = |name: String, type_guid: &str, size: Option<u64>, role| {
        n += 1;
        PartitionSpec {
            number: n,
            name,
            type_guid: type_guid.to_string(),
            size,
            role,
        }
    };
    if pool.kind == LayoutKind::Root && index == 0 && pool.esp_size > 0 {
        // The seed's partition label.
        out.push(next(
            "EFI".into(),
            TYPE_ESP,
            Some(pool.esp_size),
            PartRole::Esp,
        ));
    }
    if pool.swap_size > 0 {
        out.push(next(
            format!("{}-swap{}", pool.pool, index + 1),
            TYPE_SWAP,
            Some(pool.swap_size),
            PartRole::Swap,
        ));
    }
    let (name, t) = match pool.encryption {
        Encryption::Luks => (pool.luks_mapping(index), TYPE_LUKS),
        _ => (format!("{}-{}", pool.pool, index + 1), TYPE_ZFS),
    };
    out.push(next(name, t, None, PartRole::Data));
    out
}

/// The device path of partition `n` of `disk`, as udev names it: `-partN`
/// after a /dev/disk/by-* link, `pN` after a name ending in a digit
/// (`nvme0n1p1`), `N` otherwise (`sda1`).
pub fn partition_path(disk: &str, n: usize) -> String {
    if disk.starts_with("/dev/disk/") {
        format!("{disk}-part{n}")
    } else if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// sfdisk's 1 MiB alignment before the first partition and the backup GPT
/// after the last one, rounded up.
const GPT_OVERHEAD: u64 = 2 << 20;
/// `zpool create` takes the members of a mirror or raidz as equal when they
/// differ by less than this (ZPOOL_FUZZ in libzfs).
const ZPOOL_FUZZ: u64 = 16 << 20;

/// The data partition's size on the `index`-th disk when it must be smaller
/// than the rest of the disk: the members of a mirror or raidz get the same
/// size, so the ESP on the first disk does not make the pool "contain devices
/// of different sizes" (disko forces that with `zpool create -f`; zfleet
/// makes them equal instead). `None`: the rest of the disk.
pub fn equal_data_size(obs: &Observed, pool: &PoolLayout, index: usize) -> Option<u64> {
    if pool.disks.len() < 2 || matches!(pool.topology, Topology::Single | Topology::Stripe) {
        return None;
    }
    let usable = |i: usize| -> Option<u64> {
        let disk = &pool.disks[i];
        let size = obs.device(&disk.path).map(|d| d.size)?;
        let fixed: u64 = partitions(pool, i).iter().filter_map(|p| p.size).sum();
        Some(size.saturating_sub(fixed + GPT_OVERHEAD) / (1 << 20) * (1 << 20))
    };
    let smallest = (0..pool.disks.len()).filter_map(usable).min()?;
    let mine = usable(index)?;
    (mine >= smallest + ZPOOL_FUZZ / 2).then_some(smallest)
}

/// What ZFS is given for the `index`-th disk: the LUKS mapping, the data
/// partition, or the file.
pub fn vdev_path(pool: &PoolLayout, index: usize) -> String {
    let disk = &pool.disks[index];
    if disk.is_file() {
        return disk.path.clone();
    }
    match pool.encryption {
        Encryption::Luks => format!("/dev/mapper/{}", pool.luks_mapping(index)),
        _ => {
            let n = partitions(pool, index).len();
            partition_path(&disk.path, n)
        }
    }
}

/// The data partition (LUKS container or ZFS) of a block disk.
pub fn data_partition(pool: &PoolLayout, index: usize) -> String {
    let disk = &pool.disks[index];
    if disk.is_file() {
        return disk.path.clone();
    }
    partition_path(&disk.path, partitions(pool, index).len())
}

/// Everything the planner needs to remember while it goes.
struct Cx<'a> {
    host: &'a str,
    layout: &'a HostLayout,
    obs: &'a Observed,
    opts: &'a Options,
    steps: Vec<(u8, Step)>,
    refusals: Vec<Refusal>,
    notes: Vec<Note>,
    rescan: Vec<String>,
    disks: Vec<DiskSummary>,
    creates_pool: bool,
}

// Phases, so every pool's disks are prepared before any pool is created.
const P_HOSTID: u8 = 0;
const P_TEARDOWN: u8 = 1;
const P_PARTITION: u8 = 2;
const P_FORMAT: u8 = 3;
const P_POOL: u8 = 4;
const P_POOLPROPS: u8 = 5;
const P_DATASETS: u8 = 6;
const P_BLANKS: u8 = 7;

impl Cx<'_> {
    fn step(&mut self, phase: u8, action: Action, reason: impl Into<String>) {
        self.steps.push((
            phase,
            Step {
                action,
                reason: reason.into(),
            },
        ));
    }
    fn refuse(
        &mut self,
        subject: impl Into<String>,
        problem: impl Into<String>,
        hint: Option<String>,
    ) {
        self.refusals.push(Refusal {
            subject: subject.into(),
            problem: problem.into(),
            hint,
        });
    }
    fn note(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Note {
            subject: subject.into(),
            message: message.into(),
        });
    }
    fn wiping(&self, disk: &DiskRef) -> bool {
        let node = self.obs.resolve(&disk.path);
        self.opts
            .wipe
            .iter()
            .any(|w| *w == disk.path || self.obs.resolve(w) == node)
    }
}

/// What is on one data device (the partition, file or LUKS mapping ZFS gets).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// Created by this plan, or empty now.
    Empty,
    /// A ZFS label of the pool.
    Member,
    /// Inside a LUKS container this plan opens: known after it ran.
    Unknown,
}

/// Per disk, after classification.
struct DiskOutcome {
    content: Content,
}

pub fn plan(host: &str, layout: &HostLayout, obs: &Observed, opts: &Options) -> Plan {
    let mut cx = Cx {
        host,
        layout,
        obs,
        opts,
        steps: Vec::new(),
        refusals: Vec::new(),
        notes: Vec::new(),
        rescan: Vec::new(),
        disks: Vec::new(),
        creates_pool: false,
    };
    for w in &opts.wipe {
        let node = obs.resolve(w);
        let known = layout
            .pools
            .iter()
            .flat_map(|p| p.disks.iter())
            .any(|d| d.path == *w || obs.resolve(&d.path) == node);
        if !known {
            cx.refuse(
                w.clone(),
                "--wipe names a disk that is not in this host's layout",
                Some("zfleet only wipes disks fleet.toml gives a pool".into()),
            );
        }
    }
    for name in &opts.force_import {
        if layout.pool(name).is_none() {
            cx.refuse(
                name.clone(),
                "--force-import names a pool that is not in this host's layout",
                None,
            );
        }
    }
    for pool in &layout.pools {
        plan_pool(&mut cx, pool);
    }
    if cx.creates_pool {
        if let Some(id) = &layout.host_id {
            match obs.hostid.as_deref() {
                Some(h) if h == id => {}
                current => {
                    let foreign: Vec<&str> = obs
                        .imported
                        .iter()
                        .map(|p| p.name.as_str())
                        .filter(|n| layout.pool(n).is_none())
                        .collect();
                    if foreign.is_empty() {
                        cx.step(
                            P_HOSTID,
                            Action::SetHostId { id: id.clone() },
                            format!(
                                "pools record the hostid of the system that creates them; this one is {}, the installed system will be {id} (fleet.toml host_id)",
                                current.unwrap_or("unknown")
                            ),
                        );
                    } else {
                        cx.note(
                            host,
                            format!(
                                "the hostid here is {}, fleet.toml says {id}; not changed because pools {} are imported. New pools will need `zpool import -f` on the installed system once.",
                                current.unwrap_or("unknown"),
                                foreign.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }
    let mut steps = std::mem::take(&mut cx.steps);
    steps.sort_by_key(|(phase, _)| *phase);
    let refused = !cx.refusals.is_empty();
    Plan {
        host: host.to_string(),
        disks: cx.disks,
        // A refused plan lists nothing to do: nothing of it may run.
        steps: if refused {
            Vec::new()
        } else {
            steps.into_iter().map(|(_, s)| s).collect()
        },
        refusals: cx.refusals,
        notes: cx.notes,
        rescan: cx.rescan,
    }
}

fn plan_pool(cx: &mut Cx<'_>, pool: &PoolLayout) {
    let name = pool.pool.as_str();
    let reinstalling = cx.opts.reinstall && pool.kind == LayoutKind::Root;
    let before = cx.refusals.len();

    // The disks must be there, and be disks.
    for (i, disk) in pool.disks.iter().enumerate() {
        if disk.is_file() {
            if !cx.obs.files.contains_key(&disk.path) {
                cx.refuse(
                    disk.path.clone(),
                    format!("file vdev of pool {name} does not exist on {}", cx.host),
                    Some("create it first, for example `truncate -s 1G FILE`".into()),
                );
            }
            continue;
        }
        match cx.obs.device(&disk.path) {
            None => {
                let known: Vec<String> = cx
                    .obs
                    .links
                    .keys()
                    .filter(|l| l.starts_with("/dev/disk/by-id/") && !l.contains("-part"))
                    .cloned()
                    .collect();
                cx.refuse(
                    disk.path.clone(),
                    format!("disk {} of pool {name} is not on {}", i + 1, cx.host),
                    Some(if known.is_empty() {
                        "`lsblk` lists the disks the host has".into()
                    } else {
                        format!("disks by id: {}", known.join(", "))
                    }),
                );
            }
            Some(d) if d.kind != "disk" && d.kind != "loop" => {
                let kind = match d.kind.as_str() {
                    "part" => "partition",
                    "crypt" => "LUKS mapping",
                    other => other,
                };
                cx.refuse(
                    disk.path.clone(),
                    format!("is a {kind} ({}), not a whole disk", d.path),
                    Some("name the disk; zfleet makes the partitions".into()),
                );
            }
            Some(_) => {}
        }
    }
    if cx.refusals.len() > before {
        return;
    }

    let imported = cx.obs.imported(name).cloned();
    if reinstalling {
        teardown(cx, pool, imported.is_some());
        if cx.refusals.len() > before {
            return;
        }
        let outcomes: Vec<DiskOutcome> = (0..pool.disks.len())
            .map(|i| {
                let disk = &pool.disks[i];
                cx.disks.push(DiskSummary {
                    pool: pool.pool.clone(),
                    disk: disk.path.clone(),
                    device: (!disk.is_file()).then(|| cx.obs.resolve(&disk.path)),
                    size: cx
                        .obs
                        .device(&disk.path)
                        .map(|d| d.size)
                        .or_else(|| cx.obs.files.get(&disk.path).copied()),
                    state: "to wipe".into(),
                    detail: "--reinstall recreates the root pool".into(),
                });
                new_disk(cx, pool, i, "--reinstall recreates the root pool")
            })
            .collect();
        create_pool(cx, pool, &outcomes);
        return;
    }

    let mut outcomes = Vec::new();
    for i in 0..pool.disks.len() {
        match classify(cx, pool, i, imported.is_some()) {
            Some(o) => outcomes.push(o),
            None => return,
        }
    }
    if cx.refusals.len() > before {
        return;
    }

    if let Some(state) = imported {
        existing_pool(cx, pool, &state.vdevs, &outcomes);
        return;
    }
    if outcomes.iter().any(|o| o.content == Content::Unknown) {
        // Containers opened by this plan: what is inside is seen next round.
        cx.rescan.push(name.to_string());
        cx.note(
            name,
            "its LUKS containers are opened by this plan; the pool inside is imported or created in the next round",
        );
        return;
    }
    let members = outcomes
        .iter()
        .filter(|o| o.content == Content::Member)
        .count();
    if members > 0 {
        import_pool(cx, pool);
        return;
    }
    create_pool(cx, pool, &outcomes);
}

/// `--reinstall`: the root pool's disks lose what the root pool put there.
fn teardown(cx: &mut Cx<'_>, pool: &PoolLayout, imported: bool) {
    let name = pool.pool.as_str();
    // What is on the disks must be the root pool's (or nothing), unless
    // `--wipe` names the disk: a reinstall never takes another pool with it.
    for (i, disk) in pool.disks.iter().enumerate() {
        if disk.is_file() || cx.wiping(disk) {
            continue;
        }
        let node = cx.obs.resolve(&disk.path);
        if let Some(other) = cx.obs.pool_of(&node).filter(|p| *p != name) {
            cx.refuse(
                disk.path.clone(),
                format!("is in pool {other}, which --reinstall does not touch"),
                Some(format!(
                    "remove it from pool {name} in fleet.toml, or export {other} and pass --wipe"
                )),
            );
            continue;
        }
        let mut foreign = Vec::new();
        let mapping = pool.luks_mapping(i);
        let parts: Vec<(String, Option<String>)> = cx
            .obs
            .children(&node)
            .iter()
            .map(|c| (c.path.clone(), c.partlabel.clone()))
            .collect();
        for (part, partlabel) in std::iter::once((node.clone(), None)).chain(parts) {
            let inner: Vec<String> = cx
                .obs
                .children(&part)
                .iter()
                .filter(|c| c.kind == "crypt")
                .map(|c| c.path.clone())
                .collect();
            let inner_ours = !inner.is_empty()
                && inner.iter().all(|m| {
                    cx.obs
                        .signatures_of(m)
                        .iter()
                        .all(|s| s.kind == "zfs_member" && s.label.as_deref() == Some(name))
                });
            for s in cx.obs.signatures_of(&part) {
                let ours = match s.kind.as_str() {
                    "gpt" | "PMBR" | "vfat" | "swap" => true,
                    "zfs_member" => s.label.as_deref() == Some(name),
                    // A container zfleet made carries the mapping's name; an
                    // open one shows what it holds.
                    "crypto_LUKS" => {
                        inner_ours
                            || s.label.as_deref() == Some(mapping.as_str())
                            || partlabel.as_deref() == Some(mapping.as_str())
                    }
                    _ => false,
                };
                if !ours {
                    foreign.push(describe_signature(cx.obs, &part, s));
                }
            }
            for m in &inner {
                for s in cx.obs.signatures_of(m) {
                    if !(s.kind == "zfs_member" && s.label.as_deref() == Some(name)) {
                        foreign.push(describe_signature(cx.obs, m, s));
                    }
                }
            }
        }
        let foreign = dedup(foreign);
        if !foreign.is_empty() {
            cx.refuse(
                disk.path.clone(),
                format!(
                    "disk {} of {name} holds {} that is not the root pool's",
                    i + 1,
                    foreign.join(", ")
                ),
                Some(format!("pass --wipe {} if it may go", disk.path)),
            );
        }
    }
    if !cx.refusals.is_empty() {
        return;
    }
    if imported {
        cx.step(
            P_TEARDOWN,
            Action::DestroyPool {
                pool: name.to_string(),
            },
            "--reinstall recreates the root pool",
        );
    }
    for disk in &pool.disks {
        wipe_disk(cx, disk, "--reinstall recreates the root pool");
    }
}

/// Closes what is open on a disk and removes every signature.
fn wipe_disk(cx: &mut Cx<'_>, disk: &DiskRef, why: &str) {
    let node = cx.obs.resolve(&disk.path);
    let mut partitions = Vec::new();
    let mut zfs_labels = Vec::new();
    let mut what = Vec::new();
    let parts: Vec<String> = if disk.is_file() {
        Vec::new()
    } else {
        cx.obs
            .children(&node)
            .iter()
            .map(|c| c.path.clone())
            .collect()
    };
    for part in &parts {
        for m in cx.obs.children(part) {
            if m.kind == "crypt" {
                let mapping = m.path.trim_start_matches("/dev/mapper/").to_string();
                cx.step(P_TEARDOWN, Action::CloseLuks { mapping }, why.to_string());
            }
        }
        let sigs = cx.obs.signatures_of(part);
        if sigs.iter().any(|s| s.kind == "zfs_member") {
            zfs_labels.push(part.clone());
        }
        what.extend(sigs.iter().map(|s| describe_signature(cx.obs, part, s)));
        partitions.push(part.clone());
    }
    let sigs = cx.obs.signatures_of(&node);
    if sigs.iter().any(|s| s.kind == "zfs_member") {
        zfs_labels.push(disk.path.clone());
    }
    what.extend(sigs.iter().map(|s| describe_signature(cx.obs, &node, s)));
    if what.is_empty() && partitions.is_empty() {
        return;
    }
    let what = dedup(what);
    cx.step(
        P_TEARDOWN,
        Action::Wipe {
            disk: disk.path.clone(),
            partitions,
            zfs_labels,
        },
        format!(
            "{why}; removes {}",
            if what.is_empty() {
                "the partitions".to_string()
            } else {
                what.join(", ")
            }
        ),
    );
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in list {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn describe_signature(obs: &Observed, device: &str, s: &super::model::Signature) -> String {
    let what = match s.kind.as_str() {
        "zfs_member" => {
            let pool = s.label.as_deref().unwrap_or("?");
            // What the import scan says of that pool, by its guid.
            let scan = obs
                .importable
                .iter()
                .find(|p| Some(p.id.as_str()) == s.uuid.as_deref());
            match scan {
                Some(p) if p.other_system => format!(
                    "a ZFS label of pool {pool} (id {}), last used by another system and not exported: a potentially active pool",
                    p.id
                ),
                Some(p) => format!("a ZFS label of pool {pool} (id {}, importable, {})", p.id, p.state),
                None => format!("a ZFS label of pool {pool}"),
            }
        }
        "crypto_LUKS" => format!(
            "a LUKS header{}",
            s.label
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        ),
        "gpt" | "PMBR" => "a GPT partition table".to_string(),
        "dos" => "an MBR partition table".to_string(),
        other => format!(
            "{} {other} file system{}",
            if other.starts_with(['a', 'e', 'i', 'o', 'u', 'x']) {
                "an"
            } else {
                "a"
            },
            s.label
                .as_deref()
                .map(|l| format!(" labelled {l}"))
                .unwrap_or_default()
        ),
    };
    format!("{what} on {device}")
}

/// All partitions of a disk (or the file) are new: plan them from nothing.
fn new_disk(cx: &mut Cx<'_>, pool: &PoolLayout, index: usize, why: &str) -> DiskOutcome {
    let disk = &pool.disks[index];
    if disk.is_file() {
        return DiskOutcome {
            content: Content::Empty,
        };
    }
    let mut parts = partitions(pool, index);
    if let Some(size) = equal_data_size(cx.obs, pool, index) {
        if let Some(data) = parts.iter_mut().find(|p| p.role == PartRole::Data) {
            data.size = Some(size);
        }
    }
    cx.step(
        P_PARTITION,
        Action::Partition {
            disk: disk.path.clone(),
            partitions: parts.clone(),
        },
        format!("{why}: layout {} on disk {}", pool.template, index + 1),
    );
    for p in &parts {
        format_partition(cx, pool, index, p);
    }
    DiskOutcome {
        content: Content::Empty,
    }
}

fn format_partition(cx: &mut Cx<'_>, pool: &PoolLayout, index: usize, p: &PartitionSpec) {
    let device = partition_path(&pool.disks[index].path, p.number);
    match p.role {
        PartRole::Esp => cx.step(
            P_FORMAT,
            Action::FormatEsp { device },
            "the ESP holds the boot loader (mounted at /boot, umask=0077)",
        ),
        PartRole::Swap => {
            if pool.encryption == Encryption::None {
                cx.step(
                    P_FORMAT,
                    Action::Mkswap { device },
                    "swap_size in fleet.toml",
                );
            }
            // Encrypted layouts get swap with a random key at every boot, so
            // there is nothing to format now.
        }
        PartRole::Data => {
            if pool.encryption == Encryption::Luks {
                let Some(secret) = pool.secret.clone() else {
                    return;
                };
                let mapping = pool.luks_mapping(index);
                cx.step(
                    P_FORMAT,
                    Action::LuksFormat {
                        device: device.clone(),
                        label: mapping.clone(),
                        secret: secret.clone(),
                    },
                    format!("encryption = \"luks\": the pool lives in /dev/mapper/{mapping}"),
                );
                cx.step(
                    P_FORMAT,
                    Action::LuksOpen {
                        device,
                        mapping,
                        discards: pool.luks_discards,
                        secret,
                    },
                    "ZFS is created on the opened container",
                );
            }
        }
    }
}

/// What one disk of a pool holds, before anything is decided.
enum Inspect {
    Empty,
    Foreign(Vec<String>),
    Refused(String, Option<String>),
    Ours {
        esp_blank: bool,
        swap_blank: bool,
        data: DataState,
    },
}

enum DataState {
    /// Nothing on the data partition yet.
    Blank,
    LuksClosed,
    /// ZFS's device (the partition, file or open mapping) and what is on it.
    Ready(Content),
}

/// Looks at a disk without deciding anything.
fn inspect(cx: &Cx<'_>, pool: &PoolLayout, index: usize) -> Inspect {
    let disk = &pool.disks[index];
    let name = pool.pool.as_str();
    let zfs_on = |dev: &str| -> Result<Content, Vec<String>> {
        let sigs = cx.obs.signatures_of(dev);
        if sigs.is_empty() {
            Ok(Content::Empty)
        } else if sigs
            .iter()
            .all(|s| s.kind == "zfs_member" && s.label.as_deref() == Some(name))
        {
            Ok(Content::Member)
        } else {
            Err(sigs
                .iter()
                .map(|s| describe_signature(cx.obs, dev, s))
                .collect())
        }
    };
    if disk.is_file() {
        return match zfs_on(&disk.path) {
            Ok(Content::Empty) => Inspect::Empty,
            Ok(c) => Inspect::Ours {
                esp_blank: false,
                swap_blank: false,
                data: DataState::Ready(c),
            },
            Err(what) => Inspect::Foreign(what),
        };
    }
    let node = cx.obs.resolve(&disk.path);
    let sigs = cx.obs.signatures_of(&node);
    let found: Vec<&super::model::BlockDevice> = cx.obs.children(&node);
    if sigs.is_empty() && found.is_empty() {
        return Inspect::Empty;
    }
    let table_only = sigs
        .iter()
        .all(|s| matches!(s.kind.as_str(), "gpt" | "PMBR"));
    if !(table_only && sigs.iter().any(|s| s.kind == "gpt")) {
        let what: Vec<String> = sigs
            .iter()
            .filter(|s| s.kind != "PMBR")
            .map(|s| describe_signature(cx.obs, &node, s))
            .collect();
        return Inspect::Foreign(if what.is_empty() {
            vec![format!("partitions without a GPT on {node}")]
        } else {
            what
        });
    }
    // A GPT: it must be the layout's own, partition for partition.
    let expected = partitions(pool, index);
    let matches = found.len() == expected.len()
        && expected.iter().zip(&found).all(|(e, f)| {
            f.partlabel.as_deref() == Some(e.name.as_str())
                && f.parttype
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    == Some(e.type_guid.as_str())
                // The data partition may have been sized to match a mirror's.
                && (e.role == PartRole::Data || e.size.map_or(true, |s| f.size.abs_diff(s) < (1 << 20)))
        });
    if !matches {
        let labels: Vec<String> = found
            .iter()
            .map(|f| f.partlabel.clone().unwrap_or_else(|| f.path.clone()))
            .collect();
        let mut what = vec![format!(
            "a GPT with {} partition{} ({}) that is not layout {}'s",
            found.len(),
            if found.len() == 1 { "" } else { "s" },
            if labels.is_empty() {
                "none".to_string()
            } else {
                labels.join(", ")
            },
            pool.template
        )];
        for f in &found {
            what.extend(
                cx.obs
                    .signatures_of(&f.path)
                    .iter()
                    .map(|s| describe_signature(cx.obs, &f.path, s)),
            );
        }
        return Inspect::Foreign(what);
    }
    let mut esp_blank = false;
    let mut swap_blank = false;
    let mut data = DataState::Blank;
    for (spec, part) in expected.iter().zip(&found) {
        let sigs = cx.obs.signatures_of(&part.path);
        let mut kinds: Vec<&str> = sigs.iter().map(|s| s.kind.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let what = || {
            sigs.iter()
                .map(|s| describe_signature(cx.obs, &part.path, s))
                .collect::<Vec<_>>()
        };
        match spec.role {
            PartRole::Esp => match kinds.as_slice() {
                [] => esp_blank = true,
                ["vfat"] => {}
                _ => return Inspect::Foreign(what()),
            },
            PartRole::Swap => match kinds.as_slice() {
                [] => swap_blank = true,
                ["swap"] => {}
                _ => return Inspect::Foreign(what()),
            },
            PartRole::Data => {
                data = match pool.encryption {
                    Encryption::Luks if kinds.is_empty() => DataState::Blank,
                    Encryption::Luks if kinds.iter().all(|k| *k == "crypto_LUKS") => {
                        let mapping = format!("/dev/mapper/{}", pool.luks_mapping(index));
                        let open: Vec<&super::model::BlockDevice> = cx
                            .obs
                            .children(&part.path)
                            .into_iter()
                            .filter(|c| c.kind == "crypt")
                            .collect();
                        match open.first() {
                            None => DataState::LuksClosed,
                            Some(m)
                                if cx.obs.resolve(&m.path) == cx.obs.resolve(&mapping)
                                    || m.path == mapping =>
                            {
                                match zfs_on(&m.path) {
                                    Ok(c) => DataState::Ready(c),
                                    Err(what) => return Inspect::Foreign(what),
                                }
                            }
                            Some(m) => {
                                return Inspect::Refused(
                                    format!(
                                        "its LUKS container {} is open as {}, not {mapping}",
                                        part.path, m.path
                                    ),
                                    Some(format!(
                                        "close it (`cryptsetup close {}`) and run again",
                                        m.path.trim_start_matches("/dev/mapper/")
                                    )),
                                )
                            }
                        }
                    }
                    Encryption::Luks => return Inspect::Foreign(what()),
                    Encryption::Zfs | Encryption::None => match zfs_on(&part.path) {
                        Ok(Content::Empty) => DataState::Blank,
                        Ok(c) => DataState::Ready(c),
                        Err(what) => return Inspect::Foreign(what),
                    },
                };
            }
        }
    }
    Inspect::Ours {
        esp_blank,
        swap_blank,
        data,
    }
}

/// Looks at one disk of a pool that is not being reinstalled and plans what
/// it needs. `None` when it was refused.
fn classify(
    cx: &mut Cx<'_>,
    pool: &PoolLayout,
    index: usize,
    pool_imported: bool,
) -> Option<DiskOutcome> {
    let disk = &pool.disks[index];
    let name = pool.pool.as_str();
    let wiping = cx.wiping(disk);
    let node = if disk.is_file() {
        disk.path.clone()
    } else {
        cx.obs.resolve(&disk.path)
    };
    let size = cx
        .obs
        .device(&disk.path)
        .map(|d| d.size)
        .or_else(|| cx.obs.files.get(&disk.path).copied());
    let summary = |state: &str, detail: String| DiskSummary {
        pool: name.to_string(),
        disk: disk.path.clone(),
        device: (!disk.is_file()).then(|| node.clone()),
        size,
        state: state.to_string(),
        detail,
    };

    // A disk in use by an imported pool that is not this one is never touched.
    if !disk.is_file() {
        let parts: Vec<String> = cx
            .obs
            .children(&node)
            .iter()
            .map(|c| c.path.clone())
            .collect();
        let mut devs = vec![node.clone()];
        devs.extend(parts.iter().cloned());
        for p in &parts {
            devs.extend(cx.obs.children(p).iter().map(|c| c.path.clone()));
        }
        for dev in &devs {
            if let Some(other) = cx.obs.pool_of(dev).filter(|p| *p != name) {
                cx.disks.push(summary(
                    "foreign",
                    format!("{dev} is in imported pool {other}"),
                ));
                cx.refuse(
                    disk.path.clone(),
                    format!("{dev} is in imported pool {other}, not {name}"),
                    Some("fix the disk list in fleet.toml; zfleet never takes a disk from another pool".into()),
                );
                return None;
            }
        }
    }

    match inspect(cx, pool, index) {
        Inspect::Empty => {
            cx.disks
                .push(summary("empty", "no partition table, no signature".into()));
            if disk.is_file() {
                return Some(DiskOutcome {
                    content: Content::Empty,
                });
            }
            Some(new_disk(cx, pool, index, "the disk is empty"))
        }
        Inspect::Foreign(what) => foreign(
            cx,
            pool,
            index,
            what,
            wiping,
            summary("foreign", String::new()),
        ),
        Inspect::Refused(problem, hint) => {
            cx.disks.push(summary("refused", problem.clone()));
            cx.refuse(disk.path.clone(), problem, hint);
            None
        }
        Inspect::Ours {
            esp_blank,
            swap_blank,
            data,
        } => {
            if wiping {
                cx.note(
                    disk.path.clone(),
                    "--wipe: nothing wiped, the disk is laid out as fleet.toml says",
                );
            }
            let specs = partitions(pool, index);
            for spec in &specs {
                let blank = match spec.role {
                    PartRole::Esp => esp_blank,
                    PartRole::Swap => swap_blank,
                    PartRole::Data => false,
                };
                if blank {
                    format_partition(cx, pool, index, spec);
                }
            }
            let content = match data {
                DataState::Blank => {
                    if let Some(spec) = specs.iter().find(|p| p.role == PartRole::Data) {
                        format_partition(cx, pool, index, spec);
                    }
                    Content::Empty
                }
                DataState::LuksClosed => {
                    let secret = pool.secret.clone()?;
                    let device = data_partition(pool, index);
                    cx.step(
                        P_FORMAT,
                        Action::LuksOpen {
                            device: device.clone(),
                            mapping: pool.luks_mapping(index),
                            discards: pool.luks_discards,
                            secret,
                        },
                        format!("pool {name} is inside; the container is closed"),
                    );
                    if pool_imported {
                        cx.note(name, format!("{device} is closed although pool {name} is imported: the pool is missing a disk"));
                    }
                    Content::Unknown
                }
                DataState::Ready(c) => c,
            };
            let detail = match content {
                Content::Member => format!("a vdev of pool {name}"),
                Content::Empty => "partitioned, not yet in the pool".to_string(),
                Content::Unknown => "partitioned, LUKS container closed".to_string(),
            };
            cx.disks.push(summary("laid out", detail));
            Some(DiskOutcome { content })
        }
    }
}

/// A disk holds something the layout does not expect: refused, or wiped and
/// laid out again when `--wipe` names it.
fn foreign(
    cx: &mut Cx<'_>,
    pool: &PoolLayout,
    index: usize,
    what: Vec<String>,
    wiping: bool,
    mut summary: DiskSummary,
) -> Option<DiskOutcome> {
    let what = dedup(what);
    let disk = &pool.disks[index];
    let node = if disk.is_file() {
        disk.path.clone()
    } else {
        cx.obs.resolve(&disk.path)
    };
    if wiping {
        // Something of it that is in use cannot be wiped from under its user.
        let parts: Vec<String> = cx
            .obs
            .children(&node)
            .iter()
            .map(|c| c.path.clone())
            .collect();
        for dev in std::iter::once(node.clone()).chain(parts) {
            if let Some(m) = cx
                .obs
                .devices
                .iter()
                .find(|d| d.path == dev)
                .and_then(|d| d.mountpoint.clone())
            {
                cx.refuse(
                    disk.path.clone(),
                    format!("{dev} is mounted at {m}"),
                    Some(format!(
                        "unmount it, then run again with --wipe {}",
                        disk.path
                    )),
                );
                return None;
            }
            if let Some(p) = cx.obs.pool_of(&dev) {
                cx.refuse(disk.path.clone(), format!("{dev} is in imported pool {p}"), Some(format!("`zpool export {p}` first; zfleet does not destroy a pool it does not manage")));
                return None;
            }
        }
        summary.state = "to wipe".into();
        summary.detail = what.join("; ");
        cx.disks.push(summary);
        wipe_disk(cx, disk, &format!("--wipe {}", disk.path));
        return Some(new_disk(cx, pool, index, "wiped"));
    }
    summary.detail = what.join("; ");
    cx.disks.push(summary);
    cx.refuse(
        disk.path.clone(),
        format!(
            "disk {} of pool {} holds {}",
            index + 1,
            pool.pool,
            what.join(", ")
        ),
        Some(format!(
            "nothing was written; if its contents may go, run again with --wipe {}",
            disk.path
        )),
    );
    None
}

/// The pool exists on (some of) its disks but is not imported.
fn import_pool(cx: &mut Cx<'_>, pool: &PoolLayout) {
    let name = pool.pool.as_str();
    let candidates = cx.obs.importable(name);
    match candidates.as_slice() {
        [] => {
            cx.refuse(
                name,
                format!("its disks hold labels of pool {name}, but `zpool import` does not offer it (destroyed, or damaged)"),
                Some("`zpool import -D` lists destroyed pools; pass --wipe DISK to start over".into()),
            );
        }
        [c] if !matches!(c.state.as_str(), "ONLINE" | "DEGRADED") => {
            cx.refuse(
                name,
                format!(
                    "`zpool import` offers pool {name} (id {}) as {}: {}",
                    c.id,
                    c.state,
                    c.action.as_deref().or(c.status.as_deref()).unwrap_or("it cannot be imported")
                ),
                Some("zfleet neither imports nor recreates a damaged pool; look at `zpool import` yourself".into()),
            );
        }
        [c] => {
            let ours = c.leaves().iter().all(|leaf| {
                (0..pool.disks.len()).any(|i| {
                    let v = vdev_path(pool, i);
                    let node = cx.obs.resolve(&v);
                    cx.obs.same_device(leaf, &node)
                        || leaf.ends_with(v.rsplit('/').next().unwrap_or(""))
                })
            });
            if !ours {
                cx.refuse(
                    name,
                    format!("the pool {name} that `zpool import` offers (id {}) has devices that are not its disks in fleet.toml: {}", c.id, c.leaves().join(", ")),
                    None,
                );
                return;
            }
            let force = c.other_system;
            if force && !cx.opts.force_import.iter().any(|p| p == name) && !host_id_says_ours(cx) {
                cx.refuse(
                    name,
                    format!(
                        "pool {name} was last used by another system and not exported: {} (a \"potentially active pool\")",
                        c.status.as_deref().unwrap_or("in use elsewhere")
                    ),
                    Some(format!("if no other system uses it, pass --force-import {name}; setting host_id in fleet.toml lets zfleet import this host's own pools")),
                );
                return;
            }
            let dirs = pool.file_vdev_dirs();
            let why = if force {
                "the pool is kept and adopted; it was last used by another system (the installed one), so -f".to_string()
            } else {
                "the pool is kept and adopted, not recreated".to_string()
            };
            cx.step(
                P_POOL,
                Action::ImportPool {
                    pool: name.to_string(),
                    force,
                    dirs,
                },
                why,
            );
            cx.rescan.push(name.to_string());
        }
        many => {
            cx.refuse(
                name,
                format!(
                    "`zpool import` offers {} pools named {name} (ids {})",
                    many.len(),
                    many.iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some("import the right one by id by hand, or wipe the others".into()),
            );
        }
    }
}

/// Running in an installer whose hostid is not the host's: pools that last
/// ran on the installed system look "potentially active", but fleet.toml says
/// whose they are.
fn host_id_says_ours(cx: &Cx<'_>) -> bool {
    match (&cx.layout.host_id, &cx.obs.hostid) {
        (Some(want), Some(have)) => want != have,
        _ => false,
    }
}

fn create_pool(cx: &mut Cx<'_>, pool: &PoolLayout, outcomes: &[DiskOutcome]) {
    let name = pool.pool.as_str();
    if outcomes.iter().any(|o| o.content != Content::Empty) {
        return;
    }
    let vdevs: Vec<String> = (0..pool.disks.len()).map(|i| vdev_path(pool, i)).collect();
    cx.creates_pool = true;
    cx.step(
        P_POOL,
        Action::CreatePool {
            pool: name.to_string(),
            topology: pool.topology,
            vdevs,
            pool_options: pool
                .pool_options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            root_options: pool
                .root_options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secret: (pool.encryption == Encryption::Zfs)
                .then(|| pool.secret.clone())
                .flatten(),
        },
        format!(
            "layout {} ({}, {} disk{})",
            pool.template,
            pool.topology,
            pool.disks.len(),
            if pool.disks.len() == 1 { "" } else { "s" }
        ),
    );
    for d in &pool.datasets {
        create_dataset(cx, pool, d, "not there yet");
    }
}

fn create_dataset(cx: &mut Cx<'_>, pool: &PoolLayout, d: &DatasetLayout, why: &str) {
    let full = pool.full_name(&d.name);
    cx.step(
        P_DATASETS,
        Action::CreateDataset {
            dataset: full.clone(),
            options: d
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        format!(
            "{why}{}",
            d.mountpoint
                .as_deref()
                .map(|m| format!("; mounted at {m}"))
                .unwrap_or_default()
        ),
    );
    if d.blank {
        blank_steps(cx, &full, true);
    }
}

fn blank_steps(cx: &mut Cx<'_>, dataset: &str, snapshot: bool) {
    let snap = format!("{dataset}@{BLANK_SNAPSHOT}");
    if snapshot {
        cx.step(
            P_BLANKS,
            Action::Snapshot {
                snapshot: snap.clone(),
            },
            "the blank state, taken while the dataset is still empty",
        );
    }
    cx.step(
        P_BLANKS,
        Action::Hold {
            snapshot: snap.clone(),
            tag: BLANK_HOLD.to_string(),
        },
        "a held snapshot cannot be destroyed by accident",
    );
    cx.step(
        P_BLANKS,
        Action::RecordBlank {
            dataset: dataset.to_string(),
            snapshot: snap,
        },
        "`root rollback` rolls back only to the snapshot recorded now",
    );
}

/// The pool is imported: adopt it and change what differs.
fn existing_pool(cx: &mut Cx<'_>, pool: &PoolLayout, vdevs: &[Vdev], outcomes: &[DiskOutcome]) {
    let name = pool.pool.as_str();
    // Which planned vdevs are already leaves of the pool.
    let planned: Vec<(usize, String, String)> = (0..pool.disks.len())
        .map(|i| {
            let v = vdev_path(pool, i);
            let node = cx.obs.resolve(&v);
            (i, v, node)
        })
        .collect();
    let leaves: Vec<&str> = vdevs.iter().flat_map(Vdev::leaves).collect();
    let in_pool = |node: &str| leaves.iter().any(|l| cx.obs.same_device(l, node));
    let present: Vec<&(usize, String, String)> =
        planned.iter().filter(|(_, _, n)| in_pool(n)).collect();
    for leaf in &leaves {
        let ours = planned.iter().any(|(_, _, n)| cx.obs.same_device(leaf, n));
        if !ours {
            cx.note(
                name,
                format!("has device {leaf}, which fleet.toml does not list; it is left alone"),
            );
        }
    }
    let shape = shape(vdevs);
    let mut attach_to: Option<String> = None;
    match (shape, pool.topology) {
        (Shape::Single, Topology::Single) | (Shape::Mirror(_), Topology::Mirror) => {}
        (Shape::Single, Topology::Mirror) => {}
        (Shape::Stripe(_), Topology::Stripe) => {}
        (Shape::Raidz(p, _), t)
            if t.vdev_word()
                == Some(["raidz1", "raidz2", "raidz3"][(p as usize).clamp(1, 3) - 1]) => {}
        (have, want) => cx.note(
            name,
            format!(
                "is {} but fleet.toml says {want}; zfleet does not rebuild a pool",
                have.describe()
            ),
        ),
    }
    if matches!(shape, Shape::Single | Shape::Mirror(_)) && pool.topology == Topology::Mirror {
        attach_to = present
            .first()
            .map(|(_, v, _)| v.clone())
            .or_else(|| leaves.first().map(|l| l.to_string()));
    }
    for (i, v, node) in &planned {
        if in_pool(node) {
            continue;
        }
        match outcomes.get(*i).map(|o| &o.content) {
            Some(Content::Empty) => match &attach_to {
                Some(existing) => cx.step(
                    P_POOL,
                    Action::Attach {
                        pool: name.to_string(),
                        existing: existing.clone(),
                        device: v.clone(),
                    },
                    format!("fleet.toml lists disk {} for the {}; it joins as a mirror (resilvered from {existing})", i + 1, pool.topology),
                ),
                None => cx.refuse(
                    pool.disks[*i].path.clone(),
                    format!("pool {name} is {} and cannot take disk {} by attach", shape.describe(), i + 1),
                    Some("only a single disk or a mirror grows by `zpool attach`; add it to the pool by hand if you mean it".into()),
                ),
            },
            Some(Content::Member) => cx.refuse(
                pool.disks[*i].path.clone(),
                format!("holds a label of pool {name} but is not one of its devices (an old member?)"),
                Some(format!("pass --wipe {} to use it again", pool.disks[*i].path)),
            ),
            Some(Content::Unknown) | None => {}
        }
    }

    // Pool properties.
    let props = cx.obs.pool_props.get(name).cloned().unwrap_or_default();
    for (k, want) in &pool.pool_options {
        match props.get(k) {
            None => cx.note(name, format!("pool property {k} is not known to this ZFS; {k}={want} is not set")),
            Some(have) if same_value(k, want, &have.value) => {}
            Some(have) if CREATE_ONLY_POOL_PROPERTIES.contains(&k.as_str()) => cx.note(
                name,
                format!("{k} is {} but fleet.toml says {want}; only `zpool create` sets it for the pool's disks", have.value),
            ),
            Some(have) => cx.step(
                P_POOLPROPS,
                Action::SetPoolProperty {
                    pool: name.to_string(),
                    property: k.clone(),
                    value: want.clone(),
                    was: have.value.clone(),
                },
                "differs from fleet.toml",
            ),
        }
    }
    let altroot = props
        .get("altroot")
        .map(|p| p.value.clone())
        .filter(|v| v != "-");
    compare_dataset(cx, name, &pool.root_options, altroot.as_deref());
    if let Some(ks) = cx.obs.datasets.get(name).and_then(|p| p.get("keystatus")) {
        if ks.value == "unavailable" {
            if let Some(secret) = pool.secret.clone() {
                cx.step(
                    P_POOL,
                    Action::LoadKey {
                        dataset: name.to_string(),
                        secret,
                    },
                    "its datasets are locked; new ones cannot be created below it",
                );
            }
        }
    }
    for d in &pool.datasets {
        let full = pool.full_name(&d.name);
        if !cx.obs.datasets.contains_key(&full) {
            create_dataset(cx, pool, d, "not there yet");
            continue;
        }
        compare_dataset(cx, &full, &d.options, altroot.as_deref());
        if d.blank {
            existing_blank(cx, &full);
        }
    }
}

fn compare_dataset(
    cx: &mut Cx<'_>,
    dataset: &str,
    want: &indexmap::IndexMap<String, String>,
    altroot: Option<&str>,
) {
    let have: BTreeMap<String, Prop> = cx.obs.datasets.get(dataset).cloned().unwrap_or_default();
    for (k, v) in want {
        let Some(h) = have.get(k) else {
            if !k.contains(':') {
                cx.note(
                    dataset,
                    format!("property {k} is not known to this ZFS; {k}={v} is not set"),
                );
            } else {
                cx.step(
                    P_DATASETS,
                    Action::SetProperty {
                        dataset: dataset.to_string(),
                        property: k.clone(),
                        value: v.clone(),
                        was: "-".into(),
                    },
                    "differs from fleet.toml",
                );
            }
            continue;
        };
        let mut value = h.value.clone();
        if k == "mountpoint" {
            if let Some(root) = altroot {
                if let Some(rest) = value.strip_prefix(root) {
                    value = if rest.is_empty() {
                        "/".to_string()
                    } else {
                        rest.to_string()
                    };
                }
            }
        }
        if same_value(k, v, &value) {
            continue;
        }
        if ONETIME_PROPERTIES.contains(&k.as_str()) {
            cx.note(
                dataset,
                format!(
                    "{k} is {value} but fleet.toml says {v}; it is fixed when a dataset is created"
                ),
            );
            continue;
        }
        cx.step(
            P_DATASETS,
            Action::SetProperty {
                dataset: dataset.to_string(),
                property: k.clone(),
                value: v.clone(),
                was: value,
            },
            "differs from fleet.toml",
        );
    }
}

fn existing_blank(cx: &mut Cx<'_>, dataset: &str) {
    let snap = format!("{dataset}@{BLANK_SNAPSHOT}");
    let props = cx.obs.datasets.get(dataset).cloned().unwrap_or_default();
    let recorded = props
        .get(BLANK_PROPERTY)
        .map(|p| p.value.clone())
        .filter(|v| v != "-" && !v.is_empty());
    match cx.obs.blanks.get(&snap).cloned() {
        None => {
            let used: u64 = props
                .get("referenced")
                .and_then(|p| crate::config::parse_size(&p.value).ok())
                .unwrap_or(u64::MAX);
            if recorded.is_some() {
                cx.note(
                    dataset,
                    format!("its blank snapshot {snap} is gone (recorded guid {}); `root rollback` will refuse until it is back", recorded.unwrap_or_default()),
                );
            } else if used <= BLANK_LIMIT {
                cx.step(
                    P_BLANKS,
                    Action::Snapshot {
                        snapshot: snap.clone(),
                    },
                    format!(
                        "the dataset has no {snap} and is still empty ({} referenced)",
                        crate::config::format_size(used)
                    ),
                );
                blank_steps(cx, dataset, false);
            } else {
                cx.note(
                    dataset,
                    format!("has no {snap}, and holds {} already: a snapshot now would not be blank, so none is taken", crate::config::format_size(used)),
                );
            }
        }
        Some(b) => {
            let held = match &b.holds {
                Some(tags) => tags.iter().any(|t| t == BLANK_HOLD),
                None => b.userrefs > 0,
            };
            if !held {
                cx.step(
                    P_BLANKS,
                    Action::Hold {
                        snapshot: snap.clone(),
                        tag: BLANK_HOLD.to_string(),
                    },
                    "a held snapshot cannot be destroyed by accident",
                );
            }
            match recorded {
                None => cx.step(
                    P_BLANKS,
                    Action::RecordBlank { dataset: dataset.to_string(), snapshot: snap.clone() },
                    "`root rollback` rolls back only to the snapshot recorded now",
                ),
                Some(g) if g == b.guid => {}
                Some(g) => cx.note(
                    dataset,
                    format!(
                        "{snap} has guid {} but {BLANK_PROPERTY} recorded {g}: it was replaced. `root rollback` refuses it; if that was you, `zfs set {BLANK_PROPERTY}={} {dataset}`",
                        b.guid, b.guid
                    ),
                ),
            }
        }
    }
}

/// Equal as ZFS means them: sizes as numbers of bytes, the rest as text.
fn same_value(property: &str, want: &str, have: &str) -> bool {
    if want == have {
        return true;
    }
    if SIZE_PROPERTIES.contains(&property) {
        let norm = |v: &str| {
            if v == "none" {
                Some(0)
            } else {
                crate::config::parse_size(v).ok()
            }
        };
        if let (Some(a), Some(b)) = (norm(want), norm(have)) {
            return a == b;
        }
    }
    // `on` and the value it stands for today: `compression=on` reads back as
    // `on`, but `checksum=on` and friends too; only exact words compare.
    want.eq_ignore_ascii_case(have) && property != "normalization"
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Single,
    Mirror(usize),
    Raidz(u8, usize),
    Stripe(usize),
    Other,
}

impl Shape {
    fn describe(self) -> String {
        match self {
            Shape::Single => "a single disk".into(),
            Shape::Mirror(n) => format!("a {n}-way mirror"),
            Shape::Raidz(p, n) => format!("raidz{p} of {n} disks"),
            Shape::Stripe(n) => format!("a stripe of {n} vdevs"),
            Shape::Other => "laid out otherwise".into(),
        }
    }
}

fn shape(vdevs: &[Vdev]) -> Shape {
    // Logs, caches and spares are listed after the data vdevs in `zpool
    // status`; parse_status keeps only the pool's own children.
    match vdevs {
        [v] if !v.is_group() => Shape::Single,
        [v] if v.name.starts_with("mirror") => Shape::Mirror(v.children.len()),
        [v] if v.name.starts_with("raidz") => {
            let p = v
                .name
                .as_bytes()
                .get(5)
                .map_or(1, |b| b.saturating_sub(b'0'));
            Shape::Raidz(p.max(1), v.children.len())
        }
        many if many.len() > 1 && many.iter().all(|v| !v.is_group()) => Shape::Stripe(many.len()),
        _ => Shape::Other,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
