//! Argument vectors for `zfs` and `zpool`. Builders take typed names, so a name
//! that reached here was validated; nothing is concatenated into a shell string.

use super::caps::Caps;
use super::name::{BookmarkName, DatasetName, SnapshotName};
use super::parse::LIST_PROPERTIES;
use crate::exec::Argv;

pub fn zfs() -> Argv {
    Argv::new("zfs")
}

pub fn zpool() -> Argv {
    Argv::new("zpool")
}

/// One command that observes a whole tree: every filesystem, volume, snapshot
/// (and bookmark where they exist) below `root`, with exact numbers, plus
/// `extra` properties (user properties, or native ones the caller checked the
/// dialect has).
pub fn observe(caps: &Caps, root: &DatasetName, extra: &[String]) -> Argv {
    observe_roots(caps, &[root], extra)
}

/// [`observe`] over several trees in one process (`zfs list`/`zfs get` take
/// more than one name): however many datasets and pools are asked for.
pub fn observe_roots(caps: &Caps, roots: &[&DatasetName], extra: &[String]) -> Argv {
    observe_depth(caps, roots, extra, "-r")
}

/// Like [`observe_roots`], but of the datasets themselves with their
/// snapshots and bookmarks (`-d 1`; direct children may be listed too, and
/// are ignored). What replication needs, and all that `zfleet serve` lets a
/// backup key list.
pub fn observe_own(caps: &Caps, roots: &[&DatasetName], extra: &[String]) -> Argv {
    observe_depth(caps, roots, extra, "-d")
}

fn observe_depth(caps: &Caps, roots: &[&DatasetName], extra: &[String], depth: &str) -> Argv {
    let depth: &[&str] = if depth == "-r" { &["-r"] } else { &["-d", "1"] };
    let mut props: Vec<&str> = LIST_PROPERTIES.to_vec();
    props.extend(extra.iter().map(String::as_str));
    let roots = roots.iter().map(|r| r.as_str());
    if caps.list_parsable {
        let types = if caps.bookmarks {
            "filesystem,volume,snapshot,bookmark"
        } else {
            "filesystem,volume,snapshot"
        };
        zfs()
            .args(["list", "-H", "-p"])
            .args(depth.iter().copied())
            .args(["-t", types, "-o"])
            .arg(props.join(","))
            .args(roots)
    } else {
        zfs()
            .args(["get", "-H", "-p"])
            .args(depth.iter().copied())
            .args(["-o", "name,property,value"])
            .arg(props[1..].join(","))
            .args(roots)
    }
}

/// `zfs snapshot [-r] NAME…`. More than one name needs `caps.snapshot_many`
/// (all in one pool, each of another dataset); the call is atomic.
pub fn snapshot_many(names: &[&SnapshotName], recursive: bool) -> Argv {
    let a = zfs().arg("snapshot");
    let a = if recursive { a.arg("-r") } else { a };
    a.args(names.iter().map(|n| n.to_string()))
}

/// `zfs destroy DATASET@a,b,c`: snapshots of one dataset. More than one name
/// needs `caps.destroy_list`.
pub fn destroy_snapshots(dataset: &DatasetName, names: &[&str]) -> Argv {
    zfs()
        .arg("destroy")
        .arg(format!("{dataset}@{}", names.join(",")))
}

/// `zfs destroy -r DATASET@NAME`: the snapshot `NAME` of `DATASET` and of every
/// descendant that has one.
pub fn destroy_recursive(snapshot: &SnapshotName) -> Argv {
    zfs().args(["destroy", "-r"]).arg(snapshot.to_string())
}

/// Where an incremental send starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Snapshot(SnapshotName),
    Bookmark(BookmarkName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub from: Option<From>,
    pub to: SnapshotName,
    /// `-I` (every snapshot in between) rather than `-i`.
    pub intermediates: bool,
    /// `-w`: encrypted blocks as they are on disk; the receiver never needs the key.
    pub raw: bool,
}

fn send_flags(caps: &Caps, s: &Send) -> Vec<&'static str> {
    let mut f = Vec::new();
    if caps.raw_send && s.raw {
        f.push("-w");
    } else if matches!(caps.dialect, super::caps::Dialect::OpenZfs { .. }) {
        // Large blocks, embedded and compressed blocks as stored: less to move
        // and no recompression on the receiver.
        f.extend(["-L", "-e", "-c"]);
    }
    f
}

fn send_tail(a: Argv, s: &Send) -> Argv {
    let a = match &s.from {
        None => a,
        Some(From::Snapshot(from)) if s.intermediates => a.arg("-I").arg(from.to_string()),
        Some(From::Snapshot(from)) => a.arg("-i").arg(from.to_string()),
        // `-I` cannot start at a bookmark.
        Some(From::Bookmark(b)) => a.arg("-i").arg(b.to_string()),
    };
    a.arg(s.to.to_string())
}

