//! Names that two sides of zfleet must agree on: what `zfleet serve` announces
//! and accepts, and the marks zfleet leaves in pools (base markers and
//! bookmarks, sync snapshots, a restore's temporary dataset). A server, a
//! client and `zfleet serve` may be different zfleet versions; these strings
//! are the contract between them, so they live here, below everything that
//! uses them, and change only with care.

/// What the probe answers first, so the server knows it talks to `zfleet serve`
/// and sends single commands it can check.
pub const SERVE_BANNER: &str = "zfleet-serve 1";

/// What this `serve` can do beyond plain commands, announced on the banner line
/// (an older server ignores words it does not know).
pub const SERVE_FEATURES: &[&str] = &["zstd", "checksum"];

/// The most commands `zfleet serve` takes chained with `&&` in one request:
/// the longest base move (mark, hold, bookmark, release, unmark, destroy the
/// old bookmark) and the property read that ends it after a send.
pub const SERVE_MAX_CHAINED: usize = 8;

/// The request prefix that asks `serve` to compress a send's stream in process
/// (the server decompresses in process too: no `zstd` program, no shell).
pub const ZSTD_PREFIX: &str = "zfleet-zstd";

/// zstd's level on the wire, wherever the stream is compressed.
pub const ZSTD_LEVEL: i32 = 3;

/// The prefix of every base marker property (and hold tag).
pub const BASE_PREFIX: &str = "zfleet:base:";

/// The user property (and hold tag) that marks a replication base for `server`.
pub fn base_marker(server: &str) -> String {
    format!("{BASE_PREFIX}{}", server.to_ascii_lowercase())
}

/// The name of a server's bookmark of a base: kept on the source so that an
/// incremental stays possible even if the base snapshot itself is destroyed.
/// `marker` is the server's [`base_marker`] (or its bare name). `:` ends the
/// server's name because no host name contains one: the bookmarks of
/// `backup` (`zfleet_backup:…`) never match those of `backup_2`.
pub fn base_bookmark(marker: &str, snap: &str) -> String {
    format!("{}{snap}", base_bookmark_prefix(marker))
}

/// What every one of a server's base bookmarks starts with.
pub fn base_bookmark_prefix(marker: &str) -> String {
    let server = marker.strip_prefix(BASE_PREFIX).unwrap_or(marker);
    format!("zfleet_{server}:")
}

/// Sync snapshots: `zfleet_sync_<server>_<UTC time>`.
pub const SYNC_PREFIX: &str = "zfleet_sync_";

/// `zfleet_sync_<server>_2026-11-25_23:00:00` (UTC): per server, so two servers'
/// sync snapshots never clean up each other's.
pub fn sync_snapshot_name(server: &str, unix: i64) -> String {
    let t = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{SYNC_PREFIX}{server}_{}", t.strftime("%Y-%m-%d_%H:%M:%S"))
}

/// Whether `name` is one of `server`'s sync snapshots (and nobody else's).
pub fn is_sync_snapshot_of(name: &str, server: &str) -> bool {
    name.strip_prefix(SYNC_PREFIX)
        .and_then(|rest| rest.strip_prefix(server))
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|stamp| {
            stamp.len() == 19
                && stamp
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '-' | '_' | ':'))
        })
}

/// Whose sync snapshots a job takes, and so which older ones it may clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncNaming {
    /// `zfleet_sync_<server>_<UTC time>`: a server's pull backups.
    Server(String),
    /// `syncoid_[<identifier>_]<host>_<time>`, as syncoid names them: `zfleet
    /// sync` is a drop-in for syncoid, so each cleans up what the other left
    /// of the same copy, and syncoid's own tests read the names.
    Syncoid { prefix: String },
}

impl SyncNaming {
    /// syncoid's prefix: `syncoid_`, the identifier and `_` if given, the host, `_`.
    pub fn syncoid(identifier: Option<&str>, host: &str) -> Self {
        let id = identifier.map(|i| format!("{i}_")).unwrap_or_default();
        SyncNaming::Syncoid {
            prefix: format!("syncoid_{id}{host}_"),
        }
    }

    /// The snapshot name for a sync snapshot taken at `unix`.
    pub fn name(&self, unix: i64) -> String {
        match self {
            SyncNaming::Server(server) => sync_snapshot_name(server, unix),
            SyncNaming::Syncoid { prefix } => {
                let t = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                // syncoid writes local time and its offset (without `+`,
                // which ZFS does not allow in names); UTC says the same.
                format!("{prefix}{}-GMT00:00", t.strftime("%Y-%m-%d_%H:%M:%S"))
            }
        }
    }

    /// Whether `name` is one of these sync snapshots (and nobody else's).
    pub fn owns(&self, name: &str) -> bool {
        match self {
            SyncNaming::Server(server) => is_sync_snapshot_of(name, server),
            SyncNaming::Syncoid { prefix } => {
                name.strip_prefix(prefix.as_str()).is_some_and(|stamp| {
                    stamp.len() >= 19
                        && stamp[..4].chars().all(|c| c.is_ascii_digit())
                        && stamp.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '+')
                        })
                })
            }
        }
    }
}

