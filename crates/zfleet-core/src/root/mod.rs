//! The ephemeral root (impermanence's): what the next rollback deletes
//! ([`diff`]), the boot-time rollback that refuses a blank snapshot it cannot
//! trust ([`rollback`]), and the initrd units that run it ([`initrd`]).

pub mod diff;
pub mod initrd;
pub mod rollback;

use serde::Serialize;

use crate::config::{HostLayout, PoolLayout, ESP_MOUNTPOINT};
use crate::exec::{Argv, RunOptions};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::layout::parse::parse_findmnt;
use crate::layout::plan::BLANK_SNAPSHOT;
use crate::zfs::cmd;
use crate::Error;
use diff::{Change, Group, Hint};

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub host: String,
    pub dataset: String,
    pub snapshot: String,
    /// Where the dataset is mounted now (`/` on the running system, `/mnt`
    /// in an installer).
    pub mounted_at: String,
    pub entries: Vec<Change>,
    pub groups: Vec<Group>,
    pub hints: Vec<Hint>,
    pub bytes: u64,
    /// Changes left out: in other datasets' mountpoints or persisted paths.
    pub excluded: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersistedReport {
    pub host: String,
    pub datasets: Vec<PersistedDataset>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersistedDataset {
    pub dataset: String,
    pub declared: Vec<String>,
    pub orphans: Vec<Change>,
    /// Why the dataset was not looked at.
    pub skipped: Option<String>,
}

/// The root pool and its ephemeral dataset.
pub fn ephemeral(layout: &HostLayout) -> Option<(&PoolLayout, String)> {
    let pool = layout.root_pool()?;
    let d = pool.ephemeral()?;
    Some((pool, pool.full_name(&d.name)))
}

fn mounts(host: &Host) -> Result<Vec<crate::layout::model::Mount>, Error> {
    let argv = Argv::new("findmnt").args(["--json", "--list", "--output", "SOURCE,TARGET,FSTYPE"]);
    let out = host
        .endpoint()
        .run(&argv, &RunOptions::timeout(QUERY_TIMEOUT))?;
    parse_findmnt(&out.stdout_text())
        .map_err(|m| Error::Internal(format!("on {}: findmnt: {m}", host.name)))
}

fn mounted_at(
    host: &Host,
    mounts: &[crate::layout::model::Mount],
    dataset: &str,
) -> Result<String, Error> {
    mounts
        .iter()
        .find(|m| m.source == dataset && m.fstype == "zfs")
        .map(|m| m.target.clone())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{dataset} is not mounted on {}; `zfs diff` compares a mounted file system (in an installer: `zfleet disks mount {} --root /mnt`)",
                host.name, host.name
            ))
        })
}

/// zfs-fuse's dialect (pool version 23) has no `zfs diff`.
fn needs_diff(host: &Host) -> Result<(), Error> {
    let caps = host.caps()?;
    if !matches!(caps.dialect, crate::zfs::Dialect::OpenZfs { .. }) {
        return Err(Error::Usage(format!(
            "`zfs diff` is not available on {} ({}); `root diff` needs OpenZFS",
            host.name,
            caps.describe()
        )));
    }
    Ok(())
}

fn zfs_diff(host: &Host, dataset: &str, at: &str, mountpoint: &str) -> Result<Vec<Change>, Error> {
    let argv = cmd::zfs()
        .args(["diff", "-H", "-F"])
        .arg(format!("{dataset}@{BLANK_SNAPSHOT}"))
        .arg(dataset);
    let out = host
        .endpoint()
        .run(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .map_err(crate::zfs::ZfsError::from)?;
    Ok(diff::parse_diff(&out.stdout_text(), at, mountpoint))
}

/// Sizes of the regular files among `changes`, with `stat` in batches.
fn sizes(host: &Host, changes: &mut [Change]) -> Result<(), Error> {
    let files: Vec<(usize, String)> = changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == 'F' && c.change != '-')
        .filter_map(|(i, c)| diff::unescape(&c.local).map(|p| (i, p)))
        .collect();
    for chunk in files.chunks(200) {
        let argv = Argv::new("stat")
            .args(["--printf", "%s %n\\0", "--"])
            .args(chunk.iter().map(|(_, p)| p.clone()));
        let out = host
            .endpoint()
            .run_unchecked(&argv, &RunOptions::timeout(QUERY_TIMEOUT))?;
        let text = out.stdout_text();
        for rec in text.split('\0') {
            let Some((size, name)) = rec.split_once(' ') else {
                continue;
            };
            if let Some((i, _)) = chunk.iter().find(|(_, p)| p == name) {
                changes[*i].size = size.parse().ok();
            }
        }
    }
    Ok(())
}

