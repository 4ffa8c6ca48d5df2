//! Where this host can read a snapshot's files: its `.zfs/snapshot/NAME`
//! when the dataset is mounted and the directory is there, otherwise a
//! temporary read-only clone (zfs-fuse has no `.zfs`; OpenZFS backups are
//! received unmounted). A clone is marked `zfleet:verify=<pid>` and removed
//! when the view is dropped; one whose process is gone (a killed run) is
//! removed by the next view on that pool. Nothing else is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::walk::{self, WalkOptions, Walked};
use crate::exec::Argv;
use crate::host::Host;
use crate::zfs::{cmd, DatasetName, SnapshotName};
use crate::Error;

/// The property that marks a verify clone as zfleet's (value: the pid).
pub const CLONE_MARK: &str = "zfleet:verify";

pub struct SnapshotView<'a> {
    pub dir: PathBuf,
    host: &'a Host,
    clone: Option<DatasetName>,
}

impl Drop for SnapshotView<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.clone.take() {
            remove_clone(self.host, &c);
        }
    }
}

fn remove_clone(host: &Host, c: &DatasetName) {
    let _ = host.query(&cmd::unmount(c));
    if let Err(e) = crate::restore::exec::retry_busy(host, &cmd::destroy_dataset(c)) {
        tracing::warn!("the temporary clone {c} could not be destroyed: {e}");
    }
}

fn get_values(host: &Host, props: &str, ds: &DatasetName) -> Result<Vec<String>, Error> {
    let argv = cmd::zfs()
        .args(["get", "-H", "-o", "value", props])
        .arg(ds.as_str());
    Ok(host
        .query(&argv)?
        .stdout_text()
        .lines()
        .map(str::to_string)
        .collect())
}

/// Opens `snap` for reading on `host` (this machine).
pub fn open<'a>(host: &'a Host, snap: &SnapshotName) -> Result<SnapshotView<'a>, Error> {
    let v = get_values(host, "mounted,mountpoint", &snap.dataset)?;
    if let [mounted, mp] = v.as_slice() {
        if mounted == "yes" && mp.starts_with('/') {
            let dir = Path::new(mp).join(".zfs/snapshot").join(&snap.name);
            if dir.is_dir() {
                return Ok(SnapshotView {
                    dir,
                    host,
                    clone: None,
                });
            }
        }
    }
    let pool = DatasetName::parse(snap.dataset.pool().as_str())?;
    remove_leftovers(host, &pool);
    let pid = std::process::id();
    let leaf = format!("zfleet-verify-{pid}-{}", unique());
    let clone = pool.join(&leaf)?;
    let mp = format!("/run/zfleet/verify/{leaf}");
    let pid_word = pid.to_string();
    host.query(&cmd::clone(
        snap,
        &clone,
        &[
            ("readonly", "on"),
            ("mountpoint", &mp),
            (CLONE_MARK, &pid_word),
        ],
    ))?;
    let mut view = SnapshotView {
        dir: PathBuf::new(),
        host,
        clone: Some(clone.clone()),
    };
    let v = get_values(host, "mounted,mountpoint", &clone)?;
    if v.first().map(String::as_str) != Some("yes") {
        host.query(&cmd::mount(&clone))?;
    }
    let v = get_values(host, "mountpoint", &clone)?;
    view.dir = PathBuf::from(v.first().cloned().unwrap_or(mp));
    Ok(view)
}

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Destroys verify clones on `pool` whose process is gone.
fn remove_leftovers(host: &Host, pool: &DatasetName) {
    let argv = cmd::zfs()
        .args(["list", "-H", "-o"])
        .arg(format!("name,{CLONE_MARK}"))
        .args(["-t", "filesystem", "-r"])
        .arg(pool.as_str());
    let Ok(out) = host.query(&argv) else { return };
    for line in out.stdout_text().lines() {
        let Some((name, pid)) = line.split_once('\t') else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if alive {
            continue;
        }
        if let Ok(ds) = DatasetName::parse(name) {
            tracing::info!("removing {ds}, left by an interrupted verify (pid {pid})");
            remove_clone(host, &ds);
        }
    }
}

/// Walks `snap` on this machine, handing entries to `emit`.
pub fn walk_snapshot(
    host: &Host,
    snap: &SnapshotName,
    opts: WalkOptions,
    emit: &mut dyn FnMut(super::Entry) -> std::io::Result<()>,
) -> Result<Walked, Error> {
    let view = open(host, snap)?;
    walk::walk(&view.dir, opts, emit).map_err(|e| io_err(host, snap, &view.dir, e))
}

/// What `zfleet checksum` (and serve's `zfleet checksum` request) writes:
/// the listing of `snap` on this machine.
pub fn write_snapshot_listing(
    snap: &SnapshotName,
    opts: WalkOptions,
    out: &mut dyn Write,
) -> Result<Walked, Error> {
    let host = Host::local("localhost");
    let view = open(&host, snap)?;
    walk::write_listing(&view.dir, opts, out).map_err(|e| io_err(&host, snap, &view.dir, e))
}

fn io_err(host: &Host, snap: &SnapshotName, dir: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!(
        "on {}: walking {snap} at {}: {e}",
        host.name,
        dir.display()
    ))
}

/// The command that lists `snap` on a remote host: `zfleet checksum …`
/// (what serve accepts, or the zfleet program over plain ssh).
pub fn checksum_argv(program: &str, snap: &SnapshotName, opts: &WalkOptions) -> Argv {
    let mut a = Argv::new(program)
        .arg("checksum")
        .arg(snap.to_string())
        .args(["--sample".to_string(), opts.sample.word()]);
    if let Some(r) = opts.rate {
        a = a.args(["--rate".to_string(), r.to_string()]);
    }
    a
}
