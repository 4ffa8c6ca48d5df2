//! What to send, decided from what both sides hold — a pure function.
//!
//! The common base is found by **guid**, never by name: a snapshot renamed on
//! one side is still the same snapshot, and two snapshots that share a name but
//! not a guid are not. Target snapshots newer than the common base mean the two
//! sides diverged (the target was written to, or the source was rolled back);
//! zfleet refuses instead of rolling the target back, unless told to.
//!
//! An interrupted receive is part of the picture: its resume token was decoded
//! when the sides were observed, so the plan either resumes it and sends what
//! remains after it, or discards it (a stale token) and plans as if it had not
//! been there. The plan also says how the base marks move once the steps are
//! done ([`super::base_moves`]).

use serde::Serialize;

use super::base_moves::{self, BaseMoves, MoveContext};

pub use super::sides::{Dataset, Observed, Point, ResumeState, Snap, TokenContents};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Allow discarding target snapshots the source does not have, and changes
    /// made on the target since its newest snapshot.
    pub rollback: bool,
    /// Use bookmarks as incremental bases when the common snapshot is gone on
    /// the source (the dialect must support them).
    pub bookmarks: bool,
    /// Send raw (`-w`): the job asks for it and the sender can.
    pub raw: bool,
    /// Who the base marks belong to and what each side can do.
    pub moves: MoveContext,
    /// Send only the newest snapshot (`-i` from the base, or a full send of
    /// it), not every one in between (syncoid's `--no-stream`).
    pub no_stream: bool,
    /// Send the snapshots one `-i` at a time rather than one `-I` stream:
    /// needed when some source snapshots are filtered out, since `-I` would
    /// bring them along.
    pub one_by_one: bool,
    /// Discard a partial receive instead of resuming it (`--no-resume`).
    pub no_resume: bool,
    /// Destroy a target that shares no snapshot with the source, and target
    /// snapshots whose names an arriving snapshot needs (`--force-delete`).
    pub force_delete: bool,
}

/// Where an incremental starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Base {
    Snapshot { name: String, guid: u64 },
    Bookmark { name: String, guid: u64 },
}

impl Base {
    pub fn name(&self) -> &str {
        match self {
            Base::Snapshot { name, .. } | Base::Bookmark { name, .. } => name,
        }
    }

    pub fn guid(&self) -> u64 {
        match self {
            Base::Snapshot { guid, .. } | Base::Bookmark { guid, .. } => *guid,
        }
    }

