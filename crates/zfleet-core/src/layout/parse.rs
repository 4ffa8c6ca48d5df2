//! Parsers for what `observe` runs: `lsblk --json`, `wipefs --json`, the
//! symlinks under /dev/disk, `zpool status`/`zpool import` trees, `zpool get`,
//! `zfs get`, `findmnt --json`. Each is tested on output captured from real
//! systems (`tests/fixtures/layout/`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{Blank, BlockDevice, Importable, Mount, PoolState, Prop, Signature, Vdev};

/// A number as lsblk prints it: JSON numbers since util-linux 2.33, strings before.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Num {
    N(u64),
    S(String),
    Null(()),
}

impl Num {
    fn get(&self) -> u64 {
        match self {
            Num::N(n) => *n,
            Num::S(s) => s.trim().parse().unwrap_or(0),
            Num::Null(()) => 0,
        }
    }
}

#[derive(Debug, Deserialize)]
struct LsblkOut {
    blockdevices: Vec<LsblkDev>,
}

#[derive(Debug, Deserialize)]
struct LsblkDev {
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    size: Option<Num>,
    fstype: Option<String>,
    label: Option<String>,
    uuid: Option<String>,
    partlabel: Option<String>,
    parttype: Option<String>,
    pttype: Option<String>,
    mountpoint: Option<String>,
    #[serde(default)]
    children: Vec<LsblkDev>,
}

/// The columns `observe` asks lsblk for; `parse_lsblk` reads them by name.
pub const LSBLK_COLUMNS: &str =
    "NAME,TYPE,SIZE,FSTYPE,LABEL,UUID,PARTLABEL,PARTTYPE,PTTYPE,MOUNTPOINT";

/// `lsblk --json --bytes --paths -o LSBLK_COLUMNS`, flattened with parents
/// before children. A device appears once even when lsblk shows it under
/// several parents (a mirror's dm device).
pub fn parse_lsblk(text: &str) -> Result<Vec<BlockDevice>, String> {
    let out: LsblkOut = serde_json::from_str(text).map_err(|e| format!("not lsblk's JSON: {e}"))?;
    let mut flat = Vec::new();
    fn walk(d: &LsblkDev, parent: Option<&str>, out: &mut Vec<BlockDevice>) {
        if !out.iter().any(|x: &BlockDevice| x.path == d.name) {
            out.push(BlockDevice {
                path: d.name.clone(),
                kind: d.kind.clone().unwrap_or_default(),
                size: d.size.as_ref().map_or(0, Num::get),
                fstype: d.fstype.clone(),
                label: d.label.clone(),
                uuid: d.uuid.clone(),
                partlabel: d.partlabel.clone(),
                parttype: d.parttype.clone(),
                pttype: d.pttype.clone(),
                mountpoint: d.mountpoint.clone(),
                parent: parent.map(str::to_string),
            });
        }
        for c in &d.children {
            walk(c, Some(&d.name), out);
        }
    }
    for d in &out.blockdevices {
        walk(d, None, &mut flat);
    }
    Ok(flat)
}

/// `find /dev/disk /dev/mapper -type l -printf '%p\t%l\n'`: link → device
/// node, with relative targets (`../../vdb`) made absolute.
pub fn parse_links(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((link, target)) = line.split_once('\t') else {
            continue;
        };
        let abs = if target.starts_with('/') {
            target.to_string()
        } else {
            let dir = link.rsplit_once('/').map_or("", |(d, _)| d);
            normalize(&format!("{dir}/{target}"))
        };
        out.insert(link.to_string(), abs);
    }
    out
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[derive(Debug, Deserialize)]
struct WipefsOut {
    #[serde(default)]
    signatures: Vec<WipefsSig>,
}

#[derive(Debug, Deserialize)]
struct WipefsSig {
    device: String,
    offset: String,
    #[serde(rename = "type")]
    kind: String,
    uuid: Option<String>,
    label: Option<String>,
}

/// `wipefs --no-act --json DEV…`: signatures by the device's base name, as
/// wipefs prints it. Empty output means no signature anywhere.
pub fn parse_wipefs(text: &str) -> Result<BTreeMap<String, Vec<Signature>>, String> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let out: WipefsOut =
        serde_json::from_str(text).map_err(|e| format!("not wipefs's JSON: {e}"))?;
    let mut map: BTreeMap<String, Vec<Signature>> = BTreeMap::new();
    for s in out.signatures {
        let list = map.entry(s.device).or_default();
        // One file system or header is found at several offsets (a ZFS label
        // has four copies, LUKS2 two, FAT a backup boot sector): one entry each.
        if list
            .iter()
            .any(|x| x.kind == s.kind && x.uuid == s.uuid && x.label == s.label)
        {
            continue;
        }
        list.push(Signature {
            kind: s.kind,
            offset: s.offset,
            label: s.label,
            uuid: s.uuid,
        });
    }
    Ok(map)
}

