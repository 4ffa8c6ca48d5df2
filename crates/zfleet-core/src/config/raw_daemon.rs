//! `[daemon]` and `[notify.NAME]` as written; their meaning is in
//! `resolve/daemon.rs`.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// `127.0.0.1:9811`: where `/metrics` and the status page are served.
    pub listen: Option<String>,
    pub stall_timeout: Option<String>,
    pub retries: Option<u32>,
    pub retry_delay: Option<String>,
    pub retry_max: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub watch_interval: Option<String>,
    pub rate_limit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub ntfy: Option<String>,
    pub webhook: Option<String>,
    pub healthchecks: Option<String>,
    pub command: Option<Vec<String>>,
    pub token: Option<String>,
    pub events: Option<Vec<String>>,
    pub timeout: Option<String>,
}
