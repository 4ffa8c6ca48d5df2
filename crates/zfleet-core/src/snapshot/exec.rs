//! Observe, plan and execute on one host: one `zfs` call to read every
//! configured tree, batched snapshot and destroy calls, sanoid's hooks around
//! them, and a report of what happened to each planned action.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Serialize;

use super::batch::{destroy_calls, take_calls, Call};
use super::hooks::{run_hook, HookOutcome};
use super::index::Index;
use super::plan::{apply_takes, plan, Action, Destroy, Plan, PlanInput, Steps, Take};
use crate::config::Hooks;
use crate::exec::{Argv, RunOptions};
use crate::host::Host;
use crate::zfs::{cmd, Caps, DatasetName, ZfsError, ZfsErrorKind};
use crate::Error;

/// Limit for one `zfs snapshot` or `zfs destroy`.
pub const ZFS_TIMEOUT: Duration = Duration::from_secs(300);

/// What one observation saw.
#[derive(Debug, Clone)]
pub struct Observation {
    pub index: Index,
    /// Configured trees that do not exist on the host.
    pub missing: Vec<DatasetName>,
    /// `zfs` processes it took (one, or more when a configured tree is missing).
    pub zfs_calls: usize,
}

/// Reads every configured tree of the host in one call, with the replication
/// marks of every server as extra columns.
pub fn observe(host: &Host, input: &PlanInput) -> Result<Observation, Error> {
    let props = input.base_properties();
    let mut roots = input.roots();
    let mut missing = Vec::new();
    let mut zfs_calls = 0;
    loop {
        if roots.is_empty() {
            return Ok(Observation {
                index: Index::default(),
                missing,
                zfs_calls,
            });
        }
        let refs: Vec<&DatasetName> = roots.iter().collect();
        zfs_calls += 1;
        match host.observe_many(&refs, &props) {
            Ok(listing) => {
                return Ok(Observation {
                    index: Index::new(&listing),
                    missing,
                    zfs_calls,
                });
            }
            // One missing tree fails the whole call; ask again without it.
            Err(Error::Zfs(ZfsError {
                kind: ZfsErrorKind::DoesNotExist { name: Some(n) },
                ..
            })) if roots.iter().any(|r| r.as_str() == n) => {
                roots.retain(|r| r.as_str() != n);
                missing.extend(DatasetName::parse(&n));
            }
            Err(e) => return Err(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    Failed,
    /// Not attempted: a hook said no.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub action: Action,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HookReport {
    /// `pre_snapshot_script`, …
    pub hook: &'static str,
    pub dataset: DatasetName,
    pub command: String,
    pub outcome: HookOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was planned: takes, then destroys.
    pub plan: Plan,
    pub outcomes: Vec<Outcome>,
    pub hooks: Vec<HookReport>,
    /// `zfs` processes this run started (observation, snapshots, destroys).
    pub zfs_calls: usize,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.status == Status::Failed)
            .count()
            + self.hooks.iter().filter(|h| !h.outcome.ok()).count()
    }
}

/// Observes, then [`run_with_index`].
pub fn run(
    host: &Host,
    input: &PlanInput,
    now: i64,
    tz: &TimeZone,
    steps: Steps,
) -> Result<Report, Error> {
    let mut obs = observe(host, input)?;
    let mut report = run_with_index(host, input, &mut obs.index, now, tz, steps)?;
    report.zfs_calls += obs.zfs_calls;
    Ok(report)
}

/// Takes what is due, then prunes what has expired (sanoid's `--cron` order),
/// both planned from `index`, which is then updated with what was done.
pub fn run_with_index(
    host: &Host,
    input: &PlanInput,
    index: &mut Index,
    now: i64,
    tz: &TimeZone,
    steps: Steps,
) -> Result<Report, Error> {
    let caps = host.caps()?.clone();
    let mut calls = 0;
    let mut outcomes = Vec::new();
    let mut hooks = Vec::new();
    // One plan for both steps, from one observation, as sanoid --cron decides.
    let full = plan(input, index, now, tz, steps);
    let takes: Vec<Take> = full
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Snapshot(t) => Some(t.clone()),
            Action::Destroy(_) => None,
        })
        .collect();
    let destroys: Vec<Destroy> = full
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy(d) => Some(d.clone()),
            Action::Snapshot(_) => None,
        })
        .collect();
    let done = execute_takes(
        host,
        &caps,
        &takes,
        &full.hooks,
        index,
        &mut calls,
        &mut hooks,
    );
    let taken: Vec<&Take> = takes
        .iter()
        .zip(&done)
        .filter(|(_, o)| o.0 == Status::Done)
        .map(|(t, _)| t)
        .collect();
    apply_takes(index, &taken, now);
    for (t, (status, detail)) in takes.into_iter().zip(done) {
        outcomes.push(Outcome {
            action: Action::Snapshot(t),
            status,
            detail,
        });
    }
    let done = execute_destroys(
        host,
        &caps,
        &destroys,
        &full.hooks,
        index,
        &mut calls,
        &mut hooks,
    );
    for (d, (status, detail)) in destroys.into_iter().zip(done) {
        if status == Status::Done {
            index.remove(&d.dataset, &d.name);
        }
        outcomes.push(Outcome {
            action: Action::Destroy(d),
            status,
            detail,
        });
    }
    Ok(Report {
        plan: full,
        outcomes,
        hooks,
        zfs_calls: calls,
    })
}

