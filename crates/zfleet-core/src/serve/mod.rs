//! `zfleet serve`: the forced command of the backup account. It reads the
//! request from `SSH_ORIGINAL_COMMAND`, allows exactly the commands a backup
//! server (or a push client, or a granted restore) needs for this host's
//! datasets, runs them without a shell, and refuses and logs everything else.

mod holds;
/// Resume tokens are a ZFS format, decoded in `zfs`; serve checks them.
pub use crate::zfs::resume_token as token;
pub mod policy;
pub mod request;
mod run;

pub use policy::{authorize, Mode, Op, OpKind, Stream, ZSTD_PREFIX};
pub use run::{serve, Banner, ServeLog, REFUSED, SERVE_BANNER};

/// Why a request was refused; shown to the caller and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
}

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}
