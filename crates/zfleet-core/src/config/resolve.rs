//! From `RawFleet` to `Fleet`: defaults, references and cross-section rules.
//! Every rule reports the key path it is about; `error::locate` turns that into
//! `line:col` in the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use toml::de::DeTable;
use toml::Spanned;

use super::error::{
    line_col, locate, locate_exact, ConfigError, ConfigErrors, KeyPath, LineIndex, Seg,
};
use super::policy::{timing_limits, Policy, Recursive};
use super::raw::{
    RawClient, RawExtraClient, RawFleet, RawHost, RawPolicy, RawRecursive, RawServer, RawSsh,
    RawUnlock,
};
use super::secret_ref::SecretRef;
use super::*;
use crate::zfs::DatasetName;

pub(super) fn parse(src: &str, file: &Path) -> Result<Fleet, ConfigErrors> {
    let doc = DeTable::parse(src)
        .map_err(|e| ConfigErrors(vec![toml_error(src, file, &e, &KeyPath::root())]))?;
    // Deserialising very deep tables fails with a bare "recursion limit";
    // found here first, the error says where.
    if let Some((path, span)) = too_deep(doc.get_ref(), &KeyPath::root(), 0) {
        return Err(ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            position: Some(line_col(src, span.start)),
            key: path.to_string(),
            message: format!(
                "tables and arrays nest more than {MAX_DEPTH} levels deep here; no fleet.toml key is nested that deep"
            ),
            hint: None,
        }]));
    }
    let de = toml::de::Deserializer::from(doc.clone());
    let raw: RawFleet = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = serde_path(e.path());
        let mut err = toml_error(src, file, e.inner(), &path);
        // TOML points at a whole array for a bad element; the path knows which.
        if matches!(path.0.last(), Some(Seg::Index(_))) {
            if let Some((span, true)) = locate_exact(&doc, &path, false) {
                err.position = Some(line_col(src, span.start));
            }
        }
        ConfigErrors(vec![err])
    })?;
    let mut cx = Ctx {
        src,
        lines: None,
        file,
        doc: &doc,
        errors: Vec::new(),
    };
    let fleet = cx.fleet(raw);
    if cx.errors.is_empty() {
        Ok(fleet)
    } else {
        Err(ConfigErrors(cx.errors))
    }
}

/// Deeper than any key of the schema (`hosts.H.server.extra_clients[0].datasets[0]`
/// is six levels).
const MAX_DEPTH: usize = 16;

/// The first key or element deeper than [`MAX_DEPTH`], with its span.
fn too_deep(
    table: &DeTable<'_>,
    path: &KeyPath,
    depth: usize,
) -> Option<(KeyPath, std::ops::Range<usize>)> {
    for (k, v) in table.iter() {
        let p = path.key(k.get_ref().as_ref());
        if depth + 1 > MAX_DEPTH {
            return Some((p, k.span()));
        }
        if let Some(found) = too_deep_value(v, &p, depth + 1) {
            return Some(found);
        }
    }
    None
}

fn too_deep_value(
    v: &Spanned<toml::de::DeValue<'_>>,
    path: &KeyPath,
    depth: usize,
) -> Option<(KeyPath, std::ops::Range<usize>)> {
    if let Some(t) = v.get_ref().as_table() {
        return too_deep(t, path, depth);
    }
    for (i, e) in v.get_ref().as_array()?.iter().enumerate() {
        let p = path.index(i);
        if depth + 1 > MAX_DEPTH {
            return Some((p, e.span()));
        }
        if let Some(found) = too_deep_value(e, &p, depth + 1) {
            return Some(found);
        }
    }
    None
}

