//! Helpers shared by the lab's integration tests: prerequisites, and an inventory
//! of what a lab may leave behind on the machine.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Fails the test (never skips it) when the machine cannot run a lab.
pub fn require_lab() {
    if let Err(e) = zfleet_lab::sim::check_prerequisites(true) {
        panic!("these tests need a machine that can run the simulated-host lab: {e:#}");
    }
}

/// Every process's network namespace, as `net:[inode]`.
pub fn net_namespaces() -> BTreeSet<String> {
    namespaces_of_all("net")
}

fn namespaces_of_all(kind: &str) -> BTreeSet<String> {
    pids()
        .filter_map(|pid| fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

/// The namespaces (net, pid, mnt, uts) that `pid` lives in and we do not (the
/// switch, for one, shares the machine's mount and uts namespaces).
pub fn namespaces_of(pid: u32) -> BTreeSet<String> {
    let ours = all_namespaces_of(std::process::id());
    all_namespaces_of(pid).difference(&ours).cloned().collect()
}

fn all_namespaces_of(pid: u32) -> BTreeSet<String> {
    ["net", "pid", "mnt", "uts"]
        .iter()
        .filter_map(|k| fs::read_link(format!("/proc/{pid}/ns/{k}")).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect()
}

/// Interfaces of the machine's own network namespace.
pub fn root_links() -> BTreeSet<String> {
    fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// What is left of a lab on the machine; empty means nothing.
#[derive(Debug, Default)]
pub struct Residue {
    /// Processes whose command line names the lab directory (init, zfs-fuse, sshd).
    pub processes: Vec<String>,
    /// Processes still inside one of the lab's namespaces.
    pub in_namespaces: Vec<String>,
    /// Mount table lines, of any process, that name the lab directory.
    pub mounts: Vec<String>,
    /// Network namespaces that did not exist before the lab.
    pub new_net_namespaces: BTreeSet<String>,
    /// Interfaces of the machine's namespace that did not exist before the lab.
    pub new_root_links: BTreeSet<String>,
    pub dir_exists: bool,
}

impl Residue {
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.in_namespaces.is_empty()
            && self.mounts.is_empty()
            && self.new_net_namespaces.is_empty()
            && self.new_root_links.is_empty()
            && !self.dir_exists
    }
}

/// A snapshot of the machine taken before a lab starts.
pub struct Before {
    net: BTreeSet<String>,
    links: BTreeSet<String>,
}

pub fn before() -> Before {
    Before {
        net: net_namespaces(),
        links: root_links(),
    }
}

pub fn residue(before: &Before, dir: &Path, lab_namespaces: &BTreeSet<String>) -> Residue {
    let needle = dir.to_string_lossy().into_owned();
    let mut r = Residue {
        dir_exists: dir.exists(),
        // Only this lab's: other labs (parallel test binaries, other people's
        // runs on a shared machine) come and go at the same time.
        new_net_namespaces: net_namespaces()
            .difference(&before.net)
            .filter(|n| lab_namespaces.contains(*n))
            .cloned()
            .collect(),
        new_root_links: root_links().difference(&before.links).cloned().collect(),
        ..Residue::default()
    };
    let me = std::process::id();
    for pid in pids().filter(|&p| p != me) {
        let Some(cmd) = cmdline(pid) else { continue };
        if cmd.contains(&needle) {
            r.processes.push(format!("{pid}: {cmd}"));
        }
        if !all_namespaces_of(pid).is_disjoint(lab_namespaces) {
            r.in_namespaces.push(format!("{pid}: {cmd}"));
        }
        if let Ok(mounts) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) {
            r.mounts.extend(
                mounts
                    .lines()
                    .filter(|l| l.contains(&needle))
                    .map(|l| format!("{pid}: {l}")),
            );
        }
    }
    r
}

/// Waits up to `timeout` for the lab to have left nothing, then fails with the
/// inventory of what is left.
pub fn assert_nothing_left(
    before: &Before,
    dir: &Path,
    lab_namespaces: &BTreeSet<String>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let r = residue(before, dir, lab_namespaces);
        if r.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("the lab left something behind after {timeout:?}: {r:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
