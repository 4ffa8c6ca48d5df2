//! What a connecting key may do, decided word by word. Every request is matched
//! against the exact shapes of the commands zfleet itself sends; anything else
//! — another subcommand, another flag, another dataset, another hold tag, a
//! property that is not zfleet's — is refused with the reason.

use serde::Serialize;

use super::Refusal;
use crate::config::PRESERVABLE_PROPERTIES;
use crate::exec::Argv;
use crate::zfs::{
    cmd, parse::LIST_PROPERTIES, BookmarkName, DatasetName, SnapshotName, ZfsErrorKind,
};

/// Who is connecting, and so what they may touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// A backup server pulling this client's datasets.
    Send {
        server: String,
        datasets: Vec<DatasetName>,
        sync_snapshots: bool,
    },
    /// A push client sending into this server's `<target_root>/<client>`.
    Receive {
        client: String,
        server: String,
        tree: DatasetName,
    },
    /// Restores into named datasets of this host: a separate, explicit grant.
    Restore {
        server: String,
        datasets: Vec<DatasetName>,
    },
}

impl Mode {
    pub(crate) fn marker(&self) -> String {
        let server = match self {
            Mode::Send { server, .. }
            | Mode::Receive { server, .. }
            | Mode::Restore { server, .. } => server,
        };
        crate::protocol::base_marker(server)
    }

    pub(crate) fn who(&self) -> String {
        match self {
            Mode::Send { server, .. } => format!("backup server `{server}`"),
            Mode::Receive { client, .. } => format!("push client `{client}`"),
            Mode::Restore { server, .. } => format!("restores from `{server}`"),
        }
    }

    fn dataset_ok(&self, ds: &DatasetName) -> bool {
        match self {
            Mode::Send { datasets, .. } | Mode::Restore { datasets, .. } => datasets.contains(ds),
            Mode::Receive { tree, .. } => ds.is_within(tree),
        }
    }
}

/// How the command's data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    None,
    /// A send stream goes out on stdout.
    Out,
    /// A receive stream comes in on stdin.
    In,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    Plain,
    /// The capability probe: `zfs version`, else `zpool upgrade -v`.
    Probe,
    /// Succeeds also when zfs fails in one of these ways (a hold that
    /// exists, a release of a tag that is not there), or because the dialect
    /// lacks the command.
    Tolerate {
        benign: Vec<ZfsErrorKind>,
    },
    /// `zfs send -t TOKEN`: allowed only after the token was read and found to
    /// be for an allowed dataset.
    ResumeSend {
        token: String,
    },
    /// A listing whose output serve filters to these datasets and their
    /// snapshots and bookmarks: `-d 1` also lists direct children, which
    /// the peer does not back up.
    Listing {
        datasets: Vec<DatasetName>,
    },
    /// `zfs get … all` of one dataset, of which serve passes on only the
    /// properties a backup records (see [`property_shown`]).
    Properties,
}

/// The properties of a backed-up dataset that serve shows its backup server:
/// the native ones a server may preserve, mountpoint and canmount (recorded
/// for restores), and user properties (recorded too, as `zfleet:src:*`).
/// Not shown: everything else, for instance `origin`, `encryptionroot` or
/// `keylocation`, which name other datasets and files.
pub fn property_shown(property: &str) -> bool {
    PRESERVABLE_PROPERTIES.contains(&property)
        || matches!(property, "mountpoint" | "canmount")
        || (property.contains(':') && !property.starts_with("zfleet:"))
        || property.starts_with("zfleet:src:")
}

/// An authorised command, ready to run without a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    #[serde(serialize_with = "ser_argv")]
    pub argv: Argv,
    pub stream: Stream,
    pub kind: OpKind,
    /// A send whose stream `serve` compresses with zstd on its way out.
    pub zstd: bool,
}

fn ser_argv<S: serde::Serializer>(a: &Argv, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(a)
}

fn op(argv: Argv, stream: Stream, kind: OpKind) -> Op {
    Op {
        argv,
        stream,
        kind,
        zstd: false,
    }
}

pub use crate::protocol::ZSTD_PREFIX;

