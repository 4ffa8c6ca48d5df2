//! `zfleet sync`: syncoid's command line ([`crate::syncoid`]) as what the
//! replication engine takes, and `-r` over a tree of datasets — each one a
//! job through the same plan and steps as a pull backup.
//!
//! The defaults are syncoid's for ad-hoc copies, not a backup's: a sync
//! snapshot named as syncoid names it (so either tool cleans up the other's),
//! no holds unless `--use-hold`, no base bookmarks unless `--create-bookmark`,
//! and what is received is mounted. Where zfleet is deliberately safer it
//! still says so: a diverged target is not rolled back unless `--rollback`.

use regex::Regex;
use serde::Serialize;

use super::job::{JobReport, JobSpec, Options, SnapshotFilter};
use super::{plan, replicate};
use crate::clock::Clock;
use crate::failure::{Failure, Side};
use crate::host::Host;
use crate::progress::Progress;
use crate::protocol::SyncNaming;
use crate::syncoid::args::{Amount, Compress};
use crate::syncoid::{ArgsError, SyncoidArgs};
use crate::zfs::{DatasetName, ObjectType};

/// The marker (base property `zfleet:base:sync`, hold tag) of ad-hoc copies.
pub const MARKER: &str = "sync";

/// Everything a syncoid command line asks of the engine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The job for the top dataset; with `recursive`, each child's is this one
    /// with its own source and target.
    pub job: JobSpec,
    pub plan: plan::Options,
    pub recursive: bool,
    /// With `recursive`, not the top dataset itself.
    pub skip_parent: bool,
    /// Datasets (by full name) left out of a recursive copy.
    pub exclude: Vec<Regex>,
    /// Bytes per second (`--source-bwlimit`/`--target-bwlimit`: one pump
    /// moves the stream, so the lower of the two).
    pub rate_limit: Option<u64>,
    /// `--mbuffer-size` as bytes; a share of memory is refused.
    pub buffer: Option<u64>,
}

/// What the table tests compare: the settings a flag turns into, in words.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub sync_snapshot: Option<String>,
    pub keep_sync_snapshots: bool,
    pub holds: bool,
    pub create_bookmark: bool,
    pub base_bookmarks: bool,
    pub resumable: bool,
    pub mount: bool,
    pub compress: bool,
    pub preserve: Vec<String>,
    pub preserve_local: bool,
    pub snapshot_filter: Option<(Vec<String>, Vec<String>)>,
    pub send_options: Vec<String>,
    pub recv_options: Vec<String>,
    pub no_stream: bool,
    pub one_by_one: bool,
    pub no_resume: bool,
    pub force_delete: bool,
    pub delete_target_snapshots: bool,
    pub recursive: bool,
    pub skip_parent: bool,
    pub exclude: Vec<String>,
    pub rate_limit: Option<u64>,
    pub buffer: Option<u64>,
}