pub fn send(caps: &Caps, s: &Send) -> Argv {
    send_tail(zfs().arg("send").args(send_flags(caps, s)), s)
}

/// `zfs send -nvP …`: the sender's size estimate, for progress and ETA.
pub fn send_estimate(caps: &Caps, s: &Send) -> Argv {
    send_tail(
        zfs()
            .args(["send", "-n", "-v", "-P"])
            .args(send_flags(caps, s)),
        s,
    )
}

pub fn send_resume(token: &str) -> Argv {
    zfs().args(["send", "-t", token])
}

pub fn send_resume_estimate(token: &str) -> Argv {
    zfs().args(["send", "-n", "-v", "-P", "-t", token])
}

/// A receive that never mounts what arrives (`-u` where the dialect has it) and,
/// where it can, keeps a partial stream for resuming (`-s`).
pub fn receive(caps: &Caps, target: &DatasetName) -> Argv {
    let mut a = zfs().arg("receive");
    if matches!(caps.dialect, super::caps::Dialect::OpenZfs { .. }) {
        a = a.arg("-u");
    }
    if caps.resume {
        a = a.arg("-s");
    }
    a.arg(target.as_str())
}

/// Discards a partially received stream.
pub fn receive_abort(target: &DatasetName) -> Argv {
    zfs().args(["receive", "-A"]).arg(target.as_str())
}

/// Rolls back to `snap`, destroying later snapshots (`-r`).
pub fn rollback(snap: &SnapshotName) -> Argv {
    zfs().args(["rollback", "-r"]).arg(snap.to_string())
}

/// Creates one dataset with properties (never its parents: each level gets
/// its own properties).
pub fn create(ds: &DatasetName, props: &[(&str, &str)]) -> Argv {
    let mut a = zfs().arg("create");
    for (k, v) in props {
        a = a.arg("-o").arg(format!("{k}={v}"));
    }
    a.arg(ds.as_str())
}

pub fn hold(tag: &str, snaps: &[&SnapshotName]) -> Argv {
    zfs()
        .arg("hold")
        .arg(tag)
        .args(snaps.iter().map(|s| s.to_string()))
}

pub fn release(tag: &str, snaps: &[&SnapshotName]) -> Argv {
    zfs()
        .arg("release")
        .arg(tag)
        .args(snaps.iter().map(|s| s.to_string()))
}

pub fn set(prop: &str, value: &str, target: &str) -> Argv {
    zfs().arg("set").arg(format!("{prop}={value}")).arg(target)
}

pub fn inherit(prop: &str, target: &str) -> Argv {
    zfs().arg("inherit").arg(prop).arg(target)
}

pub fn snapshot(snap: &SnapshotName) -> Argv {
    zfs().arg("snapshot").arg(snap.to_string())
}

pub fn bookmark(snap: &SnapshotName, bm: &BookmarkName) -> Argv {
    zfs()
        .arg("bookmark")
        .arg(snap.to_string())
        .arg(bm.to_string())
}

pub fn destroy_bookmark(bm: &BookmarkName) -> Argv {
    zfs().arg("destroy").arg(bm.to_string())
}

pub fn destroy_snapshot(snap: &SnapshotName) -> Argv {
    zfs().arg("destroy").arg(snap.to_string())
}

/// Parses the `size` line of `zfs send -nvP` output (OpenZFS prints it on stdout,
/// some versions on stderr: pass both).
pub fn parse_send_estimate(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("size\t"))
        .find_map(|n| n.trim().parse().ok())
}

/// Properties with their sources, for one or more datasets.
pub fn get_properties(props: &[&str], datasets: &[&DatasetName]) -> Argv {
    let props = if props.is_empty() {
        "all".to_string()
    } else {
        props.join(",")
    };
    zfs()
        .args(["get", "-H", "-p", "-o", "name,property,value,source"])
        .arg(props)
        .args(datasets.iter().map(|d| d.as_str()))
}

/// A receive into a new dataset that is never left half-done: no `-s`, so an
/// interrupted stream leaves nothing behind; `-u` where the dialect has it.
pub fn receive_new(caps: &Caps, target: &DatasetName) -> Argv {
    let mut a = zfs().arg("receive");
    if matches!(caps.dialect, super::caps::Dialect::OpenZfs { .. }) {
        a = a.arg("-u");
    }
    a.arg(target.as_str())
}

pub fn rename(from: &DatasetName, to: &DatasetName) -> Argv {
    zfs().arg("rename").arg(from.as_str()).arg(to.as_str())
}

/// `zfs destroy -r DATASET`: the dataset, its snapshots and descendants.
pub fn destroy_dataset(ds: &DatasetName) -> Argv {
    zfs().args(["destroy", "-r"]).arg(ds.as_str())
}

