//! Runs a replication: observe both sides, plan, move the streams, then move
//! the base markers. Every step leaves the target at a complete snapshot: ZFS
//! receives each snapshot atomically, and zfleet never rolls a target back
//! unless the plan says so (which needs `--rollback`).

use std::time::Instant;

use serde::Serialize;

use super::plan::{self, Base, Plan, Point, Side, Step};
use super::properties;
use super::pump::{pump, PumpOptions};
use super::sync_snapshot::{remove_old_sync_snapshots, sync_snapshot_name};
use super::wire::{split_send_exit, Wire, ZSTD_LEVEL};
use crate::exec::{Argv, ChildGuard, RunOptions, SpawnIo};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::progress::Progress;
use crate::zfs::cmd::{self, From as SendFrom, Send};
use crate::zfs::{
    DatasetName, Listing, ObjectInfo, ObjectType, SnapshotName, ZfsError, ZfsErrorKind,
};
use crate::Error;

/// The user property (and hold tag) that marks a replication base.
pub fn base_marker(server: &str) -> String {
    format!("zfleet:base:{}", server.to_ascii_lowercase())
}

/// One replication to run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// `alpha:zroot/persistSave`, for messages and progress.
    pub label: String,
    pub source: DatasetName,
    pub target: DatasetName,
    /// Whose base this is: the server's name for backups, `sync` for ad-hoc copies.
    pub marker: String,
    /// Send encrypted datasets raw, so the receiver never needs the key.
    pub raw: bool,
    /// Create missing parents of the target down from here (a server's target root).
    pub create_parents_below: Option<DatasetName>,
    /// Native properties to copy from the source to the target.
    pub preserve: Vec<String>,
    /// Take a sync snapshot before sending, and remove this marker's older ones.
    pub sync_snapshot: bool,
    /// zstd on the wire where a side is remote.
    pub compress: bool,
}

