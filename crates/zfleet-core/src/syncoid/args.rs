//! syncoid's flags, read with Getopt::Long's default rules as syncoid 2.3
//! configures it: a flag is `--name` or `-name`, in any case, or any
//! abbreviation that is unique (`--recurs`); a value follows after `=` or as
//! the next word, whatever that word looks like; flags may come after the
//! operands; `--` ends the flags. Booleans take no value (`--quiet=1` is an
//! error, as in syncoid).
//!
//! Where syncoid warns and carries on (an unknown `--compress`), or would pass
//! something to ssh or zfs that can only fail or do harm (an identifier with
//! `;`), the parse fails instead, with the flag as written.

use serde::Serialize;

use super::operand::Operand;
use super::zfs_options::{parse_recv_options, parse_send_options, RecvOptions, SendOptions};
use super::ArgsError;

/// What a syncoid command line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Invocation {
    Sync(Box<SyncoidArgs>),
    /// `--help` (`-h`, `-?`): syncoid prints its usage and exits.
    Help,
    /// `--version`: syncoid prints its version and exits.
    Version,
}

/// Every syncoid flag. [`Flag::name`] is its long name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    Compress,
    CreateBookmark,
    Debug,
    DeleteTargetSnapshots,
    Dumpsnaps,
    Exclude,
    ExcludeDatasets,
    ExcludeSnaps,
    ForceDelete,
    Help,
    Identifier,
    IncludeSnaps,
    InsecureDirectConnection,
    KeepSyncSnap,
    MbufferSize,
    MonitorVersion,
    NoCloneHandling,
    NoCommandChecks,
    NoPrivilegeElevation,
    NoResume,
    NoRollback,
    NoStream,
    NoSyncSnap,
    PreserveProperties,
    PreserveRecordsize,
    PvOptions,
    Quiet,
    Recursive,
    Recvoptions,
    Sendoptions,
    SkipParent,
    SourceBwlimit,
    Sshcipher,
    Sshconfig,
    Sshkey,
    Sshoption,
    Sshport,
    TargetBwlimit,
    UseHold,
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    String,
    Integer,
}

/// Names as Getopt::Long sees them (aliases included), with what they take.
const NAMES: &[(&str, Flag, Takes)] = &[
    ("compress", Flag::Compress, Takes::String),
    ("create-bookmark", Flag::CreateBookmark, Takes::Nothing),
    ("debug", Flag::Debug, Takes::Nothing),
    (
        "delete-target-snapshots",
        Flag::DeleteTargetSnapshots,
        Takes::Nothing,
    ),
    ("dumpsnaps", Flag::Dumpsnaps, Takes::Nothing),
    ("exclude", Flag::Exclude, Takes::String),
    ("exclude-datasets", Flag::ExcludeDatasets, Takes::String),
    ("exclude-snaps", Flag::ExcludeSnaps, Takes::String),
    ("force-delete", Flag::ForceDelete, Takes::Nothing),
    ("help", Flag::Help, Takes::Nothing),
    ("?", Flag::Help, Takes::Nothing),
    ("identifier", Flag::Identifier, Takes::String),
    ("include-snaps", Flag::IncludeSnaps, Takes::String),
    (
        "insecure-direct-connection",
        Flag::InsecureDirectConnection,
        Takes::String,
    ),
    ("keep-sync-snap", Flag::KeepSyncSnap, Takes::Nothing),
    ("mbuffer-size", Flag::MbufferSize, Takes::String),
    ("monitor-version", Flag::MonitorVersion, Takes::Nothing),
    ("no-clone-handling", Flag::NoCloneHandling, Takes::Nothing),
    ("no-command-checks", Flag::NoCommandChecks, Takes::Nothing),
    (
        "no-privilege-elevation",
        Flag::NoPrivilegeElevation,
        Takes::Nothing,
    ),
    ("no-resume", Flag::NoResume, Takes::Nothing),
    ("no-rollback", Flag::NoRollback, Takes::Nothing),
    ("no-stream", Flag::NoStream, Takes::Nothing),
    ("no-sync-snap", Flag::NoSyncSnap, Takes::Nothing),
    (
        "preserve-properties",
        Flag::PreserveProperties,
        Takes::Nothing,
    ),
    (
        "preserve-recordsize",
        Flag::PreserveRecordsize,
        Takes::Nothing,
    ),
    ("pv-options", Flag::PvOptions, Takes::String),
    ("quiet", Flag::Quiet, Takes::Nothing),
    ("recursive", Flag::Recursive, Takes::Nothing),
    ("r", Flag::Recursive, Takes::Nothing),
    ("recvoptions", Flag::Recvoptions, Takes::String),
    ("sendoptions", Flag::Sendoptions, Takes::String),
    ("skip-parent", Flag::SkipParent, Takes::Nothing),
    ("source-bwlimit", Flag::SourceBwlimit, Takes::String),
    ("sshcipher", Flag::Sshcipher, Takes::String),
    ("c", Flag::Sshcipher, Takes::String),
    ("sshconfig", Flag::Sshconfig, Takes::String),
    ("sshkey", Flag::Sshkey, Takes::String),
    ("sshoption", Flag::Sshoption, Takes::String),
    ("o", Flag::Sshoption, Takes::String),
    ("sshport", Flag::Sshport, Takes::Integer),
    ("target-bwlimit", Flag::TargetBwlimit, Takes::String),
    ("use-hold", Flag::UseHold, Takes::Nothing),
    ("version", Flag::Version, Takes::Nothing),
];

