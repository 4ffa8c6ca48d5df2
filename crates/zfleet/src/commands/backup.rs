use clap::Args;
use zfleet_core::failure::FailureKind;
use zfleet_core::replicate::backup::{run_backups, run_pushes, BackupReport};
use zfleet_core::replicate::plan::Plan;
use zfleet_core::replicate::{JobReport, Options, Outcome};
use zfleet_core::state::State;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs, TransferArgs};
use crate::context;
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
///
/// With --dry-run, each job's plan is printed in words, as `zfleet run
/// --dry-run` prints a snapshot plan: the common base (name and guid), each
/// step with its snapshot count and the sender's size estimate, and how the
/// base marks move on each side; nothing changes. With --json, each job in
/// `clients[].jobs[]` has its `plan` as a value (`decision`, `base`, `steps`,
/// `new_base`, `base_moves`) beside its `outcome`: "planned", "up_to_date",
/// `refused` (reason, message, hint) or `nothing_to_send`; after a run "sent",
/// or `failed` with its `kind`, `side`, `host` and `bytes`. docs/guide.md
/// shows the whole shape.
///
/// Exits 4 when a host, ssh or ZFS failed, 5 when a job was refused to
/// protect data, 70 on a bug.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Clients to back up (default: all of this server's clients).
    hosts: Vec<String>,
    /// Show each job's plan (what would be sent and why), change nothing.
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
    let cx = context::load(g)?;
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
        (true, false) => run_backups(&cx, &a.hosts, &opts, a.parallel, &progress, state.as_ref())?,
        (false, true) => {
            if !a.hosts.is_empty() {
                return Err(Error::Usage("a push client sends to every server that backs it up; it takes no host names".into()));
            }
            run_pushes(&cx, &opts, &progress, state.as_ref())?
        }
        (true, true) => {
            let mut r = run_backups(&cx, &a.hosts, &opts, a.parallel, &progress, state.as_ref())?;
            r.clients.extend(run_pushes(&cx, &opts, &progress, state.as_ref())?.clients);
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
        if report.dry_run {
            print_plans(&report);
        }
        print_summary(&report);
    }
    Ok(exit_code(report.clients.iter().flat_map(|c| &c.jobs)))
}

/// A bug first (70), then hosts that failed (4), then refusals (5).
pub fn exit_code<'a>(jobs: impl IntoIterator<Item = &'a JobReport>) -> u8 {
    let code = |j: &JobReport| match &j.outcome {
        Outcome::Failed(f) if f.kind == FailureKind::Internal => crate::exit::INTERNAL,
        Outcome::Failed(f) if f.kind == FailureKind::Diverged => crate::exit::REFUSED,
        Outcome::Failed(_) | Outcome::Degraded { .. } => crate::exit::REMOTE,
        Outcome::Refused { .. } => crate::exit::REFUSED,
        _ => crate::exit::OK,
    };
    let rank = |c: u8| match c {
        crate::exit::INTERNAL => 3,
        crate::exit::REMOTE => 2,
        crate::exit::REFUSED => 1,
        _ => 0,
    };
    jobs.into_iter()
        .map(code)
        .max_by_key(|c| rank(*c))
        .unwrap_or(crate::exit::OK)
}

/// Each job's plan in words, as `zfleet run --dry-run` prints a snapshot plan.
pub fn print_plans(r: &BackupReport) {
    for j in r.clients.iter().flat_map(|c| &c.jobs) {
        outln!("{} → {}", j.source, j.target);
        // A backup's source is on its client and its target on its server,
        // whoever runs it.
        let (src_host, dst_host) = (j.client.as_str(), j.server.as_str());
        match &j.plan {
            None => {}
            Some(Plan::Refused { .. }) => {
                if let Outcome::Refused { message, hint, .. } = &j.outcome {
                    outln!("  refused: {message}");
                    outln!("  hint: {hint}");
                } else if let Outcome::NothingToSend { message } = &j.outcome {
                    outln!("  nothing to send: {message}");
                }
            }
            Some(Plan::UpToDate { base, base_moves }) => {
                outln!("  up to date at @{} (guid {:#x})", base.name, base.guid);
                print_moves(src_host, dst_host, base_moves);
            }
            Some(Plan::Send {
                base,
                steps,
                new_base,
                base_moves,
            }) => {
                match base {
                    Some(b) => outln!(
                        "  common base: {}{} (guid {:#x})",
                        if matches!(b, zfleet_core::replicate::plan::Base::Bookmark { .. }) {
                            "#"
                        } else {
                            "@"
                        },
                        b.name(),
                        b.guid()
                    ),
                    None => outln!("  no common base: a first send"),
                }
                for (i, s) in steps.iter().enumerate() {
                    let mut detail = Vec::new();
                    if s.is_transfer() {
                        detail.push(zfleet_core::replicate::plan::plural(
                            s.snapshots() as usize,
                            "snapshot",
                        ));
                    }
                    if let Some(b) = s.estimated_bytes() {
                        detail.push(format!("about {}", render::bytes(b)));
                    }
                    let detail = if detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", detail.join(", "))
                    };
                    outln!("  {}. {}{detail}", i + 1, s.describe());
                }
                outln!("  then @{} is the base", new_base.name);
                print_moves(src_host, dst_host, base_moves);
            }
        }
    }
}

fn print_moves(src_host: &str, dst_host: &str, m: &zfleet_core::replicate::base_moves::BaseMoves) {
    for (host, moves) in [(src_host, &m.source), (dst_host, &m.target)] {
        if !moves.is_empty() {
            let words: Vec<String> = moves.iter().map(|m| m.describe()).collect();
            outln!("  on {host}: {}", words.join(", "));
        }
    }
}

pub fn print_summary(r: &BackupReport) {
    let mut t = render::table(["host", "dataset", "result", "snapshots", "bytes", "time"]);
    let mut notes = Vec::new();
    for c in &r.clients {
        for j in &c.jobs {
            let result = match &j.outcome {
                Outcome::UpToDate => "up to date".to_string(),
                Outcome::Sent => "ok".to_string(),
                Outcome::Planned => "would send".to_string(),
                Outcome::NothingToSend { message } => {
                    notes.push(format!("{}: {message}; it is backed up once it has one (zfleet run takes the policy's snapshots)", j.source));
                    "no snapshot yet".to_string()
                }
                Outcome::Refused { message, hint, .. } => {
                    notes.push(format!("{}: refused: {message}\n  hint: {hint}", j.source));
                    "REFUSED".to_string()
                }
                Outcome::Failed(f) => {
                    notes.push(format!("{}: {}", j.source, f.message));
                    "FAILED".to_string()
                }
                Outcome::Degraded { message } => {
                    notes.push(format!("{}: {message}", j.source));
                    "DEGRADED".to_string()
                }
            };
            notes.extend(
                j.warnings
                    .iter()
                    .map(|w| format!("{}: warning: {w}", j.source)),
            );
            let snapshots = if r.dry_run {
                j.plan
                    .as_ref()
                    .map_or(0, |p| p.steps().iter().map(|s| s.snapshots()).sum())
            } else {
                j.snapshots
            };
            t.add_row(vec![
                c.client.clone(),
                j.dataset.to_string(),
                result,
                snapshots.to_string(),
                render::bytes(j.bytes),
                format!("{:.1}s", j.seconds),
            ]);
        }
    }
    render::print_table(&t, "");
    if r.dry_run {
        outln!("dry run: nothing was changed");
    }
    for n in notes {
        eprintln!("{n}");
    }
}
