//! A backup server's run: every job `zfleet check` lists for it, clients in
//! parallel up to the server's limit, one ssh connection per client, each job
//! recorded in the state database. One failing client never stops the others.

use serde::Serialize;

use super::exec::replicate_observed;
use super::job::{JobReport, JobSpec, Options, Outcome};
use crate::clock::Clock;
use crate::config::Job;
use crate::failure::{Failure, FailureKind, Side};
use crate::host::Host;
use crate::progress::Progress;
use crate::runtime::Runtime;
use crate::state::{BaseRecord, RunRecord, State};
use crate::{parallel, Error};

/// One peer's jobs: a client's on a server, or one server's share of a push
/// client's. Each job names its client and server itself.
#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    /// The host at the other end of the connection: the client for a pull,
    /// the server for a push.
    pub client: String,
    pub jobs: Vec<JobReport>,
}

impl ClientReport {
    pub fn ok(&self) -> bool {
        self.jobs.iter().all(JobReport::ok)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The machine that ran the jobs: the server, or the pushing client.
    pub host: String,
    pub dry_run: bool,
    pub clients: Vec<ClientReport>,
}

impl BackupReport {
    pub fn ok(&self) -> bool {
        self.clients.iter().all(ClientReport::ok)
    }
}

/// Runs the backups of this machine as a server, limited to `only` clients
/// when not empty.
pub fn run_backups(
    rt: &Runtime,
    only: &[String],
    opts: &Options,
    parallel_limit: Option<usize>,
    progress: &dyn Progress,
    state: Option<&State>,
) -> Result<BackupReport, Error> {
    let (fleet, server, clock) = (&rt.fleet, rt.this_host.as_str(), rt.clock());
    let plan = fleet
        .server_plan(server)
        .ok_or_else(|| Error::Usage(fleet.not_a_server(server)))?;
    for name in only {
        if plan.jobs.iter().any(|j| &j.client == name && j.push) {
            return Err(Error::Usage(format!(
                "`{name}` pushes its own backups to `{server}`; run `zfleet backup` on {name}"
            )));
        }
        if !plan.jobs.iter().any(|j| &j.client == name) {
            let why = plan.skipped.iter().find(|s| &s.client == name).map_or_else(
                || "it is not a backup client in the fleet file".to_string(),
                |s| s.reason.clone(),
            );
            return Err(Error::Usage(format!(
                "`{server}` does not back up `{name}`: {why}"
            )));
        }
    }
    let target = rt.local();
    // Checked once: a missing target root is the server's layout problem, not
    // something to create silently.
    if target.observe_if_exists(&plan.target_root, &[])?.is_none() {
        return Err(Error::Usage(format!(
            "the target root `{}` does not exist on {server}; create it (for example `zfs create -o canmount=off {}`) or fix `target_root`",
            plan.target_root, plan.target_root
        )));
    }
    let mut clients: Vec<String> = Vec::new();
    for j in plan.jobs.iter().filter(|j| !j.push) {
        if (only.is_empty() || only.contains(&j.client)) && !clients.contains(&j.client) {
            clients.push(j.client.clone());
        }
    }
    let limit = parallel_limit.unwrap_or_else(|| {
        fleet
            .host(server)
            .and_then(|h| h.server.as_ref())
            .map_or(4, |r| r.parallel as usize)
    });
    let reports = parallel::map(&clients, limit, |client| {
        let jobs: Vec<&Job> = plan
            .jobs
            .iter()
            .filter(|j| &j.client == client && !j.push)
            .collect();
        let source = jobs.first().map(|j| rt.ssh_host(client, &j.ssh));
        match source {
            Some(source) => run_peer(
                &Peer {
                    name: client,
                    side: Side::Source,
                },
                &jobs,
                &source,
                &target,
                Some(&plan.target_root),
                opts,
                clock,
                progress,
                state,
            ),
            None => ClientReport {
                client: client.clone(),
                jobs: Vec::new(),
            },
        }
    });
    Ok(BackupReport {
        host: server.to_string(),
        dry_run: opts.dry_run,
        clients: reports,
    })
}

/// The host at the other end of the connection, and which side of the jobs it is.
struct Peer<'a> {
    name: &'a str,
    side: Side,
}