    fn snapshot(p: &Point) -> Self {
        Base::Snapshot {
            name: p.name.clone(),
            guid: p.guid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Discard the partial receive: its token names what the source no
    /// longer has.
    AbortResume { reason: String },
    /// Continue the interrupted receive from its token.
    Resume {
        token: String,
        to: Snap,
        snapshots: u64,
        estimated_bytes: Option<u64>,
    },
    /// Roll the target back to the common snapshot, destroying what is newer.
    Rollback { to: String, discards: Vec<String> },
    /// Destroy the target with everything below it (`--force-delete`, when
    /// it shares nothing with the source), before a full send.
    DestroyTarget { snapshots: Vec<String> },
    /// Destroy target snapshots whose names arriving snapshots need
    /// (`--force-delete`).
    DestroySnapshots { snapshots: Vec<String> },
    /// The first send: the oldest source snapshot, whole.
    Full {
        snapshot: Snap,
        raw: bool,
        snapshots: u64,
        estimated_bytes: Option<u64>,
    },
    /// From `from` to `to` (`-I`: with every snapshot in between when
    /// `intermediates`; `-i` otherwise).
    Incremental {
        from: Base,
        to: Snap,
        intermediates: bool,
        raw: bool,
        snapshots: u64,
        estimated_bytes: Option<u64>,
    },
}

impl Step {
    /// `full send of @s1`, `incremental @s1 → @s9 with every snapshot in
    /// between`: for dry runs, logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Step::AbortResume { reason } => {
                format!("discard the interrupted receive ({reason})")
            }
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
            Step::DestroyTarget { snapshots } => format!(
                "destroy the target, which shares no snapshot with the source ({})",
                plural(snapshots.len(), "snapshot")
            ),
            Step::DestroySnapshots { snapshots } => format!(
                "destroy {} on the target, whose names arriving snapshots need",
                snapshots
                    .iter()
                    .map(|d| format!("@{d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Full { snapshot, .. } => format!("full send of @{}", snapshot.name),
            Step::Incremental {
                from,
                to,
                intermediates,
                ..
            } => {
                let sep = match from {
                    Base::Snapshot { .. } => "@",
                    Base::Bookmark { .. } => "#",
                };
                format!(
                    "incremental {sep}{} → @{}{}",
                    from.name(),
                    to.name,
                    if *intermediates {
                        " with every snapshot in between"
                    } else {
                        ""
                    }
                )
            }
        }
    }

    /// Snapshots this step brings to the target.
    pub fn snapshots(&self) -> u64 {
        match self {
            Step::Resume { snapshots, .. }
            | Step::Full { snapshots, .. }
            | Step::Incremental { snapshots, .. } => *snapshots,
            Step::AbortResume { .. }
            | Step::Rollback { .. }
            | Step::DestroyTarget { .. }
            | Step::DestroySnapshots { .. } => 0,
        }
    }

    /// Whether the step moves a stream.
    pub fn is_transfer(&self) -> bool {
        matches!(
            self,
            Step::Resume { .. } | Step::Full { .. } | Step::Incremental { .. }
        )
    }

    pub fn estimated_bytes(&self) -> Option<u64> {
        match self {
            Step::Resume {
                estimated_bytes, ..
            }
            | Step::Full {
                estimated_bytes, ..
            }
            | Step::Incremental {
                estimated_bytes, ..
            } => *estimated_bytes,
            Step::AbortResume { .. }
            | Step::Rollback { .. }
            | Step::DestroyTarget { .. }
            | Step::DestroySnapshots { .. } => None,
        }
    }
}

/// Why a replication will not run. Each says what the user can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
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
    /// Target snapshots have the names of arriving snapshots, but are others.
    SnapshotNamesTaken { snapshots: Vec<String> },
    /// `--create-bookmark`: both names it can give the new base's bookmark
    /// belong to bookmarks of other snapshots.
    BookmarkTaken {
        snapshot: String,
        names: Vec<String>,
    },
}

impl Refusal {
    pub fn message(&self, source: &str, target: &str) -> String {
        match self {
            Refusal::NoSourceSnapshots => format!("{source} has no snapshots to send yet"),
            Refusal::Diverged { common, target_only } => format!(
                "{target} has diverged from {source}: it has {} the source does not have ({}) after the last common snapshot @{common}",
                plural(target_only.len(), "snapshot"),
                target_only.iter().map(|s| format!("@{s}")).collect::<Vec<_>>().join(", ")
            ),
            Refusal::TargetModified { common, written } => format!(
                "{target} was changed after its newest snapshot @{common} ({written} bytes written)"
            ),
            Refusal::NoCommonSnapshot { target_snapshots } => format!(
                "{target} has {} but none in common with {source} (by guid), so no incremental is possible",
                plural(target_snapshots.len(), "snapshot")
            ),
            Refusal::TargetNotEmpty => format!("{target} exists but has no snapshots; it was not made by a replication from {source}"),
            Refusal::SnapshotNamesTaken { snapshots } => format!(
                "{target} has {} named like snapshots of {source} that would arrive, but they are other snapshots (by guid): {}",
                plural(snapshots.len(), "snapshot"),
                snapshots.iter().map(|s| format!("@{s}")).collect::<Vec<_>>().join(", ")
            ),
            Refusal::BookmarkTaken { snapshot, names } => format!(
                "{source}: --create-bookmark cannot bookmark @{snapshot}: {} already name bookmarks of other snapshots",
                names.iter().map(|n| format!("#{n}")).collect::<Vec<_>>().join(" and ")
            ),
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            Refusal::NoSourceSnapshots => "take a snapshot on the source (zfleet snapshot), or use a sync snapshot",
            Refusal::Diverged { .. } | Refusal::TargetModified { .. } => {
                "if what the target has beyond the common snapshot can go, run again with --rollback; otherwise copy it elsewhere first"
            }
            Refusal::NoCommonSnapshot { .. } | Refusal::TargetNotEmpty => {
                "zfleet will not overwrite it; rename or destroy the target yourself if it can go (or run zfleet sync with --force-delete), and the next run sends everything"
            }
            Refusal::SnapshotNamesTaken { .. } => {
                "rename or destroy those target snapshots if they can go (zfleet sync --force-delete destroys them), then run again"
            }
            Refusal::BookmarkTaken { .. } => {
                "rename or destroy one of those bookmarks on the source (zfs rename / zfs destroy), or run without --create-bookmark"
            }
        }
    }
}

pub use crate::words::plural;

/// The decision, with everything the executor runs and a dry run shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Plan {
    /// The target already has the newest source snapshot.
    UpToDate {
        base: Snap,
        base_moves: BaseMoves,
    },
    /// Steps to run in order, then the base moves to `new_base`.
    Send {
        /// Where the incremental sends start: the newest snapshot (or
        /// bookmark) both sides share, or once a resumed receive is done, the
        /// snapshot it brings. `None` for a first send.
        base: Option<Base>,
        steps: Vec<Step>,
        /// The newest source snapshot: the common base once the steps ran.
        new_base: Snap,
        base_moves: BaseMoves,
    },
    Refused {
        refusal: Refusal,
    },
    /// Nothing to send (the source has no snapshot), but the target's
    /// partial receive is stale and goes.
    Discard {
        steps: Vec<Step>,
    },
}

