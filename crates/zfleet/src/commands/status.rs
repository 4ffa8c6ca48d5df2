use std::time::Duration;

use clap::Args;
use zfleet_core::status::collect::{assemble, observe, Scope};
use zfleet_core::status::page::{ago, relative, span};
use zfleet_core::status::{BackupRow, StatusReport};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use zfleet_core::runtime::Runtime;

use crate::context;
use crate::render;

/// Where every backup stands: one row per server × client × dataset, and
/// each host's pools and newest policy snapshots.
///
/// Reads every backup server's state database (and push clients') with
/// `zfleet state` over ssh, and each host's datasets and pools, one
/// connection per host. States: ok, late (no success within `late_after`,
/// default twice the schedule's interval), failing (the last attempt
/// failed), never (backed up), paused (`enabled = false`). Run it anywhere
/// the admin ssh key works. `--json` is documented in docs/monitoring.md.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these hosts: servers show all their rows, clients their own.
    hosts: Vec<String>,
    /// Redraw every few seconds until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "10")]
    watch: Option<u64>,
    /// Hosts read at the same time.
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    #[command(flatten)]
    out: OutputArgs,
}

pub fn collect(cx: &Runtime, hosts: &[String], parallel: usize) -> Result<StatusReport, Error> {
    for h in hosts {
        if cx.fleet.host(h).is_none() {
            return Err(Error::UnknownHost {
                name: h.clone(),
                known: cx.fleet.hosts.keys().cloned().collect(),
            });
        }
    }
    let scope = Scope {
        only: hosts.to_vec(),
        daemon_server: None,
    };
    let now = cx.now();
    let obs = observe(
        &cx.fleet,
        &cx.this_host,
        cx.sessions(),
        &scope,
        parallel,
        now,
    );
    Ok(assemble(&cx.fleet, &scope, &obs, now, &cx.tz))
}

pub fn cmd_status(g: &GlobalArgs, a: &StatusArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    loop {
        let r = collect(&cx, &a.hosts, a.parallel)?;
        if a.watch.is_some() && !a.out.json {
            // Clear the screen and go home, as watch(1) does.
            print!("\x1b[H\x1b[2J");
        }
        if a.out.json {
            render::json(&r);
        } else {
            print_report(&r);
        }
        match a.watch {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
            None => {
                return Ok(if r.errors.is_empty() {
                    crate::exit::OK
                } else {
                    crate::exit::REMOTE
                })
            }
        }
    }
}

fn opt_ago(now: i64, t: Option<i64>) -> String {
    t.map_or_else(|| "—".to_string(), |t| ago(now, t))
}

/// `2 h ago (content)`, or `FAILED (content)` while the newest fails.
fn verified_cell(r: &BackupRow, now: i64) -> String {
    let Some(v) = &r.verify else {
        return "—".to_string();
    };
    if let Some(level) = &v.failing_level {
        return format!("FAILED ({level})");
    }
    let warned = if v.warning.is_some() { ", warning" } else { "" };
    match (v.last_verified, &v.last_verified_level) {
        (Some(t), Some(level)) => format!("{} ({level}{warned})", ago(now, t)),
        _ => "—".to_string(),
    }
}

fn state_cell(r: &BackupRow, now: i64) -> String {
    let mut s = r.state.describe().to_string();
    if let Some(retry) = &r.retry {
        s.push_str(&format!(
            " (retry {} {})",
            retry.attempt,
            relative(now, retry.at)
        ));
    }
    s
}

pub fn print_report(r: &StatusReport) {
    let now = r.generated;
    for (i, s) in r.servers.iter().enumerate() {
        if i > 0 {
            outln!("");
        }
        outln!("{} (backups {})", s.server, s.schedule);
        let mut t = render::table([
            "client",
            "dataset",
            "state",
            "last success",
            "newest client",
            "newest server",
            "lag",
            "last run",
            "next run",
            "verified",
            "drill",
        ]);
        let mut failures = Vec::new();
        for row in &s.rows {
            let lag = match (row.lag_seconds, row.lag_snapshots) {
                (Some(secs), Some(n)) => format!("{} / {n}", span(secs)),
                (None, Some(n)) => format!("— / {n}"),
                (Some(secs), None) => span(secs),
                (None, None) => "—".to_string(),
            };
            t.add_row(vec![
                row.client.clone(),
                row.dataset.clone(),
                state_cell(row, now),
                opt_ago(now, row.last_success),
                opt_ago(now, row.client_newest.as_ref().map(|x| x.time)),
                opt_ago(now, row.server_newest.as_ref().map(|x| x.time)),
                lag,
                row.bytes_last_run.map_or("—".to_string(), render::bytes),
                row.next_run.map_or("—".to_string(), |t| relative(now, t)),
                verified_cell(row, now),
                row.verify
                    .as_ref()
                    .and_then(|v| v.drill_seconds)
                    .map_or("—".to_string(), |s| span(s.ceil() as i64)),
            ]);
            if let Some(v) = row.verify.as_ref().filter(|v| v.failing.is_some()) {
                failures.push(format!(
                    "  {}:{} failed verification ({}): {}",
                    row.client,
                    row.dataset,
                    v.failing_level.as_deref().unwrap_or("?"),
                    v.failing.as_deref().unwrap_or("")
                ));
            }
            if let Some(v) = row.verify.as_ref().filter(|v| v.failing.is_none()) {
                if let Some(w) = &v.warning {
                    failures.push(format!(
                        "  {}:{} verified with a warning ({}): {}",
                        row.client,
                        row.dataset,
                        v.warning_level.as_deref().unwrap_or("?"),
                        w
                    ));
                }
            }
            if let Some(f) = &row.last_failure {
                failures.push(format!(
                    "  {}:{} last failed {} ({}): {}",
                    row.client,
                    row.dataset,
                    ago(now, f.time),
                    f.kind,
                    f.message
                ));
            }
        }
        render::print_table(&t, "  ");
        for f in failures {
            outln!("{f}");
        }
    }
    if !r.hosts.is_empty() {
        outln!("");
        let mut t = render::table(["host", "pool", "health", "used"]);
        for h in &r.hosts {
            for p in &h.pools {
                t.add_row(vec![
                    h.host.clone(),
                    p.name.clone(),
                    p.health.clone(),
                    p.capacity.map_or("—".to_string(), |c| format!("{c}%")),
                ]);
            }
        }
        render::print_table(&t, "");
        let mut t = render::table(["host", "dataset", "period", "newest snapshot"]);
        let mut any = false;
        for h in &r.hosts {
            for s in &h.snapshots {
                any = true;
                t.add_row(vec![
                    h.host.clone(),
                    s.dataset.clone(),
                    s.period.as_str().to_string(),
                    s.newest.as_ref().map_or("none".to_string(), |n| {
                        format!("{} ({})", n.name, ago(now, n.time))
                    }),
                ]);
            }
        }
        if any {
            outln!("");
            render::print_table(&t, "");
        }
    }
    for e in &r.errors {
        eprintln!("warning: {}: {}", e.host, e.error);
    }
}
