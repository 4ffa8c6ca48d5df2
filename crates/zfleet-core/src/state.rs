//! zfleet's memory on each host: an SQLite file with the history of runs and
//! the replication base of every job. Never holds secrets.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {source}")]
pub struct StateError {
    pub path: PathBuf,
    #[source]
    pub source: rusqlite::Error,
}

/// Shared by the threads of one run; SQLite serialises the writes anyway.
pub struct State {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// Schema versions in order; `user_version` says how many have been applied.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE runs (
    id        INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    server    TEXT,
    client    TEXT,
    source    TEXT,
    target    TEXT,
    started   INTEGER NOT NULL,
    finished  INTEGER,
    bytes     INTEGER NOT NULL DEFAULT 0,
    snapshots INTEGER NOT NULL DEFAULT 0,
    result    TEXT NOT NULL,
    error     TEXT
);
CREATE INDEX runs_by_job ON runs (kind, client, source, started);
CREATE TABLE bases (
    server   TEXT NOT NULL,
    client   TEXT NOT NULL,
    source   TEXT NOT NULL,
    target   TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    guid     TEXT NOT NULL,
    recorded INTEGER NOT NULL,
    PRIMARY KEY (server, client, source)
);
",
    r"
-- What kind of failure ended a run, as a stable word (`wrong-passphrase`,
-- `host-key-mismatch`): `error` is for people and bounded.
ALTER TABLE runs ADD COLUMN error_kind TEXT;
",
    DAEMON_JOBS,
    VERIFICATIONS,
    r"
-- A verification that passed with something to look at (a new pool not
-- scrubbed yet): kept apart from `error`, which only failures fill.
ALTER TABLE verifications ADD COLUMN warning TEXT;
",
];

/// `zfleet verify`: one row per job and level run, and where each job's
/// `--sample` rotation stands.
const VERIFICATIONS: &str = r"
CREATE TABLE verifications (
    id            INTEGER PRIMARY KEY,
    server        TEXT NOT NULL,
    client        TEXT NOT NULL,
    source        TEXT NOT NULL,
    level         TEXT NOT NULL,
    started       INTEGER NOT NULL,
    finished      INTEGER NOT NULL,
    ok            INTEGER NOT NULL,
    snapshot      TEXT,
    checked       INTEGER NOT NULL DEFAULT 0,
    differing     INTEGER NOT NULL DEFAULT 0,
    damaged       INTEGER NOT NULL DEFAULT 0,
    drill_seconds REAL,
    drill_bytes   INTEGER,
    error         TEXT
);
CREATE INDEX verifications_by_job ON verifications (client, source, level, started);
CREATE TABLE verify_rotation (
    server TEXT NOT NULL,
    client TEXT NOT NULL,
    source TEXT NOT NULL,
    runs   INTEGER NOT NULL,
    PRIMARY KEY (server, client, source)
);
";

/// One `zfleet verify` of one job at one level.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct VerificationRecord {
    pub server: String,
    pub client: String,
    pub source: String,
    /// `quick`, `content` or `drill`.
    pub level: String,
    pub started: i64,
    pub finished: i64,
    pub ok: bool,
    pub snapshot: Option<String>,
    /// Files whose contents were compared.
    pub checked: u64,
    pub differing: u64,
    pub damaged: u64,
    pub drill_seconds: Option<f64>,
    pub drill_bytes: Option<u64>,
    /// What failed, bounded (the first differences or the failed checks).
    pub error: Option<String>,
    /// The warnings of checks that passed (bounded).
    #[serde(default)]
    pub warning: Option<String>,
}

/// What `zfleet daemon` plans for each of its jobs (and, for backups, each
/// client), so that `zfleet status` on another machine can show the next
/// run and a pending retry. Kept apart from `runs`: runs are history, this
/// is the daemon's present.
const DAEMON_JOBS: &str = r"
CREATE TABLE daemon_jobs (
    job           TEXT NOT NULL,
    client        TEXT NOT NULL DEFAULT '',
    next_run      INTEGER,
    retry_attempt INTEGER,
    retry_at      INTEGER,
    running_since INTEGER,
    pid           INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    PRIMARY KEY (job, client)
);
";

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub server: Option<String>,
    pub client: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub started: i64,
    pub finished: Option<i64>,
    pub bytes: u64,
    pub snapshots: u64,
    pub result: String,
    pub error: Option<String>,
    pub error_kind: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BaseRecord {
    pub server: String,
    pub client: String,
    pub source: String,
    pub target: String,
    pub snapshot: String,
    pub guid: u64,
    pub recorded: i64,
}

