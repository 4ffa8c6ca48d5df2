//! `--sendoptions` and `--recvoptions`: letters of `zfs send` / `zfs receive`
//! without their dashes, separated by spaces, where `o`, `x` and `X` take the
//! next word as their value (`"Lc e"`, `"ux recordsize o compression=lz4"`).
//!
//! syncoid splits the string like this and then passes on only the letters it
//! allows in each kind of send or receive; everything else disappears without
//! a word. That is how the seed's `recvOptions = "c"` did nothing for two
//! years. Here every letter is either one syncoid passes on, or an error that
//! says what the letter is and why it cannot be used.

use serde::Serialize;

use super::ArgsError;
use crate::zfs::DatasetName;

/// One option of `zfs send` that syncoid passes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "option", content = "value")]
pub enum SendOption {
    /// `-L`: blocks larger than 128 KiB as they are.
    LargeBlocks,
    /// `-P`: parsable verbose output.
    Parsable,
    /// `-V`: progress in the process title.
    ProcessTitle,
    /// `-R`: a replication stream of the dataset and its descendants.
    Replicate,
    /// `-X`: datasets left out of a `-R` stream.
    ExcludeDatasets(Vec<DatasetName>),
    /// `-b`: properties as they were received, not as they are.
    BackupProperties,
    /// `-c`: blocks compressed as they are on disk.
    Compressed,
    /// `-e`: embedded blocks as they are.
    Embedded,
    /// `-h`: holds travel with the stream.
    Holds,
    /// `-p`: properties travel with the stream.
    Properties,
    /// `-s`: skip snapshots missing in descendants of a `-R` stream.
    SkipMissing,
    /// `-v`: verbose.
    Verbose,
    /// `-w`: raw (encrypted blocks as they are on disk).
    Raw,
}

/// Which kind of send a set of options is for: syncoid passes each kind a
/// different subset (a resumed send cannot change the stream's flags, and a
/// send from a bookmark cannot be a replication stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendContext {
    /// A full or incremental send of snapshots.
    Snapshot,
    /// `zfs send -t TOKEN`.
    Resume,
    /// An incremental send from a bookmark.
    Bookmark,
    /// `zfs send -nvP`, the size estimate before a send of snapshots.
    SnapshotEstimate,
    /// `zfs send -nvP -t TOKEN`.
    ResumeEstimate,
}

impl SendOption {
    pub fn letter(&self) -> char {
        match self {
            SendOption::LargeBlocks => 'L',
            SendOption::Parsable => 'P',
            SendOption::ProcessTitle => 'V',
            SendOption::Replicate => 'R',
            SendOption::ExcludeDatasets(_) => 'X',
            SendOption::BackupProperties => 'b',
            SendOption::Compressed => 'c',
            SendOption::Embedded => 'e',
            SendOption::Holds => 'h',
            SendOption::Properties => 'p',
            SendOption::SkipMissing => 's',
            SendOption::Verbose => 'v',
            SendOption::Raw => 'w',
        }
    }

    /// The words on `zfs send`'s command line.
    pub fn argv(&self) -> Vec<String> {
        match self {
            SendOption::ExcludeDatasets(ds) => vec![
                "-X".into(),
                ds.iter()
                    .map(DatasetName::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ],
            o => vec![format!("-{}", o.letter())],
        }
    }

    /// Whether syncoid passes this option to a send of this kind.
    pub fn applies_to(&self, ctx: SendContext) -> bool {
        let allowed: &[char] = match ctx {
            SendContext::Snapshot => &[
                'L', 'P', 'V', 'R', 'X', 'b', 'c', 'e', 'h', 'p', 's', 'v', 'w',
            ],
            SendContext::Resume => &['P', 'V', 'e', 'v'],
            SendContext::Bookmark => &['L', 'V', 'c', 'e', 'w'],
            SendContext::SnapshotEstimate => {
                &['L', 'V', 'R', 'X', 'b', 'c', 'e', 'h', 'p', 's', 'w']
            }
            SendContext::ResumeEstimate => &['V', 'e'],
        };
        allowed.contains(&self.letter())
    }
}

/// What `--sendoptions` asked for, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SendOptions(pub Vec<SendOption>);

impl SendOptions {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, letter: char) -> bool {
        self.0.iter().any(|o| o.letter() == letter)
    }