/// The `config:` trees of `zpool status [-P]` (several pools) or of
/// `zpool import` (several candidates), by the order they appear.
fn parse_tree(lines: &[&str]) -> Vec<Vdev> {
    // (depth, vdev) stack; depth 0 is the pool's own line.
    let mut roots: Vec<Vdev> = Vec::new();
    let mut stack: Vec<(usize, Vdev)> = Vec::new();
    fn close(stack: &mut Vec<(usize, Vdev)>, depth: usize, roots: &mut Vec<Vdev>) {
        while let Some((d, _)) = stack.last() {
            if *d < depth {
                break;
            }
            let (d, v) = stack.pop().unwrap_or((0, Vdev::default_leaf()));
            match stack.last_mut() {
                Some((_, parent)) => parent.children.push(v),
                None if d == 0 => roots.push(v),
                None => roots.push(v),
            }
        }
    }
    for line in lines {
        let body = line.trim_start_matches('\t');
        let spaces = body.len() - body.trim_start_matches(' ').len();
        let depth = spaces / 2;
        let mut words = body.split_whitespace();
        let (Some(name), state) = (words.next(), words.next()) else {
            continue;
        };
        close(&mut stack, depth, &mut roots);
        stack.push((
            depth,
            Vdev {
                name: name.to_string(),
                state: state.unwrap_or("").to_string(),
                children: Vec::new(),
            },
        ));
    }
    close(&mut stack, 0, &mut roots);
    roots
}

impl Vdev {
    fn default_leaf() -> Vdev {
        Vdev {
            name: String::new(),
            state: String::new(),
            children: Vec::new(),
        }
    }
}

/// Splits the output into sections of `key: value` lines and a `config:` block.
struct Section<'a> {
    fields: Vec<(&'a str, String)>,
    config: Vec<&'a str>,
}

fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    let mut in_config = false;
    let mut last_key: Option<usize> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("pool:") {
            out.push(Section {
                fields: Vec::new(),
                config: Vec::new(),
            });
            in_config = false;
        }
        let Some(sec) = out.last_mut() else { continue };
        if in_config {
            if trimmed.is_empty() {
                if !sec.config.is_empty() {
                    in_config = false;
                }
                continue;
            }
            if trimmed.starts_with("errors:") {
                in_config = false;
            } else {
                // The column header of `zpool status`.
                if trimmed.starts_with("NAME") && trimmed.contains("STATE") {
                    continue;
                }
                sec.config.push(line);
                continue;
            }
        }
        if trimmed == "config:" {
            in_config = true;
            continue;
        }
        // `key: value`, where keys are single lowercase words at the start.
        if let Some((k, v)) = trimmed.split_once(':') {
            let key_like = !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase());
            let indented_key = line.starts_with(' ') || !line.starts_with('\t');
            if key_like && indented_key {
                sec.fields.push((k, v.trim().to_string()));
                last_key = Some(sec.fields.len() - 1);
                continue;
            }
        }
        // Continuation lines of `status:` and `action:` are tab-indented.
        if let Some(i) = last_key {
            if line.starts_with('\t') && !trimmed.is_empty() {
                let f = &mut sec.fields[i].1;
                f.push(' ');
                f.push_str(trimmed);
            }
        }
    }
    out
}

fn field(sec: &Section<'_>, key: &str) -> Option<String> {
    sec.fields
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
}

/// The vdevs below the pool in a `config:` tree. The tree's first root is
/// the pool itself; logs, cache and spares follow as roots of their own.
fn pool_vdevs(config: &[&str], name: &str) -> Vec<Vdev> {
    parse_tree(config)
        .into_iter()
        .find(|v| v.name == name)
        .map(|v| v.children)
        .unwrap_or_default()
}

