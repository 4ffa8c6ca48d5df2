//! `zfleet daemon`: one long-running process per host that runs the host's
//! jobs on their schedules (snapshots, a server's backups, a client's
//! pushes), retries failures with backoff, serves the status page and
//! metrics, and sends notifications.
//!
//! Threads, not tasks: the engine is blocking code. The scheduler loop runs
//! on the main thread and wakes once a second (or when a job ends, a signal
//! arrives); each job runs on a thread of its own; the listener and the
//! signal handlers share one small tokio runtime on another; notifications
//! go out from a thread of their own.

mod deliver;
mod http;
mod runner;
mod shared;
mod transfers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jiff::tz::TimeZone;
use zfleet_core::config::{self, Fleet};
use zfleet_core::daemon::cadence::next_snapshot_run;
use zfleet_core::daemon::clock_watch::ClockWatch;
use zfleet_core::daemon::notify::{JobEnd, JobKey, Notifier};
use zfleet_core::daemon::AfterFailure;
use zfleet_core::exec::SshSessions;
use zfleet_core::state::State;
use zfleet_core::status::collect::{job_key, observe, Observed};
use zfleet_core::status::history::{self, DaemonJob};
use zfleet_core::status::{BackupState, RetryNote};
use zfleet_core::Error;

use deliver::{Outgoing, Ping};
pub use runner::{lock_name, Kind};
use runner::{RowEnd, RunEnd};
use shared::{Shared, View};
use transfers::{DaemonProgress, Transfers};

/// How the daemon is started.
pub struct Start {
    pub config: PathBuf,
    pub this_host: String,
    /// Overrides `[daemon] listen`.
    pub listen: Option<std::net::SocketAddr>,
}

enum Control {
    Reload,
    Stop,
    Done {
        kind: Kind,
        end: RunEnd,
        started: i64,
    },
    Observed(Box<Observed>),
    /// Which hosts wait to be unlocked (true) or are up (false).
    Unlock(Vec<(String, bool)>),
}

/// A client's failures since its last scheduled run.
#[derive(Debug, Default, Clone)]
struct Streak {
    failures: u32,
    retry: Option<RetryNote>,
}

struct Slot {
    kind: Kind,
    key: String,
    next_run: Option<i64>,
    running: Option<i64>,
    /// Per client (backups), or `""` for the job as a whole.
    streaks: BTreeMap<String, Streak>,
    /// Another process held the lock: try again then.
    busy_until: Option<i64>,
}

impl Slot {
    fn retries_due(&self, now: i64) -> Vec<String> {
        self.streaks
            .iter()
            .filter(|(_, s)| s.retry.is_some_and(|r| r.at <= now))
            .map(|(c, _)| c.clone())
            .collect()
    }
}

