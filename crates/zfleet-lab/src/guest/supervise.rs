//! Child processes that must not outlive the guest that started them.
//!
//! Three layers, because each covers a way of dying the others miss:
//!
//! 1. [`Supervisor::stop`] (also run by `Drop`) kills and reaps the children
//!    when the guest is dropped normally or while a test panics.
//! 2. Every child gets `PR_SET_PDEATHSIG(SIGKILL)`, so the kernel kills it when
//!    its parent goes away, even when the test process is killed outright. The
//!    kernel's "parent" here is the *thread* that forked, not the process: a
//!    child spawned from a libtest worker thread would be killed as soon as
//!    that one test returned. So children are spawned from the supervisor's
//!    own thread, which lives exactly as long as the guest that owns it — or,
//!    for a guest stored in a `static`, until the process exits.
//! 3. [`Reaper`] removes the run directory: a tiny `sh` in its own process
//!    group that blocks reading a pipe only we hold open. When our process
//!    ends, however it ends, the kernel closes the pipe and the shell removes
//!    the directory. Nothing in a `static` is ever dropped, so without it a
//!    shared guest would leave its run directory behind.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// A child of the supervisor thread, by the order it was spawned in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildId(usize);

enum Request {
    Spawn(Box<Command>, mpsc::Sender<io::Result<ChildId>>),
}

#[derive(Debug, Default)]
struct Exits {
    status: Vec<Option<ExitStatus>>,
    pids: Vec<u32>,
}

/// Owns child processes from a dedicated thread; see the module docs.
pub struct Supervisor {
    requests: Option<mpsc::Sender<Request>>,
    exits: Arc<Mutex<Exits>>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn start(name: &str) -> Result<Supervisor> {
        let (tx, rx) = mpsc::channel();
        let exits = Arc::new(Mutex::new(Exits::default()));
        let thread_exits = Arc::clone(&exits);
        let thread = thread::Builder::new()
            .name(format!("{name}-supervisor"))
            .spawn(move || supervise(rx, thread_exits))
            .context("starting the supervisor thread")?;
        Ok(Supervisor {
            requests: Some(tx),
            exits,
            thread: Some(thread),
        })
    }

    /// Spawns `command` as a child of the supervisor thread, with
    /// `PR_SET_PDEATHSIG(SIGKILL)`.
    pub fn spawn(&self, command: Command) -> Result<ChildId> {
        let requests = self
            .requests
            .as_ref()
            .ok_or_else(|| anyhow!("supervisor already stopped"))?;
        let program = command.get_program().to_string_lossy().into_owned();
        let (tx, rx) = mpsc::channel();
        requests
            .send(Request::Spawn(Box::new(command), tx))
            .map_err(|_| anyhow!("supervisor thread is gone"))?;
        let spawned = rx
            .recv()
            .map_err(|_| anyhow!("supervisor thread is gone"))?;
        spawned.with_context(|| format!("spawning {program}"))
    }

    /// The exit status if the child has exited (checked every 100 ms).
    pub fn exit_status(&self, id: ChildId) -> Option<ExitStatus> {
        let exits = lock(&self.exits);
        exits.status.get(id.0).copied().flatten()
    }

    pub fn pid(&self, id: ChildId) -> Option<u32> {
        lock(&self.exits).pids.get(id.0).copied()
    }

