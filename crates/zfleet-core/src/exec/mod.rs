//! Running commands: argv in, status/stdout/stderr out, on this machine or over
//! OpenSSH, with a timeout, and killed when dropped.
//!
//! Nothing here goes through a local shell. For remote hosts the words are quoted
//! by [`quote::remote_command_line`] — the one place that builds a remote command
//! line — and anything it cannot represent is refused before a process starts.

pub mod quote;
pub mod ssh;

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretSlice};

pub use ssh::{SshOptions, SshSessions, SshTarget};

/// What a command is: a program and its arguments, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    pub program: String,
    pub args: Vec<String>,
}

impl Argv {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, it: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }

    pub fn words(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.program.as_str()).chain(self.args.iter().map(String::as_str))
    }
}

/// Shell-escaped, for messages: what a user would paste to run it by hand.
impl fmt::Display for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote::display_line(self.words()))
    }
}

/// Where a command runs.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Local,
    Ssh(Arc<SshTarget>),
}

impl Endpoint {
    /// The fleet host name, or `local`, as it appears in messages.
    pub fn label(&self) -> &str {
        match self {
            Endpoint::Local => "local",
            Endpoint::Ssh(t) => &t.name,
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Endpoint::Local)
    }

    /// The process that runs `argv` here. For ssh this makes sure the shared
    /// connection is up, so a host that does not answer fails here, by name.
    pub fn command(&self, argv: &Argv) -> Result<Command, ExecError> {
        match self {
            Endpoint::Local => {
                let mut c = Command::new(&argv.program);
                c.args(&argv.args);
                // zfs and zpool messages are parsed; keep them in English.
                c.env("LC_ALL", "C");
                withhold_env(&mut c);
                Ok(c)
            }
            Endpoint::Ssh(t) => t.command(argv),
        }
    }