impl Plan {
    pub fn steps(&self) -> &[Step] {
        match self {
            Plan::Send { steps, .. } | Plan::Discard { steps } => steps,
            _ => &[],
        }
    }

    pub fn steps_mut(&mut self) -> &mut [Step] {
        match self {
            Plan::Send { steps, .. } => steps,
            _ => &mut [],
        }
    }
}

/// Decides what to send from the source to the target.
pub fn plan(obs: &Observed, opts: &Options) -> Plan {
    let source = &obs.source;
    let mut target = obs.target.clone();
    let mut steps = Vec::new();

    // An interrupted receive comes first, even when the source has nothing
    // to send: it is resumed, and the plan goes on from what the target
    // holds once it is; or it is stale and discarded, and the plan goes on
    // as if it had not been there.
    if let Some(r) = target.resume.take() {
        let verdict = if opts.no_resume {
            Err("--no-resume asks for a new stream".to_string())
        } else {
            resumable(&r, source)
        };
        match verdict {
            Ok((to, contents)) => {
                steps.push(Step::Resume {
                    token: r.token.clone(),
                    to: Snap::from(to),
                    snapshots: 1,
                    estimated_bytes: contents.size,
                });
                // Received after everything the target holds, so it is its
                // newest: its txg there is past theirs, whatever it is on the
                // source (a target in the same pool, as in syncoid's tests,
                // has later txgs than the source's snapshot).
                let mut received = to.clone();
                if let Some(newest) = target.snapshots.iter().map(|s| s.createtxg).max() {
                    received.createtxg = received.createtxg.max(newest + 1);
                }
                target.exists = true;
                target.snapshots.push(received);
                target.written = Some(0);
            }
            Err(reason) => {
                steps.push(Step::AbortResume { reason });
                // A partial first receive is all there was of the dataset.
                if target.snapshots.is_empty() {
                    target.exists = false;
                }
            }
        }
    }

    let Some(newest) = source.snapshots.last() else {
        if steps.is_empty() {
            return Plan::Refused {
                refusal: Refusal::NoSourceSnapshots,
            };
        }
        return Plan::Discard { steps };
    };
    if opts.moves.create_bookmark {
        if let Some(names) = base_moves::bookmark_clash(source, newest) {
            return Plan::Refused {
                refusal: Refusal::BookmarkTaken {
                    snapshot: newest.name.clone(),
                    names,
                },
            };
        }
    }

    // The newest target snapshot that the source still has, or has a bookmark of.
    let common = target.snapshots.iter().rev().find_map(|t| {
        if let Some(s) = source.snapshots.iter().find(|s| s.guid == t.guid) {
            return Some((t.clone(), Base::snapshot(s), s.createtxg));
        }
        if opts.bookmarks {
            if let Some(b) = source.bookmarks.iter().find(|b| b.guid == t.guid) {
                return Some((
                    t.clone(),
                    Base::Bookmark {
                        name: b.name.clone(),
                        guid: b.guid,
                    },
                    b.createtxg,
                ));
            }
        }
        None
    });
    if target.exists && common.is_none() {
        let refusal = if target.snapshots.is_empty() {
            Refusal::TargetNotEmpty
        } else {
            Refusal::NoCommonSnapshot {
                target_snapshots: target.snapshots.iter().map(|s| s.name.clone()).collect(),
            }
        };
        if !opts.force_delete {
            return Plan::Refused { refusal };
        }
        steps.push(Step::DestroyTarget {
            snapshots: target.snapshots.iter().map(|s| s.name.clone()).collect(),
        });
        target = Dataset::default();
    }

    let Some((common_t, base, base_txg)) = common.filter(|_| target.exists) else {
        let first = if opts.no_stream {
            newest
        } else {
            &source.snapshots[0]
        };
        steps.push(Step::Full {
            snapshot: Snap::from(first),
            raw: opts.raw,
            snapshots: 1,
            estimated_bytes: None,
        });
        if first.guid != newest.guid {
            chain(
                source,
                Base::snapshot(first),
                first.createtxg,
                newest,
                opts,
                &mut steps,
            );
        }
        return send(None, steps, newest, &target, &[], obs, opts);
    };

    let target_only: Vec<String> = target
        .snapshots
        .iter()
        .filter(|t| t.createtxg > common_t.createtxg)
        .map(|t| t.name.clone())
        .collect();
    let written = target.written.unwrap_or(0);
    let newest_is_common = target.snapshots.last().map(|t| t.guid) == Some(common_t.guid);
    let mut discarded: Vec<String> = Vec::new();
    if !target_only.is_empty() {
        if !opts.rollback {
            return Plan::Refused {
                refusal: Refusal::Diverged {
                    common: common_t.name.clone(),
                    target_only,
                },
            };
        }
        discarded.clone_from(&target_only);
        steps.push(Step::Rollback {
            to: common_t.name.clone(),
            discards: target_only,
        });
    } else if written > 0 && newest_is_common {
        if !opts.rollback {
            return Plan::Refused {
                refusal: Refusal::TargetModified {
                    common: common_t.name.clone(),
                    written,
                },
            };
        }
        steps.push(Step::Rollback {
            to: common_t.name.clone(),
            discards: Vec::new(),
        });
    }

    if common_t.guid == newest.guid {
        if steps.is_empty() {
            return Plan::UpToDate {
                base: Snap::from(newest),
                base_moves: base_moves::plan(
                    source,
                    &source.snapshots,
                    &target,
                    &target.snapshots,
                    newest,
                    &opts.moves,
                ),
            };
        }
        return send(Some(base), steps, newest, &target, &discarded, obs, opts);
    }

    chain(source, base.clone(), base_txg, newest, opts, &mut steps);
    send(Some(base), steps, newest, &target, &discarded, obs, opts)
}

