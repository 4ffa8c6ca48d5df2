//! The fleet file: one description of every host, read by every command.
//!
//! [`load`] reads `fleet.toml`, rejects unknown keys and invalid names with
//! `file:line:col`, resolves templates and defaults, and checks the rules that
//! span sections (references, duplicates, a server backing itself up). The
//! result, [`Fleet`], is plain data that planners consume; [`Fleet::jobs`] and
//! [`Fleet::policies`] are the expansion `zfleet check` prints.

mod daemon;
mod error;
mod expand;
mod extras;
mod layout;
mod policy;
mod raw;
mod raw_daemon;
mod raw_layout;
mod resolve;
mod secret_ref;

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

pub use daemon::{
    DaemonConfig, NotifyKind, NotifyTarget, UrlRef, VerifySchedule, DEFAULT_BACKUP_SCHEDULE,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STALL_TIMEOUT,
};
pub use error::{line_col, ConfigError, ConfigErrors, KeyPath};
pub use expand::{ExpandedPolicy, FleetPlan, Job, ServerPlan, SkippedClient};
pub use extras::{parse_age, HookCommand, Hooks, Monitor, RawAge, DEFAULT_SCRIPT_TIMEOUT};
pub use layout::{
    format_size, parse_size, DatasetLayout, DiskRef, Encryption, HostLayout, LayoutKind,
    LayoutTemplate, PoolLayout, Topology, BUILTIN_LAYOUTS, CREATE_ONLY_POOL_PROPERTIES,
    ESP_MOUNTPOINT, ESP_MOUNT_OPTIONS, ONETIME_PROPERTIES, RESERVED_DATASET, SIZE_PROPERTIES,
};
pub use policy::{Period, Policy, Recursive};
pub use resolve::{valid_address, valid_host_name, valid_user};
pub use secret_ref::SecretRef;

use crate::daemon::Timing;
use crate::zfs::DatasetName;

/// Where `zfleet` looks when neither `--config` nor `ZFLEET_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/zfleet/fleet.toml";
/// What a backup client backs up when its `datasets` are not given (the seed's layout).
pub const DEFAULT_CLIENT_DATASET: &str = "zroot/persistSave";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/zfleet";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_PARALLEL: u32 = 4;
/// How long `zfleet unlock` gives one host: from sending the secret until the
/// booted system answers (LUKS), or for load-key, mounts and services (ZFS).
pub const DEFAULT_UNLOCK_TIMEOUT: Duration = Duration::from_secs(180);
/// Where pinned initrd host keys live when `initrd_known_hosts` is not given:
/// `<this directory, next to the fleet file>/<host>`.
pub const DEFAULT_INITRD_KNOWN_HOSTS_DIR: &str = "initrd_known_hosts";

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub file: PathBuf,
    /// Account backup servers log in as on clients, unless a client names its own.
    pub backup_user: Option<String>,
    /// Private key backup connections use (servers pulling, clients pushing),
    /// kept apart from the admin key in `[ssh]`.
    pub backup_identity: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub templates: IndexMap<String, Policy>,
    pub hosts: IndexMap<String, HostConfig>,
    /// The program `zfleet status` runs on other hosts to read their state.
    pub zfleet_path: String,
    pub daemon: DaemonConfig,
    pub notify: IndexMap<String, NotifyTarget>,
    /// Disk layouts: the built-ins and the file's `[layouts.NAME]`.
    pub layouts: IndexMap<String, LayoutTemplate>,
    /// What `zfleet check` points out without refusing the file.
    #[serde(skip)]
    pub warnings: Vec<ConfigError>,
}