impl Flag {
    /// Every flag, in the order of syncoid's `--help`.
    pub fn all() -> impl Iterator<Item = Flag> {
        let mut seen = Vec::new();
        NAMES.iter().filter_map(move |&(_, f, _)| {
            if seen.contains(&f) {
                None
            } else {
                seen.push(f);
                Some(f)
            }
        })
    }

    /// The long name, without dashes.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(n, f, _)| *f == self && n.len() > 1)
            .map_or("?", |(n, _, _)| n)
    }

    /// Whether the flag takes a value.
    pub fn takes_value(self) -> bool {
        NAMES
            .iter()
            .any(|(_, f, t)| *f == self && *t != Takes::Nothing)
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--{}", self.name())
    }
}

/// A flag as it appeared, in order: what `zfleet import syncoid` reports on.
#[derive(Debug, Clone, Eq, Serialize)]
pub struct GivenFlag {
    pub flag: Flag,
    pub value: Option<String>,
    /// Which of the parsed words it was (the flag, and its value if that was
    /// the next word): what to leave out to try the line without it.
    #[serde(skip)]
    pub words: std::ops::Range<usize>,
}

/// Two flags are the same whichever words they were written in.
impl PartialEq for GivenFlag {
    fn eq(&self, other: &Self) -> bool {
        self.flag == other.flag && self.value == other.value
    }
}

impl GivenFlag {
    /// `--flag` or `--flag=value`, quoted where a shell would need it.
    pub fn display(&self) -> String {
        match &self.value {
            None => self.flag.to_string(),
            Some(v) => format!(
                "{}={}",
                self.flag,
                crate::exec::quote::display_line([v.as_str()])
            ),
        }
    }
}

/// syncoid's `--compress` methods; `default` is lzo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compress {
    None,
    Gzip,
    PigzFast,
    PigzSlow,
    ZstdFast,
    ZstdmtFast,
    ZstdSlow,
    ZstdmtSlow,
    Lz4,
    Xz,
    Lzo,
}