impl JobSpec {
    /// A plain copy: no property preservation, no sync snapshot, no compression.
    pub fn new(
        label: impl Into<String>,
        source: DatasetName,
        target: DatasetName,
        marker: impl Into<String>,
    ) -> Self {
        Self {
            label: label.into(),
            source,
            target,
            marker: marker.into(),
            raw: true,
            create_parents_below: None,
            preserve: Vec::new(),
            sync_snapshot: false,
            compress: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub plan: plan::Options,
    pub pump: PumpOptions,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    UpToDate,
    Sent,
    /// `--dry-run`: the steps that would run.
    Planned,
    Refused {
        message: String,
        hint: String,
    },
    /// The source has no snapshot yet (a new client before its first `zfleet run`).
    NothingToSend {
        message: String,
    },
    Failed {
        message: String,
    },
    /// The snapshots were sent and the base moved, but the backup lacks what
    /// it should carry: the source's properties (preserved ones, and the
    /// `zfleet:src:*` a restore needs) could not be read or set.
    Degraded {
        message: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub label: String,
    pub source: String,
    pub target: String,
    pub outcome: Outcome,
    pub steps: Vec<String>,
    pub bytes: u64,
    pub snapshots: u64,
    pub seconds: f64,
    /// The newest snapshot both sides now share.
    pub base: Option<String>,
    /// Things that went wrong without failing the job.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl JobReport {
    /// A report with nothing moved yet.
    pub fn new(label: &str, source: String, target: String, outcome: Outcome) -> Self {
        Self {
            label: label.to_string(),
            source,
            target,
            outcome,
            steps: Vec::new(),
            bytes: 0,
            snapshots: 0,
            seconds: 0.0,
            base: None,
            warnings: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::UpToDate | Outcome::Sent | Outcome::Planned | Outcome::NothingToSend { .. }
        )
    }
}

fn points(l: &Listing, ds: &DatasetName, kind: ObjectType) -> Vec<Point> {
    let objs: Vec<&ObjectInfo> = match kind {
        ObjectType::Bookmark => l.bookmarks_of(ds),
        _ => l.snapshots_of(ds),
    };
    objs.iter()
        .map(|o| Point {
            name: short_name(o),
            guid: o.guid,
            createtxg: o.createtxg,
            creation: o.creation,
        })
        .collect()
}

pub(crate) fn short_name(o: &ObjectInfo) -> String {
    let s = o.name.to_string();
    s.rsplit(['@', '#']).next().unwrap_or(&s).to_string()
}

fn side(l: Option<&Listing>, ds: &DatasetName) -> Side {
    let Some(l) = l else { return Side::default() };
    let Some(d) = l.dataset(ds) else {
        return Side::default();
    };
    Side {
        exists: true,
        snapshots: points(l, ds, ObjectType::Snapshot),
        bookmarks: points(l, ds, ObjectType::Bookmark),
        resume_token: d.props.get("receive_resume_token").cloned(),
        written: d.props.get("written").and_then(|w| w.parse().ok()),
    }
}

/// Replicates one dataset. Never returns `Err` for a failure of the job itself
/// (that is in the report); `Err` is for failures before anything could be judged.
pub fn replicate(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    opts: &Options,
    progress: &dyn Progress,
) -> JobReport {
    replicate_observed(src, dst, job, opts, progress, None)
}

/// Like [`replicate`], starting from a listing of the source made moments
/// before (one listing for all of a client's datasets saves a round trip per
/// dataset). It must hold the job's source and the base marker property.
pub fn replicate_observed(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    opts: &Options,
    progress: &dyn Progress,
    source: Option<Listing>,
) -> JobReport {
    let start = Instant::now();
    let mut report = JobReport::new(
        &job.label,
        format!("{}:{}", src.name, job.source),
        format!("{}:{}", dst.name, job.target),
        Outcome::UpToDate,
    );
    if let Err(e) = run(src, dst, job, opts, progress, &mut report, source) {
        report.outcome = Outcome::Failed {
            message: e.to_string(),
        };
    }
    report.seconds = start.elapsed().as_secs_f64();
    report
}

fn run(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    opts: &Options,
    progress: &dyn Progress,
    report: &mut JobReport,
    mut observed: Option<Listing>,
) -> Result<(), Error> {
    let marker = base_marker(&job.marker);
    let src_caps = src.caps()?.clone();
    let dst_caps = dst.caps()?.clone();
    if job.sync_snapshot && !opts.dry_run {
        let snap = job
            .source
            .snapshot(&sync_snapshot_name(&job.marker, now_unix()))?;
        src.endpoint()
            .run(&cmd::snapshot(&snap), &RunOptions::timeout(QUERY_TIMEOUT))
            .map_err(ZfsError::from)?;
    }
    let mut plan_opts = opts.plan.clone();
    plan_opts.bookmarks &= src_caps.bookmarks;

    // At most twice: a stale resume token is discarded and the plan made again.
    for _pass in 0..2 {
        // A sync snapshot was just taken: an earlier listing lacks it.
        let src_l = match observed.take().filter(|_| !job.sync_snapshot) {
            Some(l) => l,
            None => src.observe_own(&[&job.source], std::slice::from_ref(&marker))?,
        };
        let mut dst_extra = vec![marker.clone()];
        if matches!(dst_caps.dialect, crate::zfs::Dialect::OpenZfs { .. }) {
            dst_extra.extend(["receive_resume_token".to_string(), "written".to_string()]);
        }
        let dst_l = dst.observe_own_if_exists(&job.target, &dst_extra)?;
        let source = side(Some(&src_l), &job.source);
        let target = side(dst_l.as_ref(), &job.target);
        let planned = plan::plan(&source, &target, &plan_opts);
        let (steps, _base) = match planned {
            Plan::UpToDate { snapshot } => {
                // Up to date now, after a resumed stream in an earlier pass:
                // this run did send.
                report.outcome = if report.bytes > 0 {
                    Outcome::Sent
                } else {
                    Outcome::UpToDate
                };
                report.base = Some(snapshot.clone());
                if !opts.dry_run {
                    mark_base(src, dst, job, &marker, &snapshot, &src_l, dst_l.as_ref())?;
                    if job.sync_snapshot {
                        remove_old_sync_snapshots(
                            src,
                            dst,
                            job,
                            &snapshot,
                            &src_l,
                            dst_l.as_ref(),
                        )?;
                    }
                }
                return Ok(());
            }
            // A client whose first snapshot is still to come is not an error:
            // it is reported, and the run goes on.
            Plan::Refused(r @ plan::Refusal::NoSourceSnapshots) => {
                report.outcome = Outcome::NothingToSend {
                    message: r.message(&report.source, &report.target),
                };
                return Ok(());
            }
            Plan::Refused(r) => {
                report.outcome = Outcome::Refused {
                    message: r.message(&report.source, &report.target),
                    hint: r.hint().to_string(),
                };
                return Ok(());
            }
            Plan::Steps { steps, base } => (steps, base),
        };
        report.steps = steps.iter().map(Step::describe).collect();
        if opts.dry_run {
            report.outcome = Outcome::Planned;
            return Ok(());
        }
        if !target.exists {
            ensure_parents(dst, &job.target, job.create_parents_below.as_ref())?;
        }
        let mut resumed_stale = false;
        for step in &steps {
            match step {
                Step::Resume { token } => {
                    // Asking the sender about the token first tells a stale one
                    // (its snapshot is gone from the source) before any stream
                    // starts, and gives the size for the progress bar.
                    // zfs exits 255 for this, which over ssh reads as an ssh
                    // failure with zfs's message: both count.
                    let said = match src.endpoint().run_unchecked(
                        &cmd::send_resume_estimate(token),
                        &RunOptions::timeout(QUERY_TIMEOUT),
                    ) {
                        Ok(out) if out.status.success() => {
                            Ok(format!("{}\n{}", out.stdout_text(), out.stderr_text()))
                        }
                        Ok(out) => Err(out.stderr_text()),
                        Err(crate::exec::ExecError::Failed { stderr, .. }) => Err(stderr),
                        Err(e) => return Err(e.into()),
                    };
                    if let Err(why) = &said {
                        if !token_is_stale(why) {
                            return Err(Error::Internal(format!(
                                "the receive on {} cannot be resumed: {why}",
                                job.target
                            )));
                        }
                        tracing::warn!(target = %job.target, "the interrupted receive refers to a snapshot the source no longer has; discarding it");
                        dst.endpoint()
                            .run(
                                &cmd::receive_abort(&job.target),
                                &RunOptions::timeout(QUERY_TIMEOUT),
                            )
                            .map_err(ZfsError::from)?;
                        report.warnings.push("an interrupted receive referred to a snapshot the source no longer has; it was discarded".into());
                        resumed_stale = true;
                        break;
                    }
                    let said = said.unwrap_or_default();
                    let estimate = cmd::parse_send_estimate(&said);
                    let send = cmd::send_resume(token);
                    let n = transfer(
                        src,
                        dst,
                        &send,
                        &cmd::receive(&dst_caps, &job.target),
                        estimate,
                        &job.label,
                        job.compress,
                        opts,
                        progress,
                    )
                    .map_err(|e| e.into_error(src, dst))?;
                    report.bytes += n;
                }
                Step::Rollback { to, discards } => {
                    // zfleet's own base holds would block the rollback; other
                    // holds are someone else's and make it fail, as they should.
                    for d in discards {
                        release(dst, &marker, &job.target.snapshot(d)?)?;
                    }
                    let snap = job.target.snapshot(to)?;
                    dst.endpoint()
                        .run(&cmd::rollback(&snap), &RunOptions::timeout(QUERY_TIMEOUT))
                        .map_err(ZfsError::from)?;
                }
                Step::Full { snapshot } => {
                    let s = Send {
                        from: None,
                        to: job.source.snapshot(snapshot)?,
                        intermediates: false,
                        raw: job.raw,
                    };
                    report.bytes +=
                        send_step(src, dst, &src_caps, &dst_caps, &s, job, opts, progress)?;
                    report.snapshots += 1;
                    // Where the parents were not zfleet's, make sure anyway.
                    dst.endpoint()
                        .run(
                            &cmd::set("readonly", "on", job.target.as_str()),
                            &RunOptions::timeout(QUERY_TIMEOUT),
                        )
                        .map_err(ZfsError::from)?;
                }
                Step::Incremental {
                    from,
                    to,
                    intermediates,
                } => {
                    let from_ref = match from {
                        Base::Snapshot(n) => SendFrom::Snapshot(job.source.snapshot(n)?),
                        Base::Bookmark(n) => SendFrom::Bookmark(crate::zfs::BookmarkName::parse(
                            &format!("{}#{n}", job.source),
                        )?),
                    };
                    let s = Send {
                        from: Some(from_ref),
                        to: job.source.snapshot(to)?,
                        intermediates: *intermediates,
                        raw: job.raw,
                    };
                    report.bytes +=
                        send_step(src, dst, &src_caps, &dst_caps, &s, job, opts, progress)?;
                    let from_txg = src_l
                        .snapshots_of(&job.source)
                        .iter()
                        .chain(src_l.bookmarks_of(&job.source).iter())
                        .find(|o| short_name(o) == from.name())
                        .map(|o| o.createtxg)
                        .unwrap_or(0);
                    let to_txg = src_l
                        .snapshots_of(&job.source)
                        .iter()
                        .find(|o| short_name(o) == *to)
                        .map(|o| o.createtxg)
                        .unwrap_or(0);
                    report.snapshots += src_l
                        .snapshots_of(&job.source)
                        .iter()
                        .filter(|o| {
                            o.createtxg > from_txg
                                && o.createtxg <= to_txg
                                && (*intermediates || o.createtxg == to_txg)
                        })
                        .count() as u64;
                }
            }
        }
        if resumed_stale {
            continue;
        }
        if steps.iter().all(|s| matches!(s, Step::Resume { .. })) {
            // The resumed stream may not have been the whole job: plan again.
            continue;
        }
        report.outcome = Outcome::Sent;
        let newest = source.snapshots.last().map(|p| p.name.clone());
        // The source's properties are read while the base moves: each is a
        // round trip to the client.
        let (marked, source_props) = std::thread::scope(|s| {
            let props = s.spawn(|| properties::read_source(src, &job.source));
            let marked = match &newest {
                Some(n) => dst
                    .observe_own_if_exists(&job.target, std::slice::from_ref(&marker))
                    .and_then(|dst_l| {
                        mark_base(src, dst, job, &marker, n, &src_l, dst_l.as_ref())?;
                        if job.sync_snapshot {
                            remove_old_sync_snapshots(src, dst, job, n, &src_l, dst_l.as_ref())?;
                        }
                        Ok(())
                    }),
                None => Ok(()),
            };
            let props = props
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("reading properties panicked".into())));
            (marked, props)
        });
        marked?;
        report.base = newest;
        // A backup without its properties restores with the wrong mountpoint
        // and record size: that is not a success, whatever was sent.
        let not_copied = match source_props
            .and_then(|(rows, altroot)| properties::apply(dst, job, &rows, altroot.as_deref()))
        {
            Ok(w) if w.is_empty() => None,
            Ok(w) => Some(w.join("; ")),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = not_copied {
            report.outcome = Outcome::Degraded {
                message: format!("sent, but the properties were not copied: {why}"),
            };
        }
        return Ok(());
    }
    report.outcome = Outcome::Sent;
    Ok(())
}

fn token_is_stale(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no longer exists")
        || s.contains("does not exist")
        || s.contains("used in the initial send")
}

#[allow(clippy::too_many_arguments)]
fn send_step(
    src: &Host,
    dst: &Host,
    src_caps: &crate::zfs::Caps,
    dst_caps: &crate::zfs::Caps,
    s: &Send,
    job: &JobSpec,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<u64, Error> {
    let estimate = if src_caps.send_estimate {
        estimate(src, &cmd::send_estimate(src_caps, s))
    } else {
        None
    };
    let label = match &s.from {
        None => format!("{} full @{}", job.label, s.to.name),
        Some(SendFrom::Snapshot(f)) => format!("{} @{} → @{}", job.label, f.name, s.to.name),
        Some(SendFrom::Bookmark(b)) => format!("{} #{} → @{}", job.label, b.name, s.to.name),
    };
    transfer(
        src,
        dst,
        &cmd::send(src_caps, s),
        &cmd::receive(dst_caps, &job.target),
        estimate,
        &label,
        job.compress,
        opts,
        progress,
    )
    .map_err(|e| e.into_error(src, dst))
}

fn estimate(src: &Host, argv: &Argv) -> Option<u64> {
    let out = src
        .endpoint()
        .run(argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .ok()?;
    cmd::parse_send_estimate(&out.stdout_text())
        .or_else(|| cmd::parse_send_estimate(&out.stderr_text()))
}

#[derive(Debug)]
pub(crate) enum TransferError {
    Start(crate::exec::ExecError),
    Send {
        argv: String,
        status: String,
        stderr: String,
    },
    Receive {
        argv: String,
        status: String,
        stderr: String,
    },
    Pump(String),
}

impl TransferError {
    pub(crate) fn into_error(self, src: &Host, dst: &Host) -> Error {
        use crate::exec::ExecError;
        match self {
            TransferError::Start(e) => Error::Exec(e),
            TransferError::Send {
                argv,
                status,
                stderr,
            } => Error::Zfs(ZfsError::from(ExecError::Failed {
                host: src.name.clone(),
                cmdline: argv,
                status,
                stderr,
            })),
            TransferError::Receive {
                argv,
                status,
                stderr,
            } => Error::Zfs(ZfsError::from(ExecError::Failed {
                host: dst.name.clone(),
                cmdline: argv,
                status,
                stderr,
            })),
            TransferError::Pump(m) => Error::Internal(m),
        }
    }
}

/// `send | zfleet | recv`. The receiver starts first so the stream has somewhere to go.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transfer(
    src: &Host,
    dst: &Host,
    send: &Argv,
    recv: &Argv,
    total: Option<u64>,
    label: &str,
    compress: bool,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<u64, TransferError> {
    let wire = Wire::choose(compress, src, dst);
    let send = &wire.send(send)?;
    let recv = &wire.recv(recv)?;
    tracing::info!("{label}: {send} | {recv}");
    let mut receiver = dst
        .endpoint()
        .spawn(
            recv,
            SpawnIo {
                stdin: true,
                stdout: false,
            },
        )
        .map_err(TransferError::Start)?;
    let recv_err = receiver.stderr_reader();
    let mut sender = src
        .endpoint()
        .spawn(
            send,
            SpawnIo {
                stdin: false,
                stdout: true,
            },
        )
        .map_err(TransferError::Start)?;
    let send_err = sender.stderr_reader();
    let (Some(stream), Some(mut sink)) = (sender.take_stdout(), receiver.take_stdin()) else {
        return Err(TransferError::Pump(
            "the send or receive process has no pipe".into(),
        ));
    };
    // 64 KiB pipes mean a context switch every 64 KiB on each side of the
    // pump; 1 MiB pipes let both ends run in longer stretches.
    for fd in [
        std::os::fd::AsFd::as_fd(&stream),
        std::os::fd::AsFd::as_fd(&sink),
    ] {
        let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
    }
    let t = progress.transfer(label, total);
    let stream: Box<dyn std::io::Read + std::marker::Send> = match wire {
        Wire::DecodeHere | Wire::ServedDecodeHere => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|e| TransferError::Pump(e.to_string()))?,
        ),
        Wire::EncodeHere => Box::new(
            zstd::stream::read::Encoder::new(stream, ZSTD_LEVEL)
                .map_err(|e| TransferError::Pump(e.to_string()))?,
        ),
        Wire::Plain | Wire::Remote | Wire::ServedRemote => Box::new(stream),
    };
    let pumped = pump(stream, &mut sink, opts.pump, t.as_ref());
    // End of stream for the receiver, whether or not the sender finished.
    drop(sink);
    if pumped.is_err() {
        // The receiver is gone; the sender would block on a full pipe.
        sender.kill();
    }
    let mut send_status = wait(&mut sender);
    let recv_status = wait(&mut receiver);
    let mut send_stderr = join(send_err);
    if wire.send_status_on_stderr() {
        // `sh -c 'zfs send … | zstd'` exits with zstd's status; the real one
        // is on stderr.
        let (status_ok, rest) = split_send_exit(&send_stderr);
        send_stderr = rest;
        if !status_ok {
            send_status = None;
        }
    }
    let recv_stderr = join(recv_err);
    let bytes = pumped.as_ref().map_or_else(|e| e.bytes(), |n| *n);
    let ok = pumped.is_ok()
        && send_status.as_ref().is_some_and(|s| s.success())
        && recv_status.as_ref().is_some_and(|s| s.success());
    t.finish(bytes, ok);
    let status_text = |s: &Option<std::process::ExitStatus>| {
        s.map_or_else(|| "killed".to_string(), crate::exec::describe_status)
    };
    // The receiver's complaint explains most failures (no space, modified
    // target); the sender's explains the rest (missing snapshot).
    if !recv_status.as_ref().is_some_and(|s| s.success()) && !recv_stderr.is_empty() {
        return Err(TransferError::Receive {
            argv: recv.to_string(),
            status: status_text(&recv_status),
            stderr: recv_stderr,
        });
    }
    if !send_status.as_ref().is_some_and(|s| s.success()) {
        return Err(TransferError::Send {
            argv: send.to_string(),
            status: status_text(&send_status),
            stderr: send_stderr,
        });
    }
    if !recv_status.as_ref().is_some_and(|s| s.success()) {
        return Err(TransferError::Receive {
            argv: recv.to_string(),
            status: status_text(&recv_status),
            stderr: recv_stderr,
        });
    }
    if let Err(e) = pumped {
        return Err(TransferError::Pump(e.to_string()));
    }
    Ok(bytes)
}

const PIPE_SIZE: usize = 1 << 20;

fn wait(c: &mut ChildGuard) -> Option<std::process::ExitStatus> {
    c.wait_timeout(None).ok().flatten()
}

fn join(h: Option<std::thread::JoinHandle<Vec<u8>>>) -> String {
    h.and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
        .unwrap_or_default()
}

/// Creates the target's missing ancestors below `below`, each with
/// `canmount=off` (nothing mounts over the server's paths) and `readonly=on`,
/// which received datasets inherit: a backup that is browsed must not change,
/// or the next incremental would find it "modified since most recent snapshot"
/// (reading files updates atime on a writable mount).
fn ensure_parents(
    dst: &Host,
    target: &DatasetName,
    below: Option<&DatasetName>,
) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut cur = target.parent();
    while let Some(p) = cur {
        if below.is_some_and(|b| !p.is_within(b) || p == *b) {
            break;
        }
        if dst.observe_own_if_exists(&p, &[])?.is_some() {
            break;
        }
        cur = p.parent();
        missing.push(p);
    }
    for p in missing.iter().rev() {
        dst.endpoint()
            .run(
                &cmd::create(p, &[("canmount", "off"), ("readonly", "on")]),
                &RunOptions::timeout(QUERY_TIMEOUT),
            )
            .map_err(ZfsError::from)?;
    }
    Ok(())
}

/// Moves the base marker (property and hold) to `snap` on both sides, then
/// clears it from older snapshots — in that order, so that at every moment at
/// least one common snapshot is protected. Each side is one command, and the
/// two sides run at the same time: on a remote host every command is a round trip.
fn mark_base(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    marker: &str,
    snap: &str,
    src_l: &Listing,
    dst_l: Option<&Listing>,
) -> Result<(), Error> {
    let now = now_unix().to_string();
    let sides = [(src, &job.source, Some(src_l)), (dst, &job.target, dst_l)];
    let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = sides
            .iter()
            .enumerate()
            .map(|(i, (host, ds, listing))| {
                let now = &now;
                s.spawn(move || mark_side(host, ds, *listing, marker, snap, now, i == 0))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("marking the base panicked".into())))
            })
            .collect()
    });
    results.into_iter().collect()
}

