//! `[layouts.NAME]` and `[hosts.NAME.pools.POOL]`: templates resolved through
//! `from` chains onto the built-ins, then each host's pools with its changes.
//! Every rule reports its key path, as the rest of `resolve` does.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use serde::Deserialize;

use super::super::layout::{
    parse_size, DatasetLayout, DiskRef, Encryption, HostLayout, LayoutKind, LayoutTemplate,
    PoolLayout, Topology, BUILTIN_LAYOUTS, RESERVED_DATASET,
};
use super::super::raw::RawHost;
use super::super::raw_layout::{RawDataset, RawLayout, RawPool, RawSize, RawValue};
use super::super::secret_ref::SecretRef;
use super::{closest, Ctx};
use crate::config::error::{line_col, locate, ConfigError, KeyPath};
use crate::text::printable;
use crate::zfs::{DatasetName, PoolName};

/// The file the built-ins are read from, as it appears in messages.
const BUILTIN_FILE: &str = "<built-in layouts>";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinFile {
    layouts: IndexMap<String, RawLayout>,
}

fn builtin_raw() -> IndexMap<String, RawLayout> {
    // A test parses this text; a failure here is a bug in zfleet, not in the
    // user's file, and leaves the built-ins out rather than stopping `check`.
    match toml::from_str::<BuiltinFile>(BUILTIN_LAYOUTS) {
        Ok(f) => f.layouts,
        Err(e) => {
            tracing::error!("{BUILTIN_FILE}: {e}");
            IndexMap::new()
        }
    }
}

/// Where an error found while applying a layout belongs: the user's file, or
/// the built-in text (which only a bug in zfleet can make wrong).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    File,
    Builtin,
}

