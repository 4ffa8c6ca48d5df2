//! Runs a replication: observe both sides, plan, run the plan's steps in
//! order, then move the base marks. Every step leaves the target at a complete
//! snapshot: ZFS receives each snapshot atomically, and zfleet never rolls a
//! target back unless the plan says so (which needs `--rollback`).
//!
//! When a step fails because the world is not what the plan was made from (a
//! snapshot pruned meanwhile, the target written, a resume token gone stale),
//! the job observes again and makes a new plan, a few times at most.

use std::time::Instant;

use super::job::{JobReport, JobSpec, Options, Outcome};
use super::observe::observe;
use super::plan::{self, Plan, Refusal, Step};
use super::properties;
use super::steps::{self, Ends};
use crate::clock::Clock;
use crate::failure::{Failure, Side};
use crate::host::Host;
use crate::progress::Progress;
use crate::protocol::base_marker;
use crate::zfs::{cmd, Listing};

/// Plans made for one job before it gives up on a world that keeps changing.
const MAX_PLANS: usize = 3;

/// Replicates one dataset. A failure is in the report, never a panic or an `Err`.
pub fn replicate(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    opts: &Options,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> JobReport {
    replicate_observed(src, dst, job, opts, clock, progress, None)
}

/// Like [`replicate`], starting from a listing of the source made moments
/// before (one listing for all of a client's datasets saves a round trip per
/// dataset). It must hold the job's source and the base marker property.
pub fn replicate_observed(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    opts: &Options,
    clock: &dyn Clock,
    progress: &dyn Progress,
    source: Option<Listing>,
) -> JobReport {
    let start = Instant::now();
    let mut report = JobReport::new(job, &src.name, &dst.name, Outcome::UpToDate);
    if let Err(f) = run(src, dst, job, opts, clock, progress, &mut report, source) {
        // The bytes of the failed stream count with the ones before it.
        report.bytes += f.bytes;
        report.outcome = Outcome::Failed(f);
    }
    report.seconds = start.elapsed().as_secs_f64();
    report
}

#[allow(clippy::too_many_arguments)]
fn run(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    opts: &Options,
    clock: &dyn Clock,
    progress: &dyn Progress,
    report: &mut JobReport,
    mut listing: Option<Listing>,
) -> Result<(), Failure> {
    let marker = base_marker(&job.marker);
    // Both ends probed at once: the first probe of a remote end pays for the
    // ssh connection, which the other end need not wait for.
    let (src_caps, dst_caps) = std::thread::scope(|s| {
        let src_caps = s.spawn(|| src.caps());
        let dst_caps = dst.caps();
        (src_caps.join(), dst_caps)
    });
    let src_caps = src_caps
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
        .map_err(|e| Failure::on(Side::Source, &src.name, &e.into()))?;
    let dst_caps = dst_caps.map_err(|e| Failure::on(Side::Target, &dst.name, &e.into()))?;
    let ends = Ends {
        src,
        dst,
        src_caps,
        dst_caps,
    };
    if job.sync_snapshot && !opts.dry_run {
        let snap = job
            .source
            .snapshot(&job.sync_naming().name(clock.now()))
            .map_err(|e| ends.fail(Side::Source, e.into()))?;
        ends.run(Side::Source, &cmd::snapshot(&snap))?;
        // An earlier listing lacks it.
        listing = None;
    }
    let plan_opts = plan_options(job, opts, &ends, &marker);
    let mut last: Option<Plan> = None;
    for attempt in 1..=MAX_PLANS {
        let mut observed = observe(src, dst, job, &marker, listing.take())?;
        if let Some(f) = &job.snapshot_filter {
            observed.source.snapshots.retain(|s| f.admits(&s.name));
            observed.source.marked.retain(|m| f.admits(m));
        }
        let mut planned = plan::plan(&observed, &plan_opts);
        steps::estimate(&ends, job, planned.steps_mut());
        report.plan = Some(planned.clone());
        if let Plan::Discard { steps } = &planned {
            return discard(&ends, job, steps, opts, progress, report);
        }
        let Some((steps, base_moves, new_base)) = to_run(&planned, report) else {
            return Ok(());
        };
        if opts.dry_run {
            report.steps = steps.to_vec();
            if steps.is_empty() {
                report.base = Some(new_base.clone());
            } else {
                report.outcome = Outcome::Planned;
            }
            return Ok(());
        }
        if !observed.target.exists && steps.iter().any(|s| matches!(s, Step::Full { .. })) {
            steps::ensure_parents(&ends, job)?;
        }
        // A first send makes the target (or replaces it): it has no
        // properties of its own to compare with, and its stream is the long
        // one, so the source's properties are read while it runs. Otherwise
        // both sides' reads ride on their base moves (no command of their own).
        let fresh_target = steps
            .iter()
            .any(|s| matches!(s, Step::Full { .. } | Step::DestroyTarget { .. }));
        let (ran, read) = std::thread::scope(|s| {
            let read =
                fresh_target.then(|| s.spawn(|| read_source(&ends, job, &marker, clock.now())));
            let ran = run_steps(&ends, job, steps, opts, progress, report);
            let read = read.map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            (ran, read)
        });
        let read_only = match ran {
            Ok(r) => r,
            Err(f) => {
                if !(f.kind.means_changed_state()
                    && attempt < MAX_PLANS
                    && last.as_ref() != Some(&planned))
                {
                    return Err(f);
                }
                tracing::info!(
                    "{}: {}; looking again and planning anew",
                    job.label(),
                    f.message
                );
                report.bytes += f.bytes;
                last = Some(planned);
                continue;
            }
        };
        let sent = report
            .steps
            .iter()
            .any(|s| !matches!(s, Step::AbortResume { .. }));
        if sent {
            report.outcome = Outcome::Sent;
        }
        finish(
            &ends,
            job,
            &read_only,
            base_moves,
            &marker,
            clock,
            match (sent, read) {
                (false, _) => Reads::None,
                (true, Some(source)) => Reads::Taken(source),
                (true, None) => Reads::WithMoves,
            },
            report,
        )?;
        report.base = Some(new_base.clone());
        return Ok(());
    }
    Err(Failure::internal(format!(
        "{}: the datasets kept changing while zfleet replicated them; {MAX_PLANS} plans made, none could run",
        job.label()
    )))
}

/// The planner's options for this job on these two ends.
fn plan_options(job: &JobSpec, opts: &Options, ends: &Ends<'_>, marker: &str) -> plan::Options {
    let mut o = opts.plan.clone();
    o.bookmarks &= ends.src_caps.bookmarks;
    o.raw = job.raw && ends.src_caps.raw_send;
    o.moves.marker = marker.to_string();
    o.moves.source_bookmarks = ends.src_caps.bookmarks && job.base_bookmarks;
    o.moves.source_served = ends.src.is_served();
    o.moves.sync = (job.sync_snapshot && !job.keep_sync_snapshots).then(|| job.sync_naming());
    o.one_by_one |= job.snapshot_filter.is_some();
    o
}

/// Nothing to send, but a stale partial receive on the target goes (or,
/// with `--dry-run`, would go).
fn discard(
    ends: &Ends<'_>,
    job: &JobSpec,
    steps: &[Step],
    opts: &Options,
    progress: &dyn Progress,
    report: &mut JobReport,
) -> Result<(), Failure> {
    if opts.dry_run {
        report.steps = steps.to_vec();
        report.outcome = Outcome::Planned;
        return Ok(());
    }
    // Aborting a receive sends nothing: there is no `readonly=on` to set.
    run_steps(ends, job, steps, opts, progress, report)?;
    report.outcome = Outcome::NothingToSend {
        message: Refusal::NoSourceSnapshots.message(&report.source, &report.target),
    };
    Ok(())
}

/// What a plan has the executor run (steps, base moves, the new base), or
/// `None` when the plan is the job's answer: a refusal, or nothing to send yet.
fn to_run<'p>(
    planned: &'p Plan,
    report: &mut JobReport,
) -> Option<(
    &'p [Step],
    &'p super::base_moves::BaseMoves,
    &'p super::plan::Snap,
)> {
    match planned {
        // A client whose first snapshot is still to come is not an error:
        // it is reported, and the run goes on.
        Plan::Refused {
            refusal: r @ Refusal::NoSourceSnapshots,
        } => {
            report.outcome = Outcome::NothingToSend {
                message: r.message(&report.source, &report.target),
            };
            None
        }
        Plan::Refused { refusal } => {
            report.outcome = Outcome::Refused {
                refusal: refusal.clone(),
                message: refusal.message(&report.source, &report.target),
                hint: refusal.hint().to_string(),
            };
            None
        }
        Plan::UpToDate { base, base_moves } => Some((&[], base_moves, base)),
        // Run by `discard` before this is asked.
        Plan::Discard { .. } => None,
        Plan::Send {
            steps,
            base_moves,
            new_base,
            ..
        } => Some((steps, base_moves, new_base)),
    }
}