/// Pools and their vdev trees from `zpool status [-P]`.
pub fn parse_status(text: &str) -> Vec<PoolState> {
    sections(text)
        .into_iter()
        .filter_map(|s| {
            let name = field(&s, "pool")?;
            let vdevs = pool_vdevs(&s.config, &name);
            Some(PoolState {
                state: field(&s, "state").unwrap_or_default(),
                name,
                vdevs,
            })
        })
        .collect()
}

/// Candidates from `zpool import` (the scan, no pool named).
pub fn parse_import(text: &str) -> Vec<Importable> {
    sections(text)
        .into_iter()
        .filter_map(|s| {
            let name = field(&s, "pool")?;
            let status = field(&s, "status");
            let action = field(&s, "action");
            let other_system = status
                .as_deref()
                .is_some_and(|t| t.contains("another system"))
                || action.as_deref().is_some_and(|t| t.contains("'-f'"));
            let vdevs = pool_vdevs(&s.config, &name);
            Some(Importable {
                id: field(&s, "id").unwrap_or_default(),
                state: field(&s, "state").unwrap_or_default(),
                status,
                action,
                other_system,
                name,
                vdevs,
            })
        })
        .collect()
}

/// zfs-fuse's `zpool get all POOL` table (`NAME PROPERTY VALUE SOURCE`,
/// aligned by spaces) as the tab-separated lines `-H` would print. Values
/// hold no spaces there.
pub fn legacy_pool_get(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().skip_while(|l| l.starts_with("NAME")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 3 && f[0] != "NAME" {
            let source = f.get(3).copied().unwrap_or("-");
            out.push_str(&format!("{}\t{}\t{}\t{source}\n", f[0], f[1], f[2]));
        }
    }
    out
}

/// `zpool get -H -o name,property,value,source all POOL…` (or `-p`).
pub fn parse_pool_get(text: &str) -> BTreeMap<String, BTreeMap<String, Prop>> {
    parse_get(text)
}

/// `zfs get -H -o name,property,value,source …`: name → property → value.
pub fn parse_get(text: &str) -> BTreeMap<String, BTreeMap<String, Prop>> {
    let mut out: BTreeMap<String, BTreeMap<String, Prop>> = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(name), Some(prop), Some(value)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let source = f.next().unwrap_or("-").to_string();
        out.entry(name.to_string()).or_default().insert(
            prop.to_string(),
            Prop {
                value: value.to_string(),
                source,
            },
        );
    }
    out
}

