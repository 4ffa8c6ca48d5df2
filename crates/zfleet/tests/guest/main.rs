//! zfleet on real OpenZFS 2.x: the qemu guest, one boot for every test here
//! (tests take turns through its scenario lock). When the machine cannot run
//! the guest each test prints `SKIPPED: …` and passes; `ZFLEET_LAB_GUEST=require`
//! makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod disks;
mod replication;
mod restore;
mod support;
mod sync;
mod unlock;
mod verify;