/// Runs the steps; returns the `readonly=on` that a full send as the last
/// step leaves to the target's base moves, so that it costs no round trip
/// of its own.
fn run_steps(
    ends: &Ends<'_>,
    job: &JobSpec,
    steps: &[Step],
    opts: &Options,
    progress: &dyn Progress,
    report: &mut JobReport,
) -> Result<Vec<crate::exec::Argv>, Failure> {
    let mut read_only = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        tracing::info!("{}: {}", job.label(), step.describe());
        report.bytes += steps::run(ends, job, step, opts, progress)?;
        if matches!(step, Step::Full { .. }) {
            if i + 1 == steps.len() {
                read_only.push(steps::read_only(job));
            } else {
                ends.run(Side::Target, &steps::read_only(job))?;
            }
        }
        report.snapshots += step.snapshots();
        if let Step::AbortResume { reason } = step {
            report
                .warnings
                .push(format!("an interrupted receive was discarded: {reason}"));
        }
        report.steps.push(step.clone());
    }
    Ok(read_only)
}

/// The source's property rows and its pool's altroot, or why not.
type SourceProperties = Result<(Vec<crate::zfs::PropertyRow>, Option<String>), String>;

/// How [`finish`] learns the properties a send copies.
enum Reads {
    /// Nothing was sent: no properties are copied.
    None,
    /// The source's, read while the streams ran into a target they made.
    Taken(SourceProperties),
    /// Both sides' at the end of their base moves.
    WithMoves,
}