/// Mountpoints of everything but `dataset` that sits below `base`, as
/// paths relative to `base` (in the same system-path terms as the diff).
fn nested(layout: &HostLayout, dataset: &str, base: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in &layout.pools {
        let mut mps: Vec<&str> = p
            .datasets
            .iter()
            .filter(|d| p.full_name(&d.name) != dataset)
            .filter_map(|d| d.mountpoint.as_deref())
            .collect();
        if p.esp_size > 0 {
            mps.push(ESP_MOUNTPOINT);
        }
        for m in mps {
            if diff::within(m, base) && m != base {
                let rel = if base == "/" {
                    m.to_string()
                } else {
                    m[base.len()..].to_string()
                };
                out.push(rel);
            }
        }
    }
    out
}

/// `zfleet root diff`: what rolling the ephemeral root back would delete.
pub fn diff(host: &Host, layout: &HostLayout) -> Result<DiffReport, Error> {
    let (pool, dataset) = ephemeral(layout).ok_or_else(|| {
        Error::Usage(format!(
            "host `{}` has no ephemeral root: no dataset of its root pool has `ephemeral = true`",
            host.name
        ))
    })?;
    let mountpoint = pool
        .ephemeral()
        .and_then(|d| d.mountpoint.clone())
        .unwrap_or_else(|| "/".into());
    needs_diff(host)?;
    let m = mounts(host)?;
    let at = mounted_at(host, &m, &dataset)?;
    let mut changes = zfs_diff(host, &dataset, &at, &mountpoint)?;
    let mut exclude = nested(layout, &dataset, &mountpoint);
    exclude.extend(
        layout
            .pools
            .iter()
            .flat_map(|p| p.datasets.iter().flat_map(|d| d.persist.iter().cloned())),
    );
    let (mut lost, excluded) = diff::lost(&changes, &exclude);
    lost.sort_by(|a, b| a.path.cmp(&b.path));
    sizes(host, &mut lost)?;
    changes.clear();
    let groups = diff::groups(&lost);
    let hints = diff::hints(&lost);
    let bytes = lost.iter().filter_map(|c| c.size).sum();
    Ok(DiffReport {
        host: host.name.clone(),
        snapshot: format!("{dataset}@{BLANK_SNAPSHOT}"),
        dataset,
        mounted_at: at,
        entries: lost,
        groups,
        hints,
        bytes,
        excluded,
    })
}

/// `zfleet root diff --persisted`: paths in persisted datasets that the
/// fleet no longer declares.
pub fn persisted(host: &Host, layout: &HostLayout) -> Result<PersistedReport, Error> {
    needs_diff(host)?;
    let m = mounts(host)?;
    let mut datasets = Vec::new();
    for p in &layout.pools {
        for d in &p.datasets {
            if d.ephemeral || d.mountpoint.is_none() || !d.blank {
                continue;
            }
            let ds = p.full_name(&d.name);
            let mut entry = PersistedDataset {
                dataset: ds.clone(),
                declared: d.persist.clone(),
                orphans: Vec::new(),
                skipped: None,
            };
            if d.persist.is_empty() {
                entry.skipped = Some("declares no persisted paths".into());
                datasets.push(entry);
                continue;
            }
            let at = match mounted_at(host, &m, &ds) {
                Ok(at) => at,
                Err(e) => {
                    entry.skipped = Some(e.to_string());
                    datasets.push(entry);
                    continue;
                }
            };
            // impermanence shows `<mountpoint>/X` at `/X`.
            let changes = zfs_diff(host, &ds, &at, "/")?;
            let base = d.mountpoint.as_deref().unwrap_or("/");
            let exclude = nested(layout, &ds, base);
            let mut orphans = diff::orphans(&changes, &d.persist, &exclude);
            orphans.sort_by(|a, b| a.path.cmp(&b.path));
            sizes(host, &mut orphans)?;
            entry.orphans = orphans;
            datasets.push(entry);
        }
    }
    Ok(PersistedReport {
        host: host.name.clone(),
        datasets,
    })
}
