//! From planned snapshots and destroys to as few `zfs` calls as the dialect
//! allows — pure, so the choice is tested without ZFS.
//!
//! - Snapshots with one name on every dataset of a subtree become one
//!   `zfs snapshot -r ROOT@NAME` (atomic, and it works on zfs-fuse too).
//! - Destroys of one name that cover every dataset of a subtree that has it
//!   become one `zfs destroy -r ROOT@NAME`.
//! - OpenZFS takes several snapshots (of different datasets of a pool) in one
//!   `zfs snapshot` and several snapshots of one dataset in one `zfs destroy
//!   ds@a,b,c`; zfs-fuse takes one name per call.
//!
//! A batched call that fails is retried one item at a time by the executor, so
//! each failure is reported against its own snapshot.

use std::collections::{BTreeMap, BTreeSet};

use super::index::Index;
use super::plan::{Destroy, Take};
use crate::exec::Argv;
use crate::zfs::{cmd, Caps, DatasetName, PoolName, SnapshotName};

/// Names per call where a list is allowed: keeps command lines (which may
/// cross ssh) far below any length limit.
const CHUNK: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub argv: Argv,
    /// Indices of the planned items this call carries out.
    pub items: Vec<usize>,
}

impl Call {
    pub fn is_batch(&self) -> bool {
        self.items.len() > 1
    }
}

fn snap(ds: &DatasetName, name: &str) -> Option<SnapshotName> {
    ds.snapshot(name).ok()
}

/// The calls that take `takes`. An item whose name does not form a valid
/// snapshot name (cannot happen for planned names) gets no call.
pub fn take_calls(takes: &[&Take], index: &Index, caps: &Caps) -> Vec<Call> {
    let mut calls = Vec::new();
    // name → planned single-dataset takes, in plan order.
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, t) in takes.iter().enumerate() {
        if t.recursive {
            if let Some(s) = snap(&t.dataset, &t.name) {
                calls.push(Call {
                    argv: cmd::snapshot_many(&[&s], true),
                    items: vec![i],
                });
            }
        } else {
            by_name
                .entry(&t.name)
                .or_insert_with(|| {
                    order.push(&t.name);
                    Vec::new()
                })
                .push(i);
        }
    }
    for name in order {
        let items = &by_name[name];
        let set: BTreeMap<&DatasetName, usize> =
            items.iter().map(|i| (&takes[*i].dataset, *i)).collect();
        let mut covered: BTreeSet<&DatasetName> = BTreeSet::new();
        let mut singles: Vec<usize> = Vec::new();
        // Name order puts ancestors first, so the first root found is the widest.
        for (ds, i) in &set {
            if covered.contains(ds) {
                continue;
            }
            let sub: Vec<&DatasetName> = index.subtree(ds).collect();
            if sub.len() > 1 && sub.iter().all(|d| set.contains_key(d)) {
                if let Some(s) = snap(ds, name) {
                    calls.push(Call {
                        argv: cmd::snapshot_many(&[&s], true),
                        items: sub.iter().map(|d| set[d]).collect(),
                    });
                    covered.extend(sub);
                    continue;
                }
            }
            singles.push(*i);
        }
        if caps.snapshot_many {
            let mut by_pool: BTreeMap<PoolName, Vec<usize>> = BTreeMap::new();
            for i in singles {
                by_pool.entry(takes[i].dataset.pool()).or_default().push(i);
            }
            for items in by_pool.into_values() {
                for chunk in items.chunks(CHUNK) {
                    let names: Vec<SnapshotName> = chunk
                        .iter()
                        .filter_map(|i| snap(&takes[*i].dataset, name))
                        .collect();
                    let refs: Vec<&SnapshotName> = names.iter().collect();
                    calls.push(Call {
                        argv: cmd::snapshot_many(&refs, false),
                        items: chunk.to_vec(),
                    });
                }
            }
        } else {
            for i in singles {
                if let Some(s) = snap(&takes[i].dataset, name) {
                    calls.push(Call {
                        argv: cmd::snapshot_many(&[&s], false),
                        items: vec![i],
                    });
                }
            }
        }
    }
    calls
}

