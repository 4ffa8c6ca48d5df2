//! Where every backup of the fleet stands, as one value: `zfleet status`
//! prints it (a table, or `--json`), the daemon serves it as a page and as
//! metrics. Its JSON is a documented interface (docs/monitoring.md): fields
//! are added, never renamed.

use serde::{Deserialize, Serialize};

use super::judge::BackupState;
use crate::config::Period;

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Unix seconds when it was put together.
    pub generated: i64,
    /// One entry per backup server, in fleet-file order.
    pub servers: Vec<ServerStatus>,
    /// Pools and policy snapshots of every host looked at.
    pub hosts: Vec<HostStatus>,
    /// Hosts that could not be read: the report is incomplete there.
    pub errors: Vec<HostError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub server: String,
    /// `daily 02:00`, …, `manual`.
    pub schedule: String,
    pub rows: Vec<BackupRow>,
}

/// One server × client × dataset.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRow {
    pub server: String,
    pub client: String,
    /// The client's dataset.
    pub dataset: String,
    /// Where the server keeps it.
    pub target: String,
    /// The client sends it (push) instead of the server pulling it.
    pub push: bool,
    pub state: BackupState,
    /// The newest snapshot on the client, when it could be listed.
    pub client_newest: Option<SnapAt>,
    /// The newest snapshot the server holds.
    pub server_newest: Option<SnapAt>,
    /// How far the server is behind the client: the time between the two
    /// newest snapshots' creation.
    pub lag_seconds: Option<i64>,
    /// Snapshots on the client newer than the server's newest.
    pub lag_snapshots: Option<u64>,
    pub last_success: Option<i64>,
    pub last_attempt: Option<i64>,
    pub last_failure: Option<FailureNote>,
    /// Bytes the last finished run moved.
    pub bytes_last_run: Option<u64>,
    /// Bytes of every recorded run.
    pub bytes_total: u64,
    /// Failed runs recorded, by failure kind.
    pub failures: Vec<KindCount>,
    pub next_run: Option<i64>,
    /// A retry the daemon has scheduled after a failure.
    pub retry: Option<RetryNote>,
    /// A transfer of this dataset is running now (daemon only).
    pub transfer: Option<TransferNote>,
    /// Seconds without a success after which it is late.
    pub late_after: i64,
    /// What `zfleet verify` last found, when it ran for this backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyNote>,
}

/// The verification side of a backup row.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyNote {
    /// When a verification (any level) last passed, and its level.
    pub last_verified: Option<i64>,
    pub last_verified_level: Option<String>,
    /// The newest verification at some level failed: which, and why.
    pub failing: Option<String>,
    pub failing_level: Option<String>,
    /// The newest verification passed with a warning: which level, and what.
    pub warning: Option<String>,
    pub warning_level: Option<String>,
    /// Files the newest content or drill check found unreadable.
    pub damaged: u64,
    /// The newest drill's restore time, and when it ran.
    pub drill_seconds: Option<f64>,
    pub drill_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapAt {
    pub name: String,
    /// Creation, unix seconds.
    pub time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureNote {
    pub time: i64,
    /// The engine's failure kind (`unreachable`, `auth`, `no_space`,
    /// `refused`, …), never read from the message.
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCount {
    pub kind: String,
    pub count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryNote {
    /// Retry number `attempt` of the streak.
    pub attempt: u32,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferNote {
    pub bytes: u64,
    /// The sender's estimate of the whole stream.
    pub total: Option<u64>,
}

impl TransferNote {
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.bytes))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub pools: Vec<PoolStatus>,
    /// The newest snapshot of each period of each policy dataset.
    pub snapshots: Vec<NewestSnapshot>,
    /// The daemon's jobs on this host, when it reported them.
    pub jobs: Vec<JobStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub name: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, …
    pub health: String,
    /// Percent used.
    pub capacity: Option<u32>,
}

impl PoolStatus {
    /// 0 healthy, 1 degraded (still serving, redundancy lost), 2 anything
    /// worse: the value of `zfleet_pool_health`.
    pub fn health_code(&self) -> u8 {
        match self.health.as_str() {
            "ONLINE" => 0,
            "DEGRADED" => 1,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewestSnapshot {
    pub dataset: String,
    pub period: Period,
    pub newest: Option<SnapAt>,
}

/// One scheduled job of a host's daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// `snapshots`, `backup` or `push`.
    pub job: String,
    pub running: bool,
    pub next_run: Option<i64>,
    pub retry: Option<RetryNote>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostError {
    pub host: String,
    pub error: String,
}

impl StatusReport {
    pub fn rows(&self) -> impl Iterator<Item = &BackupRow> {
        self.servers.iter().flat_map(|s| &s.rows)
    }

    /// The worst state of any row, for a one-word summary.
    pub fn worst(&self) -> Option<BackupState> {
        self.rows().map(|r| r.state).max()
    }
}
