//! What a restore will do, decided from what the servers and the destination
//! hold — pure functions, no I/O, no clock.
//!
//! Two decisions, each with its reasons:
//!
//! 1. [`choose`]: which server and which snapshot (the newest, a named one, or
//!    the newest at or before a time; by default from the server whose
//!    candidate is newest).
//! 2. [`plan_dataset`]: what happens at the destination. Missing: create it.
//!    Fresh (see [`freshness`]): replace it. Holding data: refuse, unless
//!    `--force`, which takes a safety snapshot and keeps the old dataset under a
//!    new name. Always: receive into a temporary name first and rename into
//!    place, so a failed transfer never leaves the destination half-replaced.

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::zfs::{DatasetName, SnapshotName};

/// Above this an "empty" snapshot or file system is not empty. An empty file
/// system references about 100 KiB (zfs-fuse: 112 KiB; OpenZFS: 96–200 KiB
/// depending on ashift and dnode size), and any file adds at least a block.
pub const EMPTY_REFERENCED_MAX: u64 = 256 << 10;

pub use crate::protocol::{RESTORE_TEMP_MARK as TEMP_MARK, RESTORE_TEMP_SUFFIX as TEMP_SUFFIX};

/// One snapshot of a backup, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSnapshot {
    /// The part after `@`.
    pub name: String,
    pub guid: u64,
    pub createtxg: u64,
    /// Unix seconds.
    pub creation: i64,
    /// What a full restore of it brings back (on disk, compressed).
    pub referenced: Option<u64>,
    /// Space only this snapshot holds.
    pub used: Option<u64>,
}

/// A server's copy of one backed-up dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupCopy {
    pub server: String,
    pub backup: DatasetName,
    /// Oldest first.
    pub snapshots: Vec<BackupSnapshot>,
    /// Natively encrypted (then sent raw, and its files cannot be read without the key).
    pub encrypted: bool,
    /// The key is loaded on the server (never, for raw backups).
    pub key_loaded: bool,
    /// The client's mountpoint, as recorded at the last backup.
    pub recorded_mountpoint: Option<String>,
    /// Where the backup is mounted on the server, if it is.
    pub mounted_at: Option<String>,
}

/// What one server has for one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServerView {
    Copy(BackupCopy),
    /// The server backs the dataset up but holds no copy (yet).
    NoCopy {
        server: String,
        backup: DatasetName,
    },
    /// The server could not be asked (down, ssh refused, zfs failed).
    Failed {
        server: String,
        error: String,
    },
}

impl ServerView {
    pub fn server(&self) -> &str {
        match self {
            ServerView::Copy(c) => &c.server,
            ServerView::NoCopy { server, .. } | ServerView::Failed { server, .. } => server,
        }
    }
}

/// Which snapshot to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Selector {
    Newest,
    Named(String),
    /// The newest snapshot created at or before this Unix time.
    At(i64),
}

impl Selector {
    fn pick<'a>(&self, snaps: &'a [BackupSnapshot]) -> Option<&'a BackupSnapshot> {
        match self {
            Selector::Newest => snaps.last(),
            Selector::Named(n) => snaps.iter().find(|s| &s.name == n),
            Selector::At(t) => snaps
                .iter()
                .filter(|s| s.creation <= *t)
                .max_by_key(|s| (s.creation, s.createtxg)),
        }
    }
}

/// The server and snapshot a restore comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub server: String,
    pub backup: DatasetName,
    pub snapshot: BackupSnapshot,
    /// Snapshots the server holds that are newer than the chosen one.
    pub newer: Vec<String>,
    pub encrypted: bool,
    /// Other servers whose newest snapshot is in the chosen history at or
    /// before the chosen one: restored too, so their backups continue.
    pub anchors: Vec<Anchor>,
    /// Other servers whose copy the restore cannot continue, and why.
    pub diverging: Vec<(String, String)>,
    /// Why this server: for `--dry-run` and logs.
    pub reason: String,
}

/// Another server's newest snapshot, present in the chosen history: the
/// restore brings it back too, as that server's base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub server: String,
    /// Its name in the chosen server's copy.
    pub snapshot: String,
    pub guid: u64,
    pub createtxg: u64,
}

impl Choice {
    /// The oldest snapshot the restore brings back: the full send starts
    /// there, and an incremental with everything in between follows.
    pub fn base(&self) -> &str {
        self.anchors
            .iter()
            .min_by_key(|a| a.createtxg)
            .filter(|a| a.createtxg < self.snapshot.createtxg)
            .map_or(self.snapshot.name.as_str(), |a| a.snapshot.as_str())
    }
}

/// Why a restore does not run. Each says what the user can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// No server (or not the one asked for) holds a copy.
    NoCopy {
        servers: Vec<(String, String)>,
    },
    NoSuchSnapshot {
        name: String,
        /// Servers looked at, each with its newest few snapshots.
        looked: Vec<(String, Vec<String>)>,
    },
    NothingAtOrBefore {
        at: i64,
        /// The oldest snapshot anywhere: (server, name, creation).
        oldest: Option<(String, String, i64)>,
    },
    /// Every server that could have a copy failed to answer.
    Unreachable {
        servers: Vec<(String, String)>,
    },
    /// The destination holds data and `--force` was not given.
    DataAtDestination {
        destination: String,
        what: String,
        kept_name: String,
    },
    /// The destination has child datasets (even `--force` does not move them).
    HasChildren {
        destination: String,
        children: Vec<String>,
    },
    /// The temporary name is taken by something that is not zfleet's.
    TemporaryNameTaken {
        dataset: String,
    },
    PoolMissing {
        host: String,
        pool: String,
    },
    PoolRoot {
        dataset: String,
    },
    /// `--path` in place: the path exists and `--force` was not given.
    PathExists {
        destination: String,
        snapshot: String,
        dataset: DatasetName,
        stamp: String,
    },
    /// `--into`: something is already where the files would go.
    PathTaken {
        destination: String,
    },
    /// `--path` in place: the host's dataset is not there to write into.
    NotMounted {
        destination: String,
    },
    /// `--path` from a backup whose key the server does not have.
    EncryptedFiles {
        server: String,
        host: String,
        dataset: DatasetName,
    },
    /// `--path` names nothing in the chosen snapshot.
    NotInSnapshot {
        path: String,
        snapshot: String,
        source: String,
    },
    /// A name the restore needs next to the destination (its temporary
    /// name, where it keeps what it replaces) is longer than ZFS allows.
    NameTooLong {
        destination: String,
        error: String,
    },
}