/// The incrementals from `from` to `newest`: one `-I` stream with every
/// snapshot in between; with `no_stream` one `-i` to the newest; with
/// `one_by_one` a `-i` per snapshot. `-I` cannot start at a bookmark, so from
/// one the first snapshot after it goes with `-i`, the rest with `-I`.
fn chain(
    source: &Dataset,
    from: Base,
    from_txg: u64,
    newest: &Point,
    opts: &Options,
    steps: &mut Vec<Step>,
) {
    if opts.no_stream {
        steps.push(incremental(source, from, from_txg, newest, false, opts));
        return;
    }
    let after = |txg: u64| {
        source
            .snapshots
            .iter()
            .filter(move |s| s.createtxg > txg && s.createtxg <= newest.createtxg)
    };
    if opts.one_by_one {
        let (mut from, mut from_txg) = (from, from_txg);
        for s in after(from_txg).collect::<Vec<_>>() {
            steps.push(incremental(source, from, from_txg, s, false, opts));
            from = Base::snapshot(s);
            from_txg = s.createtxg;
        }
        return;
    }
    match &from {
        Base::Snapshot { .. } => {
            steps.push(incremental(source, from, from_txg, newest, true, opts));
        }
        Base::Bookmark { .. } => {
            if let Some(first) = after(from_txg).next() {
                steps.push(incremental(source, from, from_txg, first, false, opts));
                if first.guid != newest.guid {
                    steps.push(incremental(
                        source,
                        Base::snapshot(first),
                        first.createtxg,
                        newest,
                        true,
                        opts,
                    ));
                }
            }
        }
    }
}

