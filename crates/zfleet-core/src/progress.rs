//! How the engine reports long work without printing: the CLI draws progress
//! bars on a terminal and log lines elsewhere; the daemon keeps counters.

/// One transfer (a `zfs send | zfs recv` stream).
pub trait Transfer: Send + Sync {
    /// Bytes moved so far; called often, must be cheap.
    fn advance(&self, bytes: u64);
    /// The transfer ended (successfully or not); `bytes` is the total moved.
    fn finish(&self, bytes: u64, ok: bool);
}

/// Creates transfers. `total` is the sender's size estimate, when the dialect has one.
pub trait Progress: Send + Sync {
    fn transfer(&self, label: &str, total: Option<u64>) -> Box<dyn Transfer>;
}

/// Reports nothing: for tests and `--quiet`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn transfer(&self, _label: &str, _total: Option<u64>) -> Box<dyn Transfer> {
        Box::new(Silent)
    }
}

impl Transfer for Silent {
    fn advance(&self, _bytes: u64) {}
    fn finish(&self, _bytes: u64, _ok: bool) {}
}

pub use crate::words::human_bytes;