fn zfs(host: &Host, argv: &Argv, calls: &mut usize) -> Result<(), ZfsError> {
    *calls += 1;
    host.endpoint()
        .run(argv, &RunOptions::timeout(ZFS_TIMEOUT))
        .map(drop)
        .map_err(ZfsError::from)
}

type Done = (Status, Option<String>);

/// Runs calls; a failed batch is retried one item at a time.
fn run_calls(
    host: &Host,
    calls: Vec<Call>,
    single: impl Fn(usize) -> Option<Argv>,
    results: &mut [Done],
    count: &mut usize,
) {
    for c in calls {
        match zfs(host, &c.argv, count) {
            Ok(()) => {
                for i in c.items {
                    results[i] = (Status::Done, None);
                }
            }
            Err(e) if c.is_batch() => {
                tracing::info!("batched call failed, retrying one by one: {e}");
                for i in c.items {
                    results[i] = match single(i).map(|a| zfs(host, &a, count)) {
                        Some(Ok(())) => (Status::Done, None),
                        Some(Err(e)) => (Status::Failed, Some(e.to_string())),
                        None => (Status::Failed, Some("invalid snapshot name".into())),
                    };
                }
            }
            Err(e) => {
                for i in c.items {
                    results[i] = (Status::Failed, Some(e.to_string()));
                }
            }
        }
    }
}

