//! Typed ZFS object names, validated when parsed.
//!
//! zfleet is stricter than ZFS: ZFS accepts spaces in names, zfleet refuses them,
//! so that no name can change meaning when it crosses a shell on a remote host.
//! Everything that passes [`DatasetName::parse`] is safe to print unquoted.

use std::fmt;

use serde::{Deserialize, Serialize};

/// ZFS_MAX_DATASET_NAME_LEN is 256 including the terminating NUL.
pub const MAX_NAME_LEN: usize = 255;

/// Pool names ZFS reserves for vdev keywords.
const RESERVED_POOL_NAMES: &[&str] = &["mirror", "raidz", "draid", "spare", "log", "special"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name `{}`: {reason}", crate::text::printable(.input))]
pub struct NameError {
    pub kind: NameKind,
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Pool,
    Dataset,
    Snapshot,
    Bookmark,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Pool => "pool",
            NameKind::Dataset => "dataset",
            NameKind::Snapshot => "snapshot",
            NameKind::Bookmark => "bookmark",
        })
    }
}

fn allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
}

/// Checks one component (between `/`, or after `@`/`#`). Returns the reason it is
/// invalid. `offset` is where the component starts in the whole name, so the
/// reported position points into what the user typed.
fn check_component(component: &str, offset: usize) -> Result<(), String> {
    if component.is_empty() {
        return Err(format!("empty component at position {}", offset + 1));
    }
    if component == "." || component == ".." {
        return Err(format!("component `{component}` is not allowed"));
    }
    // Bytes, not chars: every allowed character is ASCII, so the first byte
    // refused starts the character to report. Listings of 100,000 snapshots
    // go through here.
    if let Some(i) = component.bytes().position(|b| !allowed_byte(b)) {
        let c = component[i..].chars().next().unwrap_or('\u{fffd}');
        let shown = crate::text::describe_char(c);
        return Err(format!(
            "{shown} at position {} is not allowed (use letters, digits, `-`, `_`, `.`, `:`)",
            offset + i + 1
        ));
    }
    Ok(())
}

fn err(kind: NameKind, input: &str, reason: impl Into<String>) -> NameError {
    NameError {
        kind,
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// A pool name: the first component of every dataset name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolName(String);

impl PoolName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_pool(s, s).map_err(|r| err(NameKind::Pool, s, r))?;
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pool's root dataset, which has the pool's name.
    pub fn dataset(&self) -> DatasetName {
        DatasetName(self.0.as_str().into())
    }
}

fn check_pool(pool: &str, _whole: &str) -> Result<(), String> {
    check_component(pool, 0)?;
    if !pool.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("a pool name must begin with a letter".into());
    }
    let starts_with = |r: &str| {
        pool.get(..r.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(r))
    };
    if RESERVED_POOL_NAMES.iter().any(|r| {
        pool.eq_ignore_ascii_case(r) || (matches!(*r, "raidz" | "draid") && starts_with(r))
    }) {
        return Err(format!("`{pool}` is a reserved word in ZFS"));
    }
    let b = pool.as_bytes();
    if b.len() >= 2 && b[0] == b'c' && b[1].is_ascii_digit() {
        return Err("a pool name may not look like a disk (`c` followed by a digit)".into());
    }
    Ok(())
}

/// A filesystem or volume name such as `zroot/persistSave`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
// Shared, not owned: every snapshot in a listing, plan and report holds its
// dataset's name, and a clone is then a count, not a copy.
pub struct DatasetName(std::sync::Arc<str>);

