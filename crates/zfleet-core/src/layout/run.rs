//! Observe, plan, execute, and again while a plan opened or imported
//! something whose contents could not be seen before: the loop behind
//! `disks apply` and `disks mount`. Each round is reported.

use serde::Serialize;

use super::exec::{self, Progress, Report, Secrets};
use super::mount::{self, InitrdPin};
use super::plan::{self, Options, Plan};
use crate::clock::Clock;
use crate::config::HostLayout;
use crate::host::Host;
use crate::Error;

/// Rounds a run takes at most: lay out or unlock, import, then compare.
const MAX_ROUNDS: usize = 4;

#[derive(Debug, Clone)]
pub enum Mode<'a> {
    Apply(&'a Options),
    Mount {
        root: &'a str,
        initrd: Option<&'a InitrdPin>,
        force_import: &'a [String],
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub plan: Plan,
    pub report: Option<Report>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub host: String,
    pub rounds: Vec<Round>,
}

impl Outcome {
    /// Steps that ran.
    pub fn changes(&self) -> usize {
        self.rounds
            .iter()
            .filter_map(|r| r.report.as_ref())
            .map(|r| r.done.len())
            .sum()
    }
    pub fn refused(&self) -> bool {
        self.rounds.last().is_some_and(|r| r.plan.is_refused())
    }
    pub fn failed(&self) -> bool {
        self.rounds
            .iter()
            .any(|r| r.report.as_ref().is_some_and(|rep| rep.failed.is_some()))
    }
}

/// One plan, nothing run (`disks plan`, `--dry-run`).
pub fn plan_only(host: &Host, layout: &HostLayout, mode: &Mode<'_>) -> Result<Plan, Error> {
    let obs = super::observe::observe(host, layout, &watched(mode))?;
    Ok(make_plan(host, layout, &obs, mode))
}

fn watched(mode: &Mode<'_>) -> Vec<String> {
    match mode {
        Mode::Apply(_) => Vec::new(),
        Mode::Mount { root, initrd, .. } => mount::watched_files(root, initrd.is_some()),
    }
}

fn make_plan(host: &Host, layout: &HostLayout, obs: &super::Observed, mode: &Mode<'_>) -> Plan {
    match mode {
        Mode::Apply(o) => plan::plan(&host.name, layout, obs, o),
        Mode::Mount {
            root,
            initrd,
            force_import,
        } => mount::plan_mount(&host.name, layout, obs, root, *initrd, force_import),
    }
}

/// Runs rounds until a plan has nothing left to do, one is refused, or a
/// step fails.
pub fn run(
    host: &Host,
    layout: &HostLayout,
    mode: &Mode<'_>,
    secrets: &mut Secrets<'_>,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> Result<Outcome, Error> {
    let mut rounds = Vec::new();
    // What --reinstall and --wipe destroy is destroyed once: later rounds
    // only complete the layout.
    let once = match mode {
        Mode::Apply(o) => Options {
            wipe: Vec::new(),
            reinstall: false,
            force_import: o.force_import.clone(),
        },
        Mode::Mount { .. } => Options::default(),
    };
    for n in 0..MAX_ROUNDS {
        let obs = super::observe::observe(host, layout, &watched(mode))?;
        let plan = match (n, mode) {
            (
                _,
                Mode::Mount {
                    root,
                    initrd,
                    force_import,
                },
            ) => {
                // The pin file changes when a round pins the key.
                let fresh = initrd.map(|p| InitrdPin {
                    pinned: crate::unlock::pin::pinned_keys(&p.file).unwrap_or_default(),
                    ..p.clone()
                });
                mount::plan_mount(&host.name, layout, &obs, root, fresh.as_ref(), force_import)
            }
            (0, _) => make_plan(host, layout, &obs, mode),
            (_, Mode::Apply(_)) => plan::plan(&host.name, layout, &obs, &once),
        };
        if plan.is_refused() || plan.steps.is_empty() {
            rounds.push(Round { plan, report: None });
            break;
        }
        let report = exec::execute(host, &plan, obs.modern, secrets, clock, progress);
        let failed = report.failed.is_some();
        rounds.push(Round {
            plan,
            report: Some(report),
        });
        if failed {
            break;
        }
    }
    Ok(Outcome {
        host: host.name.clone(),
        rounds,
    })
}
