//! Putting the status together: [`observe`] reads each host once (one ssh
//! connection per host: its listing, its pools, and, where jobs run, its
//! state database through `zfleet state --json`), [`assemble`] turns what
//! was read into the report, purely.
//!
//! `zfleet status` reads every host with the admin account. The daemon on a
//! server reads itself locally and its clients with the backup account, and
//! only the listing a backup reads anyway (the backed-up datasets): that is
//! all `zfleet serve` lets the backup account see.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jiff::tz::TimeZone;

use super::history::{self, DaemonJob, JobHistory, StateDump};
use super::judge::{judge, late_threshold, History};
use super::model::*;
use crate::config::{Fleet, Job};
use crate::exec::{Argv, RunOptions, SshSessions};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::snapshot::monitor::{check_snapshots, parse_pool_list};
use crate::snapshot::{Index, PlanInput};
use crate::state::State;
use crate::zfs::{cmd, DatasetName, Listing, ObjectInfo, ObjectName};

/// Which part of the fleet to show.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Hosts named on the command line; empty: all.
    pub only: Vec<String>,
    /// The daemon's view: this server's rows, read with the backup account.
    pub daemon_server: Option<String>,
}

impl Scope {
    fn wants_row(&self, j: &Job) -> bool {
        if let Some(s) = &self.daemon_server {
            // What this host's daemon runs: its pulls as a server, its pushes
            // as a client. A push to it is the client's to report.
            return (&j.server == s && !j.push) || (j.push && &j.client == s);
        }
        self.only.is_empty() || self.only.contains(&j.server) || self.only.contains(&j.client)
    }
}

/// What was read from the hosts.
#[derive(Debug, Default)]
pub struct Observed {
    pub dumps: HashMap<String, StateDump>,
    pub listings: HashMap<String, Listing>,
    pub pools: HashMap<String, Vec<PoolStatus>>,
    pub errors: Vec<HostError>,
}

/// The rows in scope: every job of every server, and the datasets of
/// clients whose backups are switched off.
fn rows_in_scope(fleet: &Fleet, scope: &Scope) -> Vec<(Job, bool)> {
    let mut out = Vec::new();
    for s in fleet.servers() {
        let Some(plan) = fleet.server_plan(&s.name) else {
            continue;
        };
        for j in plan.jobs {
            if scope.wants_row(&j) {
                out.push((j, false));
            }
        }
        for sk in &plan.skipped {
            let Some(c) = fleet.host(&sk.client).and_then(|h| h.client.as_ref()) else {
                continue;
            };
            if c.enabled || sk.client == s.name {
                continue;
            }
            for ds in &c.datasets {
                let Ok(target) = Fleet::target_for(&plan.target_root, &sk.client, ds) else {
                    continue;
                };
                let j = Job {
                    server: s.name.clone(),
                    client: sk.client.clone(),
                    extra: false,
                    source: ds.clone(),
                    target,
                    ssh: fleet.hosts[&sk.client].ssh.clone(),
                    preserve_properties: Vec::new(),
                    sync_snapshot: false,
                    compress: Default::default(),
                    push: c.push,
                };
                if scope.wants_row(&j) {
                    out.push((j, true));
                }
            }
        }
    }
    out
}

/// The hosts to read, in fleet order: servers and clients of the rows, and
/// the hosts named.
pub fn hosts_to_read(fleet: &Fleet, scope: &Scope) -> Vec<String> {
    let rows = rows_in_scope(fleet, scope);
    let mut want: BTreeSet<&str> = BTreeSet::new();
    for (j, _) in &rows {
        want.insert(&j.server);
        want.insert(&j.client);
    }
    for h in &scope.only {
        want.insert(h);
    }
    if scope.only.is_empty() && scope.daemon_server.is_none() {
        return fleet.hosts.keys().cloned().collect();
    }
    let mut v: Vec<String> = fleet
        .hosts
        .keys()
        .filter(|h| want.contains(h.as_str()))
        .cloned()
        .collect();
    // Extra clients are not fleet hosts but are read like clients.
    for (j, _) in &rows {
        if j.extra && !v.contains(&j.client) {
            v.push(j.client.clone());
        }
    }
    v
}