impl DatasetName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_dataset(s).map_err(|r| err(NameKind::Dataset, s, r))?;
        Ok(Self(s.into()))
    }

    /// For names written in zfleet's own source, which the tests check.
    pub(crate) fn trusted(s: &str) -> Self {
        debug_assert!(Self::parse(s).is_ok(), "{s}");
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn pool(&self) -> PoolName {
        PoolName(self.0.split('/').next().unwrap_or(&self.0).to_string())
    }

    /// The path below the pool: `persistSave` for `zroot/persistSave`, empty for a pool.
    pub fn path_in_pool(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, rest)| rest)
    }

    pub fn is_pool_root(&self) -> bool {
        !self.0.contains('/')
    }

    pub fn parent(&self) -> Option<DatasetName> {
        self.0.rsplit_once('/').map(|(p, _)| DatasetName(p.into()))
    }

    /// Appends a relative path (already valid components). Fails on a too-long result.
    pub fn join(&self, rel: &str) -> Result<DatasetName, NameError> {
        if rel.is_empty() {
            return Ok(self.clone());
        }
        DatasetName::parse(&format!("{}/{}", self.0, rel))
    }

    /// True if `self` is `other` or lies below it.
    pub fn is_within(&self, other: &DatasetName) -> bool {
        self.0 == other.0
            || (self.0.starts_with(other.as_str())
                && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    pub fn snapshot(&self, snap: &str) -> Result<SnapshotName, NameError> {
        let whole = || format!("{}@{}", self.0, snap);
        check_component(snap, self.0.len() + 1)
            .map_err(|r| err(NameKind::Snapshot, &whole(), r))?;
        check_len_of(self.0.len() + 1 + snap.len())
            .map_err(|r| err(NameKind::Snapshot, &whole(), r))?;
        Ok(SnapshotName {
            dataset: self.clone(),
            name: snap.to_string(),
        })
    }
}

fn check_len(s: &str) -> Result<(), String> {
    check_len_of(s.len())
}

fn check_len_of(len: usize) -> Result<(), String> {
    if len > MAX_NAME_LEN {
        return Err(format!(
            "{len} characters long, ZFS allows at most {MAX_NAME_LEN}"
        ));
    }
    Ok(())
}

fn check_dataset(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the name is empty".into());
    }
    check_len(s)?;
    if let Some(i) = s.find(['@', '#']) {
        return Err(format!(
            "`{}` at position {} belongs in snapshot or bookmark names only",
            &s[i..=i],
            i + 1
        ));
    }
    if s.starts_with('/') {
        return Err("a dataset name does not start with `/` (it is not a path)".into());
    }
    if s.ends_with('/') {
        return Err("trailing `/`".into());
    }
    let mut offset = 0;
    for (i, component) in s.split('/').enumerate() {
        if i == 0 {
            check_pool(component, s)?;
        } else {
            check_component(component, offset)?;
        }
        offset += component.len() + 1;
    }
    Ok(())
}

impl std::str::FromStr for DatasetName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

/// Lets maps keyed by dataset be searched by `&str` (ranges over a subtree).
/// Ordering and equality are those of the string, so this is consistent.
impl std::borrow::Borrow<str> for DatasetName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatasetName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}
impl From<DatasetName> for String {
    fn from(n: DatasetName) -> String {
        n.0.as_ref().to_string()
    }
}
impl TryFrom<String> for PoolName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}
impl From<PoolName> for String {
    fn from(n: PoolName) -> String {
        n.0
    }
}

/// `dataset@name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotName {
    pub dataset: DatasetName,
    pub name: String,
}

impl SnapshotName {
    /// Checks the part after `@` alone (a `--snapshot` option), reporting
    /// positions in what was given rather than in a made-up full name.
    pub fn check_short(snap: &str) -> Result<(), NameError> {
        if snap.contains(['@', '#']) {
            return Err(err(NameKind::Snapshot, snap, "more than one `@` or `#`"));
        }
        check_component(snap, 0).map_err(|r| err(NameKind::Snapshot, snap, r))?;
        check_len(snap).map_err(|r| err(NameKind::Snapshot, snap, r))
    }

    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (ds, snap) = s
            .split_once('@')
            .ok_or_else(|| err(NameKind::Snapshot, s, "missing `@`"))?;
        let dataset = DatasetName::parse(ds).map_err(|e| err(NameKind::Snapshot, s, e.reason))?;
        if snap.contains(['@', '#']) {
            return Err(err(NameKind::Snapshot, s, "more than one `@` or `#`"));
        }
        dataset.snapshot(snap)
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.dataset, self.name)
    }
}

impl Serialize for SnapshotName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `dataset#name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BookmarkName {
    pub dataset: DatasetName,
    pub name: String,
}

impl BookmarkName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (ds, bm) = s
            .split_once('#')
            .ok_or_else(|| err(NameKind::Bookmark, s, "missing `#`"))?;
        let dataset = DatasetName::parse(ds).map_err(|e| err(NameKind::Bookmark, s, e.reason))?;
        if bm.contains(['@', '#']) {
            return Err(err(NameKind::Bookmark, s, "more than one `@` or `#`"));
        }
        check_component(bm, ds.len() + 1).map_err(|r| err(NameKind::Bookmark, s, r))?;
        check_len(s).map_err(|r| err(NameKind::Bookmark, s, r))?;
        Ok(Self {
            dataset,
            name: bm.to_string(),
        })
    }
}