/// The calls that destroy `destroys`.
pub fn destroy_calls(destroys: &[&Destroy], index: &Index, caps: &Caps) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut by_name: BTreeMap<&str, BTreeMap<&DatasetName, usize>> = BTreeMap::new();
    for (i, d) in destroys.iter().enumerate() {
        by_name.entry(&d.name).or_default().insert(&d.dataset, i);
    }
    let mut rest: BTreeMap<&DatasetName, Vec<usize>> = BTreeMap::new();
    for (name, set) in &by_name {
        let mut covered: BTreeSet<&DatasetName> = BTreeSet::new();
        for (ds, i) in set {
            if covered.contains(ds) {
                continue;
            }
            // Every dataset of the subtree that has this snapshot must be
            // planned to lose it: `-r` destroys them all.
            let having: Vec<&DatasetName> = index
                .subtree(ds)
                .filter(|d| index.has_snapshot(d, name))
                .collect();
            if having.len() > 1 && having.iter().all(|d| set.contains_key(d)) {
                if let Some(s) = snap(ds, name) {
                    calls.push(Call {
                        argv: cmd::destroy_recursive(&s),
                        items: having.iter().map(|d| set[d]).collect(),
                    });
                    covered.extend(having);
                    continue;
                }
            }
            rest.entry(ds).or_default().push(*i);
        }
    }
    for (ds, mut items) in rest {
        items.sort_by_key(|i| (destroys[*i].creation, destroys[*i].name.clone()));
        let size = if caps.destroy_list { CHUNK } else { 1 };
        for chunk in items.chunks(size) {
            let names: Vec<&str> = chunk.iter().map(|i| destroys[*i].name.as_str()).collect();
            calls.push(Call {
                argv: cmd::destroy_snapshots(ds, &names),
                items: chunk.to_vec(),
            });
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Period;
    use crate::zfs::Listing;

    fn index(lines: &[&str]) -> Index {
        let text: String = lines
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let kind = if n.contains('@') {
                    "snapshot"
                } else {
                    "filesystem"
                };
                format!("{n}\t{kind}\t{i}\t{i}\t1\t1\t1\t-\n")
            })
            .collect();
        Index::new(&Listing::from_list(&text, &[]).unwrap())
    }

    fn take(ds: &str, name: &str, recursive: bool) -> Take {
        Take {
            dataset: DatasetName::parse(ds).unwrap(),
            name: name.into(),
            period: Period::Hourly,
            recursive,
            reason: String::new(),
        }
    }

    fn destroy(ds: &str, name: &str) -> Destroy {
        Destroy {
            dataset: DatasetName::parse(ds).unwrap(),
            name: name.into(),
            period: Period::Hourly,
            creation: 1,
            reason: String::new(),
        }
    }

    fn show(calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .map(|c| format!("{} {:?}", c.argv, c.items))
            .collect()
    }

    #[test]
    fn whole_subtrees_become_one_recursive_snapshot() {
        let idx = index(&["p", "p/a", "p/a/1", "p/a/2", "p/b", "p/b/1", "p/c"]);
        let ts = [
            take("p/a", "n", false),
            take("p/a/1", "n", false),
            take("p/a/2", "n", false),
            take("p/b", "n", false), // p/b/1 is not planned: no -r for p/b
            take("p/c", "m", true),
        ];
        let refs: Vec<&Take> = ts.iter().collect();
        insta::assert_debug_snapshot!(show(&take_calls(&refs, &idx, &Caps::legacy(Some(23)))), @r#"
        [
            "zfs snapshot -r p/c@m [4]",
            "zfs snapshot -r p/a@n [0, 1, 2]",
            "zfs snapshot p/b@n [3]",
        ]
        "#);
        let ts = [
            take("p/b", "n", false),
            take("p/c", "n", false),
            take("p/a/1", "n", false),
        ];
        let refs: Vec<&Take> = ts.iter().collect();
        insta::assert_debug_snapshot!(show(&take_calls(&refs, &idx, &Caps::openzfs("2.2.0"))), @r#"
        [
            "zfs snapshot p/a/1@n p/b@n p/c@n [2, 0, 1]",
        ]
        "#);
    }

    #[test]
    fn destroys_batch_by_subtree_then_by_dataset() {
        let idx = index(&[
            "p", "p/a", "p/a@x", "p/a@y", "p/a/1", "p/a/1@x", "p/a/2", "p/a/2@y", "p/b", "p/b@x",
            "p/b/1", "p/b/1@x",
        ]);
        let ds = [
            destroy("p/a", "x"),
            destroy("p/a/1", "x"),
            destroy("p/a", "y"),
            destroy("p/b", "x"), // p/b/1@x stays: no -r
        ];
        let refs: Vec<&Destroy> = ds.iter().collect();
        insta::assert_debug_snapshot!(show(&destroy_calls(&refs, &idx, &Caps::legacy(Some(23)))), @r#"
        [
            "zfs destroy -r p/a@x [0, 1]",
            "zfs destroy p/a@y [2]",
            "zfs destroy p/b@x [3]",
        ]
        "#);
        let ds = [
            destroy("p/a", "x"),
            destroy("p/a", "y"),
            destroy("p/b", "x"),
        ];
        let refs: Vec<&Destroy> = ds.iter().collect();
        insta::assert_debug_snapshot!(show(&destroy_calls(&refs, &idx, &Caps::openzfs("2.2.0"))), @r#"
        [
            "zfs destroy p/a@x,y [0, 1]",
            "zfs destroy p/b@x [2]",
        ]
        "#);
    }
}