    /// Kills all children and waits for them and the thread.
    pub fn stop(&mut self) {
        // Closing the channel is the stop signal.
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("supervisor thread panicked");
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop teardown.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn supervise(requests: mpsc::Receiver<Request>, exits: Arc<Mutex<Exits>>) {
    let mut children: Vec<Option<Child>> = Vec::new();
    loop {
        match requests.recv_timeout(Duration::from_millis(100)) {
            Ok(Request::Spawn(mut command, reply)) => {
                let result = die_with_parent(&mut command).and_then(|()| command.spawn());
                let result = result.map(|child| {
                    let mut exits = lock(&exits);
                    exits.status.push(None);
                    exits.pids.push(child.id());
                    children.push(Some(child));
                    ChildId(children.len() - 1)
                });
                let _ = reply.send(result);
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut exits = lock(&exits);
                for (i, slot) in children.iter_mut().enumerate() {
                    if let Some(child) = slot {
                        if let Ok(Some(status)) = child.try_wait() {
                            exits.status[i] = Some(status);
                            *slot = None;
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Newest first: the ssh master goes before the qemu it talks to.
    for (i, slot) in children.iter_mut().enumerate().rev() {
        if let Some(mut child) = slot.take() {
            let status = kill_and_wait(&mut child);
            lock(&exits).status[i] = status;
        }
    }
}

fn kill_and_wait(child: &mut Child) -> Option<ExitStatus> {
    // SIGKILL: the guest is throwaway, there is nothing to flush.
    let _ = child.kill();
    child.wait().ok()
}

/// Arranges for the child to get SIGKILL when the spawning thread dies.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It makes two raw syscalls (prctl,
    // getppid), allocates nothing, takes no lock and touches no shared state.
    // The getppid check closes the race in which the parent process dies
    // between fork and prctl: the child then already belongs to a reaper and
    // the death signal would never come, so it must not go on to exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("parent died before exec"));
            }
            Ok(())
        });
    }
    Ok(())
}

/// Removes a directory when dropped, or when this process dies in any way.
pub struct Reaper {
    dir: PathBuf,
    pipe: Option<ChildStdin>,
    child: Child,
}

impl Reaper {
    pub fn watch(dir: &Path) -> Result<Reaper> {
        if dir.parent().is_none() || !dir.is_absolute() {
            bail!("refusing to reap {}", dir.display());
        }
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .arg("-c")
            // `read` returns at EOF: our end of the pipe closed.
            .arg(r#"read -r _; rm -rf --one-file-system -- "$1""#)
            .arg("zfleet-lab-reaper")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C that kills us must not kill it.
            .process_group(0)
            .spawn()
            .context("starting the run directory reaper")?;
        let pipe = child.stdin.take();
        Ok(Reaper {
            dir: dir.to_owned(),
            pipe,
            child,
        })
    }

    /// Removes the directory now and waits for that.
    pub fn reap(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"\n");
        }
        if let Err(err) = self.child.wait() {
            tracing::warn!(dir = %self.dir.display(), %err, "waiting for the reaper");
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn alive(pid: u32) -> bool {
        // A zombie still has /proc/PID; "State: Z" counts as dead here.
        match std::fs::read_to_string(format!("/proc/{pid}/status")) {
            Ok(status) => !status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z')),
            Err(_) => false,
        }
    }

    fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn stop_kills_children() {
        let mut sup = Supervisor::start("test").unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let id = sup.spawn(cmd).unwrap();
        let pid = sup.pid(id).unwrap();
        assert!(alive(pid));
        sup.stop();
        assert!(!alive(pid));
    }

    #[test]
    fn exit_is_noticed() {
        let sup = Supervisor::start("test").unwrap();
        let id = sup.spawn(Command::new("true")).unwrap();
        assert!(wait_until(|| sup.exit_status(id).is_some()));
        assert!(sup.exit_status(id).unwrap().success());
    }

    #[test]
    fn child_outlives_the_thread_that_asked_for_it() {
        // Spawned on behalf of a short-lived thread, as a libtest worker
        // would; the child must survive that thread.
        let sup = Supervisor::start("test").unwrap();
        let pid = thread::scope(|s| {
            s.spawn(|| {
                let mut cmd = Command::new("sleep");
                cmd.arg("600");
                let id = sup.spawn(cmd).unwrap();
                sup.pid(id).unwrap()
            })
            .join()
            .unwrap()
        });
        thread::sleep(Duration::from_millis(200));
        assert!(alive(pid));
        drop(sup);
        assert!(!alive(pid));
    }

    #[test]
    fn reaper_removes_dir_on_drop() {
        let dir = std::env::temp_dir().join(format!("zfleet-lab-reaper-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let reaper = Reaper::watch(&dir).unwrap();
        assert!(dir.exists());
        drop(reaper);
        assert!(!dir.exists());
    }

    const VICTIM_ENV: &str = "ZFLEET_LAB_SUPERVISE_VICTIM";
    const VICTIM_MODE_ENV: &str = "ZFLEET_LAB_SUPERVISE_VICTIM_MODE";

    static KEPT: std::sync::OnceLock<(Supervisor, Reaper)> = std::sync::OnceLock::new();

    /// Not a test on its own: the process the two tests below start. In
    /// "killed" mode it waits to be killed; in "static" mode it parks its
    /// supervisor and reaper in a static, as the shared guest does, and
    /// returns, so the process exits normally without dropping them.
    #[test]
    fn victim() {
        let Some(dir) = std::env::var_os(VICTIM_ENV) else {
            return;
        };
        let dir = PathBuf::from(dir);
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let sup = Supervisor::start("victim").unwrap();
        // Asked for from a thread that ends at once, like a libtest worker.
        let id = thread::scope(|s| {
            s.spawn(|| {
                let mut cmd = Command::new("sleep");
                cmd.arg("600");
                sup.spawn(cmd).unwrap()
            })
            .join()
            .unwrap()
        });
        let reaper = Reaper::watch(&run).unwrap();
        std::fs::write(dir.join("pid.tmp"), sup.pid(id).unwrap().to_string()).unwrap();
        std::fs::rename(dir.join("pid.tmp"), dir.join("pid")).unwrap();
        if std::env::var(VICTIM_MODE_ENV).as_deref() == Ok("static") {
            assert!(KEPT.set((sup, reaper)).is_ok());
            return;
        }
        thread::sleep(Duration::from_secs(600));
    }

    fn run_victim(mode: &str) {
        let dir =
            std::env::temp_dir().join(format!("zfleet-lab-victim-{mode}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut victim = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "guest::supervise::tests::victim", "--nocapture"])
            .env(VICTIM_ENV, &dir)
            .env(VICTIM_MODE_ENV, mode)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_until(|| dir.join("pid").exists()),
            "victim never started its child"
        );
        let pid: u32 = std::fs::read_to_string(dir.join("pid"))
            .unwrap()
            .parse()
            .unwrap();
        if mode == "killed" {
            assert!(alive(pid));
            assert!(dir.join("run").exists());
            victim.kill().unwrap(); // SIGKILL: no destructor runs
        }
        assert!(victim.wait().unwrap().code().is_none() == (mode == "killed"));
        assert!(
            wait_until(|| !alive(pid)),
            "child {pid} survived its parent"
        );
        assert!(wait_until(|| !dir.join("run").exists()), "run dir survived");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn killed_process_takes_children_and_dir_along() {
        run_victim("killed");
    }

    #[test]
    fn exiting_process_takes_static_children_and_dir_along() {
        run_victim("static");
    }

    #[test]
    fn reaper_refuses_relative_paths() {
        assert!(Reaper::watch(Path::new("relative")).is_err());
        assert!(Reaper::watch(Path::new("/")).is_err());
    }
}
