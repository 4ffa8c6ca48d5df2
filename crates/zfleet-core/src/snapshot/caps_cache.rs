//! The local host's ZFS dialect, remembered in the state directory between
//! runs. Probing costs `zfs version` (and on zfs-fuse `zpool upgrade -v` too)
//! every run; a timer running `zfleet run` every 15 minutes would spend more
//! processes probing than working. The cache is keyed by the installed `zfs`
//! and `zpool` programs (path, size, modification time, inode) and the loaded
//! kernel module's version, so an upgrade is noticed and probed again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::zfs::Caps;

const FILE: &str = "zfs-caps.json";

#[derive(Serialize, Deserialize)]
struct Cached {
    fingerprint: String,
    caps: Caps,
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// What identifies this machine's ZFS: the programs zfleet would run and the
/// kernel module, if any. `None` when `zfs` is not found.
pub fn fingerprint() -> Option<String> {
    let mut parts = Vec::new();
    for program in ["zfs", "zpool"] {
        let p = which(program)?;
        let m = std::fs::metadata(&p).ok()?;
        parts.push(format!(
            "{}:{}:{}:{}",
            p.display(),
            m.len(),
            m.mtime(),
            m.ino()
        ));
    }
    if let Ok(v) = std::fs::read_to_string("/sys/module/zfs/version") {
        parts.push(format!("module:{}", v.trim()));
    }
    Some(parts.join(" "))
}

/// The cached dialect, if it was probed with the programs installed now.
pub fn load(state_dir: &Path) -> Option<Caps> {
    let text = std::fs::read_to_string(state_dir.join(FILE)).ok()?;
    let c: Cached = serde_json::from_str(&text).ok()?;
    (Some(c.fingerprint) == fingerprint()).then_some(c.caps)
}

/// Remembers a probed dialect; failures only cost a probe next time.
pub fn save(state_dir: &Path, caps: &Caps) {
    let Some(fingerprint) = fingerprint() else {
        return;
    };
    let c = Cached {
        fingerprint,
        caps: caps.clone(),
    };
    let Ok(text) = serde_json::to_string(&c) else {
        return;
    };
    let tmp = state_dir.join(format!("{FILE}.{}", std::process::id()));
    if std::fs::create_dir_all(state_dir).is_ok() && std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, state_dir.join(FILE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_only_with_the_same_programs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        let caps = Caps::legacy(Some(23));
        save(dir.path(), &caps);
        if fingerprint().is_some() {
            assert_eq!(load(dir.path()), Some(caps));
            // Another installation: the fingerprint no longer matches.
            let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
            let text = text.replace("\"fingerprint\":\"", "\"fingerprint\":\"x");
            std::fs::write(dir.path().join(FILE), text).unwrap();
            assert_eq!(load(dir.path()), None);
        }
    }
}