fn refuse(msg: impl Into<String>) -> Refusal {
    Refusal::new(msg)
}

/// The literal probe zfleet sends to hosts it reaches with plain ssh.
pub const PROBE_LINE: &str = "zfs version 2>/dev/null || zpool upgrade -v";

pub fn authorize(mode: &Mode, w: &[String]) -> Result<Op, Refusal> {
    let words: Vec<&str> = w.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["zfs", "version"] | ["sh", "-c", PROBE_LINE] => {
            Ok(op(cmd::zfs().arg("version"), Stream::None, OpKind::Probe))
        }
        [ZSTD_PREFIX, "zfs", "send", ..] => {
            let mut op = authorize(mode, &w[1..])?;
            op.zstd = true;
            Ok(op)
        }
        [ZSTD_PREFIX, ..] => Err(refuse(format!("`{ZSTD_PREFIX}` wraps only `zfs send`"))),
        ["zfs", "list", rest @ ..] => list(mode, rest),
        ["zfs", "get", rest @ ..] => get(mode, rest),
        ["zpool", "list", "-H", "-o", "altroot", pool] => {
            // The altroot is what `zfs get` puts in front of a mountpoint;
            // only of a pool that holds a dataset this peer may use.
            let ours = match mode {
                Mode::Send { datasets, .. } | Mode::Restore { datasets, .. } => {
                    datasets.iter().any(|d| d.pool().as_str() == *pool)
                }
                Mode::Receive { .. } => false,
            };
            if !ours {
                return Err(refuse(format!(
                    "pool `{pool}` holds no dataset {} may use",
                    mode.who()
                )));
            }
            Ok(op(
                cmd::zpool().args(["list", "-H", "-o", "altroot", pool]),
                Stream::None,
                OpKind::Plain,
            ))
        }
        ["zfs", "send", rest @ ..] => send(mode, rest),
        ["zfs", "set", rest @ ..] => set(mode, rest),
        ["zfs", "inherit", prop, target] => {
            let snap = snapshot(mode, target)?;
            marker_prop(mode, prop)?;
            Ok(op(
                cmd::inherit(prop, &snap.to_string()),
                Stream::None,
                OpKind::Plain,
            ))
        }
        ["zfs", verb @ ("hold" | "release"), tag, target] => {
            let snap = snapshot(mode, target)?;
            if *tag != mode.marker() {
                return Err(refuse(format!(
                    "hold tag `{tag}` is not this server's (`{}`)",
                    mode.marker()
                )));
            }
            let (argv, benign) = if *verb == "hold" {
                (cmd::hold(tag, &[&snap]), ZfsErrorKind::HoldExists)
            } else {
                (cmd::release(tag, &[&snap]), ZfsErrorKind::NoSuchHold)
            };
            Ok(op(
                argv,
                Stream::None,
                OpKind::Tolerate {
                    benign: vec![benign],
                },
            ))
        }
        ["zfs", "bookmark", snap, bm] => {
            let snap = snapshot(mode, snap)?;
            let bm = BookmarkName::parse(bm).map_err(|e| refuse(e.to_string()))?;
            let want = crate::protocol::base_bookmark(&mode.marker(), &snap.name);
            if !matches!(mode, Mode::Send { .. }) || bm.dataset != snap.dataset || bm.name != want {
                return Err(refuse(format!(
                    "bookmark `{bm}` is not this server's bookmark of `{snap}` (`#{want}`)"
                )));
            }
            Ok(op(
                cmd::bookmark(&snap, &bm),
                Stream::None,
                OpKind::Tolerate {
                    benign: vec![ZfsErrorKind::AlreadyExists],
                },
            ))
        }
        ["zfs", "destroy", target] if target.contains('#') => {
            let bm = BookmarkName::parse(target).map_err(|e| refuse(e.to_string()))?;
            let prefix = crate::protocol::base_bookmark_prefix(&mode.marker());
            if !matches!(mode, Mode::Send { .. })
                || !mode.dataset_ok(&bm.dataset)
                || !bm.name.starts_with(&prefix)
            {
                return Err(refuse(format!("`zfs destroy {target}` is refused: only this server's own bookmarks (`#{prefix}…`)")));
            }
            Ok(op(
                cmd::destroy_bookmark(&bm),
                Stream::None,
                OpKind::Tolerate {
                    benign: vec![ZfsErrorKind::DoesNotExist { name: None }],
                },
            ))
        }
        ["zfs", verb @ ("snapshot" | "destroy"), target] => sync_snapshot(mode, verb, target),
        ["zfs", "receive" | "recv", rest @ ..] => receive(mode, rest),
        ["zfs", "create", "-o", "canmount=off", "-o", "readonly=on", target] => {
            let ds = dataset(mode, target)?;
            if !matches!(mode, Mode::Receive { .. }) {
                return Err(refuse(format!("{} may not create datasets", mode.who())));
            }
            Ok(op(
                cmd::create(&ds, &[("canmount", "off"), ("readonly", "on")]),
                Stream::None,
                OpKind::Plain,
            ))
        }
        ["zfs", sub, ..] => Err(refuse(format!(
            "`zfs {sub}` is not something {} may do here",
            mode.who()
        ))),
        [first, ..] => Err(refuse(format!(
            "`{first}` is not a command zfleet serve runs (only `zfs`)"
        ))),
        [] => Err(refuse("an empty command")),
    }
}

