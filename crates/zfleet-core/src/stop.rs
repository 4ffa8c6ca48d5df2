//! Stopping running transfers from outside the engine: the daemon on
//! SIGTERM (every transfer of the process) and when one makes no progress
//! (that one). A stop kills the stream's sending process (SIGKILL: an ssh
//! session may not end on SIGTERM while its remote side is stopped), so the
//! receiver reads a stream that ends early and discards it (or keeps a
//! resume token with `receive -s`): the target stays at its last complete
//! snapshot, and the next run continues from there. A receiver that does not
//! take even that end ([`escalate`]) is killed too.
//!
//! Process-wide on purpose: a shutdown concerns every transfer, wherever
//! the engine started it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The process is shutting down.
    Shutdown,
    /// No byte moved for the stall timeout.
    Stalled,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    /// `client:dataset`, as the stream's label starts.
    label: String,
    sender: Option<u32>,
    receiver: Option<u32>,
    reason: Option<StopReason>,
    stopped_at: Option<std::time::Instant>,
}

static STOPPING: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(0);
static RUNNING: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

fn end(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

impl Entry {
    fn stop(&mut self, why: StopReason) -> bool {
        if self.reason.is_some() {
            return false;
        }
        self.reason = Some(why);
        self.stopped_at = Some(std::time::Instant::now());
        end(self.sender);
        true
    }
}

/// A running stream, registered by the engine while it runs; dropping it
/// takes it off the list.
#[derive(Debug)]
pub struct Registration {
    id: u64,
}

/// Registers the stream `label` whose sending and receiving processes are
/// `sender` and `receiver` (a local `zfs send`, or the ssh session that runs
/// it; the same for the receiver). During a shutdown it is stopped at once.
pub fn register(label: &str, sender: Option<u32>, receiver: Option<u32>) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let head = label.split_whitespace().next().unwrap_or(label).to_string();
    let mut e = Entry {
        id,
        label: head,
        sender,
        receiver,
        reason: None,
        stopped_at: None,
    };
    if STOPPING.load(Ordering::SeqCst) {
        e.stop(StopReason::Shutdown);
    }
    running().push(e);
    Registration { id }
}

/// Kills the receiver of every stream stopped more than `grace` ago that
/// still runs (a receiver that hangs instead of reading the end).
pub fn escalate(grace: std::time::Duration) {
    for e in running().iter_mut() {
        if e.stopped_at.is_some_and(|t| t.elapsed() >= grace) {
            end(e.receiver.take());
        }
    }
}

impl Registration {
    /// Why the stream was stopped from outside, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        running()
            .iter()
            .find(|e| e.id == self.id)
            .and_then(|e| e.reason)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        running().retain(|e| e.id != self.id);
    }
}

/// Stops every running stream, and every one started from now on.
pub fn request_stop() {
    STOPPING.store(true, Ordering::SeqCst);
    for e in running().iter_mut() {
        e.stop(StopReason::Shutdown);
    }
}

/// Whether a shutdown was asked for: long loops stop starting new work.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Stops the stream of `client:dataset` because it stalled.
pub fn request_stall(client: &str, dataset: &str) -> bool {
    let want = format!("{client}:{dataset}");
    let mut found = false;
    for e in running().iter_mut().filter(|e| e.label == want) {
        found |= e.stop(StopReason::Stalled);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_stops_its_stream_and_names_why() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut recv = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let r = register(
            "alpha:zroot/data @a → @b",
            Some(child.id()),
            Some(recv.id()),
        );
        let other = register("bravo:zroot/data full @a", None, None);
        assert_eq!(r.reason(), None);
        assert!(request_stall("alpha", "zroot/data"));
        assert_eq!(r.reason(), Some(StopReason::Stalled));
        assert_eq!(other.reason(), None);
        // The sender is killed; the receiver only once the grace has passed.
        let status = child.wait().unwrap();
        assert!(!status.success());
        escalate(std::time::Duration::from_secs(3600));
        assert!(recv.try_wait().unwrap().is_none());
        escalate(std::time::Duration::ZERO);
        assert!(!recv.wait().unwrap().success());
        drop(r);
        assert!(!request_stall("alpha", "zroot/data"));
    }
}
