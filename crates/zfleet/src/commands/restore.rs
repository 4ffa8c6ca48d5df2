use clap::Args;
use zfleet_core::failure::FailureKind;
use zfleet_core::restore::files::{self, FileReport, FileRequest};
use zfleet_core::restore::plan::{ServerView, Step};
use zfleet_core::restore::{
    self, Hosts, ListReport, Outcome, RefusalKind, Request, RestoreReport, Selector, Target,
};
use zfleet_core::zfs::DatasetName;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs, StreamArgs};
use crate::context;
use crate::progress::CliProgress;
use crate::render;

/// Restore a host's backups: its backed-up datasets (or with --path single
/// files) from a backup server, onto the host or another one.
///
/// Runs anywhere that reaches the server and the destination, as the fleet
/// file's admin (`[ssh]`/host `user`), never the backup account; a side that
/// is this machine (`--host`) is local. By default the newest snapshot of each
/// of the host's backed-up datasets comes from the server with the newest
/// copy. A destination that does not exist is created; one that holds only
/// what a fresh install makes (empty snapshots at most, nothing written)
/// is replaced; one that holds data is refused unless --force, which keeps it
/// under a new name after a safety snapshot. Everything arrives under a
/// temporary name first, so a failed transfer never leaves the destination
/// half-replaced. After restoring the newest snapshot, backups continue
/// incrementally from it.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The host whose backups to restore.
    host: String,
    /// Only this backed-up dataset, as named on the host (repeatable).
    #[arg(long = "dataset", value_name = "DATASET")]
    datasets: Vec<String>,
    /// Restore this snapshot (its name after `@`, as --list shows it).
    #[arg(long, value_name = "NAME", conflicts_with = "at")]
    snapshot: Option<String>,
    /// Restore the newest snapshot from this time or before
    /// (`2026-11-25 14:00` in local time, or RFC 3339 such as `2026-11-25T13:00:00Z`).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Restore from this backup server (default: the one with the newest copy).
    #[arg(long, value_name = "SERVER")]
    from: Option<String>,
    /// Restore onto another host, or under another name there: `HOST` or
    /// `HOST:DATASET` (one dataset only).
    #[arg(long, value_name = "HOST[:DATASET]")]
    to: Option<String>,
    /// Show what would happen and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// List what can be restored: each server's snapshots of each dataset,
    /// with time and size.
    #[arg(long, conflicts_with_all = ["dry_run", "force", "to", "path", "into", "snapshot", "at"])]
    list: bool,
    /// Restore over a destination that holds data: it is first snapshotted
    /// (`@zfleet_before_restore_<time>`) and kept under a new name, so the
    /// restore can be undone. With --path: a snapshot of the host's dataset is
    /// taken before files are overwritten.
    #[arg(long)]
    force: bool,
    /// Restore only this file or directory: an absolute path on the host,
    /// inside one of its backed-up datasets.
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// With --path: write it into this directory on the host instead of at
    /// its place.
    #[arg(long, value_name = "DIR", requires = "path")]
    into: Option<String>,
    #[command(flatten)]
    stream: StreamArgs,
    #[command(flatten)]
    out: OutputArgs,
}

fn selector(a: &RestoreArgs, tz: &jiff::tz::TimeZone) -> Result<Selector, Error> {
    Ok(match (&a.snapshot, &a.at) {
        (Some(n), _) => {
            let n = n.strip_prefix('@').unwrap_or(n);
            // Checked like every name zfleet passes to zfs.
            zfleet_core::zfs::SnapshotName::check_short(n)
                .map_err(|e| Error::Usage(format!("--snapshot: {e}")))?;
            Selector::Named(n.to_string())
        }
        (None, Some(t)) => Selector::At(
            restore::time::parse_at(t, tz).map_err(|e| Error::Usage(format!("--at: {e}")))?,
        ),
        (None, None) => Selector::Newest,
    })
}

