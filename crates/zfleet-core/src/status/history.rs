//! A host's state database, summarised for status: per backup job its last
//! success, last attempt, last failure (with the engine's failure kind),
//! bytes and failure counts; and what its daemon plans next. `zfleet state
//! --json` prints this on the host, `zfleet status` reads it over ssh, and
//! the daemon reads its own directly.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::model::{FailureNote, KindCount, RetryNote};
use crate::state::{State, StateError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDump {
    pub host: String,
    pub generated: i64,
    pub jobs: Vec<JobHistory>,
    pub daemon: Vec<DaemonJob>,
    /// `zfleet verify` per job and level (absent from an older zfleet's dump).
    #[serde(default)]
    pub verifications: Vec<VerifyHistory>,
}

/// The newest `zfleet verify` of one job at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyHistory {
    pub server: String,
    pub client: String,
    pub source: String,
    pub level: String,
    pub last_run: i64,
    pub ok: bool,
    pub last_success: Option<i64>,
    pub damaged: u64,
    pub differing: u64,
    pub drill_seconds: Option<f64>,
    pub error: Option<String>,
    /// Absent from an older zfleet's dump.
    #[serde(default)]
    pub warning: Option<String>,
}

/// One replication job's history (`backup` on a server, `push` on a client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHistory {
    pub kind: String,
    pub server: String,
    pub client: String,
    pub source: String,
    pub target: String,
    pub last_success: Option<i64>,
    pub last_attempt: Option<i64>,
    /// The result word of the newest finished run (`ok`, `failed`, …).
    pub last_result: Option<String>,
    pub last_bytes: Option<u64>,
    pub last_failure: Option<FailureNote>,
    pub bytes_total: u64,
    pub failures: Vec<KindCount>,
}

impl JobHistory {
    pub fn last_failed(&self) -> bool {
        self.last_result
            .as_deref()
            .is_some_and(|r| FAILED.contains(&r))
    }
}

/// A daemon's plan for one job (and client, for backups: `""` for the job
/// as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonJob {
    pub job: String,
    pub client: String,
    pub next_run: Option<i64>,
    pub retry: Option<RetryNote>,
    pub running_since: Option<i64>,
    pub pid: u32,
    pub updated: i64,
}

const FAILED: &[&str] = &["failed", "refused", "degraded"];

/// Everything `zfleet status` needs from `state`.
pub fn dump(state: &State, host: &str, now: i64) -> Result<StateDump, StateError> {
    let mut d = state.with_conn(|c| {
        Ok(StateDump {
            host: host.to_string(),
            generated: now,
            jobs: jobs(c)?,
            daemon: daemon_jobs(c)?,
            verifications: Vec::new(),
        })
    })?;
    d.verifications = state
        .latest_verifications()?
        .into_iter()
        .map(|(v, last_success)| VerifyHistory {
            server: v.server,
            client: v.client,
            source: v.source,
            level: v.level,
            last_run: v.finished,
            ok: v.ok,
            last_success,
            damaged: v.damaged,
            differing: v.differing,
            drill_seconds: v.drill_seconds,
            error: v.error,
            warning: v.warning,
        })
        .collect();
    Ok(d)
}

fn has_error_kind(c: &Connection) -> rusqlite::Result<bool> {
    let mut st = c.prepare("SELECT name FROM pragma_table_info('runs')")?;
    let names = st.query_map([], |r| r.get::<_, String>(0))?;
    for n in names {
        if n? == "error_kind" {
            return Ok(true);
        }
    }
    Ok(false)
}

