//! Running one planned step, and one side's base moves. Each returns a
//! [`Failure`] that names the side it ran on.

use super::base_moves::BaseMove;
use super::job::{JobSpec, Options};
use super::plan::{Base, Step};
use crate::exec::{quote, Argv, RunOptions};
use crate::failure::{Failure, Side};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::progress::Progress;
use crate::syncoid::SendContext;
use crate::transfer::{self, Stream};
use crate::zfs::cmd::{self, Send};
use crate::zfs::{BookmarkName, Caps, DatasetName, ZfsError, ZfsErrorKind};
use crate::Error;

/// The two ends of a job, with their dialects.
pub struct Ends<'a> {
    pub src: &'a Host,
    pub dst: &'a Host,
    pub src_caps: &'a Caps,
    pub dst_caps: &'a Caps,
}

impl Ends<'_> {
    pub fn host(&self, side: Side) -> &Host {
        match side {
            Side::Source | Side::Here => self.src,
            Side::Target => self.dst,
        }
    }

    /// Runs a command on one side; a failure names that side.
    pub fn run(&self, side: Side, argv: &Argv) -> Result<(), Failure> {
        let host = self.host(side);
        host.endpoint()
            .run(argv, &RunOptions::timeout(QUERY_TIMEOUT))
            .map(drop)
            .map_err(|e| Failure::on(side, &host.name, &Error::Zfs(ZfsError::from(e))))
    }

    pub fn fail(&self, side: Side, e: Error) -> Failure {
        Failure::on(side, &self.host(side).name, &e)
    }
}