struct Daemon {
    start: Start,
    fleet: Arc<Fleet>,
    file_stamp: Option<SystemTime>,
    state: Arc<State>,
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    notifier: Notifier,
    out: Sender<Outgoing>,
    tx: Sender<Control>,
    tz: TimeZone,
    clock: ClockWatch,
    boot: Instant,
    stopping: Option<Instant>,
    next_watch: i64,
    watching: bool,
    last_judged: i64,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// One line per event: journald takes a line as a message.
fn line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn stamp(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

pub fn run(start: Start) -> Result<u8, Error> {
    let fleet = Arc::new(config::load(&start.config)?);
    let me = start.this_host.clone();
    if fleet.host(&me).is_none() {
        return Err(Error::UnknownHost {
            name: me,
            known: fleet.hosts.keys().cloned().collect(),
        });
    }
    let state =
        Arc::new(State::open(&fleet.state_dir).map_err(|e| Error::Internal(e.to_string()))?);
    let tz = TimeZone::system();
    let transfers = Arc::new(Transfers::default());
    let shared = Arc::new(Shared {
        this_host: me.clone(),
        tz: tz.clone(),
        view: RwLock::new(View {
            fleet: fleet.clone(),
            observed: Observed::default(),
        }),
        transfers,
        state: state.clone(),
    });
    let (tx, rx) = mpsc::channel();
    let (out, notify_thread) = deliver::start(me.clone());
    let listen = start.listen.or(fleet.daemon.listen);
    let _rt = start_runtime(listen, shared.clone(), tx.clone())?;
    let _ = out.send(Outgoing::Targets(deliver::prepare(
        &fleet.notify.values().cloned().collect::<Vec<_>>(),
    )));
    let mut d = Daemon {
        file_stamp: stamp(&start.config),
        start,
        fleet,
        state,
        shared,
        slots: Vec::new(),
        notifier: Notifier::new(me.clone()),
        out: out.clone(),
        tx,
        tz,
        clock: ClockWatch::new(now(), 0.0),
        boot: Instant::now(),
        stopping: None,
        next_watch: 0,
        watching: false,
        last_judged: 0,
    };
    d.slots = d.plan_slots(&[]);
    d.catch_up();
    d.publish();
    tracing::info!(
        "daemon {me}: started (pid {}), jobs: {}{}",
        std::process::id(),
        d.describe_slots(),
        listen.map_or(String::new(), |a| format!(
            "; status page http://{a}/, metrics http://{a}/metrics"
        ))
    );
    let code = d.run_loop(&rx);
    let _ = out.send(Outgoing::Stop);
    let _ = notify_thread.join();
    Ok(code)
}

/// The listener and the signal handlers on one current-thread runtime.
fn start_runtime(
    listen: Option<std::net::SocketAddr>,
    shared: Arc<Shared>,
    tx: Sender<Control>,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the daemon's runtime: {e}")))?;
    // Bound here so that a port in use fails the start, loudly.
    let listener =
        match listen {
            Some(a) => Some(rt.block_on(tokio::net::TcpListener::bind(a)).map_err(|e| {
                Error::Usage(format!("cannot listen on {a}: {e} ([daemon] listen)"))
            })?),
            None => None,
        };
    let handle = std::thread::Builder::new()
        .name("listener".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::hangup()),
                ) else {
                    tracing::error!("cannot install the signal handlers");
                    return;
                };
                if let Some(l) = listener {
                    let app = http::router(shared);
                    tokio::spawn(async move {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!("the listener stopped: {e}");
                        }
                    });
                }
                loop {
                    let c = tokio::select! {
                        _ = term.recv() => Control::Stop,
                        _ = int.recv() => Control::Stop,
                        _ = hup.recv() => Control::Reload,
                    };
                    if tx.send(c).is_err() {
                        break;
                    }
                }
            })
        })
        .map_err(|e| Error::Internal(format!("cannot start the listener thread: {e}")))?;
    Ok(handle)
}

impl Daemon {
    fn me(&self) -> &str {
        &self.start.this_host
    }