/// How a refusal ends the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// What was asked for does not exist (exit 2).
    NotFound,
    /// zfleet will not act, to protect data (exit 5).
    Protect,
    /// Hosts did not answer (exit 4).
    Remote,
}

impl Refusal {
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::NoCopy { .. }
            | Refusal::NoSuchSnapshot { .. }
            | Refusal::NothingAtOrBefore { .. }
            | Refusal::PoolRoot { .. }
            | Refusal::NameTooLong { .. }
            | Refusal::NotMounted { .. }
            | Refusal::NotInSnapshot { .. } => RefusalKind::NotFound,
            Refusal::Unreachable { .. } => RefusalKind::Remote,
            Refusal::DataAtDestination { .. }
            | Refusal::HasChildren { .. }
            | Refusal::TemporaryNameTaken { .. }
            | Refusal::PoolMissing { .. }
            | Refusal::PathExists { .. }
            | Refusal::PathTaken { .. }
            | Refusal::EncryptedFiles { .. } => RefusalKind::Protect,
        }
    }

    /// One sentence; `what` is `client1:zroot/persistSave`; times are
    /// shown in `tz`.
    pub fn message(&self, what: &str, tz: &TimeZone) -> String {
        match self {
            Refusal::NoCopy { servers } => format!(
                "no backup of {what} to restore: {}",
                servers
                    .iter()
                    .map(|(s, why)| format!("{s} {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Refusal::NoSuchSnapshot { name, looked } => format!(
                "no backup of {what} has a snapshot @{name} (looked on {})",
                looked
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Refusal::NothingAtOrBefore { at, oldest } => match oldest {
                Some((server, name, creation)) => format!(
                    "no backup of {what} is from {} or before: the oldest is @{name} on {server}, from {}",
                    human_time(*at, tz),
                    human_time(*creation, tz)
                ),
                None => format!("no backup of {what} has any snapshot"),
            },
            Refusal::Unreachable { servers } => format!(
                "no server with a backup of {what} answered: {}",
                servers
                    .iter()
                    .map(|(s, e)| format!("{s}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Refusal::DataAtDestination {
                destination, what, ..
            } => format!("{destination} holds data: {what}"),
            Refusal::HasChildren {
                destination,
                children,
            } => format!(
                "{destination} has child datasets ({}), which a restore of it would have to move or destroy",
                children.join(", ")
            ),
            Refusal::TemporaryNameTaken { dataset } => format!(
                "{dataset} exists and is not zfleet's (it has no `{TEMP_MARK}` property), so zfleet cannot use that name to receive into"
            ),
            Refusal::PoolMissing { host, pool } => {
                format!("pool `{pool}` does not exist on {host}")
            }
            Refusal::PoolRoot { dataset } => format!(
                "{dataset} is a pool's root dataset, which a restore cannot replace"
            ),
            Refusal::PathExists {
                destination,
                snapshot,
                ..
            } => format!(
                "{destination} exists; restoring would overwrite it with the version from @{snapshot}"
            ),
            Refusal::PathTaken { destination } => format!("{destination} exists"),
            Refusal::NotMounted { destination } => {
                format!("{destination} does not exist or is not mounted")
            }
            Refusal::EncryptedFiles { server, host, dataset } => format!(
                "the backup of {host}:{dataset} on {server} is encrypted and its key is not on the server, so zfleet cannot read files from it"
            ),
            Refusal::NotInSnapshot {
                path,
                snapshot,
                source,
            } => format!(
                "{path} is not in @{snapshot} of {source} (it did not exist yet, or is in another dataset)"
            ),
            Refusal::NameTooLong { destination, error } => format!(
                "{destination} is too long a name to restore into: the names a restore needs beside it would be longer than ZFS allows ({error})"
            ),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            Refusal::NoCopy { .. } => {
                "`zfleet restore HOST --list` shows what each server holds; `zfleet check` shows which servers back up what".into()
            }
            Refusal::NoSuchSnapshot { looked, .. } => {
                let mut h = String::from("snapshots there, newest first: ");
                h.push_str(
                    &looked
                        .iter()
                        .map(|(s, names)| {
                            if names.is_empty() {
                                format!("{s}: none")
                            } else {
                                format!("{s}: {}", names.iter().map(|n| format!("@{n}")).collect::<Vec<_>>().join(" "))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                );
                h.push_str(" (all of them: --list)");
                h
            }
            Refusal::NothingAtOrBefore { .. } => {
                "pick a later time, or a snapshot by name from `--list`".into()
            }
            Refusal::Unreachable { .. } => {
                "check that the servers are up and reachable with the fleet's ssh settings, or name one with --from".into()
            }
            Refusal::DataAtDestination { kept_name, .. } => format!(
                "--force keeps it as {kept_name} (after a safety snapshot) and restores in its place; or restore next to it with --to HOST:DATASET"
            ),
            Refusal::HasChildren { .. } => {
                "restore next to it with --to HOST:DATASET, or move its children out of the way yourself (even --force does not)".into()
            }
            Refusal::TemporaryNameTaken { .. } => {
                "rename or destroy it yourself if it can go".into()
            }
            Refusal::PoolMissing { .. } => {
                "create the pool (as the host's layout does) and run the restore again; zfleet does not create pools here".into()
            }
            Refusal::PoolRoot { .. } => {
                "restore into a dataset below it with --to HOST:POOL/NAME".into()
            }
            Refusal::NameTooLong { .. } => {
                "restore under a shorter name with --to HOST:POOL/NAME, then rename it".into()
            }
            Refusal::PathExists { dataset, stamp, .. } => format!(
                "--force takes a snapshot of {dataset} first (@zfleet_before_restore_{stamp}), then overwrites; or write it elsewhere with --into DIR"
            ),
            Refusal::PathTaken { .. } => {
                "--into needs a place where nothing is yet; choose another directory".into()
            }
            Refusal::NotMounted { .. } => {
                "restore the dataset first, or write the files elsewhere with --into DIR".into()
            }
            Refusal::EncryptedFiles { host, dataset, .. } => format!(
                "restore the whole dataset next to the original (`zfleet restore {host} --dataset {dataset} --to HOST:POOL/NAME`), unlock it there and copy what you need"
            ),
            Refusal::NotInSnapshot { .. } => {
                "`zfleet restore HOST --list` shows the snapshots; pick another with --snapshot or --at".into()
            }
        }
    }
}

fn human_time(unix: i64, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(ts) => ts
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => unix.to_string(),
    }
}

/// Picks the server and snapshot. `views` are in fleet order; `from` limits
/// the choice to one server (already checked to back the dataset up). The
/// reason shows times in `tz`.
pub fn choose(
    all: &[ServerView],
    selector: &Selector,
    from: Option<&str>,
    tz: &TimeZone,
) -> Result<Choice, Refusal> {
    let all_copies: Vec<&BackupCopy> = all
        .iter()
        .filter_map(|v| match v {
            ServerView::Copy(c) => Some(c),
            _ => None,
        })
        .collect();
    let views: Vec<&ServerView> = all
        .iter()
        .filter(|v| from.map_or(true, |f| v.server() == f))
        .collect();
    let copies: Vec<&BackupCopy> = views
        .iter()
        .filter_map(|v| match v {
            ServerView::Copy(c) => Some(c),
            _ => None,
        })
        .collect();
    // The best candidate of each copy; the newest of those wins, the first in
    // fleet order on a tie.
    let mut best: Option<(&BackupCopy, &BackupSnapshot)> = None;
    for c in &copies {
        if let Some(s) = selector.pick(&c.snapshots) {
            if best.map_or(true, |(_, b)| s.creation > b.creation) {
                best = Some((c, s));
            }
        }
    }
    let Some((copy, snap)) = best else {
        return Err(no_candidate(&views, &copies, selector));
    };
    let newer = copy
        .snapshots
        .iter()
        .filter(|s| s.createtxg > snap.createtxg)
        .map(|s| s.name.clone())
        .collect();
    let mut anchors = Vec::new();
    let mut diverging = Vec::new();
    for c in all_copies.iter().filter(|c| c.server != copy.server) {
        let Some(their_newest) = c.snapshots.last() else {
            continue;
        };
        match copy
            .snapshots
            .iter()
            .find(|s| s.guid == their_newest.guid && s.createtxg <= snap.createtxg)
        {
            Some(s) => anchors.push(Anchor {
                server: c.server.clone(),
                snapshot: s.name.clone(),
                guid: s.guid,
                createtxg: s.createtxg,
            }),
            None => diverging.push((
                c.server.clone(),
                format!(
                    "its newest snapshot @{} is not in what is restored",
                    their_newest.name
                ),
            )),
        }
    }
    let what = match selector {
        Selector::Newest => "the newest snapshot".to_string(),
        Selector::Named(n) => format!("@{n}"),
        Selector::At(t) => format!("the newest snapshot at or before {}", human_time(*t, tz)),
    };
    let reason = match (from, copies.len()) {
        (Some(f), _) => format!("{what} on {f} (--from)"),
        (None, 1) => format!("{what} on {}, the only server with a copy", copy.server),
        (None, _) => format!(
            "{what} on {}, the server whose candidate is newest",
            copy.server
        ),
    };
    Ok(Choice {
        server: copy.server.clone(),
        backup: copy.backup.clone(),
        snapshot: snap.clone(),
        newer,
        encrypted: copy.encrypted,
        anchors,
        diverging,
        reason,
    })
}

fn no_candidate(views: &[&ServerView], copies: &[&BackupCopy], selector: &Selector) -> Refusal {
    if copies.is_empty() {
        let unreachable: Vec<(String, String)> = views
            .iter()
            .filter_map(|v| match v {
                ServerView::Failed { server, error } => Some((server.clone(), error.clone())),
                _ => None,
            })
            .collect();
        if !unreachable.is_empty() && unreachable.len() == views.len() {
            return Refusal::Unreachable {
                servers: unreachable,
            };
        }
        return Refusal::NoCopy {
            servers: views
                .iter()
                .map(|v| match v {
                    ServerView::NoCopy { server, backup } => {
                        (server.clone(), format!("has no {backup}"))
                    }
                    ServerView::Failed { server, error } => {
                        (server.clone(), format!("could not be asked ({error})"))
                    }
                    ServerView::Copy(c) => (c.server.clone(), "has it".into()),
                })
                .collect(),
        };
    }
    match selector {
        Selector::Named(name) => Refusal::NoSuchSnapshot {
            name: name.clone(),
            looked: copies
                .iter()
                .map(|c| {
                    (
                        c.server.clone(),
                        c.snapshots
                            .iter()
                            .rev()
                            .take(5)
                            .map(|s| s.name.clone())
                            .collect(),
                    )
                })
                .collect(),
        },
        Selector::At(at) => Refusal::NothingAtOrBefore {
            at: *at,
            oldest: copies
                .iter()
                .filter_map(|c| c.snapshots.first().map(|s| (c, s)))
                .min_by_key(|(_, s)| s.creation)
                .map(|(c, s)| (c.server.clone(), s.name.clone(), s.creation)),
        },
        Selector::Newest => Refusal::NothingAtOrBefore {
            at: i64::MAX,
            oldest: None,
        },
    }
}

/// A snapshot of the dataset at the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestSnapshot {
    pub name: String,
    pub guid: u64,
    pub creation: i64,
    pub referenced: Option<u64>,
}

/// The destination dataset as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Existing {
    /// Oldest first.
    pub snapshots: Vec<DestSnapshot>,
    pub referenced: Option<u64>,
    /// Bytes written since the newest snapshot, where the dialect has `written`.
    pub written: Option<u64>,
    pub children: Vec<DatasetName>,
    pub mounted: bool,
    /// Its effective mountpoint as `zfs get` shows it (with any altroot).
    pub mountpoint: Option<String>,
    pub canmount: Option<String>,
    /// The first few entries of its root directory (not `.zfs`), when mounted.
    pub root_entries: Option<Vec<String>>,
    /// Properties set on it (`source` local): the installed layout's.
    pub local_properties: Vec<(String, String)>,
}

/// A temporary dataset left by an earlier restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub dataset: DatasetName,
    /// It carries [`TEMP_MARK`].
    pub ours: bool,
    /// Guid of its newest snapshot.
    pub guid: Option<u64>,
}

/// The destination host and dataset as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationView {
    pub host: String,
    pub dataset: DatasetName,
    /// The backed-up dataset's own host and name: a restore in place, after
    /// which backups continue.
    pub original: bool,
    pub pool_exists: bool,
    /// The pool's altroot (`zpool import -R`, as in an installer), if any.
    pub altroot: Option<String>,
    pub existing: Option<Existing>,
    /// Ancestors that do not exist, top down.
    pub missing_parents: Vec<DatasetName>,
    /// The mountpoint the dataset would inherit at its place (as `zfs get`
    /// shows it), when its parent exists.
    pub inherited_mountpoint: Option<String>,
    /// Other datasets that mount somewhere (canmount=on and a path).
    pub mounts: Vec<(DatasetName, String)>,
    pub leftover: Option<Leftover>,
}

/// Whether an existing destination may be replaced without `--force`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freshness {
    pub fresh: bool,
    /// What is there, for the refusal or the plan.
    pub why: String,
    /// Fresh, but where a few tiny files could hide unseen (why): such a
    /// dataset is kept aside, unmounted, rather than destroyed.
    pub keep_aside: Option<String>,
}

/// The rule for "holds only what a fresh install makes":
///
/// - no child datasets;
/// - its snapshots, if any, all empty (`referenced` ≤ [`EMPTY_REFERENCED_MAX`]):
///   the install's `@empty`, and what a snapshot timer took since;
/// - nothing written since: when mounted, its root directory is empty apart
///   from directories that hold other datasets' mountpoints (this sees even
///   files too small to show in the numbers, and data not yet synced); when
///   not mounted, `written` = 0 where the dialect has it and
///   there is a snapshot, else `referenced` no larger than the empty
///   snapshot's (or than [`EMPTY_REFERENCED_MAX`] without one).
///
/// Anything else is data. A fresh dataset is checked again just before it is
/// destroyed, and kept if it changed meanwhile. One with several snapshots, or
/// judged by its size alone, is kept aside instead of destroyed (see
/// [`Freshness::keep_aside`]).
pub fn freshness(e: &Existing) -> Freshness {
    let mut data = Vec::new();
    if !e.children.is_empty() {
        data.push(format!(
            "{} child dataset{} ({})",
            e.children.len(),
            if e.children.len() == 1 { "" } else { "s" },
            e.children
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let all_empty = e
        .snapshots
        .iter()
        .all(|s| s.referenced.is_some_and(|r| r <= EMPTY_REFERENCED_MAX));
    // The snapshot "nothing written since" is measured against.
    let newest = e.snapshots.last();
    if !all_empty {
        data.push(format!(
            "{} snapshot{}{}",
            e.snapshots.len(),
            if e.snapshots.len() == 1 {
                " that is not empty"
            } else {
                "s"
            },
            newest
                .map(|s| format!(", newest @{}", s.name))
                .unwrap_or_default()
        ));
    }
    let empty_snapshot = newest.filter(|_| all_empty);
    let referenced = e.referenced.unwrap_or(u64::MAX);
    let looked = e.mounted && e.root_entries.is_some();
    match &e.root_entries {
        Some(entries) if e.mounted => {
            if !entries.is_empty() {
                data.push(format!(
                    "files such as {}",
                    entries
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if referenced > EMPTY_REFERENCED_MAX {
                data.push(format!("{} referenced", bytes(referenced)));
            }
        }
        _ => match (empty_snapshot, e.written) {
            (Some(s), Some(w)) => {
                if w > 0 {
                    data.push(format!(
                        "{} written since @{} (zfleet cannot tell access-time updates from a small file)",
                        bytes(w),
                        s.name
                    ));
                }
            }
            (Some(s), None) => {
                if s.referenced.map_or(true, |r| referenced > r) {
                    data.push(format!(
                        "{} referenced, more than @{} holds",
                        bytes(referenced),
                        s.name
                    ));
                }
            }
            (None, _) => {
                if referenced > EMPTY_REFERENCED_MAX {
                    data.push(format!("{} referenced", bytes(referenced)));
                }
            }
        },
    }
    // Where a few tiny files could hide unseen: more than one snapshot (an
    // old one may hold a file deleted since), or only the size to go by.
    let keep_aside = if e.snapshots.len() > 1 {
        Some(format!(
            "its {} snapshots all look empty, but zfleet cannot look inside them",
            e.snapshots.len()
        ))
    } else if !looked && e.snapshots.is_empty() {
        Some("it looked empty by its size only (not mounted, no snapshot to compare with)".into())
    } else {
        None
    };
    if data.is_empty() {
        let why = match (empty_snapshot, e.snapshots.len()) {
            (Some(s), 1) => format!(
                "fresh: only the empty snapshot @{} and nothing written since",
                s.name
            ),
            (Some(s), n) => format!(
                "fresh: {n} empty snapshots (as a snapshot timer takes on a new install) and nothing written since @{}",
                s.name
            ),
            (None, _) if !looked => format!(
                "fresh by its size ({} referenced, no snapshots, not mounted)",
                bytes(referenced)
            ),
            (None, _) => "fresh: empty and without snapshots".to_string(),
        };
        Freshness {
            fresh: true,
            why,
            keep_aside,
        }
    } else {
        Freshness {
            fresh: false,
            why: data.join(", "),
            keep_aside,
        }
    }
}

use crate::words::{human_bytes as bytes, plural};

/// A property the restored dataset gets, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertySet {
    pub property: String,
    pub value: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Destroy zfleet's own temporary dataset left by an interrupted restore.
    DiscardLeftover {
        dataset: DatasetName,
    },
    /// The leftover holds exactly the chosen snapshot: receive nothing.
    ReuseLeftover {
        dataset: DatasetName,
    },
    /// Create missing ancestors, each `canmount=off`.
    CreateParents {
        datasets: Vec<DatasetName>,
    },
    SafetySnapshot {
        snapshot: SnapshotName,
    },
    /// `zfs send [-w] server:backup@base | zfs receive temp`, then, when
    /// `base` is older, `zfs send -I @base backup@snap` (every snapshot in
    /// between, so other servers' bases come back too).
    Receive {
        server: String,
        base: String,
        snapshot: SnapshotName,
        into: DatasetName,
        raw: bool,
        size: Option<u64>,
        /// Mark `into` with [`TEMP_MARK`] once complete, so that a later
        /// restore knows a leftover under the temporary name as its own. A
        /// scratch copy receives under its final name inside the drill's
        /// container, which is what marks it.
        mark: bool,
    },
    /// Remove what belongs to the backup side if the stream carried it
    /// (`readonly`, `zfleet:src:*`, `zfleet:base:*`): decided on what arrived.
    DropBackupProperties {
        dataset: DatasetName,
    },
    /// `canmount=noauto`, unmount, rename. `keep`: it stays (`--force`);
    /// otherwise it is the fresh dataset, destroyed once the restore is in place.
    SetAside {
        dataset: DatasetName,
        to: DatasetName,
        keep: bool,
        canmount_was: Option<String>,
    },
    RenameIntoPlace {
        from: DatasetName,
        to: DatasetName,
    },
    SetProperties {
        dataset: DatasetName,
        set: Vec<PropertySet>,
    },
    /// Destroy the fresh dataset that was set aside, after checking again that
    /// it is still empty (else it is kept).
    DestroyFresh {
        dataset: DatasetName,
    },
    Mount {
        dataset: DatasetName,
    },
    /// Mark each server's base among the restored snapshots (property and
    /// hold, as a backup does), so pruning keeps it until the next backup.
    MarkBase {
        dataset: DatasetName,
        /// (server, snapshot name).
        marks: Vec<(String, String)>,
    },
}

impl Step {
    pub fn describe(&self) -> String {
        match self {
            Step::DiscardLeftover { dataset } => format!(
                "destroy {dataset}, zfleet's temporary dataset from an interrupted restore"
            ),
            Step::ReuseLeftover { dataset } => format!(
                "reuse {dataset}: an interrupted restore received this very snapshot completely"
            ),
            Step::CreateParents { datasets } => format!(
                "create the missing parent{} {} with canmount=off (containers that mount nothing, as a pool layout makes them)",
                if datasets.len() == 1 { "" } else { "s" },
                datasets.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            ),
            Step::SafetySnapshot { snapshot } => format!(
                "take the safety snapshot {snapshot} of what is there now"
            ),
            Step::Receive {
                server,
                base,
                snapshot,
                into,
                raw,
                size,
                mark,
            } => format!(
                "receive {server}:{snapshot}{} into {into}{}{}{}",
                if *base == snapshot.name {
                    String::new()
                } else {
                    format!(" (from @{base}, with the snapshots in between, which other servers' backups continue from)")
                },
                if *raw { ", sent raw" } else { "" },
                size.map(|s| format!(", about {}", bytes(s))).unwrap_or_default(),
                if *mark {
                    " (the destination is untouched until it is complete)"
                } else {
                    ""
                }
            ),
            Step::DropBackupProperties { dataset } => format!(
                "clear on {dataset} whatever belongs to the backup, not the client (readonly, zfleet:src:*, zfleet:base:*), if the stream carried any"
            ),
            Step::SetAside {
                dataset,
                to,
                keep: true,
                ..
            } => format!(
                "keep {dataset} as {to}: set canmount=noauto, unmount it and rename it"
            ),
            Step::SetAside { dataset, to, .. } => format!(
                "move the fresh {dataset} aside to {to} (unmounted)"
            ),
            Step::RenameIntoPlace { from, to } => format!("rename {from} to {to}"),
            Step::SetProperties { dataset, set } if set.is_empty() => {
                format!("set no properties on {dataset}: it inherits what it needs")
            }
            Step::SetProperties { dataset, set } => {
                let list = set
                    .iter()
                    .map(|p| format!("{}={} ({})", p.property, p.value, p.why))
                    .collect::<Vec<_>>()
                    .join("; ");
                format!("set on {dataset}: {list}")
            }
            Step::DestroyFresh { dataset } => format!(
                "destroy {dataset} (the fresh dataset it replaces), after checking again that it is still empty"
            ),
            Step::Mount { dataset } => format!("mount {dataset}"),
            Step::MarkBase { dataset, marks } => format!(
                "mark the replication base{} {} on {dataset} (property and hold, as a backup does), so pruning keeps {} until the next backup",
                if marks.len() == 1 { "" } else { "s" },
                marks
                    .iter()
                    .map(|(s, n)| format!("@{n} of {s}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if marks.len() == 1 { "it" } else { "them" }
            ),
        }
    }
}

/// What happens to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// It does not exist: created.
    Create,
    /// It holds only what a fresh install makes: replaced.
    ReplaceFresh,
    /// It holds data and `--force` was given: kept under a new name.
    ReplaceKeep,
    /// It already holds the chosen snapshot as its newest: nothing to do.
    AlreadyThere,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestorePlan {
    /// `client1:zroot/persistSave`.
    pub source: String,
    pub choice: Choice,
    /// `client1:zroot/persistSave` (or the `--to` destination).
    pub destination: String,
    pub disposition: Disposition,
    /// What was found there and why that disposition.
    pub destination_state: String,
    pub steps: Vec<Step>,
    /// What the user should know: continuity of backups, keys, mountpoints.
    pub notes: Vec<String>,
    /// Commands that undo a `--force` restore.
    pub undo: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    pub force: bool,
    /// UTC stamp for safety snapshot and kept names ([`super::time::stamp`]).
    pub stamp: String,
    /// The source dialect can send raw (`-w`).
    pub raw: bool,
}

/// The plan for a scratch copy (a drill): the same receive and renames, but
/// the copy is not mounted (it would land on the client's paths), not
/// marked as anyone's base, and carries no property of the client's.
///
/// A scratch copy that is created (the drill's case: its container is new)
/// receives under its final name: nothing is there to be kept whole, so the
/// temporary name, its mark and the rename are fixed costs a recovery-time
/// measurement should not carry. It then takes `mountpoint` from its parent,
/// which for a drill is the container's `none`.
pub fn scratch(mut p: RestorePlan) -> RestorePlan {
    p.steps.retain(|s| {
        !matches!(
            s,
            Step::Mount { .. } | Step::MarkBase { .. } | Step::SafetySnapshot { .. }
        )
    });
    let direct = p.disposition == Disposition::Create
        && !p
            .steps
            .iter()
            .any(|s| matches!(s, Step::ReuseLeftover { .. } | Step::DiscardLeftover { .. }));
    if direct {
        let Some(final_name) = p.steps.iter().find_map(|s| match s {
            Step::RenameIntoPlace { to, .. } => Some(to.clone()),
            _ => None,
        }) else {
            return p;
        };
        p.steps.retain(|s| {
            !matches!(
                s,
                Step::DropBackupProperties { .. }
                    | Step::RenameIntoPlace { .. }
                    | Step::SetProperties { .. }
            )
        });
        for s in &mut p.steps {
            if let Step::Receive { into, mark, .. } = s {
                *into = final_name.clone();
                *mark = false;
            }
        }
        return p;
    }
    for s in &mut p.steps {
        if let Step::SetProperties { set, .. } = s {
            *set = vec![PropertySet {
                property: "mountpoint".into(),
                value: "none".into(),
                why: "a scratch copy is never mounted at the client's paths".into(),
            }];
        }
    }
    p
}

/// The temporary dataset a restore of `ds` receives into.
pub fn temp_name(ds: &DatasetName) -> Result<DatasetName, crate::zfs::NameError> {
    DatasetName::parse(&format!("{ds}{TEMP_SUFFIX}"))
}

/// Where `--force` keeps the dataset it replaces.
pub fn kept_name(ds: &DatasetName, stamp: &str) -> Result<DatasetName, crate::zfs::NameError> {
    DatasetName::parse(&format!("{ds}-zfleet-before-restore-{stamp}"))
}

/// Where a fresh dataset waits between being replaced and destroyed.
fn fresh_aside_name(ds: &DatasetName, stamp: &str) -> Result<DatasetName, crate::zfs::NameError> {
    DatasetName::parse(&format!("{ds}-zfleet-fresh-{stamp}"))
}

/// Plans the restore of one dataset. `recorded` are the backup's
/// `zfleet:src:*` properties, without the prefix.
pub fn plan_dataset(
    source: &str,
    choice: &Choice,
    recorded: &[(String, String)],
    dest: &DestinationView,
    opts: &PlanOptions,
) -> Result<RestorePlan, Refusal> {
    let ds = &dest.dataset;
    let destination = format!("{}:{}", dest.host, ds);
    if ds.is_pool_root() {
        return Err(Refusal::PoolRoot {
            dataset: destination,
        });
    }
    if !dest.pool_exists {
        return Err(Refusal::PoolMissing {
            host: dest.host.clone(),
            pool: ds.pool().as_str().to_string(),
        });
    }
    let name_err = |e: crate::zfs::NameError| Refusal::NameTooLong {
        destination: destination.clone(),
        error: e.reason,
    };
    let temp = temp_name(ds).map_err(name_err)?;
    let kept = kept_name(ds, &opts.stamp).map_err(name_err)?;
    let snap_name = &choice.snapshot.name;

    let mut keep_aside: Option<String> = None;
    let (disposition, state) = match &dest.existing {
        None => (Disposition::Create, "does not exist: created".to_string()),
        Some(e) => {
            let newest_is_chosen = e
                .snapshots
                .last()
                .is_some_and(|s| s.guid == choice.snapshot.guid);
            let f = freshness(e);
            if !e.children.is_empty() {
                // Renamed aside they would come along and keep mounting where
                // the restored dataset is; destroyed they would be lost.
                return Err(Refusal::HasChildren {
                    destination,
                    children: e.children.iter().map(|c| c.to_string()).collect(),
                });
            }
            if newest_is_chosen && !opts.force {
                (
                    Disposition::AlreadyThere,
                    format!("already holds @{snap_name} as its newest snapshot: nothing to do"),
                )
            } else if f.fresh {
                keep_aside = f.keep_aside.clone();
                (Disposition::ReplaceFresh, format!("{}: replaced", f.why))
            } else if opts.force {
                (
                    Disposition::ReplaceKeep,
                    format!("holds data ({}): kept as {kept} (--force)", f.why),
                )
            } else {
                return Err(Refusal::DataAtDestination {
                    destination,
                    what: f.why,
                    kept_name: kept.to_string(),
                });
            }
        }
    };

    let mut plan = RestorePlan {
        source: source.to_string(),
        choice: choice.clone(),
        destination: destination.clone(),
        disposition,
        destination_state: state,
        steps: Vec::new(),
        notes: Vec::new(),
        undo: Vec::new(),
    };
    if disposition == Disposition::AlreadyThere {
        if dest.original {
            plan.notes.extend(continuity_notes(source, choice));
        }
        return Ok(plan);
    }

    let steps = &mut plan.steps;
    let mut receive = true;
    if let Some(l) = &dest.leftover {
        if !l.ours {
            return Err(Refusal::TemporaryNameTaken {
                dataset: format!("{}:{}", dest.host, l.dataset),
            });
        }
        if l.guid == Some(choice.snapshot.guid) {
            steps.push(Step::ReuseLeftover {
                dataset: l.dataset.clone(),
            });
            receive = false;
        } else {
            steps.push(Step::DiscardLeftover {
                dataset: l.dataset.clone(),
            });
        }
    }
    if !dest.missing_parents.is_empty() {
        steps.push(Step::CreateParents {
            datasets: dest.missing_parents.clone(),
        });
    }
    if disposition == Disposition::ReplaceKeep {
        steps.push(Step::SafetySnapshot {
            snapshot: ds
                .snapshot(&format!("zfleet_before_restore_{}", opts.stamp))
                .map_err(name_err)?,
        });
    }
    if receive {
        steps.push(Step::Receive {
            server: choice.server.clone(),
            base: choice.base().to_string(),
            snapshot: choice.backup.snapshot(snap_name).map_err(name_err)?,
            into: temp.clone(),
            raw: opts.raw,
            size: choice.snapshot.referenced,
            mark: true,
        });
    }
    steps.push(Step::DropBackupProperties {
        dataset: temp.clone(),
    });
    let existing = dest.existing.as_ref();
    match disposition {
        Disposition::ReplaceFresh => steps.push(Step::SetAside {
            dataset: ds.clone(),
            to: fresh_aside_name(ds, &opts.stamp).map_err(name_err)?,
            keep: keep_aside.is_some(),
            canmount_was: existing.and_then(|e| e.canmount.clone()),
        }),
        Disposition::ReplaceKeep => steps.push(Step::SetAside {
            dataset: ds.clone(),
            to: kept.clone(),
            keep: true,
            canmount_was: existing.and_then(|e| e.canmount.clone()),
        }),
        _ => {}
    }
    steps.push(Step::RenameIntoPlace {
        from: temp.clone(),
        to: ds.clone(),
    });
    let (set, prop_notes) = properties(recorded, dest);
    plan.notes.extend(prop_notes);
    steps.push(Step::SetProperties {
        dataset: ds.clone(),
        set,
    });
    if disposition == Disposition::ReplaceFresh && keep_aside.is_none() {
        if let Some(Step::SetAside { to, .. }) = steps
            .iter()
            .find(|s| matches!(s, Step::SetAside { .. }))
            .cloned()
        {
            steps.push(Step::DestroyFresh { dataset: to });
        }
    }
    steps.push(Step::Mount {
        dataset: ds.clone(),
    });
    if dest.original {
        let mut marks = vec![(choice.server.clone(), snap_name.clone())];
        marks.extend(
            choice
                .anchors
                .iter()
                .map(|a| (a.server.clone(), a.snapshot.clone())),
        );
        steps.push(Step::MarkBase {
            dataset: ds.clone(),
            marks,
        });
        plan.notes.extend(continuity_notes(source, choice));
    } else {
        plan.notes.push(format!(
            "{destination} is a new place for {source}'s data: zfleet backs it up only if it is listed in [hosts.{}.backup] datasets, and its first backup is a full one",
            dest.host
        ));
    }
    if let Some(why) = &keep_aside {
        if let Ok(aside) = fresh_aside_name(ds, &opts.stamp) {
            plan.notes.push(format!(
                "the fresh dataset it replaces is kept as {aside} rather than destroyed: {why}; `zfs destroy -r {aside}` once you have looked"
            ));
        }
    }
    if choice.encrypted {
        plan.notes.push(format!(
            "the backup is encrypted: it is sent raw and arrives locked; load its key with `zfleet unlock {}` (or `zfs load-key {ds}`), then `zfs mount {ds}`. It keeps its own key (the passphrase it had when backed up)",
            dest.host
        ));
    }
    if disposition == Disposition::ReplaceKeep {
        let canmount = existing
            .and_then(|e| e.canmount.clone())
            .unwrap_or_else(|| "on".into());
        // The restored snapshots' base holds would stop the destroy.
        for step in &plan.steps {
            if let Step::MarkBase { dataset, marks } = step {
                for (server, snap) in marks {
                    plan.undo.push(format!(
                        "zfs release {} {dataset}@{snap}",
                        crate::protocol::base_marker(server)
                    ));
                }
            }
        }
        plan.undo.extend([
            format!("zfs destroy -r {ds}"),
            format!("zfs rename {kept} {ds}"),
            format!("zfs set canmount={canmount} {ds}"),
            format!("zfs mount {ds}"),
            format!("zfs destroy {ds}@zfleet_before_restore_{}", opts.stamp),
        ]);
        plan.notes.push(format!(
            "the data that was there is kept as {kept} (with the snapshot @zfleet_before_restore_{}); destroy it when the restore is what you wanted",
            opts.stamp
        ));
    }
    Ok(plan)
}

/// What the next backups will do, said plainly.
fn continuity_notes(source: &str, choice: &Choice) -> Vec<String> {
    let mut notes = Vec::new();
    let snap = &choice.snapshot.name;
    if choice.newer.is_empty() {
        notes.push(format!(
            "backups of {source} to {} continue incrementally from @{snap} (the same snapshot, by guid)",
            choice.server
        ));
    } else {
        let shown: Vec<String> = choice
            .newer
            .iter()
            .take(3)
            .map(|n| format!("@{n}"))
            .collect();
        let more = choice.newer.len().saturating_sub(3);
        notes.push(format!(
            "{} holds {} newer than the restored @{snap} ({}{}): its next backup of {source} will be refused as diverged. To keep them, restore the newest instead, or rename {} aside on {} (the next backup is then a full one); to drop them, run `zfleet backup --rollback` on {}",
            choice.server,
            plural(choice.newer.len(), "snapshot"),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
            choice.backup,
            choice.server,
            choice.server
        ));
    }
    for a in &choice.anchors {
        notes.push(format!(
            "backups of {source} to {} continue incrementally from @{} (restored too)",
            a.server, a.snapshot
        ));
    }
    for (s, why) in &choice.diverging {
        notes.push(format!(
            "{s}'s next backup of {source} will be refused: {why}. Rename its copy aside on {s} for a fresh full backup, or run `zfleet backup --rollback` there if what it has beyond can go"
        ));
    }
    notes
}

/// Properties that never come along from the dataset a restore replaces:
/// the backup's and encryption's, and `readonly` (a restored dataset is for use).
fn not_carried(p: &str) -> bool {
    p.starts_with("zfleet:")
        || matches!(
            p,
            "readonly"
                | "encryption"
                | "keyformat"
                | "keylocation"
                | "pbkdf2iters"
                | "encryptionroot"
                | "mountpoint"
                | "canmount"
        )
}

/// The restored dataset's properties: the client's own as recorded on the
/// backup (`zfleet:src:*`), then what the replaced dataset had set locally
/// (the installed layout), each only where it differs from what it gets anyway.
pub fn properties(
    recorded: &[(String, String)],
    dest: &DestinationView,
) -> (Vec<PropertySet>, Vec<String>) {
    let mut set = Vec::new();
    let mut notes = Vec::new();
    let get = |k: &str| {
        recorded
            .iter()
            .find(|(p, _)| p == k)
            .map(|(_, v)| v.as_str())
    };
    let local = dest
        .existing
        .as_ref()
        .map(|e| e.local_properties.as_slice())
        .unwrap_or_default();
    let local_get = |k: &str| local.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());

    // The mountpoint: the recorded one, else the replaced dataset's own.
    let (mp, mp_why) = match (get("mountpoint"), local_get("mountpoint")) {
        (Some(m), _) => (Some(m), "recorded from the client at backup"),
        (None, Some(m)) => (Some(m), "as the dataset it replaces had it"),
        (None, None) => (None, ""),
    };
    if let Some(m) = mp {
        let logical = strip_altroot(m, dest.altroot.as_deref());
        let shown = with_altroot(&logical, dest.altroot.as_deref());
        let inherits = dest.inherited_mountpoint.as_deref() == Some(shown.as_str());
        let taken = dest
            .mounts
            .iter()
            .find(|(d, at)| *at == shown && d != &dest.dataset && logical.starts_with('/'));
        if let Some((other, _)) = taken {
            notes.push(format!(
                "{}:{} is not given mountpoint {logical}: {other} already mounts there; it inherits {}. Set one with `zfs set mountpoint=PATH {}`",
                dest.host,
                dest.dataset,
                dest.inherited_mountpoint.as_deref().unwrap_or("its parent's"),
                dest.dataset
            ));
        } else if !inherits {
            set.push(PropertySet {
                property: "mountpoint".into(),
                value: logical,
                why: mp_why.into(),
            });
        }
    }
    let canmount = get("canmount").or_else(|| local_get("canmount"));
    if let Some(c) = canmount.filter(|c| *c != "on") {
        set.push(PropertySet {
            property: "canmount".into(),
            value: c.into(),
            why: "recorded from the client at backup".into(),
        });
    }
    for (k, v) in recorded {
        if k.contains(':') && !k.starts_with("zfleet:") {
            set.push(PropertySet {
                property: k.clone(),
                value: v.clone(),
                why: "the client's user property, recorded at backup".into(),
            });
        }
    }
    for (k, v) in local {
        if not_carried(k) || set.iter().any(|p| &p.property == k) {
            continue;
        }
        set.push(PropertySet {
            property: k.clone(),
            value: v.clone(),
            why: "set on the dataset it replaces (the installed layout)".into(),
        });
    }
    (set, notes)
}

/// A mountpoint recorded with the client's altroot (its pool imported with
/// `-R`, as the lab and installers do) back to the path the client uses.
pub(crate) fn strip_altroot(m: &str, altroot: Option<&str>) -> String {
    match altroot {
        Some(a) if a != "/" && !a.is_empty() => match m.strip_prefix(a) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => m.to_string(),
        },
        _ => m.to_string(),
    }
}

/// How `zfs get mountpoint` shows `m` on a pool with this altroot.
pub(crate) fn with_altroot(m: &str, altroot: Option<&str>) -> String {
    match altroot {
        Some(a) if m.starts_with('/') && a != "/" && !a.is_empty() => {
            if m == "/" {
                a.to_string()
            } else {
                format!("{}{m}", a.trim_end_matches('/'))
            }
        }
        _ => m.to_string(),
    }
}

/// What to do about the properties a received dataset arrived with
/// (`zfs get all`, local and received sources): the backup side's must not
/// reach the client.
pub fn backup_side_properties(rows: &[crate::zfs::PropertyRow]) -> Vec<String> {
    use crate::zfs::PropertySource;
    rows.iter()
        .filter(|r| matches!(r.source, PropertySource::Local | PropertySource::Received))
        .filter(|r| {
            r.property == "readonly"
                || r.property.starts_with(crate::protocol::RECORDED_PREFIX)
                || r.property.starts_with("zfleet:base:")
        })
        .map(|r| r.property.clone())
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