impl Ctx<'_> {
    /// Like `err`, for key paths of the built-in layouts.
    fn err_in(
        &mut self,
        origin: Origin,
        path: &KeyPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.err_at(origin, path, false, message, hint);
    }

    fn err_at(
        &mut self,
        origin: Origin,
        path: &KeyPath,
        at_key: bool,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        match origin {
            Origin::File => self.push(path, at_key, message, hint),
            Origin::Builtin => self.errors.push(ConfigError {
                file: BUILTIN_FILE.into(),
                position: None,
                key: path.to_string(),
                message: message.into(),
                hint,
            }),
        }
    }

    pub(super) fn warn(
        &mut self,
        path: &KeyPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let position = locate(self.doc, path, false).map(|s| line_col(self.src, s.start));
        self.warnings.push(ConfigError {
            file: self.file.to_path_buf(),
            position,
            key: path.to_string(),
            message: message.into(),
            hint,
        });
    }

    /// The built-in layouts and the file's own, by name, each resolved.
    pub(super) fn layouts(
        &mut self,
        raw: &IndexMap<String, RawLayout>,
    ) -> IndexMap<String, LayoutTemplate> {
        let builtins = builtin_raw();
        let mut all: IndexMap<String, (Origin, RawLayout)> = builtins
            .into_iter()
            .map(|(k, v)| (k, (Origin::Builtin, v)))
            .collect();
        for (name, l) in raw {
            let p = KeyPath::root().key("layouts").key(name);
            if !valid_name(name) {
                self.err_at_key(
                    &p,
                    format!(
                        "invalid layout name `{}`: use letters, digits, `_`, `-`",
                        name.escape_default()
                    ),
                    None,
                );
                continue;
            }
            if all.get(name).is_some_and(|(o, _)| *o == Origin::Builtin) {
                self.err_at_key(
                    &p,
                    format!("`{name}` is a built-in layout and cannot be redefined"),
                    Some(format!(
                        "give yours another name and start it with `from = \"{name}\"`"
                    )),
                );
                continue;
            }
            all.insert(name.clone(), (Origin::File, l.clone()));
        }
        let mut done: IndexMap<String, Option<LayoutTemplate>> = IndexMap::new();
        let names: Vec<String> = all.keys().cloned().collect();
        for name in &names {
            let mut chain = Vec::new();
            self.resolve_layout(name, &all, &mut done, &mut chain);
        }
        done.into_iter()
            .filter_map(|(k, v)| v.map(|t| (k, t)))
            .collect()
    }

    fn resolve_layout(
        &mut self,
        name: &str,
        all: &IndexMap<String, (Origin, RawLayout)>,
        done: &mut IndexMap<String, Option<LayoutTemplate>>,
        chain: &mut Vec<String>,
    ) -> Option<LayoutTemplate> {
        if let Some(t) = done.get(name) {
            return t.clone();
        }
        let (origin, raw) = all.get(name)?;
        let origin = *origin;
        let p = KeyPath::root().key("layouts").key(name);
        chain.push(name.to_string());
        let base = match &raw.from {
            None => Some(LayoutTemplate {
                name: name.to_string(),
                builtin: origin == Origin::Builtin,
                kind: LayoutKind::Data,
                encryption: Encryption::None,
                esp_size: 0,
                swap_size: 0,
                reservation: 0,
                luks_name: String::new(),
                luks_discards: true,
                pool_options: IndexMap::new(),
                root_options: IndexMap::new(),
                datasets: IndexMap::new(),
            }),
            Some(parent) if chain.contains(parent) => {
                self.err_in(
                    origin,
                    &p.key("from"),
                    format!(
                        "layouts refer to each other in a circle: {} → {parent}",
                        chain.join(" → ")
                    ),
                    None,
                );
                None
            }
            Some(parent) if !all.contains_key(parent) => {
                let known: Vec<&str> = all.keys().map(String::as_str).collect();
                self.err_in(
                    origin,
                    &p.key("from"),
                    format!("layout `{}` does not exist", printable(parent)),
                    Some(match closest(parent, &known) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!("layouts: {}", known.join(", ")),
                    }),
                );
                None
            }
            Some(parent) => self.resolve_layout(parent, all, done, chain),
        };
        chain.pop();
        let resolved = base.map(|mut t| {
            t.name = name.to_string();
            t.builtin = origin == Origin::Builtin;
            self.apply_layout(origin, &p, &mut t, raw, false);
            self.check_template(origin, &p, &t);
            t
        });
        done.insert(name.to_string(), resolved.clone());
        resolved
    }

    /// Applies a layout's keys (from a template or a host's pool) on top of `t`.
    fn apply_layout(
        &mut self,
        origin: Origin,
        p: &KeyPath,
        t: &mut LayoutTemplate,
        raw: &RawLayout,
        host: bool,
    ) {
        if let Some(k) = &raw.kind {
            match k.as_str() {
                "root" => t.kind = LayoutKind::Root,
                "data" => t.kind = LayoutKind::Data,
                other => self.err_in(
                    origin,
                    &p.key("kind"),
                    format!(
                        "`{}` is not a layout kind; expected \"root\" or \"data\"",
                        other.escape_default()
                    ),
                    None,
                ),
            }
        }
        if let Some(e) = &raw.encryption {
            match parse_encryption(e) {
                Some(e) => t.encryption = e,
                None => self.err_in(
                    origin,
                    &p.key("encryption"),
                    format!(
                        "`{}` is not an encryption; expected \"luks\", \"zfs\" or \"none\"",
                        e.escape_default()
                    ),
                    None,
                ),
            }
        }
        for (key, value, slot) in [
            ("esp_size", &raw.esp_size, &mut t.esp_size),
            ("swap_size", &raw.swap_size, &mut t.swap_size),
            ("reservation", &raw.reservation, &mut t.reservation),
        ] {
            if let Some(v) = value {
                match size(v) {
                    Ok(b) => *slot = b,
                    Err(m) => self.err_in(origin, &p.key(key), m, None),
                }
            }
        }
        if let Some(n) = &raw.luks_name {
            if n.is_empty()
                || n.len() > 40
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            {
                self.err_in(
                    origin,
                    &p.key("luks_name"),
                    format!(
                        "`{}` is not a usable LUKS mapping prefix (letters, digits, `-`, `_`; at most 40)",
                        n.escape_default()
                    ),
                    None,
                );
            } else {
                t.luks_name = n.clone();
            }
        }
        if let Some(d) = raw.luks_discards {
            t.luks_discards = d;
        }
        self.apply_options(
            origin,
            &p.key("pool_options"),
            &mut t.pool_options,
            &raw.pool_options,
        );
        self.apply_options(
            origin,
            &p.key("root_options"),
            &mut t.root_options,
            &raw.root_options,
        );
        for (name, rd) in &raw.datasets {
            let dp = p.key("datasets").key(name);
            if name == RESERVED_DATASET {
                self.err_at(
                    origin,
                    &dp,
                    true,
                    format!("`{RESERVED_DATASET}` is made from the layout's `reservation`"),
                    Some("set `reservation = \"20GiB\"` (or \"0\" for none) instead".into()),
                );
                continue;
            }
            if let Err(e) = DatasetName::parse(&format!("pool/{name}")) {
                self.err_at(origin, &dp, true, e.to_string(), None);
                continue;
            }
            let entry = t
                .datasets
                .entry(name.clone())
                .or_insert_with(|| DatasetLayout {
                    name: name.clone(),
                    mountpoint: None,
                    options: IndexMap::new(),
                    mount_options: vec!["defaults".into()],
                    blank: true,
                    ephemeral: false,
                    persist: Vec::new(),
                    needed_for_boot: false,
                    server_only: false,
                });
            self.apply_dataset(origin, &dp, entry, rd, host);
        }
    }

    fn apply_options(
        &mut self,
        origin: Origin,
        p: &KeyPath,
        into: &mut IndexMap<String, String>,
        raw: &IndexMap<String, RawValue>,
    ) {
        for (k, v) in raw {
            let v = v.text();
            if let Err(m) = valid_property(k) {
                self.err_at(origin, &p.key(k), true, m, None);
                continue;
            }
            if let Err(m) = valid_value(&v) {
                self.err_in(origin, &p.key(k), m, None);
                continue;
            }
            // `inherit`, as in `zfs inherit`: zfleet neither sets nor checks it.
            if v == "inherit" {
                into.shift_remove(k);
            } else {
                into.insert(k.clone(), v);
            }
        }
    }

    fn apply_dataset(
        &mut self,
        origin: Origin,
        p: &KeyPath,
        d: &mut DatasetLayout,
        raw: &RawDataset,
        host: bool,
    ) {
        if let Some(m) = &raw.mountpoint {
            match valid_mountpoint(m) {
                Ok(()) => d.mountpoint = Some(m.clone()),
                Err(e) => self.err_in(origin, &p.key("mountpoint"), e, None),
            }
        }
        self.apply_options(origin, &p.key("options"), &mut d.options, &raw.options);
        if let Some(mo) = &raw.mount_options {
            for (i, o) in mo.iter().enumerate() {
                if o.is_empty()
                    || o.contains([',', ' ', '\t', '\n'])
                    || o.chars().any(char::is_control)
                {
                    self.err_in(
                        origin,
                        &p.key("mount_options").index(i),
                        format!("`{}` is not one mount option", o.escape_default()),
                        None,
                    );
                }
            }
            d.mount_options = mo.clone();
        }
        if let Some(b) = raw.blank {
            d.blank = b;
        }
        if let Some(e) = raw.ephemeral {
            d.ephemeral = e;
        }
        if let Some(n) = raw.needed_for_boot {
            d.needed_for_boot = n;
        }
        if let Some(s) = raw.server_only {
            if host {
                self.err_in(
                    origin,
                    &p.key("server_only"),
                    "belongs to a layout, not to a host's pool",
                    Some("leave the dataset out of this host instead".into()),
                );
            }
            d.server_only = s;
        }
        if let Some(paths) = &raw.persist {
            self.persist_paths(origin, &p.key("persist"), d, paths);
        }
    }

    fn persist_paths(
        &mut self,
        origin: Origin,
        p: &KeyPath,
        d: &mut DatasetLayout,
        paths: &[String],
    ) {
        for (i, path) in paths.iter().enumerate() {
            match valid_mountpoint(path) {
                Ok(()) if path != "/" => {
                    if !d.persist.contains(path) {
                        d.persist.push(path.clone());
                    }
                }
                Ok(()) => self.err_in(
                    origin,
                    &p.index(i),
                    "`/` cannot be persisted as a path",
                    None,
                ),
                Err(e) => self.err_in(origin, &p.index(i), e, None),
            }
        }
    }

    /// Rules a finished layout must keep.
    fn check_template(&mut self, origin: Origin, p: &KeyPath, t: &LayoutTemplate) {
        if t.kind == LayoutKind::Data && t.esp_size > 0 {
            self.err_in(
                origin,
                &p.key("esp_size"),
                "only a layout of kind \"root\" has an ESP",
                Some("set `kind = \"root\"`, or `esp_size = \"0\"`".into()),
            );
        }
        let ephemeral: Vec<&str> = t
            .datasets
            .values()
            .filter(|d| d.ephemeral)
            .map(|d| d.name.as_str())
            .collect();
        if ephemeral.len() > 1 {
            self.err_in(
                origin,
                &p.key("datasets"),
                format!(
                    "more than one dataset is ephemeral ({}); one root is rolled back at boot",
                    ephemeral.join(", ")
                ),
                None,
            );
        }
        for d in t.datasets.values() {
            let dp = p.key("datasets").key(&d.name);
            if d.ephemeral && !d.blank {
                self.err_in(
                    origin,
                    &dp.key("ephemeral"),
                    "an ephemeral dataset is rolled back to its blank snapshot, so it needs `blank = true`",
                    None,
                );
            }
            if d.ephemeral && t.kind != LayoutKind::Root {
                self.err_in(
                    origin,
                    &dp.key("ephemeral"),
                    "only a layout of kind \"root\" has an ephemeral root",
                    None,
                );
            }
        }
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for d in t.datasets.values() {
            if let Some(m) = d.mountpoint.as_deref() {
                if let Some(first) = seen.insert(m, &d.name) {
                    self.err_in(
                        origin,
                        &p.key("datasets").key(&d.name).key("mountpoint"),
                        format!(
                            "`{}` is already the mountpoint of `{}`",
                            printable(m),
                            printable(first)
                        ),
                        None,
                    );
                }
            }
        }
    }

    /// `host_id` and `[hosts.NAME.pools.*]` of one host.
    pub(super) fn host_layout(
        &mut self,
        hp: &KeyPath,
        h: &RawHost,
        layouts: &IndexMap<String, LayoutTemplate>,
        is_server: bool,
        unlock_secret: Option<&String>,
    ) -> HostLayout {
        let host_id = h.host_id.as_ref().and_then(|id| {
            let ok = id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit());
            if ok {
                Some(id.to_ascii_lowercase())
            } else {
                self.err_at_value(
                    &hp.key("host_id"),
                    format!("`{}` is not a host id: 8 hex digits, as `head -c4 /dev/urandom | od -A none -t x4` prints", id.escape_default()),
                    None,
                );
                None
            }
        });
        let mut pools = Vec::new();
        for (name, rp) in &h.pools {
            let pp = hp.key("pools").key(name);
            if let Some(pool) = self.pool(&pp, name, rp, layouts, is_server, unlock_secret) {
                pools.push(pool);
            }
        }
        self.host_layout_checks(hp, &pools, h);
        HostLayout { host_id, pools }
    }

    fn pool(
        &mut self,
        pp: &KeyPath,
        name: &str,
        rp: &RawPool,
        layouts: &IndexMap<String, LayoutTemplate>,
        is_server: bool,
        unlock_secret: Option<&String>,
    ) -> Option<PoolLayout> {
        if let Err(e) = PoolName::parse(name) {
            self.err_at_key(pp, e.to_string(), None);
            return None;
        }
        let Some(layout) = &rp.layout else {
            self.err_at_value(
                &pp.key("layout"),
                "required key is missing",
                Some(format!(
                    "name the layout, for example `layout = \"seed\"` (layouts: {})",
                    layouts.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            );
            return None;
        };
        let Some(template) = layouts.get(layout) else {
            let known: Vec<&str> = layouts.keys().map(String::as_str).collect();
            self.err_at_value(
                &pp.key("layout"),
                format!("layout `{}` does not exist", printable(layout)),
                Some(match closest(layout, &known) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("layouts: {}", known.join(", ")),
                }),
            );
            return None;
        };
        let mut t = template.clone();
        let overrides = RawLayout {
            from: None,
            kind: None,
            encryption: rp.encryption.clone(),
            esp_size: rp.esp_size.clone(),
            swap_size: rp.swap_size.clone(),
            reservation: rp.reservation.clone(),
            luks_name: None,
            luks_discards: None,
            pool_options: rp.pool_options.clone(),
            root_options: rp.root_options.clone(),
            datasets: rp.datasets.clone(),
        };
        self.apply_layout(Origin::File, pp, &mut t, &overrides, true);
        for (ds, paths) in &rp.persist {
            let p = pp.key("persist").key(ds);
            match t.datasets.get_mut(ds) {
                Some(d) => self.persist_paths(Origin::File, &p, d, paths),
                None => self.err_at_key(
                    &p,
                    format!("`{}` is not a dataset of layout `{layout}`", printable(ds)),
                    Some(format!(
                        "datasets: {}",
                        t.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                ),
            }
        }
        if rp.esp_size.is_some() || !rp.datasets.is_empty() {
            self.check_template(Origin::File, pp, &t);
        }

        let disks = self.disks(pp, rp);
        let topology = self.topology(pp, rp, rp.disks.as_ref().map_or(0, Vec::len));
        if t.encryption == Encryption::Luks || t.esp_size > 0 || t.swap_size > 0 {
            if let Some((i, d)) = disks.iter().enumerate().find(|(_, d)| d.is_file()) {
                let what = if t.encryption == Encryption::Luks {
                    "LUKS"
                } else {
                    "an ESP or swap partition"
                };
                self.err_at_value(
                    &pp.key("disks").index(i),
                    format!("`{}` is a file, which cannot hold {what}; only block devices under /dev are partitioned", printable(&d.path)),
                    Some("for a pool on files set `encryption = \"none\"`, `esp_size = \"0\"` and `swap_size = \"0\"`".into()),
                );
            }
        }
        let secret = match t.encryption {
            Encryption::None => {
                if rp.secret.is_some() {
                    self.err_at_key(&pp.key("secret"), "an unencrypted pool has no secret", None);
                }
                None
            }
            Encryption::Luks | Encryption::Zfs => {
                let (path, given) = match (&rp.secret, unlock_secret) {
                    (Some(s), _) => (pp.key("secret"), Some(s)),
                    (None, Some(s)) => (pp.parent_host().key("unlock").key("secret"), Some(s)),
                    (None, None) => (pp.key("secret"), None),
                };
                match given {
                    None => {
                        self.err_at_key(
                            pp,
                            format!("is encrypted ({}) but names no secret", t.encryption.as_str()),
                            Some("set `secret = \"op://vault/item/field\"` here, or the host's [unlock] secret".into()),
                        );
                        None
                    }
                    Some(s) => match SecretRef::parse(s) {
                        Ok(r) => Some(r),
                        Err(m) => {
                            // The unlock section reports its own bad secret.
                            if rp.secret.is_some() {
                                self.err_at_value(&path, m, None);
                            }
                            None
                        }
                    },
                }
            }
        };
        let luks_name = if t.luks_name.is_empty() {
            format!("{name}-crypt")
        } else {
            t.luks_name.clone()
        };
        let mut root_options = t.root_options.clone();
        if t.encryption == Encryption::Zfs {
            for (k, v) in [
                ("encryption", "aes-256-gcm"),
                ("keyformat", "passphrase"),
                ("keylocation", "prompt"),
            ] {
                root_options
                    .entry(k.to_string())
                    .or_insert_with(|| v.to_string());
            }
        }
        let mut datasets = Vec::new();
        if t.reservation > 0 {
            datasets.push(DatasetLayout {
                name: RESERVED_DATASET.to_string(),
                mountpoint: None,
                options: [
                    ("canmount", "off".to_string()),
                    ("mountpoint", "none".to_string()),
                    ("reservation", t.reservation.to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                mount_options: vec!["defaults".into()],
                blank: false,
                ephemeral: false,
                persist: Vec::new(),
                needed_for_boot: false,
                server_only: false,
            });
        }
        let mut rest: Vec<DatasetLayout> = t
            .datasets
            .values()
            .filter(|d| is_server || !d.server_only)
            .cloned()
            .map(|mut d| {
                // disko's rule: the mountpoint is the ZFS mountpoint unless the
                // options say otherwise (`legacy`).
                if let Some(m) = &d.mountpoint {
                    d.options
                        .entry("mountpoint".to_string())
                        .or_insert_with(|| m.clone());
                }
                d
            })
            .collect();
        // Parents before children, so each `zfs create` finds its parent.
        rest.sort_by_key(|d| d.name.matches('/').count());
        datasets.extend(rest);
        Some(PoolLayout {
            pool: name.to_string(),
            template: layout.clone(),
            kind: t.kind,
            encryption: t.encryption,
            topology,
            disks,
            esp_size: t.esp_size,
            swap_size: t.swap_size,
            reservation: t.reservation,
            luks_name,
            luks_discards: t.luks_discards,
            secret,
            pool_options: t.pool_options.clone(),
            root_options,
            datasets,
        })
    }

    fn disks(&mut self, pp: &KeyPath, rp: &RawPool) -> Vec<DiskRef> {
        let Some(list) = &rp.disks else {
            self.err_at_value(
                &pp.key("disks"),
                "required key is missing",
                Some(
                    "list the pool's disks by id, as in `disks = [\"/dev/disk/by-id/nvme-…\"]`"
                        .into(),
                ),
            );
            return Vec::new();
        };
        if list.is_empty() {
            self.err_at_value(&pp.key("disks"), "lists no disks", None);
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, path) in list.iter().enumerate() {
            let dp = pp.key("disks").index(i);
            if !path.starts_with('/')
                || path.ends_with('/')
                || path.contains("/../")
                || path.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                self.err_at_value(
                    &dp,
                    format!(
                        "`{}` is not an absolute path to a disk",
                        path.escape_default()
                    ),
                    None,
                );
                continue;
            }
            if !seen.insert(path.clone()) {
                self.err_at_value(&dp, format!("`{}` is listed twice", printable(path)), None);
                continue;
            }
            let d = DiskRef { path: path.clone() };
            if d.is_kernel_name() {
                self.warn(
                    &dp,
                    format!(
                        "`{path}` is a kernel name, which can change between boots and installs"
                    ),
                    Some(
                        "name the disk by id: `ls -l /dev/disk/by-id/` shows which id points at it"
                            .into(),
                    ),
                );
            }
            out.push(d);
        }
        out
    }

    fn topology(&mut self, pp: &KeyPath, rp: &RawPool, disks: usize) -> Topology {
        let tp = pp.key("topology");
        let topo = match &rp.topology {
            None if disks <= 1 => return Topology::Single,
            None => {
                self.err_at_value(
                    &pp.key("disks"),
                    format!("{disks} disks but no `topology`; zfleet does not guess (disko made two disks a stripe)"),
                    Some("set `topology = \"mirror\"` (or \"raidz1\", … or \"stripe\" if you mean it)".into()),
                );
                return Topology::Stripe;
            }
            Some(t) => match Topology::parse(t) {
                Some(t) => t,
                None => {
                    self.err_at_value(
                        &tp,
                        format!(
                            "`{}` is not a topology; expected \"single\", \"mirror\", \"raidz1\", \"raidz2\", \"raidz3\" or \"stripe\"",
                            t.escape_default()
                        ),
                        None,
                    );
                    return Topology::Single;
                }
            },
        };
        if topo == Topology::Single && disks > 1 {
            self.err_at_value(
                &tp,
                format!("\"single\" takes one disk, not {disks}"),
                Some("for two disks that hold the same data, `topology = \"mirror\"`".into()),
            );
        } else if disks > 0 && disks < topo.min_disks() {
            self.err_at_value(
                &tp,
                format!(
                    "\"{topo}\" needs at least {} disks, not {disks}",
                    topo.min_disks()
                ),
                None,
            );
        }
        topo
    }

    fn host_layout_checks(&mut self, hp: &KeyPath, pools: &[PoolLayout], h: &RawHost) {
        let roots: Vec<&str> = pools
            .iter()
            .filter(|p| p.kind == LayoutKind::Root)
            .map(|p| p.pool.as_str())
            .collect();
        if roots.len() > 1 {
            self.err_at_key(
                &hp.key("pools"),
                format!(
                    "more than one root pool ({}); a host boots from one",
                    roots.join(", ")
                ),
                None,
            );
        }
        let mut disks: HashMap<&str, &str> = HashMap::new();
        let mut mappings: HashMap<String, &str> = HashMap::new();
        let mut mounts: HashMap<&str, &str> = HashMap::new();
        for p in pools {
            let pp = hp.key("pools").key(&p.pool);
            for (i, d) in p.disks.iter().enumerate() {
                if let Some(first) = disks.insert(&d.path, &p.pool) {
                    if first != p.pool {
                        self.err_at_value(
                            &pp.key("disks").index(i),
                            format!(
                                "`{}` is already a disk of pool `{first}`",
                                printable(&d.path)
                            ),
                            None,
                        );
                    }
                }
                if p.encryption == Encryption::Luks {
                    let m = p.luks_mapping(i);
                    if let Some(first) = mappings.insert(m.clone(), &p.pool) {
                        self.err_at_key(
                            &pp,
                            format!("its LUKS mapping `{m}` is also one of pool `{first}`"),
                            Some("give one of the layouts another `luks_name`".into()),
                        );
                    }
                }
            }
            let esp = (p.kind == LayoutKind::Root && p.esp_size > 0)
                .then_some(super::super::layout::ESP_MOUNTPOINT);
            for (m, owner) in p
                .datasets
                .iter()
                .filter_map(|d| d.mountpoint.as_deref().map(|m| (m, d.name.as_str())))
                .chain(esp.map(|m| (m, "ESP")))
            {
                if let Some(first) = mounts.insert(m, owner) {
                    self.err_at_key(
                        &pp,
                        format!("mounts `{owner}` at `{m}`, where `{first}` is mounted already"),
                        None,
                    );
                }
            }
        }
        if h.host_id.is_none() && pools.iter().any(|p| p.kind == LayoutKind::Root) {
            self.warn(
                &hp.key("pools"),
                "a root pool without `host_id`: the installed system will see its pools as last used by another system",
                Some("set `host_id = \"…\"` (8 hex digits) on the host, the seed's `networking.hostId`".into()),
            );
        }
    }
}

trait HostOfPool {
    fn parent_host(&self) -> KeyPath;
}

impl HostOfPool for KeyPath {
    /// `hosts.a.pools.zroot` → `hosts.a`.
    fn parent_host(&self) -> KeyPath {
        KeyPath(self.0.iter().take(2).cloned().collect())
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_encryption(s: &str) -> Option<Encryption> {
    Some(match s {
        "luks" => Encryption::Luks,
        "zfs" => Encryption::Zfs,
        "none" => Encryption::None,
        _ => return None,
    })
}

fn size(v: &RawSize) -> Result<u64, String> {
    match v {
        RawSize::Bytes(b) => Ok(*b),
        RawSize::Text(t) => parse_size(t),
    }
}

/// ZFS property names: native ones are lowercase words, user ones have a `:`.
fn valid_property(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && k.len() <= 256
        && k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a ZFS property name",
            k.escape_default()
        ))
    }
}

fn valid_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is empty; to leave a property to ZFS, write \"inherit\"".into());
    }
    if v.len() > 1024 || v.chars().any(char::is_control) {
        return Err(format!("`{}` is not a property value", v.escape_default()));
    }
    Ok(())
}

/// An absolute, normalised path: no `.`/`..` parts, no doubled or trailing
/// `/`, no control characters or spaces (fstab could not hold them).
fn valid_mountpoint(m: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "`{}` is not an absolute, normalised path",
            m.escape_default()
        )
    };
    if m == "/" {
        return Ok(());
    }
    if !m.starts_with('/')
        || m.ends_with('/')
        || m.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(bad());
    }
    if m[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad());
    }
    Ok(())
}