fn execute_takes(
    host: &Host,
    caps: &Caps,
    takes: &[Take],
    hooks: &BTreeMap<DatasetName, Hooks>,
    index: &Index,
    count: &mut usize,
    reports: &mut Vec<HookReport>,
) -> Vec<Done> {
    let mut results: Vec<Done> = vec![(Status::Failed, Some("not attempted".into())); takes.len()];
    let single = |i: usize| -> Option<Argv> {
        let t = &takes[i];
        t.dataset
            .snapshot(&t.name)
            .ok()
            .map(|s| cmd::snapshot_many(&[&s], t.recursive))
    };
    // Datasets with snapshot hooks go one by one, hooks around their snapshots.
    let hooked = |t: &Take| hooks.get(&t.dataset).is_some_and(Hooks::any_snapshot_hook);
    let plain: Vec<usize> = (0..takes.len()).filter(|i| !hooked(&takes[*i])).collect();
    let refs: Vec<&Take> = plain.iter().map(|i| &takes[*i]).collect();
    let calls: Vec<Call> = take_calls(&refs, index, caps)
        .into_iter()
        .map(|c| Call {
            argv: c.argv,
            items: c.items.into_iter().map(|k| plain[k]).collect(),
        })
        .collect();
    run_calls(host, calls, single, &mut results, count);

    let mut groups: Vec<(&DatasetName, Vec<usize>)> = Vec::new();
    for (i, t) in takes.iter().enumerate().filter(|(_, t)| hooked(t)) {
        match groups.iter_mut().find(|(d, _)| *d == &t.dataset) {
            Some((_, v)) => v.push(i),
            None => groups.push((&t.dataset, vec![i])),
        }
    }
    for (ds, items) in groups {
        let Some(h) = hooks.get(ds) else { continue };
        let names: Vec<&str> = items.iter().map(|i| takes[*i].name.as_str()).collect();
        let types: Vec<&str> = items.iter().map(|i| takes[*i].period.as_str()).collect();
        let base = [
            ("SANOID_TARGET", ds.to_string()),
            ("SANOID_TARGETS", ds.to_string()),
            (
                "SANOID_SNAPNAME",
                names.first().map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("SANOID_SNAPNAMES", names.join(",")),
            ("SANOID_TYPES", types.join(",")),
        ];
        let mut pre_failed = false;
        if let Some(pre) = &h.pre_snapshot {
            let mut env = base.to_vec();
            env.push(("SANOID_SCRIPT", "pre".into()));
            let outcome = run_hook(pre, &env, h.timeout);
            pre_failed = !outcome.ok();
            reports.push(HookReport {
                hook: "pre_snapshot_script",
                dataset: ds.clone(),
                command: pre.display(),
                outcome: outcome.clone(),
            });
            if pre_failed && h.no_inconsistent_snapshot {
                for i in &items {
                    results[*i] = (
                        Status::Skipped,
                        Some(format!(
                            "pre_snapshot_script {} (no_inconsistent_snapshot)",
                            outcome.describe()
                        )),
                    );
                }
                continue;
            }
        }
        let calls = items
            .iter()
            .filter_map(|i| {
                single(*i).map(|argv| Call {
                    argv,
                    items: vec![*i],
                })
            })
            .collect();
        run_calls(host, calls, single, &mut results, count);
        if let Some(post) = &h.post_snapshot {
            if !pre_failed || h.force_post_snapshot {
                let mut env = base.to_vec();
                env.push(("SANOID_SCRIPT", "post".into()));
                env.push((
                    "SANOID_PRE_FAILURE",
                    if pre_failed { "1" } else { "0" }.into(),
                ));
                reports.push(HookReport {
                    hook: "post_snapshot_script",
                    dataset: ds.clone(),
                    command: post.display(),
                    outcome: run_hook(post, &env, h.timeout),
                });
            }
        }
    }
    results
}

fn execute_destroys(
    host: &Host,
    caps: &Caps,
    destroys: &[Destroy],
    hooks: &BTreeMap<DatasetName, Hooks>,
    index: &Index,
    count: &mut usize,
    reports: &mut Vec<HookReport>,
) -> Vec<Done> {
    let mut results: Vec<Done> =
        vec![(Status::Failed, Some("not attempted".into())); destroys.len()];
    let mut approved = Vec::new();
    for (i, d) in destroys.iter().enumerate() {
        if let Some((pre, h)) = hooks
            .get(&d.dataset)
            .and_then(|h| h.pre_pruning.as_ref().map(|p| (p, h)))
        {
            let env = [
                ("SANOID_TARGET", d.dataset.to_string()),
                ("SANOID_SNAPNAME", d.name.clone()),
            ];
            let outcome = run_hook(pre, &env, h.timeout);
            if !outcome.ok() {
                results[i] = (
                    Status::Skipped,
                    Some(format!("pre_pruning_script {}", outcome.describe())),
                );
            }
            reports.push(HookReport {
                hook: "pre_pruning_script",
                dataset: d.dataset.clone(),
                command: pre.display(),
                outcome: outcome.clone(),
            });
            if !outcome.ok() {
                continue;
            }
        }
        approved.push(i);
    }
    let refs: Vec<&Destroy> = approved.iter().map(|i| &destroys[*i]).collect();
    let calls: Vec<Call> = destroy_calls(&refs, index, caps)
        .into_iter()
        .map(|c| Call {
            argv: c.argv,
            items: c.items.into_iter().map(|k| approved[k]).collect(),
        })
        .collect();
    let single = |i: usize| -> Option<Argv> {
        let d = &destroys[i];
        Some(cmd::destroy_snapshots(&d.dataset, &[d.name.as_str()]))
    };
    run_calls(host, calls, single, &mut results, count);
    for (i, d) in destroys.iter().enumerate() {
        if results[i].0 != Status::Done {
            continue;
        }
        if let Some((post, h)) = hooks
            .get(&d.dataset)
            .and_then(|h| h.pruning.as_ref().map(|p| (p, h)))
        {
            let env = [
                ("SANOID_TARGET", d.dataset.to_string()),
                ("SANOID_SNAPNAME", d.name.clone()),
                ("SANOID_SCRIPT", "prune".to_string()),
            ];
            reports.push(HookReport {
                hook: "pruning_script",
                dataset: d.dataset.clone(),
                command: post.display(),
                outcome: run_hook(post, &env, h.timeout),
            });
        }
    }
    results
}