    fn describe_slots(&self) -> String {
        if self.slots.is_empty() {
            return "none (this host has no snapshot policies and no backups)".into();
        }
        self.slots
            .iter()
            .map(|s| {
                let next = s.next_run.map_or("not scheduled".to_string(), |t| {
                    format!("next {}", zfleet_core::status::page::relative(now(), t))
                });
                format!("{} ({next})", s.kind.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The jobs this host runs under `self.fleet`, keeping the streaks of
    /// jobs that existed before (a reload).
    fn plan_slots(&self, old: &[Slot]) -> Vec<Slot> {
        let me = self.me().to_string();
        let f = &self.fleet;
        let mut kinds = Vec::new();
        if !f.policies(&me).is_empty() {
            kinds.push(Kind::Snapshots);
        }
        if f.server_plan(&me)
            .is_some_and(|p| p.jobs.iter().any(|j| !j.push))
        {
            kinds.push(Kind::Backup);
        }
        if !f.push_jobs(&me).is_empty() {
            kinds.push(Kind::Push);
        }
        let t = now();
        kinds
            .into_iter()
            .map(|kind| {
                let prev = old.iter().find(|s| s.kind == kind);
                Slot {
                    kind,
                    key: job_key(kind.as_str(), &me),
                    next_run: self.next_after(kind, t),
                    running: prev.and_then(|p| p.running),
                    streaks: prev.map(|p| p.streaks.clone()).unwrap_or_default(),
                    busy_until: None,
                }
            })
            .collect()
    }

    fn next_after(&self, kind: Kind, t: i64) -> Option<i64> {
        let me = self.me();
        let key = job_key(kind.as_str(), me);
        match kind {
            Kind::Snapshots => next_snapshot_run(&self.fleet.policies(me), t, &self.tz),
            Kind::Backup => self
                .fleet
                .host(me)
                .and_then(|h| h.server.as_ref())
                .and_then(|s| s.schedule.next_after(&key, t, &self.tz)),
            Kind::Push => self
                .fleet
                .host(me)
                .and_then(|h| h.client.as_ref())
                .and_then(|c| c.schedule.next_after(&key, t, &self.tz)),
        }
    }

    /// At start: snapshots run at once (like sanoid from cron, they take only
    /// what is due), and a backup whose scheduled run passed while the
    /// daemon was not running runs once.
    fn catch_up(&mut self) {
        let t = now();
        let dump = history::dump(&self.state, self.me(), t).ok();
        let me = self.me().to_string();
        for i in 0..self.slots.len() {
            let kind = self.slots[i].kind;
            let due = match kind {
                Kind::Snapshots => true,
                Kind::Backup | Kind::Push => {
                    let last = dump.as_ref().and_then(|d| {
                        d.jobs
                            .iter()
                            .filter(|j| j.kind == kind.as_str())
                            .filter_map(|j| j.last_attempt)
                            .max()
                    });
                    let timing = match kind {
                        Kind::Backup => self
                            .fleet
                            .host(&me)
                            .and_then(|h| h.server.as_ref())
                            .map(|s| s.schedule.clone()),
                        _ => self
                            .fleet
                            .host(&me)
                            .and_then(|h| h.client.as_ref())
                            .map(|c| c.schedule.clone()),
                    };
                    let missed =
                        timing.is_some_and(|tm| tm.missed(&self.slots[i].key, last, t, &self.tz));
                    // A run that ended failed (or was interrupted by the last
                    // stop) is continued at once rather than at the next slot.
                    let unfinished = dump.as_ref().is_some_and(|d| {
                        d.jobs
                            .iter()
                            .filter(|j| j.kind == kind.as_str())
                            .any(|j| j.last_failed() && j.last_result.as_deref() != Some("refused"))
                    });
                    if missed {
                        tracing::info!("{} {me}: a scheduled run was missed while the daemon was not running; running it now", kind.as_str());
                    } else if unfinished {
                        tracing::info!(
                            "{} {me}: the last run did not finish; running it again now",
                            kind.as_str()
                        );
                    }
                    missed || unfinished
                }
            };
            if due {
                self.slots[i].next_run = Some(t);
            }
        }
    }

    fn run_loop(&mut self, rx: &Receiver<Control>) -> u8 {
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Control::Stop) => {
                    if self.stopping.is_some() {
                        tracing::warn!("daemon {}: second stop signal; exiting now", self.me());
                        return 1;
                    }
                    self.begin_stop();
                }
                Ok(Control::Reload) => self.reload("SIGHUP"),
                Ok(Control::Done { kind, end, started }) => self.job_done(kind, end, started),
                Ok(Control::Unlock(v)) => {
                    let t = now();
                    for (host, needed) in v {
                        for e in self.notifier.unlock(&host, needed, t) {
                            tracing::warn!("notify: {} ({})", e.title, e.event.as_str());
                            let _ = self.out.send(Outgoing::Event(Box::new(e)));
                        }
                    }
                }
                Ok(Control::Observed(o)) => {
                    self.watching = false;
                    self.observed(*o);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return 1,
            }
            if let Some(since) = self.stopping {
                let running = self.slots.iter().filter(|s| s.running.is_some()).count();
                if running == 0 {
                    tracing::info!("daemon {}: stopped", self.me());
                    return 0;
                }
                if since.elapsed() >= self.fleet.daemon.shutdown_timeout {
                    tracing::warn!(
                        "daemon {}: {running} job(s) still running after {}s; exiting anyway",
                        self.me(),
                        self.fleet.daemon.shutdown_timeout.as_secs()
                    );
                    return 0;
                }
                continue;
            }
            self.tick();
        }
    }

    fn begin_stop(&mut self) {
        let running: Vec<&str> = self
            .slots
            .iter()
            .filter(|s| s.running.is_some())
            .map(|s| s.kind.as_str())
            .collect();
        tracing::info!(
            "daemon {}: stopping{}",
            self.me(),
            if running.is_empty() {
                String::new()
            } else {
                format!(
                    "; waiting up to {}s for {}",
                    self.fleet.daemon.shutdown_timeout.as_secs(),
                    running.join(", ")
                )
            }
        );
        self.stopping = Some(Instant::now());
        zfleet_core::stop::request_stop();
    }

    fn reload(&mut self, why: &str) {
        let path = self.start.config.clone();
        self.file_stamp = stamp(&path);
        match config::load(&path) {
            Ok(f) if f.host(self.me()).is_some() => {
                self.fleet = Arc::new(f);
                let old = std::mem::take(&mut self.slots);
                self.slots = self.plan_slots(&old);
                self.shared.set_fleet(self.fleet.clone());
                let _ = self.out.send(Outgoing::Targets(deliver::prepare(
                    &self.fleet.notify.values().cloned().collect::<Vec<_>>(),
                )));
                self.next_watch = 0;
                self.publish();
                tracing::info!(
                    "daemon {}: reloaded {} ({why}); jobs: {}",
                    self.me(),
                    path.display(),
                    self.describe_slots()
                );
            }
            Ok(_) => tracing::error!(
                "daemon {}: the new {} does not name this host; keeping the configuration in force",
                self.me(),
                path.display()
            ),
            Err(e) => tracing::error!(
                "daemon {}: the new {} is invalid; keeping the configuration in force: {}",
                self.me(),
                path.display(),
                line(&e.to_string())
            ),
        }
    }

    fn tick(&mut self) {
        let t = now();
        if let Some(j) = self.clock.observe(t, self.boot.elapsed().as_secs_f64()) {
            tracing::warn!(
                "daemon {}: the clock jumped by {}{}s (suspend, NTP or a clock set by hand); schedules recomputed",
                self.me(),
                if j.by > 0 { "+" } else { "" },
                j.by
            );
            for i in 0..self.slots.len() {
                let kind = self.slots[i].kind;
                let s = &self.slots[i];
                // A run whose time the jump skipped is due now (once); one the
                // jump pushed away comes back to its place on the new clock.
                let keep = s.next_run.is_some_and(|n| n <= t);
                if !keep {
                    self.slots[i].next_run = self.next_after(kind, t);
                }
                let max = self.fleet.daemon.backoff.max;
                for st in self.slots[i].streaks.values_mut() {
                    if let Some(r) = &mut st.retry {
                        r.at = r.at.min(t + max);
                    }
                }
            }
            self.publish();
        }
        if stamp(&self.start.config) != self.file_stamp {
            self.reload("the file changed");
        }
        let stall = self.fleet.daemon.stall_timeout;
        for s in self.shared.transfers.newly_stalled(stall) {
            // A stream already being stopped may still trickle out what its
            // pipes held and then stall again: one warning per stop.
            if !zfleet_core::stop::request_stall(&s.client, &s.dataset) {
                continue;
            }
            tracing::warn!(
                "transfer {}:{}: no progress for {}s after {}; stopping it",
                s.client,
                s.dataset,
                s.idle.as_secs(),
                zfleet_core::progress::human_bytes(s.bytes)
            );
        }
        zfleet_core::stop::escalate(Duration::from_secs(10));
        for i in 0..self.slots.len() {
            self.maybe_start(i, t);
        }
        if t >= self.next_watch && !self.watching {
            self.watch(t);
        }
        self.judge_late(t);
    }

    fn maybe_start(&mut self, i: usize, t: i64) {
        let s = &self.slots[i];
        if s.running.is_some() || s.busy_until.is_some_and(|b| b > t) {
            return;
        }
        let scheduled = s.next_run.is_some_and(|n| n <= t) || s.busy_until.is_some();
        let retries = s.retries_due(t);
        if !scheduled && retries.is_empty() {
            return;
        }
        let kind = s.kind;
        let only: Vec<String> = if scheduled || kind != Kind::Backup {
            Vec::new()
        } else {
            retries.into_iter().filter(|c| !c.is_empty()).collect()
        };
        let slot = &mut self.slots[i];
        slot.busy_until = None;
        if scheduled {
            slot.next_run = None;
            // A scheduled run starts a new round of retries.
            for st in slot.streaks.values_mut() {
                st.failures = 0;
                st.retry = None;
            }
        } else {
            for st in slot.streaks.values_mut() {
                if st.retry.is_some_and(|r| r.at <= t) {
                    st.retry = None;
                }
            }
        }
        slot.running = Some(t);
        let what = if only.is_empty() {
            if scheduled { "scheduled run" } else { "retry" }.to_string()
        } else {
            format!("retry of {}", only.join(", "))
        };
        tracing::info!("{} {}: {what} started", kind.as_str(), self.me());
        let _ = self.out.send(Outgoing::Ping {
            job: kind.as_str().into(),
            signal: Ping::Start,
        });
        let fleet = self.fleet.clone();
        let me = self.me().to_string();
        let state = self.state.clone();
        let tx = self.tx.clone();
        let progress = DaemonProgress(self.shared.transfers.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("job-{}", kind.as_str()))
            .spawn(move || {
                let end = runner::run(kind, &fleet, &me, &only, &progress, &state);
                let _ = tx.send(Control::Done {
                    kind,
                    end,
                    started: t,
                });
            });
        if let Err(e) = spawned {
            tracing::error!(
                "{} {}: cannot start a thread: {e}",
                kind.as_str(),
                self.me()
            );
            self.slots[i].running = None;
        }
        self.publish();
    }

    fn job_done(&mut self, kind: Kind, end: RunEnd, started: i64) {
        let t = now();
        let me = self.me().to_string();
        let Some(i) = self.slots.iter().position(|s| s.kind == kind) else {
            // Removed by a reload while it ran.
            return;
        };
        self.slots[i].running = None;
        if self.slots[i].next_run.is_none() {
            self.slots[i].next_run = self.next_after(kind, t);
        }
        let next = self.slots[i].next_run;
        let backoff = self.fleet.daemon.backoff;
        let mut any_failed = false;
        let mut events = Vec::new();
        match end {
            RunEnd::Busy(why) => {
                self.slots[i].busy_until = Some(t + 60);
                tracing::warn!("{} {me}: {why}; trying again in 60s", kind.as_str());
            }
            RunEnd::Failed(f) => {
                any_failed = true;
                let st = self.slots[i].streaks.entry(String::new()).or_default();
                st.failures += 1;
                let decision = if f.retry {
                    backoff.after_failure(st.failures, t, next)
                } else {
                    AfterFailure::GiveUp { at: next }
                };
                let last_try = self.apply(i, "", decision);
                tracing::error!(
                    "{} {me}: failed ({}): {}{}",
                    kind.as_str(),
                    f.kind,
                    line(&f.message),
                    then(decision, t)
                );
                let key = JobKey {
                    server: me.clone(),
                    client: me.clone(),
                };
                events.extend(self.notifier.job_ended(
                    &key,
                    &JobEnd::Failed {
                        kind: f.kind,
                        message: line(&f.message),
                        datasets: Vec::new(),
                        last_try,
                        next_try: next,
                    },
                    t,
                ));
            }
            RunEnd::Rows(rows) => {
                if let Some(st) = self.slots[i].streaks.get_mut("") {
                    *st = Streak::default();
                }
                // One decision per client: its datasets succeed or fail together.
                let mut by_client: BTreeMap<(String, String), Vec<&RowEnd>> = BTreeMap::new();
                for r in &rows {
                    by_client
                        .entry((r.server.clone(), r.client.clone()))
                        .or_default()
                        .push(r);
                }
                let mut unlock_probe = Vec::new();
                for ((server, client), rs) in by_client {
                    let failed: Vec<&&RowEnd> = rs.iter().filter(|r| r.failure.is_some()).collect();
                    let streak_key = if kind == Kind::Backup {
                        client.clone()
                    } else {
                        String::new()
                    };
                    let key = JobKey {
                        server: server.clone(),
                        client: client.clone(),
                    };
                    if self.fleet.host(&client).is_some_and(|h| h.unlock.is_some()) && client != me
                    {
                        unlock_probe.push((client.clone(), failed.is_empty()));
                    }
                    if failed.is_empty() {
                        self.slots[i].streaks.remove(&streak_key);
                        events.extend(self.notifier.job_ended(&key, &JobEnd::Ok, t));
                        continue;
                    }
                    any_failed = true;
                    let first = failed[0].failure.clone().unwrap_or(runner::Failure {
                        kind: "unknown".into(),
                        message: String::new(),
                        retry: true,
                    });
                    let st = self.slots[i].streaks.entry(streak_key.clone()).or_default();
                    st.failures += 1;
                    let decision = if failed
                        .iter()
                        .all(|r| r.failure.as_ref().is_some_and(|f| f.retry))
                    {
                        backoff.after_failure(st.failures, t, next)
                    } else {
                        AfterFailure::GiveUp { at: next }
                    };
                    let last_try = self.apply(i, &streak_key, decision);
                    for r in &failed {
                        if let Some(f) = &r.failure {
                            tracing::error!(
                                "{} {me}: {}:{} failed ({}): {}{}",
                                kind.as_str(),
                                r.client,
                                r.dataset,
                                f.kind,
                                line(&f.message),
                                then(decision, t)
                            );
                        }
                    }
                    events.extend(self.notifier.job_ended(
                        &key,
                        &JobEnd::Failed {
                            kind: first.kind.clone(),
                            message: line(&first.message),
                            datasets: failed.iter().map(|r| r.dataset.clone()).collect(),
                            last_try,
                            next_try: next,
                        },
                        t,
                    ));
                }
                self.probe_unlock(unlock_probe);
                if !any_failed {
                    tracing::info!(
                        "{} {me}: done in {}s; next run {}",
                        kind.as_str(),
                        t - started,
                        next.map_or("not scheduled".into(), |n| {
                            zfleet_core::status::page::relative(t, n)
                        })
                    );
                }
            }
        }
        for e in events {
            tracing::info!("notify: {} ({})", e.title, e.event.as_str());
            let _ = self.out.send(Outgoing::Event(Box::new(e)));
        }
        let still_retrying = self.slots[i].streaks.values().any(|s| s.retry.is_some());
        if self.slots[i].busy_until.is_none() && (!any_failed || !still_retrying) {
            let _ = self.out.send(Outgoing::Ping {
                job: kind.as_str().into(),
                signal: if any_failed {
                    Ping::Fail
                } else {
                    Ping::Success
                },
            });
        }
        if kind != Kind::Snapshots {
            // New bases and listings: look again soon.
            self.next_watch = 0;
        }
        self.publish();
    }

    /// Puts a failure's decision into the streak; true when no retry follows.
    fn apply(&mut self, i: usize, client: &str, d: AfterFailure) -> bool {
        let st = self.slots[i].streaks.entry(client.to_string()).or_default();
        match d {
            AfterFailure::Retry { attempt, at } => {
                st.retry = Some(RetryNote { attempt, at });
                false
            }
            AfterFailure::GiveUp { .. } => {
                st.retry = None;
                true
            }
        }
    }

    /// A client with `[hosts.NAME.unlock]` whose backup failed may be
    /// waiting in its initrd (or up with locked datasets): ask, as `zfleet
    /// unlock --status` does, off the loop. One that worked is up.
    fn probe_unlock(&self, clients: Vec<(String, bool)>) {
        let (up, failed): (Vec<_>, Vec<_>) = clients.into_iter().partition(|c| c.1);
        if !up.is_empty() {
            let _ = self.tx.send(Control::Unlock(
                up.into_iter().map(|(h, _)| (h, false)).collect(),
            ));
        }
        if failed.is_empty() {
            return;
        }
        let names: Vec<String> = failed.into_iter().map(|(h, _)| h).collect();
        let fleet = self.fleet.clone();
        let me = self.me().to_string();
        let tx = self.tx.clone();
        let _ = std::thread::Builder::new()
            .name("unlock-status".into())
            .spawn(move || {
                let Ok(rt) = zfleet_core::runtime::Runtime::new((*fleet).clone(), me) else {
                    return;
                };
                let Ok(targets) = zfleet_core::unlock::targets(&rt, &names) else {
                    return;
                };
                let found = zfleet_core::unlock::status(&targets, 4)
                    .into_iter()
                    .map(|s| {
                        let needed = matches!(
                            s.state,
                            zfleet_core::unlock::State::Initrd | zfleet_core::unlock::State::Locked
                        );
                        (s.host, needed)
                    })
                    .collect();
                let _ = tx.send(Control::Unlock(found));
            });
    }

    /// Looks at this host and its clients again, off the loop.
    fn watch(&mut self, t: i64) {
        self.watching = true;
        self.next_watch = t + self.fleet.daemon.watch_interval.as_secs() as i64;
        let fleet = self.fleet.clone();
        let me = self.me().to_string();
        let scope = self.shared.scope();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                let obs = match SshSessions::new() {
                    Ok(sessions) => observe(&fleet, &me, &sessions, &scope, 8, t),
                    Err(e) => {
                        let mut o = Observed::default();
                        o.errors.push(zfleet_core::status::HostError {
                            host: me.clone(),
                            error: format!("cannot create the ssh control directory: {e}"),
                        });
                        o
                    }
                };
                let _ = tx.send(Control::Observed(Box::new(obs)));
            });
        if spawned.is_err() {
            self.watching = false;
        }
    }

