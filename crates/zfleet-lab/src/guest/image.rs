//! The guest image: its recipe, where it is cached, and how it gets built.
//!
//! The image is built by `guest/build-image.sh` (embedded here, so the binary
//! needs no checkout) and cached under [`cache_root`] in a directory named by
//! the hash of the recipe. The script makes that directory appear by one
//! rename, so its existence means the image is complete.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

const BUILD_SCRIPT: &str = include_str!("../../guest/build-image.sh");
const HOST_PACKAGES_SCRIPT: &str = include_str!("../../guest/host-packages.sh");

/// Overrides [`cache_root`].
pub const CACHE_ENV: &str = "ZFLEET_LAB_CACHE";
/// Overrides the default [`ZfsSuite`] (`bookworm` or `bookworm-backports`).
pub const SUITE_ENV: &str = "ZFLEET_LAB_ZFS_SUITE";

/// Which Debian suite the kernel and OpenZFS come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZfsSuite {
    /// OpenZFS 2.1.11 on kernel 6.1.
    Bookworm,
    /// OpenZFS 2.3.x on kernel 6.12: the newer one, and what most fleets run.
    #[default]
    BookwormBackports,
}

impl ZfsSuite {
    pub fn as_str(self) -> &'static str {
        match self {
            ZfsSuite::Bookworm => "bookworm",
            ZfsSuite::BookwormBackports => "bookworm-backports",
        }
    }

    /// The suite named by `ZFLEET_LAB_ZFS_SUITE`, or the default.
    pub fn from_env() -> Result<Self> {
        match std::env::var(SUITE_ENV) {
            Ok(value) if !value.is_empty() => value.parse(),
            _ => Ok(ZfsSuite::default()),
        }
    }
}

impl FromStr for ZfsSuite {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bookworm" => Ok(ZfsSuite::Bookworm),
            "bookworm-backports" => Ok(ZfsSuite::BookwormBackports),
            other => {
                bail!("unknown ZFS suite `{other}`; expected `bookworm` or `bookworm-backports`")
            }
        }
    }
}

impl fmt::Display for ZfsSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that decides the content of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recipe {
    pub suite: ZfsSuite,
}

impl Recipe {
    pub fn new(suite: ZfsSuite) -> Self {
        Recipe { suite }
    }

    pub fn from_env() -> Result<Self> {
        Ok(Recipe::new(ZfsSuite::from_env()?))
    }

    /// Names the cache directory: the build script's text and the package
    /// choice, so any edit to either yields a fresh image.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"zfleet-lab guest recipe 1\0");
        hasher.update(BUILD_SCRIPT.as_bytes());
        hasher.update(b"\0");
        hasher.update(self.suite.as_str().as_bytes());
        let digest = hasher.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Where this recipe's image lives once built.
    pub fn dir(&self) -> PathBuf {
        cache_root().join(self.hash())
    }
}

/// `$ZFLEET_LAB_CACHE`, or `/var/cache/zfleet-lab/guest`: outside any clone, so
/// every checkout and CI run on the machine shares one image per recipe.
pub fn cache_root() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/var/cache/zfleet-lab/guest"),
    }
}

/// A complete, cached guest image.
#[derive(Debug, Clone)]
pub struct Image {
    dir: PathBuf,
    manifest: BTreeMap<String, String>,
}

impl Image {
    /// The image for `recipe` if it has been built.
    pub fn cached(recipe: &Recipe) -> Result<Option<Image>> {
        let dir = recipe.dir();
        if !dir.join("manifest").exists() {
            return Ok(None);
        }
        Image::open(&dir).map(Some)
    }

    /// Opens an image directory made by the build script.
    pub fn open(dir: &Path) -> Result<Image> {
        let path = dir.join("manifest");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let manifest = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let image = Image {
            dir: dir.to_owned(),
            manifest,
        };
        for file in [
            image.vmlinuz(),
            image.initrd(),
            image.rootfs(),
            image.client_key(),
            image.host_key_pub(),
        ] {
            if !file.exists() {
                bail!("guest image {} lacks {}", dir.display(), file.display());
            }
        }
        Ok(image)
    }

