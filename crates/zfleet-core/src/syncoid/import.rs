//! syncoid jobs → fleet.toml: hosts, backup clients and servers, with a
//! comment on every generated line saying which job it came from.
//!
//! A job run on this host that pulls `[user@]client:dataset` into a local
//! dataset makes this host a backup server and `client` a backup client; one
//! that sends a local dataset to `[user@]server:dataset` makes this host a
//! push client of `server`. What a flag means for such a backup is carried
//! over (`--no-sync-snap`, `--sshkey`, `--sshport`, `--compress`, …); what
//! it cannot mean is listed, flag by flag, in [`Imported::notes`], never
//! dropped. A refused flag value (the seed's `--recvoptions c`) is listed
//! and the rest of the job still imported.
//!
//! zfleet keeps client `C`'s dataset `D` at `<target_root>/C/D`. Where
//! syncoid's target is elsewhere, the import says how to move the existing
//! backup there once (`zfs rename`), so the next backup goes on
//! incrementally from it instead of starting over.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::Serialize;

use super::args::{Compress, Flag, Invocation, SyncoidArgs};
use super::sources::Job;
use super::zfs_options::{RecvOption, SendOption};
use crate::zfs::DatasetName;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Imported {
    /// fleet.toml text; empty when no job could be imported.
    pub toml: String,
    /// What was not carried over, or carried over differently: one line each,
    /// `origin: --flag: why`.
    pub notes: Vec<String>,
    /// Jobs that could not be imported at all, with why.
    pub errors: Vec<String>,
    /// Commands to run once so zfleet goes on from syncoid's backups.
    pub migrations: Vec<String>,
    /// Host entries written, in order.
    pub hosts: Vec<String>,
    /// Per pull job: `(server, syncoid's target, zfleet's target)`.
    pub targets: Vec<(String, String, String)>,
}

/// Sections of the generated file, each key with the origins of its value.
#[derive(Default)]
struct Doc {
    sections: IndexMap<String, Section>,
}

#[derive(Default)]
struct Section {
    origin: Vec<String>,
    /// Comment lines written under the header.
    comments: Vec<String>,
    keys: IndexMap<String, Value>,
}

struct Value {
    /// A TOML value, or the items of an array (each with its origin).
    toml: String,
    items: Vec<(String, String)>,
    origin: Vec<String>,
}

impl Doc {
    fn section(&mut self, header: &str, origin: &str) -> &mut Section {
        let s = self.sections.entry(header.to_string()).or_default();
        if !s.origin.iter().any(|o| o == origin) {
            s.origin.push(origin.to_string());
        }
        s
    }

    /// Sets `key`; a different value already there stays, and the conflict
    /// is returned for a note.
    fn set(&mut self, header: &str, key: &str, toml: String, origin: &str) -> Option<String> {
        let s = self.section(header, origin);
        match s.keys.get_mut(key) {
            Some(v) if v.toml == toml => {
                if !v.origin.iter().any(|o| o == origin) {
                    v.origin.push(origin.to_string());
                }
                None
            }
            Some(v) => Some(v.toml.clone()),
            None => {
                s.keys.insert(
                    key.to_string(),
                    Value {
                        toml,
                        items: Vec::new(),
                        origin: vec![origin.to_string()],
                    },
                );
                None
            }
        }
    }

    fn push_item(&mut self, header: &str, key: &str, item: String, origin: &str) {
        let s = self.section(header, origin);
        let v = s.keys.entry(key.to_string()).or_insert_with(|| Value {
            toml: String::new(),
            items: Vec::new(),
            origin: Vec::new(),
        });
        if !v.items.iter().any(|(i, _)| *i == item) {
            v.items.push((item, origin.to_string()));
        }
    }

    fn comment(&mut self, header: &str, origin: &str, line: String) {
        self.section(header, origin).comments.push(line);
    }