/// Blank snapshots from `zfs get -H -p -o name,property,value guid,userrefs
/// SNAP…` and, on OpenZFS, `zfs holds -H SNAP…`.
pub fn parse_blanks(get: &str, holds: Option<&str>) -> BTreeMap<String, Blank> {
    let props = parse_get(get);
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(h) = holds {
        for line in h.lines() {
            let mut f = line.split('\t');
            if let (Some(name), Some(tag)) = (f.next(), f.next()) {
                tags.entry(name.trim().to_string())
                    .or_default()
                    .push(tag.trim().to_string());
            }
        }
    }
    props
        .into_iter()
        .filter(|(name, _)| name.contains('@'))
        .filter_map(|(name, p)| {
            let guid = p.get("guid")?.value.clone();
            let userrefs = p
                .get("userrefs")
                .and_then(|u| u.value.parse().ok())
                .unwrap_or(0);
            let holds = holds.map(|_| tags.get(&name).cloned().unwrap_or_default());
            Some((
                name,
                Blank {
                    guid,
                    userrefs,
                    holds,
                },
            ))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct FindmntOut {
    #[serde(default)]
    filesystems: Vec<FindmntFs>,
}

#[derive(Debug, Deserialize)]
struct FindmntFs {
    source: Option<String>,
    target: Option<String>,
    fstype: Option<String>,
}

/// `findmnt --json --list -o SOURCE,TARGET,FSTYPE`, in mount order.
pub fn parse_findmnt(text: &str) -> Result<Vec<Mount>, String> {
    let out: FindmntOut =
        serde_json::from_str(text).map_err(|e| format!("not findmnt's JSON: {e}"))?;
    Ok(out
        .filesystems
        .into_iter()
        .map(|f| Mount {
            source: f.source.unwrap_or_default(),
            target: f.target.unwrap_or_default(),
            fstype: f.fstype.unwrap_or_default(),
        })
        .collect())
}

/// `hostid`: 8 hex digits.
pub fn parse_hostid(text: &str) -> Option<String> {
    let t = text.trim();
    (t.len() == 8 && t.chars().all(|c| c.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

/// The texts `observe` collects, before they are read.
#[derive(Debug, Default, Clone)]
pub struct Captured {
    pub lsblk: String,
    pub links: String,
    /// `wipefs --no-act --json` of the block devices (named by base name).
    pub wipefs: String,
    /// `wipefs` and sizes of file vdevs, by path.
    pub files: Vec<(String, u64, String)>,
    pub status: String,
    pub import: Vec<String>,
    pub pool_get: String,
    pub zfs_get: String,
    pub blanks: String,
    pub holds: Option<String>,
    pub findmnt: Option<String>,
    pub hostid: String,
    pub modern: bool,
    pub facts: BTreeMap<String, String>,
}

/// Reads what `observe` collected (or a test captured) into an [`Observed`].
pub fn assemble(c: &Captured) -> Result<super::model::Observed, String> {
    let mut obs = super::model::Observed {
        modern: c.modern,
        devices: parse_lsblk(&c.lsblk)?,
        links: parse_links(&c.links),
        ..Default::default()
    };
    // wipefs names devices by the base name of their node.
    for (base, sigs) in parse_wipefs_any(&c.wipefs)? {
        obs.signatures.insert(format!("/dev/{base}"), sigs);
    }
    for (path, size, wipefs) in &c.files {
        obs.files.insert(path.clone(), *size);
        let sigs = parse_wipefs_any(wipefs)?.into_values().flatten().collect();
        obs.signatures.insert(path.clone(), sigs);
    }
    obs.imported = parse_status(&c.status);
    for text in &c.import {
        for p in parse_import(text) {
            if !obs.importable.iter().any(|q| q.id == p.id) {
                obs.importable.push(p);
            }
        }
    }
    obs.pool_props = parse_pool_get(&c.pool_get);
    obs.datasets = parse_get(&c.zfs_get)
        .into_iter()
        .filter(|(name, _)| !name.contains('@'))
        .collect();
    obs.blanks = parse_blanks(&c.blanks, c.holds.as_deref());
    if let Some(f) = &c.findmnt {
        obs.mounts = parse_findmnt(f)?;
    }
    obs.hostid = parse_hostid(&c.hostid);
    obs.facts = c.facts.clone();
    Ok(obs)
}

/// wipefs prints one JSON document, or one per device in some versions.
pub fn parse_wipefs_any(text: &str) -> Result<BTreeMap<String, Vec<Signature>>, String> {
    if let Ok(m) = parse_wipefs(text) {
        return Ok(m);
    }
    let mut all: BTreeMap<String, Vec<Signature>> = BTreeMap::new();
    for doc in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        let doc = doc.map_err(|e| format!("not wipefs's JSON: {e}"))?;
        for (k, v) in parse_wipefs(&doc.to_string())? {
            all.entry(k).or_default().extend(v);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_relative_targets() {
        let m = parse_links(
            "/dev/disk/by-id/virtio-zfleet-disk4\t../../vde\n/dev/disk/by-id/virtio-zfleet-disk4-part2\t../../vde2\n/dev/mapper/crypted1\t../dm-0\n",
        );
        assert_eq!(m["/dev/disk/by-id/virtio-zfleet-disk4"], "/dev/vde");
        assert_eq!(m["/dev/disk/by-id/virtio-zfleet-disk4-part2"], "/dev/vde2");
        assert_eq!(m["/dev/mapper/crypted1"], "/dev/dm-0");
    }

    #[test]
    fn trees_nest_by_indentation() {
        let text = "  pool: zroot\n state: ONLINE\nconfig:\n\n\tNAME                      STATE     READ WRITE CKSUM\n\tzroot                     ONLINE       0     0     0\n\t  mirror-0                ONLINE       0     0     0\n\t    /dev/mapper/crypted1  ONLINE       0     0     0\n\t    /dev/mapper/crypted2  ONLINE       0     0     0\n\nerrors: No known data errors\n\n  pool: zstorage\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tzstorage    ONLINE       0     0     0\n\t  /dev/vdc  ONLINE       0     0     0\n\nerrors: No known data errors\n";
        let pools = parse_status(text);
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].name, "zroot");
        assert_eq!(pools[0].vdevs.len(), 1);
        assert_eq!(pools[0].vdevs[0].name, "mirror-0");
        assert_eq!(
            pools[0].leaves(),
            ["/dev/mapper/crypted1", "/dev/mapper/crypted2"]
        );
        assert_eq!(pools[1].leaves(), ["/dev/vdc"]);
    }
}