impl Settings {
    /// `host`: the name syncoid puts in its sync snapshots (this machine's).
    pub fn from_syncoid(a: &SyncoidArgs, host: &str) -> Result<Self, ArgsError> {
        let mut job = JobSpec::new(
            a.source.host().unwrap_or(host).to_string(),
            a.source.dataset.clone(),
            a.target.dataset.clone(),
            MARKER,
        );
        job.sync_snapshot = !a.no_sync_snap;
        job.sync_naming = Some(SyncNaming::syncoid(a.identifier.as_deref(), host));
        job.keep_sync_snapshots = a.keep_sync_snap;
        job.resumable = !a.no_resume;
        job.no_mount = false;
        job.base_bookmarks = false;
        // syncoid compresses the wire when a side is remote, lzo unless told;
        // zfleet has zstd, which every method but `none` becomes.
        job.compress = a.compression() != Compress::None;
        if a.preserve_recordsize {
            job.preserve.push("recordsize".into());
        }
        job.preserve_local = a.preserve_properties;
        job.send_options = a.send_options.clone();
        job.recv_options = a.recv_options.clone();
        if !a.include_snaps.is_empty() || !a.exclude_snaps.is_empty() {
            let f = SnapshotFilter::new(&a.include_snaps, &a.exclude_snaps).map_err(|m| {
                ArgsError::new(
                    if a.include_snaps.is_empty() {
                        "--exclude-snaps"
                    } else {
                        "--include-snaps"
                    },
                    m,
                )
            })?;
            job.snapshot_filter = Some(f);
        }
        let mut p = plan::Options {
            // syncoid falls back to bookmarks where the source has them.
            bookmarks: true,
            no_stream: a.no_stream,
            no_resume: a.no_resume,
            force_delete: a.force_delete,
            one_by_one: job.snapshot_filter.is_some(),
            ..Default::default()
        };
        p.moves.no_holds = !a.use_hold;
        p.moves.create_bookmark = a.create_bookmark;
        p.moves.delete_target_snapshots = a.delete_target_snapshots;
        let exclude = a
            .dataset_excludes()
            .iter()
            .map(|e| {
                Regex::new(e).map_err(|err| {
                    ArgsError::new(
                        "--exclude-datasets",
                        format!(
                            "`{}` is not a regular expression: {err}",
                            crate::text::printable(e)
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = |flag: &str, v: Option<Amount>| match v {
            None => Ok(None),
            Some(Amount::Bytes(b)) => Ok(Some(b)),
            Some(Amount::PercentOfMemory(_)) => Err(ArgsError::new(
                flag,
                "zfleet's buffer is a size (`16M`), not a share of memory",
            )),
        };
        let rate_limit = match (
            bytes("--source-bwlimit", a.source_bwlimit)?,
            bytes("--target-bwlimit", a.target_bwlimit)?,
        ) {
            (Some(s), Some(t)) => Some(s.min(t)),
            (s, t) => s.or(t),
        };
        Ok(Self {
            job,
            plan: p,
            recursive: a.recursive,
            skip_parent: a.skip_parent,
            exclude,
            rate_limit,
            buffer: bytes("--mbuffer-size", a.mbuffer_size)?,
        })
    }

    pub fn summary(&self) -> Summary {
        let j = &self.job;
        Summary {
            sync_snapshot: j.sync_snapshot.then(|| j.sync_naming().name(1_795_647_600)),
            keep_sync_snapshots: j.keep_sync_snapshots,
            holds: !self.plan.moves.no_holds,
            create_bookmark: self.plan.moves.create_bookmark,
            base_bookmarks: j.base_bookmarks,
            resumable: j.resumable,
            mount: !j.no_mount,
            compress: j.compress,
            preserve: j.preserve.clone(),
            preserve_local: j.preserve_local,
            snapshot_filter: j.snapshot_filter.as_ref().map(|f| {
                let s = |v: &[Regex]| v.iter().map(|r| r.as_str().to_string()).collect();
                (s(&f.include), s(&f.exclude))
            }),
            send_options: j.send_options.argv(crate::syncoid::SendContext::Snapshot),
            recv_options: j.recv_options.argv(),
            no_stream: self.plan.no_stream,
            one_by_one: self.plan.one_by_one,
            no_resume: self.plan.no_resume,
            force_delete: self.plan.force_delete,
            delete_target_snapshots: self.plan.moves.delete_target_snapshots,
            recursive: self.recursive,
            skip_parent: self.skip_parent,
            exclude: self
                .exclude
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
            rate_limit: self.rate_limit,
            buffer: self.buffer,
        }
    }
}

/// The datasets a copy covers, parents before children: the source itself,
/// and with `recursive` every filesystem and volume below it that no
/// exclude matches. Each with the target it goes to.
pub fn datasets(
    src: &Host,
    settings: &Settings,
) -> Result<Vec<(DatasetName, DatasetName)>, Failure> {
    let root = &settings.job.source;
    let target = &settings.job.target;
    if !settings.recursive {
        return Ok(vec![(root.clone(), target.clone())]);
    }
    let listing = src
        .observe(root)
        .map_err(|e| Failure::on(Side::Source, &src.name, &e))?;
    let mut names: Vec<DatasetName> = listing
        .objects
        .iter()
        .filter(|o| matches!(o.kind, ObjectType::Filesystem | ObjectType::Volume))
        .filter_map(|o| DatasetName::parse(&o.name.to_string()).ok())
        .filter(|d| d.is_within(root))
        .collect();
    // A parent's name is a prefix of its children's: sorted, parents come first.
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    let mut out = Vec::new();
    for ds in names {
        if settings.skip_parent && ds == *root {
            continue;
        }
        if settings.exclude.iter().any(|r| r.is_match(ds.as_str())) {
            continue;
        }
        let suffix = &ds.as_str()[root.as_str().len()..];
        let t = DatasetName::parse(&format!("{target}{suffix}"))
            .map_err(|e| Failure::internal(format!("{ds} has no name under {target}: {e}")))?;
        out.push((ds, t));
    }
    Ok(out)
}

/// Copies every dataset of the copy in turn (parents first, so each child's
/// target parent is there); one report per dataset. A failed listing is one
/// failed report.
pub fn sync(
    src: &Host,
    dst: &Host,
    settings: &Settings,
    opts: &Options,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> Vec<JobReport> {
    let pairs = match datasets(src, settings) {
        Ok(p) => p,
        Err(f) => {
            let mut r = JobReport::new(
                &settings.job,
                &src.name,
                &dst.name,
                super::Outcome::Failed(f),
            );
            r.seconds = 0.0;
            return vec![r];
        }
    };
    pairs
        .into_iter()
        .map(|(source, target)| {
            let job = JobSpec {
                source,
                target,
                ..settings.job.clone()
            };
            replicate(src, dst, &job, opts, clock, progress)
        })
        .collect()
}

#[cfg(test)]
#[path = "adhoc_tests.rs"]
mod tests;