fn jobs(c: &Connection) -> rusqlite::Result<Vec<JobHistory>> {
    let kind_col = if has_error_kind(c)? {
        "error_kind"
    } else {
        "NULL"
    };
    let mut out = Vec::new();
    let mut st = c.prepare(
        "SELECT kind, server, client, source, MAX(target),
                MAX(CASE WHEN result IN ('ok', 'up_to_date') THEN finished END),
                MAX(started), COALESCE(SUM(bytes), 0)
         FROM runs
         WHERE kind IN ('backup', 'push') AND server IS NOT NULL AND client IS NOT NULL AND source IS NOT NULL
         GROUP BY kind, server, client, source
         ORDER BY server, client, source",
    )?;
    let rows = st.query_map([], |r| {
        Ok(JobHistory {
            kind: r.get(0)?,
            server: r.get(1)?,
            client: r.get(2)?,
            source: r.get(3)?,
            target: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            last_success: r.get(5)?,
            last_attempt: r.get(6)?,
            last_result: None,
            last_bytes: None,
            last_failure: None,
            bytes_total: r.get::<_, i64>(7)?.max(0) as u64,
            failures: Vec::new(),
        })
    })?;
    for j in rows {
        out.push(j?);
    }
    let last_sql = format!(
        "SELECT result, bytes, started, error, {kind_col} FROM runs
         WHERE kind = ?1 AND server = ?2 AND client = ?3 AND source = ?4 AND result != 'running'
         ORDER BY id DESC LIMIT 1"
    );
    let failure_sql = format!(
        "SELECT started, error, {kind_col}, result FROM runs
         WHERE kind = ?1 AND server = ?2 AND client = ?3 AND source = ?4 AND result IN ('failed', 'refused', 'degraded')
         ORDER BY id DESC LIMIT 1"
    );
    let counts_sql = format!(
        "SELECT CASE WHEN result IN ('refused', 'degraded') THEN result ELSE COALESCE({kind_col}, 'unknown') END AS k, COUNT(*)
         FROM runs
         WHERE kind = ?1 AND server = ?2 AND client = ?3 AND source = ?4 AND result IN ('failed', 'refused', 'degraded')
         GROUP BY k ORDER BY k"
    );
    for j in &mut out {
        let key = params![j.kind, j.server, j.client, j.source];
        if let Some((result, bytes)) = c
            .query_row(&last_sql, key, |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?
        {
            j.last_result = Some(result);
            j.last_bytes = Some(bytes.max(0) as u64);
        }
        j.last_failure = c
            .query_row(&failure_sql, key, |r| {
                let result: String = r.get(3)?;
                let kind: Option<String> = r.get(2)?;
                Ok(FailureNote {
                    time: r.get(0)?,
                    kind: if result == "refused" || result == "degraded" {
                        result
                    } else {
                        kind.unwrap_or_else(|| "unknown".to_string())
                    },
                    message: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                })
            })
            .optional()?;
        let mut st = c.prepare(&counts_sql)?;
        let counts = st.query_map(key, |r| {
            Ok(KindCount {
                kind: r.get(0)?,
                count: r.get::<_, i64>(1)?.max(0) as u64,
            })
        })?;
        for k in counts {
            j.failures.push(k?);
        }
    }
    Ok(out)
}

fn daemon_jobs(c: &Connection) -> rusqlite::Result<Vec<DaemonJob>> {
    let mut st = c.prepare(
        "SELECT job, client, next_run, retry_attempt, retry_at, running_since, pid, updated
         FROM daemon_jobs ORDER BY job, client",
    )?;
    let rows = st.query_map([], |r| {
        let attempt: Option<i64> = r.get(3)?;
        let at: Option<i64> = r.get(4)?;
        Ok(DaemonJob {
            job: r.get(0)?,
            client: r.get(1)?,
            next_run: r.get(2)?,
            retry: match (attempt, at) {
                (Some(a), Some(at)) => Some(RetryNote {
                    attempt: u32::try_from(a).unwrap_or(0),
                    at,
                }),
                _ => None,
            },
            running_since: r.get(5)?,
            pid: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            updated: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// Replaces the daemon's plan with `jobs` (what it plans now, nothing else).
pub fn record_daemon_jobs(state: &State, jobs: &[DaemonJob]) -> Result<(), StateError> {
    state.with_conn(|c| {
        c.execute_batch("BEGIN")?;
        let r = (|| {
            c.execute("DELETE FROM daemon_jobs", [])?;
            for j in jobs {
                c.execute(
                    "INSERT INTO daemon_jobs (job, client, next_run, retry_attempt, retry_at, running_since, pid, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        j.job,
                        j.client,
                        j.next_run,
                        j.retry.map(|r| i64::from(r.attempt)),
                        j.retry.map(|r| r.at),
                        j.running_since,
                        i64::from(j.pid),
                        j.updated
                    ],
                )?;
            }
            Ok(())
        })();
        c.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunRecord;

    fn run(s: &State, client: &str, started: i64, result: &str, bytes: u64, error: Option<&str>) {
        let id = s
            .start_run(&RunRecord {
                kind: "backup".into(),
                server: Some("vault".into()),
                client: Some(client.into()),
                source: Some("zroot/persistSave".into()),
                target: Some(format!("zstorage/backups/{client}/zroot/persistSave")),
                started,
                ..RunRecord::default()
            })
            .unwrap();
        if result != "running" {
            s.finish_run(id, started + 10, bytes, 1, result, error)
                .unwrap();
        }
    }

    #[test]
    fn summary_per_job_from_a_real_database() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        run(&s, "alpha", 100, "ok", 4096, None);
        run(&s, "alpha", 200, "up_to_date", 0, None);
        run(&s, "bravo", 100, "ok", 1000, None);
        run(&s, "bravo", 200, "failed", 10, Some("bravo did not answer"));
        run(&s, "bravo", 300, "refused", 0, Some("diverged"));
        run(&s, "bravo", 400, "running", 0, None);
        let d = dump(&s, "vault", 500).unwrap();
        assert_eq!(d.jobs.len(), 2);
        let a = &d.jobs[0];
        assert_eq!(
            (
                a.client.as_str(),
                a.last_success,
                a.last_attempt,
                a.bytes_total
            ),
            ("alpha", Some(210), Some(200), 4096)
        );
        assert_eq!(a.last_result.as_deref(), Some("up_to_date"));
        assert!(!a.last_failed() && a.last_failure.is_none() && a.failures.is_empty());
        let b = &d.jobs[1];
        assert_eq!((b.last_success, b.last_attempt), (Some(110), Some(400)));
        // The running one is not finished; the newest finished was refused.
        assert_eq!(b.last_result.as_deref(), Some("refused"));
        assert!(b.last_failed());
        assert_eq!(
            b.last_failure,
            Some(FailureNote {
                time: 300,
                kind: "refused".into(),
                message: "diverged".into()
            })
        );
        let kinds: Vec<(&str, u64)> = b
            .failures
            .iter()
            .map(|k| (k.kind.as_str(), k.count))
            .collect();
        assert_eq!(kinds, [("refused", 1), ("unknown", 1)]);
    }

    #[test]
    fn daemon_plan_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let j = DaemonJob {
            job: "backup".into(),
            client: "bravo".into(),
            next_run: Some(1000),
            retry: Some(RetryNote {
                attempt: 2,
                at: 900,
            }),
            running_since: None,
            pid: 42,
            updated: 800,
        };
        record_daemon_jobs(&s, std::slice::from_ref(&j)).unwrap();
        assert_eq!(
            dump(&s, "vault", 1).unwrap().daemon,
            std::slice::from_ref(&j)
        );
        let k = DaemonJob {
            client: String::new(),
            retry: None,
            ..j
        };
        record_daemon_jobs(&s, std::slice::from_ref(&k)).unwrap();
        assert_eq!(dump(&s, "vault", 1).unwrap().daemon, [k]);
    }
}