fn dataset(mode: &Mode, word: &str) -> Result<DatasetName, Refusal> {
    let ds = DatasetName::parse(word).map_err(|e| refuse(e.to_string()))?;
    if !mode.dataset_ok(&ds) {
        return Err(refuse(format!(
            "dataset `{ds}` is not one {} may use on this host",
            mode.who()
        )));
    }
    Ok(ds)
}

fn snapshot(mode: &Mode, word: &str) -> Result<SnapshotName, Refusal> {
    let s = SnapshotName::parse(word).map_err(|e| refuse(e.to_string()))?;
    if !mode.dataset_ok(&s.dataset) {
        return Err(refuse(format!(
            "snapshot `{s}` is not of a dataset {} may use on this host",
            mode.who()
        )));
    }
    Ok(s)
}

fn marker_prop(mode: &Mode, prop: &str) -> Result<(), Refusal> {
    if prop == mode.marker() {
        Ok(())
    } else {
        Err(refuse(format!(
            "property `{prop}` is not this server's marker (`{}`)",
            mode.marker()
        )))
    }
}

/// The columns and properties zfleet observes.
fn observed_ok(mode: &Mode, p: &str) -> bool {
    LIST_PROPERTIES.contains(&p)
        || matches!(p, "receive_resume_token" | "written")
        || p == mode.marker()
}

/// The datasets a listing names: each one this peer may use.
fn listed(mode: &Mode, targets: &[&str]) -> Result<Vec<DatasetName>, Refusal> {
    if targets.is_empty() {
        return Err(refuse("a listing names the datasets it lists"));
    }
    targets.iter().map(|t| dataset(mode, t)).collect()
}

/// Listings are of the datasets themselves and their snapshots and bookmarks
/// (`-d 1`, output filtered): backup jobs are per dataset, never recursive,
/// so a child is not something this peer backs up. `-r` is refused.
fn list(mode: &Mode, rest: &[&str]) -> Result<Op, Refusal> {
    let ["-H", "-p", "-d", "1", "-t", types, "-o", cols, targets @ ..] = rest else {
        return Err(refuse(format!(
            "`zfs list {}` is not a listing zfleet makes (it lists with `-H -p -d 1 -t TYPES -o COLUMNS DATASET…`)",
            rest.join(" ")
        )));
    };
    if !types
        .split(',')
        .all(|t| matches!(t, "filesystem" | "volume" | "snapshot" | "bookmark"))
    {
        return Err(refuse(format!("types `{types}` are not allowed")));
    }
    if let Some(bad) = cols.split(',').find(|c| !observed_ok(mode, c)) {
        return Err(refuse(format!("property `{bad}` is not one zfleet reads")));
    }
    let datasets = listed(mode, targets)?;
    Ok(op(
        cmd::zfs()
            .args(["list", "-H", "-p", "-d", "1", "-t", types, "-o", cols])
            .args(datasets.iter().map(DatasetName::as_str)),
        Stream::None,
        OpKind::Listing { datasets },
    ))
}