fn serde_path(p: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    KeyPath(
        p.iter()
            .filter_map(|s| match s {
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect(),
    )
}

/// Syntax and type errors from the TOML layer, rephrased into our format.
fn toml_error(src: &str, file: &Path, e: &toml::de::Error, path: &KeyPath) -> ConfigError {
    let position = e.span().map(|s| line_col(src, s.start));
    let raw = e.message().trim().to_string();
    let mut key = path.clone();
    let mut hint = None;
    let message = if let Some(rest) = raw.strip_prefix("unknown field `") {
        // "unknown field `adress`, expected one of `address`, `user`"
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        if key.0.last() != Some(&Seg::Key(field.to_string())) {
            key = key.key(field);
        }
        let expected = expected.trim_start_matches(',').trim();
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        hint = closest(field, &candidates).map(|c| format!("did you mean `{c}`?"));
        if candidates.is_empty() {
            "unknown key".to_string()
        } else {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!("unknown key; expected one of {}", list.join(", "))
        }
    } else if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        key = key.key(field);
        "required key is missing".to_string()
    } else if raw == "duplicate key" {
        // TOML reports only the repeated word; the table header it sits in
        // says which host or template is defined twice.
        let line = e
            .span()
            .and_then(|s| src[..s.start].rsplit('\n').next().map(|before| (before, s)))
            .map(|(before, s)| format!("{before}{}", src[s.start..].lines().next().unwrap_or("")));
        match line.as_deref().map(str::trim) {
            Some(l) if l.starts_with('[') => {
                let header = l
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim();
                key = KeyPath(split_dotted(header).into_iter().map(Seg::Key).collect());
                "is defined twice; each host, template and table may appear only once".to_string()
            }
            _ => {
                let start = e.span().map_or(0, |s| s.start);
                let word = e
                    .span()
                    .map(|s| src[s].trim_matches('"').to_string())
                    .unwrap_or_default();
                let table = src[..start]
                    .lines()
                    .rev()
                    .map(str::trim)
                    .find(|l| l.starts_with('['))
                    .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
                key = KeyPath(
                    table
                        .iter()
                        .flat_map(|h| split_dotted(h))
                        .map(Seg::Key)
                        .chain([Seg::Key(word)])
                        .collect(),
                );
                "is set twice in the same table".to_string()
            }
        }
    } else if raw == "recursion limit" {
        // The parser stops at a dotted key of 80 parts without saying where.
        let found = deepest_dotted_key(src);
        if let Some((line, col, parts)) = found {
            return ConfigError {
                file: file.to_path_buf(),
                position: Some((line, col)),
                key: String::new(),
                message: format!(
                    "a key of {parts} dotted parts is nested too deep to read; no fleet.toml key has more than six"
                ),
                hint: None,
            };
        }
        "keys or tables nest too deep to read (no position: the TOML parser gave none)".to_string()
    } else if position.is_none() {
        format!("{raw} (no position: the TOML parser gave none)")
    } else {
        raw
    };
    ConfigError {
        file: file.to_path_buf(),
        position,
        key: key.to_string(),
        message,
        hint,
    }
}

/// The line, column and part count of the key with the most dotted parts
/// (a `[table.header]` or the key before `=`), when it has more than
/// [`MAX_DEPTH`].
fn deepest_dotted_key(src: &str) -> Option<(usize, usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None;
    for (i, line) in src.lines().enumerate() {
        let trimmed = line.trim_start();
        let key = if let Some(h) = trimmed.strip_prefix('[') {
            h.trim_start_matches('[').split(']').next().unwrap_or("")
        } else {
            trimmed.split('=').next().unwrap_or("")
        };
        let parts = split_dotted(key).len();
        if parts > MAX_DEPTH && !best.is_some_and(|(_, _, p)| parts <= p) {
            let col = line[..line.len() - trimmed.len()].chars().count() + 1;
            best = Some((i + 1, col, parts));
        }
    }
    best
}

/// `hosts.a."zroot/x.y"` → `["hosts", "a", "zroot/x.y"]`.
fn split_dotted(header: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in header.chars() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '.' if !quoted => out.push(String::new()),
            c if c.is_whitespace() && !quoted => {}
            c => out.last_mut().map_or((), |s| s.push(c)),
        }
    }
    out
}

/// The candidate nearest to a misspelt key, if one is close enough to suggest.
fn closest(word: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c.to_string()))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The ssh keys a host or extra client may set; unset ones come from `[ssh]`.
struct EndpointKeys<'a> {
    address: Option<&'a String>,
    user: Option<&'a String>,
    port: Option<u16>,
    identity: Option<&'a String>,
    known_hosts: Option<&'a String>,
    connect_timeout: Option<&'a String>,
}

struct Ctx<'a> {
    src: &'a str,
    lines: Option<LineIndex<'a>>,
    file: &'a Path,
    doc: &'a Spanned<DeTable<'a>>,
    errors: Vec<ConfigError>,
}

