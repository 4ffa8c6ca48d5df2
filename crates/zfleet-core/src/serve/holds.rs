//! A bound on the holds a backup key can place. A server's hold tag
//! (`zfleet:base:NAME`) protects its replication base from pruning; placed
//! on every snapshot, it would stop pruning until the pool fills. So a
//! request may leave at most [`MAX_HELD`] snapshots of a dataset with this
//! server's tag — counted after the whole request, since the base moves by
//! holding the new snapshot and releasing the old one in one request.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use super::policy::Op;
use super::Refusal;
use crate::zfs::{cmd, DatasetName, SnapshotName};

/// The base, and the previous one when a move was interrupted between its
/// hold and its release.
pub const MAX_HELD: usize = 2;

/// What the request does to this tag's holds: snapshots held and released.
fn changes(tag: &str, ops: &[Op]) -> Vec<(bool, SnapshotName)> {
    ops.iter()
        .filter_map(|op| {
            let [verb, t, snap] = op.argv.args.as_slice() else {
                return None;
            };
            let hold = match verb.as_str() {
                "hold" => true,
                "release" => false,
                _ => return None,
            };
            (op.argv.program == "zfs" && t == tag)
                .then(|| SnapshotName::parse(snap).ok().map(|s| (hold, s)))
                .flatten()
        })
        .collect()
}

/// Snapshot names (after `@`) that hold `tag`, from `zfs holds` output (a
/// header line, then `NAME TAG TIMESTAMP`, in both dialects).
pub fn held_by(tag: &str, holds_output: &str) -> BTreeSet<String> {
    holds_output
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, t) = (w.next()?, w.next()?);
            (t == tag).then(|| name.rsplit_once('@').map(|(_, s)| s.to_string()))?
        })
        .collect()
}

/// The snapshots of `ds` that would hold `tag` after the request, given
/// those that hold it now.
pub fn after(ds: &DatasetName, now: &BTreeSet<String>, tag: &str, ops: &[Op]) -> BTreeSet<String> {
    let mut held = now.clone();
    for (hold, s) in changes(tag, ops)
        .into_iter()
        .filter(|(_, s)| s.dataset == *ds)
    {
        if hold {
            held.insert(s.name);
        } else {
            held.remove(&s.name);
        }
    }
    held
}

/// Refuses a request that would leave more than [`MAX_HELD`] snapshots of a
/// dataset held with `tag`. Asks zfs only when the request places a hold.
pub fn check(tag: &str, who: &str, ops: &[Op]) -> Result<(), Refusal> {
    let mut datasets: Vec<DatasetName> = Vec::new();
    for (hold, s) in changes(tag, ops) {
        if hold && !datasets.contains(&s.dataset) {
            datasets.push(s.dataset);
        }
    }
    for ds in datasets {
        let snaps = query(
            cmd::zfs()
                .args(["list", "-H", "-o", "name", "-t", "snapshot", "-d", "1"])
                .arg(ds.as_str()),
        )?;
        let names: Vec<&str> = snaps.lines().filter(|l| l.contains('@')).collect();
        let now = if names.is_empty() {
            BTreeSet::new()
        } else {
            // A dialect without holds has nothing to bound.
            query(cmd::zfs().arg("holds").args(names.iter().copied()))
                .map(|out| held_by(tag, &out))
                .unwrap_or_default()
        };
        let held = after(&ds, &now, tag, ops);
        if held.len() > MAX_HELD {
            let list: Vec<String> = held.iter().map(|s| format!("{ds}@{s}")).collect();
            return Err(Refusal::new(format!(
                "{who} would hold {} snapshots of `{ds}` ({}); at most {MAX_HELD} (its base, and the previous one while the base moves), so that its holds cannot stop pruning. Release the stale ones as root: `zfs release {tag} SNAPSHOT…`",
                held.len(),
                list.join(", ")
            )));
        }
    }
    Ok(())
}

fn query(argv: crate::exec::Argv) -> Result<String, Refusal> {
    let out = Command::new(&argv.program)
        .args(&argv.args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Refusal::new(format!("cannot count holds: {e}")))?;
    if !out.status.success() {
        return Err(Refusal::new(format!(
            "cannot count holds: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{authorize, Mode};

    fn ops(req: &str) -> Vec<Op> {
        let mode = Mode::Send {
            server: "vault".into(),
            datasets: vec![DatasetName::parse("zroot/a").unwrap()],
            sync_snapshots: false,
        };
        crate::serve::request::parse(req)
            .unwrap()
            .iter()
            .map(|c| authorize(&mode, c).unwrap())
            .collect()
    }

    #[test]
    fn holds_are_counted_after_the_whole_request() {
        let tag = "zfleet:base:vault";
        let out = "NAME       TAG                TIMESTAMP\nzroot/a@s1  zfleet:base:vault  Tue Dec  1 10:00 2026\nzroot/a@s1  keep               Tue Dec  1 10:00 2026\nzroot/a@s0  zfleet:base:other  Tue Dec  1 10:00 2026\n";
        let now = held_by(tag, out);
        assert_eq!(now, BTreeSet::from(["s1".to_string()]));
        let ds = DatasetName::parse("zroot/a").unwrap();
        // The engine's base move: hold the new one, release the old one.
        let moved = ops("zfs set zfleet:base:vault=2 zroot/a@s2 && zfs hold zfleet:base:vault zroot/a@s2 && zfs release zfleet:base:vault zroot/a@s1 && zfs inherit zfleet:base:vault zroot/a@s1");
        assert_eq!(
            after(&ds, &now, tag, &moved),
            BTreeSet::from(["s2".to_string()])
        );
        // A stolen key holding one snapshot after another.
        let mut held = now.clone();
        for s in ["s2", "s3"] {
            held = after(
                &ds,
                &held,
                tag,
                &ops(&format!("zfs hold {tag} zroot/a@{s}")),
            );
        }
        assert_eq!(
            held.len(),
            3,
            "over {MAX_HELD}: the third request is refused"
        );
    }
}
