use std::time::Duration;

use clap::Args;
use zfleet_core::lock::{Lock, LockError};
use zfleet_core::snapshot::caps_cache;
use zfleet_core::snapshot::exec::{self, Report, Status};
use zfleet_core::snapshot::{plan, Action, Index, KeepRule, Plan, PlanInput, Steps};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// Take the snapshots that are due, then destroy the ones that have expired,
/// on the host this machine is (sanoid's `--cron`).
///
/// One `zfs` call reads every configured dataset; snapshots and destroys are
/// batched. Only snapshots named like sanoid's (`autosnap_…`) are ever
/// destroyed, never one that is held, is a replication base, or has not yet
/// been replicated to a server that wants it.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: SnapshotCommon,
}

/// Options shared by `snapshot`, `prune` and `run`.
#[derive(Debug, Args)]
pub struct SnapshotCommon {
    /// Print the plan (every snapshot to take, destroy or keep, with the rule
    /// that decides it) and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// When another zfleet run holds this host's lock, wait this long for it
    /// (`30s`, `5m`) before giving up with exit code 75.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_wait)]
    pub wait: Duration,
    #[command(flatten)]
    pub out: OutputArgs,
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write it like \"30s\" or \"5m\""))?;
    Duration::try_from(d).map_err(|_| format!("`{s}` must not be negative"))
}

pub fn cmd_run(g: &GlobalArgs, a: &RunArgs) -> Result<u8, Error> {
    execute(
        g,
        &a.common,
        Steps {
            take: true,
            prune: true,
        },
    )
}

/// The body of `snapshot`, `prune` and `run`.
pub fn execute(g: &GlobalArgs, a: &SnapshotCommon, steps: Steps) -> Result<u8, Error> {
    let cx = context::load(g)?;
    let host = cx.local();
    // Timers run this often: remember the dialect instead of probing each time.
    let cached = caps_cache::load(&cx.fleet.state_dir);
    let probe = cached.is_none();
    if let Some(c) = cached {
        host.preset_caps(c);
    }
    let input = PlanInput::from_fleet(&cx.fleet, &cx.this_host);
    if input.entries.is_empty() {
        eprintln!(
            "warning: the fleet file gives {} no snapshot policies; nothing to do",
            cx.this_host
        );
        return Ok(crate::exit::OK);
    }
    let tz = &cx.tz;
    if a.dry_run {
        let obs = exec::observe(&host, &input)?;
        let p = plan(&input, &obs.index, cx.now(), tz, steps);
        if a.out.json {
            render::json(&p);
        } else {
            print_plan(&p, &obs.index);
        }
        return Ok(crate::exit::OK);
    }
    // Held from observing to the last destroy: a second run waits or leaves,
    // so it can never take the same snapshots again or prune twice.
    let _lock = match Lock::acquire(&cx.fleet.state_dir, &cx.this_host, a.wait) {
        Ok(l) => l,
        Err(e @ LockError::Busy { .. }) => {
            eprintln!("zfleet: {e}; not running (exit 75)");
            eprintln!("  hint: pass --wait 5m to wait for it");
            return Ok(crate::exit::BUSY);
        }
        Err(e @ LockError::Io { .. }) => return Err(Error::Internal(e.to_string())),
    };
    let report = exec::run(&host, &input, cx.now(), tz, steps)?;
    if probe {
        if let Ok(c) = host.caps() {
            caps_cache::save(&cx.fleet.state_dir, c);
        }
    }
    if a.out.json {
        render::json(&report);
    } else {
        print_report(&report);
    }
    Ok(if report.failed() > 0 {
        crate::exit::REMOTE
    } else {
        crate::exit::OK
    })
}

fn warnings(p: &Plan) {
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
}

fn print_plan(p: &Plan, index: &Index) {
    warnings(p);
    outln!(
        "{}: plan for {} ({}), {} snapshots observed",
        p.host,
        render::local_time(p.now),
        p.time_zone,
        index.snapshot_count()
    );
    let mut t = render::table(["", "snapshot", "reason"]);
    for a in &p.actions {
        match a {
            Action::Snapshot(s) => t.add_row(vec![
                if s.recursive { "take -r" } else { "take" }.to_string(),
                format!("{}@{}", s.dataset, s.name),
                s.reason.clone(),
            ]),
            Action::Destroy(d) => t.add_row(vec![
                "destroy".to_string(),
                format!("{}@{}", d.dataset, d.name),
                d.reason.clone(),
            ]),
        };
    }
    for k in &p.kept {
        t.add_row(vec![
            if k.rule.is_protection() {
                "KEEP"
            } else {
                "keep"
            }
            .to_string(),
            format!("{}@{}", k.dataset, k.name),
            k.reason.clone(),
        ]);
    }
    render::print_table(&t, "  ");
    summary(p);
}

fn summary(p: &Plan) {
    let takes = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Snapshot(_)))
        .count();
    let destroys = p.actions.len() - takes;
    let protected = p.kept.iter().filter(|k| k.rule.is_protection()).count();
    let future = p.kept.iter().filter(|k| k.rule == KeepRule::Future).count();
    let mut s = format!(
        "{takes} to take, {destroys} to destroy, {} kept",
        p.kept.len()
    );
    if protected > 0 {
        s.push_str(&format!(" ({protected} protected)"));
    }
    if future > 0 {
        s.push_str(&format!(", {future} from the future"));
    }
    outln!("{s}");
}

fn print_report(r: &Report) {
    warnings(&r.plan);
    let mut t = render::table(["", "snapshot", "detail"]);
    for o in &r.outcomes {
        let (verb, snap) = match &o.action {
            Action::Snapshot(s) => (
                match o.status {
                    Status::Done => "took",
                    Status::Failed => "FAILED to take",
                    Status::Skipped => "skipped",
                },
                format!(
                    "{}@{}{}",
                    s.dataset,
                    s.name,
                    if s.recursive { " (-r)" } else { "" }
                ),
            ),
            Action::Destroy(d) => (
                match o.status {
                    Status::Done => "destroyed",
                    Status::Failed => "FAILED to destroy",
                    Status::Skipped => "skipped",
                },
                format!("{}@{}", d.dataset, d.name),
            ),
        };
        t.add_row(vec![
            verb.to_string(),
            snap,
            o.detail.clone().unwrap_or_default(),
        ]);
    }
    for h in &r.hooks {
        if !h.outcome.ok() {
            t.add_row(vec![
                format!("{} FAILED", h.hook),
                h.dataset.to_string(),
                format!("{}: {}", h.command, h.outcome.describe()),
            ]);
        }
    }
    if !r.outcomes.is_empty() || r.hooks.iter().any(|h| !h.outcome.ok()) {
        render::print_table(&t, "");
    }
    let count = |want: &str, st: Status| {
        r.outcomes
            .iter()
            .filter(|o| {
                o.status == st
                    && matches!(
                        (&o.action, want),
                        (Action::Snapshot(_), "take") | (Action::Destroy(_), "destroy")
                    )
            })
            .count()
    };
    let protected = r
        .plan
        .kept
        .iter()
        .filter(|k| k.rule.is_protection())
        .count();
    outln!(
        "{}: took {}, destroyed {}, kept {}{}{}; {} zfs call{}",
        r.plan.host,
        count("take", Status::Done),
        count("destroy", Status::Done),
        r.plan.kept.len(),
        if protected > 0 {
            format!(" ({protected} protected)")
        } else {
            String::new()
        },
        match r.failed() {
            0 => String::new(),
            n => format!(", {n} FAILED"),
        },
        r.zfs_calls,
        if r.zfs_calls == 1 { "" } else { "s" }
    );
}