/// Reads every host in scope, at most `parallel` at once.
pub fn observe(
    fleet: &Fleet,
    this_host: &str,
    sessions: &Arc<SshSessions>,
    scope: &Scope,
    parallel: usize,
    now: i64,
) -> Observed {
    let rows = rows_in_scope(fleet, scope);
    let hosts = hosts_to_read(fleet, scope);
    let results = crate::parallel::map(&hosts, parallel, |name| {
        read_host(fleet, this_host, sessions, scope, &rows, name, now)
    });
    let mut obs = Observed::default();
    for (name, r) in hosts.iter().zip(results) {
        let HostRead {
            dump,
            listing,
            pools,
            errors,
        } = r;
        if let Some(d) = dump {
            obs.dumps.insert(name.clone(), d);
        }
        if let Some(l) = listing {
            obs.listings.insert(name.clone(), l);
        }
        if let Some(p) = pools {
            obs.pools.insert(name.clone(), p);
        }
        obs.errors.extend(errors.into_iter().map(|error| HostError {
            host: name.clone(),
            error,
        }));
    }
    obs
}

struct HostRead {
    dump: Option<StateDump>,
    listing: Option<Listing>,
    pools: Option<Vec<PoolStatus>>,
    errors: Vec<String>,
}

fn read_host(
    fleet: &Fleet,
    this_host: &str,
    sessions: &Arc<SshSessions>,
    scope: &Scope,
    rows: &[(Job, bool)],
    name: &str,
    now: i64,
) -> HostRead {
    let mut r = HostRead {
        dump: None,
        listing: None,
        pools: None,
        errors: Vec::new(),
    };
    let local = name == this_host;
    // The daemon reaches clients as a backup does: the job's endpoint.
    let backup_view = scope.daemon_server.is_some() && !local;
    let host = if local {
        Host::local(name)
    } else if backup_view || !fleet.hosts.contains_key(name) {
        match rows.iter().find(|(j, _)| j.client == name) {
            Some((j, _)) => Host::ssh(name, &j.ssh, sessions.clone()),
            None => return r,
        }
    } else {
        Host::ssh(name, &fleet.hosts[name].ssh, sessions.clone())
    };
    // The roots to list: what it backs up, what it keeps as a server, its
    // policy datasets (not through the backup account).
    let mut roots: Vec<DatasetName> = rows
        .iter()
        .filter(|(j, _)| j.client == name)
        .map(|(j, _)| j.source.clone())
        .collect();
    if !backup_view {
        if let Some(s) = fleet.host(name).and_then(|h| h.server.as_ref()) {
            roots.push(s.target_root.clone());
        }
        roots.extend(PlanInput::from_fleet(fleet, name).roots());
    }
    roots.sort();
    roots.dedup();
    let roots: Vec<DatasetName> = roots
        .iter()
        .filter(|d| !roots.iter().any(|a| a != *d && d.is_within(a)))
        .cloned()
        .collect();
    if !roots.is_empty() {
        // One listing of every root; a missing root (a client that does not
        // have a dataset yet) costs a second, root by root.
        let refs: Vec<&DatasetName> = roots.iter().collect();
        match host.observe_many(&refs, &[]) {
            Ok(l) => r.listing = Some(l),
            Err(first) => {
                let mut all = Listing::default();
                let mut failed = false;
                for root in &roots {
                    match host.observe_if_exists(root, &[]) {
                        Ok(Some(l)) => all.objects.extend(l.objects),
                        Ok(None) => {}
                        Err(e) => {
                            failed = true;
                            r.errors.push(e.to_string());
                            break;
                        }
                    }
                }
                if failed && r.errors.is_empty() {
                    r.errors.push(first.to_string());
                }
                if !failed {
                    r.listing = Some(all);
                }
            }
        }
    }
    if !r.errors.is_empty() {
        return r;
    }
    if !backup_view {
        let argv = cmd::zpool().args([
            "list",
            "-H",
            "-o",
            "name,size,allocated,free,capacity,health",
        ]);
        match host.query(&argv) {
            Ok(out) => match parse_pool_list(&out.stdout_text()) {
                Ok(rows) => {
                    r.pools = Some(
                        rows.into_iter()
                            .map(|p| PoolStatus {
                                name: p.name,
                                health: p.health,
                                capacity: p.capacity,
                            })
                            .collect(),
                    )
                }
                Err(e) => r.errors.push(format!("zpool list: {e}")),
            },
            Err(e) => r.errors.push(e.to_string()),
        }
    }
    // Where jobs are recorded: servers, and clients that push.
    let runs_jobs = fleet
        .host(name)
        .is_some_and(|h| h.server.is_some() || h.client.as_ref().is_some_and(|c| c.push));
    if runs_jobs && !backup_view {
        let got = if local {
            State::open(&fleet.state_dir)
                .and_then(|s| history::dump(&s, name, now))
                .map_err(|e| e.to_string())
        } else {
            remote_dump(fleet, &host, name)
        };
        match got {
            Ok(d) => r.dump = Some(d),
            Err(e) => r.errors.push(e),
        }
    }
    r
}