impl Compress {
    const ALL: [(&'static str, Compress); 11] = [
        ("none", Compress::None),
        ("gzip", Compress::Gzip),
        ("pigz-fast", Compress::PigzFast),
        ("pigz-slow", Compress::PigzSlow),
        ("zstd-fast", Compress::ZstdFast),
        ("zstdmt-fast", Compress::ZstdmtFast),
        ("zstd-slow", Compress::ZstdSlow),
        ("zstdmt-slow", Compress::ZstdmtSlow),
        ("lz4", Compress::Lz4),
        ("xz", Compress::Xz),
        ("lzo", Compress::Lzo),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("?", |(n, _)| n)
    }

    /// Whether the method is zstd (at any level), which is what zfleet has.
    pub fn is_zstd(self) -> bool {
        matches!(
            self,
            Compress::ZstdFast | Compress::ZstdmtFast | Compress::ZstdSlow | Compress::ZstdmtSlow
        )
    }
}

/// An mbuffer amount: bytes (`16M`, `1.5G`, `512k`) or, for `--mbuffer-size`,
/// a share of physical memory (`10%`), as mbuffer reads them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    Bytes(u64),
    PercentOfMemory(f64),
}

impl Eq for Amount {}

/// `--insecure-direct-connection=CONNECT[,LISTEN[,TIMEOUT[,mbuffer]]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectConnection {
    /// `IP:PORT` the source connects to.
    pub connect: String,
    /// `IP:PORT` the target listens on.
    pub listen: String,
    /// Seconds the target waits for the connection (60 by default).
    pub timeout_secs: u64,
    /// Receive through mbuffer's network mode rather than busybox nc.
    pub mbuffer: bool,
}

/// How syncoid reaches remote sides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SshArgs {
    /// `--sshconfig`: an ssh_config file (`-F`).
    pub config: Option<String>,
    /// `--sshkey`: a private key (`-i`).
    pub key: Option<String>,
    /// `--sshport` (`-p`).
    pub port: Option<u16>,
    /// `--sshcipher`/`-c` (`-c`).
    pub cipher: Option<String>,
    /// `--sshoption`/`-o`, each passed as `-o OPTION`.
    pub options: Vec<String>,
}

/// A syncoid command line, every flag with syncoid's meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncoidArgs {
    pub source: Operand,
    pub target: Operand,
    /// `-r`/`--recursive`: the datasets below the source too.
    pub recursive: bool,
    /// `--skip-parent`: with `-r`, not the source itself.
    pub skip_parent: bool,
    /// `--exclude` (deprecated): regular expressions on dataset names.
    pub exclude: Vec<String>,
    /// `--exclude-datasets`: regular expressions on dataset names.
    pub exclude_datasets: Vec<String>,
    /// `--include-snaps`: only snapshots matching one of these.
    pub include_snaps: Vec<String>,
    /// `--exclude-snaps`: no snapshot matching one of these.
    pub exclude_snaps: Vec<String>,
    /// `--no-stream`: `-i` to the newest snapshot instead of `-I` through all.
    pub no_stream: bool,
    /// `--no-sync-snap`: send existing snapshots only.
    pub no_sync_snap: bool,
    /// `--keep-sync-snap`: leave sync snapshots in place.
    pub keep_sync_snap: bool,
    /// `--identifier`: part of the sync snapshot's (and hold's) name.
    pub identifier: Option<String>,
    /// `--create-bookmark`: bookmark the newest source snapshot after a send.
    pub create_bookmark: bool,
    /// `--use-hold`: hold the newest snapshot on both sides.
    pub use_hold: bool,
    /// `--no-resume`: no resumable receive.
    pub no_resume: bool,
    /// `--no-rollback`: receive without `-F`.
    pub no_rollback: bool,
    /// `--force-delete`: destroy a target that shares no snapshot.
    pub force_delete: bool,
    /// `--delete-target-snapshots`: destroy target snapshots the source lacks.
    pub delete_target_snapshots: bool,
    /// `--no-clone-handling`: clones are sent as full datasets.
    pub no_clone_handling: bool,
    /// `--no-privilege-elevation`: never `sudo`.
    pub no_privilege_elevation: bool,
    /// `--no-command-checks`: do not look for mbuffer, pv, compressors.
    pub no_command_checks: bool,
    /// `--preserve-properties`: locally set properties set on the target.
    pub preserve_properties: bool,
    /// `--preserve-recordsize`: the source's recordsize on a new target.
    pub preserve_recordsize: bool,
    /// `--compress`; `None`: not given, syncoid's default (lzo).
    pub compress: Option<Compress>,
    /// `--source-bwlimit`: bytes per second, on the sending side.
    pub source_bwlimit: Option<Amount>,
    /// `--target-bwlimit`: bytes per second, on the receiving side.
    pub target_bwlimit: Option<Amount>,
    /// `--mbuffer-size`; `None`: syncoid's 16M.
    pub mbuffer_size: Option<Amount>,
    /// `--pv-options`; `None`: syncoid's `-p -t -e -r -b`.
    pub pv_options: Option<String>,
    pub send_options: SendOptions,
    pub recv_options: RecvOptions,
    pub ssh: SshArgs,
    pub insecure_direct_connection: Option<DirectConnection>,
    /// `--debug`, `--quiet`, `--dumpsnaps`, `--monitor-version` (which does nothing).
    pub debug: bool,
    pub quiet: bool,
    pub dumpsnaps: bool,
    pub monitor_version: bool,
    /// Every flag as given, in order.
    pub given: Vec<GivenFlag>,
}