pub fn mount(ds: &DatasetName) -> Argv {
    zfs().arg("mount").arg(ds.as_str())
}

pub fn unmount(ds: &DatasetName) -> Argv {
    zfs().arg("unmount").arg(ds.as_str())
}

/// `zfs clone -o K=V … SNAPSHOT DATASET`.
pub fn clone(snap: &SnapshotName, ds: &DatasetName, props: &[(&str, &str)]) -> Argv {
    let mut a = zfs().arg("clone");
    for (k, v) in props {
        a = a.arg("-o").arg(format!("{k}={v}"));
    }
    a.arg(snap.to_string()).arg(ds.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_picks_the_dialect() {
        let root = DatasetName::parse("zroot").unwrap();
        assert_eq!(
            observe(&Caps::openzfs("2.1.11"), &root, &[]).to_string(),
            "zfs list -H -p -r -t filesystem,volume,snapshot,bookmark -o name,type,guid,createtxg,creation,used,referenced,userrefs zroot"
        );
        assert_eq!(
            observe(&Caps::legacy(Some(23)), &root, &["zfleet:base:vault".to_string()]).to_string(),
            "zfs get -H -p -r -o name,property,value type,guid,createtxg,creation,used,referenced,userrefs,zfleet:base:vault zroot"
        );
    }

    #[test]
    fn sends_per_dialect() {
        let s = Send {
            from: Some(From::Snapshot(SnapshotName::parse("zroot/a@s1").unwrap())),
            to: SnapshotName::parse("zroot/a@s9").unwrap(),
            intermediates: true,
            raw: false,
        };
        assert_eq!(
            send(&Caps::legacy(Some(23)), &s).to_string(),
            "zfs send -I zroot/a@s1 zroot/a@s9"
        );
        assert_eq!(
            send(&Caps::openzfs("2.1.11"), &s).to_string(),
            "zfs send -L -e -c -I zroot/a@s1 zroot/a@s9"
        );
        let raw = Send {
            raw: true,
            ..s.clone()
        };
        assert_eq!(
            send(&Caps::openzfs("2.1.11"), &raw).to_string(),
            "zfs send -w -I zroot/a@s1 zroot/a@s9"
        );
        let bm = Send {
            from: Some(From::Bookmark(BookmarkName::parse("zroot/a#s1").unwrap())),
            ..s
        };
        assert_eq!(
            send_estimate(&Caps::openzfs("2.3.2"), &bm).to_string(),
            "zfs send -n -v -P -L -e -c -i zroot/a#s1 zroot/a@s9"
        );
        let t = DatasetName::parse("zstorage/b/a").unwrap();
        assert_eq!(
            receive(&Caps::openzfs("2.1.11"), &t).to_string(),
            "zfs receive -u -s zstorage/b/a"
        );
        assert_eq!(
            receive(&Caps::legacy(Some(23)), &t).to_string(),
            "zfs receive zstorage/b/a"
        );
        assert_eq!(
            parse_send_estimate("incremental\ts1\tzroot/a@s9\t1234\nsize\t1234\n"),
            Some(1234)
        );
    }

    #[test]
    fn several_roots_and_user_properties() {
        let a = DatasetName::parse("zroot/a").unwrap();
        let b = DatasetName::parse("tank/b").unwrap();
        let props = ["zfleet:base:vault".to_string()];
        assert_eq!(
            observe_roots(&Caps::legacy(Some(23)), &[&a, &b], &props).to_string(),
            "zfs get -H -p -r -o name,property,value type,guid,createtxg,creation,used,referenced,userrefs,zfleet:base:vault zroot/a tank/b"
        );
        assert_eq!(
            observe_roots(&Caps::openzfs("2.2.0"), &[&a], &props).to_string(),
            "zfs list -H -p -r -t filesystem,volume,snapshot,bookmark -o name,type,guid,createtxg,creation,used,referenced,userrefs,zfleet:base:vault zroot/a"
        );
    }

    #[test]
    fn batched_snapshot_and_destroy() {
        let a = DatasetName::parse("zroot/a").unwrap();
        let s1 = a.snapshot("autosnap_2017-01-01_00:00:00_hourly").unwrap();
        assert_eq!(
            snapshot_many(&[&s1], true).to_string(),
            "zfs snapshot -r zroot/a@autosnap_2017-01-01_00:00:00_hourly"
        );
        assert_eq!(
            destroy_snapshots(&a, &["x", "y"]).to_string(),
            "zfs destroy zroot/a@x,y"
        );
        assert_eq!(
            destroy_recursive(&s1).to_string(),
            "zfs destroy -r zroot/a@autosnap_2017-01-01_00:00:00_hourly"
        );
    }
}
