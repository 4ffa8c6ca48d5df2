//! How the base marks move once a replication's steps ran — a pure function
//! of what each side holds, what its dialect can do and whether it answers
//! through `zfleet serve`.
//!
//! The new base is marked first (the `zfleet:base:<server>` property and a
//! hold with that tag, and on the source a bookmark where the dialect has
//! them); only then are the old marks cleared. So at every moment at least one
//! common snapshot is protected on both sides, whatever step fails.

use serde::Serialize;

use super::sides::{Dataset, Point};
use crate::protocol::{base_bookmark, base_bookmark_prefix, is_sync_snapshot_of};

/// Who the marks belong to and what the sides can do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveContext {
    /// The server's base marker property and hold tag.
    pub marker: String,
    /// The source's dialect has bookmarks.
    pub source_bookmarks: bool,
    /// The source answers through `zfleet serve`, whose account may destroy
    /// nothing: superseded bookmarks stay until a run with root access.
    pub source_served: bool,
    /// The server whose older sync snapshots go once the base moved, when
    /// the job takes sync snapshots.
    pub sync_server: Option<String>,
}

/// One change to one side's marks, in the order they are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "move", rename_all = "snake_case")]
pub enum BaseMove {
    /// Set the marker property on the new base.
    Mark { snapshot: String },
    /// Hold the new base with the marker's tag, so nothing can destroy it.
    Hold { snapshot: String },
    /// Bookmark the new base (source only).
    Bookmark { snapshot: String, bookmark: String },
    /// Destroy this server's superseded bookmark.
    DestroyBookmark { bookmark: String },
    /// Release the old base's hold.
    Release { snapshot: String },
    /// Clear the marker property from the old base.
    Unmark { snapshot: String },
    /// Destroy this server's older sync snapshot.
    DestroySyncSnapshot { snapshot: String },
}

impl BaseMove {
    pub fn describe(&self) -> String {
        match self {
            BaseMove::Mark { snapshot } => format!("mark @{snapshot} as the base"),
            BaseMove::Hold { snapshot } => format!("hold @{snapshot}"),
            BaseMove::Bookmark { snapshot, bookmark } => {
                format!("bookmark @{snapshot} as #{bookmark}")
            }
            BaseMove::DestroyBookmark { bookmark } => format!("destroy #{bookmark}"),
            BaseMove::Release { snapshot } => format!("release @{snapshot}"),
            BaseMove::Unmark { snapshot } => format!("unmark @{snapshot}"),
            BaseMove::DestroySyncSnapshot { snapshot } => {
                format!("destroy the old sync snapshot @{snapshot}")
            }
        }
    }
}

/// The moves on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BaseMoves {
    pub source: Vec<BaseMove>,
    pub target: Vec<BaseMove>,
}

impl BaseMoves {
    pub fn is_empty(&self) -> bool {
        self.source.is_empty() && self.target.is_empty()
    }
}

/// The moves that make `base` the marked base on both sides. `*_after` are
/// the snapshots each side holds once the plan's steps ran; `marked` on each
/// side lists its marked snapshots then (a rollback's discards are gone).
pub fn plan(
    source: &Dataset,
    source_after: &[Point],
    target: &Dataset,
    target_after: &[Point],
    base: &Point,
    ctx: &MoveContext,
) -> BaseMoves {
    BaseMoves {
        source: side(source, source_after, base, ctx, true),
        target: side(target, target_after, base, ctx, false),
    }
}

/// The moves that make `snapshot` the base on a dataset that has no marks
/// yet and is the source of the next backups (a restored client dataset).
pub fn fresh(snapshot: &str, marker: &str, bookmarks: bool) -> Vec<BaseMove> {
    let mut moves = vec![
        BaseMove::Mark {
            snapshot: snapshot.to_string(),
        },
        BaseMove::Hold {
            snapshot: snapshot.to_string(),
        },
    ];
    if bookmarks {
        moves.push(BaseMove::Bookmark {
            snapshot: snapshot.to_string(),
            bookmark: base_bookmark(marker, snapshot),
        });
    }
    moves
}

