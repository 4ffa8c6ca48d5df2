//! Pure comparison of two listings (the original and its copy), streamed:
//! both arrive in [`path_cmp`] order and are merged one entry at a time, so
//! memory stays flat in the number of files.

use std::cmp::Ordering;

use serde::Serialize;

use super::entry::{path_cmp, Entry, Kind};

/// Which listing a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    /// The source's snapshot (or, in a drill, the backup it restored).
    Original,
    /// The backup's snapshot (or, in a drill, the restored dataset).
    Copy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum What {
    OnlyInOriginal,
    OnlyInCopy,
    Kind {
        original: Kind,
        copy: Kind,
    },
    Size {
        original: u64,
        copy: u64,
    },
    Mode {
        original: u32,
        copy: u32,
    },
    Owner {
        original: (u32, u32),
        copy: (u32, u32),
    },
    Mtime {
        original: (i64, u32),
        copy: (i64, u32),
    },
    SymlinkTarget {
        original: String,
        copy: String,
    },
    /// The file shares its inode with other paths on one side and not
    /// the same ones on the other (`None`: its first or only link).
    HardLinks {
        original: Option<String>,
        copy: Option<String>,
    },
    /// Same size, other bytes.
    Content {
        original: String,
        copy: String,
    },
    /// Reading it failed: a damaged block (EIO) or a permission problem.
    Unreadable {
        on: Which,
        error: String,
    },
}

impl What {
    /// Damage: the data cannot be read back, as opposed to a difference.
    pub fn is_damage(&self) -> bool {
        matches!(self, What::Unreadable { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            What::OnlyInOriginal => "missing in the copy".into(),
            What::OnlyInCopy => "only in the copy".into(),
            What::Kind { original, copy } => format!("type {original:?} vs {copy:?}"),
            What::Size { original, copy } => format!("size {original} vs {copy}"),
            What::Mode { original, copy } => format!("mode {original:o} vs {copy:o}"),
            What::Owner { original, copy } => format!(
                "owner {}:{} vs {}:{}",
                original.0, original.1, copy.0, copy.1
            ),
            What::Mtime { original, copy } => format!(
                "mtime {}.{:09} vs {}.{:09}",
                original.0, original.1, copy.0, copy.1
            ),
            What::SymlinkTarget { original, copy } => {
                format!("symlink target {original:?} vs {copy:?}")
            }
            What::HardLinks { original, copy } => format!(
                "hard links: {} vs {}",
                original
                    .as_deref()
                    .map_or("first or only link".into(), super::entry::shown),
                copy.as_deref()
                    .map_or("first or only link".into(), super::entry::shown)
            ),
            What::Content { .. } => "contents differ (BLAKE3)".into(),
            What::Unreadable { on, error } => format!(
                "unreadable on the {}: {error}",
                match on {
                    Which::Original => "original",
                    Which::Copy => "copy",
                }
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// As a user names it inside the dataset: `/etc/passwd`.
    pub path: String,
    #[serde(flatten)]
    pub what: What,
}

/// How many differences a report lists; the rest are counted. Keeps a copy
/// that differs everywhere from filling memory.
pub const LISTED: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Paths seen in either listing.
    pub entries: u64,
    /// Files whose contents were compared by checksum on both sides.
    pub checksummed: u64,
    pub bytes_checksummed: u64,
    /// Paths with at least one difference (damage included).
    pub differing: u64,
    /// Paths unreadable on either side.
    pub damaged: u64,
    /// The first [`LISTED`] differences, in listing order.
    pub differences: Vec<Difference>,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.differing == 0
    }

    fn add(&mut self, path: &str, whats: Vec<What>) {
        if whats.is_empty() {
            return;
        }
        self.differing += 1;
        if whats.iter().any(What::is_damage) {
            self.damaged += 1;
        }
        for what in whats {
            if self.differences.len() < LISTED {
                self.differences.push(Difference {
                    path: super::entry::shown(path),
                    what,
                });
            }
        }
    }
}

/// Everything that differs between one path's two entries.
pub fn entry_differences(o: &Entry, c: &Entry) -> Vec<What> {
    let mut out = Vec::new();
    for (on, e) in [(Which::Original, o), (Which::Copy, c)] {
        if let Some(error) = &e.error {
            out.push(What::Unreadable {
                on,
                error: error.clone(),
            });
        }
    }
    if o.kind != c.kind {
        out.push(What::Kind {
            original: o.kind,
            copy: c.kind,
        });
        return out;
    }
    // A directory's size is the file system's business, not its contents.
    if o.kind != Kind::Dir && o.size != c.size {
        out.push(What::Size {
            original: o.size,
            copy: c.size,
        });
    }
    if o.mode != c.mode {
        out.push(What::Mode {
            original: o.mode,
            copy: c.mode,
        });
    }
    if (o.uid, o.gid) != (c.uid, c.gid) {
        out.push(What::Owner {
            original: (o.uid, o.gid),
            copy: (c.uid, c.gid),
        });
    }
    if (o.mtime, o.mtime_ns) != (c.mtime, c.mtime_ns) {
        out.push(What::Mtime {
            original: (o.mtime, o.mtime_ns),
            copy: (c.mtime, c.mtime_ns),
        });
    }
    if o.target != c.target {
        out.push(What::SymlinkTarget {
            original: o.target.clone().unwrap_or_default(),
            copy: c.target.clone().unwrap_or_default(),
        });
    }
    if o.link != c.link {
        out.push(What::HardLinks {
            original: o.link.clone(),
            copy: c.link.clone(),
        });
    }
    if let (Some(a), Some(b)) = (&o.blake3, &c.blake3) {
        if a != b {
            out.push(What::Content {
                original: a.clone(),
                copy: b.clone(),
            });
        }
    }
    out
}

/// Merges two listings in [`path_cmp`] order. Works on anything that yields
/// entries one at a time; a listing that fails to arrive stops the merge
/// with its error (the caller says which host it was).
pub fn compare<E>(
    original: impl IntoIterator<Item = Result<Entry, E>>,
    copy: impl IntoIterator<Item = Result<Entry, E>>,
) -> Result<Comparison, E> {
    let mut o = original.into_iter().peekable();
    let mut c = copy.into_iter().peekable();
    let mut out = Comparison::default();
    loop {
        // A listing that broke off ends the merge with its error.
        if let Some(Err(_)) = o.peek() {
            if let Some(Err(e)) = o.next() {
                return Err(e);
            }
        }
        if let Some(Err(_)) = c.peek() {
            if let Some(Err(e)) = c.next() {
                return Err(e);
            }
        }
        let order = match (o.peek(), c.peek()) {
            (None, None) => break,
            (Some(Ok(a)), Some(Ok(b))) => path_cmp(&a.path, &b.path),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            // Errors were taken above.
            _ => continue,
        };
        out.entries += 1;
        match order {
            Ordering::Less => {
                if let Some(Ok(a)) = o.next() {
                    out.add(&a.path, vec![What::OnlyInOriginal]);
                }
            }
            Ordering::Greater => {
                if let Some(Ok(b)) = c.next() {
                    out.add(&b.path, vec![What::OnlyInCopy]);
                }
            }
            Ordering::Equal => {
                if let (Some(Ok(a)), Some(Ok(b))) = (o.next(), c.next()) {
                    if let (Some(_), Some(_)) = (&a.blake3, &b.blake3) {
                        out.checksummed += 1;
                        out.bytes_checksummed += a.size;
                    }
                    out.add(&a.path, entry_differences(&a, &b));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