impl SyncoidArgs {
    /// The dataset filters syncoid applies: `--exclude-datasets`, or the
    /// deprecated `--exclude` when there is no `--exclude-datasets`.
    pub fn dataset_excludes(&self) -> &[String] {
        if self.exclude_datasets.is_empty() {
            &self.exclude
        } else {
            &self.exclude_datasets
        }
    }

    /// syncoid's default compression when `--compress` is not given.
    pub fn compression(&self) -> Compress {
        self.compress.unwrap_or(Compress::Lzo)
    }

    pub fn was_given(&self, flag: Flag) -> bool {
        self.given.iter().any(|g| g.flag == flag)
    }
}

/// Parses syncoid's arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Invocation, ArgsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let words: Vec<String> = args.into_iter().map(|s| s.as_ref().to_string()).collect();
    let mut given = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let start = i;
        i += 1;
        if word == "--" {
            operands.extend(words[i..].iter().cloned());
            break;
        }
        let Some(body) = word
            .strip_prefix("--")
            .or_else(|| word.strip_prefix('-'))
            .filter(|b| !b.is_empty())
        else {
            operands.push(word.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) if !n.is_empty() => (n, Some(v.to_string())),
            _ => (body, None),
        };
        let at = |mut e: ArgsError, end: usize| {
            e.words = Some(start..end);
            e
        };
        let (flag, takes) = lookup(word, name).map_err(|e| at(e, start + 1))?;
        let value = match (takes, inline) {
            (Takes::Nothing, Some(_)) => {
                return Err(at(
                    ArgsError::new(word, format!("{flag} does not take a value")),
                    start + 1,
                ))
            }
            (Takes::Nothing, None) => None,
            (_, Some(v)) => Some(v),
            (_, None) => match words.get(i) {
                // A value that is required takes the next word, whatever it is.
                Some(v) => {
                    i += 1;
                    Some(v.clone())
                }
                None => {
                    return Err(at(
                        ArgsError::new(
                            word,
                            format!("{flag} needs a value (`{flag}=VALUE` or `{flag} VALUE`)"),
                        ),
                        start + 1,
                    ))
                }
            },
        };
        if takes == Takes::Integer {
            let v = value.as_deref().unwrap_or_default();
            let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(at(
                    ArgsError::new(
                        shown(flag, value.as_deref()),
                        format!("{flag} takes a number, not `{}`", crate::text::printable(v)),
                    ),
                    i,
                ));
            }
        }
        match flag {
            Flag::Help => return Ok(Invocation::Help),
            Flag::Version => return Ok(Invocation::Version),
            _ => given.push(GivenFlag {
                flag,
                value,
                words: start..i,
            }),
        }
    }
    build(given, operands).map(|a| Invocation::Sync(Box::new(a)))
}

fn shown(flag: Flag, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{flag}={v}"),
        None => flag.to_string(),
    }
}