    /// Runs to completion, capturing output. A non-zero exit is an error.
    pub fn run(&self, argv: &Argv, opts: &RunOptions) -> Result<Output, ExecError> {
        let out = self.run_unchecked(argv, opts)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failure(argv, &out))
        }
    }

    /// Runs to completion; the caller judges the exit status.
    pub fn run_unchecked(&self, argv: &Argv, opts: &RunOptions) -> Result<Output, ExecError> {
        let started = std::time::Instant::now();
        let result = self.run_inner(argv, opts);
        tracing::debug!(
            "{}: {argv} ({} ms{})",
            self.label(),
            started.elapsed().as_millis(),
            match &result {
                Ok(o) if o.status.success() => String::new(),
                Ok(o) => format!(", {}", describe_status(o.status)),
                Err(_) => ", failed to run".to_string(),
            }
        );
        result
    }

    fn run_inner(&self, argv: &Argv, opts: &RunOptions) -> Result<Output, ExecError> {
        let mut cmd = self.command(argv)?;
        cmd.stdin(if opts.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|source| ExecError::Spawn {
            host: self.label().to_string(),
            cmdline: argv.to_string(),
            source,
        })?;
        let mut guard = ChildGuard::new(child);
        let out = guard.collect(opts.stdin.as_ref(), opts.timeout);
        match out {
            Ok(o) => {
                if let Endpoint::Ssh(t) = self {
                    if o.status.code() == Some(255) {
                        // 255 is ssh's own failure: the remote command never ran
                        // or the connection broke while it did.
                        return Err(t.connection_error(argv, &o));
                    }
                }
                Ok(o)
            }
            Err(CollectError::Timeout { stderr }) => Err(ExecError::Timeout {
                host: self.label().to_string(),
                cmdline: argv.to_string(),
                after: opts.timeout.unwrap_or_default(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            }),
            Err(CollectError::Io(source)) => Err(ExecError::Spawn {
                host: self.label().to_string(),
                cmdline: argv.to_string(),
                source,
            }),
        }
    }

    /// Starts a long-running command with piped stdio (for send/receive streams).
    pub fn spawn(&self, argv: &Argv, io: SpawnIo) -> Result<ChildGuard, ExecError> {
        let mut cmd = self.command(argv)?;
        cmd.stdin(if io.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if io.stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|source| ExecError::Spawn {
            host: self.label().to_string(),
            cmdline: argv.to_string(),
            source,
        })?;
        Ok(ChildGuard::new(child))
    }

    pub fn failure(&self, argv: &Argv, out: &Output) -> ExecError {
        ExecError::Failed {
            host: self.label().to_string(),
            cmdline: argv.to_string(),
            status: describe_status(out.status),
            stderr: out.stderr_text(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SpawnIo {
    pub stdin: bool,
    pub stdout: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub timeout: Option<Duration>,
    /// Bytes written to the command's stdin, then closed. The only way secrets
    /// reach a child process, so they are held as one: redacted in `Debug` and
    /// zeroed when dropped (as is the writer thread's copy).
    pub stdin: Option<SecretSlice<u8>>,
}

impl RunOptions {
    pub fn timeout(t: Duration) -> Self {
        Self {
            timeout: Some(t),
            stdin: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim_end().to_string()
    }
}

pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "unknown exit".to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("on {host}: could not start `{cmdline}`: {source}")]
    Spawn {
        host: String,
        cmdline: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "on {host}: `{cmdline}` did not finish within {after:?}{}",
        stderr_suffix(stderr)
    )]
    Timeout {
        host: String,
        cmdline: String,
        after: Duration,
        stderr: String,
    },
    #[error("on {host}: `{cmdline}` failed ({status}){}", stderr_suffix(stderr))]
    Failed {
        host: String,
        cmdline: String,
        status: String,
        stderr: String,
    },
    #[error("host `{host}` ({address}) did not answer within {after:?}: {detail}")]
    Unreachable {
        host: String,
        address: String,
        after: Duration,
        detail: String,
    },
    #[error("host `{host}` ({address}) did not let zfleet log in: {detail}")]
    Auth {
        host: String,
        address: String,
        detail: String,
    },
    #[error("host `{host}` ({address}): the connection failed: {detail}")]
    Connection {
        host: String,
        address: String,
        detail: String,
    },
    #[error(
        "host `{host}` ({address}) presented a host key that is not in {known_hosts}: {detail}"
    )]
    HostKey {
        host: String,
        address: String,
        known_hosts: String,
        detail: String,
    },
    #[error("refused to run on {host}: {reason}")]
    Refused { host: String, reason: String },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl ExecError {
    pub fn host(&self) -> &str {
        match self {
            ExecError::Spawn { host, .. }
            | ExecError::Timeout { host, .. }
            | ExecError::Failed { host, .. }
            | ExecError::Unreachable { host, .. }
            | ExecError::Auth { host, .. }
            | ExecError::Connection { host, .. }
            | ExecError::HostKey { host, .. }
            | ExecError::Refused { host, .. } => host,
        }
    }

    /// The remote program's stderr when it ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            ExecError::Failed { stderr, .. } | ExecError::Timeout { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// Names of environment variables no child process may inherit.
static WITHHELD_ENV: RwLock<Vec<OsString>> = RwLock::new(Vec::new());

/// Keeps the variable `name` of this process out of the environment of every
/// child started from now on (local commands, ssh, secret providers).
///
/// A secret read from zfleet's own environment (`env:NAME`) must not leak into
/// the `/proc/PID/environ` of every ssh and zfs process it starts. Removing it
/// from our own environment instead would race with threads reading theirs.
pub fn withhold_env_var(name: impl Into<OsString>) {
    let name = name.into();
    let mut list = WITHHELD_ENV.write().unwrap_or_else(|p| p.into_inner());
    if !list.contains(&name) {
        list.push(name);
    }
}

/// Applies [`withhold_env_var`] to a command about to be started.
pub fn withhold_env(cmd: &mut Command) {
    for name in WITHHELD_ENV
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
    {
        cmd.env_remove(name);
    }
}

/// A child process that is killed and reaped when dropped, unless it was waited for.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

enum CollectError {
    Timeout { stderr: Vec<u8> },
    Io(std::io::Error),
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// Reads stderr in the background so a chatty child never blocks on a full pipe.
    pub fn stderr_reader(&mut self) -> Option<thread::JoinHandle<Vec<u8>>> {
        let mut err = self.child.as_mut()?.stderr.take()?;
        Some(thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        }))
    }

    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait(),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` (forever when `None`); kills the child on timeout.
    pub fn wait_timeout(
        &mut self,
        timeout: Option<Duration>,
    ) -> std::io::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(st) = child.try_wait()? {
                self.child = None;
                return Ok(Some(st));
            }
            if let Some(t) = timeout {
                if start.elapsed() >= t {
                    self.kill();
                    return Ok(None);
                }
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn collect(
        &mut self,
        stdin: Option<&SecretSlice<u8>>,
        timeout: Option<Duration>,
    ) -> Result<Output, CollectError> {
        let Some(child) = self.child.as_mut() else {
            return Err(CollectError::Io(std::io::Error::other(
                "child already reaped",
            )));
        };
        let writer = match (stdin, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => {
                let bytes = bytes.clone();
                Some(thread::spawn(move || {
                    // A child that exits without reading is not our error to report;
                    // its exit status says what happened.
                    let _ = pipe.write_all(bytes.expose_secret());
                    // Dropping `bytes` zeroes this copy.
                }))
            }
            _ => None,
        };
        let out_reader = child.stdout.take().map(|mut o| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = o.read_to_end(&mut buf);
                buf
            })
        });
        let err_reader = self.stderr_reader();
        let status = self.wait_timeout(timeout).map_err(CollectError::Io)?;
        let stdout = out_reader.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
        if let Some(w) = writer {
            let _ = w.join();
        }
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(CollectError::Timeout { stderr }),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_run_captures_and_reports_failures() {
        let ep = Endpoint::Local;
        let out = ep
            .run(
                &Argv::new("sh").args(["-c", "echo out; echo err >&2"]),
                &RunOptions::default(),
            )
            .unwrap();
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err");

        let e = ep
            .run(
                &Argv::new("sh").args(["-c", "echo 'no such pool' >&2; exit 3"]),
                &RunOptions::default(),
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "on local: `sh -c \"echo 'no such pool' >&2; exit 3\"` failed (exit status 3): no such pool"
        );
    }

    #[test]
    fn stdin_reaches_the_child() {
        let out = Endpoint::Local
            .run(
                &Argv::new("cat"),
                &RunOptions {
                    timeout: Some(Duration::from_secs(5)),
                    stdin: Some(b"secret\n".to_vec().into()),
                },
            )
            .unwrap();
        assert_eq!(out.stdout, b"secret\n");
    }

    #[test]
    fn timeout_kills_the_child() {
        let start = Instant::now();
        let e = Endpoint::Local
            .run(
                &Argv::new("sleep").arg("30"),
                &RunOptions::timeout(Duration::from_millis(200)),
            )
            .unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(
            e.to_string(),
            "on local: `sleep 30` did not finish within 200ms"
        );
    }

    #[test]
    fn drop_kills() {
        let mut g = Endpoint::Local
            .spawn(&Argv::new("sleep").arg("30"), SpawnIo::default())
            .unwrap();
        let pid = g.id().unwrap();
        drop(g.take_stdout());
        drop(g);
        // The pid was reaped by the guard: /proc no longer has it (or it was reused,
        // which within this instant is practically impossible).
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn withheld_variables_never_reach_children() {
        // A name no other test uses: the list is process-wide.
        let name = "ZFLEET_TEST_WITHHELD_8";
        let mut cmd = Endpoint::Local.command(&Argv::new("env")).unwrap();
        cmd.env(name, "visible");
        let out = cmd.output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(name));

        withhold_env_var(name);
        let mut cmd = Command::new("env");
        cmd.env(name, "hidden");
        withhold_env(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains(name));
    }

    #[test]
    fn spawn_failure_names_the_program() {
        let e = Endpoint::Local
            .run(&Argv::new("/nonexistent/zfs"), &RunOptions::default())
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("on local: could not start `/nonexistent/zfs`: "),
            "{e}"
        );
    }
}
