//! The quick level: cheap facts about one backup, judged purely from
//! listings and records where they can be ([`newest`], [`base`],
//! [`common`]), and the two that need the server to act ([`send`] and the
//! pool's scrub).

use std::io::Read;

use serde::Serialize;

use crate::exec::{RunOptions, SpawnIo};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::state::BaseRecord;
use crate::zfs::{cmd, DatasetName, Listing, ObjectInfo, ObjectName, SnapshotName};

/// One verified fact, in words either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `guid`, `send`, `scrub`, `base`, `content`, `drill`.
    pub check: &'static str,
    pub ok: bool,
    /// Passed, but with something a person should look at (a new pool not
    /// scrubbed yet): logged and shown, never a failure or a notification.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
    pub detail: String,
}

impl Check {
    pub fn new(check: &'static str, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            check,
            ok,
            warning: false,
            detail: detail.into(),
        }
    }

    pub fn warn(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            warning: true,
            ..Self::new(check, true, detail)
        }
    }
}

fn short(o: &ObjectInfo) -> String {
    match &o.name {
        ObjectName::Snapshot(s) => s.name.clone(),
        ObjectName::Bookmark(b) => format!("#{}", b.name),
        ObjectName::Dataset(d) => d.to_string(),
    }
}

/// The backup's newest snapshot must be the source's snapshot of that name:
/// same guid. A same-named snapshot with another guid is another snapshot
/// (the source's was destroyed and taken again), and the backup does not
/// hold what the source calls by that name.
pub fn newest(
    source: &Listing,
    source_ds: &DatasetName,
    target: &Listing,
    target_ds: &DatasetName,
) -> Check {
    let Some(t) = target.snapshots_of(target_ds).last().copied() else {
        return Check::new("guid", false, format!("{target_ds} has no snapshot"));
    };
    let name = short(t);
    let snaps = source.snapshots_of(source_ds);
    let marks = source.bookmarks_of(source_ds);
    let same_name = snaps.iter().find(|s| short(s) == name);
    let same_guid = snaps.iter().chain(marks.iter()).find(|s| s.guid == t.guid);
    if let Some(s) = same_name.filter(|s| s.guid != t.guid) {
        return Check::new(
            "guid",
            false,
            format!(
                "the backup's newest snapshot @{name} has guid {}, but the source's @{name} has guid {}: they are different snapshots",
                t.guid, s.guid
            ),
        );
    }
    match same_guid {
        Some(s) => Check::new(
            "guid",
            true,
            format!("newest backup snapshot @{name} is the source's {} (guid {})", short(s), t.guid),
        ),
        None => Check::new(
            "guid",
            false,
            format!(
                "the backup's newest snapshot @{name} (guid {}) is neither a snapshot nor a bookmark of the source any more",
                t.guid
            ),
        ),
    }
}

/// The base recorded at the last backup must still exist on both sides (on
/// the source as a snapshot or a bookmark), with its guid.
pub fn base(
    recorded: Option<&BaseRecord>,
    source: &Listing,
    source_ds: &DatasetName,
    target: &Listing,
    target_ds: &DatasetName,
) -> Check {
    let Some(b) = recorded else {
        return Check::new(
            "base",
            false,
            "no base is recorded for this job in the state database (has a backup ever finished here?)",
        );
    };
    let on_target = target
        .snapshots_of(target_ds)
        .iter()
        .any(|s| s.guid == b.guid);
    let on_source = source
        .snapshots_of(source_ds)
        .iter()
        .chain(source.bookmarks_of(source_ds).iter())
        .find(|s| s.guid == b.guid)
        .map(|s| short(s));
    match (on_target, on_source) {
        (true, Some(s)) => Check::new(
            "base",
            true,
            format!("recorded base @{} is on the backup and on the source ({s})", b.snapshot),
        ),
        (false, _) => Check::new(
            "base",
            false,
            format!(
                "the recorded base @{} (guid {}) is gone from the backup {target_ds}",
                b.snapshot, b.guid
            ),
        ),
        (true, None) => Check::new(
            "base",
            false,
            format!(
                "the recorded base @{} (guid {}) is gone from the source {source_ds}: the next backup cannot be incremental",
                b.snapshot, b.guid
            ),
        ),
    }
}

