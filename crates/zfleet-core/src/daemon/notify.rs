//! Which happenings are worth telling someone, and what to tell them. A
//! failure is told once per streak (not on every retry), and only once its
//! retries are used up; the success that ends an announced streak is told as
//! a recovery. A backup that goes late without a failure (the job stopped
//! running) is told once. A pool that turns degraded, and a host that waits
//! in its initrd for a passphrase, are told once each time they happen.
//!
//! Every event carries the next thing to do, written for the person who
//! reads it on a phone.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::status::judge::BackupState;
use crate::status::page::span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Failed,
    Recovered,
    Late,
    PoolDegraded,
    PoolHealthy,
    UnlockNeeded,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Failed => "failed",
            EventKind::Recovered => "recovered",
            EventKind::Late => "late",
            EventKind::PoolDegraded => "pool_degraded",
            EventKind::PoolHealthy => "pool_healthy",
            EventKind::UnlockNeeded => "unlock_needed",
        }
    }

    /// Bad news is urgent; good news is not.
    pub fn urgent(self) -> bool {
        matches!(
            self,
            EventKind::Failed | EventKind::Late | EventKind::PoolDegraded | EventKind::UnlockNeeded
        )
    }
}

/// One notification: the JSON a webhook or a command receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub event: EventKind,
    /// The host whose daemon noticed it (the backup server for backups).
    pub host: String,
    /// The client whose backup it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The dataset (the first, when several failed together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The state it is in now: a backup state, or a pool's health.
    pub state: String,
    /// The engine's failure kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix seconds.
    pub time: i64,
    /// One line for a title.
    pub title: String,
    /// What to do now.
    pub next: String,
}

/// How a backup job of one client ended, as the notifier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Ok,
    Failed {
        kind: String,
        message: String,
        /// The datasets that failed.
        datasets: Vec<String>,
        /// No retry follows: the streak is now a failure worth telling.
        last_try: bool,
        /// When the daemon tries again (the next scheduled run).
        next_try: Option<i64>,
    },
}

/// A backup of `client` to `server` (or from it, for a push).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    pub server: String,
    pub client: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Memory {
    failure_told: bool,
    late_told: bool,
}

/// What has been told. Lives as long as the daemon; a restart forgets, which
/// at worst repeats an announcement once.
#[derive(Debug, Default)]
pub struct Notifier {
    host: String,
    jobs: BTreeMap<JobKey, Memory>,
    degraded: BTreeSet<(String, String)>,
    locked: BTreeSet<String>,
}

