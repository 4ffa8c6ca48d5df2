//! zfleet's engine. This crate never prints: it returns values and reports
//! progress through traits, so the CLI and the daemon render the same results.
//!
//! Commands that change something go observe → plan → execute: observation
//! reads real state in as few `zfs` calls as possible, planning is a pure
//! function of (config, observation, now), and execution runs the plan.

pub mod clock;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod exec;
pub mod export;
pub mod failure;
pub mod grant;
pub mod host;
pub mod init;
pub mod layout;
pub mod lock;
pub mod parallel;
pub mod progress;
pub mod protocol;
pub mod replicate;
pub mod restore;
pub mod root;
pub mod runtime;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod stop;
pub mod syncoid;
pub mod text;
pub mod transfer;
pub mod unlock;
pub mod verify;
pub mod words;
pub mod zfs;

mod error;

pub use error::{Error, ErrorKind};