/// The snapshot a resume token brings, if the source can still send it;
/// otherwise why the token is stale.
fn resumable<'a>(
    r: &'a ResumeState,
    source: &'a Dataset,
) -> Result<(&'a Point, &'a TokenContents), String> {
    let c = r
        .contents
        .as_ref()
        .map_err(|why| format!("the source cannot continue it: {why}"))?;
    let Some(to) = source.snapshots.iter().find(|s| s.guid == c.to_guid) else {
        return Err(format!(
            "it continues @{}, which the source no longer has",
            c.to_name
        ));
    };
    if let Some(from) = c.from_guid {
        let has = source.snapshots.iter().any(|s| s.guid == from)
            || source.bookmarks.iter().any(|b| b.guid == from);
        if !has {
            return Err(format!(
                "the incremental it continues starts at a snapshot the source no longer has (guid {from:#x})"
            ));
        }
    }
    Ok((to, c))
}

fn incremental(
    source: &Dataset,
    from: Base,
    from_txg: u64,
    to: &Point,
    intermediates: bool,
    opts: &Options,
) -> Step {
    let snapshots = if intermediates {
        source
            .snapshots
            .iter()
            .filter(|s| s.createtxg > from_txg && s.createtxg <= to.createtxg)
            .count() as u64
    } else {
        1
    };
    Step::Incremental {
        from,
        to: Snap::from(to),
        intermediates,
        raw: opts.raw,
        snapshots,
        estimated_bytes: None,
    }
}

/// A plan that sends, with the base moves for once its steps ran: what the
/// target holds then is what it holds now, less what a rollback discards,
/// plus every source snapshot the streams bring.
fn send(
    base: Option<Base>,
    mut steps: Vec<Step>,
    newest: &Point,
    target: &Dataset,
    discarded: &[String],
    obs: &Observed,
    opts: &Options,
) -> Plan {
    let source = &obs.source;
    let mut target_after: Vec<Point> = target
        .snapshots
        .iter()
        .filter(|t| !discarded.contains(&t.name))
        .cloned()
        .collect();
    for step in &steps {
        let (from_txg, to, all) = match step {
            Step::Full { snapshot, .. } => (0, snapshot.guid, false),
            Step::Resume { to, .. } => (0, to.guid, false),
            Step::Incremental {
                from,
                to,
                intermediates,
                ..
            } => {
                let from_txg = source
                    .snapshots
                    .iter()
                    .chain(&source.bookmarks)
                    .find(|p| p.guid == from.guid())
                    .map_or(0, |p| p.createtxg);
                (from_txg, to.guid, *intermediates)
            }
            Step::AbortResume { .. }
            | Step::Rollback { .. }
            | Step::DestroyTarget { .. }
            | Step::DestroySnapshots { .. } => continue,
        };
        let Some(to_txg) = source
            .snapshots
            .iter()
            .find(|s| s.guid == to)
            .map(|s| s.createtxg)
        else {
            continue;
        };
        for s in &source.snapshots {
            let arrives =
                s.createtxg == to_txg || (all && s.createtxg > from_txg && s.createtxg < to_txg);
            if arrives && !target_after.iter().any(|t| t.guid == s.guid) {
                target_after.push(s.clone());
            }
        }
    }
    // A snapshot cannot arrive where the target has another of its name:
    // the receive would fail halfway through the plan.
    let arrived: Vec<&Point> = target_after
        .iter()
        .filter(|a| !target.snapshots.iter().any(|t| t.guid == a.guid))
        .collect();
    let taken: Vec<String> = target
        .snapshots
        .iter()
        .filter(|t| !discarded.contains(&t.name))
        .filter(|t| arrived.iter().any(|a| a.name == t.name && a.guid != t.guid))
        .map(|t| t.name.clone())
        .collect();
    if !taken.is_empty() {
        if !opts.force_delete {
            return Plan::Refused {
                refusal: Refusal::SnapshotNamesTaken { snapshots: taken },
            };
        }
        let at = steps
            .iter()
            .position(Step::is_transfer)
            .unwrap_or(steps.len());
        steps.insert(
            at,
            Step::DestroySnapshots {
                snapshots: taken.clone(),
            },
        );
        target_after.retain(|t| {
            !(taken.contains(&t.name) && target.snapshots.iter().any(|o| o.guid == t.guid))
        });
    }
    let mut target_marked = target.clone();
    target_marked
        .marked
        .retain(|m| !discarded.contains(m) && !taken.contains(m));
    Plan::Send {
        base,
        steps,
        new_base: Snap::from(newest),
        base_moves: base_moves::plan(
            source,
            &source.snapshots,
            &target_marked,
            &target_after,
            newest,
            &opts.moves,
        ),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