fn side(
    d: &Dataset,
    after: &[Point],
    base: &Point,
    ctx: &MoveContext,
    is_source: bool,
) -> Vec<BaseMove> {
    // The base by guid on this side: the same snapshot may have another name here.
    let Some(here) = after.iter().find(|s| s.guid == base.guid) else {
        return Vec::new();
    };
    let name = &here.name;
    let mut moves = Vec::new();
    if !d.marked.contains(name) {
        moves.push(BaseMove::Mark {
            snapshot: name.clone(),
        });
        moves.push(BaseMove::Hold {
            snapshot: name.clone(),
        });
    }
    if is_source && ctx.source_bookmarks {
        let want = base_bookmark(&ctx.marker, name);
        if !d.bookmarks.iter().any(|b| b.name == want) {
            moves.push(BaseMove::Bookmark {
                snapshot: name.clone(),
                bookmark: want.clone(),
            });
        }
        if !ctx.source_served {
            let prefix = base_bookmark_prefix(&ctx.marker);
            for b in &d.bookmarks {
                if b.name.starts_with(&prefix) && b.name != want {
                    moves.push(BaseMove::DestroyBookmark {
                        bookmark: b.name.clone(),
                    });
                }
            }
        }
    }
    for old in d.marked.iter().filter(|m| *m != name) {
        // A marked snapshot the side no longer holds has no marks to clear.
        if !after.iter().any(|s| &s.name == old) {
            continue;
        }
        moves.push(BaseMove::Release {
            snapshot: old.clone(),
        });
        moves.push(BaseMove::Unmark {
            snapshot: old.clone(),
        });
    }
    if let Some(server) = &ctx.sync_server {
        for s in after {
            if &s.name != name && is_sync_snapshot_of(&s.name, server) {
                moves.push(BaseMove::DestroySyncSnapshot {
                    snapshot: s.name.clone(),
                });
            }
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, guid: u64) -> Point {
        Point {
            name: name.into(),
            guid,
            createtxg: guid * 10,
            creation: 0,
        }
    }

    fn ctx() -> MoveContext {
        MoveContext {
            marker: "zfleet:base:vault".into(),
            source_bookmarks: true,
            source_served: false,
            sync_server: None,
        }
    }

    fn describe(m: &[BaseMove]) -> Vec<String> {
        m.iter().map(BaseMove::describe).collect()
    }

    #[test]
    fn the_new_base_is_marked_before_the_old_is_cleared() {
        let d = Dataset {
            exists: true,
            snapshots: vec![p("a", 1), p("b", 2)],
            bookmarks: vec![p("zfleet_vault:a", 1), p("mine", 1)],
            marked: vec!["a".into()],
            ..Dataset::default()
        };
        let after = d.snapshots.clone();
        let m = side(&d, &after, &p("b", 2), &ctx(), true);
        assert_eq!(
            describe(&m),
            [
                "mark @b as the base",
                "hold @b",
                "bookmark @b as #zfleet_vault:b",
                "destroy #zfleet_vault:a",
                "release @a",
                "unmark @a"
            ]
        );
        // On the target: no bookmarks, and the base is found by guid under
        // its name there.
        let t = Dataset {
            snapshots: vec![p("a", 1)],
            marked: vec!["a".into()],
            ..d.clone()
        };
        let after = vec![p("a", 1), p("renamed-b", 2)];
        assert_eq!(
            describe(&side(&t, &after, &p("b", 2), &ctx(), false)),
            [
                "mark @renamed-b as the base",
                "hold @renamed-b",
                "release @a",
                "unmark @a"
            ]
        );
    }

    #[test]
    fn nothing_moves_when_the_base_is_already_marked() {
        let d = Dataset {
            exists: true,
            snapshots: vec![p("a", 1)],
            bookmarks: vec![p("zfleet_vault:a", 1)],
            marked: vec!["a".into()],
            ..Dataset::default()
        };
        assert!(side(&d, &d.snapshots, &p("a", 1), &ctx(), true).is_empty());
    }

    #[test]
    fn through_serve_superseded_bookmarks_stay_and_sync_snapshots_go() {
        let d = Dataset {
            exists: true,
            snapshots: vec![
                p("zfleet_sync_vault_2026-01-01_00:00:00", 1),
                p("zfleet_sync_other_2026-01-01_00:00:00", 2),
                p("zfleet_sync_vault_2026-01-02_00:00:00", 3),
            ],
            bookmarks: vec![p("zfleet_vault:zfleet_sync_vault_2026-01-01_00:00:00", 1)],
            marked: vec!["zfleet_sync_vault_2026-01-01_00:00:00".into()],
            ..Dataset::default()
        };
        let c = MoveContext {
            source_served: true,
            sync_server: Some("vault".into()),
            ..ctx()
        };
        assert_eq!(
            describe(&side(&d, &d.snapshots, &p("zfleet_sync_vault_2026-01-02_00:00:00", 3), &c, true)),
            [
                "mark @zfleet_sync_vault_2026-01-02_00:00:00 as the base",
                "hold @zfleet_sync_vault_2026-01-02_00:00:00",
                "bookmark @zfleet_sync_vault_2026-01-02_00:00:00 as #zfleet_vault:zfleet_sync_vault_2026-01-02_00:00:00",
                "release @zfleet_sync_vault_2026-01-01_00:00:00",
                "unmark @zfleet_sync_vault_2026-01-01_00:00:00",
                "destroy the old sync snapshot @zfleet_sync_vault_2026-01-01_00:00:00"
            ]
        );
    }

    #[test]
    fn a_side_without_the_base_gets_no_moves() {
        let d = Dataset::default();
        assert!(side(&d, &[], &p("a", 1), &ctx(), false).is_empty());
    }
}
