//! One run of a scheduled job through the engine, the same functions the
//! CLI's `zfleet run` and `zfleet backup` call, under the same per-host lock;
//! the engine's report is reduced to what the scheduler acts on: per client
//! and dataset, whether it worked, and if not the failure's kind.

use std::time::Duration;

use zfleet_core::config::Fleet;
use zfleet_core::lock::{Lock, LockError};
use zfleet_core::progress::Progress;
use zfleet_core::replicate::backup::{run_backups, run_pushes, BackupReport};
use zfleet_core::replicate::exec::{Options, Outcome};
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
    /// The engine's failure kind.
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
        Err(e) => {
            return RunEnd::Failed(Failure {
                kind: "internal".into(),
                message: e.to_string(),
                retry: true,
            })
        }
    };
    match kind {
        Kind::Snapshots => snapshots(fleet, host),
        Kind::Backup | Kind::Push => {
            let mut opts = Options::default();
            opts.pump.rate_limit = fleet.daemon.rate_limit;
            let r = if kind == Kind::Backup {
                run_backups(fleet, host, only, &opts, None, progress, Some(state))
            } else {
                run_pushes(fleet, host, &opts, progress, Some(state))
            };
            match r {
                Ok(r) => RunEnd::Rows(rows(kind, host, &r)),
                Err(e) => RunEnd::Failed(Failure {
                    kind: error_kind(&e).into(),
                    message: e.to_string(),
                    retry: true,
                }),
            }
        }
    }
}

fn error_kind(e: &zfleet_core::Error) -> &'static str {
    match e.kind() {
        zfleet_core::ErrorKind::Remote => "zfs",
        zfleet_core::ErrorKind::Internal => "internal",
        zfleet_core::ErrorKind::Usage | zfleet_core::ErrorKind::Config => "config",
    }
}

fn rows(kind: Kind, host: &str, r: &BackupReport) -> Vec<RowEnd> {
    let mut out = Vec::new();
    for c in &r.clients {
        for j in &c.jobs {
            let dataset = j
                .label
                .split_once(':')
                .map_or(j.label.as_str(), |(_, d)| d)
                .to_string();
            let (server, client) = match kind {
                Kind::Push => (c.client.clone(), host.to_string()),
                _ => (host.to_string(), c.client.clone()),
            };
            let failure = match &j.outcome {
                Outcome::UpToDate
                | Outcome::Sent
                | Outcome::Planned
                | Outcome::NothingToSend { .. } => None,
                Outcome::Refused { message, hint } => Some(Failure {
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
                Outcome::Failed { message } => Some(Failure {
                    kind: "unknown".into(),
                    message: message.clone(),
                    retry: true,
                }),
            };
            out.push(RowEnd {
                server,
                client,
                dataset,
                failure,
            });
        }
    }
    out
}

fn snapshots(fleet: &Fleet, host: &str) -> RunEnd {
    let h = zfleet_core::host::Host::local(host);
    if let Some(c) = caps_cache::load(&fleet.state_dir) {
        h.preset_caps(c);
    }
    let input = PlanInput::from_fleet(fleet, host);
    let now = jiff::Timestamp::now().as_second();
    let tz = jiff::tz::TimeZone::system();
    match exec::run(
        &h,
        &input,
        now,
        &tz,
        Steps {
            take: true,
            prune: true,
        },
    ) {
        Ok(report) => {
            if let Ok(c) = h.caps() {
                caps_cache::save(&fleet.state_dir, c);
            }
            let failed: Vec<String> = report
                .outcomes
                .iter()
                .filter(|o| o.status == Status::Failed)
                .map(|o| o.detail.clone().unwrap_or_default())
                .collect();
            let taken = report.outcomes.len() - failed.len();
            tracing::info!("snapshots {host}: {taken} done, {} failed", failed.len());
            let failure = (!failed.is_empty() || report.failed() > 0).then(|| Failure {
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
            kind: error_kind(&e).into(),
            message: e.to_string(),
            retry: true,
        }),
    }
}
