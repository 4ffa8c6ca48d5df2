//! Simulated hosts on zfs-fuse in namespaces.
//!
//! A [`Lab`] is a set of hosts, each a tree of Linux namespaces (mount, network,
//! uts, pid) started by util-linux `unshare`, running its own `zfs-fuse` with
//! pools on sparse file vdevs and its own `sshd`, all joined by a private switch
//! namespace. Everything lives below one directory per lab
//! (`/tmp/zfleet-lab/<name>-<pid>-<n>`) and dies with the thread that started it.
//!
//! ```no_run
//! use zfleet_lab::sim::{Lab, LabSpec};
//! # fn main() -> anyhow::Result<()> {
//! let lab = Lab::start(&LabSpec::seed())?;
//! let client = lab.host("client1")?;
//! client.sh("zfs snapshot zroot/persist@a")?;
//! let out = client.run(client.ssh(lab.host("backup")?).arg("zfs list -H -o name"))?;
//! assert!(out.contains("zstorage/backups"));
//! lab.teardown()?;
//! # Ok(()) }
//! ```
//!
//! The death chain: each `unshare` is spawned with `PR_SET_PDEATHSIG=SIGKILL`, so
//! it dies with the thread that spawned it; `unshare --kill-child` passes SIGKILL on
//! to the namespace's pid 1; when pid 1 of a pid namespace dies the kernel kills
//! every other process in it (zfs-fuse, sshd, sessions); and the network and
//! mount namespaces, with their veths and FUSE mounts, vanish with their last
//! process. What the kernel cannot remove is the lab's directory: the next
//! [`Lab::start`] removes directories whose owner process is gone.

mod host;
mod lab;
mod prereq;
mod process;
mod spec;
mod tree;

pub use host::{Host, DEFAULT_TIMEOUT};
pub use lab::Lab;
pub use spec::{DatasetSpec, HostSpec, LabSpec, PoolSpec, DEFAULT_ROOT, DEFAULT_VDEV_SIZE};

/// Checks what [`Lab::start`] needs (root, /dev/fuse, overlayfs, zfs-fuse, sshd,
/// util-linux, iproute2, and libfaketime if `faketime`), naming everything missing.
pub fn check_prerequisites(faketime: bool) -> anyhow::Result<()> {
    prereq::check(faketime).map(drop)
}
