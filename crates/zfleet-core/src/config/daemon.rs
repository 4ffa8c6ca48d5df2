//! What `zfleet daemon` reads from the fleet file: its listener, timeouts and
//! retries (`[daemon]`), and where notifications go (`[notify.NAME]`).
//! Schedules live with the roles they time (`[hosts.NAME.server] schedule`,
//! `[hosts.NAME.backup] schedule` for a push client).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::SecretRef;
use crate::daemon::notify::EventKind;
use crate::daemon::Backoff;

pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the daemon looks at pools and clients between jobs.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// A server's backups when it names no schedule: nightly, after sanoid's
/// default daily snapshot time (23:59) has passed.
pub const DEFAULT_BACKUP_SCHEDULE: &str = "daily 02:00";

#[derive(Debug, Clone, Serialize)]
pub struct DaemonConfig {
    /// `None`: no listener (the default).
    pub listen: Option<SocketAddr>,
    /// A transfer that moves no byte for this long is aborted and retried.
    #[serde(serialize_with = "secs")]
    pub stall_timeout: Duration,
    pub backoff: Backoff,
    /// On SIGTERM: how long running jobs get to stop before the daemon exits anyway.
    #[serde(serialize_with = "secs")]
    pub shutdown_timeout: Duration,
    #[serde(serialize_with = "secs")]
    pub watch_interval: Duration,
    /// Bytes per second for each transfer the daemon runs; `None`: no limit.
    pub rate_limit: Option<u64>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            listen: None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            backoff: Backoff::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            watch_interval: DEFAULT_WATCH_INTERVAL,
            rate_limit: None,
        }
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A URL that may hold a secret (an ntfy topic, a healthchecks ping key):
/// written as is, or as a secret reference read when the daemon starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlRef {
    Plain(String),
    Secret(SecretRef),
}

impl fmt::Display for UrlRef {
    /// Never the secret: a reference shows as the reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlRef::Plain(u) => f.write_str(u),
            UrlRef::Secret(r) => write!(f, "{r}"),
        }
    }
}

impl Serialize for UrlRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotifyKind {
    /// POST the message to an ntfy topic URL.
    Ntfy { url: UrlRef },
    /// POST the event as JSON.
    Webhook { url: UrlRef },
    /// Ping `URL/start`, `URL` and `URL/fail` around each scheduled job: a
    /// dead man's switch that also fires when the daemon itself stops.
    Healthchecks { url: UrlRef },
    /// Run a program with the event's JSON on stdin.
    Command { argv: Vec<String> },
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifyTarget {
    pub name: String,
    #[serde(flatten)]
    pub kind: NotifyKind,
    /// Sent as `Authorization: Bearer …` (ntfy access tokens, webhooks).
    pub token: Option<SecretRef>,
    /// The events it wants; empty: all of them.
    pub events: Vec<EventKind>,
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
}

impl NotifyTarget {
    pub fn wants(&self, e: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&e)
    }
}

pub const NOTIFY_EVENTS: &[(&str, EventKind)] = &[
    ("failed", EventKind::Failed),
    ("recovered", EventKind::Recovered),
    ("late", EventKind::Late),
    ("pool_degraded", EventKind::PoolDegraded),
    ("pool_healthy", EventKind::PoolHealthy),
    ("unlock_needed", EventKind::UnlockNeeded),
];