/// The newest snapshot both sides hold (same guid, both snapshots, not a
/// bookmark): (the source's name, the backup's name).
pub fn common(
    source: &Listing,
    source_ds: &DatasetName,
    target: &Listing,
    target_ds: &DatasetName,
) -> Option<(String, String)> {
    let src = source.snapshots_of(source_ds);
    target.snapshots_of(target_ds).iter().rev().find_map(|t| {
        src.iter()
            .find(|s| s.guid == t.guid)
            .map(|s| (short(s), short(t)))
    })
}

/// The server can produce a send stream of `snap`: `zfs send -nvP` where the
/// dialect has it (a size, nothing read), else the whole stream read and
/// discarded (zfs-fuse), which also reads every block.
pub fn send(server: &Host, snap: &SnapshotName) -> Check {
    let caps = match server.caps() {
        Ok(c) => c.clone(),
        Err(e) => return Check::new("send", false, e.to_string()),
    };
    let s = cmd::Send {
        from: None,
        to: snap.clone(),
        intermediates: false,
        raw: true,
    };
    if caps.send_estimate {
        let argv = cmd::send_estimate(&caps, &s);
        return match server
            .endpoint()
            .run(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
        {
            Ok(o) => match cmd::parse_send_estimate(&o.stdout_text())
                .or_else(|| cmd::parse_send_estimate(&o.stderr_text()))
            {
                Some(n) => Check::new(
                    "send",
                    true,
                    format!(
                        "a full send of @{} would be {}",
                        snap.name,
                        crate::words::human_bytes(n)
                    ),
                ),
                None => Check::new("send", false, format!("`{argv}` gave no size")),
            },
            Err(e) => Check::new("send", false, e.to_string()),
        };
    }
    let argv = cmd::send(&caps, &s);
    let mut child = match server.endpoint().spawn(
        &argv,
        SpawnIo {
            stdin: false,
            stdout: true,
        },
    ) {
        Ok(c) => c,
        Err(e) => return Check::new("send", false, e.to_string()),
    };
    let stderr = child.stderr_reader();
    let n = child
        .take_stdout()
        .map(|mut out| {
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            while let Ok(k) = out.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            n
        })
        .unwrap_or(0);
    let status = child.wait_timeout(Some(QUERY_TIMEOUT));
    let err = stderr
        .and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    match status {
        Ok(Some(st)) if st.success() => Check::new(
            "send",
            true,
            format!(
                "a full send of @{} streamed {} (this dialect has no dry run)",
                snap.name,
                crate::words::human_bytes(n)
            ),
        ),
        Ok(Some(st)) => Check::new(
            "send",
            false,
            format!(
                "`{argv}` failed ({}): {err}",
                crate::exec::describe_status(st)
            ),
        ),
        _ => Check::new("send", false, format!("`{argv}` did not finish")),
    }
}

/// Whether `ds` on `host` is encrypted with its key not loaded (a raw
/// backup whose key the server does not hold). No such property (zfs-fuse)
/// or no answer: not locked.
pub fn locked(host: &Host, ds: &DatasetName) -> bool {
    let argv = cmd::zfs()
        .args(["get", "-H", "-o", "value", "encryption,keystatus"])
        .arg(ds.as_str());
    let Ok(o) = host.query(&argv) else {
        return false;
    };
    let text = o.stdout_text();
    let mut v = text.lines().map(str::trim);
    match (v.next(), v.next()) {
        (Some(enc), Some(key)) => enc != "off" && enc != "-" && key != "available",
        _ => false,
    }
}

/// The pool's last scrub and its errors, from `zpool status POOL`, and
/// the pool's age (its root dataset's `creation`) for a never-scrubbed one.
pub fn scrub(
    server: &Host,
    pool: &str,
    now: i64,
    tz: &jiff::tz::TimeZone,
    max_age_days: u32,
) -> Check {
    use super::scrub::Verdict;
    let argv = cmd::zpool().arg("status").arg(pool);
    match server.query(&argv) {
        Ok(o) => {
            let mut h = super::scrub::parse_status(&o.stdout_text(), tz);
            if h.scrub == super::scrub::Scrub::Never {
                let creation = cmd::zfs()
                    .args(["get", "-Hp", "-o", "value", "creation"])
                    .arg(pool);
                h.created = server
                    .query(&creation)
                    .ok()
                    .and_then(|o| o.stdout_text().trim().parse().ok());
            }
            match super::scrub::judge(&h, pool, now, max_age_days) {
                (Verdict::Pass, why) => Check::new("scrub", true, why),
                (Verdict::Warn, why) => Check::warn("scrub", why),
                (Verdict::Fail, why) => Check::new("scrub", false, why),
            }
        }
        Err(e) => Check::new("scrub", false, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(rows: &[(&str, &str, u64, u64)]) -> Listing {
        let text: String = rows
            .iter()
            .map(|(name, kind, guid, txg)| {
                format!("{name}\t{kind}\t{guid}\t{txg}\t1700000000\t0\t0\t-\n")
            })
            .collect();
        Listing::from_list(&text, &[]).unwrap()
    }

    fn ds(s: &str) -> DatasetName {
        DatasetName::parse(s).unwrap()
    }

    fn src() -> Listing {
        listing(&[
            ("zroot/data", "filesystem", 1, 1),
            ("zroot/data@a", "snapshot", 10, 2),
            ("zroot/data@b", "snapshot", 11, 3),
            ("zroot/data#old", "bookmark", 9, 1),
        ])
    }

    #[test]
    fn newest_backup_snapshot_by_guid() {
        let (s, t) = (ds("zroot/data"), ds("tank/b/data"));
        let good = listing(&[
            ("tank/b/data", "filesystem", 2, 1),
            ("tank/b/data@a", "snapshot", 10, 5),
            ("tank/b/data@b", "snapshot", 11, 6),
        ]);
        let c = newest(&src(), &s, &good, &t);
        assert!(c.ok, "{c:?}");
        assert_eq!(
            c.detail,
            "newest backup snapshot @b is the source's b (guid 11)"
        );
        let replaced = listing(&[
            ("tank/b/data", "filesystem", 2, 1),
            ("tank/b/data@b", "snapshot", 99, 6),
        ]);
        let c = newest(&src(), &s, &replaced, &t);
        assert!(!c.ok);
        assert_eq!(
            c.detail,
            "the backup's newest snapshot @b has guid 99, but the source's @b has guid 11: they are different snapshots"
        );
        let only_bookmark = listing(&[("tank/b/data@old", "snapshot", 9, 6)]);
        assert!(
            newest(&src(), &s, &only_bookmark, &t).ok,
            "a bookmark of it counts"
        );
        let gone = listing(&[("tank/b/data@z", "snapshot", 77, 6)]);
        assert!(!newest(&src(), &s, &gone, &t).ok);
        assert!(!newest(&src(), &s, &listing(&[]), &t).ok);
    }

    #[test]
    fn recorded_base_on_both_sides() {
        let (s, t) = (ds("zroot/data"), ds("tank/b/data"));
        let tgt = listing(&[("tank/b/data@a", "snapshot", 10, 5)]);
        let rec = |snapshot: &str, guid| BaseRecord {
            server: "vault".into(),
            client: "c".into(),
            source: "zroot/data".into(),
            target: "tank/b/data".into(),
            snapshot: snapshot.into(),
            guid,
            recorded: 0,
        };
        assert!(base(Some(&rec("a", 10)), &src(), &s, &tgt, &t).ok);
        let c = base(Some(&rec("x", 12)), &src(), &s, &tgt, &t);
        assert_eq!(
            (c.ok, c.detail.as_str()),
            (
                false,
                "the recorded base @x (guid 12) is gone from the backup tank/b/data"
            )
        );
        let tgt9 = listing(&[("tank/b/data@old", "snapshot", 9, 5)]);
        assert!(
            base(Some(&rec("old", 9)), &src(), &s, &tgt9, &t).ok,
            "a bookmark on the source is a base"
        );
        let tgt8 = listing(&[("tank/b/data@gone", "snapshot", 8, 5)]);
        assert!(!base(Some(&rec("gone", 8)), &src(), &s, &tgt8, &t).ok);
        assert!(!base(None, &src(), &s, &tgt, &t).ok);
    }

    #[test]
    fn common_snapshot_is_the_newest_shared_guid_and_never_a_bookmark() {
        let (s, t) = (ds("zroot/data"), ds("tank/b/data"));
        let tgt = listing(&[
            ("tank/b/data@old", "snapshot", 9, 4),
            ("tank/b/data@a", "snapshot", 10, 5),
            ("tank/b/data@b2", "snapshot", 12, 6),
        ]);
        assert_eq!(common(&src(), &s, &tgt, &t), Some(("a".into(), "a".into())));
        let only_bm = listing(&[("tank/b/data@old", "snapshot", 9, 4)]);
        assert_eq!(common(&src(), &s, &only_bm, &t), None);
    }
}
