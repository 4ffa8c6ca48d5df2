//! Configuration errors that point at the place to fix: `file:line:col`, the key
//! path as it would be written in TOML, what is wrong and, where it helps, a hint.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        Self(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Self(v)
    }
}

fn bare_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    if bare_key(k) {
                        f.write_str(k)?;
                    } else {
                        f.write_str("\"")?;
                        for c in k.chars() {
                            match c {
                                '"' => f.write_str("\\\"")?,
                                '\\' => f.write_str("\\\\")?,
                                c if c.is_control() => write!(f, "{}", c.escape_default())?,
                                c => write!(f, "{c}")?,
                            }
                        }
                        f.write_str("\"")?;
                    }
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub position: Option<(usize, usize)>,
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values from the file end up in messages; escaped, a newline or an
        // ESC sequence in a value cannot forge lines or drive the terminal.
        use crate::text::printable;
        write!(f, "{}", printable(&self.file.display().to_string()))?;
        if let Some((l, c)) = self.position {
            write!(f, ":{l}:{c}")?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", printable(&self.key))?;
        }
        f.write_str(&printable(&self.message))?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {}", printable(h))?;
        }
        Ok(())
    }
}

/// Several errors found in one pass; shown one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::error::Error for ConfigErrors {}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Line starts of a text, so that many errors in one big file are located in
/// logarithmic time each rather than by rescanning the file.
pub struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(src: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { src, starts }
    }

    /// Like [`line_col`].
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line.saturating_sub(1)];
        (line, self.src[start..offset].chars().count() + 1)
    }
}

/// Where a key path is in the parsed document: the value's span, or the key's
/// span when `at_key`, falling back to the deepest part of the path that exists.
pub fn locate(doc: &Spanned<DeTable<'_>>, path: &KeyPath, at_key: bool) -> Option<Range<usize>> {
    locate_exact(doc, path, at_key).map(|(span, _)| span)
}

/// Like [`locate`], and says whether the whole path was found.
pub fn locate_exact(
    doc: &Spanned<DeTable<'_>>,
    path: &KeyPath,
    at_key: bool,
) -> Option<(Range<usize>, bool)> {
    let table: &DeTable<'_> = doc.get_ref();
    let mut best: Option<Range<usize>> = None;
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for seg in &path.0 {
        let next = match (seg, value) {
            // A map lookup, not a scan: a file with thousands of hosts and an
            // error on each would otherwise take quadratic time.
            (Seg::Key(k), None) => table
                .get_key_value(k.as_str())
                .map(|(key, v)| (key.span(), v)),
            (Seg::Key(k), Some(v)) => v
                .get_ref()
                .as_table()
                .and_then(|t| t.get_key_value(k.as_str()).map(|(key, v)| (key.span(), v))),
            (Seg::Index(i), Some(v)) => v
                .get_ref()
                .as_array()
                .and_then(|a| a.get(*i))
                .map(|v| (v.span(), v)),
            (Seg::Index(_), None) => None,
        };
        let Some((key_span, v)) = next else {
            return best.map(|b| (b, false));
        };
        best = Some(if at_key { key_span } else { v.span() });
        value = Some(v);
    }
    best.map(|b| (b, true))
}