pub fn cmd_restore(g: &GlobalArgs, a: &RestoreArgs) -> Result<u8, Error> {
    // The command line is checked before the fleet file is read or any host
    // asked; `--at` is in this machine's zone, the runtime's too.
    let selector = selector(a, &jiff::tz::TimeZone::system())?;
    let cx = context::load(g)?;
    let datasets = a
        .datasets
        .iter()
        .map(|d| DatasetName::parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let to = a.to.as_deref().map(Target::parse).transpose()?;
    let req = Request {
        host: a.host.clone(),
        datasets,
        selector,
        from: a.from.clone(),
        to,
        force: a.force,
        dry_run: a.dry_run,
        pump: a.stream.pump_options()?,
    };
    let hosts = Hosts::new(&cx);
    let progress = CliProgress::new(g.quiet, a.out.json);
    if a.list {
        let report = restore::list(&cx, &req, &hosts)?;
        if a.out.json {
            render::json(&report);
        } else {
            print_list(&report);
        }
        let failed = report
            .datasets
            .iter()
            .flat_map(|d| &d.servers)
            .any(|v| matches!(v, ServerView::Failed { .. }));
        return Ok(if failed {
            crate::exit::REMOTE
        } else {
            crate::exit::OK
        });
    }
    if let Some(path) = &a.path {
        if !req.datasets.is_empty() {
            return Err(Error::Usage(
                "--path finds its dataset from the path; leave out --dataset".into(),
            ));
        }
        let freq = FileRequest {
            host: req.host.clone(),
            path: path.clone(),
            into: a.into.clone(),
            selector: req.selector.clone(),
            from: req.from.clone(),
            to: req.to.clone(),
            force: req.force,
            dry_run: req.dry_run,
            pump: req.pump,
        };
        let report = files::restore_path(&cx, &freq, &hosts, &progress)?;
        if a.out.json {
            render::json(&report);
        } else {
            print_file(&report);
        }
        return Ok(exit_code([&report.outcome]));
    }
    let report = restore::restore(&cx, &req, &hosts, &progress)?;
    if a.out.json {
        render::json(&report);
    } else {
        print_report(&report);
    }
    Ok(exit_code(report.datasets.iter().map(|d| &d.outcome)))
}

/// A bug first (70), then failures (4), then refusals to protect data (5),
/// then things that were not found (2).
fn exit_code<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> u8 {
    let mut code = crate::exit::OK;
    for o in outcomes {
        let c = match o {
            Outcome::Failed(f) if f.kind == FailureKind::Internal => crate::exit::INTERNAL,
            Outcome::Failed(_)
            | Outcome::Refused {
                kind: RefusalKind::Remote,
                ..
            } => crate::exit::REMOTE,
            Outcome::Refused {
                kind: RefusalKind::Protect,
                ..
            } => crate::exit::REFUSED,
            Outcome::Refused {
                kind: RefusalKind::NotFound,
                ..
            } => crate::exit::USAGE,
            _ => crate::exit::OK,
        };
        let rank = |c: u8| match c {
            crate::exit::INTERNAL => 4,
            crate::exit::REMOTE => 3,
            crate::exit::REFUSED => 2,
            crate::exit::USAGE => 1,
            _ => 0,
        };
        if rank(c) > rank(code) {
            code = c;
        }
    }
    code
}

fn print_list(r: &ListReport) {
    for (i, d) in r.datasets.iter().enumerate() {
        if i > 0 {
            outln!();
        }
        outln!("{}", d.source);
        for v in &d.servers {
            match v {
                ServerView::Copy(c) => {
                    let enc = if c.encrypted { ", encrypted" } else { "" };
                    outln!(
                        "  {}: {} ({} snapshot{}{enc})",
                        c.server,
                        c.backup,
                        c.snapshots.len(),
                        if c.snapshots.len() == 1 { "" } else { "s" }
                    );
                    if c.snapshots.is_empty() {
                        continue;
                    }
                    let mut t = render::table(["snapshot", "created", "size", "unique"]);
                    for s in c.snapshots.iter().rev() {
                        t.add_row(vec![
                            s.name.clone(),
                            render::local_time(s.creation),
                            s.referenced.map(render::bytes).unwrap_or_default(),
                            s.used.map(render::bytes).unwrap_or_default(),
                        ]);
                    }
                    render::print_table(&t, "    ");
                }
                ServerView::NoCopy { server, backup } => {
                    outln!("  {server}: no copy ({backup} does not exist)")
                }
                ServerView::Failed { server, error } => outln!("  {server}: FAILED: {error}"),
            }
        }
    }
}

fn print_report(r: &RestoreReport) {
    let mut notes: Vec<String> = Vec::new();
    for d in &r.datasets {
        if let Some(c) = &d.choice {
            outln!(
                "{} ← {}:{}@{} ({}{})",
                d.destination,
                c.server,
                c.backup,
                c.snapshot.name,
                render::local_time(c.snapshot.creation),
                c.snapshot
                    .referenced
                    .map(|b| format!(", {}", render::bytes(b)))
                    .unwrap_or_default()
            );
            outln!("  from: {}", c.reason);
        }
        if let Some(p) = &d.plan {
            outln!("  destination: {}", p.destination_state);
            if r.dry_run {
                for (i, s) in p.steps.iter().enumerate() {
                    outln!("  {}. {}", i + 1, s.describe());
                }
            }
            for n in &p.notes {
                outln!("  note: {n}");
            }
            if !p.undo.is_empty() && !r.dry_run && d.outcome == Outcome::Restored {
                outln!("  to undo this restore, on {}:", d.destination_host);
                for u in &p.undo {
                    outln!("    {u}");
                }
            }
            if r.dry_run
                && p.steps
                    .iter()
                    .any(|s| matches!(s, Step::SetAside { keep: true, .. }))
            {
                outln!("  (the undo commands are printed after the restore)");
            }
        }
        match &d.outcome {
            Outcome::Refused { message, hint, .. } => {
                notes.push(format!("{}: refused: {message}\n  hint: {hint}", d.source))
            }
            Outcome::Failed(f) => notes.push(format!("{}: {}", d.source, f.message)),
            _ => {}
        }
        notes.extend(
            d.warnings
                .iter()
                .map(|w| format!("{}: warning: {w}", d.source)),
        );
    }
    if !r.dry_run || r.datasets.iter().any(|d| !d.ok()) {
        let mut t = render::table(["dataset", "destination", "from", "result", "bytes", "time"]);
        for d in &r.datasets {
            let from = d
                .choice
                .as_ref()
                .map(|c| format!("{}@{}", c.server, c.snapshot.name))
                .unwrap_or_default();
            let result = match &d.outcome {
                Outcome::Restored => "restored",
                Outcome::AlreadyThere => "already there",
                Outcome::Planned => "planned",
                Outcome::Refused { .. } => "REFUSED",
                Outcome::Failed { .. } => "FAILED",
            };
            t.add_row(vec![
                d.dataset.to_string(),
                d.destination.clone(),
                from,
                result.to_string(),
                render::bytes(d.bytes),
                format!("{:.1}s", d.seconds),
            ]);
        }
        render::print_table(&t, "");
    }
    if r.dry_run {
        outln!("dry run: nothing was changed");
    }
    for n in notes {
        eprintln!("{n}");
    }
}

fn print_file(r: &FileReport) {
    if let Some(p) = &r.plan {
        let c = &p.choice;
        outln!(
            "{} ← {}:{}@{} ({}), {}",
            r.destination,
            c.server,
            c.backup,
            c.snapshot.name,
            render::local_time(c.snapshot.creation),
            if p.relative.is_empty() {
                "everything in it".to_string()
            } else {
                p.relative.clone()
            }
        );
        outln!("  from: {}", c.reason);
        for (i, s) in p.steps.iter().enumerate() {
            outln!("  {}. {}", i + 1, s.describe());
        }
        for n in &p.notes {
            outln!("  note: {n}");
        }
    }
    match &r.outcome {
        Outcome::Restored => outln!(
            "restored {} ({} in {:.1}s)",
            r.path,
            render::bytes(r.bytes),
            r.seconds
        ),
        Outcome::Planned => outln!("dry run: nothing was changed"),
        Outcome::Refused { message, hint, .. } => {
            eprintln!("refused: {message}\n  hint: {hint}")
        }
        Outcome::Failed(f) => eprintln!("error: {}", f.message),
        Outcome::AlreadyThere => {}
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
}