/// Getopt::Long's lookup: an exact name (any case), else the one flag that
/// all names starting with `name` belong to.
fn lookup(word: &str, name: &str) -> Result<(Flag, Takes), ArgsError> {
    let lower = name.to_ascii_lowercase();
    if let Some(&(_, f, t)) = NAMES.iter().find(|(n, _, _)| *n == lower) {
        return Ok((f, t));
    }
    let mut hits: Vec<(&str, Flag, Takes)> = Vec::new();
    for &(n, f, t) in NAMES {
        if n.starts_with(&lower) && !hits.iter().any(|h| h.1 == f) {
            hits.push((n, f, t));
        }
    }
    match hits.as_slice() {
        [(_, f, t)] => Ok((*f, *t)),
        [] => Err(ArgsError::new(
            word,
            "not a syncoid flag (see `syncoid --help`)",
        )),
        many => Err(ArgsError::new(
            word,
            format!(
                "ambiguous: it abbreviates {}",
                many.iter()
                    .map(|(n, _, _)| format!("--{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn build(given: Vec<GivenFlag>, operands: Vec<String>) -> Result<SyncoidArgs, ArgsError> {
    let (source, target) = match operands.as_slice() {
        [s, t] => (Operand::parse(s)?, Operand::parse(t)?),
        [] => {
            return Err(ArgsError::general(
                "no SOURCE and TARGET: syncoid copies `SOURCE TARGET`",
            ))
        }
        [one] => {
            return Err(ArgsError::general(format!(
                "only one dataset (`{}`): syncoid copies `SOURCE TARGET`",
                crate::text::printable(one)
            )))
        }
        more => {
            return Err(ArgsError::general(format!(
                "{} operands (`{}`): syncoid copies one SOURCE to one TARGET",
                more.len(),
                crate::text::printable(&more.join(" "))
            )))
        }
    };
    let mut a = SyncoidArgs {
        source,
        target,
        recursive: false,
        skip_parent: false,
        exclude: Vec::new(),
        exclude_datasets: Vec::new(),
        include_snaps: Vec::new(),
        exclude_snaps: Vec::new(),
        no_stream: false,
        no_sync_snap: false,
        keep_sync_snap: false,
        identifier: None,
        create_bookmark: false,
        use_hold: false,
        no_resume: false,
        no_rollback: false,
        force_delete: false,
        delete_target_snapshots: false,
        no_clone_handling: false,
        no_privilege_elevation: false,
        no_command_checks: false,
        preserve_properties: false,
        preserve_recordsize: false,
        compress: None,
        source_bwlimit: None,
        target_bwlimit: None,
        mbuffer_size: None,
        pv_options: None,
        send_options: SendOptions::default(),
        recv_options: RecvOptions::default(),
        ssh: SshArgs::default(),
        insecure_direct_connection: None,
        debug: false,
        quiet: false,
        dumpsnaps: false,
        monitor_version: false,
        given: Vec::new(),
    };
    for g in &given {
        apply(&mut a, g).map_err(|mut e| {
            e.words = Some(g.words.clone());
            e
        })?;
    }
    if a.recursive && a.send_options.contains('R') {
        return Err(ArgsError::general(
            "`--sendoptions` with `R` and `--recursive` do not go together (syncoid refuses them too): `-r` sends each dataset on its own",
        ));
    }
    if a.insecure_direct_connection.is_some() && a.source.is_remote() && a.target.is_remote() {
        return Err(ArgsError::general(
            "`--insecure-direct-connection` needs one side on this machine (syncoid does not relay between two remote hosts with it)",
        ));
    }
    a.given = given;
    Ok(a)
}

fn apply(a: &mut SyncoidArgs, g: &GivenFlag) -> Result<(), ArgsError> {
    let v = g.value.clone().unwrap_or_default();
    let here = || g.display();
    match g.flag {
        Flag::Recursive => a.recursive = true,
        Flag::SkipParent => a.skip_parent = true,
        Flag::Exclude => a.exclude.push(regex(&here(), v)?),
        Flag::ExcludeDatasets => a.exclude_datasets.push(regex(&here(), v)?),
        Flag::IncludeSnaps => a.include_snaps.push(regex(&here(), v)?),
        Flag::ExcludeSnaps => a.exclude_snaps.push(regex(&here(), v)?),
        Flag::NoStream => a.no_stream = true,
        Flag::NoSyncSnap => a.no_sync_snap = true,
        Flag::KeepSyncSnap => a.keep_sync_snap = true,
        Flag::Identifier => a.identifier = identifier(&here(), v)?,
        Flag::CreateBookmark => a.create_bookmark = true,
        Flag::UseHold => a.use_hold = true,
        Flag::NoResume => a.no_resume = true,
        Flag::NoRollback => a.no_rollback = true,
        Flag::ForceDelete => a.force_delete = true,
        Flag::DeleteTargetSnapshots => a.delete_target_snapshots = true,
        Flag::NoCloneHandling => a.no_clone_handling = true,
        Flag::NoPrivilegeElevation => a.no_privilege_elevation = true,
        Flag::NoCommandChecks => a.no_command_checks = true,
        Flag::PreserveProperties => a.preserve_properties = true,
        Flag::PreserveRecordsize => a.preserve_recordsize = true,
        Flag::Compress => a.compress = compress(&here(), &v)?,
        Flag::SourceBwlimit => a.source_bwlimit = amount(&here(), &v, false)?,
        Flag::TargetBwlimit => a.target_bwlimit = amount(&here(), &v, false)?,
        Flag::MbufferSize => a.mbuffer_size = amount(&here(), &v, true)?,
        Flag::PvOptions => a.pv_options = Some(v),
        Flag::Sendoptions => a.send_options = parse_send_options(&v)?,
        Flag::Recvoptions => a.recv_options = parse_recv_options(&v)?,
        Flag::Sshconfig => a.ssh.config = nonempty_path(&here(), v)?,
        Flag::Sshkey => a.ssh.key = nonempty_path(&here(), v)?,
        Flag::Sshport => a.ssh.port = Some(port(&here(), &v)?),
        Flag::Sshcipher => a.ssh.cipher = ssh_word(&here(), v)?,
        Flag::Sshoption => {
            if let Some(o) = ssh_word(&here(), v)? {
                a.ssh.options.push(o);
            }
        }
        Flag::InsecureDirectConnection => {
            a.insecure_direct_connection = direct_connection(&here(), &v)?
        }
        Flag::Debug => a.debug = true,
        Flag::Quiet => a.quiet = true,
        Flag::Dumpsnaps => a.dumpsnaps = true,
        Flag::MonitorVersion => a.monitor_version = true,
        Flag::Help | Flag::Version => {}
    }
    Ok(())
}

/// A regular expression on dataset or snapshot names. syncoid's are Perl's;
/// the common subset (no look-around, no back-references) is what a program
/// other than Perl can apply, so anything outside it is refused.
fn regex(here: &str, v: String) -> Result<String, ArgsError> {
    regex::Regex::new(&v).map_err(|e| {
        ArgsError::new(
            here,
            format!("not a regular expression zfleet can use: {e}"),
        )
    })?;
    Ok(v)
}

/// syncoid allows `[a-zA-Z0-9-_:.]`, which in Perl also admits everything
/// between `9` and `_` (`;<=>?@[\]^`) by accident. The identifier becomes part
/// of snapshot and hold names, where only `_ - : .` are safe.
fn identifier(here: &str, v: String) -> Result<Option<String>, ArgsError> {
    if v.is_empty() {
        return Ok(None);
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.')))
    {
        return Err(ArgsError::new(
            here,
            format!(
                "{} is not allowed in an identifier (letters, digits, `-`, `_`, `:`, `.`)",
                crate::text::describe_char(c)
            ),
        ));
    }
    Ok(Some(v))
}

fn compress(here: &str, v: &str) -> Result<Option<Compress>, ArgsError> {
    if v == "default" {
        return Ok(Some(Compress::Lzo));
    }
    match Compress::ALL.iter().find(|(n, _)| *n == v) {
        Some((_, c)) => Ok(Some(*c)),
        // syncoid warns and uses lzo; a typo should not change the method.
        None => Err(ArgsError::new(
            here,
            format!(
                "not a compression method; syncoid knows {} and default (lzo)",
                Compress::ALL.map(|(n, _)| n).join(", ")
            ),
        )),
    }
}

/// mbuffer's amounts: a number (decimals allowed), then `k`, `M`, `G` or `T`
/// in any case (binary multiples), or `b` or nothing for bytes.
fn amount(here: &str, v: &str, percent: bool) -> Result<Option<Amount>, ArgsError> {
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        ArgsError::new(
            here,
            if percent {
                "not a size: write it like 16M, 512k, 1.5G or 10%"
            } else {
                "not a rate: write it like 10M, 512k or 1.5G (bytes per second)"
            },
        )
    };
    if let Some(p) = v.strip_suffix('%') {
        if !percent {
            return Err(bad());
        }
        let p: f64 = p.parse().map_err(|_| bad())?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(bad());
        }
        return Ok(Some(Amount::PercentOfMemory(p)));
    }
    let (num, mult) = match v.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'b' => 1,
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return Err(bad()),
            };
            (&v[..v.len() - 1], m)
        }
        _ => (v, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !(n.is_finite() && n > 0.0) {
        return Err(bad());
    }
    let bytes = n * mult as f64;
    if bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Some(Amount::Bytes(bytes as u64)))
}

fn port(here: &str, v: &str) -> Result<u16, ArgsError> {
    v.trim_start_matches('+')
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ArgsError::new(here, "a port is a number from 1 to 65535"))
}

/// syncoid pastes these into an ssh command line run by a shell; a value
/// that would split into more words, or start an option, cannot mean what
/// it says there.
fn ssh_word(here: &str, v: String) -> Result<Option<String>, ArgsError> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().any(|c| c.is_control()) || v.starts_with('-') {
        return Err(ArgsError::new(
            here,
            "an ssh option value may not start with `-` or hold control characters",
        ));
    }
    Ok(Some(v))
}

fn nonempty_path(here: &str, v: String) -> Result<Option<String>, ArgsError> {
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().any(|c| c.is_control()) || v.starts_with('-') {
        return Err(ArgsError::new(
            here,
            "a path may not start with `-` or hold control characters",
        ));
    }
    Ok(Some(v))
}

fn direct_connection(here: &str, v: &str) -> Result<Option<DirectConnection>, ArgsError> {
    if v.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = v.split(',').collect();
    if parts.len() > 4 {
        return Err(ArgsError::new(
            here,
            "written CONNECT[,LISTEN[,TIMEOUT[,mbuffer]]]: at most four parts",
        ));
    }
    let (connect, listen) = match parts.as_slice() {
        [one] => (one.to_string(), one.to_string()),
        [c, l, ..] => (c.to_string(), l.to_string()),
        [] => return Ok(None),
    };
    for addr in [&connect, &listen] {
        if addr.is_empty() || addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ArgsError::new(here, "each address is written IP:PORT"));
        }
    }
    let timeout_secs = match parts.get(2) {
        Some(t) => t
            .parse::<u64>()
            .map_err(|_| ArgsError::new(here, "the third part is a timeout in seconds"))?,
        None => 60,
    };
    let mbuffer = match parts.get(3) {
        Some(&"mbuffer") => true,
        // syncoid ignores anything else in the fourth place.
        Some(other) => {
            return Err(ArgsError::new(
                here,
                format!(
                    "the fourth part can only be `mbuffer`, not `{}`",
                    crate::text::printable(other)
                ),
            ))
        }
        None => false,
    };
    Ok(Some(DirectConnection {
        connect,
        listen,
        timeout_secs,
        mbuffer,
    }))
}
