//! A backup server's run: every job `zfleet check` lists for it, clients in
//! parallel up to the server's limit, one ssh connection per client, each job
//! recorded in the state database. One failing client never stops the others.

use serde::Serialize;

use super::exec::{replicate_observed, JobReport, JobSpec, Options, Outcome};
use crate::config::{Fleet, Job};
use crate::exec::SshSessions;
use crate::host::Host;
use crate::progress::Progress;
use crate::state::{BaseRecord, RunRecord, State};
use crate::{parallel, Error};

#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
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
    pub server: String,
    pub clients: Vec<ClientReport>,
}

impl BackupReport {
    pub fn ok(&self) -> bool {
        self.clients.iter().all(ClientReport::ok)
    }
}

/// Runs the backups of `server` (which must be this machine), limited to
/// `only` clients when not empty.
pub fn run_backups(
    fleet: &Fleet,
    server: &str,
    only: &[String],
    opts: &Options,
    parallel_limit: Option<usize>,
    progress: &dyn Progress,
    state: Option<&State>,
) -> Result<BackupReport, Error> {
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
    let target = Host::local(server);
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
    let sessions = SshSessions::new()
        .map_err(|e| Error::Internal(format!("cannot create the ssh control directory: {e}")))?;
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
        let source = jobs
            .first()
            .map(|j| Host::ssh(client.as_str(), &j.ssh, sessions.clone()));
        match source {
            Some(source) => run_peer(
                client,
                &jobs,
                &source,
                &target,
                Some(&plan.target_root),
                opts,
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
        server: server.to_string(),
        clients: reports,
    })
}

/// Runs one peer's jobs in order over one connection: a client's datasets on a
/// server (pull), or one server's share of a push client's datasets.
#[allow(clippy::too_many_arguments)]
fn run_peer(
    client: &str,
    jobs: &[&Job],
    source: &Host,
    target: &Host,
    target_root: Option<&crate::zfs::DatasetName>,
    opts: &Options,
    progress: &dyn Progress,
    state: Option<&State>,
) -> ClientReport {
    // One listing of all this peer's source datasets; each job falls back to
    // its own if that fails (a dataset missing on the client, say).
    let prefetched = jobs.first().and_then(|first| {
        let roots: Vec<&crate::zfs::DatasetName> = jobs.iter().map(|j| &j.source).collect();
        let extra = [super::exec::base_marker(&first.server)];
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
                format!("{client}:{}", job.source),
                job.source.clone(),
                job.target.clone(),
                job.server.clone(),
            )
        };
        let started = now();
        let run_id = state.filter(|_| !opts.dry_run).and_then(|s| {
            s.start_run(&RunRecord {
                kind: if job.push {
                    "push".into()
                } else {
                    "backup".into()
                },
                server: Some(job.server.clone()),
                client: Some(client.to_string()),
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
        let report = replicate_observed(source, target, &spec, opts, progress, prefetched.clone());
        if let (Some(s), Some(id)) = (state, run_id) {
            let (result, error) = match &report.outcome {
                Outcome::UpToDate => ("up_to_date", None),
                Outcome::Sent => ("ok", None),
                Outcome::Planned => ("planned", None),
                Outcome::NothingToSend { message } => ("no_snapshots", Some(message.as_str())),
                Outcome::Refused { message, .. } => ("refused", Some(message.as_str())),
                Outcome::Failed { message } => ("failed", Some(message.as_str())),
                Outcome::Degraded { message } => ("degraded", Some(message.as_str())),
            };
            if let Err(e) = s.finish_run(id, now(), report.bytes, report.snapshots, result, error) {
                tracing::warn!("{e}");
            }
            let moved = report.ok() || matches!(report.outcome, Outcome::Degraded { .. });
            if let (true, Some(base)) = (moved, &report.base) {
                let guid = target
                    .observe_with(&job.target, &[])
                    .ok()
                    .and_then(|l| {
                        l.snapshots_of(&job.target)
                            .iter()
                            .find(|o| o.name.to_string().ends_with(&format!("@{base}")))
                            .map(|o| o.guid)
                    })
                    .unwrap_or(0);
                let rec = BaseRecord {
                    server: job.server.clone(),
                    client: client.to_string(),
                    source: job.source.to_string(),
                    target: job.target.to_string(),
                    snapshot: base.clone(),
                    guid,
                    recorded: now(),
                };
                if let Err(e) = s.record_base(&rec) {
                    tracing::warn!("{e}");
                }
            }
        }
        let failed_to_connect = matches!(&report.outcome, Outcome::Failed { message } if message.contains("did not answer") || message.contains("connection failed") || message.contains("host key"));
        reports.push(report);
        // The other datasets of an unreachable client would fail the same way,
        // each after a full timeout.
        if failed_to_connect {
            for rest in jobs.iter().skip(reports.len()) {
                reports.push(JobReport::new(
                    &format!("{client}:{}", rest.source),
                    format!("{client}:{}", rest.source),
                    format!("{}:{}", target.name, rest.target),
                    Outcome::Failed {
                        message: format!("skipped: {client} could not be reached"),
                    },
                ));
            }
            break;
        }
    }
    ClientReport {
        client: client.to_string(),
        jobs: reports,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A push client's run: each server that wants its datasets receives them over
/// one connection per server, servers in parallel.
pub fn run_pushes(
    fleet: &Fleet,
    client: &str,
    opts: &Options,
    progress: &dyn Progress,
    state: Option<&State>,
) -> Result<BackupReport, Error> {
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
    let sessions = SshSessions::new()
        .map_err(|e| Error::Internal(format!("cannot create the ssh control directory: {e}")))?;
    let source = Host::local(client);
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
                Host::ssh(server.as_str(), &ssh, sessions.clone())
            }
            None => Host::local(server.as_str()),
        };
        let mut r = run_peer(
            client,
            &mine,
            &source,
            &target,
            root.as_ref(),
            opts,
            progress,
            state,
        );
        // The report is per peer: name the server it went to.
        r.client = server.clone();
        r
    });
    Ok(BackupReport {
        server: client.to_string(),
        clients: reports,
    })
}
