//! The daemon's view of running transfers: bytes moved and the sender's
//! estimate for status and `zfleet_transfer_bytes_remaining`, and when each
//! last moved, so that a stalled one is noticed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zfleet_core::progress::{Progress, Transfer};
use zfleet_core::status::TransferNote;

#[derive(Debug)]
struct Entry {
    client: String,
    dataset: String,
    bytes: u64,
    total: Option<u64>,
    moved: Instant,
    stalled_told: bool,
}

#[derive(Debug, Default)]
pub struct Transfers {
    next: AtomicU64,
    running: Mutex<HashMap<u64, Entry>>,
}

/// A running transfer that has not moved for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    pub client: String,
    pub dataset: String,
    pub bytes: u64,
    pub idle: Duration,
}

impl Transfers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes and estimate of the running transfer of `client:dataset`.
    pub fn note(&self, client: &str, dataset: &str) -> Option<TransferNote> {
        self.lock()
            .values()
            .find(|e| e.client == client && e.dataset == dataset)
            .map(|e| TransferNote {
                bytes: e.bytes,
                total: e.total,
            })
    }

    /// Transfers idle for `limit` or more that were not reported yet.
    pub fn newly_stalled(&self, limit: Duration) -> Vec<Stalled> {
        let mut out = Vec::new();
        for e in self.lock().values_mut() {
            let idle = e.moved.elapsed();
            if idle >= limit && !e.stalled_told {
                e.stalled_told = true;
                out.push(Stalled {
                    client: e.client.clone(),
                    dataset: e.dataset.clone(),
                    bytes: e.bytes,
                    idle,
                });
            }
        }
        out
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

/// `client:dataset …` as the engine labels a stream.
fn split_label(label: &str) -> (String, String) {
    let head = label.split_whitespace().next().unwrap_or(label);
    match head.split_once(':') {
        Some((c, d)) => (c.to_string(), d.to_string()),
        None => (String::new(), head.to_string()),
    }
}

/// The daemon's [`Progress`]: it draws nothing and keeps the numbers.
#[derive(Debug, Clone)]
pub struct DaemonProgress(pub Arc<Transfers>);

struct Tracked {
    id: u64,
    all: Arc<Transfers>,
}

impl Progress for DaemonProgress {
    fn transfer(&self, label: &str, total: Option<u64>) -> Box<dyn Transfer> {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        let (client, dataset) = split_label(label);
        tracing::info!(
            "transfer {label}: started{}",
            total.map_or(String::new(), |t| format!(
                ", about {}",
                zfleet_core::progress::human_bytes(t)
            ))
        );
        self.0.lock().insert(
            id,
            Entry {
                client,
                dataset,
                bytes: 0,
                total,
                moved: Instant::now(),
                stalled_told: false,
            },
        );
        Box::new(Tracked {
            id,
            all: self.0.clone(),
        })
    }
}

impl Transfer for Tracked {
    fn advance(&self, bytes: u64) {
        if let Some(e) = self.all.lock().get_mut(&self.id) {
            if bytes > e.bytes {
                e.bytes = bytes;
                e.moved = Instant::now();
                e.stalled_told = false;
            }
        }
    }

    fn finish(&self, bytes: u64, ok: bool) {
        if let Some(e) = self.all.lock().remove(&self.id) {
            tracing::info!(
                "transfer {}:{}: {} after {}",
                e.client,
                e.dataset,
                if ok { "done" } else { "failed" },
                zfleet_core::progress::human_bytes(bytes)
            );
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.all.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_stalls() {
        let all = Arc::new(Transfers::default());
        let p = DaemonProgress(all.clone());
        let t = p.transfer("bravo:zroot/data @a → @b", Some(100));
        t.advance(40);
        assert_eq!(
            all.note("bravo", "zroot/data"),
            Some(TransferNote {
                bytes: 40,
                total: Some(100)
            })
        );
        assert_eq!(all.newly_stalled(Duration::from_secs(3600)), []);
        let s = all.newly_stalled(Duration::ZERO);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].client.as_str(), s[0].bytes), ("bravo", 40));
        // Told once per stall.
        assert!(all.newly_stalled(Duration::ZERO).is_empty());
        t.finish(100, true);
        assert_eq!(all.count(), 0);
    }
}
