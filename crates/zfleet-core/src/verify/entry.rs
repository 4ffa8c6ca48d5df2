//! One file of a snapshot as a content check sees it, and the order both
//! hosts list files in, so two listings can be compared as they stream in.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

/// Metadata and checksum of one path, relative to the snapshot's root (`""`
/// is the root itself). Paths that are not UTF-8 are escaped (`\xNN`, and a
/// backslash as `\\`), the same on every host, so they compare exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_ns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a file with more than one link: the first path (in listing
    /// order) of its inode, so two hosts' link structures compare by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// BLAKE3 of the contents, hex; only for files the run samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Reading the contents (or the directory) failed: damage, with the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Entry {
    /// `/etc/passwd`: the path as a user names it inside the dataset.
    pub fn shown(&self) -> String {
        shown(&self.path)
    }
}

pub fn shown(path: &str) -> String {
    format!("/{path}")
}

/// One line of a listing on the wire: the entries in order, then the count,
/// so a listing cut short (a lost connection) is never taken for files
/// missing on one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Entry(Entry),
    End { entries: u64 },
}

/// Listing order: component by component, each compared by its bytes. A
/// depth-first walk with each directory's names sorted yields exactly this
/// order (`a`, `a/b`, `a.b`), which plain string order would not.
pub fn path_cmp(a: &str, b: &str) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return a.len().min(1).cmp(&b.len().min(1)).then(a.cmp(b));
    }
    a.split('/').cmp(b.split('/'))
}

/// A file name's bytes as listing text: UTF-8 as it is, every other byte and
/// the backslash escaped, so the text is unique and the same on every host.
pub fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_depth_first_by_component() {
        let mut paths = vec!["a.b", "a/b", "", "a", "b", "a/b/c", "a/a"];
        paths.sort_by(|x, y| path_cmp(x, y));
        assert_eq!(paths, ["", "a", "a/a", "a/b", "a/b/c", "a.b", "b"]);
    }

    #[test]
    fn names_that_are_not_utf8_are_escaped_uniquely() {
        assert_eq!(escape_name(b"plain"), "plain");
        assert_eq!(escape_name(b"caf\xc3\xa9"), "café");
        assert_eq!(escape_name(b"bad\xff"), "bad\\xff");
        assert_eq!(escape_name(b"bad\\xff"), "bad\\\\xff");
        assert_ne!(escape_name(b"bad\xff"), escape_name(b"bad\\xff"));
    }
}
