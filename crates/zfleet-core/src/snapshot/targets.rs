//! Which datasets a host snapshots and prunes, and with which policy: the
//! configured entries laid over the datasets that exist.
//!
//! As in sanoid: `recursive = true` gives every descendant the entry's policy,
//! each planned on its own; `recursive = "zfs"` takes one atomic `zfs snapshot
//! -r` at the entry and prunes every descendant on its own;
//! `process_children_only` leaves the entry's own dataset out. Where entries
//! nest, the deepest one decides a dataset's policy (sanoid's outcome depends
//! on the order of its hash keys). A dataset inside a `"zfs"` tree is always
//! snapshotted by the tree's `-r`, whatever its own entry says.
//!
//! One deliberate difference: sanoid takes nothing at all for `recursive =
//! "zfs"` with `process_children_only` (the entry is skipped, its descendants
//! have autosnap forced off); zfleet takes one `zfs snapshot -r` per child.

use serde::Serialize;

use super::index::Index;
use crate::config::{ExpandedPolicy, Policy, Recursive};
use crate::zfs::DatasetName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", content = "by", rename_all = "snake_case")]
pub enum TakeMode {
    /// `zfs snapshot DATASET@…`.
    Own,
    /// `zfs snapshot -r DATASET@…`: this dataset and everything below it.
    Tree,
    /// Snapshotted by the `-r` of this ancestor.
    Covered(DatasetName),
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub dataset: DatasetName,
    /// The configured dataset whose entry applies.
    pub entry: DatasetName,
    /// Where the entry came from (templates, retention of a server).
    pub source: String,
    pub policy: Policy,
    pub take: TakeMode,
}

impl Target {
    pub fn takes(&self) -> bool {
        self.policy.autosnap && !matches!(self.take, TakeMode::Covered(_))
    }

    pub fn prunes(&self) -> bool {
        self.policy.autoprune
    }
}

/// The targets in dataset-name order; entries whose dataset does not exist are
/// reported in `missing`.
pub fn targets(
    entries: &[ExpandedPolicy],
    index: &Index,
    missing: &mut Vec<DatasetName>,
) -> Vec<Target> {
    for e in entries {
        if !index.contains(&e.dataset) {
            missing.push(e.dataset.clone());
        }
    }
    let mut out = Vec::new();
    for ds in index.datasets() {
        // Entries that apply to `ds`, shallowest first.
        let mut applying: Vec<&ExpandedPolicy> = entries
            .iter()
            .filter(|e| {
                &e.dataset == ds || (e.recursive != Recursive::No && ds.is_within(&e.dataset))
            })
            .collect();
        if applying.is_empty() {
            continue;
        }
        applying.sort_by_key(|e| e.dataset.as_str().len());
        let Some(own) = applying.last() else { continue };
        if &own.dataset == ds && own.process_children_only {
            continue;
        }
        let take = match applying.iter().find(|e| e.recursive == Recursive::Zfs) {
            None => TakeMode::Own,
            Some(z) => {
                let root = if z.process_children_only {
                    child_towards(&z.dataset, ds)
                } else {
                    z.dataset.clone()
                };
                if &root == ds {
                    TakeMode::Tree
                } else {
                    TakeMode::Covered(root)
                }
            }
        };
        out.push(Target {
            dataset: ds.clone(),
            entry: own.dataset.clone(),
            source: own.source.clone(),
            policy: own.policy.clone(),
            take,
        });
    }
    out
}

/// The child of `ancestor` on the way to `ds` (which lies strictly below it).
fn child_towards(ancestor: &DatasetName, ds: &DatasetName) -> DatasetName {
    let rest = &ds.as_str()[ancestor.as_str().len() + 1..];
    let first = rest.split('/').next().unwrap_or(rest);
    ancestor.join(first).unwrap_or_else(|_| ds.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfs::Listing;

    fn entry(ds: &str, recursive: Recursive, pco: bool, hourly: u32) -> ExpandedPolicy {
        ExpandedPolicy {
            dataset: DatasetName::parse(ds).unwrap(),
            source: format!("entry {ds}"),
            policy: Policy {
                hourly,
                ..Policy::default()
            },
            recursive,
            process_children_only: pco,
        }
    }

    fn index(names: &[&str]) -> Index {
        let text: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n}\tfilesystem\t{i}\t1\t1\t1\t1\t-\n"))
            .collect();
        Index::new(&Listing::from_list(&text, &[]).unwrap())
    }

    fn show(ts: &[Target]) -> Vec<String> {
        ts.iter()
            .map(|t| {
                format!(
                    "{} hourly={} {:?} from {}",
                    t.dataset, t.policy.hourly, t.take, t.entry
                )
            })
            .collect()
    }

    #[test]
    fn nesting_recursion_and_children_only() {
        let idx = index(&[
            "zroot",
            "zroot/a",
            "zroot/a/x",
            "zroot/a/x/deep",
            "zroot/b",
            "zroot/b/y",
            "zroot/c",
            "zroot/c/z",
            "zroot/c/z/q",
            "zroot-other",
        ]);
        let entries = vec![
            entry("zroot", Recursive::Yes, true, 10),
            entry("zroot/a/x", Recursive::No, false, 20),
            entry("zroot/b", Recursive::Zfs, false, 30),
            entry("zroot/b/y", Recursive::No, false, 31),
            entry("zroot/c", Recursive::Zfs, true, 40),
            entry("zroot/gone", Recursive::No, false, 1),
        ];
        let mut missing = Vec::new();
        let ts = targets(&entries, &idx, &mut missing);
        insta::assert_debug_snapshot!(show(&ts), @r#"
        [
            "zroot/a hourly=10 Own from zroot",
            "zroot/a/x hourly=20 Own from zroot/a/x",
            "zroot/a/x/deep hourly=10 Own from zroot",
            "zroot/b hourly=30 Tree from zroot/b",
            "zroot/b/y hourly=31 Covered(DatasetName(\"zroot/b\")) from zroot/b/y",
            "zroot/c/z hourly=40 Tree from zroot/c",
            "zroot/c/z/q hourly=40 Covered(DatasetName(\"zroot/c/z\")) from zroot/c",
        ]
        "#);
        assert_eq!(missing, vec![DatasetName::parse("zroot/gone").unwrap()]);
    }
}
