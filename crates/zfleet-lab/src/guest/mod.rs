//! OpenZFS 2.x qemu guest built from Debian packages.
//!
//! zfs-fuse lacks native encryption, raw sends, bookmarks, resume tokens,
//! working holds and `zfs allow`; this guest runs the real kernel module so
//! tests can prove those paths.
//!
//! - [`Image`]: built once per [`Recipe`] by `guest/build-image.sh`, cached in
//!   [`cache_root`] (`zfleet-lab guest build`).
//! - [`Guest`]: one qemu (TCG) booted from a throwaway overlay with fresh pool
//!   disks, reached over ssh on a loopback port with a pinned host key.
//! - [`shared_guest`] / [`guest_or_skip`]: one guest per test process.
//! - [`Scenario`]: a client pool and a backup-server pool, optionally behind
//!   their own network namespaces and sshd.
//! - [`fixtures`]: captures real `zfs`/`zpool` output for zfleet-core's parsers.

pub mod cli;
pub mod fixtures;
mod image;
mod scenario;
mod shared;
mod supervise;
mod vm;

pub use image::{
    cache_root, ensure_host_packages, prune_cache, Image, Recipe, ZfsSuite, CACHE_ENV, SUITE_ENV,
};
pub use scenario::{Scenario, ScenarioOptions, CLIENT_HOST, CLIENT_POOL, SERVER_HOST, SERVER_POOL};
pub use shared::{availability, guest_or_skip, shared_guest, Availability, Unavailable, GUEST_ENV};
pub use vm::{shell_quote, Guest, GuestCommand, GuestConfig, RUN_DIR_ENV, SSH_CONFIG_HOST};