fn get(mode: &Mode, rest: &[&str]) -> Result<Op, Refusal> {
    match rest {
        ["-H", "-p", "-d", "1", "-o", "name,property,value", props, targets @ ..] => {
            if let Some(bad) = props.split(',').find(|c| !observed_ok(mode, c)) {
                return Err(refuse(format!("property `{bad}` is not one zfleet reads")));
            }
            let datasets = listed(mode, targets)?;
            Ok(op(
                cmd::zfs()
                    .args([
                        "get",
                        "-H",
                        "-p",
                        "-d",
                        "1",
                        "-o",
                        "name,property,value",
                        props,
                    ])
                    .args(datasets.iter().map(DatasetName::as_str)),
                Stream::None,
                OpKind::Listing { datasets },
            ))
        }
        ["-H", "-p", "-o", "name,property,value,source", "all", target] => {
            let ds = dataset(mode, target)?;
            Ok(op(
                cmd::get_properties(&[], &[&ds]),
                Stream::None,
                OpKind::Properties,
            ))
        }
        _ => Err(refuse(format!(
            "`zfs get {}` is not a query zfleet makes",
            rest.join(" ")
        ))),
    }
}

fn send(mode: &Mode, rest: &[&str]) -> Result<Op, Refusal> {
    if !matches!(mode, Mode::Send { .. }) {
        return Err(refuse(format!("{} may not send", mode.who())));
    }
    let mut flags: Vec<&str> = Vec::new();
    let mut i = 0;
    while let Some(f) = rest
        .get(i)
        .filter(|w| matches!(**w, "-L" | "-e" | "-c" | "-w" | "-n" | "-v" | "-P"))
    {
        if flags.contains(f) {
            return Err(refuse(format!("flag `{f}` given twice")));
        }
        flags.push(f);
        i += 1;
    }
    let rest = &rest[i..];
    let dry = flags.contains(&"-n");
    match rest {
        ["-t", token] => {
            if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(refuse("a resume token is letters, digits and `-`"));
            }
            Ok(op(
                cmd::zfs()
                    .arg("send")
                    .args(flags.iter().copied())
                    .args(["-t", token]),
                if dry { Stream::None } else { Stream::Out },
                OpKind::ResumeSend {
                    token: token.to_string(),
                },
            ))
        }
        [target] | [_, _, target] => {
            let snap = snapshot(mode, target)?;
            let base = match rest {
                [inc @ ("-i" | "-I"), base, _] => {
                    // The base must be of the same dataset: a snapshot, or
                    // (with -i) a bookmark.
                    let same = if base.contains('#') {
                        if *inc == "-I" {
                            return Err(refuse("`-I` cannot start at a bookmark"));
                        }
                        BookmarkName::parse(base)
                            .map_err(|e| refuse(e.to_string()))?
                            .dataset
                    } else {
                        SnapshotName::parse(base)
                            .map_err(|e| refuse(e.to_string()))?
                            .dataset
                    };
                    if same != snap.dataset {
                        return Err(refuse(format!(
                            "incremental base `{base}` is not of `{}`",
                            snap.dataset
                        )));
                    }
                    Some((*inc, *base))
                }
                [_] => None,
                _ => {
                    return Err(refuse(format!(
                        "`zfs send {}` is not a send zfleet makes",
                        rest.join(" ")
                    )))
                }
            };
            let mut a = cmd::zfs().arg("send").args(flags.iter().copied());
            if let Some((inc, b)) = base {
                a = a.args([inc, b]);
            }
            Ok(op(
                a.arg(snap.to_string()),
                if dry { Stream::None } else { Stream::Out },
                OpKind::Plain,
            ))
        }
        _ => Err(refuse(format!(
            "`zfs send {}` is not a send zfleet makes",
            rest.join(" ")
        ))),
    }
}

