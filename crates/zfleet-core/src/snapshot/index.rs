//! One observation, arranged for planning: datasets in name order (so a
//! subtree is a contiguous range) and each dataset's snapshots oldest first,
//! with sanoid's name parsed and the replication marks read.

use std::collections::BTreeMap;

use serde::Serialize;

use super::naming::AutoName;
use crate::zfs::{DatasetName, Listing, ObjectName, ObjectType};

/// The user property replication sets on the newest snapshot a server shares
/// with a client: `zfleet:base:<server, lower case>`.
pub use crate::protocol::{base_marker as base_property, BASE_PREFIX};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snap {
    /// The part after `@`.
    pub name: String,
    /// Unix seconds.
    pub creation: i64,
    pub createtxg: u64,
    /// Holds on the snapshot.
    pub userrefs: u64,
    /// Servers (lower case) whose replication base this is.
    pub bases: Vec<String>,
    #[serde(skip)]
    pub auto: Option<AutoName>,
}

#[derive(Debug, Clone, Default)]
pub struct Index {
    datasets: BTreeMap<DatasetName, Vec<Snap>>,
}

impl Index {
    pub fn new(listing: &Listing) -> Self {
        let mut datasets: BTreeMap<DatasetName, Vec<Snap>> = BTreeMap::new();
        for o in &listing.objects {
            match (&o.name, o.kind) {
                (ObjectName::Dataset(d), ObjectType::Filesystem | ObjectType::Volume) => {
                    datasets.entry(d.clone()).or_default();
                }
                (ObjectName::Snapshot(s), ObjectType::Snapshot) => {
                    let bases = o
                        .props
                        .keys()
                        .filter_map(|k| k.strip_prefix(BASE_PREFIX))
                        .map(str::to_string)
                        .collect();
                    datasets.entry(s.dataset.clone()).or_default().push(Snap {
                        auto: AutoName::parse(&s.name),
                        name: s.name.clone(),
                        creation: o.creation,
                        createtxg: o.createtxg,
                        userrefs: o.userrefs.unwrap_or(0),
                        bases,
                    });
                }
                _ => {}
            }
        }
        for snaps in datasets.values_mut() {
            snaps.sort_by_key(|s| s.createtxg);
        }
        Index { datasets }
    }

    pub fn contains(&self, ds: &DatasetName) -> bool {
        self.datasets.contains_key(ds)
    }

    /// Datasets in name order.
    pub fn datasets(&self) -> impl Iterator<Item = &DatasetName> {
        self.datasets.keys()
    }

    pub fn snapshots(&self, ds: &DatasetName) -> &[Snap] {
        self.datasets.get(ds).map_or(&[], Vec::as_slice)
    }

    pub fn has_snapshot(&self, ds: &DatasetName, name: &str) -> bool {
        self.snapshots(ds).iter().any(|s| s.name == name)
    }

    /// `root` and every dataset below it, in name order.
    pub fn subtree<'a>(&'a self, root: &'a DatasetName) -> impl Iterator<Item = &'a DatasetName> {
        let prefix = format!("{root}/");
        let own = self.datasets.get_key_value(root).map(|(k, _)| k);
        own.into_iter().chain(
            self.datasets
                .range::<str, _>((
                    std::ops::Bound::Included(prefix.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .map(|(k, _)| k)
                .take_while(move |k| k.as_str().starts_with(&prefix)),
        )
    }

    /// Records a snapshot this run took, as the next observation would show it.
    pub fn add_taken(&mut self, ds: &DatasetName, name: &str, creation: i64) {
        let snaps = self.datasets.entry(ds.clone()).or_default();
        let createtxg = snaps.last().map_or(1, |s| s.createtxg + 1);
        snaps.push(Snap {
            auto: AutoName::parse(name),
            name: name.to_string(),
            creation,
            createtxg,
            userrefs: 0,
            bases: Vec::new(),
        });
    }

    /// Forgets a snapshot this run destroyed.
    pub fn remove(&mut self, ds: &DatasetName, name: &str) {
        if let Some(snaps) = self.datasets.get_mut(ds) {
            snaps.retain(|s| s.name != name);
        }
    }

    pub fn snapshot_count(&self) -> usize {
        self.datasets.values().map(Vec::len).sum()
    }
}
