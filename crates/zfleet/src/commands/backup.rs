use clap::Args;
use zfleet_core::replicate::backup::{run_backups, run_pushes, BackupReport};
use zfleet_core::replicate::exec::{Options, Outcome};
use zfleet_core::state::State;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs, TransferArgs};
use crate::context::Context;
use crate::progress::CliProgress;
use crate::render;

/// Pull backups: replicate every client this server backs up (the jobs
/// `zfleet check` lists), or only the HOSTs named.
///
/// Runs on a backup server; on a client with `push = true` it sends that
/// client's datasets to every server that backs it up instead. The first run sends each dataset's oldest snapshot
/// in full and then every later one; later runs send incrementally from the
/// newest snapshot both sides share (found by guid). A target that was changed
/// or has snapshots the source lacks is refused unless --rollback.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Clients to back up (default: all of this server's clients).
    hosts: Vec<String>,
    /// Show what would be sent, change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    transfer: TransferArgs,
    /// Clients backed up at the same time (default: the server's `parallel`).
    #[arg(long)]
    parallel: Option<usize>,
    #[command(flatten)]
    out: OutputArgs,
}

pub fn cmd_backup(g: &GlobalArgs, a: &BackupArgs) -> Result<u8, Error> {
    let cx = Context::load(g)?;
    let state = if a.dry_run {
        None
    } else {
        Some(State::open(&cx.fleet.state_dir).map_err(|e| Error::Internal(e.to_string()))?)
    };
    let opts = Options {
        plan: a.transfer.plan_options(),
        pump: a.transfer.pump_options()?,
        dry_run: a.dry_run,
    };
    let progress = CliProgress::new(g.quiet, a.out.json);
    let me = &cx.this_host;
    let is_server = cx.fleet.host(me).is_some_and(|h| h.server.is_some());
    let pushes = !cx.fleet.push_jobs(me).is_empty();
    let report = match (is_server, pushes) {
        (true, false) => run_backups(&cx.fleet, me, &a.hosts, &opts, a.parallel, &progress, state.as_ref())?,
        (false, true) => {
            if !a.hosts.is_empty() {
                return Err(Error::Usage("a push client sends to every server that backs it up; it takes no host names".into()));
            }
            run_pushes(&cx.fleet, me, &opts, &progress, state.as_ref())?
        }
        (true, true) => {
            let mut r = run_backups(&cx.fleet, me, &a.hosts, &opts, a.parallel, &progress, state.as_ref())?;
            r.clients.extend(run_pushes(&cx.fleet, me, &opts, &progress, state.as_ref())?.clients);
            r
        }
        (false, false) => {
            return Err(Error::Usage(format!(
                "this machine is `{me}`, which is neither a backup server nor a client that pushes (use --host NAME if it has another name in {})",
                cx.fleet.file.display()
            )))
        }
    };
    if a.out.json {
        render::json(&report);
    } else {
        print_summary(&report);
    }
    let outcomes = || {
        report
            .clients
            .iter()
            .flat_map(|c| &c.jobs)
            .map(|j| &j.outcome)
    };
    Ok(
        if outcomes().any(|o| matches!(o, Outcome::Failed { .. } | Outcome::Degraded { .. })) {
            crate::exit::REMOTE
        } else if outcomes().any(|o| matches!(o, Outcome::Refused { .. })) {
            crate::exit::REFUSED
        } else {
            crate::exit::OK
        },
    )
}

pub fn print_summary(r: &BackupReport) {
    let mut t = render::table(["host", "dataset", "result", "snapshots", "bytes", "time"]);
    let mut notes = Vec::new();
    for c in &r.clients {
        for j in &c.jobs {
            let dataset = j
                .label
                .split_once(':')
                .map_or(j.label.as_str(), |(_, d)| d)
                .to_string();
            let result = match &j.outcome {
                Outcome::UpToDate => "up to date".to_string(),
                Outcome::Sent => "ok".to_string(),
                Outcome::Planned => format!("would run: {}", j.steps.join("; ")),
                Outcome::NothingToSend { message } => {
                    notes.push(format!("{}: {message}; it is backed up once it has one (zfleet run takes the policy's snapshots)", j.label));
                    "no snapshot yet".to_string()
                }
                Outcome::Refused { message, hint } => {
                    notes.push(format!("{}: refused: {message}\n  hint: {hint}", j.label));
                    "REFUSED".to_string()
                }
                Outcome::Failed { message } => {
                    notes.push(format!("{}: {message}", j.label));
                    "FAILED".to_string()
                }
                Outcome::Degraded { message } => {
                    notes.push(format!("{}: {message}", j.label));
                    "DEGRADED".to_string()
                }
            };
            notes.extend(
                j.warnings
                    .iter()
                    .map(|w| format!("{}: warning: {w}", j.label)),
            );
            t.add_row(vec![
                c.client.clone(),
                dataset,
                result,
                j.snapshots.to_string(),
                render::bytes(j.bytes),
                format!("{:.1}s", j.seconds),
            ]);
        }
    }
    render::print_table(&t, "");
    for n in notes {
        eprintln!("{n}");
    }
}
