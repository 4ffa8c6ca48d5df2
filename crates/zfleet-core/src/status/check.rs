//! `zfleet check-backups`: the status judgement as a Nagios check. Late is
//! CRITICAL, failing and never backed up are WARNING, ok and paused are OK;
//! a server whose state could not be read makes the answer UNKNOWN, because
//! nothing can then be said about its backups.

use serde::Serialize;

use super::judge::BackupState;
use super::model::StatusReport;
use crate::snapshot::monitor::{CheckResult, Level};

#[derive(Debug, Clone, Serialize)]
pub struct BackupCheck {
    pub server: String,
    pub client: String,
    pub dataset: String,
    pub state: BackupState,
    pub last_success: Option<i64>,
    pub level: Level,
}

pub fn check_backups(r: &StatusReport) -> CheckResult<BackupCheck> {
    let mut checks = Vec::new();
    let mut level = Level::Ok;
    let mut bad: Vec<String> = Vec::new();
    for row in r.rows() {
        let l = row.state.level();
        level = level.max(l);
        if l != Level::Ok {
            let since = row.last_success.map_or_else(
                || "never succeeded".to_string(),
                |t| format!("last success {}", super::page::ago(r.generated, t)),
            );
            bad.push(format!(
                "{} {}:{} {} ({since})",
                row.server,
                row.client,
                row.dataset,
                row.state.describe()
            ));
        }
        checks.push(BackupCheck {
            server: row.server.clone(),
            client: row.client.clone(),
            dataset: row.dataset.clone(),
            state: row.state,
            last_success: row.last_success,
            level: l,
        });
    }
    let servers: Vec<&str> = r.servers.iter().map(|s| s.server.as_str()).collect();
    let unread: Vec<&str> = r
        .errors
        .iter()
        .filter(|e| servers.contains(&e.host.as_str()))
        .map(|e| e.host.as_str())
        .collect();
    if !unread.is_empty() {
        level = Level::Unknown;
    }
    let word = match level {
        Level::Ok => "OK",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
        Level::Unknown => "UNKNOWN",
    };
    let mut message = if bad.is_empty() {
        format!("{word}: {} backups ok", checks.len())
    } else {
        format!("{word}: {}", bad.join("; "))
    };
    if !unread.is_empty() {
        message.push_str(&format!("; cannot read the state of {}", unread.join(", ")));
    }
    CheckResult {
        level,
        message,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_message() {
        let mut r = super::super::page::tests::sample();
        r.errors.clear();
        let c = check_backups(&r);
        assert_eq!(c.level, Level::Warning);
        assert_eq!(
            c.message,
            "WARNING: vault bravo:zroot/persistSave failing (last success 1d 1h ago); vault laptop:zroot/persistSave never backed up (never succeeded)"
        );
        r.servers[0].rows[1].state = BackupState::Late;
        assert_eq!(check_backups(&r).level, Level::Critical);
        r.servers[0].rows.retain(|row| row.state == BackupState::Ok);
        let ok = check_backups(&r);
        assert_eq!(
            (ok.level, ok.message.as_str()),
            (Level::Ok, "OK: 1 backups ok")
        );
        r.errors.push(super::super::model::HostError {
            host: "vault".into(),
            error: "unreachable".into(),
        });
        let u = check_backups(&r);
        assert_eq!(u.level, Level::Unknown);
        assert!(
            u.message.ends_with("cannot read the state of vault"),
            "{}",
            u.message
        );
    }
}