/// Runs one peer's jobs in order over one connection: a client's datasets on a
/// server (pull), or one server's share of a push client's datasets.
#[allow(clippy::too_many_arguments)]
fn run_peer(
    peer: &Peer<'_>,
    jobs: &[&Job],
    source: &Host,
    target: &Host,
    target_root: Option<&crate::zfs::DatasetName>,
    opts: &Options,
    clock: &dyn Clock,
    progress: &dyn Progress,
    state: Option<&State>,
) -> ClientReport {
    // One listing of all this peer's source datasets; each job falls back to
    // its own if that fails (a dataset missing on the client, say).
    let prefetched = jobs.first().and_then(|first| {
        let roots: Vec<&crate::zfs::DatasetName> = jobs.iter().map(|j| &j.source).collect();
        let extra = [crate::protocol::base_marker(&first.server)];
        source.observe_own(&roots, &extra).ok()
    });
    let mut reports = Vec::new();
    for job in jobs {
        let spec = JobSpec {
            create_parents_below: target_root.cloned(),
            preserve: job.preserve_properties.clone(),
            sync_snapshot: job.sync_snapshot,
            compress: job.compress == crate::config::Compression::Zstd,
            ..JobSpec::new(
                job.client.clone(),
                job.source.clone(),
                job.target.clone(),
                job.server.clone(),
            )
        };
        let started = clock.now();
        let run_id = state.filter(|_| !opts.dry_run).and_then(|s| {
            s.start_run(&RunRecord {
                kind: if job.push {
                    "push".into()
                } else {
                    "backup".into()
                },
                server: Some(job.server.clone()),
                client: Some(job.client.clone()),
                source: Some(job.source.to_string()),
                target: Some(job.target.to_string()),
                started,
                ..RunRecord::default()
            })
            .map_err(|e| tracing::warn!("{e}"))
            .ok()
        });
        // Each job changes only its own dataset on the source, so the one
        // listing stays right for the others.
        let report = replicate_observed(
            source,
            target,
            &spec,
            opts,
            clock,
            progress,
            prefetched.clone(),
        );
        if let (Some(s), Some(id)) = (state, run_id) {
            record(s, id, job, &report, clock.now());
        }
        // The other datasets of a peer that cannot be reached would fail the
        // same way, each after a full timeout.
        let unreachable = report.failure().is_some_and(|f| {
            f.kind.is_connection()
                && f.side == Some(peer.side)
                && f.host.as_deref() == Some(peer.name)
        });
        reports.push(report);
        if unreachable {
            for rest in jobs.iter().skip(reports.len()) {
                let spec = JobSpec::new(
                    rest.client.clone(),
                    rest.source.clone(),
                    rest.target.clone(),
                    rest.server.clone(),
                );
                let failure = Failure {
                    side: Some(peer.side),
                    host: Some(peer.name.to_string()),
                    ..Failure::new(
                        FailureKind::Unreachable,
                        format!("skipped: {} could not be reached", peer.name),
                    )
                };
                reports.push(JobReport::new(
                    &spec,
                    &source.name,
                    &target.name,
                    Outcome::Failed(failure),
                ));
            }
            break;
        }
    }
    ClientReport {
        client: peer.name.to_string(),
        jobs: reports,
    }
}

/// The job's outcome and, once it succeeded, the base both sides share, in
/// the state database. A database that fails is worth a warning, not the job.
fn record(s: &State, id: i64, job: &Job, report: &JobReport, now: i64) {
    let (result, error) = match &report.outcome {
        Outcome::UpToDate => ("up_to_date", None),
        Outcome::Sent => ("ok", None),
        Outcome::Planned => ("planned", None),
        Outcome::NothingToSend { message } => ("no_snapshots", Some(message.as_str())),
        Outcome::Refused { message, .. } => ("refused", Some(message.as_str())),
        Outcome::Failed(f) => ("failed", Some(f.message.as_str())),
        Outcome::Degraded { message } => ("degraded", Some(message.as_str())),
    };
    if let Err(e) = s.finish_run(id, now, report.bytes, report.snapshots, result, error) {
        tracing::warn!("{e}");
    }
    // A degraded job sent its snapshots and moved its base all the same.
    let moved = report.ok() || matches!(report.outcome, Outcome::Degraded { .. });
    if let (true, Some(base)) = (moved, &report.base) {
        let rec = BaseRecord {
            server: job.server.clone(),
            client: job.client.clone(),
            source: job.source.to_string(),
            target: job.target.to_string(),
            snapshot: base.name.clone(),
            guid: base.guid,
            recorded: now,
        };
        if let Err(e) = s.record_base(&rec) {
            tracing::warn!("{e}");
        }
    }
}

/// A push client's run: each server that wants its datasets receives them over
/// one connection per server, servers in parallel.
pub fn run_pushes(
    rt: &Runtime,
    opts: &Options,
    progress: &dyn Progress,
    state: Option<&State>,
) -> Result<BackupReport, Error> {
    let (fleet, client, clock) = (&rt.fleet, rt.this_host.as_str(), rt.clock());
    let jobs = fleet.push_jobs(client);
    if jobs.is_empty() {
        return Err(Error::Usage(format!(
            "`{client}` has no backups to push (it needs `push = true` in [hosts.{client}.backup] and a server that backs it up)"
        )));
    }
    let mut servers: Vec<String> = Vec::new();
    for j in &jobs {
        if !servers.contains(&j.server) {
            servers.push(j.server.clone());
        }
    }
    let source = rt.local();
    let reports = parallel::map(&servers, servers.len(), |server| {
        let mine: Vec<&Job> = jobs.iter().filter(|j| &j.server == server).collect();
        let root = fleet
            .host(server)
            .and_then(|h| h.server.as_ref())
            .map(|r| r.target_root.clone());
        let target = match fleet.host(server) {
            Some(h) => {
                // The backup account and key, as a server uses to pull.
                let mut ssh = h.ssh.clone();
                ssh.user = fleet.backup_user.clone().or(ssh.user);
                if let Some(id) = &fleet.backup_identity {
                    ssh.identity = Some(id.clone());
                }
                rt.ssh_host(server, &ssh)
            }
            None => Host::local(server.as_str()),
        };
        run_peer(
            &Peer {
                name: server,
                side: Side::Target,
            },
            &mine,
            &source,
            &target,
            root.as_ref(),
            opts,
            clock,
            progress,
            state,
        )
    });
    Ok(BackupReport {
        host: client.to_string(),
        dry_run: opts.dry_run,
        clients: reports,
    })
}