    /// The `zfs send` words for a send of kind `ctx`, as syncoid builds them.
    pub fn argv(&self, ctx: SendContext) -> Vec<String> {
        self.0
            .iter()
            .filter(|o| o.applies_to(ctx))
            .flat_map(SendOption::argv)
            .collect()
    }
}

/// One option of `zfs receive` that syncoid passes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "option", content = "value")]
pub enum RecvOption {
    /// `-h`: holds in the stream are not applied.
    NoHolds,
    /// `-o name=value`: the property is set on what is received.
    SetProperty { name: String, value: String },
    /// `-x name`: the property is not taken from the stream.
    ExcludeProperty(String),
    /// `-u`: what is received is not mounted.
    NoMount,
    /// `-v`: verbose.
    Verbose,
}

impl RecvOption {
    pub fn letter(&self) -> char {
        match self {
            RecvOption::NoHolds => 'h',
            RecvOption::SetProperty { .. } => 'o',
            RecvOption::ExcludeProperty(_) => 'x',
            RecvOption::NoMount => 'u',
            RecvOption::Verbose => 'v',
        }
    }

    pub fn argv(&self) -> Vec<String> {
        match self {
            RecvOption::SetProperty { name, value } => vec!["-o".into(), format!("{name}={value}")],
            RecvOption::ExcludeProperty(name) => vec!["-x".into(), name.clone()],
            o => vec![format!("-{}", o.letter())],
        }
    }
}

/// What `--recvoptions` asked for, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RecvOptions(pub Vec<RecvOption>);

impl RecvOptions {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn argv(&self) -> Vec<String> {
        self.0.iter().flat_map(RecvOption::argv).collect()
    }
}

/// One letter or letter-with-value as syncoid's `parsespecialoptions` splits
/// the string: words separated by spaces, each word a run of letters, where
/// `o`, `x` or `X` must end its word and take the next word as value.
struct Item {
    letter: char,
    value: Option<String>,
}

fn split(flag: &str, text: &str) -> Result<Vec<Item>, ArgsError> {
    let mut items = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        // `-Lc` is what people who know `zfs send` type; syncoid ignores the
        // dash (it is no letter it passes on), so the meaning is the same.
        let letters = word.strip_prefix('-').unwrap_or(word);
        let mut chars = letters.chars().peekable();
        while let Some(c) = chars.next() {
            if matches!(c, 'o' | 'x' | 'X') {
                if chars.peek().is_some() {
                    return Err(ArgsError::new(
                        format!("{flag}={text}"),
                        format!(
                            "`{c}` takes a value, so it must be the last letter of its word (`{word}`); write the value as the next word, e.g. `{c} VALUE`"
                        ),
                    ));
                }
                let Some(value) = words.next() else {
                    return Err(ArgsError::new(
                        format!("{flag}={text}"),
                        format!("`{c}` takes a value (the next word), and there is none"),
                    ));
                };
                items.push(Item {
                    letter: c,
                    value: Some(value.to_string()),
                });
            } else {
                items.push(Item {
                    letter: c,
                    value: None,
                });
            }
        }
    }
    Ok(items)
}

/// `--sendoptions`: refused when a letter is not one syncoid passes to `zfs
/// send`, with what that letter is.
pub fn parse_send_options(text: &str) -> Result<SendOptions, ArgsError> {
    let flag = "--sendoptions";
    let mut out = Vec::new();
    for it in split(flag, text)? {
        let opt = match it.letter {
            'L' => SendOption::LargeBlocks,
            'P' => SendOption::Parsable,
            'V' => SendOption::ProcessTitle,
            'R' => SendOption::Replicate,
            'b' => SendOption::BackupProperties,
            'c' => SendOption::Compressed,
            'e' => SendOption::Embedded,
            'h' => SendOption::Holds,
            'p' => SendOption::Properties,
            's' => SendOption::SkipMissing,
            'v' => SendOption::Verbose,
            'w' => SendOption::Raw,
            'X' => {
                let value = it.value.unwrap_or_default();
                let mut ds = Vec::new();
                for name in value.split(',') {
                    ds.push(DatasetName::parse(name).map_err(|e| {
                        ArgsError::new(format!("{flag}={text}"), format!("`X {value}`: {e}"))
                    })?);
                }
                SendOption::ExcludeDatasets(ds)
            }
            c => {
                return Err(ArgsError::new(
                    format!("{flag}={text}"),
                    refused_send_letter(c),
                ))
            }
        };
        out.push(opt);
    }
    Ok(SendOptions(out))
}