/// `zfleet state --json` on `host`, over its connection.
fn remote_dump(fleet: &Fleet, host: &Host, name: &str) -> Result<StateDump, String> {
    let argv = Argv::new(&fleet.zfleet_path).args([
        "state".to_string(),
        "--json".to_string(),
        "--state-dir".to_string(),
        fleet.state_dir.display().to_string(),
        "--host".to_string(),
        name.to_string(),
    ]);
    let out = host
        .endpoint()
        .run_unchecked(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .map_err(|e| e.to_string())?;
    if out.status.code() == Some(127) {
        return Err(format!(
            "`{}` is not installed on {name} (or not on its PATH); install zfleet there or set [fleet] zfleet_path",
            fleet.zfleet_path
        ));
    }
    if !out.status.success() {
        return Err(format!(
            "reading its state with `{argv}` failed: {}",
            out.stderr_text().trim()
        ));
    }
    serde_json::from_str(&out.stdout_text())
        .map_err(|e| format!("`{argv}` answered something that is not its state ({e})"))
}

fn newest(snaps: &[&ObjectInfo]) -> Option<SnapAt> {
    snaps.last().map(|o| SnapAt {
        name: match &o.name {
            ObjectName::Snapshot(s) => s.name.clone(),
            other => other.to_string(),
        },
        time: o.creation,
    })
}

/// A backup's verifications, from its server's dump.
fn verify_note(
    dump: Option<&StateDump>,
    server: &str,
    client: &str,
    source: &str,
) -> Option<VerifyNote> {
    let mine: Vec<&super::history::VerifyHistory> = dump?
        .verifications
        .iter()
        .filter(|v| v.server == server && v.client == client && v.source == source)
        .collect();
    if mine.is_empty() {
        return None;
    }
    let mut n = VerifyNote::default();
    for v in &mine {
        if let Some(t) = v.last_success {
            if n.last_verified.map_or(true, |x| x < t) {
                n.last_verified = Some(t);
                n.last_verified_level = Some(v.level.clone());
            }
        }
        if !v.ok && n.failing.is_none() {
            n.failing = Some(v.error.clone().unwrap_or_else(|| "failed".into()));
            n.failing_level = Some(v.level.clone());
        }
        if v.level != "quick" {
            n.damaged = n.damaged.max(v.damaged);
        }
        if v.level == "drill" {
            n.drill_seconds = v.drill_seconds;
            n.drill_at = Some(v.last_run);
        }
    }
    if let Some(newest) = mine.iter().max_by_key(|v| v.last_run) {
        if newest.ok && newest.warning.is_some() {
            n.warning = newest.warning.clone();
            n.warning_level = Some(newest.level.clone());
        }
    }
    Some(n)
}

/// The report from what was read. Pure: `now` and `tz` are given.
pub fn assemble(
    fleet: &Fleet,
    scope: &Scope,
    obs: &Observed,
    now: i64,
    tz: &TimeZone,
) -> StatusReport {
    let rows = rows_in_scope(fleet, scope);
    let mut servers: Vec<ServerStatus> = Vec::new();
    for (j, paused) in &rows {
        let role = fleet.host(&j.server).and_then(|h| h.server.as_ref());
        let client_role = fleet.host(&j.client).and_then(|h| h.client.as_ref());
        // A push client keeps the history and the schedule of its pushes.
        let (keeper, job_name, timing) = if j.push {
            (&j.client, "push", client_role.map(|c| &c.schedule))
        } else {
            (&j.server, "backup", role.map(|r| &r.schedule))
        };
        let dump = obs.dumps.get(keeper);
        let hist: Option<&JobHistory> = dump.and_then(|d| {
            d.jobs.iter().find(|h| {
                h.server == j.server && h.client == j.client && h.source == j.source.as_str()
            })
        });
        let daemon = |client: &str| -> Option<&DaemonJob> {
            dump.and_then(|d| {
                d.daemon
                    .iter()
                    .find(|x| x.job == job_name && x.client == client)
            })
        };
        let late_after = late_threshold(
            client_role
                .and_then(|c| c.late_after)
                .or(role.and_then(|r| r.late_after)),
            timing.and_then(|t| t.schedule.interval()),
        );
        let state = judge(
            &History {
                paused: *paused,
                last_success: hist.and_then(|h| h.last_success),
                last_failed: hist.is_some_and(JobHistory::last_failed),
            },
            now,
            late_after,
        );
        let client_snaps: Option<Vec<&ObjectInfo>> = obs
            .listings
            .get(&j.client)
            .map(|l| l.snapshots_of(&j.source));
        let server_snaps: Option<Vec<&ObjectInfo>> = obs
            .listings
            .get(&j.server)
            .map(|l| l.snapshots_of(&j.target));
        let client_newest = client_snaps.as_deref().and_then(newest);
        let server_newest = server_snaps.as_deref().and_then(newest);
        let server_guid = server_snaps.as_ref().and_then(|s| s.last()).map(|o| o.guid);
        let lag_snapshots = match (&client_snaps, &server_newest) {
            (Some(c), Some(s)) => Some(match c.iter().position(|o| Some(o.guid) == server_guid) {
                Some(i) => (c.len() - i - 1) as u64,
                None => c.iter().filter(|o| o.creation > s.time).count() as u64,
            }),
            (Some(c), None) => Some(c.len() as u64),
            _ => None,
        };
        let lag_seconds = match (&client_newest, &server_newest) {
            (Some(c), Some(s)) => Some((c.time - s.time).max(0)),
            _ => None,
        };
        let retry = daemon(&j.client).and_then(|d| d.retry);
        let scheduled = daemon("")
            .and_then(|d| d.next_run)
            .or_else(|| timing.and_then(|t| t.next_after(&job_key(job_name, keeper), now, tz)));
        let next_run = match (retry, scheduled) {
            (Some(r), Some(s)) => Some(r.at.min(s)),
            (Some(r), None) => Some(r.at),
            (None, s) => s,
        };
        let row = BackupRow {
            server: j.server.clone(),
            client: j.client.clone(),
            dataset: j.source.to_string(),
            target: j.target.to_string(),
            push: j.push,
            state,
            client_newest,
            server_newest,
            lag_seconds,
            lag_snapshots,
            last_success: hist.and_then(|h| h.last_success),
            last_attempt: hist.and_then(|h| h.last_attempt),
            last_failure: hist.and_then(|h| h.last_failure.clone()),
            bytes_last_run: hist.and_then(|h| h.last_bytes),
            bytes_total: hist.map_or(0, |h| h.bytes_total),
            failures: hist.map_or_else(Vec::new, |h| h.failures.clone()),
            next_run: if *paused { None } else { next_run },
            retry: if *paused { None } else { retry },
            transfer: None,
            late_after,
            verify: verify_note(
                obs.dumps.get(&j.server),
                &j.server,
                &j.client,
                j.source.as_str(),
            ),
        };
        match servers.iter_mut().find(|s| s.server == j.server) {
            Some(s) => s.rows.push(row),
            None => servers.push(ServerStatus {
                server: j.server.clone(),
                schedule: role
                    .map_or_else(|| "manual".to_string(), |r| r.schedule.schedule.to_string()),
                rows: vec![row],
            }),
        }
    }
    let mut hosts = Vec::new();
    for name in hosts_to_read(fleet, scope) {
        if !fleet.hosts.contains_key(&name) {
            continue;
        }
        let pools = obs.pools.get(&name).cloned().unwrap_or_default();
        let input = PlanInput::from_fleet(fleet, &name);
        let snapshots = match obs.listings.get(&name) {
            Some(l)
                if !input.entries.is_empty()
                    && (scope.daemon_server.is_none()
                        || scope.daemon_server.as_deref() == Some(name.as_str())) =>
            {
                let index = Index::new(l);
                // Containers zfleet made on a server (`<root>/<client>/<pool>`)
                // hold no snapshots of their own; they are not news.
                let received: Vec<&DatasetName> = fleet
                    .host(&name)
                    .and_then(|h| h.server.as_ref())
                    .map(|s| vec![&s.target_root])
                    .unwrap_or_default();
                let checks = check_snapshots(&input, &index, now).checks;
                let empty_container = |ds: &str| {
                    received.iter().any(|r| ds.starts_with(&format!("{r}/")))
                        && checks
                            .iter()
                            .filter(|c| c.dataset == ds)
                            .all(|c| c.newest.is_none())
                };
                checks
                    .iter()
                    .filter(|c| !empty_container(&c.dataset))
                    .cloned()
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|c| NewestSnapshot {
                        dataset: c.dataset,
                        period: c.period,
                        newest: c.newest.zip(c.age).map(|(name, age)| SnapAt {
                            name,
                            time: now - age,
                        }),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let jobs: Vec<JobStatus> = obs
            .dumps
            .get(&name)
            .map(|d| {
                d.daemon
                    .iter()
                    .filter(|j| j.client.is_empty())
                    .map(|j| JobStatus {
                        job: j.job.clone(),
                        running: j.running_since.is_some(),
                        next_run: j.next_run,
                        retry: j.retry,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if pools.is_empty() && snapshots.is_empty() && jobs.is_empty() {
            continue;
        }
        hosts.push(HostStatus {
            host: name,
            pools,
            snapshots,
            jobs,
        });
    }
    StatusReport {
        generated: now,
        servers,
        hosts,
        errors: obs.errors.clone(),
    }
}

/// The name the daemon schedules (and jitters) a job under.
pub fn job_key(job: &str, host: &str) -> String {
    format!("{job} {host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::judge::BackupState;
    use crate::status::model::RetryNote;

    const FLEET: &str = r#"
[snapshots."zroot/data"]
hourly = 24
daily = 7
monthly = 0
[hosts.alpha]
[hosts.alpha.backup]
datasets = ["zroot/data"]
[hosts.bravo]
[hosts.bravo.backup]
datasets = ["zroot/data"]
[hosts.laptop]
[hosts.laptop.backup]
datasets = ["zroot/data"]
enabled = false
[hosts.vault]
[hosts.vault.server]
target_root = "tank/b"
schedule = "daily 02:00"
"#;

    const NOW: i64 = 1_780_000_000;

    fn fleet() -> Fleet {
        crate::config::parse(FLEET, std::path::Path::new("fleet.toml")).unwrap()
    }

    /// `zfs list -H -p` lines: (name, guid, creation offset from NOW).
    fn listing(objs: &[(&str, u64, i64)]) -> Listing {
        let mut text = String::new();
        for (i, (name, guid, off)) in objs.iter().enumerate() {
            let kind = if name.contains('@') {
                "snapshot"
            } else {
                "filesystem"
            };
            text.push_str(&format!(
                "{name}\t{kind}\t{guid}\t{}\t{}\t1\t1\t0\n",
                i + 1,
                NOW + off
            ));
        }
        Listing::from_list(&text, &[]).unwrap()
    }

    fn history(client: &str, success: Option<i64>, result: &str) -> JobHistory {
        JobHistory {
            kind: "backup".into(),
            server: "vault".into(),
            client: client.into(),
            source: "zroot/data".into(),
            target: format!("tank/b/{client}/zroot/data"),
            last_success: success,
            last_attempt: Some(NOW - 100),
            last_result: Some(result.into()),
            last_bytes: Some(4096),
            last_failure: (result == "failed").then(|| FailureNote {
                time: NOW - 100,
                kind: "unreachable".into(),
                message: "bravo did not answer".into(),
            }),
            bytes_total: 1 << 20,
            failures: Vec::new(),
        }
    }

    fn observed() -> Observed {
        let mut o = Observed::default();
        o.listings.insert(
            "alpha".into(),
            listing(&[
                ("zroot/data", 1, -9000),
                ("zroot/data@autosnap_2026-05-28_18:00:00_hourly", 11, -7200),
                ("zroot/data@autosnap_2026-05-28_19:00:00_hourly", 12, -3600),
                ("zroot/data@autosnap_2026-05-28_20:00:00_hourly", 13, -600),
            ]),
        );
        o.listings.insert(
            "vault".into(),
            listing(&[
                ("tank/b", 2, -9000),
                ("tank/b/alpha/zroot/data", 3, -9000),
                (
                    "tank/b/alpha/zroot/data@autosnap_2026-05-28_18:00:00_hourly",
                    11,
                    -7200,
                ),
            ]),
        );
        o.pools.insert(
            "vault".into(),
            vec![PoolStatus {
                name: "tank".into(),
                health: "ONLINE".into(),
                capacity: Some(12),
            }],
        );
        o.dumps.insert(
            "vault".into(),
            StateDump {
                verifications: Vec::new(),
                host: "vault".into(),
                generated: NOW,
                jobs: vec![
                    history("alpha", Some(NOW - 7000), "ok"),
                    history("bravo", Some(NOW - 3 * 86_400), "failed"),
                ],
                daemon: vec![
                    DaemonJob {
                        job: "backup".into(),
                        client: String::new(),
                        next_run: Some(NOW + 5000),
                        retry: None,
                        running_since: None,
                        pid: 7,
                        updated: NOW,
                    },
                    DaemonJob {
                        job: "backup".into(),
                        client: "bravo".into(),
                        next_run: None,
                        retry: Some(RetryNote {
                            attempt: 2,
                            at: NOW + 120,
                        }),
                        running_since: None,
                        pid: 7,
                        updated: NOW,
                    },
                ],
            },
        );
        o.errors.push(HostError {
            host: "bravo".into(),
            error: "ssh: connect to host bravo: timed out".into(),
        });
        o
    }

    #[test]
    fn rows_states_lag_and_next_runs() {
        let r = assemble(
            &fleet(),
            &Scope::default(),
            &observed(),
            NOW,
            &TimeZone::UTC,
        );
        assert_eq!(r.servers.len(), 1);
        let rows = &r.servers[0].rows;
        let by = |c: &str| rows.iter().find(|r| r.client == c).unwrap();
        let a = by("alpha");
        assert_eq!(a.state, BackupState::Ok);
        assert_eq!(
            a.client_newest.as_ref().unwrap().name,
            "autosnap_2026-05-28_20:00:00_hourly"
        );
        assert_eq!(
            a.server_newest.as_ref().unwrap().name,
            "autosnap_2026-05-28_18:00:00_hourly"
        );
        // c at -600 vs a at -7200, two snapshots behind (found by guid).
        assert_eq!((a.lag_seconds, a.lag_snapshots), (Some(6600), Some(2)));
        assert_eq!(a.next_run, Some(NOW + 5000));
        assert_eq!(a.bytes_last_run, Some(4096));
        let b = by("bravo");
        // Three days without a success on a daily schedule: late, not just failing.
        assert_eq!(b.state, BackupState::Late);
        assert_eq!(b.last_failure.as_ref().unwrap().kind, "unreachable");
        assert_eq!(
            b.retry,
            Some(RetryNote {
                attempt: 2,
                at: NOW + 120
            })
        );
        assert_eq!(b.next_run, Some(NOW + 120));
        assert_eq!((b.client_newest.as_ref(), b.lag_seconds), (None, None));
        let l = by("laptop");
        assert_eq!((l.state, l.next_run), (BackupState::Paused, None));
        assert_eq!(r.errors.len(), 1);
        let vault = r.hosts.iter().find(|h| h.host == "vault").unwrap();
        assert_eq!(vault.pools[0].health, "ONLINE");
        assert_eq!(vault.jobs.len(), 1);
        let alpha = r.hosts.iter().find(|h| h.host == "alpha").unwrap();
        let hourly = alpha
            .snapshots
            .iter()
            .find(|s| s.period == crate::config::Period::Hourly)
            .unwrap();
        assert_eq!(hourly.newest.as_ref().unwrap().time, NOW - 600);
    }

    #[test]
    fn never_backed_up_and_schedule_from_the_fleet_without_a_daemon() {
        let mut o = observed();
        o.dumps.get_mut("vault").unwrap().daemon.clear();
        o.dumps.get_mut("vault").unwrap().jobs.clear();
        let r = assemble(&fleet(), &Scope::default(), &o, NOW, &TimeZone::UTC);
        let a = &r.servers[0].rows[0];
        assert_eq!(a.state, BackupState::Never);
        let next = fleet().hosts["vault"]
            .server
            .as_ref()
            .unwrap()
            .schedule
            .next_after("backup vault", NOW, &TimeZone::UTC);
        assert_eq!(a.next_run, next);
    }

    #[test]
    fn scope_by_host() {
        let f = fleet();
        let s = Scope {
            only: vec!["alpha".into()],
            daemon_server: None,
        };
        assert_eq!(hosts_to_read(&f, &s), ["alpha", "vault"]);
        let r = assemble(&f, &s, &observed(), NOW, &TimeZone::UTC);
        assert_eq!(
            r.rows().map(|r| r.client.as_str()).collect::<Vec<_>>(),
            ["alpha"]
        );
        assert_eq!(hosts_to_read(&f, &Scope::default()).len(), 4);
    }
}
