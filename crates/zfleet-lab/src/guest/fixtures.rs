//! Real `zfs`/`zpool` output from the guest, for zfleet-core's parser tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::vm::Guest;

const SCRIPT: &str = include_str!("../../guest/fixtures.sh");
const GUEST_DIR: &str = "/root/zfleet-fixtures";

/// Where fixtures belong in this checkout: zfleet-core's test fixtures.
pub fn default_out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../zfleet-core/tests/fixtures")
}

/// `2.3.2` from `zfs version`'s first line (`zfs-2.3.2-2~bpo12+2`).
pub fn openzfs_version(zfs_version_output: &str) -> Option<String> {
    let first = zfs_version_output.lines().next()?.trim();
    let rest = first.strip_prefix("zfs-")?;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let version = version.trim_end_matches('.');
    (!version.is_empty()).then(|| version.to_owned())
}

/// Runs the capture script in a fresh scenario and writes its files to
/// `out/openzfs-<version>/`, replacing what was there. Returns that directory.
pub fn capture(guest: &Guest, out: &Path) -> Result<PathBuf> {
    let scenario = guest.scenario()?;
    let version_text = scenario.run("zfs version")?;
    let Some(version) = openzfs_version(&version_text) else {
        bail!("cannot read the OpenZFS version from `zfs version`: {version_text:?}");
    };
    scenario
        .run_with_stdin("cat > /root/zfleet-fixtures.sh", SCRIPT.as_bytes())
        .context("copying fixtures.sh into the guest")?;
    scenario
        .run(&format!("bash /root/zfleet-fixtures.sh {GUEST_DIR}"))
        .context("running fixtures.sh in the guest")?;
    let tar = guest
        .command(&format!("tar -C {GUEST_DIR} -cf - ."))
        .output()?;
    if !tar.status.success() {
        bail!(
            "packing the fixtures failed: {}",
            String::from_utf8_lossy(&tar.stderr)
        );
    }
    drop(scenario);

    let dir = out.join(format!("openzfs-{version}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut untar = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["--no-same-owner", "-xf", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running tar")?;
    if let Some(mut stdin) = untar.stdin.take() {
        std::io::Write::write_all(&mut stdin, &tar.stdout)?;
    }
    let status = untar.wait()?;
    if !status.success() {
        bail!("unpacking the fixtures failed ({status})");
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_zfs_version() {
        assert_eq!(
            openzfs_version("zfs-2.3.2-2~bpo12+2\nzfs-kmod-2.3.2-2~bpo12+2\n").as_deref(),
            Some("2.3.2")
        );
        assert_eq!(openzfs_version("zfs-2.1.11-1\n").as_deref(), Some("2.1.11"));
        assert_eq!(openzfs_version("zfs-fuse 0.7.0"), None);
        assert_eq!(openzfs_version(""), None);
    }
}