impl State {
    /// Opens (creating if needed) `<dir>/state.db`.
    ///
    /// The database says which hosts were unlocked when and why an unlock
    /// failed, so only its owner may read it: the file (and SQLite's `-wal` and
    /// `-shm` next to it, which SQLite creates with the file's mode) is 0600,
    /// the directory 0700, also when an older zfleet made them readable.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join("state.db");
        let err = |source| StateError {
            path: path.clone(),
            source,
        };
        let io_err = |e: std::io::Error| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e)));
        private_dir(dir).map_err(io_err)?;
        private_file(&path).map_err(io_err)?;
        let conn = Connection::open(&path).map_err(err)?;
        // Several zfleet processes (a timer run, a manual run, status) may use
        // the file at once.
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        let s = Self {
            conn: Mutex::new(conn),
            path,
        };
        s.migrate()?;
        Ok(s)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&self) -> Result<(), StateError> {
        let mut conn = self.conn();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            let tx = conn.transaction().map_err(|e| StateError {
                path: self.path.clone(),
                source: e,
            })?;
            tx.execute_batch(sql).map_err(|e| StateError {
                path: self.path.clone(),
                source: e,
            })?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(|e| StateError {
                    path: self.path.clone(),
                    source: e,
                })?;
            tx.commit().map_err(|e| StateError {
                path: self.path.clone(),
                source: e,
            })?;
        }
        Ok(())
    }

    /// Records the start of a run; returns its id for [`finish_run`](Self::finish_run).
    pub fn start_run(&self, r: &RunRecord) -> Result<i64, StateError> {
        // One lock for both: another thread's insert in between would hand
        // this run that thread's id.
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (kind, server, client, source, target, started, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
            params![r.kind, r.server, r.client, r.source, r.target, r.started],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid())
    }

    pub fn finish_run(
        &self,
        id: i64,
        finished: i64,
        bytes: u64,
        snapshots: u64,
        result: &str,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.finish_run_failed(id, finished, bytes, snapshots, result, None, error)
    }

    /// [`finish_run`](Self::finish_run) with the kind of failure that ended
    /// the run. `error` must already be fit to keep: bounded, and free of
    /// secrets and of raw remote output.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_run_failed(
        &self,
        id: i64,
        finished: i64,
        bytes: u64,
        snapshots: u64,
        result: &str,
        error_kind: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.conn().execute(
                "UPDATE runs SET finished = ?2, bytes = ?3, snapshots = ?4, result = ?5, error = ?6, error_kind = ?7 WHERE id = ?1",
                params![id, finished, bytes as i64, snapshots as i64, result, error, error_kind],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, kind, server, client, source, target, started, finished, bytes, snapshots, result, error, error_kind FROM runs ORDER BY id DESC LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    server: r.get(2)?,
                    client: r.get(3)?,
                    source: r.get(4)?,
                    target: r.get(5)?,
                    started: r.get(6)?,
                    finished: r.get(7)?,
                    bytes: r.get::<_, i64>(8)?.max(0) as u64,
                    snapshots: r.get::<_, i64>(9)?.max(0) as u64,
                    result: r.get(10)?,
                    error: r.get(11)?,
                    error_kind: r.get(12)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Runs `f` on the database, for queries that belong to other modules
    /// (the status summary) rather than to this file.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        f(&self.conn()).map_err(|e| self.err(e))
    }

    pub fn record_base(&self, b: &BaseRecord) -> Result<(), StateError> {
        self.conn().execute(
                "INSERT INTO bases (server, client, source, target, snapshot, guid, recorded) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (server, client, source) DO UPDATE SET target = ?4, snapshot = ?5, guid = ?6, recorded = ?7",
                params![b.server, b.client, b.source, b.target, b.snapshot, b.guid.to_string(), b.recorded],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn base(
        &self,
        server: &str,
        client: &str,
        source: &str,
    ) -> Result<Option<BaseRecord>, StateError> {
        self.conn().query_row(
                "SELECT server, client, source, target, snapshot, guid, recorded FROM bases WHERE server = ?1 AND client = ?2 AND source = ?3",
                params![server, client, source],
                |r| {
                    Ok(BaseRecord {
                        server: r.get(0)?,
                        client: r.get(1)?,
                        source: r.get(2)?,
                        target: r.get(3)?,
                        snapshot: r.get(4)?,
                        guid: r.get::<_, String>(5)?.parse().unwrap_or(0),
                        recorded: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

impl State {
    pub fn record_verification(&self, v: &VerificationRecord) -> Result<(), StateError> {
        self.conn()
            .execute(
                "INSERT INTO verifications (server, client, source, level, started, finished, ok, snapshot, checked, differing, damaged, drill_seconds, drill_bytes, error, warning)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    v.server,
                    v.client,
                    v.source,
                    v.level,
                    v.started,
                    v.finished,
                    v.ok,
                    v.snapshot,
                    v.checked as i64,
                    v.differing as i64,
                    v.damaged as i64,
                    v.drill_seconds,
                    v.drill_bytes.map(|b| b as i64),
                    v.error,
                    v.warning
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Per job and level: the newest verification, and the newest that
    /// passed (for "last verified").
    pub fn latest_verifications(
        &self,
    ) -> Result<Vec<(VerificationRecord, Option<i64>)>, StateError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT server, client, source, level, started, finished, ok, snapshot, checked, differing, damaged, drill_seconds, drill_bytes, error, warning,
                        (SELECT MAX(o.finished) FROM verifications o WHERE o.server = v.server AND o.client = v.client AND o.source = v.source AND o.level = v.level AND o.ok = 1)
                 FROM verifications v
                 WHERE v.id = (SELECT MAX(id) FROM verifications w WHERE w.server = v.server AND w.client = v.client AND w.source = v.source AND w.level = v.level)
                 ORDER BY client, source, level",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    VerificationRecord {
                        server: r.get(0)?,
                        client: r.get(1)?,
                        source: r.get(2)?,
                        level: r.get(3)?,
                        started: r.get(4)?,
                        finished: r.get(5)?,
                        ok: r.get(6)?,
                        snapshot: r.get(7)?,
                        checked: r.get::<_, i64>(8)?.max(0) as u64,
                        differing: r.get::<_, i64>(9)?.max(0) as u64,
                        damaged: r.get::<_, i64>(10)?.max(0) as u64,
                        drill_seconds: r.get(11)?,
                        drill_bytes: r.get::<_, Option<i64>>(12)?.map(|b| b.max(0) as u64),
                        error: r.get(13)?,
                        warning: r.get(14)?,
                    },
                    r.get(15)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The job's `--sample` run number (0 for its first), counted on.
    pub fn next_rotation(
        &self,
        server: &str,
        client: &str,
        source: &str,
    ) -> Result<u64, StateError> {
        let conn = self.conn();
        let runs: i64 = conn
            .query_row(
                "INSERT INTO verify_rotation (server, client, source, runs) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (server, client, source) DO UPDATE SET runs = runs + 1
                 RETURNING runs",
                params![server, client, source],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok((runs - 1).max(0) as u64)
    }
}

/// `dir`, created 0700 if missing and made 0700 if others may enter it.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // Parents as anything else makes them; only the state directory is private.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    restrict(dir, 0o700)
}

/// `path` (and SQLite's files next to it), created 0600 if missing and made
/// 0600 if others may read them.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match restrict(Path::new(&p), 0o600) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Takes away group and other permissions from `path` if it has any. Not
/// being allowed to (someone else owns it) is worth a warning, not a failed
/// run: the state is no less private than it was.
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(
                "{} is readable by others (mode {:o}) and could not be made {mode:o}: {e}",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_bases_round_trip_in_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let id = s
            .start_run(&RunRecord {
                kind: "backup".into(),
                server: Some("vault".into()),
                client: Some("alpha".into()),
                source: Some("zroot/persistSave".into()),
                target: Some("zstorage/backups/alpha/zroot/persistSave".into()),
                started: 100,
                ..RunRecord::default()
            })
            .unwrap();
        s.finish_run(id, 160, 4096, 3, "ok", None).unwrap();
        let runs = s.recent_runs(10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (
                runs[0].bytes,
                runs[0].snapshots,
                runs[0].result.as_str(),
                runs[0].finished
            ),
            (4096, 3, "ok", Some(160))
        );

        let b = BaseRecord {
            server: "vault".into(),
            client: "alpha".into(),
            source: "zroot/persistSave".into(),
            target: "t".into(),
            snapshot: "s1".into(),
            guid: u64::MAX,
            recorded: 1,
        };
        s.record_base(&b).unwrap();
        s.record_base(&BaseRecord {
            snapshot: "s2".into(),
            ..b.clone()
        })
        .unwrap();
        let got = s
            .base("vault", "alpha", "zroot/persistSave")
            .unwrap()
            .unwrap();
        assert_eq!((got.snapshot.as_str(), got.guid), ("s2", u64::MAX));
        drop(s);
        // Reopening does not re-run migrations or lose data.
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.recent_runs(10).unwrap().len(), 1);
    }

    #[test]
    fn verifications_and_the_rotation_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let v = VerificationRecord {
            server: "vault".into(),
            client: "alpha".into(),
            source: "zroot/data".into(),
            level: "content".into(),
            started: 10,
            finished: 20,
            ok: true,
            checked: 5,
            ..VerificationRecord::default()
        };
        s.record_verification(&v).unwrap();
        s.record_verification(&VerificationRecord {
            started: 30,
            finished: 40,
            ok: false,
            damaged: 1,
            differing: 1,
            error: Some("/a: unreadable".into()),
            ..v.clone()
        })
        .unwrap();
        let latest = s.latest_verifications().unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(
            (latest[0].0.finished, latest[0].0.damaged, latest[0].1),
            (40, 1, Some(20))
        );
        s.record_verification(&VerificationRecord {
            level: "quick".into(),
            started: 50,
            finished: 60,
            warning: Some("pool zstorage has not been scrubbed yet".into()),
            ..v.clone()
        })
        .unwrap();
        let latest = s.latest_verifications().unwrap();
        let quick = latest.iter().find(|(v, _)| v.level == "quick").unwrap();
        assert_eq!(
            (
                quick.0.ok,
                quick.0.warning.as_deref(),
                quick.0.error.as_deref()
            ),
            (true, Some("pool zstorage has not been scrubbed yet"), None)
        );
        let runs: Vec<u64> = (0..3)
            .map(|_| s.next_rotation("vault", "alpha", "zroot/data").unwrap())
            .collect();
        assert_eq!(runs, [0, 1, 2]);
        assert_eq!(s.next_rotation("vault", "beta", "zroot/data").unwrap(), 0);
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn only_the_owner_may_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("var/lib/zfleet");
        let s = State::open(&dir).unwrap();
        let id = s
            .start_run(&RunRecord {
                kind: "unlock".into(),
                client: Some("alpha".into()),
                started: 1,
                ..RunRecord::default()
            })
            .unwrap();
        s.finish_run_failed(
            id,
            2,
            0,
            0,
            "failed",
            Some("host-key-mismatch"),
            Some("the initrd presented another key"),
        )
        .unwrap();
        let db = dir.join("state.db");
        assert_eq!((mode(&dir), mode(&db)), (0o700, 0o600));
        // WAL mode: SQLite gives its side files the database's mode.
        for side in ["state.db-wal", "state.db-shm"] {
            assert_eq!(mode(&dir.join(side)), 0o600, "{side}");
        }
        let run = &s.recent_runs(1).unwrap()[0];
        assert_eq!(run.error_kind.as_deref(), Some("host-key-mismatch"));
        drop(s);

        // What an older zfleet left readable is closed on the next open.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _s = State::open(&dir).unwrap();
        assert_eq!((mode(&dir), mode(&db)), (0o700, 0o600));
        // Directories above it are not zfleet's to change.
        assert_ne!(mode(&top.path().join("var")) & 0o077, 0);
    }
}