/// Runs one step; returns the bytes it moved.
pub fn run(
    ends: &Ends<'_>,
    job: &JobSpec,
    step: &Step,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<u64, Failure> {
    let marker = crate::protocol::base_marker(&job.marker);
    let snap = |side: Side, ds: &DatasetName, name: &str| {
        ds.snapshot(name).map_err(|e| ends.fail(side, e.into()))
    };
    match step {
        Step::AbortResume { reason } => {
            tracing::warn!(target = %job.target, "discarding the interrupted receive: {reason}");
            ends.run(Side::Target, &cmd::receive_abort(&job.target))?;
            Ok(0)
        }
        Step::Resume {
            token,
            estimated_bytes,
            ..
        } => stream(
            ends,
            job,
            with_send_options(cmd::send_resume(token), job, SendContext::Resume),
            *estimated_bytes,
            format!("{} (resumed)", job.label()),
            opts,
            progress,
        ),
        Step::Rollback { to, discards } => {
            // zfleet's own base holds would block the rollback; other
            // holds are someone else's and make it fail, as they should.
            for d in discards {
                let s = snap(Side::Target, &job.target, d)?;
                tolerate(
                    ends.run(Side::Target, &cmd::release(&marker, &[&s])),
                    &[ZfsErrorKind::NoSuchHold, ZfsErrorKind::Unsupported],
                )?;
            }
            ends.run(
                Side::Target,
                &cmd::rollback(&snap(Side::Target, &job.target, to)?),
            )?;
            Ok(0)
        }
        Step::DestroyTarget { snapshots } => {
            release_own(ends, job, &marker, snapshots)?;
            // A just-received file system can be busy for a moment.
            crate::restore::exec::retry_busy(ends.dst, &cmd::destroy_dataset(&job.target))
                .map_err(|e| ends.fail(Side::Target, e))?;
            Ok(0)
        }
        Step::DestroySnapshots { snapshots } => {
            release_own(ends, job, &marker, snapshots)?;
            let names: Vec<&str> = snapshots.iter().map(String::as_str).collect();
            crate::restore::exec::retry_busy(
                ends.dst,
                &cmd::destroy_snapshots(&job.target, &names),
            )
            .map_err(|e| ends.fail(Side::Target, e))?;
            Ok(0)
        }
        Step::Full {
            snapshot,
            raw,
            estimated_bytes,
            ..
        } => {
            let s = Send {
                from: None,
                to: snap(Side::Source, &job.source, &snapshot.name)?,
                intermediates: false,
                raw: *raw,
            };
            let n = stream(
                ends,
                job,
                with_send_options(cmd::send(ends.src_caps, &s), job, SendContext::Snapshot),
                *estimated_bytes,
                format!("{} full @{}", job.label(), snapshot.name),
                opts,
                progress,
            )?;
            // `readonly=on` follows: see [`read_only`].
            Ok(n)
        }
        Step::Incremental {
            from,
            to,
            intermediates,
            raw,
            estimated_bytes,
            ..
        } => {
            let s = send_of(ends, job, from, &to.name, *intermediates, *raw)?;
            let (sep, ctx) = if matches!(from, Base::Bookmark { .. }) {
                ("#", SendContext::Bookmark)
            } else {
                ("@", SendContext::Snapshot)
            };
            stream(
                ends,
                job,
                with_send_options(cmd::send(ends.src_caps, &s), job, ctx),
                *estimated_bytes,
                format!("{} {sep}{} → @{}", job.label(), from.name(), to.name),
                opts,
                progress,
            )
        }
    }
}

/// What makes a fully received target read-only. zfleet's parents pass it
/// on, but parents zfleet did not make may not: so it is set anyway, after
/// the full send, in the target's next round trip (its base moves, when the
/// full send was the plan's last step).
pub(super) fn read_only(job: &JobSpec) -> Argv {
    cmd::set("readonly", "on", job.target.as_str())
}

/// zfleet's own holds on target snapshots about to be destroyed; anyone
/// else's make the destroy fail, as they should.
fn release_own(
    ends: &Ends<'_>,
    job: &JobSpec,
    marker: &str,
    snapshots: &[String],
) -> Result<(), Failure> {
    for d in snapshots {
        let s = job
            .target
            .snapshot(d)
            .map_err(|e| ends.fail(Side::Target, e.into()))?;
        tolerate(
            ends.run(Side::Target, &cmd::release(marker, &[&s])),
            &[ZfsErrorKind::NoSuchHold, ZfsErrorKind::Unsupported],
        )?;
    }
    Ok(())
}

/// `--sendoptions` of this kind of send, after `send`, less any letter
/// zfleet's own choice already put there.
fn with_send_options(send: Argv, job: &JobSpec, ctx: SendContext) -> Argv {
    let extra = job.send_options.argv(ctx);
    if extra.is_empty() {
        return send;
    }
    let (verb, rest) = send
        .args
        .split_first()
        .map_or((None, &[][..]), |(v, r)| (Some(v), r));
    let mut out = Argv::new(send.program.clone()).args(verb.cloned());
    let mut i = 0;
    while i < extra.len() {
        let w = &extra[i];
        // `-X` takes a value; no default of zfleet's does.
        if w == "-X" {
            out = out.args(extra[i..(i + 2).min(extra.len())].iter().cloned());
            i += 2;
            continue;
        }
        if !rest.contains(w) {
            out = out.arg(w.clone());
        }
        i += 1;
    }
    out.args(rest.iter().cloned())
}

/// The receive for this job: zfleet's, with `-s` only where the job resumes,
/// `-u` only where it does not mount, and `--recvoptions` before the target.
fn receive_of(ends: &Ends<'_>, job: &JobSpec) -> Argv {
    let base = cmd::receive(ends.dst_caps, &job.target);
    let mut out = Argv::new(base.program.clone());
    for w in base.args.iter().take(base.args.len().saturating_sub(1)) {
        if (w == "-s" && !job.resumable) || (w == "-u" && !job.no_mount) {
            continue;
        }
        out = out.arg(w.clone());
    }
    for w in job.recv_options.argv() {
        if !(w.starts_with('-') && w.len() == 2 && out.args.contains(&w)) {
            out = out.arg(w);
        }
    }
    out.arg(job.target.as_str())
}

fn send_of(
    ends: &Ends<'_>,
    job: &JobSpec,
    from: &Base,
    to: &str,
    intermediates: bool,
    raw: bool,
) -> Result<Send, Failure> {
    let bad = |e: crate::zfs::NameError| ends.fail(Side::Source, e.into());
    let from = match from {
        Base::Snapshot { name, .. } => cmd::From::Snapshot(job.source.snapshot(name).map_err(bad)?),
        Base::Bookmark { name, .. } => cmd::From::Bookmark(
            BookmarkName::parse(&format!("{}#{name}", job.source)).map_err(bad)?,
        ),
    };
    Ok(Send {
        from: Some(from),
        to: job.source.snapshot(to).map_err(bad)?,
        intermediates,
        raw,
    })
}

fn stream(
    ends: &Ends<'_>,
    job: &JobSpec,
    send: Argv,
    estimate: Option<u64>,
    label: String,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<u64, Failure> {
    let s = Stream {
        send,
        receive: receive_of(ends, job),
        estimate,
        label,
        compress: job.compress,
    };
    transfer::transfer(ends.src, ends.dst, &s, opts.pump, progress)
}

/// The sender's size estimate for each step that streams (`zfs send -nvP`),
/// where the dialect has one. A step the sender cannot estimate keeps none.
pub fn estimate(ends: &Ends<'_>, job: &JobSpec, steps: &mut [Step]) {
    if !ends.src_caps.send_estimate {
        return;
    }
    for step in steps {
        let send = match step {
            Step::Full { snapshot, raw, .. } => {
                job.source.snapshot(&snapshot.name).ok().map(|to| Send {
                    from: None,
                    to,
                    intermediates: false,
                    raw: *raw,
                })
            }
            Step::Incremental {
                from,
                to,
                intermediates,
                raw,
                ..
            } => send_of(ends, job, from, &to.name, *intermediates, *raw).ok(),
            _ => None,
        };
        let Some(send) = send else { continue };
        let size = ends
            .src
            .endpoint()
            .run(
                &cmd::send_estimate(ends.src_caps, &send),
                &RunOptions::timeout(QUERY_TIMEOUT),
            )
            .ok()
            .and_then(|o| {
                cmd::parse_send_estimate(&o.stdout_text())
                    .or_else(|| cmd::parse_send_estimate(&o.stderr_text()))
            });
        if let Step::Full {
            estimated_bytes, ..
        }
        | Step::Incremental {
            estimated_bytes, ..
        } = step
        {
            *estimated_bytes = size;
        }
    }
}

/// Creates the target's missing ancestors below `below`, each with
/// `canmount=off` (nothing mounts over the server's paths) and `readonly=on`,
/// which received datasets inherit: a backup that is browsed must not change,
/// or the next incremental would find it "modified since most recent snapshot"
/// (reading files updates atime on a writable mount).
pub fn ensure_parents(ends: &Ends<'_>, job: &JobSpec) -> Result<(), Failure> {
    let below = job.create_parents_below.as_ref();
    let mut missing = Vec::new();
    let mut cur = job.target.parent();
    while let Some(p) = cur {
        if below.is_some_and(|b| !p.is_within(b) || p == *b) {
            break;
        }
        let exists = ends
            .dst
            .observe_own_if_exists(&p, &[])
            .map_err(|e| ends.fail(Side::Target, e))?;
        if exists.is_some() {
            break;
        }
        cur = p.parent();
        missing.push(p);
    }
    for p in missing.iter().rev() {
        ends.run(
            Side::Target,
            &cmd::create(p, &[("canmount", "off"), ("readonly", "on")]),
        )?;
    }
    Ok(())
}

/// A failure of one of `benign` kinds is no failure.
fn tolerate(r: Result<(), Failure>, benign: &[ZfsErrorKind]) -> Result<(), Failure> {
    match r {
        Err(f) if is_kind(&f, benign) => Ok(()),
        r => r,
    }
}

fn is_kind(f: &Failure, kinds: &[ZfsErrorKind]) -> bool {
    use crate::failure::FailureKind;
    match &f.kind {
        FailureKind::Zfs { zfs } => kinds
            .iter()
            .any(|k| std::mem::discriminant(k) == std::mem::discriminant(zfs)),
        _ => false,
    }
}

impl BaseMove {
    fn argv(&self, ds: &DatasetName, marker: &str, now: i64) -> Result<Argv, Error> {
        let snap = |n: &str| ds.snapshot(n);
        let bm = |n: &str| BookmarkName::parse(&format!("{ds}#{n}"));
        Ok(match self {
            BaseMove::Mark { snapshot } => {
                cmd::set(marker, &now.to_string(), &snap(snapshot)?.to_string())
            }
            BaseMove::Hold { snapshot } => cmd::hold(marker, &[&snap(snapshot)?]),
            BaseMove::Bookmark { snapshot, bookmark } => {
                cmd::bookmark(&snap(snapshot)?, &bm(bookmark)?)
            }
            BaseMove::DestroyBookmark { bookmark } => cmd::destroy_bookmark(&bm(bookmark)?),
            BaseMove::Release { snapshot } => cmd::release(marker, &[&snap(snapshot)?]),
            BaseMove::Unmark { snapshot } => cmd::inherit(marker, &snap(snapshot)?.to_string()),
            BaseMove::DestroySyncSnapshot { snapshot } | BaseMove::DestroyPruned { snapshot } => {
                cmd::destroy_snapshot(&snap(snapshot)?)
            }
        })
    }

    /// The failures that leave the move done anyway: a hold or bookmark that
    /// is already there, a release or destroy of one that is not, and a
    /// dialect without holds (which relies on the property instead).
    pub fn benign(&self) -> &'static [ZfsErrorKind] {
        match self {
            BaseMove::Mark { .. } | BaseMove::Unmark { .. } => &[],
            BaseMove::Hold { .. } => &[ZfsErrorKind::HoldExists, ZfsErrorKind::Unsupported],
            BaseMove::Release { .. } => &[ZfsErrorKind::NoSuchHold, ZfsErrorKind::Unsupported],
            BaseMove::Bookmark { .. } => &[ZfsErrorKind::AlreadyExists],
            BaseMove::DestroyBookmark { .. }
            | BaseMove::DestroySyncSnapshot { .. }
            | BaseMove::DestroyPruned { .. } => &[ZfsErrorKind::DoesNotExist { name: None }],
        }
    }
}

const FAILED_STEP: &str = "zfleet-failed-step:";

/// Makes one side's base moves, in order, in as few round trips as it can:
/// one command line for all of them. Through `zfleet serve` that is a chain
/// of plain commands (serve knows which failures of each are harmless);
/// elsewhere a shell line that stops at the first failure and says which
/// move failed and how, so that the failure is judged here. A harmless
/// failure continues with the rest in another round trip.
pub fn make_moves(
    host: &Host,
    side: Side,
    ds: &DatasetName,
    moves: &[BaseMove],
    marker: &str,
    now: i64,
) -> Result<(), Failure> {
    make_moves_then(host, side, ds, &[], moves, marker, now, &[]).map(drop)
}

/// [`make_moves`] after the changes `first` (each of which must work, like
/// a move), and then `reads` (commands that change nothing) in the same
/// round trip: what they printed, or why they failed. A failed read leaves
/// the moves made; only a failed change or move is the `Err`.
#[allow(clippy::too_many_arguments)]
pub fn make_moves_then(
    host: &Host,
    side: Side,
    ds: &DatasetName,
    first: &[Argv],
    moves: &[BaseMove],
    marker: &str,
    now: i64,
    reads: &[Argv],
) -> Result<Result<String, Error>, Failure> {
    let fail = |e: Error| Failure::on(side, &host.name, &e);
    let mut argvs = first.to_vec();
    for m in moves {
        argvs.push(m.argv(ds, marker, now).map_err(fail)?);
    }
    if host.is_served() {
        return served_moves_then(host, side, &argvs, reads);
    }
    // What each command's failure may be and still leave it done.
    let benign: Vec<&'static [ZfsErrorKind]> = first
        .iter()
        .map(|_| &[][..])
        .chain(moves.iter().map(BaseMove::benign))
        .collect();
    let mut rest: &[&'static [ZfsErrorKind]] = &benign;
    let mut rest_argv: &[Argv] = &argvs;
    loop {
        if rest_argv.is_empty() && reads.is_empty() {
            return Ok(Ok(String::new()));
        }
        let mut script = String::new();
        for (i, a) in rest_argv.iter().enumerate() {
            let line = quote::remote_command_line(a.words())
                .map_err(|e| fail(Error::Internal(e.to_string())))?;
            script.push_str(&format!(
                "out=$({line} 2>&1 >/dev/null) || {{ echo {FAILED_STEP}{i}:$? >&2; printf '%s\\n' \"$out\" >&2; exit 1; }}\n"
            ));
        }
        // The reads print to stdout, and on failure their own stderr first.
        for a in reads {
            let line = quote::remote_command_line(a.words())
                .map_err(|e| fail(Error::Internal(e.to_string())))?;
            script.push_str(&format!(
                "{line} || {{ echo {FAILED_STEP}{}:$? >&2; exit 1; }}\n",
                rest_argv.len()
            ));
        }
        let argv = Argv::new("sh").arg("-c").arg(script);
        let out = host
            .endpoint()
            .run_unchecked(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
            .map_err(|e| fail(e.into()))?;
        if out.status.success() {
            return Ok(Ok(out.stdout_text()));
        }
        let stderr = out.stderr_text();
        let Some((i, said)) = failed_step(&stderr) else {
            return Err(fail(Error::Zfs(ZfsError::from(
                host.endpoint().failure(&argv, &out),
            ))));
        };
        if i >= rest_argv.len() {
            // Every move was made; a read failed, and said so before the marker.
            let (before, after) = stderr.split_once(FAILED_STEP).unwrap_or((&stderr, ""));
            let code = after
                .lines()
                .next()
                .and_then(|l| l.split(':').nth(1))
                .unwrap_or("1")
                .trim();
            return Ok(Err(Error::Zfs(ZfsError::from(
                crate::exec::ExecError::Failed {
                    host: host.name.clone(),
                    cmdline: argv.to_string(),
                    status: format!("exit status {code}"),
                    stderr: before.trim_end().to_string(),
                },
            ))));
        }
        let (Some(harmless), Some(a)) = (rest.get(i), rest_argv.get(i)) else {
            return Err(fail(Error::Internal(format!("no move {i} in {argv}"))));
        };
        let failed = Error::Zfs(ZfsError::from(crate::exec::ExecError::Failed {
            host: host.name.clone(),
            cmdline: a.to_string(),
            status: "exit status 1".into(),
            stderr: said,
        }));
        let f = fail(failed);
        if !is_kind(&f, harmless) {
            return Err(f);
        }
        rest = &rest[i + 1..];
        rest_argv = &rest_argv[i + 1..];
    }
}

/// The moves and reads as one chain for `zfleet serve`, which runs each
/// command in turn and stops at the first that fails (past the harmless
/// failures it knows). When the chain fails, or is longer than serve takes,
/// the moves and the reads run as two chains, so that a failed read is not
/// taken for a failed move.
fn served_moves_then(
    host: &Host,
    side: Side,
    moves: &[Argv],
    reads: &[Argv],
) -> Result<Result<String, Error>, Failure> {
    let chain = |argvs: &[&Argv]| -> Option<Argv> {
        let (first, others) = argvs.split_first()?;
        let mut joined = (*first).clone();
        for a in others {
            joined = joined
                .arg("&&")
                .arg(a.program.clone())
                .args(a.args.iter().cloned());
        }
        Some(joined)
    };
    let opts = RunOptions::timeout(QUERY_TIMEOUT);
    let all: Vec<&Argv> = moves.iter().chain(reads).collect();
    if !moves.is_empty() && !reads.is_empty() && all.len() <= crate::protocol::SERVE_MAX_CHAINED {
        if let Some(joined) = chain(&all) {
            if let Ok(out) = host.endpoint().run(&joined, &opts) {
                return Ok(Ok(out.stdout_text()));
            }
        }
    }
    if let Some(joined) = chain(&moves.iter().collect::<Vec<_>>()) {
        host.endpoint()
            .run(&joined, &opts)
            .map_err(|e| Failure::on(side, &host.name, &Error::Zfs(ZfsError::from(e))))?;
    }
    let Some(joined) = chain(&reads.iter().collect::<Vec<_>>()) else {
        return Ok(Ok(String::new()));
    };
    Ok(host
        .endpoint()
        .run(&joined, &opts)
        .map(|o| o.stdout_text())
        .map_err(|e| Error::Zfs(ZfsError::from(e))))
}

/// Which move the shell line stopped at, and what it said.
fn failed_step(stderr: &str) -> Option<(usize, String)> {
    let (before, after) = stderr.split_once(FAILED_STEP)?;
    let _ = before;
    let (line, said) = after.split_once('\n').unwrap_or((after, ""));
    let i = line.split(':').next()?.trim().parse().ok()?;
    Some((i, said.trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failed_move_and_its_message() {
        assert_eq!(
            failed_step("zfleet-failed-step:2:1\ncannot hold snapshot 'z/a@b': tag already exists on this dataset"),
            Some((2, "cannot hold snapshot 'z/a@b': tag already exists on this dataset".into()))
        );
        assert_eq!(failed_step("ssh: connection closed"), None);
    }

    #[test]
    fn harmless_failures_of_each_move() {
        let hold = BaseMove::Hold {
            snapshot: "b".into(),
        };
        let f = |stderr: &str| {
            Failure::on(
                Side::Target,
                "backup",
                &Error::Zfs(ZfsError::from(crate::exec::ExecError::Failed {
                    host: "backup".into(),
                    cmdline: "zfs hold".into(),
                    status: "exit status 1".into(),
                    stderr: stderr.into(),
                })),
            )
        };
        let exists = f(include_str!(
            "../../tests/fixtures/openzfs-2.3.2/err-hold-tag-exists.stderr"
        ));
        assert!(is_kind(&exists, hold.benign()));
        let no_tag = f(include_str!(
            "../../tests/fixtures/openzfs-2.3.2/err-release-no-such-tag.stderr"
        ));
        assert!(is_kind(
            &no_tag,
            BaseMove::Release {
                snapshot: "a".into()
            }
            .benign()
        ));
        assert!(!is_kind(&no_tag, hold.benign()));
        let denied = f(include_str!(
            "../../tests/fixtures/openzfs-2.3.2/err-permission-denied-destroy.stderr"
        ));
        assert!(!is_kind(
            &denied,
            BaseMove::DestroyBookmark {
                bookmark: "x".into()
            }
            .benign()
        ));
        let fuse = f(include_str!(
            "../../tests/fixtures/zfs-fuse/err-holds-listing.stderr"
        ));
        assert!(is_kind(&fuse, hold.benign()));
    }
}