    fn observed(&mut self, o: Observed) {
        let t = now();
        let me = self.me().to_string();
        let mut events = Vec::new();
        if let Some(pools) = o.pools.get(&me) {
            for p in pools {
                events.extend(self.notifier.pool(&me, &p.name, &p.health, t));
            }
        }
        for e in &o.errors {
            tracing::debug!("watch: {}: {}", e.host, line(&e.error));
        }
        self.shared.set_observed(o);
        for e in events {
            tracing::warn!("notify: {} ({})", e.title, e.event.as_str());
            let _ = self.out.send(Outgoing::Event(Box::new(e)));
        }
    }

    /// Late backups: judged on the loop every tick, told once.
    fn judge_late(&mut self, t: i64) {
        // Once every 30 s is plenty, and keeps the idle daemon idle.
        if (t - self.last_judged).abs() < 30 {
            return;
        }
        self.last_judged = t;
        let r = self.shared.report(t);
        let mut worst: BTreeMap<(String, String), (BackupState, Option<i64>, i64)> =
            BTreeMap::new();
        for row in r.rows() {
            let e = worst
                .entry((row.server.clone(), row.client.clone()))
                .or_insert((BackupState::Ok, row.last_success, row.late_after));
            if row.state > e.0 {
                *e = (row.state, row.last_success, row.late_after);
            }
        }
        for ((server, client), (state, success, late_after)) in worst {
            let key = JobKey { server, client };
            for e in self
                .notifier
                .backup_state(&key, state, success.map(|s| t - s), late_after, t)
            {
                tracing::warn!("notify: {} ({})", e.title, e.event.as_str());
                let _ = self.out.send(Outgoing::Event(Box::new(e)));
            }
        }
    }

