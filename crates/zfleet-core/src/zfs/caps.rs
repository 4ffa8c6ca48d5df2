//! What a host's ZFS can do, probed once per host per run.
//!
//! Two dialects matter: OpenZFS (0.8 and 2.x: `list -p`, bookmarks, resume
//! tokens, raw sends, `holds`, `allow`) and the old Solaris-era one that
//! zfs-fuse speaks (pool version 23: none of those, though `hold`/`release`
//! themselves work). Code paths are chosen from these flags, never from names.

use serde::{Deserialize, Serialize};

use crate::exec::Argv;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Dialect {
    /// OpenZFS with `zfs version` (2.0 and later), or feature flags without it (0.x).
    OpenZfs { version: String },
    /// Pool-version ZFS such as zfs-fuse.
    Legacy { pool_version: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    pub dialect: Dialect,
    /// `zfs list -p`: exact numbers from `list`; else `get -Hp -r` is used.
    pub list_parsable: bool,
    pub bookmarks: bool,
    /// `recv -s` / `send -t`.
    pub resume: bool,
    /// `send -w` (encrypted datasets sent without their key).
    pub raw_send: bool,
    /// Native encryption: `keystatus`, `zfs load-key`.
    pub encryption: bool,
    /// `zfs holds` can list holds (`hold`/`release` exist everywhere).
    pub holds_listing: bool,
    pub allow: bool,
    /// `send -nvP` size estimates for progress and ETA.
    pub send_estimate: bool,
    /// `zfs snapshot a@x b@x …`: several snapshots (of different datasets of one
    /// pool) in one atomic call. zfs-fuse takes one name per call.
    pub snapshot_many: bool,
    /// `zfs destroy ds@a,b,c`: several snapshots of one dataset in one call.
    /// zfs-fuse takes one (`-r` for one name in a whole tree works in both).
    pub destroy_list: bool,
}

impl Caps {
    pub fn openzfs(version: &str) -> Self {
        let major: u32 = version
            .split(['.', '-'])
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let minor: u32 = version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        // Native encryption, and with it raw sends, arrived in 0.8.
        let raw = major >= 1 || minor >= 8;
        Self {
            dialect: Dialect::OpenZfs {
                version: version.to_string(),
            },
            list_parsable: true,
            bookmarks: true,
            resume: true,
            raw_send: raw,
            encryption: raw,
            holds_listing: true,
            allow: true,
            send_estimate: true,
            snapshot_many: true,
            destroy_list: true,
        }
    }

    pub fn legacy(pool_version: Option<u32>) -> Self {
        Self {
            dialect: Dialect::Legacy { pool_version },
            list_parsable: false,
            bookmarks: false,
            resume: false,
            raw_send: false,
            encryption: false,
            holds_listing: false,
            allow: false,
            send_estimate: false,
            snapshot_many: false,
            destroy_list: false,
        }
    }

    pub fn describe(&self) -> String {
        match &self.dialect {
            Dialect::OpenZfs { version } => format!("OpenZFS {version}"),
            Dialect::Legacy {
                pool_version: Some(v),
            } => format!("ZFS pool version {v} (zfs-fuse dialect)"),
            Dialect::Legacy { pool_version: None } => "legacy ZFS".to_string(),
        }
    }
}

/// One command, so the probe costs one round trip even on a dialect without
/// `zfs version`: OpenZFS 2.x answers the first part, older ones the second.
pub fn probe() -> Argv {
    Argv::new("sh")
        .arg("-c")
        .arg("zfs version 2>/dev/null || zpool upgrade -v")
}

/// Reads the probe's output.
pub fn from_probe_output(stdout: &str) -> Caps {
    from_version_output(stdout).unwrap_or_else(|| from_upgrade_output(stdout))
}

/// From `zfs version` output: `zfs-2.1.11-1` (and `zfs-kmod-…` on a second line).
pub fn from_version_output(stdout: &str) -> Option<Caps> {
    let first = stdout
        .lines()
        .find(|l| l.starts_with("zfs-") && !l.starts_with("zfs-kmod"))?;
    let v = first.trim_start_matches("zfs-");
    // Keep `2.1.11` from `2.1.11-1` or `2.3.2-1~bpo12+1`.
    let version = v.split('-').next().unwrap_or(v);
    Some(Caps::openzfs(version))
}

/// From `zpool upgrade -v`: a pool version, or feature flags (OpenZFS before 2.0).
pub fn from_upgrade_output(stdout: &str) -> Caps {
    if stdout.contains("feature flags") {
        return Caps::openzfs("0.8");
    }
    let v = stdout
        .split("pool version ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    Caps::legacy(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_is_one_command() {
        assert_eq!(
            probe().to_string(),
            "sh -c 'zfs version 2>/dev/null || zpool upgrade -v'"
        );
        assert_eq!(
            from_probe_output("zfs-2.1.11-1\nzfs-kmod-2.1.11-1\n").describe(),
            "OpenZFS 2.1.11"
        );
        assert_eq!(
            from_probe_output(include_str!(
                "../../tests/fixtures/zfs-fuse/zpool-upgrade-v.txt"
            )),
            Caps::legacy(Some(23))
        );
    }

    #[test]
    fn zfs_fuse_is_legacy_23() {
        let c = from_upgrade_output(include_str!(
            "../../tests/fixtures/zfs-fuse/zpool-upgrade-v.txt"
        ));
        assert_eq!(c, Caps::legacy(Some(23)));
        assert!(!c.list_parsable && !c.bookmarks && !c.resume && !c.raw_send && !c.encryption);
        assert_eq!(c.describe(), "ZFS pool version 23 (zfs-fuse dialect)");
    }

    #[test]
    fn openzfs_2() {
        let c = from_version_output("zfs-2.1.11-1\nzfs-kmod-2.1.11-1\n").unwrap();
        assert_eq!(
            c.dialect,
            Dialect::OpenZfs {
                version: "2.1.11".into()
            }
        );
        assert!(
            c.list_parsable
                && c.bookmarks
                && c.resume
                && c.raw_send
                && c.encryption
                && c.holds_listing
                && c.allow
        );
        let c = from_version_output("zfs-2.3.2-1~bpo12+1\nzfs-kmod-2.3.2-1~bpo12+1\n").unwrap();
        assert_eq!(c.describe(), "OpenZFS 2.3.2");
        assert!(from_version_output("unrecognized command 'version'").is_none());
    }

    #[test]
    fn openzfs_0_8_without_version_command() {
        let c = from_upgrade_output("This system supports ZFS pool feature flags.\n");
        assert!(c.raw_send && c.bookmarks);
    }
}