/// How to reach a machine over ssh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshEndpoint {
    pub address: String,
    pub user: Option<String>,
    pub port: u16,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    #[serde(with = "secs")]
    pub connect_timeout: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostConfig {
    pub name: String,
    pub ssh: SshEndpoint,
    pub client: Option<ClientRole>,
    pub server: Option<ServerRole>,
    pub snapshots: Vec<DatasetPolicy>,
    pub unlock: Option<UnlockConfig>,
    /// Its disks, pools and datasets (`[hosts.NAME.pools.*]`); empty when none.
    pub layout: HostLayout,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientRole {
    pub enabled: bool,
    pub datasets: Vec<DatasetName>,
    /// The ssh account backup servers use on this host.
    pub user: Option<String>,
    /// The client sends to the servers (`zfleet backup` on the client) instead
    /// of being pulled: for hosts the servers cannot reach.
    pub push: bool,
    /// The key a push client sends with (for `zfleet grant` on its servers).
    pub public_key: Option<String>,
    /// When a push client's daemon pushes.
    pub schedule: Timing,
    /// Seconds without a success before its backups are late (on every server).
    pub late_after: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerRole {
    pub target_root: DatasetName,
    /// Prune-only policy for received datasets; `None` keeps every snapshot.
    pub retention: Option<NamedPolicy>,
    pub exclude: Vec<String>,
    pub extra_clients: Vec<ExtraClient>,
    /// Clients backed up at the same time.
    pub parallel: u32,
    /// Native properties copied from each source dataset to its backup.
    pub preserve_properties: Vec<String>,
    /// Take a `zfleet_sync_<server>_…` snapshot on the client before each run
    /// (and remove older ones), instead of sending only policy snapshots.
    pub sync_snapshot: bool,
    pub compress: Compression,
    /// The key this server pulls with (for `zfleet grant` on its clients).
    pub public_key: Option<String>,
    /// When the daemon runs this server's backups.
    pub schedule: Timing,
    /// Seconds without a success before a backup is late (default: twice
    /// the schedule's interval).
    pub late_after: Option<i64>,
}

/// Compression of the stream on the wire, on top of what ZFS sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Zstd,
}

/// Native properties a server may copy to backups. mountpoint, canmount and
/// readonly are zfleet's to manage on a backup; they are recorded (as
/// `zfleet:src:…` user properties) for restores instead.
pub const PRESERVABLE_PROPERTIES: &[&str] = &[
    "compression",
    "recordsize",
    "checksum",
    "copies",
    "dedup",
    "atime",
    "xattr",
    "acltype",
    "dnodesize",
    "logbias",
    "primarycache",
    "secondarycache",
    "sync",
];
pub const DEFAULT_PRESERVED_PROPERTIES: &[&str] = &["compression", "recordsize"];

#[derive(Debug, Clone, Serialize)]
pub struct NamedPolicy {
    pub template: String,
    pub policy: Policy,
}

/// A machine outside the fleet that a server backs up anyway (the seed's
/// `additionalClients`).
#[derive(Debug, Clone, Serialize)]
pub struct ExtraClient {
    pub name: String,
    pub ssh: SshEndpoint,
    pub datasets: Vec<DatasetName>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetPolicy {
    pub dataset: DatasetName,
    pub templates: Vec<String>,
    pub policy: Policy,
    pub recursive: Recursive,
    pub process_children_only: bool,
    /// `fleet` when it came from the top-level `[snapshots]`, `host` when the
    /// host's own section set it.
    pub origin: PolicyOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyOrigin {
    Fleet,
    Host,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnlockConfig {
    pub method: UnlockMethod,
    pub secret: SecretRef,
    /// The initrd's ssh endpoint (LUKS unlock). Its `known_hosts` is always set:
    /// the file that pins this host's initrd key and nothing else.
    pub initrd: Option<SshEndpoint>,
    /// LUKS: the remote command that asks for the passphrase, for initrds whose
    /// ssh does not force one (Debian's dropbear: `cryptroot-unlock`). `None`
    /// asks for the login shell, which the seed's initrd sets to
    /// `cryptsetup-askpass`.
    pub initrd_command: Option<Vec<String>>,
    /// LUKS: how many more times the passphrase is sent when the initrd rejects
    /// it and asks again.
    pub retries: u32,
    pub encryption_roots: Vec<DatasetName>,
    /// ZFS: systemd units started once every encryption root is unlocked and mounted.
    pub services: Vec<String>,
    #[serde(with = "secs")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlockMethod {
    LuksInitrd,
    Zfs,
}

impl Fleet {
    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.get(name)
    }

    pub fn servers(&self) -> impl Iterator<Item = &HostConfig> {
        self.hosts.values().filter(|h| h.server.is_some())
    }

    /// The message for a name given where a backup server was expected.
    pub fn not_a_server(&self, name: &str) -> String {
        format!(
            "`{name}` is not a backup server in {} (servers: {})",
            self.file.display(),
            self.servers()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Larger than any fleet file people write (a few hundred hosts take tens of
/// KiB); a bigger file is a mistake (`--config /dev/zero`, a log file).
pub const MAX_FLEET_FILE: u64 = 4 << 20;

/// Reads and validates a fleet file. Only a regular file of at most
/// [`MAX_FLEET_FILE`] bytes is read: a device would be read until memory runs
/// out, and a FIFO would block forever.
pub fn load(path: &Path) -> Result<Fleet, ConfigErrors> {
    let bytes = read_limited(path).map_err(|(message, hint)| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            position: None,
            key: String::new(),
            message,
            hint,
        }])
    })?;
    parse_bytes(&bytes, path)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, (String, Option<String>)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| {
        let hint = (e.kind() == std::io::ErrorKind::NotFound).then(|| {
            format!("pass --config PATH or set ZFLEET_CONFIG; the default is {DEFAULT_PATH}")
        });
        (format!("cannot read the fleet file: {e}"), hint)
    };
    let not_regular = |what: &str| {
        (
            format!("cannot read the fleet file: it is {what}, not a regular file"),
            Some("point --config at the fleet.toml itself".to_string()),
        )
    };
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(file_kind(&meta)));
    }
    // Non-blocking, so that a file swapped for a FIFO after the check above
    // cannot hang the open; the descriptor is checked again.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(cannot)?;
    let meta = f.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(not_regular(file_kind(&meta)));
    }
    let too_big = || {
        (
            format!(
                "the fleet file is larger than {} MiB; that is not a fleet file",
                MAX_FLEET_FILE >> 20
            ),
            None,
        )
    };
    if meta.len() > MAX_FLEET_FILE {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    f.take(MAX_FLEET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FLEET_FILE {
        return Err(too_big());
    }
    Ok(bytes)
}

fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Validates the bytes of a fleet file: text that is not UTF-8 is reported
/// at the line and column of the first bad byte.
pub fn parse_bytes(bytes: &[u8], file: &Path) -> Result<Fleet, ConfigErrors> {
    match std::str::from_utf8(bytes) {
        Ok(src) => parse(src, file),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // Everything before the bad byte is valid UTF-8.
            let before = std::str::from_utf8(good).unwrap_or_default();
            let (line, col) = line_col(before, before.len());
            let shown: Vec<String> = bytes[e.valid_up_to()..]
                .iter()
                .take(e.error_len().unwrap_or(1).max(1))
                .map(|b| format!("0x{b:02x}"))
                .collect();
            Err(ConfigErrors(vec![ConfigError {
                file: file.to_path_buf(),
                position: Some((line, col)),
                key: String::new(),
                message: format!(
                    "the file is not UTF-8 text: byte {} cannot start or continue a character",
                    shown.join(" ")
                ),
                hint: Some("save the fleet file as UTF-8".into()),
            }]))
        }
    }
}

/// Validates fleet-file text; `file` is only used in messages.
pub fn parse(src: &str, file: &Path) -> Result<Fleet, ConfigErrors> {
    resolve::parse(src, file)
}