impl fmt::Display for BookmarkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.dataset, self.name)
    }
}

impl Serialize for BookmarkName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any object `zfs list -t all` can print.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectName {
    Dataset(DatasetName),
    Snapshot(SnapshotName),
    Bookmark(BookmarkName),
}

impl ObjectName {
    /// Parses names as ZFS prints them. Unlike user input, these may contain spaces
    /// (ZFS allows them); such objects are reported by the caller, never acted on.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains('@') {
            SnapshotName::parse(s).map(ObjectName::Snapshot)
        } else if s.contains('#') {
            BookmarkName::parse(s).map(ObjectName::Bookmark)
        } else {
            DatasetName::parse(s).map(ObjectName::Dataset)
        }
    }

    /// [`ObjectName::parse`] for a listing, where a dataset's snapshots follow
    /// it: when the dataset part is `last`'s, it is not checked again. Any name
    /// the fast path does not accept goes through `parse`, so the result and
    /// every error are `parse`'s.
    pub(crate) fn parse_after(s: &str, last: &mut Option<DatasetName>) -> Result<Self, NameError> {
        // memchr, not `str::find` with a char pattern: this runs for every
        // object of a listing.
        let Some(i) = memchr::memchr2(b'@', b'#', s.as_bytes()) else {
            let d = DatasetName::parse(s)?;
            *last = Some(d.clone());
            return Ok(ObjectName::Dataset(d));
        };
        let (ds, short) = (&s[..i], &s[i + 1..]);
        if memchr::memchr2(b'@', b'#', short.as_bytes()).is_some()
            || check_component(short, i + 1).is_err()
            || check_len(s).is_err()
        {
            return Self::parse(s);
        }
        let dataset = match last {
            Some(d) if d.as_str() == ds => d.clone(),
            _ => match DatasetName::parse(ds) {
                Ok(d) => {
                    *last = Some(d.clone());
                    d
                }
                Err(_) => return Self::parse(s),
            },
        };
        let name = short.to_string();
        Ok(if s.as_bytes()[i] == b'@' {
            ObjectName::Snapshot(SnapshotName { dataset, name })
        } else {
            ObjectName::Bookmark(BookmarkName { dataset, name })
        })
    }

    pub fn dataset(&self) -> &DatasetName {
        match self {
            ObjectName::Dataset(d) => d,
            ObjectName::Snapshot(s) => &s.dataset,
            ObjectName::Bookmark(b) => &b.dataset,
        }
    }

    /// The part after `@` or `#`; a dataset's whole name.
    pub fn short(&self) -> &str {
        match self {
            ObjectName::Dataset(d) => d.as_str(),
            ObjectName::Snapshot(s) => &s.name,
            ObjectName::Bookmark(b) => &b.name,
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectName::Dataset(d) => d.fmt(f),
            ObjectName::Snapshot(s) => s.fmt(f),
            ObjectName::Bookmark(b) => b.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("zroot")]
    #[case("zroot/persistSave")]
    #[case("zstorage/backups/client-1/zroot/persist.save:x_y")]
    fn valid_datasets(#[case] s: &str) {
        assert_eq!(DatasetName::parse(s).unwrap().as_str(), s);
    }

    #[rstest]
    #[case("zroot/my data", "invalid dataset name `zroot/my data`: a space at position 9 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case("zroot/a;rm -rf", "invalid dataset name `zroot/a;rm -rf`: `;` at position 8 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case("zroot/it's", "invalid dataset name `zroot/it's`: `'` at position 9 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case("zroot/\"q\"", "invalid dataset name `zroot/\"q\"`: `\"` at position 7 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case("zroot/$(id)", "invalid dataset name `zroot/$(id)`: `$` at position 7 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case("zroot/a\nb", "invalid dataset name `zroot/a\\nb`: a newline at position 8 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case("zroot/a\u{a0}b", "invalid dataset name `zroot/a\u{a0}b`: U+00A0 (`\u{a0}`) at position 8 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case("zroot/\u{1b}[2J", "invalid dataset name `zroot/\\u{1b}[2J`: control character 0x1b at position 7 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)")]
    #[case(
        "zroot//x",
        "invalid dataset name `zroot//x`: empty component at position 7"
    )]
    #[case(
        "zroot/../etc",
        "invalid dataset name `zroot/../etc`: component `..` is not allowed"
    )]
    #[case(
        "/zroot",
        "invalid dataset name `/zroot`: a dataset name does not start with `/` (it is not a path)"
    )]
    #[case("zroot/x/", "invalid dataset name `zroot/x/`: trailing `/`")]
    #[case("zroot/x@snap", "invalid dataset name `zroot/x@snap`: `@` at position 8 belongs in snapshot or bookmark names only")]
    #[case(
        "1pool/x",
        "invalid dataset name `1pool/x`: a pool name must begin with a letter"
    )]
    #[case(
        "mirror/x",
        "invalid dataset name `mirror/x`: `mirror` is a reserved word in ZFS"
    )]
    #[case(
        "raidz2",
        "invalid dataset name `raidz2`: `raidz2` is a reserved word in ZFS"
    )]
    #[case("c0t0d0", "invalid dataset name `c0t0d0`: a pool name may not look like a disk (`c` followed by a digit)")]
    #[case("", "invalid dataset name ``: the name is empty")]
    fn invalid_datasets(#[case] s: &str, #[case] msg: &str) {
        assert_eq!(DatasetName::parse(s).unwrap_err().to_string(), msg);
    }

    #[test]
    fn too_long() {
        let long = format!("zroot/{}", "a".repeat(250));
        let e = DatasetName::parse(&long).unwrap_err();
        assert_eq!(e.reason, "256 characters long, ZFS allows at most 255");
        assert!(DatasetName::parse(&long[..255]).is_ok());
    }

    #[test]
    fn snapshots_and_bookmarks() {
        let s =
            SnapshotName::parse("zroot/persistSave@autosnap_2024-01-01_00:00:00_hourly").unwrap();
        assert_eq!(s.dataset.as_str(), "zroot/persistSave");
        assert_eq!(s.name, "autosnap_2024-01-01_00:00:00_hourly");
        assert_eq!(
            s.to_string(),
            "zroot/persistSave@autosnap_2024-01-01_00:00:00_hourly"
        );
        assert!(SnapshotName::parse("zroot@a@b").is_err());
        assert!(SnapshotName::parse("zroot@").is_err());
        assert!(SnapshotName::parse("zroot@a b").is_err());
        assert!(SnapshotName::parse("zroot/x").is_err());
        let b = BookmarkName::parse("zroot/x#zfleet_1").unwrap();
        assert_eq!(b.to_string(), "zroot/x#zfleet_1");
        assert!(BookmarkName::parse("zroot/x#a#b").is_err());
        assert!(matches!(
            ObjectName::parse("zroot/x#b").unwrap(),
            ObjectName::Bookmark(_)
        ));
        assert!(matches!(
            ObjectName::parse("zroot/x@b").unwrap(),
            ObjectName::Snapshot(_)
        ));
    }

    #[test]
    fn parse_after_agrees_with_parse() {
        let names = [
            "zroot",
            "zroot/a",
            "zroot/a@s1",
            "zroot/a@s2",
            "zroot/a#b1",
            "zroot/b@s1",
            "zroot/a/c@s",
            "zroot/a@",
            "zroot/a@x y",
            "zroot/a@b@c",
            "zroot/a#b@c",
            "zroot/a@b#c",
            "zroot/my data@s",
            "zroot/my data",
            "zroot/a@s1",
            "1pool/a@s",
            "mirror@s",
            "@s",
            "#b",
            "",
        ];
        let long = format!("zroot/a@{}", "s".repeat(250));
        let mut last = None;
        for s in names.iter().copied().chain([long.as_str()]) {
            assert_eq!(
                ObjectName::parse_after(s, &mut last),
                ObjectName::parse(s),
                "{s}"
            );
        }
        // A remembered dataset is only reused for exactly its name.
        let mut last = Some(DatasetName::parse("zroot/a").unwrap());
        assert_eq!(
            ObjectName::parse_after("zroot/ab@s", &mut last)
                .unwrap()
                .dataset()
                .as_str(),
            "zroot/ab"
        );
    }

    #[test]
    fn relations() {
        let d = DatasetName::parse("zroot/persist").unwrap();
        let child = DatasetName::parse("zroot/persist/a").unwrap();
        let sibling = DatasetName::parse("zroot/persistSave").unwrap();
        assert!(child.is_within(&d));
        assert!(d.is_within(&d));
        assert!(!sibling.is_within(&d));
        assert_eq!(child.parent().unwrap(), d);
        assert_eq!(d.pool().as_str(), "zroot");
        assert_eq!(child.path_in_pool(), "persist/a");
        assert_eq!(d.join("x/y").unwrap().as_str(), "zroot/persist/x/y");
    }
}