fn commands(reads: &[crate::exec::Argv]) -> String {
    reads
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The source's properties in one command of their own (while a stream runs).
fn read_source(ends: &Ends<'_>, job: &JobSpec, marker: &str, now: i64) -> SourceProperties {
    let reads = properties::source_reads(&job.source);
    steps::make_moves_then(
        ends.src,
        Side::Source,
        &job.source,
        &[],
        &[],
        marker,
        now,
        &reads,
    )
    .map_err(|f| f.message)
    .and_then(|r| r.map_err(|e| e.to_string()))
    .and_then(|text| {
        properties::parse_source(ends.src, &text, &commands(&reads)).map_err(|e| e.to_string())
    })
}

/// Moves the base marks on both sides at the same time (on a remote host
/// every command is a round trip), and after a send copies the properties.
/// An incremental reads each side's properties in the same round trip as its
/// base moves and writes what differs in one more: an up-to-date job's
/// incremental costs the source its stream and this one command (its listing
/// is shared by all of the client's jobs), and the target the same. After a
/// first send, whose target has nothing to compare, the source's were read
/// during the stream and are written beside the base moves.
#[allow(clippy::too_many_arguments)]
fn finish(
    ends: &Ends<'_>,
    job: &JobSpec,
    read_only: &[crate::exec::Argv],
    moves: &super::base_moves::BaseMoves,
    marker: &str,
    clock: &dyn Clock,
    reads: Reads,
    report: &mut JobReport,
) -> Result<(), Failure> {
    let now = clock.now();
    let with_moves = matches!(reads, Reads::WithMoves);
    let (src_reads, dst_reads) = if with_moves {
        (
            properties::source_reads(&job.source).to_vec(),
            vec![properties::target_read(&job.target)],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    // A backup without its properties restores with the wrong mountpoint
    // and record size: that is not a success, whatever was sent.
    let write = |source: SourceProperties,
                 current: Result<Vec<crate::zfs::PropertyRow>, String>| {
        let warnings = match (source, current) {
            (Ok((rows, altroot)), Ok(current)) => {
                properties::apply(ends.dst, job, &rows, altroot.as_deref(), &current)
            }
            (Err(e), _) | (_, Err(e)) => vec![e],
        };
        (!warnings.is_empty()).then(|| warnings.join("; "))
    };
    let (src_moved, dst_moved, written) = std::thread::scope(|s| {
        let src_moved = s.spawn(|| {
            steps::make_moves_then(
                ends.src,
                Side::Source,
                &job.source,
                &[],
                &moves.source,
                marker,
                now,
                &src_reads,
            )
        });
        let written = match reads {
            Reads::Taken(source) => Some(s.spawn(move || write(source, Ok(Vec::new())))),
            _ => None,
        };
        let dst_moved = steps::make_moves_then(
            ends.dst,
            Side::Target,
            &job.target,
            read_only,
            &moves.target,
            marker,
            now,
            &dst_reads,
        );
        let src_moved = src_moved
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let written =
            written.and_then(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (src_moved, dst_moved, written)
    });
    let src_read = src_moved?;
    let dst_read = dst_moved?;
    let not_copied = if with_moves {
        let source = src_read.map_err(|e| e.to_string()).and_then(|text| {
            properties::parse_source(ends.src, &text, &commands(&src_reads))
                .map_err(|e| e.to_string())
        });
        let current = dst_read.map_err(|e| e.to_string()).and_then(|text| {
            properties::parse_target(ends.dst, &text, &commands(&dst_reads))
                .map_err(|e| e.to_string())
        });
        write(source, current)
    } else {
        written
    };
    if let Some(why) = not_copied {
        report.outcome = Outcome::Degraded {
            message: format!("sent, but the properties were not copied: {why}"),
        };
    }
    Ok(())
}
