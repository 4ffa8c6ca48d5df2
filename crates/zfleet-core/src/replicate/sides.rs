//! What each side of a replication holds, as the planner and the base moves
//! take it: snapshots and bookmarks by guid, the marked base, a partial
//! receive with what its token continues.

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

/// A snapshot by name and guid, as plans and reports name one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snap {
    pub name: String,
    pub guid: u64,
}

impl From<&Point> for Snap {
    fn from(p: &Point) -> Self {
        Self {
            name: p.name.clone(),
            guid: p.guid,
        }
    }
}

/// What a partial receive's token says it continues, read from the token by
/// the sender (`zfs send -nvP -t`) when the sides were observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenContents {
    /// The snapshot being received (its name after `@` on the source).
    pub to_name: String,
    pub to_guid: u64,
    /// The incremental's start; `None` for a full stream.
    pub from_guid: Option<u64>,
    /// What the sender says remains to be sent.
    pub size: Option<u64>,
}

/// A partially received stream (`recv -s`) on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResumeState {
    pub token: String,
    /// What it continues, or why the sender could not say (it no longer
    /// has what the token names).
    pub contents: Result<TokenContents, String>,
}

/// One side of a replication: a dataset and what it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dataset {
    pub exists: bool,
    /// Oldest first (by createtxg).
    pub snapshots: Vec<Point>,
    pub bookmarks: Vec<Point>,
    /// Names of the snapshots that carry this server's base marker.
    pub marked: Vec<String>,
    /// A partial receive waiting to be resumed (target only).
    pub resume: Option<ResumeState>,
    /// Bytes written since the newest snapshot (`written`), where the dialect has it.
    pub written: Option<u64>,
}

/// Both sides as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub source: Dataset,
    pub target: Dataset,
}
