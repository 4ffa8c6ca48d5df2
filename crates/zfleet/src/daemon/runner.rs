//! One run of a scheduled job through the engine, the same functions the
//! CLI's `zfleet run` and `zfleet backup` call, on a runtime of its own and
//! under the same per-host lock; the engine's typed report is reduced to what
//! the scheduler acts on: per client and dataset, whether it worked, and if
//! not the failure's kind.

use std::time::Duration;

use zfleet_core::config::Fleet;
use zfleet_core::lock::{Lock, LockError};
use zfleet_core::progress::Progress;
use zfleet_core::replicate::backup::{run_backups, run_pushes, BackupReport};
use zfleet_core::replicate::{Options, Outcome};
use zfleet_core::runtime::Runtime;
use zfleet_core::snapshot::exec::Status;
use zfleet_core::snapshot::{caps_cache, exec, PlanInput, Steps};
use zfleet_core::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Snapshots,
    Backup,
    Push,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Snapshots => "snapshots",
            Kind::Backup => "backup",
            Kind::Push => "push",
        }
    }
}

/// The lock a job takes on its host, shared with the commands a person runs:
/// `zfleet run` takes `<host>`, `zfleet backup` `<host>.backup`.
pub fn lock_name(kind: Kind, host: &str) -> String {
    match kind {
        Kind::Snapshots => host.to_string(),
        Kind::Backup | Kind::Push => format!("{host}.backup"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The engine's failure kind, as its word.
    pub kind: String,
    pub message: String,
    /// Worth trying again (a refusal is not: a person must look).
    pub retry: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowEnd {
    pub server: String,
    pub client: String,
    pub dataset: String,
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Rows(Vec<RowEnd>),
    /// Someone else holds the lock (a hand-run command).
    Busy(String),
    /// The job failed as a whole, before any row.
    Failed(Failure),
}

/// Runs `kind` on `host`, limited to `only` clients (backups; empty: all).
pub fn run(
    kind: Kind,
    fleet: &Fleet,
    host: &str,
    only: &[String],
    progress: &dyn Progress,
    state: &State,
) -> RunEnd {
    let _lock = match Lock::acquire(&fleet.state_dir, &lock_name(kind, host), Duration::ZERO) {
        Ok(l) => l,
        Err(e @ LockError::Busy { .. }) => return RunEnd::Busy(e.to_string()),
        Err(e) => return RunEnd::Failed(internal(e.to_string())),
    };
    let rt = match Runtime::new(fleet.clone(), host) {
        Ok(rt) => rt,
        Err(e) => return RunEnd::Failed(internal(e.to_string())),
    };
    match kind {
        Kind::Snapshots => snapshots(&rt),
        Kind::Backup | Kind::Push => {
            let mut opts = Options::default();
            opts.pump.rate_limit = fleet.daemon.rate_limit;
            let r = if kind == Kind::Backup {
                run_backups(&rt, only, &opts, None, progress, Some(state))
            } else {
                run_pushes(&rt, &opts, progress, Some(state))
            };
            match r {
                Ok(r) if kind == Kind::Backup => {
                    let mut rows = rows(&r);
                    rows.extend(verify_after(&rt, &r, progress, state));
                    RunEnd::Rows(rows)
                }
                Ok(r) => RunEnd::Rows(rows(&r)),
                Err(e) => RunEnd::Failed(Failure {
                    kind: zfleet_core::failure::FailureKind::of(&e).word().into(),
                    message: e.to_string(),
                    retry: true,
                }),
            }
        }
    }
}

/// The verification due after a backup run ([daemon] verify_*), of the
/// clients whose backups all worked. A backup whose verification failed is
/// a failed row (kind `verify`, not retried) whose message names the
/// checks and files, so it is told like any failure; it stays failed until
/// a verification at least as thorough passes ([`verify::due::standing`]),
/// and only then recovers. Warnings (a new pool not scrubbed yet) are
/// logged, never told.
fn verify_after(
    rt: &Runtime,
    r: &BackupReport,
    progress: &dyn Progress,
    state: &State,
) -> Vec<RowEnd> {
    use zfleet_core::verify::{self, due::due, due::standing};
    let sched = &rt.fleet.daemon.verify;
    if sched.after_backup.is_none() && sched.content_every.is_none() && sched.drill_every.is_none()
    {
        return Vec::new();
    }
    let ok: Vec<String> = r
        .clients
        .iter()
        .filter(|c| c.ok() && !c.jobs.is_empty())
        .map(|c| c.client.clone())
        .collect();
    if ok.is_empty() {
        return Vec::new();
    }
    let latest = state.latest_verifications().unwrap_or_default();
    // The job that waited longest decides: one level per run.
    let last = |level: &str| -> Option<i64> {
        let mut oldest: Option<Option<i64>> = None;
        for c in r.clients.iter().filter(|c| ok.contains(&c.client)) {
            for j in &c.jobs {
                let t = latest
                    .iter()
                    .find(|(v, _)| {
                        v.level == level && v.client == j.client && v.source == j.dataset.as_str()
                    })
                    .map(|(v, _)| v.finished);
                oldest = Some(match oldest {
                    None => t,
                    Some(o) => o.min(t),
                });
            }
        }
        oldest.flatten()
    };
    if let Some(level) = due(sched, last("content"), last("drill"), rt.now()) {
        let opts = verify::Options {
            level,
            rate: rt.fleet.daemon.rate_limit,
            ..verify::Options::default()
        };
        match verify::run(rt, &ok, &opts, progress, Some(state)) {
            Ok(report) => {
                tracing::info!(
                    "verify {}: {} backups at level {}, {} failed",
                    rt.this_host,
                    report.jobs.len(),
                    level.word(),
                    report.jobs.iter().filter(|j| !j.ok).count()
                );
                for j in &report.jobs {
                    for w in j.warnings() {
                        tracing::warn!("verify {}: {}: {w}", rt.this_host, j.source);
                    }
                }
            }
            Err(e) => tracing::warn!("verify {}: {e}", rt.this_host),
        }
    }
    // What stands after this run, from the records (this run's, or an
    // earlier failure not cleared yet, also one found by a hand-run verify).
    let latest = state.latest_verifications().unwrap_or_default();
    let mut rows = Vec::new();
    for c in r.clients.iter().filter(|c| ok.contains(&c.client)) {
        for j in &c.jobs {
            let mine: Vec<&zfleet_core::state::VerificationRecord> = latest
                .iter()
                .map(|(v, _)| v)
                .filter(|v| {
                    v.server == j.server && v.client == j.client && v.source == j.dataset.as_str()
                })
                .collect();
            if let Some(f) = standing(&mine) {
                rows.push(RowEnd {
                    server: j.server.clone(),
                    client: j.client.clone(),
                    dataset: j.dataset.to_string(),
                    failure: Some(Failure {
                        kind: "verify".into(),
                        message: format!(
                            "{} verification failed: {}",
                            f.level,
                            f.error.as_deref().unwrap_or("see `zfleet verify`")
                        ),
                        retry: false,
                    }),
                });
            }
        }
    }
    rows
}

fn internal(message: String) -> Failure {
    Failure {
        kind: "internal".into(),
        message,
        retry: true,
    }
}

fn rows(r: &BackupReport) -> Vec<RowEnd> {
    let mut out = Vec::new();
    for c in &r.clients {
        for j in &c.jobs {
            let failure = match &j.outcome {
                Outcome::UpToDate
                | Outcome::Sent
                | Outcome::Planned
                | Outcome::NothingToSend { .. } => None,
                Outcome::Refused { message, hint, .. } => Some(Failure {
                    kind: "refused".into(),
                    message: format!("{message} ({hint})"),
                    retry: false,
                }),
                // The data arrived, the properties a restore needs did not:
                // a person must look, retrying changes nothing.
                Outcome::Degraded { message } => Some(Failure {
                    kind: "degraded".into(),
                    message: message.clone(),
                    retry: false,
                }),
                Outcome::Failed(f) => Some(Failure {
                    kind: f.kind.word().into(),
                    message: f.message.clone(),
                    retry: true,
                }),
            };
            out.push(RowEnd {
                server: j.server.clone(),
                client: j.client.clone(),
                dataset: j.dataset.to_string(),
                failure,
            });
        }
    }
    out
}

fn snapshots(rt: &Runtime) -> RunEnd {
    let host = rt.this_host.as_str();
    let h = rt.local();
    if let Some(c) = caps_cache::load(&rt.fleet.state_dir) {
        h.preset_caps(c);
    }
    let input = PlanInput::from_fleet(&rt.fleet, host);
    match exec::run(
        &h,
        &input,
        rt.now(),
        &rt.tz,
        Steps {
            take: true,
            prune: true,
        },
    ) {
        Ok(report) => {
            if let Ok(c) = h.caps() {
                caps_cache::save(&rt.fleet.state_dir, c);
            }
            let failed: Vec<String> = report
                .outcomes
                .iter()
                .filter(|o| o.status == Status::Failed)
                .map(|o| o.detail.clone().unwrap_or_default())
                .collect();
            let done = report.outcomes.len() - failed.len();
            tracing::info!("snapshots {host}: {done} done, {} failed", failed.len());
            let failure = (report.failed() > 0).then(|| Failure {
                kind: "zfs".into(),
                message: if failed.is_empty() {
                    "a snapshot hook failed".to_string()
                } else {
                    failed.join("; ")
                },
                retry: true,
            });
            RunEnd::Rows(vec![RowEnd {
                server: host.to_string(),
                client: host.to_string(),
                dataset: String::new(),
                failure,
            }])
        }
        Err(e) => RunEnd::Failed(Failure {
            kind: zfleet_core::failure::FailureKind::of(&e).word().into(),
            message: e.to_string(),
            retry: true,
        }),
    }
}