fn refused_send_letter(c: char) -> String {
    match c {
        'D' => "`D` (deduplicated streams) was removed from OpenZFS; nothing would pass it on".into(),
        'n' => "`n` is a dry run, which syncoid never passes on: a send that sends nothing".into(),
        'i' | 'I' => format!("`{c}` chooses the incremental base, which syncoid does itself; `--no-stream` sends without intermediate snapshots"),
        't' => "`t` resumes from a token, which syncoid does itself (`--no-resume` turns it off)".into(),
        'S' => "`S` (--saved) sends a partially received dataset, which syncoid does not do".into(),
        'o' | 'x' => format!("`{c}` is an option of zfs receive, not of zfs send; put it in `--recvoptions`"),
        c => format!("`{c}` is not an option of zfs send (syncoid passes on L, P, V, R, X, b, c, e, h, p, s, v and w)"),
    }
}

/// `--recvoptions`: refused when a letter is not one syncoid passes to `zfs
/// receive`, with what that letter is.
pub fn parse_recv_options(text: &str) -> Result<RecvOptions, ArgsError> {
    let flag = "--recvoptions";
    let mut out = Vec::new();
    for it in split(flag, text)? {
        let opt = match it.letter {
            'h' => RecvOption::NoHolds,
            'u' => RecvOption::NoMount,
            'v' => RecvOption::Verbose,
            'o' => {
                let value = it.value.unwrap_or_default();
                let Some((name, v)) = value.split_once('=') else {
                    return Err(ArgsError::new(
                        format!("{flag}={text}"),
                        format!("`o {value}`: a property is set as `o name=value`"),
                    ));
                };
                valid_property(name).map_err(|m| {
                    ArgsError::new(format!("{flag}={text}"), format!("`o {value}`: {m}"))
                })?;
                if v.is_empty() || v.chars().any(char::is_control) {
                    return Err(ArgsError::new(
                        format!("{flag}={text}"),
                        format!(
                            "`o {value}`: the value of `{name}` is empty or has control characters"
                        ),
                    ));
                }
                RecvOption::SetProperty {
                    name: name.to_string(),
                    value: v.to_string(),
                }
            }
            'x' => {
                let name = it.value.unwrap_or_default();
                valid_property(&name).map_err(|m| {
                    ArgsError::new(format!("{flag}={text}"), format!("`x {name}`: {m}"))
                })?;
                RecvOption::ExcludeProperty(name)
            }
            c => {
                return Err(ArgsError::new(
                    format!("{flag}={text}"),
                    refused_recv_letter(c),
                ))
            }
        };
        out.push(opt);
    }
    Ok(RecvOptions(out))
}

fn refused_recv_letter(c: char) -> String {
    match c {
        'c' => "`c` is `zfs receive -c`, a corrective (healing) receive, not compression; syncoid drops it without a word (it passes on only h, o, x, u and v). Streams are compressed by `zfs send -c` (`--sendoptions c`), which zfleet always uses".into(),
        'F' => "`F` (roll the target back) is syncoid's own default, turned off by `--no-rollback`; it cannot be asked for here".into(),
        's' => "`s` (resumable receive) is syncoid's own default, turned off by `--no-resume`; it cannot be asked for here".into(),
        'd' | 'e' => format!("`{c}` derives the target's name from the stream, but syncoid names the target itself"),
        'n' => "`n` is a dry run: a receive that receives nothing".into(),
        'A' => "`A` aborts a partial receive, which syncoid does itself when a resume token is stale".into(),
        'M' => "`M` (force an unmount) is not supported on Linux, and syncoid does not pass it on".into(),
        'L' | 'P' | 'V' | 'R' | 'X' | 'b' | 'p' | 'w' => format!("`{c}` is an option of zfs send, not of zfs receive; put it in `--sendoptions`"),
        c => format!("`{c}` is not an option of zfs receive (syncoid passes on h, o, x, u and v)"),
    }
}

/// Native and user property names: lower case letters, digits and `_ - . :`.
fn valid_property(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | ':')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a property name",
            crate::text::printable(name)
        ))
    }
}