fn set(mode: &Mode, rest: &[&str]) -> Result<Op, Refusal> {
    let [assignment, target] = rest else {
        return Err(refuse("`zfs set` takes one property and one target here"));
    };
    let (prop, value) = assignment
        .split_once('=')
        .ok_or_else(|| refuse(format!("`{assignment}` is not property=value")))?;
    if prop == mode.marker() {
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
            return Err(refuse("the base marker's value is a unix time"));
        }
        let snap = snapshot(mode, target)?;
        return Ok(op(
            cmd::set(prop, value, &snap.to_string()),
            Stream::None,
            OpKind::Plain,
        ));
    }
    // A push client records properties on its backups, like a server does
    // after a pull: preserved native ones, readonly, and zfleet:src:*.
    if let Mode::Receive { .. } = mode {
        let ds = dataset(mode, target)?;
        let allowed = prop == "readonly" && value == "on"
            || PRESERVABLE_PROPERTIES.contains(&prop)
            || prop.starts_with("zfleet:src:");
        if allowed {
            return Ok(op(
                cmd::set(prop, value, ds.as_str()),
                Stream::None,
                OpKind::Plain,
            ));
        }
    }
    Err(refuse(format!(
        "setting `{prop}` is not something {} may do here",
        mode.who()
    )))
}

fn sync_snapshot(mode: &Mode, verb: &str, target: &str) -> Result<Op, Refusal> {
    let Mode::Send {
        server,
        sync_snapshots,
        ..
    } = mode
    else {
        return Err(refuse(format!(
            "`zfs {verb}` is not something {} may do here",
            mode.who()
        )));
    };
    let snap = snapshot(mode, target)?;
    let ours = crate::protocol::is_sync_snapshot_of(&snap.name, server);
    if !*sync_snapshots || !ours {
        return Err(refuse(format!(
            "`zfs {verb} {target}` is refused: only `{server}`'s own sync snapshots, and only when its sync_snapshot is on"
        )));
    }
    let argv = if verb == "snapshot" {
        cmd::snapshot(&snap)
    } else {
        cmd::destroy_snapshot(&snap)
    };
    Ok(op(argv, Stream::None, OpKind::Plain))
}

