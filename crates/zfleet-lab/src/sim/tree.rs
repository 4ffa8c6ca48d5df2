//! One namespace tree: `unshare` holding new namespaces, a shell as their pid 1,
//! and whatever is started inside later.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use super::process::{children_of, spawn_tied_to_thread, tail, wait_until, wait_within};

/// How long a namespace's init may take to set itself up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the kernel may take to kill everything in a pid namespace.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The end of every init script, a pid 1 loop: a shell that reaps whatever is orphaned into the namespace
/// (daemons started through `nsenter` end up as its children). dash's `wait`
/// collects any child while it waits for the `sleep` job, so zombies do not pile up.
const REAPER_LOOP: &str = "while :; do sleep 3600 & wait; done";

pub(crate) struct NsTree {
    label: String,
    /// The `unshare` process: our child, tied to the thread that started it.
    unshare: Child,
    /// pid 1 of the new pid namespace, as seen from ours.
    init: u32,
    /// Refers to `init` for good, so a late kill can never hit a reused pid.
    init_fd: OwnedFd,
    log: PathBuf,
}

impl NsTree {
    /// Writes `script` (followed by [`REAPER_LOOP`]) to `dir/init.sh` and starts
    /// `unshare --fork --pid --kill-child <flags> -- /bin/sh dir/init.sh`, which
    /// must create `dir/ready` once its setup is done. Its output goes to
    /// `dir/init.log`. (A file rather than `sh -c`, so `ps` names the lab.)
    pub(crate) fn spawn(
        label: &str,
        flags: &[&str],
        script: &str,
        env: &[(&str, &OsStr)],
        dir: &Path,
    ) -> Result<NsTree> {
        let init = dir.join("init.sh");
        let log = &dir.join("init.log");
        let ready = &dir.join("ready");
        std::fs::write(&init, format!("{script}{REAPER_LOOP}\n"))
            .with_context(|| format!("cannot write {}", init.display()))?;
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("unshare");
        // --kill-child: pid 1 gets SIGKILL when unshare dies, and the kernel then
        // kills everything else in the pid namespace.
        cmd.args(["--fork", "--pid", "--kill-child"])
            .args(flags)
            .args(["--", "/bin/sh"])
            .arg(&init)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let unshare = spawn_tied_to_thread(&mut cmd)
            .with_context(|| format!("cannot start unshare for {label}"))?;
        let mut tree = Starting {
            label,
            unshare: Some(unshare),
            log,
        };
        let init = tree.wait_for_init()?;
        let init_fd = Pid::from_raw(init as i32)
            .context("pid 0")
            .and_then(|pid| Ok(pidfd_open(pid, PidfdFlags::empty())?))
            .with_context(|| format!("cannot open a pidfd for {label}'s init {init}"))?;
        tree.wait_for(ready)?;
        let unshare = tree.unshare.take().context("unshare vanished")?;
        Ok(NsTree {
            label: label.to_owned(),
            unshare,
            init,
            init_fd,
            log: log.to_owned(),
        })
    }

    /// The host-side pid of the namespace's pid 1: the `--target` for nsenter.
    pub(crate) fn init_pid(&self) -> u32 {
        self.init
    }

    /// True while pid 1 (and so the namespaces) are alive.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.unshare.try_wait(), Ok(None))
    }

    /// Sends SIGKILL to pid 1; the kernel then kills the rest of the namespace.
    pub(crate) fn kill(&self) {
        // ESRCH just means it is already gone.
        let _ = pidfd_send_signal(&self.init_fd, Signal::KILL);
    }

    /// Waits until `unshare` has collected pid 1, which the kernel allows only once
    /// every other process of the pid namespace has exited.
    pub(crate) fn wait(&mut self) -> Result<()> {
        if wait_within(&mut self.unshare, EXIT_TIMEOUT).is_some() {
            return Ok(());
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        bail!(
            "{}: the namespace's processes did not exit within {EXIT_TIMEOUT:?} after SIGKILL",
            self.label
        )
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for NsTree {
    fn drop(&mut self) {
        if self.is_alive() {
            self.kill();
            let _ = self.wait();
        }
    }
}

/// A tree during start-up, killed if start-up fails.
struct Starting<'a> {
    label: &'a str,
    unshare: Option<Child>,
    log: &'a Path,
}

impl Starting<'_> {
    fn child(&mut self) -> Result<&mut Child> {
        self.unshare.as_mut().context("unshare vanished")
    }

    fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child()?.try_wait()? {
            bail!(
                "{}: namespace setup exited early ({status}); its output:\n{}",
                self.label,
                tail(self.log, 4000)
            );
        }
        Ok(())
    }

    fn wait_for_init(&mut self) -> Result<u32> {
        let unshare_pid = self.child()?.id();
        let mut init = None;
        wait_until(&format!("{}'s pid 1", self.label), READY_TIMEOUT, || {
            self.check_running()?;
            init = children_of(unshare_pid).first().copied();
            Ok(init.is_some())
        })?;
        init.context("no pid 1")
    }

    fn wait_for(&mut self, ready: &Path) -> Result<()> {
        wait_until(&format!("{} to set up", self.label), READY_TIMEOUT, || {
            self.check_running()?;
            Ok(ready.exists())
        })
        .map_err(|e| e.context(tail(self.log, 4000)))
    }
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.unshare.take() {
            // Killing unshare fires --kill-child for pid 1.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
