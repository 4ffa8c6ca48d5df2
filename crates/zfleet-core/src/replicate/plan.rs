//! What to send, decided from what both sides hold — a pure function.
//!
//! The common base is found by **guid**, never by name: a snapshot renamed on
//! one side is still the same snapshot, and two snapshots that share a name but
//! not a guid are not. Target snapshots newer than the common base mean the two
//! sides diverged (the target was written to, or the source was rolled back);
//! zfleet refuses instead of rolling the target back, unless told to.

use serde::Serialize;

/// One snapshot or bookmark as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Point {
    /// The part after `@` or `#`.
    pub name: String,
    pub guid: u64,
    pub createtxg: u64,
    /// Unix seconds.
    pub creation: i64,
}

/// One side of a replication: a dataset and what it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Side {
    pub exists: bool,
    /// Oldest first (by createtxg).
    pub snapshots: Vec<Point>,
    pub bookmarks: Vec<Point>,
    /// A partially received stream (`recv -s`) waiting to be resumed.
    pub resume_token: Option<String>,
    /// Bytes written since the newest snapshot (`written`), where the dialect has it.
    pub written: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Allow discarding target snapshots the source does not have, and changes
    /// made on the target since its newest snapshot.
    pub rollback: bool,
    /// Use bookmarks as incremental bases when the common snapshot is gone on
    /// the source (the dialect must support them).
    pub bookmarks: bool,
}

/// Where an incremental starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Base {
    Snapshot(String),
    Bookmark(String),
}

