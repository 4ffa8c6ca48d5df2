//! Reading what the servers hold and what the destination has: one `zfs`
//! listing per server (the client's whole tree of backups) and one per
//! destination pool, plus a property read for the chosen backup.

use std::sync::{Arc, Mutex};

use super::plan::{
    BackupCopy, BackupSnapshot, DestSnapshot, DestinationView, Existing, Leftover, ServerView,
    TEMP_MARK,
};
use crate::config::Fleet;
use crate::exec::{Argv, RunOptions};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::protocol::RECORDED_PREFIX;
use crate::runtime::Runtime;
use crate::zfs::{cmd, DatasetName, Dialect, Listing, PropertySource, ZfsError};
use crate::Error;

/// The fleet's hosts for this run, each made once (one ssh connection, one
/// dialect probe) and shared by every step that needs it.
pub struct Hosts<'a> {
    rt: &'a Runtime,
    made: Mutex<Vec<(String, Arc<Host>)>>,
}

impl<'a> Hosts<'a> {
    pub fn new(rt: &'a Runtime) -> Self {
        Self {
            rt,
            made: Mutex::new(Vec::new()),
        }
    }

    pub fn get(&self, name: &str) -> Result<Arc<Host>, Error> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, h)) = made.iter().find(|(n, _)| n == name) {
            return Ok(h.clone());
        }
        let h = Arc::new(self.rt.host(name)?);
        made.push((name.to_string(), h.clone()));
        Ok(h)
    }
}

/// One backed-up dataset of the host and where each server keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    pub client: String,
    pub dataset: DatasetName,
    /// (server, backup dataset), in fleet order.
    pub copies: Vec<(String, DatasetName)>,
}

impl Source {
    pub fn label(&self) -> String {
        format!("{}:{}", self.client, self.dataset)
    }
}