    /// Writes the plan where `zfleet status` reads it.
    fn publish(&self) {
        let t = now();
        let pid = std::process::id();
        let mut rows = Vec::new();
        for s in &self.slots {
            rows.push(DaemonJob {
                job: s.kind.as_str().into(),
                client: String::new(),
                next_run: s.next_run.or(s.busy_until),
                retry: s.streaks.get("").and_then(|x| x.retry),
                running_since: s.running,
                pid,
                updated: t,
            });
            for (c, st) in s.streaks.iter().filter(|(c, _)| !c.is_empty()) {
                rows.push(DaemonJob {
                    job: s.kind.as_str().into(),
                    client: c.clone(),
                    next_run: None,
                    retry: st.retry,
                    running_since: None,
                    pid,
                    updated: t,
                });
            }
        }
        if let Err(e) = history::record_daemon_jobs(&self.state, &rows) {
            tracing::warn!("{e}");
        }
    }
}

fn then(d: AfterFailure, t: i64) -> String {
    use zfleet_core::status::page::relative;
    match d {
        AfterFailure::Retry { attempt, at } => format!("; retry {attempt} {}", relative(t, at)),
        AfterFailure::GiveUp { at: Some(at) } => {
            format!("; next scheduled run {}", relative(t, at))
        }
        AfterFailure::GiveUp { at: None } => "; not retried".to_string(),
    }
}