impl Base {
    pub fn name(&self) -> &str {
        match self {
            Base::Snapshot(n) | Base::Bookmark(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Continue the interrupted receive from its token.
    Resume { token: String },
    /// Roll the target back to the common snapshot, destroying what is newer.
    Rollback { to: String, discards: Vec<String> },
    /// The first send: the oldest source snapshot, whole.
    Full { snapshot: String },
    /// From `from` to `to`, with every snapshot in between when `intermediates`.
    Incremental {
        from: Base,
        to: String,
        intermediates: bool,
    },
}

impl Step {
    /// `full @s1`, `incremental @s1 → @s9 (with intermediates)`: for dry runs and logs.
    pub fn describe(&self) -> String {
        match self {
            Step::Resume { .. } => "resume the interrupted receive".to_string(),
            Step::Rollback { to, discards } => format!(
                "roll back to @{to}, discarding {}",
                if discards.is_empty() {
                    "changes since that snapshot".to_string()
                } else {
                    discards
                        .iter()
                        .map(|d| format!("@{d}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            Step::Full { snapshot } => format!("full send of @{snapshot}"),
            Step::Incremental {
                from,
                to,
                intermediates,
            } => {
                let sep = match from {
                    Base::Snapshot(_) => "@",
                    Base::Bookmark(_) => "#",
                };
                format!(
                    "incremental {sep}{} → @{to}{}",
                    from.name(),
                    if *intermediates {
                        " with every snapshot in between"
                    } else {
                        ""
                    }
                )
            }
        }
    }
}

/// Why a replication will not run. Each says what the user can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// Nothing to send yet.
    NoSourceSnapshots,
    /// The target has snapshots newer than the common one, which the source does not have.
    Diverged {
        common: String,
        target_only: Vec<String>,
    },
    /// The target was written to since its newest snapshot.
    TargetModified { common: String, written: u64 },
    /// The target has snapshots but none in common with the source.
    NoCommonSnapshot { target_snapshots: Vec<String> },
    /// The target dataset exists but holds no snapshot, so it was not made by a
    /// replication; a full receive would overwrite it.
    TargetNotEmpty,
}

impl Refusal {
    pub fn message(&self, source: &str, target: &str) -> String {
        match self {
            Refusal::NoSourceSnapshots => format!("{source} has no snapshots to send yet"),
            Refusal::Diverged { common, target_only } => format!(
                "{target} has diverged from {source}: it has {} the source does not have ({}) after the last common snapshot @{common}",
                plural(target_only.len(), "snapshot", "snapshots"),
                target_only.iter().map(|s| format!("@{s}")).collect::<Vec<_>>().join(", ")
            ),
            Refusal::TargetModified { common, written } => format!(
                "{target} was changed after its newest snapshot @{common} ({written} bytes written)"
            ),
            Refusal::NoCommonSnapshot { target_snapshots } => format!(
                "{target} has {} but none in common with {source} (by guid), so no incremental is possible",
                plural(target_snapshots.len(), "snapshot", "snapshots")
            ),
            Refusal::TargetNotEmpty => format!("{target} exists but has no snapshots; it was not made by a replication from {source}"),
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            Refusal::NoSourceSnapshots => "take a snapshot on the source (zfleet snapshot), or use a sync snapshot",
            Refusal::Diverged { .. } | Refusal::TargetModified { .. } => {
                "if what the target has beyond the common snapshot can go, run again with --rollback; otherwise copy it elsewhere first"
            }
            Refusal::NoCommonSnapshot { .. } | Refusal::TargetNotEmpty => {
                "zfleet will not overwrite it; rename or destroy the target yourself if it can go, and the next run sends everything"
            }
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Plan {
    /// The target already has the newest source snapshot.
    UpToDate {
        snapshot: String,
    },
    Steps {
        steps: Vec<Step>,
        base: Option<Base>,
    },
    Refused(Refusal),
}

/// Decides what to send from `source` to `target`.
pub fn plan(source: &Side, target: &Side, opts: &Options) -> Plan {
    let Some(newest) = source.snapshots.last() else {
        return Plan::Refused(Refusal::NoSourceSnapshots);
    };

    // An interrupted receive comes first: it either finishes (and the plan is
    // made again from the new state) or is found stale by the executor.
    if let Some(token) = &target.resume_token {
        return Plan::Steps {
            steps: vec![Step::Resume {
                token: token.clone(),
            }],
            base: None,
        };
    }

    if !target.exists {
        let oldest = &source.snapshots[0];
        let mut steps = vec![Step::Full {
            snapshot: oldest.name.clone(),
        }];
        if oldest.guid != newest.guid {
            steps.push(Step::Incremental {
                from: Base::Snapshot(oldest.name.clone()),
                to: newest.name.clone(),
                intermediates: true,
            });
        }
        return Plan::Steps { steps, base: None };
    }

    if target.snapshots.is_empty() {
        return Plan::Refused(Refusal::TargetNotEmpty);
    }

    // The newest target snapshot that the source still has, or has a bookmark of.
    let common = target.snapshots.iter().rev().find_map(|t| {
        if let Some(s) = source.snapshots.iter().find(|s| s.guid == t.guid) {
            return Some((t, Base::Snapshot(s.name.clone())));
        }
        if opts.bookmarks {
            if let Some(b) = source.bookmarks.iter().find(|b| b.guid == t.guid) {
                return Some((t, Base::Bookmark(b.name.clone())));
            }
        }
        None
    });
    let Some((common_t, base)) = common else {
        return Plan::Refused(Refusal::NoCommonSnapshot {
            target_snapshots: target.snapshots.iter().map(|s| s.name.clone()).collect(),
        });
    };

    let mut steps = Vec::new();
    let target_only: Vec<String> = target
        .snapshots
        .iter()
        .filter(|t| t.createtxg > common_t.createtxg)
        .map(|t| t.name.clone())
        .collect();
    let written = target.written.unwrap_or(0);
    let newest_is_common = target.snapshots.last().map(|t| t.guid) == Some(common_t.guid);
    if !target_only.is_empty() {
        if !opts.rollback {
            return Plan::Refused(Refusal::Diverged {
                common: common_t.name.clone(),
                target_only,
            });
        }
        steps.push(Step::Rollback {
            to: common_t.name.clone(),
            discards: target_only,
        });
    } else if written > 0 && newest_is_common {
        if !opts.rollback {
            return Plan::Refused(Refusal::TargetModified {
                common: common_t.name.clone(),
                written,
            });
        }
        steps.push(Step::Rollback {
            to: common_t.name.clone(),
            discards: Vec::new(),
        });
    }

    if common_t.guid == newest.guid {
        if steps.is_empty() {
            return Plan::UpToDate {
                snapshot: newest.name.clone(),
            };
        }
        return Plan::Steps {
            steps,
            base: Some(base),
        };
    }

    match &base {
        Base::Snapshot(_) => steps.push(Step::Incremental {
            from: base.clone(),
            to: newest.name.clone(),
            intermediates: true,
        }),
        Base::Bookmark(_) => {
            // `-I` cannot start at a bookmark: send the first snapshot after it
            // with `-i`, then the rest with `-I` from there.
            // Transaction groups are per pool: the bookmark's own createtxg
            // (that of the snapshot it was made from, on the source) orders it
            // among the source's snapshots; the target's txg says nothing.
            let base_txg = source
                .bookmarks
                .iter()
                .find(|b| b.guid == common_t.guid)
                .map_or(common_t.createtxg, |b| b.createtxg);
            let after: Vec<&Point> = source
                .snapshots
                .iter()
                .filter(|s| s.createtxg > base_txg)
                .collect();
            if let Some(first) = after.first() {
                steps.push(Step::Incremental {
                    from: base.clone(),
                    to: first.name.clone(),
                    intermediates: false,
                });
                if first.guid != newest.guid {
                    steps.push(Step::Incremental {
                        from: Base::Snapshot(first.name.clone()),
                        to: newest.name.clone(),
                        intermediates: true,
                    });
                }
            }
        }
    }
    Plan::Steps {
        steps,
        base: Some(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, guid: u64, txg: u64) -> Point {
        Point {
            name: name.into(),
            guid,
            createtxg: txg,
            creation: txg as i64 * 3600,
        }
    }

    fn side(snaps: &[Point]) -> Side {
        Side {
            exists: true,
            snapshots: snaps.to_vec(),
            ..Side::default()
        }
    }

    fn opts() -> Options {
        Options::default()
    }

    #[test]
    fn first_run_is_full_of_oldest_then_incremental() {
        let src = side(&[p("a", 1, 10), p("b", 2, 20), p("c", 3, 30)]);
        let plan = plan(&src, &Side::default(), &opts());
        let Plan::Steps { steps, .. } = plan else {
            panic!("{plan:?}")
        };
        let d: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(
            d,
            [
                "full send of @a",
                "incremental @a → @c with every snapshot in between"
            ]
        );
    }

    #[test]
    fn first_run_with_one_snapshot_is_full_only() {
        let plan = plan(&side(&[p("a", 1, 10)]), &Side::default(), &opts());
        assert_eq!(
            plan,
            Plan::Steps {
                steps: vec![Step::Full {
                    snapshot: "a".into()
                }],
                base: None
            }
        );
    }

    #[test]
    fn incremental_from_newest_common_by_guid_not_name() {
        // The target's `b` has another guid: same name, different snapshot.
        let src = side(&[p("a", 1, 10), p("b", 2, 20), p("c", 3, 30)]);
        let dst = side(&[p("a", 1, 5), p("b", 99, 6)]);
        let got = plan(&src, &dst, &opts());
        assert_eq!(
            got,
            Plan::Refused(Refusal::Diverged {
                common: "a".into(),
                target_only: vec!["b".into()]
            })
        );
        // Renamed on the target: still the common base.
        let dst = side(&[p("a", 1, 5), p("renamed", 2, 6)]);
        let Plan::Steps { steps, base } = plan(&src, &dst, &opts()) else {
            panic!()
        };
        assert_eq!(base, Some(Base::Snapshot("b".into())));
        assert_eq!(
            steps[0].describe(),
            "incremental @b → @c with every snapshot in between"
        );
    }

    #[test]
    fn up_to_date() {
        let src = side(&[p("a", 1, 10), p("b", 2, 20)]);
        let dst = side(&[p("a", 1, 5), p("b", 2, 6)]);
        assert_eq!(
            plan(&src, &dst, &opts()),
            Plan::UpToDate {
                snapshot: "b".into()
            }
        );
    }

    #[test]
    fn source_rolled_back_is_divergence_not_followed() {
        // syncoid #558/#847: the source went back to `a` and took `d`.
        let src = side(&[p("a", 1, 10), p("d", 4, 40)]);
        let dst = side(&[p("a", 1, 5), p("b", 2, 6), p("c", 3, 7)]);
        let got = plan(&src, &dst, &opts());
        let Plan::Refused(r) = &got else {
            panic!("{got:?}")
        };
        assert_eq!(
            r.message("alpha:zroot/persistSave", "zstorage/backups/alpha/zroot/persistSave"),
            "zstorage/backups/alpha/zroot/persistSave has diverged from alpha:zroot/persistSave: it has 2 snapshots the source does not have (@b, @c) after the last common snapshot @a"
        );
        let Plan::Steps { steps, .. } = plan(
            &src,
            &dst,
            &Options {
                rollback: true,
                ..opts()
            },
        ) else {
            panic!()
        };
        let d: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(
            d,
            [
                "roll back to @a, discarding @b, @c",
                "incremental @a → @d with every snapshot in between"
            ]
        );
    }

    #[test]
    fn target_written_after_its_snapshot() {
        let src = side(&[p("a", 1, 10), p("b", 2, 20)]);
        let mut dst = side(&[p("a", 1, 5)]);
        dst.written = Some(4096);
        assert_eq!(
            plan(&src, &dst, &opts()),
            Plan::Refused(Refusal::TargetModified {
                common: "a".into(),
                written: 4096
            })
        );
        let Plan::Steps { steps, .. } = plan(
            &src,
            &dst,
            &Options {
                rollback: true,
                ..opts()
            },
        ) else {
            panic!()
        };
        assert_eq!(
            steps[0].describe(),
            "roll back to @a, discarding changes since that snapshot"
        );
    }

    #[test]
    fn no_common_snapshot_is_refused() {
        let src = side(&[p("x", 7, 10)]);
        let dst = side(&[p("a", 1, 5)]);
        let got = plan(
            &src,
            &dst,
            &Options {
                rollback: true,
                ..opts()
            },
        );
        assert_eq!(
            got,
            Plan::Refused(Refusal::NoCommonSnapshot {
                target_snapshots: vec!["a".into()]
            })
        );
    }

    #[test]
    fn existing_target_without_snapshots_is_not_overwritten() {
        let src = side(&[p("x", 7, 10)]);
        let dst = side(&[]);
        assert_eq!(
            plan(&src, &dst, &opts()),
            Plan::Refused(Refusal::TargetNotEmpty)
        );
        assert_eq!(
            plan(&Side::default(), &dst, &opts()),
            Plan::Refused(Refusal::NoSourceSnapshots)
        );
    }

    #[test]
    fn bookmark_base_when_common_snapshot_was_pruned_on_source() {
        let mut src = side(&[p("c", 3, 30), p("d", 4, 40), p("e", 5, 50)]);
        src.bookmarks = vec![p("b", 2, 20)];
        let dst = side(&[p("a", 1, 5), p("b", 2, 6)]);
        assert!(matches!(
            plan(&src, &dst, &opts()),
            Plan::Refused(Refusal::NoCommonSnapshot { .. })
        ));
        let Plan::Steps { steps, base } = plan(
            &src,
            &dst,
            &Options {
                bookmarks: true,
                ..opts()
            },
        ) else {
            panic!()
        };
        assert_eq!(base, Some(Base::Bookmark("b".into())));
        let d: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(
            d,
            [
                "incremental #b → @c",
                "incremental @c → @e with every snapshot in between"
            ]
        );
    }

    // The guest's bookmark test failed when the server's pool had seen more
    // transaction groups than the client's: the first snapshot after the
    // bookmark was looked for with the target's txg.
    #[test]
    fn bookmark_base_is_ordered_by_the_source_pools_txg() {
        let mut src = side(&[p("s1", 1, 10), p("s3", 3, 30)]);
        src.bookmarks = vec![p("s2", 2, 20)];
        let dst = side(&[p("s1", 1, 500), p("s2", 2, 900)]);
        let Plan::Steps { steps, base } = plan(
            &src,
            &dst,
            &Options {
                bookmarks: true,
                ..opts()
            },
        ) else {
            panic!()
        };
        assert_eq!(base, Some(Base::Bookmark("s2".into())));
        let d: Vec<String> = steps.iter().map(Step::describe).collect();
        assert_eq!(d, ["incremental #s2 → @s3"]);
    }

    #[test]
    fn resume_comes_first() {
        let src = side(&[p("a", 1, 10), p("b", 2, 20)]);
        let mut dst = side(&[p("a", 1, 5)]);
        dst.resume_token = Some("1-abc".into());
        assert_eq!(
            plan(&src, &dst, &opts()),
            Plan::Steps {
                steps: vec![Step::Resume {
                    token: "1-abc".into()
                }],
                base: None
            }
        );
    }
}
