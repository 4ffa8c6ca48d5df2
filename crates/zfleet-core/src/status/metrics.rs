//! The status as Prometheus metrics (OpenMetrics text, encoded by the
//! `prometheus-client` crate). Built fresh from a [`StatusReport`] on every
//! scrape: the counters come from the state database, so they survive
//! restarts of the daemon instead of starting again at zero.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::judge::BackupState;
use super::model::StatusReport;

/// The content type of [`encode_report`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Backup {
    server: String,
    client: String,
    dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupKind {
    server: String,
    client: String,
    dataset: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLevel {
    server: String,
    client: String,
    dataset: String,
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    server: String,
    client: String,
    dataset: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Snapshot {
    host: String,
    dataset: String,
    period: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Pool {
    host: String,
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Job {
    host: String,
    job: String,
}

type Ratio = Gauge<f64, AtomicU64>;

/// Every metric of the report, as OpenMetrics text.
pub fn encode_report(r: &StatusReport) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    let g = || Family::<Backup, Gauge>::default();
    let last_success = g();
    let last_attempt = g();
    let lag_seconds = g();
    let lag_snapshots = g();
    let next_run = g();
    let remaining = g();
    let sent = g();
    let bytes = Family::<Backup, Counter>::default();
    let failures = Family::<BackupKind, Counter>::default();
    let state = Family::<StateLabel, Gauge>::default();
    let snap_newest = Family::<Snapshot, Gauge>::default();
    let pool_health = Family::<Pool, Gauge>::default();
    let pool_capacity = Family::<Pool, Ratio>::default();
    let job_running = Family::<Job, Gauge>::default();
    let verified = Family::<BackupLevel, Gauge>::default();
    let damaged = g();
    let drill = Family::<Backup, Ratio>::default();

    for row in r.rows() {
        let l = Backup {
            server: row.server.clone(),
            client: row.client.clone(),
            dataset: row.dataset.clone(),
        };
        if let Some(t) = row.last_success {
            last_success.get_or_create(&l).set(t);
        }
        if let Some(t) = row.last_attempt {
            last_attempt.get_or_create(&l).set(t);
        }
        if let Some(s) = row.lag_seconds {
            lag_seconds.get_or_create(&l).set(s);
        }
        if let Some(n) = row.lag_snapshots {
            lag_snapshots
                .get_or_create(&l)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some(t) = row.next_run {
            next_run.get_or_create(&l).set(t);
        }
        if let Some(t) = row.transfer {
            sent.get_or_create(&l)
                .set(i64::try_from(t.bytes).unwrap_or(i64::MAX));
        }
        if let Some(rem) = row.transfer.and_then(|t| t.remaining()) {
            remaining
                .get_or_create(&l)
                .set(i64::try_from(rem).unwrap_or(i64::MAX));
        }
        if let Some(v) = &row.verify {
            if let (Some(t), Some(level)) = (v.last_verified, &v.last_verified_level) {
                verified
                    .get_or_create(&BackupLevel {
                        server: row.server.clone(),
                        client: row.client.clone(),
                        dataset: row.dataset.clone(),
                        level: level.clone(),
                    })
                    .set(t);
            }
            damaged
                .get_or_create(&l)
                .set(i64::try_from(v.damaged).unwrap_or(i64::MAX));
            if let Some(s) = v.drill_seconds {
                drill.get_or_create(&l).set(s);
            }
        }
        bytes.get_or_create(&l).inc_by(row.bytes_total);
        for k in &row.failures {
            failures
                .get_or_create(&BackupKind {
                    server: row.server.clone(),
                    client: row.client.clone(),
                    dataset: row.dataset.clone(),
                    kind: k.kind.clone(),
                })
                .inc_by(k.count);
        }
        for s in [
            BackupState::Ok,
            BackupState::Never,
            BackupState::Paused,
            BackupState::Failing,
            BackupState::Late,
        ] {
            state
                .get_or_create(&StateLabel {
                    server: row.server.clone(),
                    client: row.client.clone(),
                    dataset: row.dataset.clone(),
                    state: s.as_str().to_string(),
                })
                .set(i64::from(row.state == s));
        }
    }
    for h in &r.hosts {
        for s in &h.snapshots {
            if let Some(n) = &s.newest {
                snap_newest
                    .get_or_create(&Snapshot {
                        host: h.host.clone(),
                        dataset: s.dataset.clone(),
                        period: s.period.as_str().to_string(),
                    })
                    .set(n.time);
            }
        }
        for p in &h.pools {
            let l = Pool {
                host: h.host.clone(),
                pool: p.name.clone(),
            };
            pool_health
                .get_or_create(&l)
                .set(i64::from(p.health_code()));
            if let Some(c) = p.capacity {
                pool_capacity.get_or_create(&l).set(f64::from(c) / 100.0);
            }
        }
        for j in &h.jobs {
            job_running
                .get_or_create(&Job {
                    host: h.host.clone(),
                    job: j.job.clone(),
                })
                .set(i64::from(j.running));
        }
    }

    reg.register(
        "zfleet_verify_last_success_timestamp_seconds",
        "When `zfleet verify` last passed for the backup, by the level it passed at",
        verified,
    );
    reg.register(
        "zfleet_verify_damaged_files",
        "Files the newest content check or drill of the backup could not read",
        damaged,
    );
    reg.register(
        "zfleet_restore_drill_seconds",
        "Wall time of the newest restore drill of the backup (the recovery time)",
        drill,
    );
    reg.register(
        "zfleet_backup_last_success_timestamp_seconds",
        "When the last successful backup run of the dataset finished",
        last_success,
    );
    reg.register(
        "zfleet_backup_last_attempt_timestamp_seconds",
        "When the last backup run of the dataset started, successful or not",
        last_attempt,
    );
    reg.register(
        "zfleet_backup_lag_seconds",
        "How far the server's newest snapshot is behind the client's (creation times)",
        lag_seconds,
    );
    reg.register(
        "zfleet_backup_lag_snapshots",
        "Snapshots on the client newer than the server's newest",
        lag_snapshots,
    );
    reg.register(
        "zfleet_backup_next_run_timestamp_seconds",
        "When the daemon runs the backup next (a scheduled run or a retry)",
        next_run,
    );
    reg.register(
        "zfleet_backup_bytes",
        "Bytes moved by the backup runs recorded in the state database",
        bytes,
    );
    reg.register(
        "zfleet_backup_failures",
        "Failed backup runs, by the engine's failure kind",
        failures,
    );
    reg.register(
        "zfleet_backup_state",
        "1 for the dataset's current state (ok, never, paused, failing, late), 0 for the others",
        state,
    );
    reg.register(
        "zfleet_transfer_bytes",
        "Bytes of the running transfer sent so far",
        sent,
    );
    reg.register(
        "zfleet_transfer_bytes_remaining",
        "Bytes of the running transfer still to send, by the sender's estimate (where the sender gives one)",
        remaining,
    );
    reg.register(
        "zfleet_snapshot_newest_timestamp_seconds",
        "Creation time of the newest policy snapshot of each period",
        snap_newest,
    );
    reg.register(
        "zfleet_pool_health",
        "0 ONLINE, 1 DEGRADED, 2 FAULTED, UNAVAIL or worse",
        pool_health,
    );
    reg.register(
        "zfleet_pool_capacity_ratio",
        "Share of the pool in use, 0 to 1",
        pool_capacity,
    );
    reg.register(
        "zfleet_job_running",
        "1 while the daemon runs the job",
        job_running,
    );
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::model::*;
    use super::*;

    #[test]
    fn every_metric_with_its_labels() {
        let mut r = super::super::page::tests::sample();
        r.servers[0].rows[0].transfer = Some(TransferNote {
            bytes: 10,
            total: Some(100),
        });
        r.servers[0].rows[1].failures = vec![KindCount {
            kind: "unreachable".into(),
            count: 2,
        }];
        r.hosts[0].snapshots = vec![NewestSnapshot {
            dataset: "zroot/persistSave".into(),
            period: crate::config::Period::Hourly,
            newest: Some(SnapAt {
                name: "autosnap_x_hourly".into(),
                time: 1_779_999_000,
            }),
        }];
        r.servers[0].rows[1].verify = Some(VerifyNote {
            last_verified: Some(1_779_990_000),
            last_verified_level: Some("content".into()),
            failing: Some("content: /etc/passwd: unreadable on the copy".into()),
            failing_level: Some("content".into()),
            damaged: 1,
            drill_seconds: Some(42.5),
            drill_at: Some(1_779_000_000),
            ..VerifyNote::default()
        });
        let text = encode_report(&r).unwrap();
        for line in [
            r#"zfleet_verify_last_success_timestamp_seconds{server="vault",client="bravo",dataset="zroot/persistSave",level="content"} 1779990000"#,
            r#"zfleet_verify_damaged_files{server="vault",client="bravo",dataset="zroot/persistSave"} 1"#,
            r#"zfleet_restore_drill_seconds{server="vault",client="bravo",dataset="zroot/persistSave"} 42.5"#,
            r#"zfleet_backup_last_success_timestamp_seconds{server="vault",client="alpha",dataset="zroot/persistSave"} 1779992800"#,
            r#"zfleet_backup_lag_snapshots{server="vault",client="alpha",dataset="zroot/persistSave"} 3"#,
            r#"zfleet_backup_bytes_total{server="vault",client="alpha",dataset="zroot/persistSave"} 41943040"#,
            r#"zfleet_backup_failures_total{server="vault",client="bravo",dataset="zroot/persistSave",kind="unreachable"} 2"#,
            r#"zfleet_backup_state{server="vault",client="bravo",dataset="zroot/persistSave",state="failing"} 1"#,
            r#"zfleet_backup_state{server="vault",client="bravo",dataset="zroot/persistSave",state="ok"} 0"#,
            r#"zfleet_transfer_bytes_remaining{server="vault",client="alpha",dataset="zroot/persistSave"} 90"#,
            r#"zfleet_transfer_bytes{server="vault",client="alpha",dataset="zroot/persistSave"} 10"#,
            r#"zfleet_snapshot_newest_timestamp_seconds{host="vault",dataset="zroot/persistSave",period="hourly"} 1779999000"#,
            r#"zfleet_pool_health{host="vault",pool="zstorage"} 1"#,
            r#"zfleet_pool_capacity_ratio{host="vault",pool="zstorage"} 0.41"#,
            r#"zfleet_job_running{host="vault",job="backup"} 0"#,
            "# TYPE zfleet_backup_bytes counter",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
    }
}