impl Notifier {
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            ..Self::default()
        }
    }

    fn event(
        &self,
        event: EventKind,
        state: &str,
        time: i64,
        title: String,
        next: String,
    ) -> Event {
        Event {
            event,
            host: self.host.clone(),
            client: None,
            dataset: None,
            datasets: Vec::new(),
            pool: None,
            state: state.to_string(),
            kind: None,
            error: None,
            time,
            title,
            next,
        }
    }

    /// A backup job of one client ended.
    pub fn job_ended(&mut self, key: &JobKey, end: &JobEnd, now: i64) -> Vec<Event> {
        let mem = self.jobs.entry(key.clone()).or_default();
        match end {
            JobEnd::Ok => {
                let told = mem.failure_told || mem.late_told;
                *mem = Memory::default();
                if !told {
                    return Vec::new();
                }
                let mut e = self.event(
                    EventKind::Recovered,
                    BackupState::Ok.as_str(),
                    now,
                    format!("{}: backup to {} works again", key.client, key.server),
                    "Nothing to do.".to_string(),
                );
                e.client = Some(key.client.clone());
                vec![e]
            }
            JobEnd::Failed {
                kind,
                message,
                datasets,
                last_try,
                next_try,
            } => {
                if !last_try || mem.failure_told {
                    return Vec::new();
                }
                mem.failure_told = true;
                let mut e = self.event(
                    EventKind::Failed,
                    BackupState::Failing.as_str(),
                    now,
                    format!("{}: backup to {} failed ({kind})", key.client, key.server),
                    next_step(kind, key, *next_try, now),
                );
                e.client = Some(key.client.clone());
                e.dataset = datasets.first().cloned();
                e.datasets = datasets.clone();
                e.kind = Some(kind.clone());
                e.error = Some(message.clone());
                vec![e]
            }
        }
    }

    /// The judged state of a client's backups (the worst of its datasets),
    /// with how long since its last success.
    pub fn backup_state(
        &mut self,
        key: &JobKey,
        state: BackupState,
        since_success: Option<i64>,
        late_after: i64,
        now: i64,
    ) -> Vec<Event> {
        let mem = self.jobs.entry(key.clone()).or_default();
        if state != BackupState::Late || mem.late_told {
            return Vec::new();
        }
        mem.late_told = true;
        // A told failure already says it is broken; late adds nothing.
        if mem.failure_told {
            return Vec::new();
        }
        let how_long = since_success.map_or("ever".to_string(), span);
        let mut e = self.event(
            EventKind::Late,
            BackupState::Late.as_str(),
            now,
            format!("{}: no backup to {} for {how_long}", key.client, key.server),
            format!(
                "No successful backup of {} within {}. Run `zfleet status {}` and read the daemon's log on {} (`journalctl -u zfleet`).",
                key.client,
                span(late_after),
                key.client,
                key.server
            ),
        );
        e.client = Some(key.client.clone());
        vec![e]
    }

    /// A pool's health as last observed on `host`.
    pub fn pool(&mut self, host: &str, pool: &str, health: &str, now: i64) -> Vec<Event> {
        let k = (host.to_string(), pool.to_string());
        let bad = health != "ONLINE";
        let was_bad = self.degraded.contains(&k);
        let (kind, title, next) = match (bad, was_bad) {
            (true, false) => {
                self.degraded.insert(k);
                (
                    EventKind::PoolDegraded,
                    format!("{host}: pool {pool} is {health}"),
                    format!(
                        "Run `zpool status -v {pool}` on {host}; replace or reattach the failed device, then `zpool clear {pool}`."
                    ),
                )
            }
            (false, true) => {
                self.degraded.remove(&k);
                (
                    EventKind::PoolHealthy,
                    format!("{host}: pool {pool} is healthy again"),
                    "Nothing to do.".to_string(),
                )
            }
            _ => return Vec::new(),
        };
        let mut e = self.event(kind, health, now, title, next);
        e.host = host.to_string();
        e.pool = Some(pool.to_string());
        vec![e]
    }

    /// Whether `host` waits for its disks to be unlocked (in its initrd, or
    /// up with locked datasets).
    pub fn unlock(&mut self, host: &str, needed: bool, now: i64) -> Vec<Event> {
        if !needed {
            self.locked.remove(host);
            return Vec::new();
        }
        if !self.locked.insert(host.to_string()) {
            return Vec::new();
        }
        let mut e = self.event(
            EventKind::UnlockNeeded,
            "locked",
            now,
            format!("{host} waits to be unlocked"),
            format!("Run `zfleet unlock {host}`; its backups continue once it is up."),
        );
        e.client = Some(host.to_string());
        vec![e]
    }
}

