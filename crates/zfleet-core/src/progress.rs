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

/// A byte count for people: `1.5 GiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn byte_counts_read_like_ls_h() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