    /// Builds the image for `recipe` unless it is cached. Installs the host
    /// packages it needs first (which needs root, as does debootstrap).
    pub fn build(recipe: &Recipe) -> Result<Image> {
        if let Some(image) = Image::cached(recipe)? {
            return Ok(image);
        }
        ensure_host_packages()?;
        let started = Instant::now();
        tracing::info!(recipe = %recipe.hash(), suite = %recipe.suite, "building guest image");
        let status = Command::new("bash")
            .arg("-c")
            .arg(BUILD_SCRIPT)
            .arg("build-image.sh")
            .arg(cache_root())
            .arg(recipe.hash())
            .arg(recipe.suite.as_str())
            // Nothing in the build may wait for a terminal.
            .stdin(Stdio::null())
            .env("LC_ALL", "C.UTF-8")
            .status()
            .context("running build-image.sh")?;
        if !status.success() {
            bail!("building the guest image failed ({status}); its log is above");
        }
        let image = Image::open(&recipe.dir())?;
        tracing::info!(elapsed = ?started.elapsed(), dir = %image.dir.display(), "guest image ready");
        Ok(image)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs.raw")
    }
    /// Private key that root and `zbackup` in the guest accept.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    /// The guest's sshd host key, fixed at build time so it can be pinned.
    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key.pub")
    }

    /// A value from the manifest the build wrote (`zfs_version`, `kernel`,
    /// `zfs_suite`, `recipe`, `built`, `build_seconds`).
    pub fn manifest(&self, key: &str) -> Option<&str> {
        self.manifest.get(key).map(String::as_str)
    }

    /// Debian version of zfsutils-linux in the image, e.g. `2.3.2-2~bpo12+2`.
    pub fn zfs_package_version(&self) -> &str {
        self.manifest("zfs_version").unwrap_or("unknown")
    }

    pub fn build_time(&self) -> Option<Duration> {
        self.manifest("build_seconds")
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
    }
}

/// Removes cached images of recipes this build of zfleet-lab no longer makes
/// (an edited build script leaves the old image behind). Returns what it removed.
pub fn prune_cache() -> Result<Vec<PathBuf>> {
    let keep: Vec<String> = [ZfsSuite::Bookworm, ZfsSuite::BookwormBackports]
        .into_iter()
        .map(|suite| Recipe::new(suite).hash())
        .collect();
    let root = cache_root();
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(err) => return Err(err).with_context(|| format!("reading {}", root.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Only what the build script names: 16 hex digits. Work directories
        // (.tmp-*) are the build script's, cleaned under its lock.
        let is_image = name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_image && !keep.contains(&name) && entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// Installs qemu, debootstrap and friends when any is missing.
pub fn ensure_host_packages() -> Result<()> {
    let status = Command::new("bash")
        .arg("-c")
        .arg(HOST_PACKAGES_SCRIPT)
        .arg("host-packages.sh")
        .stdin(Stdio::null())
        .status()
        .context("running host-packages.sh")?;
    if !status.success() {
        bail!("installing the host packages for the guest failed ({status})");
    }
    Ok(())
}

/// Whether the host tools needed to boot a built image are on `PATH`.
pub fn missing_boot_tools() -> Vec<&'static str> {
    ["qemu-system-x86_64", "qemu-img", "ssh"]
        .into_iter()
        .filter(|tool| which(tool).is_none())
        .collect()
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_hash_depends_on_suite_and_is_stable() {
        let a = Recipe::new(ZfsSuite::Bookworm);
        let b = Recipe::new(ZfsSuite::BookwormBackports);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), Recipe::new(ZfsSuite::Bookworm).hash());
        assert_eq!(a.hash().len(), 16);
    }

    #[test]
    fn suite_parses_its_own_names_only() {
        for suite in [ZfsSuite::Bookworm, ZfsSuite::BookwormBackports] {
            assert_eq!(suite.as_str().parse::<ZfsSuite>().unwrap(), suite);
        }
        assert!("trixie".parse::<ZfsSuite>().is_err());
    }

    #[test]
    fn image_without_its_files_is_rejected() {
        let dir =
            std::env::temp_dir().join(format!("zfleet-lab-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest"), "zfs_version=2.3.2\nbuild_seconds=7\n").unwrap();
        let err = Image::open(&dir).unwrap_err();
        assert!(err.to_string().contains("lacks"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