/// What `host` has backed up, limited to `datasets` (when not empty) and to
/// the server `from`. Every name is checked against the fleet file first.
pub fn sources(
    fleet: &Fleet,
    host: &str,
    datasets: &[DatasetName],
    from: Option<&str>,
) -> Result<Vec<Source>, Error> {
    let jobs: Vec<_> = fleet
        .jobs()
        .into_iter()
        .filter(|j| j.client == host)
        .collect();
    if jobs.is_empty() {
        if fleet.host(host).is_none() {
            return Err(Error::UnknownHost {
                name: host.to_string(),
                known: fleet.hosts.keys().cloned().collect(),
            });
        }
        return Err(Error::Usage(format!(
            "no server in {} backs up `{host}` (it needs a [hosts.{host}.backup] table, and a server that does not exclude it; `zfleet check` shows the jobs)",
            fleet.file.display()
        )));
    }
    if let Some(f) = from {
        if !fleet.host(f).is_some_and(|h| h.server.is_some()) {
            return Err(Error::Usage(fleet.not_a_server(f)));
        }
        if !jobs.iter().any(|j| j.server == f) {
            let why = fleet
                .server_plan(f)
                .and_then(|p| p.skipped.into_iter().find(|s| s.client == host))
                .map_or_else(|| "it has no job for it".to_string(), |s| s.reason);
            return Err(Error::Usage(format!(
                "`{f}` does not back up `{host}`: {why}"
            )));
        }
    }
    let mut out: Vec<Source> = Vec::new();
    for j in &jobs {
        if from.is_some_and(|f| j.server != f) {
            continue;
        }
        match out.iter_mut().find(|s| s.dataset == j.source) {
            Some(s) => s.copies.push((j.server.clone(), j.target.clone())),
            None => out.push(Source {
                client: host.to_string(),
                dataset: j.source.clone(),
                copies: vec![(j.server.clone(), j.target.clone())],
            }),
        }
    }
    for d in datasets {
        if !out.iter().any(|s| &s.dataset == d) {
            return Err(Error::Usage(format!(
                "`{d}` is not one of {host}'s backed-up datasets ({})",
                out.iter()
                    .map(|s| s.dataset.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if !datasets.is_empty() {
        out.retain(|s| datasets.contains(&s.dataset));
    }
    Ok(out)
}

/// Properties read with each server's listing.
fn server_extra(dialect: &Dialect) -> Vec<String> {
    let mut v = vec![
        format!("{RECORDED_PREFIX}mountpoint"),
        "mountpoint".to_string(),
        "mounted".to_string(),
    ];
    if matches!(dialect, Dialect::OpenZfs { .. }) {
        v.extend(["encryption".to_string(), "keystatus".to_string()]);
    }
    v
}

/// Every server's view of every source, one listing per server (of
/// `<target_root>/<client>`), servers in parallel.
pub fn servers(fleet: &Fleet, sources: &[Source], hosts: &Hosts) -> Vec<Vec<ServerView>> {
    let mut names: Vec<String> = Vec::new();
    for s in sources {
        for (server, _) in &s.copies {
            if !names.contains(server) {
                names.push(server.clone());
            }
        }
    }
    let client = sources
        .first()
        .map(|s| s.client.clone())
        .unwrap_or_default();
    let listings: Vec<Result<Option<Listing>, String>> =
        crate::parallel::map(&names, names.len(), |server| {
            let root = fleet
                .host(server)
                .and_then(|h| h.server.as_ref())
                .map(|r| r.target_root.join(&client));
            let run = || -> Result<Option<Listing>, Error> {
                let root = match root {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(Error::Internal(format!("`{server}` is not a server"))),
                };
                let h = hosts.get(server)?;
                let extra = server_extra(&h.caps()?.dialect);
                h.observe_if_exists(&root, &extra)
            };
            run().map_err(|e| e.to_string())
        });
    sources
        .iter()
        .map(|s| {
            s.copies
                .iter()
                .map(|(server, backup)| {
                    let i = names.iter().position(|n| n == server).unwrap_or(0);
                    match &listings[i] {
                        Err(e) => ServerView::Failed {
                            server: server.clone(),
                            error: e.clone(),
                        },
                        Ok(l) => copy_from(server, backup, l.as_ref()),
                    }
                })
                .collect()
        })
        .collect()
}

fn copy_from(server: &str, backup: &DatasetName, l: Option<&Listing>) -> ServerView {
    let no_copy = || ServerView::NoCopy {
        server: server.to_string(),
        backup: backup.clone(),
    };
    let Some(l) = l else { return no_copy() };
    let Some(d) = l.dataset(backup) else {
        return no_copy();
    };
    let prop = |k: &str| d.props.get(k).cloned();
    ServerView::Copy(BackupCopy {
        server: server.to_string(),
        backup: backup.clone(),
        snapshots: l
            .snapshots_of(backup)
            .iter()
            .map(|o| BackupSnapshot {
                name: o.name.short().to_string(),
                guid: o.guid,
                createtxg: o.createtxg,
                creation: o.creation,
                referenced: o.referenced,
                used: o.used,
            })
            .collect(),
        encrypted: prop("encryption").is_some_and(|e| e != "off"),
        key_loaded: prop("keystatus").is_some_and(|k| k == "available"),
        recorded_mountpoint: prop(&format!("{RECORDED_PREFIX}mountpoint")),
        mounted_at: if prop("mounted").as_deref() == Some("yes") {
            prop("mountpoint")
        } else {
            None
        },
    })
}

/// The backup's `zfleet:src:*` properties (the client's own, recorded at
/// backup), without the prefix.
pub fn recorded(server: &Host, backup: &DatasetName) -> Result<Vec<(String, String)>, Error> {
    let rows = server.properties(backup)?;
    Ok(rows
        .into_iter()
        .filter(|r| matches!(r.source, PropertySource::Local | PropertySource::Received))
        .filter_map(|r| {
            r.property
                .strip_prefix(RECORDED_PREFIX)
                .map(|p| (p.to_string(), r.value))
        })
        .collect())
}

/// The pool's altroot, or `None`.
pub(crate) fn altroot(h: &Host, ds: &DatasetName) -> Result<Option<String>, Error> {
    // `zpool list -o altroot` rather than `zpool get`: zfs-fuse's `get`
    // knows neither -H nor -o.
    let argv = cmd::zpool()
        .args(["list", "-H", "-o", "altroot"])
        .arg(ds.pool().as_str());
    let out = h.query(&argv)?;
    let v = out.stdout_text().trim().to_string();
    Ok((!v.is_empty() && v != "-").then_some(v))
}

/// Every imported pool's altroot: (pool, altroot), only where there is one.
pub(crate) fn altroots(h: &Host) -> Result<Vec<(String, String)>, Error> {
    let out = h.query(&cmd::zpool().args(["list", "-H", "-o", "name,altroot"]))?;
    Ok(out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, a)| !a.is_empty() && *a != "-" && *a != "/")
        .map(|(p, a)| (p.to_string(), a.to_string()))
        .collect())
}

/// The first few entries of a directory on `h` (not `.zfs`), as names.
pub(crate) fn root_entries(h: &Host, dir: &str) -> Result<Vec<String>, Error> {
    let argv = Argv::new("sh").args([
        "-c",
        "find \"$1\" -mindepth 1 -maxdepth 1 ! -name .zfs | head -n 20",
        "sh",
        dir,
    ]);
    let out = h
        .endpoint()
        .run(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .map_err(ZfsError::from)?;
    Ok(out
        .stdout_text()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_string())
        .collect())
}

fn dest_extra(dialect: &Dialect) -> Vec<String> {
    let mut v = vec![
        "mountpoint".to_string(),
        "canmount".to_string(),
        "mounted".to_string(),
        TEMP_MARK.to_string(),
    ];
    if matches!(dialect, Dialect::OpenZfs { .. }) {
        v.push("written".to_string());
    }
    v
}

/// The destination as the planner needs it: one listing of its pool, the
/// altroot, and for an existing dataset its local properties and (when
/// mounted) what its root directory holds.
pub fn destination(h: &Host, ds: &DatasetName, original: bool) -> Result<DestinationView, Error> {
    let dialect = h.caps()?.dialect.clone();
    let pool = ds.pool().dataset();
    let listing = h.observe_if_exists(&pool, &dest_extra(&dialect))?;
    let mut view = DestinationView {
        host: h.name.clone(),
        dataset: ds.clone(),
        original,
        pool_exists: listing.is_some(),
        altroot: None,
        existing: None,
        missing_parents: Vec::new(),
        inherited_mountpoint: None,
        mounts: Vec::new(),
        leftover: None,
    };
    let Some(l) = listing else { return Ok(view) };
    view.altroot = altroot(h, ds)?;
    view.existing = existing(h, &l, ds)?;
    let temp = super::plan::temp_name(ds)?;
    view.leftover = l.dataset(&temp).map(|d| Leftover {
        dataset: temp.clone(),
        ours: d.props.contains_key(TEMP_MARK),
        guid: l.snapshots_of(&temp).last().map(|s| s.guid),
    });
    // The nearest existing ancestor, and what `ds` would inherit from it.
    let mut missing = Vec::new();
    let mut cur = ds.parent();
    while let Some(p) = cur {
        if let Some(o) = l.dataset(&p) {
            view.inherited_mountpoint = o.props.get("mountpoint").map(|m| {
                if m.starts_with('/') {
                    let rel = &ds.as_str()[p.as_str().len() + 1..];
                    format!("{}/{rel}", m.trim_end_matches('/'))
                } else {
                    m.clone()
                }
            });
            break;
        }
        cur = p.parent();
        missing.push(p);
    }
    missing.reverse();
    view.missing_parents = missing;
    view.mounts = l
        .datasets()
        .filter(|o| o.props.get("canmount").map(String::as_str) == Some("on"))
        .filter_map(|o| {
            let m = o.props.get("mountpoint")?;
            m.starts_with('/')
                .then(|| (o.name.dataset().clone(), m.clone()))
        })
        .collect();
    Ok(view)
}

/// The dataset `ds` as it is, if it exists.
pub(crate) fn existing(h: &Host, l: &Listing, ds: &DatasetName) -> Result<Option<Existing>, Error> {
    let Some(d) = l.dataset(ds) else {
        return Ok(None);
    };
    let prop = |k: &str| d.props.get(k).cloned();
    let mounted = prop("mounted").as_deref() == Some("yes");
    let mountpoint = prop("mountpoint");
    let root_entries = match (&mountpoint, mounted) {
        (Some(m), true) if m.starts_with('/') => {
            // Directories made to hold other datasets' mountpoints (`save`
            // in /persist for /persist/save) are not its data.
            let prefix = format!("{}/", m.trim_end_matches('/'));
            let holders: Vec<String> = l
                .datasets()
                .filter(|o| o.name.dataset() != ds)
                .filter(|o| o.props.get("mounted").map(String::as_str) == Some("yes"))
                .filter_map(|o| o.props.get("mountpoint")?.strip_prefix(&prefix))
                .filter_map(|rest| rest.split('/').next().map(str::to_string))
                .collect();
            let mut entries = root_entries(h, m)?;
            entries.retain(|e| !holders.contains(e));
            Some(entries)
        }
        _ => None,
    };
    let local_properties = h
        .properties(ds)?
        .into_iter()
        .filter(|r| r.source == PropertySource::Local)
        .map(|r| (r.property, r.value))
        .collect();
    Ok(Some(Existing {
        snapshots: l
            .snapshots_of(ds)
            .iter()
            .map(|o| DestSnapshot {
                name: o.name.short().to_string(),
                guid: o.guid,
                creation: o.creation,
                referenced: o.referenced,
            })
            .collect(),
        referenced: d.referenced,
        written: prop("written").and_then(|w| w.parse().ok()),
        children: l
            .datasets()
            .filter(|o| o.name.dataset() != ds && o.name.dataset().is_within(ds))
            .map(|o| o.name.dataset().clone())
            .collect(),
        mounted,
        mountpoint,
        canmount: prop("canmount"),
        root_entries,
        local_properties,
    }))
}
