//! `--path`: single files or directories from a backup snapshot, written back
//! to their place on the host (or `--into` a directory), with tar between the
//! two ssh connections: content, modes, numeric owners, times, symlinks and
//! hard links, nothing else touched.
//!
//! The file tree is read on the server from the snapshot itself: the
//! `.zfs/snapshot/NAME` directory where the backup is mounted and the dialect
//! has one, otherwise a temporary read-only clone, destroyed afterwards.

use std::time::Instant;

use serde::Serialize;

use super::exec::retry_busy;
use super::observe::{self, Hosts};
use super::plan::{self, Choice, Refusal, Selector, ServerView};
use super::{Outcome, Target};
use crate::exec::{Argv, RunOptions};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::progress::Progress;
use crate::runtime::Runtime;
use crate::transfer::{transfer, PumpOptions, Stream};
use crate::zfs::{cmd, DatasetName, SnapshotName, ZfsError};
use crate::Error;

#[derive(Debug, Clone)]
pub struct FileRequest {
    pub host: String,
    /// Absolute, as on the host.
    pub path: String,
    /// Write it below this directory instead of at its place.
    pub into: Option<String>,
    pub selector: Selector,
    pub from: Option<String>,
    pub to: Option<Target>,
    pub force: bool,
    pub dry_run: bool,
    pub pump: PumpOptions,
}

/// `/a//b/./c/` → `/a/b/c`; relative paths and `..` are refused.
pub fn normalize(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("`{path}` contains `..`; write the path without it")),
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The candidate whose mountpoint is the longest prefix of `path`, and the
/// path relative to it (empty for the mountpoint itself).
pub fn map_path<'a, T>(path: &str, candidates: &'a [(T, String)]) -> Option<(&'a T, String)> {
    candidates
        .iter()
        .filter_map(|(t, mp)| {
            let mp = mp.trim_end_matches('/');
            let rest = path.strip_prefix(mp)?;
            if rest.is_empty() {
                Some((t, mp.len(), String::new()))
            } else if let Some(r) = rest.strip_prefix('/') {
                Some((t, mp.len(), r.to_string()))
            } else if mp.is_empty() {
                // A mountpoint of `/`.
                Some((t, 0, rest.trim_start_matches('/').to_string()))
            } else {
                None
            }
        })
        .max_by_key(|(_, len, _)| *len)
        .map(|(t, _, rel)| (t, rel))
}

/// Where the tree is read from on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reader {
    /// `<mountpoint>/.zfs/snapshot/<name>` of the mounted backup.
    Snapdir { dir: String },
    /// A read-only clone mounted at `mountpoint`, destroyed afterwards.
    Clone {
        snapshot: SnapshotName,
        clone: DatasetName,
        mountpoint: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePlan {
    /// `client1:zroot/persistSave`.
    pub source: String,
    pub choice: Choice,
    /// The path below the dataset's mountpoint (empty: all of it).
    pub relative: String,
    pub reader: Reader,
    /// What is read instead when the snapshot directory shows nothing:
    /// OpenZFS mounts `.zfs/snapshot/NAME` on first access in the initial
    /// mount namespace, which a zfleet in a private one (a container, a
    /// hardened service) does not see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Reader>,
    /// `client1`.
    pub destination_host: String,
    /// The directory tar extracts in, and the member it writes there.
    pub extract_in: String,
    pub member: String,
    /// Directories between the dataset's root and the path that are missing
    /// on the host, restored too (only themselves, not their other content).
    pub missing_parents: Vec<String>,
    /// Create the `--into` directory first.
    pub create_into: bool,
    /// `--force` over an existing path: a snapshot of the host's dataset first.
    pub safety_snapshot: Option<SnapshotName>,
    pub steps: Vec<FileStep>,
    pub notes: Vec<String>,
}

/// One step of a file restore, as `--dry-run` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum FileStep {
    /// Read the snapshot's own directory on the server (or a clone, if that
    /// shows nothing from here).
    ReadSnapshotDirectory {
        server: String,
        snapshot: String,
        dir: String,
    },
    /// Clone the snapshot read-only on the server to read it.
    CloneReadOnly {
        server: String,
        snapshot: SnapshotName,
        clone: DatasetName,
        mountpoint: String,
    },
    SafetySnapshot {
        host: String,
        snapshot: SnapshotName,
    },
    CreateDirectory {
        host: String,
        dir: String,
    },
    /// Directories between the dataset's root and the path, restored as themselves.
    RecreateParents {
        dirs: Vec<String>,
    },
    /// tar from the server to the host.
    Copy {
        what: String,
        host: String,
        to: String,
    },
    DestroyClone {
        server: String,
    },
}