pub fn valid_host_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 63 {
        return Err("a host name has 1 to 63 characters".into());
    }
    if !n.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("a host name starts with a letter or digit".into());
    }
    if let Some(c) = n
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{}` is not allowed in a host name (use letters, digits, `-`, `_`, `.`)",
            c.escape_default()
        ));
    }
    Ok(())
}

pub fn valid_user(u: &str) -> Result<(), String> {
    let ok = !u.is_empty()
        && u.len() <= 32
        && u.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && u.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid user name (lowercase letters, digits, `_`, `-`; at most 32)",
            crate::text::printable(u)
        ))
    }
}

pub fn valid_address(a: &str) -> Result<(), String> {
    if a.is_empty() {
        return Err("the address is empty".into());
    }
    if a.starts_with('-') {
        return Err("an address may not start with `-`".into());
    }
    if a.len() > MAX_ADDRESS {
        return Err(format!(
            "an address of {} bytes is longer than any host name or IP address ({MAX_ADDRESS} at most)",
            a.len()
        ));
    }
    if let Some(c) = a
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '[' | ']')))
    {
        return Err(format!(
            "{} is not allowed in an address",
            crate::text::describe_char(c)
        ));
    }
    Ok(())
}

/// DNS names have at most 253 characters; IPv6 addresses fewer.
const MAX_ADDRESS: usize = 253;

/// A path zfleet hands to ssh or opens itself: an empty one or one with a
/// control character is a typo, never a file.
fn valid_path(p: &str) -> Result<(), String> {
    if p.trim().is_empty() {
        return Err("is empty; give a path, or remove the key for the default".into());
    }
    if let Some(c) = p.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{} is not allowed in a path",
            crate::text::describe_char(c)
        ));
    }
    if p.len() > 4096 {
        return Err("a path is at most 4096 bytes".into());
    }
    Ok(())
}

fn valid_port(p: u16) -> Result<(), String> {
    if p == 0 {
        Err("port 0 is not a port ssh can connect to; ports are 1 to 65535".into())
    } else {
        Ok(())
    }
}

/// A systemd unit name as `systemctl start` takes it: refused when it could be
/// read as an option or holds characters units never have.
fn valid_unit(u: &str) -> Result<(), String> {
    if u.is_empty() || u.starts_with('-') || u.len() > 255 {
        return Err(format!(
            "`{}` is not a systemd unit name",
            u.escape_default()
        ));
    }
    if let Some(c) = u
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '@' | '\\')))
    {
        return Err(format!(
            "`{}` is not allowed in a systemd unit name",
            c.escape_default()
        ));
    }
    Ok(())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s.parse().map_err(|_| {
        format!("`{s}` is not a duration; write it like \"10s\", \"2m\" or \"1m 30s\"")
    })?;
    if d.is_negative() || d.is_zero() {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Duration::try_from(d).map_err(|e| e.to_string())
}

impl Ctx<'_> {
    /// An error about the value at `path` (a wrong value, an unknown name).
    fn err_at_value(&mut self, path: &KeyPath, message: impl Into<String>, hint: Option<String>) {
        self.push(path, false, message, hint);
    }

    /// An error about the key at `path` itself (a key that should not be there).
    fn err_at_key(&mut self, path: &KeyPath, message: impl Into<String>, hint: Option<String>) {
        self.push(path, true, message, hint);
    }

    fn push(
        &mut self,
        path: &KeyPath,
        at_key: bool,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let lines = self.lines.get_or_insert_with(|| LineIndex::new(self.src));
        let position = locate(self.doc, path, at_key).map(|s| lines.line_col(s.start));
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            position,
            key: path.to_string(),
            message: message.into(),
            hint,
        });
    }

    /// `port` and path keys where they are written (`[ssh]`, a host, an extra client).
    fn ssh_keys(&mut self, p: &KeyPath, port: Option<u16>, paths: [(&str, Option<&str>); 2]) {
        if let Some(Err(m)) = port.map(valid_port) {
            self.err_at_value(&p.key("port"), m, None);
        }
        for (key, v) in paths {
            if let Some(Err(m)) = v.map(valid_path) {
                self.err_at_value(&p.key(key), m, None);
            }
        }
    }

    fn unknown_template<'k>(
        &mut self,
        path: &KeyPath,
        name: &str,
        known: impl Iterator<Item = &'k String>,
    ) {
        let known: Vec<String> = known.map(|k| format!("`{k}`")).collect();
        let hint = if known.is_empty() {
            "define it under [templates.NAME]".to_string()
        } else {
            format!("defined templates: {}", known.join(", "))
        };
        self.err_at_value(
            path,
            format!("template `{name}` does not exist"),
            Some(hint),
        );
    }

    fn fleet(&mut self, raw: RawFleet) -> Fleet {
        let p = KeyPath::root();
        let backup_user = raw.fleet.backup_user.clone();
        if let Some(u) = &backup_user {
            if let Err(m) = valid_user(u) {
                self.err_at_value(&p.key("fleet").key("backup_user"), m, None);
            }
        }
        if let Some(Err(m)) = raw.fleet.backup_identity.as_deref().map(valid_path) {
            self.err_at_value(&p.key("fleet").key("backup_identity"), m, None);
        }
        if let Some(Err(m)) = raw.fleet.state_dir.as_deref().map(valid_path) {
            self.err_at_value(&p.key("fleet").key("state_dir"), m, None);
        }
        self.ssh_keys(
            &p.key("ssh"),
            raw.ssh.port,
            [
                ("identity", raw.ssh.identity.as_deref()),
                ("known_hosts", raw.ssh.known_hosts.as_deref()),
            ],
        );
        let backup_identity = raw.fleet.backup_identity.as_ref().map(PathBuf::from);
        let state_dir = PathBuf::from(raw.fleet.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR));
        if !state_dir.is_absolute() {
            self.err_at_value(
                &p.key("fleet").key("state_dir"),
                "must be an absolute path",
                None,
            );
        }

        let base = self.base_policy(&raw.templates);
        let templates = self.templates(&raw.templates, &base);
        let fleet_policies = self.dataset_policies(
            &p.key("snapshots"),
            &raw.snapshots,
            &raw.templates,
            &base,
            PolicyOrigin::Fleet,
        );

        let mut hosts = IndexMap::new();
        for (name, h) in &raw.hosts {
            let hp = p.key("hosts").key(name);
            if let Err(m) = valid_host_name(name) {
                self.err_at_key(
                    &hp,
                    format!("invalid host name `{}`: {m}", name.escape_default()),
                    None,
                );
                continue;
            }
            let host = self.host(&hp, name, h, &raw, &base, &fleet_policies);
            hosts.insert(name.clone(), host);
        }
        let fleet = Fleet {
            file: self.file.to_path_buf(),
            backup_user,
            backup_identity,
            state_dir,
            templates,
            hosts,
        };
        self.cross_checks(&fleet, &raw);
        fleet
    }

    /// sanoid's built-in defaults, overridden by a `[templates.default]` if the
    /// file has one (sanoid's `[template_default]` works the same way).
    fn base_policy(&mut self, templates: &IndexMap<String, RawPolicy>) -> Policy {
        let mut base = Policy::default();
        if let Some(d) = templates.get("default") {
            base.apply(d);
        }
        base
    }

    fn templates(
        &mut self,
        raw: &IndexMap<String, RawPolicy>,
        base: &Policy,
    ) -> IndexMap<String, Policy> {
        let mut out = IndexMap::new();
        for (name, t) in raw {
            let tp = KeyPath::root().key("templates").key(name);
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.err_at_key(
                    &tp,
                    format!(
                        "invalid template name `{}`: use letters, digits, `_`, `-`",
                        name.escape_default()
                    ),
                    None,
                );
            }
            for (key, set) in [
                ("use_template", t.use_template.is_some()),
                ("recursive", t.recursive.is_some()),
                ("process_children_only", t.process_children_only.is_some()),
            ] {
                if set {
                    self.err_at_key(
                        &tp.key(key),
                        "belongs to a dataset entry, not to a template",
                        Some(format!("set `{key}` where the dataset uses this template")),
                    );
                }
            }
            self.check_ranges(&tp, t);
            let mut pol = base.clone();
            pol.apply(t);
            out.insert(name.clone(), pol);
        }
        out
    }

    fn check_ranges(&mut self, p: &KeyPath, r: &RawPolicy) {
        self.check_extras(p, r);
        for (key, get, lo, hi) in timing_limits() {
            if let Some(v) = get(r) {
                if v < lo || v > hi {
                    self.err_at_value(
                        &p.key(key),
                        format!("{v} is out of range; expected {lo} to {hi}"),
                        None,
                    );
                }
            }
        }
    }

    /// Hooks and monitoring keys: well-formed, in range.
    fn check_extras(&mut self, p: &KeyPath, r: &RawPolicy) {
        for (period, key, raw) in r.age_limits() {
            if let Some(Err(m)) = raw.as_ref().map(|a| super::extras::parse_age(a, period)) {
                self.err_at_value(&p.key(key), m, None);
            }
        }
        if let Some(Err(m)) = r.script_timeout.as_ref().map(super::extras::parse_timeout) {
            self.err_at_value(&p.key("script_timeout"), m, None);
        }
        for (key, v) in [
            ("capacity_warn", r.capacity_warn),
            ("capacity_crit", r.capacity_crit),
        ] {
            if let Some(v) = v.filter(|v| *v > 100) {
                self.err_at_value(
                    &p.key(key),
                    format!(
                        "{v} is out of range; expected a percentage, 0 to 100 (0: not checked)"
                    ),
                    None,
                );
            }
        }
        for (key, hook) in [
            ("pre_snapshot_script", &r.pre_snapshot_script),
            ("post_snapshot_script", &r.post_snapshot_script),
            ("pre_pruning_script", &r.pre_pruning_script),
            ("pruning_script", &r.pruning_script),
        ] {
            if let Some(super::extras::HookCommand::Argv(v)) = hook {
                if !matches!(v.first(), Some(w) if !w.is_empty()) {
                    self.err_at_value(
                        &p.key(key),
                        "names no program",
                        Some("give the program as the first word, or remove the key".into()),
                    );
                }
            }
        }
    }

    fn dataset_policies(
        &mut self,
        p: &KeyPath,
        entries: &IndexMap<String, RawPolicy>,
        templates: &IndexMap<String, RawPolicy>,
        base: &Policy,
        origin: PolicyOrigin,
    ) -> Vec<DatasetPolicy> {
        let mut out = Vec::new();
        for (ds, r) in entries {
            let dp = p.key(ds);
            let dataset = match DatasetName::parse(ds) {
                Ok(d) => d,
                Err(e) => {
                    self.err_at_key(&dp, e.to_string(), None);
                    continue;
                }
            };
            let mut pol = base.clone();
            let names = r.use_template.clone().unwrap_or_default();
            for (i, t) in names.iter().enumerate() {
                match templates.get(t) {
                    Some(tr) => pol.apply(tr),
                    None => {
                        self.unknown_template(
                            &dp.key("use_template").index(i),
                            t,
                            templates.keys(),
                        );
                    }
                }
            }
            self.check_ranges(&dp, r);
            pol.apply(r);
            let recursive = match &r.recursive {
                None | Some(RawRecursive::Bool(false)) => Recursive::No,
                Some(RawRecursive::Bool(true)) => Recursive::Yes,
                Some(RawRecursive::Word(w)) if w == "zfs" => Recursive::Zfs,
                Some(RawRecursive::Word(w)) => {
                    self.err_at_value(
                        &dp.key("recursive"),
                        format!("`{w}` is not understood; expected true, false or \"zfs\""),
                        None,
                    );
                    Recursive::No
                }
            };
            let process_children_only = r.process_children_only.unwrap_or(false);
            if process_children_only && recursive == Recursive::No {
                self.err_at_key(
                    &dp.key("process_children_only"),
                    "has no effect without `recursive`",
                    Some("set `recursive = true` (or \"zfs\") on this dataset".into()),
                );
            }
            out.push(DatasetPolicy {
                dataset,
                templates: names,
                policy: pol,
                recursive,
                process_children_only,
                origin,
            });
        }
        out
    }

    fn endpoint(
        &mut self,
        p: &KeyPath,
        default_address: &str,
        keys: EndpointKeys<'_>,
        defaults: &RawSsh,
    ) -> SshEndpoint {
        let EndpointKeys {
            address,
            user,
            port,
            identity,
            known_hosts,
            connect_timeout,
        } = keys;
        self.ssh_keys(
            p,
            port,
            [
                ("identity", identity.map(String::as_str)),
                ("known_hosts", known_hosts.map(String::as_str)),
            ],
        );
        let address = address
            .cloned()
            .unwrap_or_else(|| default_address.to_string());
        if let Err(m) = valid_address(&address) {
            self.err_at_value(&p.key("address"), m, None);
        }
        let user = user.or(defaults.user.as_ref()).cloned();
        if let Some(u) = &user {
            if let Err(m) = valid_user(u) {
                self.err_at_value(&p.key("user"), m, None);
            }
        }
        let timeout_src = connect_timeout
            .map(|t| (t, p.key("connect_timeout")))
            .or_else(|| {
                defaults
                    .connect_timeout
                    .as_ref()
                    .map(|t| (t, KeyPath::root().key("ssh").key("connect_timeout")))
            });
        let connect_timeout = match timeout_src {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some((t, tp)) => parse_duration(t).unwrap_or_else(|m| {
                self.err_at_value(&tp, m, None);
                DEFAULT_CONNECT_TIMEOUT
            }),
        };
        let path = |s: Option<&String>| s.map(PathBuf::from);
        SshEndpoint {
            address,
            user,
            port: port.or(defaults.port).unwrap_or(22),
            identity: path(identity.or(defaults.identity.as_ref())),
            known_hosts: path(known_hosts.or(defaults.known_hosts.as_ref())),
            connect_timeout,
        }
    }

    fn host(
        &mut self,
        hp: &KeyPath,
        name: &str,
        h: &RawHost,
        raw: &RawFleet,
        base: &Policy,
        fleet_policies: &[DatasetPolicy],
    ) -> HostConfig {
        let keys = EndpointKeys {
            address: h.address.as_ref(),
            user: h.user.as_ref(),
            port: h.port,
            identity: h.identity.as_ref(),
            known_hosts: h.known_hosts.as_ref(),
            connect_timeout: h.connect_timeout.as_ref(),
        };
        let ssh = self.endpoint(hp, name, keys, &raw.ssh);
        let client = h.backup.as_ref().map(|c| self.client(&hp.key("backup"), c));
        let server = h
            .server
            .as_ref()
            .map(|s| self.server(&hp.key("server"), s, raw, base));
        let own = self.dataset_policies(
            &hp.key("snapshots"),
            &h.snapshots,
            &raw.templates,
            base,
            PolicyOrigin::Host,
        );
        let mut snapshots: Vec<DatasetPolicy> = fleet_policies
            .iter()
            .filter(|f| !own.iter().any(|o| o.dataset == f.dataset))
            .cloned()
            .collect();
        snapshots.extend(own);
        let unlock = h
            .unlock
            .as_ref()
            .map(|u| self.unlock(&hp.key("unlock"), name, &ssh, u));
        HostConfig {
            name: name.to_string(),
            ssh,
            client,
            server,
            snapshots,
            unlock,
        }
    }

    /// An OpenSSH public key line: `type base64 [comment]`, one line.
    fn public_key(&mut self, p: &KeyPath, key: Option<&String>) -> Option<String> {
        let key = key?;
        let mut parts = key.split_whitespace();
        let ok = matches!(parts.next(), Some(t) if t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-"))
            && parts.next().is_some_and(|b| {
                b.len() > 20
                    && b.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
            })
            && !key.contains(['\n', '"']);
        if ok {
            Some(key.trim().to_string())
        } else {
            self.err_at_value(
                p,
                "is not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)",
                None,
            );
            None
        }
    }

    fn client(&mut self, p: &KeyPath, c: &RawClient) -> ClientRole {
        if let Some(u) = &c.user {
            if let Err(m) = valid_user(u) {
                self.err_at_value(&p.key("user"), m, None);
            }
        }
        let datasets = self.datasets(p, c.datasets.as_ref());
        ClientRole {
            enabled: c.enabled.unwrap_or(true),
            datasets,
            user: c.user.clone(),
            push: c.push.unwrap_or(false),
            public_key: self.public_key(&p.key("public_key"), c.public_key.as_ref()),
        }
    }

    fn datasets(&mut self, p: &KeyPath, given: Option<&Vec<DatasetName>>) -> Vec<DatasetName> {
        match given {
            None => vec![DatasetName::trusted(DEFAULT_CLIENT_DATASET)],
            Some(list) => {
                if list.is_empty() {
                    self.err_at_value(&p.key("datasets"), "lists no datasets", Some("remove the key to back up zroot/persistSave, or disable the role with `enabled = false`".into()));
                }
                let mut seen: HashMap<&DatasetName, usize> = HashMap::new();
                for (i, d) in list.iter().enumerate() {
                    if seen.insert(d, i).is_some() {
                        self.err_at_value(
                            &p.key("datasets").index(i),
                            format!("`{d}` is listed twice"),
                            None,
                        );
                    }
                }
                list.clone()
            }
        }
    }

    fn server(&mut self, p: &KeyPath, s: &RawServer, raw: &RawFleet, base: &Policy) -> ServerRole {
        let retention = s
            .retention
            .as_ref()
            .and_then(|t| match raw.templates.get(t) {
                Some(tr) => {
                    let mut pol = base.clone();
                    pol.apply(tr);
                    // The server never takes snapshots of what it receives: they
                    // arrive from the client.
                    pol.autosnap = false;
                    Some(NamedPolicy {
                        template: t.clone(),
                        policy: pol,
                    })
                }
                None => {
                    self.unknown_template(&p.key("retention"), t, raw.templates.keys());
                    None
                }
            });
        if s.parallel == Some(0) {
            self.err_at_value(&p.key("parallel"), "must be at least 1", None);
        }
        let extra_clients = s
            .extra_clients
            .iter()
            .enumerate()
            .map(|(i, e)| self.extra_client(&p.key("extra_clients").index(i), e, &raw.ssh))
            .collect();
        let preserve_properties = match &s.preserve_properties {
            None => DEFAULT_PRESERVED_PROPERTIES
                .iter()
                .map(|p| p.to_string())
                .collect(),
            Some(list) => {
                for (i, prop) in list.iter().enumerate() {
                    if !PRESERVABLE_PROPERTIES.contains(&prop.as_str()) {
                        let why = if matches!(prop.as_str(), "mountpoint" | "canmount" | "readonly")
                        {
                            format!("`{prop}` is managed by zfleet on backups (the source's value is recorded for restores)")
                        } else if prop.contains(':') {
                            format!("`{prop}` is a user property; all of them are recorded for restores without being listed")
                        } else {
                            format!("`{prop}` cannot be preserved")
                        };
                        self.err_at_value(
                            &p.key("preserve_properties").index(i),
                            why,
                            Some(format!(
                                "preservable: {}",
                                PRESERVABLE_PROPERTIES.join(", ")
                            )),
                        );
                    }
                }
                list.clone()
            }
        };
        let compress = match s.compress.as_deref() {
            None | Some("none") => Compression::None,
            Some("zstd") => Compression::Zstd,
            Some(other) => {
                self.err_at_value(
                    &p.key("compress"),
                    format!("`{other}` is not understood; expected \"zstd\" or \"none\""),
                    None,
                );
                Compression::None
            }
        };
        ServerRole {
            target_root: s.target_root.clone(),
            retention,
            exclude: s.exclude.clone(),
            extra_clients,
            parallel: s.parallel.unwrap_or(DEFAULT_PARALLEL).max(1),
            preserve_properties,
            sync_snapshot: s.sync_snapshot.unwrap_or(false),
            compress,
            public_key: self.public_key(&p.key("public_key"), s.public_key.as_ref()),
        }
    }

    fn extra_client(&mut self, p: &KeyPath, e: &RawExtraClient, defaults: &RawSsh) -> ExtraClient {
        if let Err(m) = valid_host_name(&e.name) {
            self.err_at_value(
                &p.key("name"),
                format!("invalid host name `{}`: {m}", e.name.escape_default()),
                None,
            );
        }
        let keys = EndpointKeys {
            address: e.address.as_ref(),
            user: e.user.as_ref(),
            port: e.port,
            identity: e.identity.as_ref(),
            known_hosts: e.known_hosts.as_ref(),
            connect_timeout: None,
        };
        let ssh = self.endpoint(p, &e.name, keys, defaults);
        let datasets = self.datasets(p, e.datasets.as_ref());
        ExtraClient {
            name: e.name.clone(),
            ssh,
            datasets,
        }
    }

    fn unlock(
        &mut self,
        p: &KeyPath,
        host: &str,
        ssh: &SshEndpoint,
        u: &RawUnlock,
    ) -> UnlockConfig {
        let method = match u.method.as_str() {
            "luks-initrd" => UnlockMethod::LuksInitrd,
            "zfs" => UnlockMethod::Zfs,
            other => {
                self.err_at_value(
                    &p.key("method"),
                    format!(
                        "`{other}` is not an unlock method; expected \"luks-initrd\" or \"zfs\""
                    ),
                    None,
                );
                UnlockMethod::Zfs
            }
        };
        let secret = SecretRef::parse(&u.secret).unwrap_or_else(|m| {
            self.err_at_value(&p.key("secret"), m, None);
            SecretRef::Env(String::new())
        });
        // Keys that belong to the other method are refused rather than ignored.
        let (other, wrong): (&str, Vec<(&str, bool)>) = match method {
            UnlockMethod::LuksInitrd => (
                "zfs",
                vec![
                    ("encryption_roots", u.encryption_roots.is_some()),
                    ("services", u.services.is_some()),
                ],
            ),
            UnlockMethod::Zfs => (
                "luks-initrd",
                vec![
                    ("initrd_address", u.initrd_address.is_some()),
                    ("initrd_port", u.initrd_port.is_some()),
                    ("initrd_user", u.initrd_user.is_some()),
                    ("initrd_known_hosts", u.initrd_known_hosts.is_some()),
                    ("initrd_command", u.initrd_command.is_some()),
                    ("retries", u.retries.is_some()),
                ],
            ),
        };
        for (k, set) in wrong {
            if set {
                self.err_at_key(
                    &p.key(k),
                    format!("only applies to method \"{other}\""),
                    None,
                );
            }
        }
        let initrd = match method {
            UnlockMethod::LuksInitrd => {
                let default_address = format!("{host}-initrd");
                let addr = u.initrd_address.clone().unwrap_or(default_address);
                if let Err(m) = valid_address(&addr) {
                    self.err_at_value(&p.key("initrd_address"), m, None);
                }
                if let Some(Err(m)) = u.initrd_port.map(valid_port) {
                    self.err_at_value(&p.key("initrd_port"), m, None);
                }
                if let Some(Err(m)) = u.initrd_known_hosts.as_deref().map(valid_path) {
                    self.err_at_value(&p.key("initrd_known_hosts"), m, None);
                }
                let user = u.initrd_user.clone().unwrap_or_else(|| "root".into());
                if let Err(m) = valid_user(&user) {
                    self.err_at_value(&p.key("initrd_user"), m, None);
                }
                Some(SshEndpoint {
                    address: addr,
                    user: Some(user),
                    port: u.initrd_port.unwrap_or(22),
                    identity: ssh.identity.clone(),
                    known_hosts: Some(self.initrd_known_hosts(host, u)),
                    connect_timeout: ssh.connect_timeout,
                })
            }
            UnlockMethod::Zfs => None,
        };
        let initrd_command = u.initrd_command.as_ref().and_then(|c| {
            match shlex::split(c).filter(|w| !w.is_empty()) {
                Some(words) if words.iter().all(|w| !w.contains('\0')) => Some(words),
                _ => {
                    self.err_at_value(
                        &p.key("initrd_command"),
                        format!(
                            "`{}` is not a command: empty or unbalanced quotes",
                            c.escape_default()
                        ),
                        Some("for example initrd_command = \"cryptroot-unlock\"".into()),
                    );
                    None
                }
            }
        });
        let roots = u.encryption_roots.clone().unwrap_or_default();
        if method == UnlockMethod::Zfs && roots.is_empty() {
            self.err_at_value(
                &p.key("encryption_roots"),
                "method \"zfs\" needs the encryption roots to unlock",
                Some("for example encryption_roots = [\"zroot/secure\"]".into()),
            );
        }
        let mut seen: HashMap<&DatasetName, usize> = HashMap::new();
        for (i, d) in roots.iter().enumerate() {
            if seen.insert(d, i).is_some() {
                self.err_at_value(
                    &p.key("encryption_roots").index(i),
                    format!("`{d}` is listed twice"),
                    None,
                );
            }
        }
        let services = u.services.clone().unwrap_or_default();
        for (i, unit) in services.iter().enumerate() {
            if let Err(m) = valid_unit(unit) {
                self.err_at_value(&p.key("services").index(i), m, None);
            }
        }
        let timeout = match &u.timeout {
            None => DEFAULT_UNLOCK_TIMEOUT,
            Some(t) => parse_duration(t).unwrap_or_else(|m| {
                self.err_at_value(&p.key("timeout"), m, None);
                DEFAULT_UNLOCK_TIMEOUT
            }),
        };
        UnlockConfig {
            method,
            secret,
            initrd,
            initrd_command,
            retries: u.retries.unwrap_or(0),
            encryption_roots: roots,
            services,
            timeout,
        }
    }

    /// The file that pins `host`'s initrd key: as given (`~/` expanded, relative
    /// to the fleet file), else `initrd_known_hosts/<host>` next to the fleet file.
    fn initrd_known_hosts(&self, host: &str, u: &RawUnlock) -> PathBuf {
        let dir = self.file.parent().unwrap_or(Path::new(""));
        match &u.initrd_known_hosts {
            None => dir.join(DEFAULT_INITRD_KNOWN_HOSTS_DIR).join(host),
            Some(given) => {
                let home = std::env::var_os("HOME").map(PathBuf::from);
                match (given.strip_prefix("~/"), home) {
                    (Some(rest), Some(home)) => home.join(rest),
                    _ => dir.join(given),
                }
            }
        }
    }

    fn cross_checks(&mut self, fleet: &Fleet, raw: &RawFleet) {
        // Two names for one machine would back it up twice and confuse restores.
        let mut by_address: HashMap<(String, u16), &str> = HashMap::new();
        for h in fleet.hosts.values() {
            let key = (h.ssh.address.clone(), h.ssh.port);
            if let Some(first) = by_address.get(&key).copied() {
                self.err_at_key(
                    &KeyPath::root().key("hosts").key(&h.name),
                    format!(
                        "has the same address `{}:{}` as host `{first}`",
                        h.ssh.address, h.ssh.port
                    ),
                    Some(
                        "each host is one machine; remove one of them or give it its own address"
                            .into(),
                    ),
                );
            } else {
                by_address.insert(key, &h.name);
            }
        }
        // The seed shared one initrd key across hosts; a pin file shared by two
        // hosts would let one host's initrd key vouch for the other.
        let mut pins: HashMap<&Path, &str> = HashMap::new();
        for h in fleet.hosts.values() {
            let Some(file) = h
                .unlock
                .as_ref()
                .and_then(|u| u.initrd.as_ref())
                .and_then(|i| i.known_hosts.as_deref())
            else {
                continue;
            };
            if let Some(first) = pins.insert(file, &h.name) {
                self.err_at_value(
                    &KeyPath::root()
                        .key("hosts")
                        .key(&h.name)
                        .key("unlock")
                        .key("initrd_known_hosts"),
                    format!(
                        "`{}` already pins the initrd key of host `{first}`",
                        file.display()
                    ),
                    Some("each host's initrd key is pinned in a file of its own".into()),
                );
            }
        }
        // A server's base marker (`zfleet:base:NAME`) is a ZFS user property,
        // whose names are lower case: `Backup` and `backup` would share their
        // markers and hold tags, and each would move or release the other's
        // base. `sync` is the marker of ad-hoc `zfleet sync` copies.
        let mut markers: HashMap<String, &str> = HashMap::new();
        for server in fleet.servers() {
            let lower = server.name.to_ascii_lowercase();
            let at = KeyPath::root().key("hosts").key(&server.name);
            if lower == "sync" {
                self.err_at_key(
                    &at,
                    format!("a backup server may not be called `{}`: its base marker `zfleet:base:sync` is the one `zfleet sync` uses", server.name),
                    Some("rename the host".into()),
                );
            } else if let Some(first) = markers.get(&lower).copied() {
                self.err_at_key(
                    &at,
                    format!(
                        "backup servers `{first}` and `{}` differ only in case; they would share the base marker and hold tag `zfleet:base:{lower}` (ZFS user properties are lower case)",
                        server.name
                    ),
                    Some("give every backup server a name that differs from the others in more than case".into()),
                );
            } else {
                markers.insert(lower, &server.name);
            }
        }
        for server in fleet.servers() {
            let Some(role) = &server.server else { continue };
            let sp = KeyPath::root().key("hosts").key(&server.name).key("server");
            for (i, ex) in role.exclude.iter().enumerate() {
                match fleet.hosts.get(ex) {
                    None => self.err_at_value(
                        &sp.key("exclude").index(i),
                        format!("`{ex}` is not a host in this fleet"),
                        closest(
                            ex,
                            &fleet.hosts.keys().map(String::as_str).collect::<Vec<_>>(),
                        )
                        .map(|c| format!("did you mean `{c}`?")),
                    ),
                    Some(h) if h.client.is_none() => self.err_at_value(
                        &sp.key("exclude").index(i),
                        format!("`{ex}` is not a backup client, so there is nothing to exclude"),
                        None,
                    ),
                    Some(_) => {}
                }
            }
            let mut extra_names: HashMap<&str, usize> = HashMap::new();
            for (i, e) in role.extra_clients.iter().enumerate() {
                let ep = sp.key("extra_clients").index(i).key("name");
                if e.name == server.name {
                    self.err_at_value(&ep, format!("server `{}` lists itself as an extra client; a server does not back itself up", server.name), Some("to keep a second local copy, use `zfleet sync` between two local datasets".into()));
                } else if raw.hosts.contains_key(&e.name) {
                    self.err_at_value(&ep, format!("`{}` is already a host in this fleet", e.name), Some(format!("enable its backup role with [hosts.{}.backup] instead of listing it here", e.name)));
                } else if extra_names.insert(&e.name, i).is_some() {
                    self.err_at_value(
                        &ep,
                        format!("extra client `{}` is listed twice", e.name),
                        None,
                    );
                }
            }
            // Replicating a client dataset into the server's own target tree, or
            // the target tree into itself, would loop.
            if let Some(c) = &server.client {
                if c.enabled && !role.exclude.contains(&server.name) {
                    for (i, d) in c.datasets.iter().enumerate() {
                        if role.target_root.is_within(d) || d.is_within(&role.target_root) {
                            self.err_at_value(
                                &KeyPath::root().key("hosts").key(&server.name).key("backup").key("datasets").index(i),
                                format!("`{d}` overlaps this server's own target root `{}`; the server would back up its backups", role.target_root),
                                None,
                            );
                        }
                    }
                }
            }
        }
    }
}
