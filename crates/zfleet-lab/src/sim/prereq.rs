//! What the machine must offer before a lab can start, checked all at once so the
//! error lists everything that is missing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Programs the lab runs, with the Debian package that ships each.
const PROGRAMS: &[(&str, &str)] = &[
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("setsid", "util-linux"),
    ("ip", "iproute2"),
    ("zfs-fuse", "zfs-fuse"),
    ("zfs", "zfs-fuse"),
    ("zpool", "zfs-fuse"),
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("timeout", "coreutils"),
];

/// Directories searched besides `$PATH`: root's tools live in sbin, which a
/// non-login environment may leave out.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

pub(crate) struct Tools {
    /// sshd insists on being started by absolute path (it re-executes itself).
    pub sshd: PathBuf,
    pub libfaketime: Option<PathBuf>,
    /// `$PATH` for commands in the lab, with the system directories appended.
    pub path: String,
}

/// Checks for root, FUSE, overlayfs and every program; `faketime` adds libfaketime.
pub(crate) fn check(faketime: bool) -> Result<Tools> {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("root: the lab creates namespaces and mounts (run as root)".to_owned());
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse: zfs-fuse needs the FUSE device".to_owned());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("overlay"))
    {
        missing.push("overlayfs in the kernel: each host's /etc is an overlay".to_owned());
    }
    let path = search_path();
    let mut sshd = PathBuf::new();
    for (program, package) in PROGRAMS {
        match find_program(program, &path) {
            Some(found) if *program == "sshd" => sshd = found,
            Some(_) => {}
            None => missing.push(format!("`{program}` (Debian package {package})")),
        }
    }
    let libfaketime = find_libfaketime();
    if faketime && libfaketime.is_none() {
        missing.push(
            "libfaketime.so.1 (Debian package libfaketime; or set ZFLEET_LAB_LIBFAKETIME)"
                .to_owned(),
        );
    }
    if !missing.is_empty() {
        bail!(
            "the simulated-host lab cannot start; missing:\n  - {}\nhint: apt-get install zfs-fuse openssh-server openssh-client faketime iproute2 util-linux",
            missing.join("\n  - ")
        );
    }
    Ok(Tools {
        sshd,
        libfaketime,
        path,
    })
}

fn search_path() -> String {
    let mut dirs: Vec<String> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    for d in SYSTEM_DIRS {
        if !dirs.iter().any(|x| x == d) {
            dirs.push((*d).to_owned());
        }
    }
    dirs.join(":")
}

fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':').map(|d| Path::new(d).join(name)).find(|p| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

fn find_libfaketime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ZFLEET_LAB_LIBFAKETIME") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    // Debian installs it under the multiarch directory; look at each of them.
    let mut candidates = vec![PathBuf::from("/usr/lib/faketime/libfaketime.so.1")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        candidates.extend(
            entries
                .flatten()
                .map(|e| e.path().join("faketime/libfaketime.so.1")),
        );
    }
    candidates.sort();
    candidates.into_iter().find(|p| p.is_file())
}