fn receive(mode: &Mode, rest: &[&str]) -> Result<Op, Refusal> {
    if matches!(mode, Mode::Send { .. }) {
        return Err(refuse(format!("{} may not receive", mode.who())));
    }
    match rest {
        ["-A", target] => {
            let ds = dataset(mode, target)?;
            Ok(op(cmd::receive_abort(&ds), Stream::None, OpKind::Plain))
        }
        _ => {
            let (flags, target) = rest.split_at(rest.len().saturating_sub(1));
            let Some(target) = target.first() else {
                return Err(refuse("`zfs receive` needs a target"));
            };
            if let Some(bad) = flags.iter().find(|f| !matches!(**f, "-u" | "-s")) {
                return Err(refuse(format!("receive flag `{bad}` is not allowed (no -F: nothing is rolled back or overwritten)")));
            }
            let ds = dataset(mode, target)?;
            Ok(op(
                cmd::zfs()
                    .arg("receive")
                    .args(flags.iter().copied())
                    .arg(ds.as_str()),
                Stream::In,
                OpKind::Plain,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_mode() -> Mode {
        Mode::Send {
            server: "vault".into(),
            datasets: vec![DatasetName::parse("zroot/persistSave").unwrap()],
            sync_snapshots: false,
        }
    }

    fn words(s: &str) -> Vec<String> {
        shlex::split(s).unwrap()
    }

    fn ok(mode: &Mode, s: &str) -> String {
        authorize(mode, &words(s))
            .unwrap_or_else(|e| panic!("{s}: {}", e.reason))
            .argv
            .to_string()
    }

    fn no(mode: &Mode, s: &str) -> String {
        authorize(mode, &words(s))
            .map(|o| o.argv.to_string())
            .unwrap_err()
            .reason
    }

    /// `zfleet-zstd` only wraps a send that would be allowed on its own.
    #[test]
    fn compressed_sends() {
        let m = send_mode();
        let op = authorize(
            &m,
            &words("zfleet-zstd zfs send -L -e -c zroot/persistSave@a"),
        )
        .unwrap();
        assert!(op.zstd);
        assert_eq!(op.stream, Stream::Out);
        assert_eq!(op.argv.to_string(), "zfs send -L -e -c zroot/persistSave@a");
        assert!(
            !authorize(&m, &words("zfs send zroot/persistSave@a"))
                .unwrap()
                .zstd
        );
        assert!(no(&m, "zfleet-zstd zfs send zroot/other@a").contains("zroot/other"));
        for s in [
            "zfleet-zstd zfs destroy zroot/persistSave@a",
            "zfleet-zstd zfleet-zstd zfs send zroot/persistSave@a",
            "zfleet-zstd sh -c id",
            "zfleet-zstd",
        ] {
            assert_eq!(no(&m, s), "`zfleet-zstd` wraps only `zfs send`", "{s}");
        }
    }

    /// Every command the engine sends to a client it pulls from is allowed, as sent.
    #[test]
    fn what_a_pull_needs() {
        let m = send_mode();
        for s in [
            "zfs version",
            "zfs list -H -p -d 1 -t filesystem,volume,snapshot,bookmark -o name,type,guid,createtxg,creation,used,referenced,userrefs,zfleet:base:vault zroot/persistSave",
            "zfs get -H -p -d 1 -o name,property,value type,guid,createtxg,creation,used,referenced,userrefs,zfleet:base:vault zroot/persistSave",
            "zfs get -H -p -o name,property,value,source all zroot/persistSave",
            "zpool list -H -o altroot zroot",
            "zfs send -L -e -c zroot/persistSave@a",
            "zfs send -w -I zroot/persistSave@a zroot/persistSave@b",
            "zfs send -i zroot/persistSave#a zroot/persistSave@b",
            "zfs send -n -v -P -L -e -c -I zroot/persistSave@a zroot/persistSave@b",
            "zfs send -t 1-abc-def",
            "zfs set zfleet:base:vault=1795650819 zroot/persistSave@b",
            "zfs inherit zfleet:base:vault zroot/persistSave@a",
            "zfs hold zfleet:base:vault zroot/persistSave@b",
            "zfs release zfleet:base:vault zroot/persistSave@a",
            "zfs bookmark zroot/persistSave@b zroot/persistSave#zfleet_vault:b",
            "zfs destroy zroot/persistSave#zfleet_vault:a",
        ] {
            assert_eq!(ok(&m, s), s);
        }
        assert_eq!(ok(&m, &format!("sh -c '{PROBE_LINE}'")), "zfs version");
    }

    #[test]
    fn what_a_stolen_server_key_cannot_do() {
        let m = send_mode();
        let cases = [
            ("zfs destroy zroot/persistSave@a", "`zfs destroy zroot/persistSave@a` is refused: only `vault`'s own sync snapshots, and only when its sync_snapshot is on"),
            ("zfs destroy -r zroot/persistSave", "`zfs destroy` is not something backup server `vault` may do here"),
            ("zfs rollback -r zroot/persistSave@a", "`zfs rollback` is not something backup server `vault` may do here"),
            ("zfs receive zroot/persistSave", "backup server `vault` may not receive"),
            ("zfs send zroot/other@a", "snapshot `zroot/other@a` is not of a dataset backup server `vault` may use on this host"),
            ("zfs send -I zroot/other@a zroot/persistSave@b", "incremental base `zroot/other@a` is not of `zroot/persistSave`"),
            ("zfs send -R zroot/persistSave@a", "`zfs send -R zroot/persistSave@a` is not a send zfleet makes"),
            ("zfs set mountpoint=/tmp zroot/persistSave", "setting `mountpoint` is not something backup server `vault` may do here"),
            ("zfs set zfleet:base:other=1 zroot/persistSave@a", "setting `zfleet:base:other` is not something backup server `vault` may do here"),
            ("zfs inherit mountpoint zroot/persistSave", "invalid snapshot name `zroot/persistSave`: missing `@`"),
            ("zfs hold evil zroot/persistSave@a", "hold tag `evil` is not this server's (`zfleet:base:vault`)"),
            ("sh -c id", "`sh` is not a command zfleet serve runs (only `zfs`)"),
            ("bash", "`bash` is not a command zfleet serve runs (only `zfs`)"),
            ("zfs list;id", "`zfs list;id` is not something backup server `vault` may do here"),
            ("zfs send 'zroot/persistSave@a;id'", "invalid snapshot name `zroot/persistSave@a;id`: `;` at position 20 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)"),
            ("zfs send 'zroot/persistSave@$(id)'", "invalid snapshot name `zroot/persistSave@$(id)`: `$` at position 19 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)"),
            ("zfs send zroot/persistSave@`id`", "invalid snapshot name `zroot/persistSave@`id``: a backtick at position 19 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)"),
            ("zfs send zroot/persistSave/../other@a", "invalid snapshot name `zroot/persistSave/../other@a`: component `..` is not allowed"),
            ("zfs send zroot/persistSave@a@b", "invalid snapshot name `zroot/persistSave@a@b`: more than one `@` or `#`"),
            ("zfs send zroot/persistSave#a", "invalid snapshot name `zroot/persistSave#a`: missing `@`"),
            ("zfs send -t '1-abc;id'", "a resume token is letters, digits and `-`"),
            ("zfs list -H -p -d 1 -t snapshot -o name,mountpoint zroot/persistSave", "property `mountpoint` is not one zfleet reads"),
            // Listings are of the backed-up dataset only: no `-r`, no other dataset.
            ("zfs list -H -p -r -t filesystem,snapshot -o name,guid zroot/persistSave", "`zfs list -H -p -r -t filesystem,snapshot -o name,guid zroot/persistSave` is not a listing zfleet makes (it lists with `-H -p -d 1 -t TYPES -o COLUMNS DATASET…`)"),
            ("zfs list -H -p -d 2 -t filesystem -o name zroot/persistSave", "`zfs list -H -p -d 2 -t filesystem -o name zroot/persistSave` is not a listing zfleet makes (it lists with `-H -p -d 1 -t TYPES -o COLUMNS DATASET…`)"),
            ("zfs list -H -p -d 1 -t filesystem -o name zroot/persistSave zroot", "dataset `zroot` is not one backup server `vault` may use on this host"),
            ("zfs list -H -p -d 1 -t filesystem -o name", "a listing names the datasets it lists"),
            ("zfs get -H -p -r -o name,property,value guid zroot/persistSave", "`zfs get -H -p -r -o name,property,value guid zroot/persistSave` is not a query zfleet makes"),
            ("zfs get -H -p -o name,property,value,source all zroot", "dataset `zroot` is not one backup server `vault` may use on this host"),
            ("zpool list -H -o altroot zstorage", "pool `zstorage` holds no dataset backup server `vault` may use"),
            ("zpool list -H -o name,altroot zroot", "`zpool` is not a command zfleet serve runs (only `zfs`)"),
            // Another server's bookmarks, even one whose name starts like ours.
            ("zfs destroy zroot/persistSave#zfleet_vault_2:b", "`zfs destroy zroot/persistSave#zfleet_vault_2:b` is refused: only this server's own bookmarks (`#zfleet_vault:…`)"),
            ("zfs get all zroot/persistSave", "`zfs get all zroot/persistSave` is not a query zfleet makes"),
            ("zfs bookmark zroot/persistSave@b zroot/persistSave#mine", "bookmark `zroot/persistSave#mine` is not this server's bookmark of `zroot/persistSave@b` (`#zfleet_vault:b`)"),
            ("zfs destroy zroot/persistSave#precious", "`zfs destroy zroot/persistSave#precious` is refused: only this server's own bookmarks (`#zfleet_vault:…`)"),
            ("zfs snapshot zroot/persistSave@mine", "`zfs snapshot zroot/persistSave@mine` is refused: only `vault`'s own sync snapshots, and only when its sync_snapshot is on"),
        ];
        for (req, why) in cases {
            assert_eq!(no(&m, req), why, "{req}");
        }
    }

    /// What a listing and a property read pass on.
    #[test]
    fn listings_and_property_reads_are_filtered() {
        let m = send_mode();
        let op = authorize(
            &m,
            &words("zfs list -H -p -d 1 -t filesystem,snapshot -o name,guid zroot/persistSave"),
        )
        .unwrap();
        assert_eq!(
            op.kind,
            OpKind::Listing {
                datasets: vec![DatasetName::parse("zroot/persistSave").unwrap()]
            }
        );
        let op = authorize(
            &m,
            &words("zfs get -H -p -o name,property,value,source all zroot/persistSave"),
        )
        .unwrap();
        assert_eq!(op.kind, OpKind::Properties);
        for p in [
            "recordsize",
            "compression",
            "mountpoint",
            "canmount",
            "com.example:note",
        ] {
            assert!(property_shown(p), "{p}");
        }
        for p in [
            "origin",
            "encryptionroot",
            "keylocation",
            "zfleet:base:other",
            "used",
        ] {
            assert!(!property_shown(p), "{p}");
        }
    }

    #[test]
    fn sync_snapshots_only_when_configured_and_only_ours() {
        let m = Mode::Send {
            server: "vault".into(),
            datasets: vec![DatasetName::parse("zroot/persistSave").unwrap()],
            sync_snapshots: true,
        };
        assert_eq!(
            ok(
                &m,
                "zfs snapshot zroot/persistSave@zfleet_sync_vault_2026-11-25_23:00:00"
            ),
            "zfs snapshot zroot/persistSave@zfleet_sync_vault_2026-11-25_23:00:00"
        );
        assert_eq!(
            ok(
                &m,
                "zfs destroy zroot/persistSave@zfleet_sync_vault_2026-11-25_23:00:00"
            ),
            "zfs destroy zroot/persistSave@zfleet_sync_vault_2026-11-25_23:00:00"
        );
        assert!(no(
            &m,
            "zfs destroy zroot/persistSave@zfleet_sync_other_2026-11-25_23:00:00"
        )
        .contains("only `vault`'s own"));
        assert!(no(
            &m,
            "zfs destroy zroot/persistSave@autosnap_2026-11-25_23:00:00_hourly"
        )
        .contains("only `vault`'s own"));
    }

    #[test]
    fn a_push_client_may_only_receive_into_its_tree() {
        let m = Mode::Receive {
            client: "roamer".into(),
            server: "vault".into(),
            tree: DatasetName::parse("zstorage/backups/roamer").unwrap(),
        };
        assert_eq!(
            ok(
                &m,
                "zfs receive -u -s zstorage/backups/roamer/zroot/persistSave"
            ),
            "zfs receive -u -s zstorage/backups/roamer/zroot/persistSave"
        );
        assert_eq!(
            ok(
                &m,
                "zfs create -o canmount=off -o readonly=on zstorage/backups/roamer/zroot"
            ),
            "zfs create -o canmount=off -o readonly=on zstorage/backups/roamer/zroot"
        );
        assert_eq!(ok(&m, "zfs set zfleet:src:mountpoint=/persist/save zstorage/backups/roamer/zroot/persistSave"), "zfs set zfleet:src:mountpoint=/persist/save zstorage/backups/roamer/zroot/persistSave");
        assert_eq!(
            no(
                &m,
                "zfs receive -F zstorage/backups/roamer/zroot/persistSave"
            ),
            "receive flag `-F` is not allowed (no -F: nothing is rolled back or overwritten)"
        );
        assert_eq!(no(&m, "zfs receive zstorage/backups/other/x"), "dataset `zstorage/backups/other/x` is not one push client `roamer` may use on this host");
        assert_eq!(
            no(&m, "zfs send zstorage/backups/roamer/zroot/persistSave@a"),
            "push client `roamer` may not send"
        );
        assert_eq!(
            no(
                &m,
                "zfs rollback zstorage/backups/roamer/zroot/persistSave@a"
            ),
            "`zfs rollback` is not something push client `roamer` may do here"
        );
    }
}
