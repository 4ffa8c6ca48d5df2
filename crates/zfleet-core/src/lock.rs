//! Per-host locks in the state directory, so that two zfleet runs on one host
//! never work on the same thing at once (two timers overlapping, a manual run
//! during a scheduled one).
//!
//! A lock is `flock(2)` on `<state_dir>/<name>.lock`: the kernel drops it when
//! the holder exits, however it exits, so a dead process never leaves a stale
//! lock behind (sanoid's pid files need a `ps` check for that). The holder
//! writes its pid into the file, which is only for messages.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is held by {}", path.display(), holder(*pid))]
    Busy { path: PathBuf, pid: Option<u32> },
    #[error("cannot use the lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("another zfleet process (pid {p})"),
        None => "another zfleet process".to_string(),
    }
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    // Closing the file releases the flock.
    _file: File,
}

impl Lock {
    /// Takes `<dir>/<name>.lock`, waiting up to `wait` for another holder to
    /// finish (`Duration::ZERO`: fail at once).
    pub fn acquire(dir: &Path, name: &str, wait: Duration) -> Result<Lock, LockError> {
        let path = dir.join(format!("{name}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let start = Instant::now();
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    if start.elapsed() >= wait {
                        return Err(LockError::Busy {
                            pid: read_pid(&mut file),
                            path,
                        });
                    }
                    thread::sleep(
                        Duration::from_millis(50).min(wait.saturating_sub(start.elapsed())),
                    );
                }
                Err(e) => return Err(io(e.into())),
            }
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Lock { path, _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "alpha", Duration::ZERO).unwrap();
        let e = Lock::acquire(dir.path(), "alpha", Duration::from_millis(120)).unwrap_err();
        let me = std::process::id();
        assert!(
            matches!(e, LockError::Busy { pid: Some(p), .. } if p == me),
            "{e}"
        );
        assert!(e.to_string().ends_with(&format!(
            "alpha.lock is held by another zfleet process (pid {me})"
        )));
        // Other names are other locks.
        drop(Lock::acquire(dir.path(), "bravo", Duration::ZERO).unwrap());
        drop(first);
        Lock::acquire(dir.path(), "alpha", Duration::ZERO).unwrap();
    }

    #[test]
    fn a_dead_holder_leaves_no_stale_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alpha.lock");
        // A child process takes the lock and is killed while holding it.
        let mut child = std::process::Command::new("perl")
            .args([
                "-e",
                "use Fcntl ':flock'; open F, '>>', $ARGV[0] or die; flock F, LOCK_EX; sleep 30",
            ])
            .arg(&path)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while Lock::acquire(dir.path(), "alpha", Duration::ZERO).is_ok() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "child never took the lock"
            );
            thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        Lock::acquire(dir.path(), "alpha", Duration::from_secs(2)).unwrap();
    }

    #[test]
    fn waiting_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "alpha", Duration::ZERO).unwrap();
        let d = dir.path().to_path_buf();
        let waiter =
            thread::spawn(move || Lock::acquire(&d, "alpha", Duration::from_secs(5)).map(drop));
        thread::sleep(Duration::from_millis(150));
        drop(first);
        waiter.join().unwrap().unwrap();
    }
}