/// The suffix of the temporary dataset a restore receives into.
pub const RESTORE_TEMP_SUFFIX: &str = "-zfleet-restoring";

/// The user property that marks a temporary dataset as zfleet's (value: the
/// guid of the snapshot it holds), so a leftover is recognised and never
/// confused with somebody's data.
pub const RESTORE_TEMP_MARK: &str = "zfleet:restoring";

/// The properties on a backup that record the client's own (`zfleet:src:<name>`).
pub const RECORDED_PREFIX: &str = "zfleet:src:";

/// The line a compressing sender's shell prints on stderr with the sender's
/// own exit status, which the pipe to zstd would otherwise hide.
pub const SEND_EXIT_TAG: &str = "zfleet-send-exit:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_marks() {
        assert_eq!(base_marker("Vault"), "zfleet:base:vault");
        assert_eq!(
            base_bookmark(&base_marker("vault"), "s1"),
            "zfleet_vault:s1"
        );
        assert_eq!(base_bookmark("vault", "s1"), "zfleet_vault:s1");
        assert_eq!(
            sync_snapshot_name("vault", 1_795_647_600),
            "zfleet_sync_vault_2026-11-25_23:00:00"
        );
        assert!(is_sync_snapshot_of(
            "zfleet_sync_vault_2026-11-25_23:00:00",
            "vault"
        ));
        // Another server's, or one with a longer name starting alike.
        assert!(!is_sync_snapshot_of(
            "zfleet_sync_vault2_2026-11-25_23:00:00",
            "vault"
        ));
        assert!(!is_sync_snapshot_of("zfleet_sync_vault_manual", "vault"));
        let s = SyncNaming::syncoid(Some("nightly"), "alpha");
        let name = s.name(1_795_647_600);
        assert_eq!(name, "syncoid_nightly_alpha_2026-11-25_23:00:00-GMT00:00");
        assert!(s.owns(&name));
        // syncoid's own, with its local offset, is the same copy's too.
        assert!(s.owns("syncoid_nightly_alpha_2026-11-25_18:00:00-GMT-05:00"));
        assert!(!s.owns("syncoid_alpha_2026-11-25_23:00:00-GMT00:00"));
        assert!(!SyncNaming::syncoid(None, "alpha").owns(&name));
        assert!(!s.owns("syncoid_nightly_alpha_manual"));
    }
}

/// The banner line as a client's serve printed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Banner {
    /// The protocol number after `zfleet-serve`.
    pub protocol: u32,
    /// Feature words (`zstd`); a server uses only those it knows.
    pub features: Vec<String>,
    /// `zfleet=X.Y.Z`: the version of the zfleet that serves (absent before 0.1).
    pub version: Option<String>,
}

impl Banner {
    /// `zfleet-serve N [WORD…]`; `None` for anything else (a plain shell).
    /// A newer protocol number is still a serve: its requests are the same
    /// single checked commands, and the words it adds are ignored here.
    pub fn parse(line: &str) -> Option<Banner> {
        let mut words = line.split_whitespace();
        if words.next()? != "zfleet-serve" {
            return None;
        }
        let protocol = words.next()?.parse().ok()?;
        let mut b = Banner {
            protocol,
            ..Banner::default()
        };
        for w in words {
            match w.strip_prefix("zfleet=") {
                Some(v) => b.version = Some(v.to_string()),
                None => b.features.push(w.to_string()),
            }
        }
        Some(b)
    }
}

#[cfg(test)]
mod banner_tests {
    use super::{Banner, SERVE_BANNER};

    /// A server reading the banners of older, current and newer clients.
    #[test]
    fn banners_of_every_age() {
        let oldest = Banner::parse("zfleet-serve 1").unwrap();
        assert_eq!(
            (oldest.protocol, oldest.features.len(), oldest.version),
            (1, 0, None)
        );
        let before_versions = Banner::parse("zfleet-serve 1 zstd").unwrap();
        assert_eq!(before_versions.features, ["zstd"]);
        assert_eq!(before_versions.version, None);
        let now = Banner::parse(&format!("{} zstd zfleet=0.1.0", SERVE_BANNER)).unwrap();
        assert_eq!(now.version.as_deref(), Some("0.1.0"));
        assert_eq!(now.features, ["zstd"]);
        // A newer client's serve is still a serve; words it adds are features
        // this server does not use.
        let newer = Banner::parse("zfleet-serve 2 zstd lz4 zfleet=0.3.0").unwrap();
        assert_eq!((newer.protocol, newer.features.len()), (2, 2));
        assert_eq!(Banner::parse("zfs-2.3.2-1"), None);
        assert_eq!(Banner::parse("zfleet-serve x"), None);
    }
}
