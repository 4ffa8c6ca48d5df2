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
//!
//! What a test sees, and what surprised us on the way (zfs-fuse 0.7.0, Debian 12):
//!
//! - Pools are created with `-R <host dir>/root` (altroot), so every dataset
//!   mounts below the host's directory whatever its `mountpoint`, and only in the
//!   host's mount namespace. zfs-fuse sets the root dataset's mountpoint to `/`
//!   when `-R` comes without `-m`, so the lab always passes `-m`. Altroot pools
//!   are not in the cache file: after a zfs-fuse restart they must be imported
//!   again ([`Host::start_zfs`] does).
//! - zfs-fuse's dialect: no `zfs list -p`, no `send -n`; `zfs get -H -p` works.
//! - zfs-fuse syncs a transaction group only every ~30 s, and fsync does not make
//!   a write survive SIGKILL; a `zfs snapshot` does (it waits for its txg).
//! - `zfs-fuse --no-daemon` ignores `-p`; the lab writes the pid file itself.
//!   Without `--no-kstat-mount` it would create `/zfs-kstat` on the machine.
//! - libfaketime 0.9.10 shares a semaphore, named after the first faked process,
//!   with that process's children and deletes it when that process exits; a
//!   daemon started by a short-lived shell then dies at start-up. The lab sets
//!   `FAKETIME_FLSHM=1` and gives each host its own `/dev/shm`.
//! - A frozen clock does not upset zfs-fuse as long as the monotonic clock stays
//!   real (`FAKETIME_DONT_FAKE_MONOTONIC=1`), but [`Host::set_time`] writes an
//!   offset anyway, so clocks keep running.
//! - `useradd` leaves the new account locked (`!`), and with `UsePAM no` sshd
//!   then refuses even key logins: [`Host::add_user`] sets the password to `*`.
//! - With a host's switch port down, ssh to it times out (`ConnectTimeout=5` in
//!   the lab's options) rather than being refused.

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