pub(crate) fn mark_side(
    host: &Host,
    ds: &DatasetName,
    listing: Option<&Listing>,
    marker: &str,
    snap: &str,
    now: &str,
    source: bool,
) -> Result<(), Error> {
    let steps = mark_steps(host, ds, listing, marker, snap, now, source)?;
    let Some((first, rest)) = steps.split_first() else {
        return Ok(());
    };
    let argv = if host.is_served() {
        // zfleet serve takes plain commands chained with `&&` and knows which
        // hold, release and bookmark failures are harmless.
        let mut joined = first.0.clone();
        for (a, _) in rest {
            joined = joined
                .arg("&&")
                .arg(a.program.clone())
                .args(a.args.iter().cloned());
        }
        joined
    } else {
        let mut parts = Vec::new();
        for (a, benign) in &steps {
            let line = crate::exec::quote::remote_command_line(a.words())
                .map_err(|e| Error::Internal(e.to_string()))?;
            parts.push(match benign {
                Some(b) => tolerating(&line, b),
                None => line,
            });
        }
        Argv::new("sh").arg("-c").arg(parts.join(" && "))
    };
    host.endpoint()
        .run(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .map_err(ZfsError::from)?;
    Ok(())
}

/// The name of a server's bookmark of a base: kept on the source so that an
/// incremental stays possible even if the base snapshot itself is destroyed.
/// `:` ends the server's name because no host name contains one: the
/// bookmarks of `backup` (`zfleet_backup:…`) never match those of `backup_2`.
pub fn base_bookmark(marker: &str, snap: &str) -> String {
    let server = marker.strip_prefix("zfleet:base:").unwrap_or(marker);
    format!("zfleet_{server}:{snap}")
}

/// The commands that move the base on one side, each with the one failure
/// message that is harmless for it.
fn mark_steps(
    host: &Host,
    ds: &DatasetName,
    listing: Option<&Listing>,
    marker: &str,
    snap: &str,
    now: &str,
    source: bool,
) -> Result<Vec<(Argv, Option<&'static str>)>, Error> {
    let new = ds.snapshot(snap)?;
    let snaps = listing.map(|l| l.snapshots_of(ds)).unwrap_or_default();
    let old: Vec<SnapshotName> = snaps
        .iter()
        .filter(|o| o.props.contains_key(marker) && short_name(o) != snap)
        .filter_map(|o| ds.snapshot(&short_name(o)).ok())
        .collect();
    let already = snaps
        .iter()
        .any(|o| short_name(o) == snap && o.props.contains_key(marker));
    let mut steps: Vec<(Argv, Option<&'static str>)> = Vec::new();
    if !already {
        steps.push((cmd::set(marker, now, &new.to_string()), None));
        steps.push((cmd::hold(marker, &[&new]), Some("tag already exists")));
    }
    // On the source, where the dialect has bookmarks: one per server, moved
    // with the base.
    if source && host.caps().is_ok_and(|c| c.bookmarks) {
        let name = base_bookmark(marker, snap);
        let bm = crate::zfs::BookmarkName::parse(&format!("{ds}#{name}"))?;
        let prefix = base_bookmark(marker, "");
        let bookmarks = listing.map(|l| l.bookmarks_of(ds)).unwrap_or_default();
        if !bookmarks.iter().any(|b| short_name(b) == name) {
            steps.push((cmd::bookmark(&new, &bm), Some("already exists")));
        }
        // Through zfleet serve the backup account has no right to destroy
        // anything (ZFS's own delegation refuses it); superseded base
        // bookmarks stay until a run with root access removes them.
        let old_bookmarks: Vec<String> = if host.is_served() {
            Vec::new()
        } else {
            bookmarks
                .iter()
                .map(|b| short_name(b))
                .filter(|b| b.starts_with(&prefix) && *b != name)
                .collect()
        };
        for b in old_bookmarks {
            let old_bm = crate::zfs::BookmarkName::parse(&format!("{ds}#{b}"))?;
            steps.push((cmd::destroy_bookmark(&old_bm), Some("does not exist")));
        }
    }
    for o in &old {
        steps.push((cmd::release(marker, &[o]), Some("no such tag")));
        steps.push((cmd::inherit(marker, &o.to_string()), None));
    }
    Ok(steps)
}

/// A shell fragment that runs `line` and fails unless it succeeds or its
/// error contains `benign` (dialects without holds fail with "unrecognized
/// command" or "pyzfs", and rely on the property instead).
fn tolerating(line: &str, benign: &str) -> String {
    format!(
        "{{ out=$({line} 2>&1) || case \"$out\" in *'{benign}'*|*'unrecognized command'*|*pyzfs*) ;; *) echo \"$out\" >&2; false ;; esac; }}"
    )
}

fn release(host: &Host, tag: &str, snap: &SnapshotName) -> Result<(), Error> {
    match host.endpoint().run(
        &cmd::release(tag, &[snap]),
        &RunOptions::timeout(QUERY_TIMEOUT),
    ) {
        Ok(_) => Ok(()),
        Err(e) => {
            let z = ZfsError::from(e);
            let text = z.exec.stderr().unwrap_or_default().to_ascii_lowercase();
            if text.contains("no such tag")
                || z.kind == ZfsErrorKind::Unsupported
                || matches!(z.kind, ZfsErrorKind::DoesNotExist { .. })
            {
                Ok(())
            } else {
                Err(z.into())
            }
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