    fn render(&self, out: &mut String) {
        let first = ["[fleet]", "[ssh]"];
        let ordered = first
            .iter()
            .filter_map(|h| self.sections.get_key_value(*h))
            .chain(
                self.sections
                    .iter()
                    .filter(|(h, _)| !first.contains(&h.as_str())),
            );
        for (header, s) in ordered {
            // A table with nothing in it is made by its sub-tables anyway.
            if s.keys.is_empty() && s.comments.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{header}  # {}", short_origins(&s.origin));
            for c in &s.comments {
                let _ = writeln!(out, "# {c}");
            }
            for (k, v) in &s.keys {
                if v.items.is_empty() {
                    let _ = writeln!(out, "{k} = {}  # {}", v.toml, short_origins(&v.origin));
                } else {
                    let origins: Vec<String> = v.items.iter().map(|(_, o)| o.clone()).collect();
                    let _ = writeln!(out, "{k} = [  # {}", short_origins(&origins));
                    for (item, origin) in &v.items {
                        let _ = writeln!(out, "  {item},  # {origin}");
                    }
                    out.push_str("]\n");
                }
            }
            out.push('\n');
        }
    }
}

fn short_origins(o: &[String]) -> String {
    match o {
        [] => "zfleet import syncoid".into(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    }
}

/// A TOML string.
pub fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The fleet name for an ssh host: its first DNS label, or an IP address
/// with `-` for `.` and `:`.
pub fn host_name(address: &str) -> String {
    let a = address.trim_start_matches('[').trim_end_matches(']');
    let is_ip = a.parse::<std::net::IpAddr>().is_ok();
    let name = if is_ip {
        a.replace(['.', ':'], "-")
    } else {
        a.split('.').next().unwrap_or(a).to_string()
    };
    let name: String = name.chars().take(63).collect();
    if crate::config::valid_host_name(&name).is_ok() {
        name
    } else {
        format!(
            "host-{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        )
    }
}

/// What one job became.
struct Role {
    client: String,
    server: String,
    dataset: DatasetName,
    /// syncoid's target dataset on the server.
    target: DatasetName,
    /// The account the server (pull) or the client (push) logs in as.
    login: Option<String>,
    push: bool,
}

/// Imports `jobs`, run on `this_host`, whose local pools are `local_pools`
/// (for syncoid's `host:dataset`-or-pool rule).
pub fn import(this_host: &str, jobs: &[Job], local_pools: &[String]) -> Imported {
    let mut doc = Doc::default();
    let mut r = Imported::default();
    let mut roles: Vec<(String, Role)> = Vec::new();
    let mut addresses: IndexMap<String, String> = IndexMap::new();
    let fleet_hdr = "[fleet]".to_string();
    for job in jobs {
        let o = job.origin.as_str();
        let Some(mut a) = parse_leniently(job, &mut r) else {
            continue;
        };
        a.source.resolve_local_pools(local_pools);
        a.target.resolve_local_pools(local_pools);
        let line = format!(
            "syncoid {}",
            crate::exec::quote::display_line(job.args.iter().map(String::as_str))
        );
        let run_as = job.run_as.clone();
        let role = match (&a.source.remote, &a.target.remote) {
            (Some(src), None) => Role {
                client: host_name(&src.host),
                server: this_host.to_string(),
                dataset: a.source.dataset.clone(),
                target: a.target.dataset.clone(),
                login: src.user.clone().or(run_as),
                push: false,
            },
            (None, Some(dst)) => Role {
                client: this_host.to_string(),
                server: host_name(&dst.host),
                dataset: a.source.dataset.clone(),
                target: a.target.dataset.clone(),
                login: dst.user.clone().or(run_as),
                push: true,
            },
            (None, None) => {
                r.notes.push(format!(
                    "{o}: `{line}` copies {} to {} on this host; a zfleet backup never copies a host onto itself (another server backs it up), so nothing is written for it. To keep the copy, run `zfleet sync {} {}` from a timer",
                    a.source.dataset, a.target.dataset, a.source.dataset, a.target.dataset
                ));
                continue;
            }
            (Some(s), Some(d)) => {
                r.notes.push(format!(
                    "{o}: `{line}` copies between two other hosts ({} → {}); nothing is written for it. If it is a backup, give `{}` a `[hosts.{}.server]` table and `{}` a `[hosts.{}.backup]` table: the server pulls itself. If it is a restore, `zfleet restore` does it",
                    s.host, d.host, d.host, host_name(&d.host), s.host, host_name(&s.host)
                ));
                continue;
            }
        };
        let remote = if role.push { &a.target } else { &a.source };
        if let Some(rem) = &remote.remote {
            let name = host_name(&rem.host);
            match addresses.get(&name) {
                Some(other) if other != &rem.host => {
                    r.errors.push(format!(
                        "{o}: `{}` and `{other}` would both be host `{name}`; rename one in the result by hand",
                        rem.host
                    ));
                    continue;
                }
                _ => {
                    addresses.insert(name.clone(), rem.host.clone());
                }
            }
            let hdr = format!("[hosts.{name}]");
            if rem.host != name {
                doc.set(&hdr, "address", quote(&rem.host), o);
            } else {
                doc.section(&hdr, o);
            }
            let port = a
                .ssh
                .port
                .or_else(|| ssh_option(&a, "port").and_then(|p| p.parse().ok()));
            if let Some(p) = port {
                if let Some(old) = doc.set(&hdr, "port", p.to_string(), o) {
                    r.notes.push(format!(
                        "{o}: port {p} for {name}: another job uses {old}; kept {old}"
                    ));
                }
            }
            if role.push {
                if let Some(u) = &role.login {
                    if let Some(old) = doc.set(&hdr, "user", quote(u), o) {
                        r.notes.push(format!(
                            "{o}: login `{u}` on {name}: another job uses {old}; kept {old}"
                        ));
                    }
                }
            }
        }
        let key = a.ssh.key.clone().or_else(|| ssh_option(&a, "identityfile"));
        if let Some(k) = key {
            if let Some(old) = doc.set(&fleet_hdr, "backup_identity", quote(&k), o) {
                r.notes.push(format!(
                    "{o}: --sshkey {k}: zfleet has one backup key for the fleet ({old}); this job's key is not carried over"
                ));
            }
        }
        if let Some(kh) = ssh_option(&a, "userknownhostsfile") {
            doc.set("[ssh]", "known_hosts", quote(&kh), o);
        }
        // Client and server sections.
        let client_hdr = format!("[hosts.{}.backup]", role.client);
        doc.section(&format!("[hosts.{}]", role.client), o);
        doc.push_item(&client_hdr, "datasets", quote(role.dataset.as_str()), o);
        if role.push {
            doc.set(&client_hdr, "push", "true".into(), o);
        }
        doc.section(&format!("[hosts.{}]", role.server), o);
        let server_hdr = format!("[hosts.{}.server]", role.server);
        doc.comment(&server_hdr, o, format!("{o}: {line}"));
        let sync_snapshot = !a.no_sync_snap;
        if let Some(old) = doc.set(&server_hdr, "sync_snapshot", sync_snapshot.to_string(), o) {
            r.notes.push(format!(
                "{o}: {} a sync snapshot, where another job for the same server does not (`sync_snapshot = {old}` kept): zfleet decides it per server",
                if sync_snapshot { "takes" } else { "takes no" }
            ));
        }
        if let Some(c) = a.compress {
            let z = if c == Compress::None { "none" } else { "zstd" };
            if c != Compress::None && !c.is_zstd() {
                r.notes.push(format!(
                    "{o}: --compress={}: zfleet compresses with zstd, so the server gets `compress = \"zstd\"`",
                    c.name()
                ));
            }
            doc.set(&server_hdr, "compress", quote(z), o);
        }
        if let Some(s) = &job.schedule {
            doc.comment(&server_hdr, o, format!("{o} ran on schedule `{s}`: zfleet's daemon (or a timer running `zfleet backup`) does the scheduling"));
        }
        for n in flag_notes(&a) {
            r.notes.push(format!("{o}: {n}"));
        }
        let login_note = match (&role.login, role.push) {
            (None, false) => Some(format!(
                "{o}: `{}` names no user and the job's account is unknown: ssh logged in as whoever ran syncoid; set `backup_user`",
                a.source.raw
            )),
            _ => None,
        };
        r.notes.extend(login_note);
        roles.push((o.to_string(), role));
    }
    // Who servers log in as: one fleet-wide account when every pull agrees.
    let logins: Vec<&String> = roles
        .iter()
        .filter(|(_, r)| !r.push)
        .filter_map(|(_, r)| r.login.as_ref())
        .collect();
    let common = logins.first().filter(|f| logins.iter().all(|l| l == *f));
    match common {
        Some(u) => {
            for (o, role) in roles.iter().filter(|(_, r)| !r.push) {
                if role.login.is_some() {
                    doc.set(&fleet_hdr, "backup_user", quote(u), o);
                }
            }
        }
        None => {
            for (o, role) in roles.iter().filter(|(_, r)| !r.push) {
                if let Some(u) = &role.login {
                    let hdr = format!("[hosts.{}.backup]", role.client);
                    if let Some(old) = doc.set(&hdr, "user", quote(u), o) {
                        r.notes.push(format!(
                            "{o}: login `{u}` on {}: another job uses {old}; kept {old}",
                            role.client
                        ));
                    }
                }
            }
        }
    }
    // Each server's target root: the one most of its jobs fit.
    let servers: Vec<String> = {
        let mut v: Vec<String> = roles.iter().map(|(_, r)| r.server.clone()).collect();
        v.dedup();
        let mut seen = Vec::new();
        v.retain(|s| {
            let new = !seen.contains(s);
            seen.push(s.clone());
            new
        });
        v
    };
    for server in &servers {
        let mine: Vec<&(String, Role)> =
            roles.iter().filter(|(_, r)| &r.server == server).collect();
        let mut votes: IndexMap<String, usize> = IndexMap::new();
        for (_, role) in &mine {
            *votes
                .entry(root_for(role).as_str().to_string())
                .or_default() += 1;
        }
        let Some((root, _)) = votes.iter().max_by_key(|(_, n)| **n) else {
            continue;
        };
        let Ok(root) = DatasetName::parse(root) else {
            continue;
        };
        let hdr = format!("[hosts.{server}.server]");
        for (o, role) in &mine {
            doc.set(&hdr, "target_root", quote(root.as_str()), o);
            let Ok(want) = crate::config::Fleet::target_for(&root, &role.client, &role.dataset)
            else {
                continue;
            };
            r.targets
                .push((server.clone(), role.target.to_string(), want.to_string()));
            if want != role.target {
                let steps = migration(&role.target, &want);
                r.migrations.push(format!(
                    "{o}: syncoid's backup of {}:{} is {}; zfleet keeps it at {}. Once, on {server}, before the first zfleet backup (the next one then goes on incrementally from it):\n{}",
                    role.client,
                    role.dataset,
                    role.target,
                    want,
                    steps.iter().map(|s| format!("    {s}")).collect::<Vec<_>>().join("\n")
                ));
                for s in steps {
                    doc.comment(&hdr, o, format!("move {} into place: {s}", role.target));
                }
            }
        }
    }
    r.hosts = doc
        .sections
        .keys()
        .filter_map(|h| h.strip_prefix("[hosts.").and_then(|h| h.strip_suffix(']')))
        .filter(|h| !h.contains('.'))
        .map(str::to_string)
        .collect();
    if !doc.sections.is_empty() {
        let mut out = String::from(
            "# From syncoid jobs by `zfleet import syncoid`; each line names the job it came from.\n\n",
        );
        doc.render(&mut out);
        r.toml = out.trim_end().to_string() + "\n";
    }
    r
}

/// The target root a job suggests: `<root>/<client>/<dataset>` exactly, or
/// `<root>/<client>`, or the parent of syncoid's target.
fn root_for(role: &Role) -> DatasetName {
    let t = role.target.as_str();
    let exact = format!("/{}/{}", role.client, role.dataset);
    if let Some(root) = t.strip_suffix(&exact) {
        if let Ok(d) = DatasetName::parse(root) {
            return d;
        }
    }
    if let Some(root) = t.strip_suffix(&format!("/{}", role.client)) {
        if let Ok(d) = DatasetName::parse(root) {
            return d;
        }
    }
    role.target.parent().unwrap_or_else(|| role.target.clone())
}

/// `zfs rename` steps from `from` to `to`; when `to` lies inside `from`,
/// through a temporary name.
fn migration(from: &DatasetName, to: &DatasetName) -> Vec<String> {
    let mut steps = Vec::new();
    let mut source = from.to_string();
    if to.is_within(from) {
        let tmp = format!("{from}.syncoid");
        steps.push(format!("zfs rename {from} {tmp}"));
        source = tmp;
    }
    if let Some(parent) = to.parent() {
        steps.push(format!("zfs create -p -o canmount=off {parent}"));
    }
    steps.push(format!("zfs rename {source} {to}"));
    steps
}

/// `-o Name=value` given to ssh, by lower-case name.
fn ssh_option(a: &SyncoidArgs, name: &str) -> Option<String> {
    a.ssh.options.iter().rev().find_map(|o| {
        let (k, v) = o.split_once(['=', ' '])?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
    })
}

/// Parses the job; a flag whose value is refused is left out (and listed),
/// anything else wrong with the line means the job is not imported.
fn parse_leniently(job: &Job, r: &mut Imported) -> Option<SyncoidArgs> {
    let mut words = job.args.clone();
    for _ in 0..=job.args.len() {
        match super::parse(&words) {
            Ok(Invocation::Sync(a)) => return Some(*a),
            Ok(Invocation::Help | Invocation::Version) => {
                r.notes.push(format!(
                    "{}: asks syncoid for its help or version; nothing to import",
                    job.origin
                ));
                return None;
            }
            Err(e) => match e.words.clone() {
                Some(range) if range.end <= words.len() => {
                    r.notes
                        .push(format!("{}: {e}; not carried over", job.origin));
                    words.drain(range);
                }
                _ => {
                    r.errors.push(format!("{}: {e}", job.origin));
                    return None;
                }
            },
        }
    }
    None
}

/// What each flag given becomes in a zfleet backup, for the ones that do
/// not become a line of the file.
fn flag_notes(a: &SyncoidArgs) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |f: Flag, m: &str| out.push(format!("{f}: {m}"));
    let ignored = "says how syncoid runs, which means nothing for a zfleet backup";
    for g in &a.given {
        match g.flag {
            // Carried over into the file.
            Flag::NoSyncSnap | Flag::Sshkey | Flag::Sshport | Flag::Compress => {}
            Flag::Recursive => note(g.flag, "zfleet backs up the datasets listed in `datasets`, not their children: list each child to back up (`zfleet list HOST` shows them)"),
            Flag::SkipParent => note(g.flag, "with -r: list the children to back up, not the parent"),
            Flag::Exclude | Flag::ExcludeDatasets => note(g.flag, "with -r: leave the excluded children out of `datasets`"),
            Flag::IncludeSnaps | Flag::ExcludeSnaps => note(g.flag, "zfleet sends every snapshot between the common one and the newest; a filter on snapshot names is not carried over"),
            Flag::NoStream => note(g.flag, "zfleet always sends the snapshots in between (`-I`), so the server's retention has them to keep"),
            Flag::KeepSyncSnap => note(g.flag, "zfleet removes its own older sync snapshots (and only those); syncoid's `syncoid_*` snapshots are left as they are"),
            Flag::Identifier => note(g.flag, "zfleet's sync snapshots carry the server's name (`zfleet_sync_<server>_…`), which keeps servers apart without an identifier"),
            Flag::CreateBookmark => note(g.flag, "zfleet keeps a bookmark of the base where the host supports it, without being asked"),
            Flag::UseHold => note(g.flag, "zfleet holds the common snapshot on both sides, without being asked"),
            Flag::NoResume => note(g.flag, "zfleet resumes interrupted transfers where the host supports it; this is not carried over"),
            Flag::NoRollback => note(g.flag, "the same in zfleet: a target is never rolled back unless `zfleet backup --rollback`"),
            Flag::ForceDelete | Flag::DeleteTargetSnapshots => note(g.flag, "zfleet never destroys a target or snapshots it did not make; not carried over"),
            Flag::NoCloneHandling => note(g.flag, "zfleet sends each dataset on its own; clones arrive as full datasets"),
            Flag::NoPrivilegeElevation => note(g.flag, "zfleet never uses sudo; `zfleet grant` gives the backup account what it needs with `zfs allow`"),
            Flag::PreserveProperties => note(g.flag, "zfleet copies compression and recordsize by default (`preserve_properties` lists more) and records every other local property on the backup for restores"),
            Flag::PreserveRecordsize => note(g.flag, "zfleet copies recordsize by default (`preserve_properties`)"),
            Flag::SourceBwlimit | Flag::TargetBwlimit => note(g.flag, "not in the fleet file: pass `--rate-limit` to `zfleet backup`"),
            Flag::MbufferSize => note(g.flag, "not in the fleet file: pass `--buffer` to `zfleet backup`"),
            Flag::Sshconfig => note(g.flag, "zfleet does not read another ssh_config; write the host's address, port, user and key into its `[hosts.NAME]` table"),
            Flag::Sshcipher => note(g.flag, "zfleet leaves the cipher to ssh's defaults; not carried over"),
            Flag::Sshoption => {
                let v = g.value.as_deref().unwrap_or_default();
                let k = v.split(['=', ' ']).next().unwrap_or_default().to_ascii_lowercase();
                match k.as_str() {
                    "port" | "identityfile" | "userknownhostsfile" => {}
                    "stricthostkeychecking" | "batchmode" => note(g.flag, &format!("`{v}`: zfleet always runs ssh with BatchMode=yes and StrictHostKeyChecking=yes")),
                    _ => note(g.flag, &format!("`{v}`: zfleet passes no other ssh options; not carried over")),
                }
            }
            Flag::InsecureDirectConnection => note(g.flag, "zfleet always sends over ssh; not carried over"),
            Flag::PvOptions | Flag::NoCommandChecks | Flag::Debug | Flag::Quiet | Flag::Dumpsnaps | Flag::MonitorVersion => note(g.flag, ignored),
            Flag::Sendoptions => {
                for o in &a.send_options.0 {
                    let m = match o {
                        SendOption::Raw => "`w`: zfleet sends encrypted datasets raw by default",
                        SendOption::Compressed | SendOption::LargeBlocks | SendOption::Embedded => "zfleet's sends use -L -e -c already",
                        SendOption::Properties => "`p`: zfleet records the source's properties on the backup instead of sending them (`preserve_properties`)",
                        SendOption::Replicate | SendOption::ExcludeDatasets(_) | SendOption::SkipMissing => "a replication stream (-R) is not how zfleet sends; list the datasets instead",
                        SendOption::BackupProperties | SendOption::Holds => "not carried over",
                        SendOption::Parsable | SendOption::ProcessTitle | SendOption::Verbose => ignored,
                    };
                    note(g.flag, &format!("`{}`: {m}", o.letter()));
                }
            }
            Flag::Recvoptions => {
                for o in &a.recv_options.0 {
                    let m = match o {
                        RecvOption::NoMount => "zfleet receives with -u already".to_string(),
                        RecvOption::SetProperty { name, value } => format!("not carried over; to get {name}={value} on every backup, set it on the target root (`zfs set {name}={value} TARGET_ROOT`), where received datasets inherit it"),
                        RecvOption::ExcludeProperty(n) => format!("`x {n}`: not carried over"),
                        RecvOption::NoHolds => "zfleet's streams carry no holds".to_string(),
                        RecvOption::Verbose => ignored.to_string(),
                    };
                    note(g.flag, &format!("`{}`: {m}", o.letter()));
                }
            }
            Flag::Help | Flag::Version => {}
        }
    }
    if !a.no_rollback {
        out.push("syncoid received with -F (rolling the target back); zfleet refuses a diverged target instead, unless `zfleet backup --rollback`".into());
    }
    out
}
