//! The zfleet test lab.
//!
//! `sim`: simulated hosts — each a set of Linux namespaces with its own zfs-fuse
//! daemon, pools on file vdevs and sshd — for everyday behaviour tests.
//! `guest`: an OpenZFS 2.x qemu guest built from Debian packages, for the features
//! zfs-fuse lacks (encryption, raw sends, bookmarks, resume tokens, holds, allow).

pub mod bench;
pub mod bench_daemon;
pub mod demo;
pub mod fleet;
pub mod guest;
pub mod sim;