impl FileStep {
    pub fn describe(&self) -> String {
        match self {
            FileStep::ReadSnapshotDirectory {
                server,
                snapshot,
                dir,
            } => format!(
                "read @{snapshot} on {server} from {dir} (or from a temporary read-only clone, if that directory shows nothing from here)"
            ),
            FileStep::CloneReadOnly {
                server,
                snapshot,
                clone,
                mountpoint,
            } => format!(
                "clone {snapshot} read-only as {clone} (mounted at {mountpoint}) on {server} to read it"
            ),
            FileStep::SafetySnapshot { host, snapshot } => {
                format!("take the safety snapshot {host}:{snapshot}")
            }
            FileStep::CreateDirectory { host, dir } => {
                format!("create the directory {host}:{dir}")
            }
            FileStep::RecreateParents { dirs } => format!(
                "recreate the missing director{} {} with their backed-up modes, owners and times",
                if dirs.len() == 1 { "y" } else { "ies" },
                dirs.join(", ")
            ),
            FileStep::Copy { what, host, to } => format!(
                "copy {what} to {host}:{to} with tar (content, modes, numeric owners, times, symlinks, hard links)"
            ),
            FileStep::DestroyClone { server } => format!("destroy the clone on {server}"),
        }
    }
}

/// The host where the files go, as the planner needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileView {
    /// The server's dialect has `.zfs/snapshot` directories (OpenZFS).
    pub server_snapdirs: bool,
    /// Where the destination dataset is mounted (for a restore in place).
    pub mounted_at: Option<String>,
    /// Which of [`probes`] exist on the host.
    pub existing: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub host: String,
    pub path: String,
    /// `client1:/persist/save/docs` (where it is written).
    pub destination: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<FilePlan>,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Restores one path. Errors before anything could be judged (an unknown
/// host, a path in no backed-up dataset) are `Err`; the rest is in the report.
pub fn restore_path(
    rt: &Runtime,
    req: &FileRequest,
    hosts: &Hosts,
    progress: &dyn Progress,
) -> Result<FileReport, Error> {
    let (fleet, now, tz) = (&rt.fleet, rt.now(), &rt.tz);
    let started = Instant::now();
    let path = normalize(&req.path).map_err(Error::Usage)?;
    if let Some(into) = &req.into {
        normalize(into).map_err(Error::Usage)?;
    }
    let sources = observe::sources(fleet, &req.host, &[], req.from.as_deref())?;
    let dest_host = req.to.as_ref().map_or(req.host.clone(), |t| t.host.clone());
    if fleet.host(&dest_host).is_none() {
        return Err(Error::UnknownHost {
            name: dest_host,
            known: fleet.hosts.keys().cloned().collect(),
        });
    }
    let views = observe::servers(fleet, &sources, hosts);
    let dest = hosts.get(&dest_host)?;
    // A pool imported with an altroot (an installer, the lab) shows every
    // path below it: the path given may be either.
    let altroots = observe::altroots(&dest)?;
    // Each backed-up dataset's recorded mountpoint, from any server that has it.
    let mut candidates: Vec<(usize, String)> = Vec::new();
    for (i, vs) in views.iter().enumerate() {
        let pool = sources[i].dataset.pool();
        let alt = altroots
            .iter()
            .find(|(p, _)| p == pool.as_str())
            .map(|(_, a)| a.as_str());
        for v in vs {
            if let ServerView::Copy(c) = v {
                if let Some(m) = &c.recorded_mountpoint {
                    let shown = plan::with_altroot(m, alt);
                    for m in [m, &shown] {
                        if m.starts_with('/') && !candidates.iter().any(|(j, n)| *j == i && n == m)
                        {
                            candidates.push((i, m.clone()));
                        }
                    }
                }
            }
        }
    }
    let Some((&idx, rel)) = map_path(&path, &candidates) else {
        return Err(Error::Usage(format!(
            "`{path}` is in none of {}'s backed-up datasets (recorded mountpoints: {})",
            req.host,
            if candidates.is_empty() {
                "none yet".to_string()
            } else {
                candidates
                    .iter()
                    .map(|(i, m)| format!("{} at {m}", sources[*i].dataset))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    };
    let source = &sources[idx];
    let mut report = FileReport {
        host: req.host.clone(),
        path: path.clone(),
        destination: String::new(),
        outcome: Outcome::Planned,
        plan: None,
        bytes: 0,
        seconds: 0.0,
        warnings: Vec::new(),
    };
    let what = source.label();
    let refuse = |r: Refusal, report: &mut FileReport| {
        report.outcome = Outcome::Refused {
            kind: r.kind(),
            message: r.message(&what, tz),
            hint: r.hint(),
        };
        report.seconds = started.elapsed().as_secs_f64();
    };
    let choice = match plan::choose(&views[idx], &req.selector, req.from.as_deref(), tz) {
        Ok(c) => c,
        Err(r) => {
            refuse(r, &mut report);
            return Ok(report);
        }
    };
    let copy = views[idx].iter().find_map(|v| match v {
        ServerView::Copy(c) if c.server == choice.server => Some(c.clone()),
        _ => None,
    });
    if copy.as_ref().is_some_and(|c| c.encrypted && !c.key_loaded) {
        refuse(
            Refusal::EncryptedFiles {
                server: choice.server.clone(),
                host: req.host.clone(),
                dataset: source.dataset.clone(),
            },
            &mut report,
        );
        return Ok(report);
    }
    let server = hosts.get(&choice.server)?;
    let dest_ds = req
        .to
        .as_ref()
        .and_then(|t| t.dataset.clone())
        .unwrap_or_else(|| source.dataset.clone());
    let stamp = super::time::stamp(now);
    let view = observe_files(req, source, &rel, &server, &dest, &dest_ds)?;
    let planned = match plan_files(
        req,
        source,
        &choice,
        copy.as_ref(),
        &rel,
        &dest.name,
        &dest_ds,
        &view,
        &stamp,
    ) {
        Ok(p) => p,
        Err(r) => {
            refuse(r, &mut report);
            return Ok(report);
        }
    };
    report.destination = format!(
        "{}:{}",
        dest.name,
        join(&planned.extract_in, &planned.member)
    );
    report.plan = Some(planned.clone());
    if req.dry_run {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    match run(&planned, &server, &dest, req.pump, progress) {
        Ok((bytes, warnings)) => {
            report.bytes = bytes;
            report.warnings = warnings;
            report.outcome = Outcome::Restored;
        }
        Err(Refusable::Refused(r)) => refuse(r, &mut report),
        Err(Refusable::Error(e)) => {
            report.outcome = Outcome::failed(&e);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn join(dir: &str, member: &str) -> String {
    match member {
        "." => dir.to_string(),
        m => format!("{}/{m}", dir.trim_end_matches('/')),
    }
}

/// What a file restore writes: the directory tar extracts in, and the
/// member it writes there; the name it gets with `--into`.
fn placement(req: &FileRequest, source: &observe::Source, rel: &str) -> Option<(String, String)> {
    let into = normalize(req.into.as_deref()?).ok()?;
    let name = if rel.is_empty() {
        source
            .dataset
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or("restored")
            .to_string()
    } else {
        rel.rsplit('/').next().unwrap_or(rel).to_string()
    };
    Some((into, name))
}

/// The paths on the host whose existence the plan depends on: with `--into`,
/// the path it would write and the directory; in place, the path and each
/// directory between the dataset's root (`mounted_at`) and it.
pub fn probes(into: Option<(&str, &str)>, rel: &str, mounted_at: Option<&str>) -> Vec<String> {
    match (into, mounted_at) {
        (Some((into, name)), _) => vec![join(into, name), into.to_string()],
        (None, Some(mp)) => {
            let mp = mp.trim_end_matches('/');
            let mut probe = vec![join(mp, if rel.is_empty() { "." } else { rel })];
            let parts: Vec<&str> = if rel.is_empty() {
                Vec::new()
            } else {
                rel.split('/').collect()
            };
            for i in 1..parts.len() {
                probe.push(join(mp, &parts[..i].join("/")));
            }
            probe
        }
        (None, None) => Vec::new(),
    }
}

/// Reads what the plan needs from the host and the server.
fn observe_files(
    req: &FileRequest,
    source: &observe::Source,
    rel: &str,
    server: &Host,
    dest: &Host,
    dest_ds: &DatasetName,
) -> Result<FileView, Error> {
    let server_snapdirs = matches!(server.caps()?.dialect, crate::zfs::Dialect::OpenZfs { .. });
    let into = placement(req, source, rel);
    let mounted = if into.is_none() {
        mounted_at(dest, dest_ds)?
    } else {
        None
    };
    let probe = probes(
        into.as_ref().map(|(i, n)| (i.as_str(), n.as_str())),
        rel,
        mounted.as_deref(),
    );
    let existing = if probe.is_empty() {
        Vec::new()
    } else {
        existing_paths(dest, &probe)?
    };
    Ok(FileView {
        server_snapdirs,
        mounted_at: mounted,
        existing,
    })
}

/// Decides where the tree goes and how it is read — a pure function of the
/// request, the choice and what [`observe_files`] saw.
#[allow(clippy::too_many_arguments)]
pub fn plan_files(
    req: &FileRequest,
    source: &observe::Source,
    choice: &Choice,
    copy: Option<&plan::BackupCopy>,
    rel: &str,
    dest_host: &str,
    dest_ds: &DatasetName,
    view: &FileView,
    stamp: &str,
) -> Result<FilePlan, Refusal> {
    let bad_name = |e: crate::zfs::NameError| Refusal::NameTooLong {
        destination: format!("{}:{}", choice.server, choice.backup),
        error: e.reason,
    };
    let snap = choice
        .backup
        .snapshot(&choice.snapshot.name)
        .map_err(bad_name)?;
    let clone = Reader::Clone {
        snapshot: snap.clone(),
        clone: DatasetName::parse(&format!("{}-zfleet-files-{stamp}", choice.backup))
            .map_err(bad_name)?,
        mountpoint: format!("/run/zfleet/restore-{stamp}"),
    };
    let (reader, fallback) = match copy.and_then(|c| c.mounted_at.clone()) {
        Some(mp) if view.server_snapdirs => (
            Reader::Snapdir {
                dir: format!("{}/.zfs/snapshot/{}", mp.trim_end_matches('/'), snap.name),
            },
            Some(clone),
        ),
        _ => (clone, None),
    };
    let found = |p: &str| view.existing.iter().any(|e| e == p);
    let mut missing_parents = Vec::new();
    let mut safety_snapshot = None;
    let (extract_in, member, create_into) = match placement(req, source, rel) {
        Some((into, name)) => {
            let target = join(&into, &name);
            if found(&target) {
                return Err(Refusal::PathTaken {
                    destination: format!("{dest_host}:{target}"),
                });
            }
            let create = !found(&into);
            if rel.is_empty() {
                (target, ".".to_string(), true)
            } else {
                (into, name, create)
            }
        }
        None => {
            let Some(mp) = &view.mounted_at else {
                return Err(Refusal::NotMounted {
                    destination: format!("{dest_host}:{dest_ds}"),
                });
            };
            let mp = mp.trim_end_matches('/').to_string();
            let member = if rel.is_empty() { "." } else { rel };
            let target = join(&mp, member);
            if found(&target) {
                if !req.force {
                    return Err(Refusal::PathExists {
                        destination: format!("{dest_host}:{target}"),
                        snapshot: choice.snapshot.name.clone(),
                        dataset: dest_ds.clone(),
                        stamp: stamp.to_string(),
                    });
                }
                safety_snapshot = Some(
                    dest_ds
                        .snapshot(&format!("zfleet_before_restore_{stamp}"))
                        .map_err(bad_name)?,
                );
            }
            let parts: Vec<&str> = rel.split('/').collect();
            for i in 1..parts.len() {
                if !found(&join(&mp, &parts[..i].join("/"))) {
                    missing_parents.push(parts[..i].join("/"));
                }
            }
            (mp, member.to_string(), false)
        }
    };
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    match &reader {
        Reader::Snapdir { dir } => steps.push(FileStep::ReadSnapshotDirectory {
            server: choice.server.clone(),
            snapshot: snap.name.clone(),
            dir: dir.clone(),
        }),
        Reader::Clone {
            snapshot,
            clone,
            mountpoint,
        } => steps.push(FileStep::CloneReadOnly {
            server: choice.server.clone(),
            snapshot: snapshot.clone(),
            clone: clone.clone(),
            mountpoint: mountpoint.clone(),
        }),
    }
    if let Some(s) = &safety_snapshot {
        steps.push(FileStep::SafetySnapshot {
            host: dest_host.to_string(),
            snapshot: s.clone(),
        });
    }
    if create_into {
        steps.push(FileStep::CreateDirectory {
            host: dest_host.to_string(),
            dir: extract_in.clone(),
        });
    }
    if !missing_parents.is_empty() {
        steps.push(FileStep::RecreateParents {
            dirs: missing_parents.clone(),
        });
    }
    steps.push(FileStep::Copy {
        what: if rel.is_empty() {
            "everything".into()
        } else {
            rel.to_string()
        },
        host: dest_host.to_string(),
        to: join(&extract_in, &member),
    });
    if matches!(reader, Reader::Clone { .. }) {
        steps.push(FileStep::DestroyClone {
            server: choice.server.clone(),
        });
    }
    if safety_snapshot.is_some() {
        notes.push(format!(
            "what was at the path before is in {dest_host}:{dest_ds}@zfleet_before_restore_{stamp}"
        ));
    }
    Ok(FilePlan {
        source: source.label(),
        choice: choice.clone(),
        relative: rel.to_string(),
        reader,
        fallback,
        destination_host: dest_host.to_string(),
        extract_in,
        member,
        missing_parents,
        create_into,
        safety_snapshot,
        steps,
        notes,
    })
}

/// The dataset's mountpoint on `h`, if it is mounted there.
fn mounted_at(h: &Host, ds: &DatasetName) -> Result<Option<String>, Error> {
    let argv = cmd::zfs()
        .args(["get", "-H", "-o", "property,value", "mounted,mountpoint"])
        .arg(ds.as_str());
    match h.endpoint().run(&argv, &RunOptions::timeout(QUERY_TIMEOUT)) {
        Ok(out) => {
            let text = out.stdout_text();
            let get = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}\t")).map(str::to_string))
            };
            Ok(match (get("mounted").as_deref(), get("mountpoint")) {
                (Some("yes"), Some(m)) if m.starts_with('/') => Some(m),
                _ => None,
            })
        }
        Err(e) => {
            let z = ZfsError::from(e);
            if matches!(z.kind, crate::zfs::ZfsErrorKind::DoesNotExist { .. }) {
                Ok(None)
            } else {
                Err(z.into())
            }
        }
    }
}

/// Which of `paths` exist on `h` (symlinks count, even dangling), in one command.
fn existing_paths(h: &Host, paths: &[String]) -> Result<Vec<String>, Error> {
    let argv = Argv::new("sh")
        .args([
            "-c",
            "for p in \"$@\"; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then printf '%s\\n' \"$p\"; fi; done",
            "sh",
        ])
        .args(paths.iter().map(String::as_str));
    let out = h
        .endpoint()
        .run(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .map_err(ZfsError::from)?;
    Ok(out.stdout_text().lines().map(str::to_string).collect())
}

/// The sending tar: from the dataset's root for a path restored in place
/// (so missing parents can come along, as themselves only), from the path's
/// own directory for --into. Names go in as `./NAME`, so none can be taken
/// for an option.
pub fn tar_create(p: &FilePlan, root: &str) -> Argv {
    let dot = |n: &str| {
        if n == "." {
            ".".to_string()
        } else {
            format!("./{n}")
        }
    };
    let mut create = Argv::new("tar").args([
        "--create",
        "--file=-",
        "--numeric-owner",
        "--sparse",
        "--xattrs",
        "--acls",
    ]);
    if p.relative.is_empty() || p.member == p.relative {
        create = create.arg("-C").arg(root);
        if !p.missing_parents.is_empty() {
            create = create
                .arg("--no-recursion")
                .args(p.missing_parents.iter().map(|m| dot(m)))
                .arg("--recursion");
        }
    } else {
        let parent = p
            .relative
            .rsplit_once('/')
            .map_or(root.to_string(), |(dir, _)| join(root, dir));
        create = create.arg("-C").arg(parent);
    }
    create.arg(dot(&p.member))
}

enum Refusable {
    Refused(Refusal),
    Error(Error),
}

impl From<Error> for Refusable {
    fn from(e: Error) -> Self {
        Refusable::Error(e)
    }
}

fn run(
    p: &FilePlan,
    server: &Host,
    dest: &Host,
    pump: PumpOptions,
    progress: &dyn Progress,
) -> Result<(u64, Vec<String>), Refusable> {
    if let Reader::Snapdir { dir } = &p.reader {
        let member = if p.relative.is_empty() {
            dir.clone()
        } else {
            join(dir, &p.relative)
        };
        if p.fallback.is_none() || !existing_paths(server, &[member])?.is_empty() {
            return copy_tree(p, dir, server, dest, pump, progress).map(|b| (b, Vec::new()));
        }
        tracing::info!(
            "{}: {dir} shows nothing from here; reading a temporary clone instead",
            server.name
        );
    }
    let reader = match (&p.reader, &p.fallback) {
        (Reader::Snapdir { .. }, Some(f)) => f,
        (r, _) => r,
    };
    read_clone(p, reader, server, dest, pump, progress)
}

/// Reads the tree from a temporary clone, destroyed afterwards whatever happened.
fn read_clone(
    p: &FilePlan,
    reader: &Reader,
    server: &Host,
    dest: &Host,
    pump: PumpOptions,
    progress: &dyn Progress,
) -> Result<(u64, Vec<String>), Refusable> {
    let mut warnings = Vec::new();
    let root = match reader {
        Reader::Snapdir { dir } => dir.clone(),
        Reader::Clone {
            snapshot,
            clone,
            mountpoint,
        } => {
            retry_busy(
                server,
                &cmd::clone(
                    snapshot,
                    clone,
                    &[("readonly", "on"), ("mountpoint", mountpoint.as_str())],
                ),
            )?;
            // The mountpoint as the server shows it (with any altroot).
            match mounted_at(server, clone) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    let _ = retry_busy(server, &cmd::destroy_dataset(clone));
                    return Err(Refusable::Error(Error::Internal(format!(
                        "the clone {clone} on {} did not mount",
                        server.name
                    ))));
                }
                Err(e) => {
                    let _ = retry_busy(server, &cmd::destroy_dataset(clone));
                    return Err(e.into());
                }
            }
        }
    };
    let result = copy_tree(p, &root, server, dest, pump, progress);
    if let Reader::Clone { clone, .. } = reader {
        if let Err(e) = retry_busy(server, &cmd::destroy_dataset(clone)) {
            warnings.push(format!(
                "the temporary clone {}:{clone} could not be destroyed ({e}); destroy it yourself",
                server.name
            ));
        } else {
            // ZFS leaves the empty mount directory behind.
            let _ = server.endpoint().run(
                &Argv::new("rmdir").arg(&root),
                &RunOptions::timeout(QUERY_TIMEOUT),
            );
        }
    }
    result.map(|b| (b, warnings))
}

fn copy_tree(
    p: &FilePlan,
    root: &str,
    server: &Host,
    dest: &Host,
    pump: PumpOptions,
    progress: &dyn Progress,
) -> Result<u64, Refusable> {
    let member_path = if p.relative.is_empty() {
        root.to_string()
    } else {
        join(root, &p.relative)
    };
    let present = existing_paths(server, std::slice::from_ref(&member_path))?;
    if present.is_empty() {
        return Err(Refusable::Refused(Refusal::NotInSnapshot {
            path: p.relative.clone(),
            snapshot: p.choice.snapshot.name.clone(),
            source: p.source.clone(),
        }));
    }
    if let Some(s) = &p.safety_snapshot {
        dest.endpoint()
            .run(&cmd::snapshot(s), &RunOptions::timeout(QUERY_TIMEOUT))
            .map_err(|e| Error::from(ZfsError::from(e)))?;
    }
    if p.create_into {
        dest.endpoint()
            .run(
                &Argv::new("mkdir").args(["-p", "--"]).arg(&p.extract_in),
                &RunOptions::timeout(QUERY_TIMEOUT),
            )
            .map_err(|e| Error::from(ZfsError::from(e)))?;
    }
    let create = tar_create(p, root);
    let extract = Argv::new("tar").args([
        "--extract",
        "--file=-",
        "--numeric-owner",
        "--same-owner",
        "--same-permissions",
        "--xattrs",
        "--acls",
        "-C",
        &p.extract_in,
    ]);
    let stream = Stream {
        send: create,
        receive: extract,
        estimate: None,
        label: format!("{}:{}", dest.name, join(&p.extract_in, &p.member)),
        compress: false,
    };
    transfer(server, dest, &stream, pump, progress).map_err(|f| Refusable::Error(Error::Failed(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_or_refused() {
        assert_eq!(normalize("/a//b/./c/").unwrap(), "/a/b/c");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("a/b").is_err());
        assert!(normalize("/a/../b").unwrap_err().contains("`..`"));
    }

    fn file_plan(relative: &str, member: &str, parents: &[&str]) -> FilePlan {
        let snapshot = plan::BackupSnapshot {
            name: "s1".into(),
            guid: 1,
            createtxg: 1,
            creation: 0,
            referenced: None,
            used: None,
        };
        let backup = DatasetName::parse("zstorage/b/c/zroot/x").unwrap();
        FilePlan {
            source: "c:zroot/x".into(),
            choice: Choice {
                server: "s".into(),
                backup: backup.clone(),
                snapshot,
                newer: Vec::new(),
                encrypted: false,
                anchors: Vec::new(),
                diverging: Vec::new(),
                reason: String::new(),
            },
            relative: relative.into(),
            reader: Reader::Snapdir { dir: "/r".into() },
            fallback: None,
            destination_host: "c".into(),
            extract_in: "/x".into(),
            member: member.into(),
            missing_parents: parents.iter().map(|p| p.to_string()).collect(),
            create_into: false,
            safety_snapshot: None,
            steps: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn tar_takes_only_what_is_restored_and_no_name_as_an_option() {
        let t = |p: &FilePlan| tar_create(p, "/snap").to_string();
        let opts = "tar --create --file=- --numeric-owner --sparse --xattrs --acls";
        // In place, with a missing parent (itself only, not its content).
        assert_eq!(
            t(&file_plan("-a/b", "-a/b", &["-a"])),
            format!("{opts} -C /snap --no-recursion ./-a --recursion ./-a/b")
        );
        // --into: from the path's own directory.
        assert_eq!(
            t(&file_plan("a/b/c", "c", &[])),
            format!("{opts} -C /snap/a/b ./c")
        );
        // The whole dataset.
        assert_eq!(t(&file_plan("", ".", &[])), format!("{opts} -C /snap ."));
    }

    fn request(into: Option<&str>, force: bool) -> FileRequest {
        FileRequest {
            host: "c".into(),
            path: "/persist/save/docs/a.txt".into(),
            into: into.map(str::to_string),
            selector: Selector::Newest,
            from: None,
            to: None,
            force,
            dry_run: true,
            pump: PumpOptions::default(),
        }
    }

    fn source() -> observe::Source {
        observe::Source {
            client: "c".into(),
            dataset: DatasetName::parse("zroot/x").unwrap(),
            copies: Vec::new(),
        }
    }

    fn plan_of(into: Option<&str>, force: bool, view: &FileView) -> Result<FilePlan, Refusal> {
        let p = file_plan("docs/a.txt", "docs/a.txt", &[]);
        plan_files(
            &request(into, force),
            &source(),
            &p.choice,
            None,
            "docs/a.txt",
            "c",
            &DatasetName::parse("zroot/x").unwrap(),
            view,
            "20261125T130000Z",
        )
    }

    #[test]
    fn files_are_planned_from_what_the_host_has() {
        let mounted = |existing: &[&str]| FileView {
            server_snapdirs: false,
            mounted_at: Some("/persist/save".into()),
            existing: existing.iter().map(|e| e.to_string()).collect(),
        };
        // In place, with the directory between missing: it is recreated.
        let p = plan_of(None, false, &mounted(&[])).unwrap();
        assert_eq!(p.missing_parents, ["docs"]);
        let words: Vec<String> = p.steps.iter().map(FileStep::describe).collect();
        assert_eq!(
            words,
            [
                "clone zstorage/b/c/zroot/x@s1 read-only as zstorage/b/c/zroot/x-zfleet-files-20261125T130000Z (mounted at /run/zfleet/restore-20261125T130000Z) on s to read it",
                "recreate the missing directory docs with their backed-up modes, owners and times",
                "copy docs/a.txt to c:/persist/save/docs/a.txt with tar (content, modes, numeric owners, times, symlinks, hard links)",
                "destroy the clone on s"
            ]
        );
        // The path is there: refused, or with --force a safety snapshot first.
        let there = mounted(&["/persist/save/docs/a.txt", "/persist/save/docs"]);
        let r = plan_of(None, false, &there).unwrap_err();
        assert!(matches!(r, Refusal::PathExists { .. }), "{r:?}");
        assert_eq!(r.kind(), plan::RefusalKind::Protect);
        let p = plan_of(None, true, &there).unwrap();
        assert_eq!(
            p.safety_snapshot.unwrap().to_string(),
            "zroot/x@zfleet_before_restore_20261125T130000Z"
        );
        // Not mounted: nowhere to write in place.
        let r = plan_of(None, false, &FileView::default()).unwrap_err();
        assert_eq!(r.kind(), plan::RefusalKind::NotFound);
        // --into a place that is taken.
        let taken = FileView {
            existing: vec!["/tmp/r/a.txt".into()],
            ..FileView::default()
        };
        let r = plan_of(Some("/tmp/r"), false, &taken).unwrap_err();
        assert_eq!(
            r.message("c:zroot/x", &jiff::tz::TimeZone::UTC),
            "c:/tmp/r/a.txt exists"
        );
        let p = plan_of(Some("/tmp/r"), false, &FileView::default()).unwrap();
        assert!(p.create_into && p.extract_in == "/tmp/r" && p.member == "a.txt");
    }

    #[test]
    fn the_longest_mountpoint_wins() {
        let c = vec![
            ("persist", "/persist".to_string()),
            ("save", "/persist/save".to_string()),
            ("root", "/".to_string()),
        ];
        let m = |p: &str| map_path(p, &c).map(|(t, r)| (*t, r));
        assert_eq!(m("/persist/save/a/b"), Some(("save", "a/b".into())));
        assert_eq!(m("/persist/save"), Some(("save", String::new())));
        assert_eq!(m("/persist/saved"), Some(("persist", "saved".into())));
        assert_eq!(m("/etc/x"), Some(("root", "etc/x".into())));
        let c = vec![("save", "/persist/save".to_string())];
        assert_eq!(map_path("/persistent", &c), None);
    }
}