/// What to do about a failure of this kind.
pub fn next_step(kind: &str, key: &JobKey, next_try: Option<i64>, now: i64) -> String {
    let c = &key.client;
    let s = &key.server;
    let then = match next_try {
        Some(t) if t > now => format!(" The daemon tries again in {}.", span(t - now)),
        _ => String::new(),
    };
    let what = match kind {
        "unreachable" => format!("Check that {c} is on and that {s} reaches it over ssh (`zfleet list {c}` on {s})."),
        "auth" => format!("{s} cannot log in to {c}: run `zfleet grant {c} --apply` and check the backup key."),
        "host_key" => format!("{c} presented another host key than the one on file: find out why before you update known_hosts."),
        "no_space" => format!("The receiving pool is full: free space on {s} (or raise its quota); `zfleet status` shows capacity."),
        "diverged" | "refused" => format!("The backup of {c} on {s} was changed or diverged; look at it, then run `zfleet backup {c} --rollback` on {s} if its changes may go."),
        "stalled" => format!("The transfer from {c} made no progress; check the network and the load on {c} and {s}."),
        "interrupted" => "The transfer was interrupted; the next run continues where it stopped.".to_string(),
        "internal" => "zfleet itself failed: report it with the daemon's log.".to_string(),
        _ => format!("Read the error; `zfleet backup {c} -v` on {s} shows every command."),
    };
    format!("{what}{then}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> JobKey {
        JobKey {
            server: "vault".into(),
            client: "bravo".into(),
        }
    }

    fn failed(last_try: bool) -> JobEnd {
        JobEnd::Failed {
            kind: "unreachable".into(),
            message: "bravo did not answer".into(),
            datasets: vec!["zroot/persistSave".into()],
            last_try,
            next_try: Some(1000 + 3600),
        }
    }

    fn kinds(v: &[Event]) -> Vec<EventKind> {
        v.iter().map(|e| e.event).collect()
    }

    #[test]
    fn one_failure_per_streak_then_one_recovery() {
        let mut n = Notifier::new("vault");
        let mut all = Vec::new();
        // Retries that fail say nothing; the last one tells.
        all.extend(n.job_ended(&key(), &failed(false), 1000));
        all.extend(n.job_ended(&key(), &failed(false), 1060));
        assert!(all.is_empty());
        all.extend(n.job_ended(&key(), &failed(true), 1180));
        // The next scheduled run fails too: still the same streak.
        all.extend(n.job_ended(&key(), &failed(true), 90_000));
        // It goes late while failing: already told.
        all.extend(n.backup_state(&key(), BackupState::Late, Some(200_000), 172_800, 200_000));
        all.extend(n.job_ended(&key(), &JobEnd::Ok, 300_000));
        all.extend(n.job_ended(&key(), &JobEnd::Ok, 400_000));
        assert_eq!(kinds(&all), [EventKind::Failed, EventKind::Recovered]);
        let f = &all[0];
        assert_eq!(f.kind.as_deref(), Some("unreachable"));
        assert_eq!(f.dataset.as_deref(), Some("zroot/persistSave"));
        assert!(f.next.contains("Check that bravo is on"), "{}", f.next);
        assert!(f.next.contains("tries again in"), "{}", f.next);
        assert_eq!(all[1].state, "ok");
    }

    #[test]
    fn a_retry_that_works_tells_nothing() {
        let mut n = Notifier::new("vault");
        assert!(n.job_ended(&key(), &failed(false), 1000).is_empty());
        assert!(n.job_ended(&key(), &JobEnd::Ok, 1060).is_empty());
    }

    #[test]
    fn late_without_failure_is_told_once_and_recovers() {
        let mut n = Notifier::new("vault");
        let late = n.backup_state(&key(), BackupState::Late, Some(180_000), 172_800, 5);
        assert_eq!(kinds(&late), [EventKind::Late]);
        assert!(
            late[0].next.contains("zfleet status bravo"),
            "{}",
            late[0].next
        );
        assert!(n
            .backup_state(&key(), BackupState::Late, Some(190_000), 172_800, 6)
            .is_empty());
        assert_eq!(
            kinds(&n.job_ended(&key(), &JobEnd::Ok, 7)),
            [EventKind::Recovered]
        );
    }

    #[test]
    fn pools_and_unlocks_on_each_change() {
        let mut n = Notifier::new("vault");
        assert!(n.pool("vault", "zstorage", "ONLINE", 1).is_empty());
        let d = n.pool("vault", "zstorage", "DEGRADED", 2);
        assert_eq!(kinds(&d), [EventKind::PoolDegraded]);
        assert!(d[0].next.contains("zpool status -v zstorage"));
        assert!(n.pool("vault", "zstorage", "DEGRADED", 3).is_empty());
        assert_eq!(
            kinds(&n.pool("vault", "zstorage", "ONLINE", 4)),
            [EventKind::PoolHealthy]
        );
        let u = n.unlock("alpha", true, 5);
        assert_eq!(kinds(&u), [EventKind::UnlockNeeded]);
        assert!(u[0].next.contains("zfleet unlock alpha"));
        assert!(n.unlock("alpha", true, 6).is_empty());
        assert!(n.unlock("alpha", false, 7).is_empty());
        assert_eq!(
            kinds(&n.unlock("alpha", true, 8)),
            [EventKind::UnlockNeeded]
        );
    }

    #[test]
    fn webhook_body() {
        let mut n = Notifier::new("vault");
        let e = n.job_ended(&key(), &failed(true), 1000).remove(0);
        let v = serde_json::to_value(&e).unwrap();
        for k in [
            "host", "client", "dataset", "state", "error", "time", "kind", "next", "event",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert_eq!(v["event"], "failed");
        assert_eq!(v["host"], "vault");
    }
}
