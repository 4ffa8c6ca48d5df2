//! Fetching secrets from where `fleet.toml` says they are.
//!
//! Each reference is fetched at most once per run ([`SecretCache`]), in the
//! caller's thread and one after another, so a password manager asks for its
//! unlock once, not once per host (the seed's script signed in to 1Password for
//! every host) and never twice at the same time.
//!
//! Secrets come back over a pipe into a fixed, zeroed-on-drop buffer; they are
//! never passed as arguments or in the environment of anything. Errors name the
//! reference and what went wrong, never the secret: a provider that failed
//! produced no secret, and what it printed on stderr is shown shortened,
//! escaped, and without what it printed on stdout.
//!
//! A provider runs in a process group of its own, within a timeout that
//! covers the group: at the timeout the group is killed, and once the provider
//! has exited zfleet does not wait for children that inherited its pipes.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::redact::{Redactor, MIN_PARTIAL};
use super::secret::{Secret, MAX_SECRET_LEN};
use crate::config::SecretRef;
use crate::exec::{self, describe_status, Argv, Endpoint};
use crate::text;

/// How long a provider may take. Generous: `op` may be waiting for a fingerprint
/// or a desktop unlock prompt, `pass` for a gpg pinentry.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The programs behind the references. Defaults are the names on `PATH`;
/// tests point them elsewhere.
#[derive(Debug, Clone)]
pub struct Providers {
    pub op: String,
    pub pass: String,
    pub timeout: Duration,
}

impl Default for Providers {
    fn default() -> Self {
        Self {
            op: "op".into(),
            pass: "pass".into(),
            timeout: DEFAULT_PROVIDER_TIMEOUT,
        }
    }
}

/// Why a secret could not be had. Shown as `` `REF`: <problem> ``, with a hint
/// where there is an obvious next step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{reference}`: {problem}")]
pub struct ProviderError {
    /// The reference as written in fleet.toml (never the secret).
    pub reference: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("`{program}` is not installed or not on PATH")]
    NotInstalled { program: String },
    #[error("1Password is not signed in ({detail})")]
    NotSignedIn { detail: String },
    #[error("no such entry ({detail})")]
    NoSuchEntry { detail: String },
    #[error("`{cmdline}` failed ({status}){}", suffix(detail))]
    Failed {
        cmdline: String,
        status: String,
        detail: String,
    },
    #[error("`{cmdline}` did not finish within {after:?}")]
    Timeout { cmdline: String, after: Duration },
    #[error("cannot read {path}: {error}")]
    File { path: PathBuf, error: String },
    #[error("the environment variable `{name}` is not set")]
    EnvMissing { name: String },
    #[error("the environment variable `{name}` is not valid UTF-8")]
    EnvNotUnicode { name: String },
    #[error("the secret is empty")]
    Empty,
    #[error("the secret is longer than {MAX_SECRET_LEN} bytes")]
    TooLarge,
}

fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl ProviderError {
    /// The next step for the user, where there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match &self.problem {
            Problem::NotSignedIn { .. } => Some(
                "sign in first (`eval $(op signin)`, or unlock the 1Password app with CLI integration on), then run zfleet again".into(),
            ),
            Problem::NotInstalled { program } if program == "op" => {
                Some("install the 1Password CLI, or use another secret reference".into())
            }
            Problem::NoSuchEntry { .. } => {
                Some("check the reference in fleet.toml against the password manager".into())
            }
            _ => None,
        }
    }
}

impl Providers {
    /// Fetches one secret. Callers go through [`SecretCache`] so that each
    /// reference is fetched once per run.
    pub fn fetch(&self, r: &SecretRef) -> Result<Secret, ProviderError> {
        let err = |problem| ProviderError {
            reference: r.to_string(),
            problem,
        };
        let secret = match r {
            SecretRef::OnePassword(reference) => {
                // `op read` prints the value and a newline.
                let argv = Argv::new(&self.op).arg("read").arg(reference);
                let out = self.run(&argv).map_err(err)?;
                trim_one_newline(&out)
            }
            SecretRef::Pass(name) => {
                // pass's convention: the password is the first line, other lines
                // are notes.
                let argv = Argv::new(&self.pass).arg("show").arg(name);
                let out = self.run(&argv).map_err(err)?;
                let first = out.iter().position(|b| *b == b'\n').unwrap_or(out.len());
                Secret::from_bytes(trim_cr(&out[..first]))
            }
            SecretRef::File(path) => {
                let out = read_file(path).map_err(err)?;
                trim_one_newline(&out)
            }
            SecretRef::Env(name) => {
                exec::withhold_env_var(name);
                match std::env::var_os(name) {
                    None => return Err(err(Problem::EnvMissing { name: name.clone() })),
                    Some(v) => {
                        let v = Zeroizing::new(
                            v.into_string()
                                .map_err(|_| err(Problem::EnvNotUnicode { name: name.clone() }))?,
                        );
                        Secret::from_bytes(v.as_bytes())
                    }
                }
            }
            SecretRef::Command(words) => {
                let (program, args) = match words.split_first() {
                    Some(x) => x,
                    None => {
                        return Err(err(Problem::Failed {
                            cmdline: String::new(),
                            status: "no command".into(),
                            detail: String::new(),
                        }))
                    }
                };
                let argv = Argv::new(program).args(args.iter().cloned());
                let out = self.run(&argv).map_err(err)?;
                trim_one_newline(&out)
            }
        };
        if secret.is_empty() {
            return Err(err(Problem::Empty));
        }
        Ok(secret)
    }

    /// Runs a provider program: stdin closed (it must not prompt on zfleet's
    /// terminal, where a prompt would hang behind other output), stdout into a
    /// zeroed buffer, stderr kept for the error message — with whatever it
    /// printed on stdout taken out, since a provider that failed may still
    /// have printed the secret, or part of it, and repeat it in its complaint.
    fn run(&self, argv: &Argv) -> Result<Zeroizing<Vec<u8>>, Problem> {
        let ran = run_bounded(argv, self.timeout)?;
        if !ran.status.success() {
            let mut r = Redactor::new();
            if let Some(out) = &ran.stdout {
                r.add_bytes(out);
                for line in out.split(|b| *b == b'\n') {
                    if line.trim_ascii().len() >= MIN_PARTIAL {
                        r.add_bytes(line);
                    }
                }
            }
            let stderr = r.redact(&ran.stderr);
            return Err(classify_failure(
                argv,
                &describe_status(ran.status),
                &stderr,
            ));
        }
        ran.stdout.ok_or(Problem::TooLarge)
    }
}

/// What a provider left behind.
struct Ran {
    status: ExitStatus,
    /// `None` when it printed more than [`MAX_SECRET_LEN`].
    stdout: Option<Zeroizing<Vec<u8>>>,
    stderr: Vec<u8>,
}

/// Enough of a provider's stderr for any message.
const MAX_STDERR: usize = 64 * 1024;
/// How long output is still read after the provider exited, for what it wrote
/// just before. Anything holding its pipes after that is a child it left
/// behind, not the provider, and is not waited for.
const AFTER_EXIT: Duration = Duration::from_millis(20);
/// How often a running provider is looked at while it prints nothing.
const LOOK: Duration = Duration::from_millis(50);

/// Runs `argv` in a process group of its own and reads its output, all within
/// `timeout`: at the timeout the whole group is killed (not only the provider:
/// `op` and shell scripts start children, which would hold the pipes open).
/// Once the provider has exited, its output is what was in the pipes then.
fn run_bounded(argv: &Argv, timeout: Duration) -> Result<Ran, Problem> {
    use std::os::unix::process::CommandExt;
    let failed = |status: &str, detail: String| Problem::Failed {
        cmdline: argv.to_string(),
        status: status.to_string(),
        detail,
    };
    let mut cmd = Endpoint::Local
        .command(argv)
        .map_err(|e| failed("could not start", e.to_string()))?;
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Problem::NotInstalled {
                program: argv.program.clone(),
            })
        }
        Err(e) => return Err(failed("could not start", e.to_string())),
    };
    let group = rustix::process::Pid::from_child(&child);
    let kill_group = |child: &mut std::process::Child| {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = child.kill();
        let _ = child.wait();
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Zeroizing::new(vec![0u8; MAX_SECRET_LEN + 1]);
    let mut out_len = 0;
    let mut too_large = false;
    let mut err_buf = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        if exited.is_none() {
            match child.try_wait() {
                Ok(Some(st)) => exited = Some((st, Instant::now())),
                Ok(None) => {}
                Err(e) => {
                    kill_group(&mut child);
                    return Err(failed("could not wait for it", e.to_string()));
                }
            }
        }
        let now = Instant::now();
        let Some((_, at)) = exited else {
            if now >= deadline {
                kill_group(&mut child);
                return Err(Problem::Timeout {
                    cmdline: argv.to_string(),
                    after: timeout,
                });
            }
            if stdout.is_none() && stderr.is_none() {
                std::thread::sleep(LOOK.min(deadline - now));
                continue;
            }
            let (out_ready, err_ready) = ready(&stdout, &stderr, LOOK.min(deadline - now));
            read_some(&mut stdout, out_ready, |r| {
                read_secret(r, &mut out, &mut out_len, &mut too_large)
            });
            read_some(&mut stderr, err_ready, |r| read_stderr(r, &mut err_buf));
            continue;
        };
        // Exited: take what is in the pipes now, then stop.
        if (stdout.is_none() && stderr.is_none())
            || now >= deadline
            || now - at > Duration::from_secs(1)
        {
            break;
        }
        let (out_ready, err_ready) = ready(&stdout, &stderr, AFTER_EXIT);
        if !out_ready && !err_ready {
            break;
        }
        read_some(&mut stdout, out_ready, |r| {
            read_secret(r, &mut out, &mut out_len, &mut too_large)
        });
        read_some(&mut stderr, err_ready, |r| read_stderr(r, &mut err_buf));
    }
    let Some((status, _)) = exited else {
        return Err(failed("could not wait for it", String::new()));
    };
    out.truncate(out_len);
    Ok(Ran {
        status,
        stdout: (!too_large).then_some(out),
        stderr: err_buf,
    })
}

/// Which of the open pipes have something to read (or were closed), waiting
/// up to `wait`.
fn ready(
    stdout: &Option<std::process::ChildStdout>,
    stderr: &Option<std::process::ChildStderr>,
    wait: Duration,
) -> (bool, bool) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let flags = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
    let mut fds: Vec<PollFd<'_>> = Vec::new();
    if let Some(o) = stdout {
        fds.push(PollFd::new(o, PollFlags::IN));
    }
    if let Some(e) = stderr {
        fds.push(PollFd::new(e, PollFlags::IN));
    }
    let timeout = Timespec::try_from(wait).ok();
    if poll(&mut fds, timeout.as_ref()).is_err() {
        // EINTR: nothing is ready yet; the caller looks again.
        return (false, false);
    }
    let mut it = fds.iter().map(|f| f.revents().intersects(flags));
    let out = stdout.is_some() && it.next().unwrap_or(false);
    let err = stderr.is_some() && it.next().unwrap_or(false);
    (out, err)
}

/// One read from `pipe` if `ready`; the pipe is closed at its end.
fn read_some<R: Read>(pipe: &mut Option<R>, ready: bool, read: impl FnOnce(&mut R) -> bool) {
    if let (true, Some(r)) = (ready, pipe.as_mut()) {
        if !read(r) {
            *pipe = None;
        }
    }
}

/// Reads into the secret buffer, allocated once so no reallocation leaves a
/// copy behind; past the limit, reads are drained and the output is too
/// large. `false` at the end of the pipe.
fn read_secret(r: &mut impl Read, buf: &mut [u8], len: &mut usize, too_large: &mut bool) -> bool {
    let res = if *len < buf.len() {
        r.read(&mut buf[*len..]).inspect(|n| *len += n)
    } else {
        *too_large = true;
        let mut scratch = Zeroizing::new([0u8; 4096]);
        r.read(&mut scratch[..])
    };
    match res {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
    }
}

fn read_stderr(r: &mut impl Read, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match r.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            let room = MAX_STDERR.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..n.min(room)]);
            true
        }
        Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
    }
}

/// Known failures of `op` and `pass`, told apart by their messages (run with
/// `LC_ALL=C`); anything else is shown as it came, shortened.
fn classify_failure(argv: &Argv, status: &str, stderr: &str) -> Problem {
    let detail = shorten(stderr);
    let lower = stderr.to_ascii_lowercase();
    let is = |program: &str| {
        std::path::Path::new(&argv.program)
            .file_name()
            .is_some_and(|n| n == program)
    };
    if is("op") {
        if [
            "not currently signed in",
            "not signed in",
            "no account found",
            "session expired",
            "authorization prompt dismissed",
            "authentication required",
        ]
        .iter()
        .any(|p| lower.contains(p))
        {
            return Problem::NotSignedIn { detail };
        }
        if [
            "isn't an item",
            "isn't a vault",
            "isn't a field",
            "could not read secret",
        ]
        .iter()
        .any(|p| lower.contains(p))
        {
            return Problem::NoSuchEntry { detail };
        }
    }
    if is("pass") && lower.contains("is not in the password store") {
        return Problem::NoSuchEntry { detail };
    }
    Problem::Failed {
        cmdline: argv.to_string(),
        status: status.to_string(),
        detail,
    }
}

/// The first lines of a provider's stderr (already redacted), without op's
/// `[ERROR] date time` prefix, escaped, at most [`MAX_EXCERPT`](super::MAX_EXCERPT)
/// characters.
fn shorten(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(strip_op_prefix)
        .map(|l| text::printable(l).into_owned())
        .take(3)
        .collect();
    text::bounded(&lines.join("; "), super::MAX_EXCERPT).into_owned()
}

/// `[ERROR] 2024/01/02 03:04:05 message` → `message`.
fn strip_op_prefix(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("[ERROR] ") else {
        return line;
    };
    let mut parts = rest.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(d), Some(t), Some(msg))
            if d.len() == 10 && d.as_bytes()[4] == b'/' && t.contains(':') =>
        {
            msg
        }
        _ => rest,
    }
}

fn read_file(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, Problem> {
    let problem = |e: std::io::Error| Problem::File {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let mut f = std::fs::File::open(path).map_err(problem)?;
    warn_if_readable_by_others(path, &f);
    read_capped(&mut f)
        .map_err(problem)?
        .ok_or(Problem::TooLarge)
}

/// ssh refuses private keys others can read; a passphrase file is no different,
/// but refusing would break setups that protect it otherwise (an encrypted
/// home, a root-only directory), so this only warns.
fn warn_if_readable_by_others(path: &std::path::Path, f: &std::fs::File) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = f.metadata() {
        let mode = meta.permissions().mode();
        if mode & 0o004 != 0 {
            tracing::warn!(
                "secret file {} is readable by every user (mode {:o}); `chmod 600` it",
                path.display(),
                mode & 0o777
            );
        }
    }
}

/// Reads everything into a buffer allocated once, so no reallocation leaves a
/// copy of the secret behind. `None` when there is more than the limit.
fn read_capped(r: &mut impl Read) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_SECRET_LEN + 1]);
    let mut n = 0;
    loop {
        if n == buf.len() {
            // Over the limit: drain the rest so the writer is not blocked.
            let mut scratch = Zeroizing::new([0u8; 4096]);
            while r.read(&mut scratch[..])? > 0 {}
            return Ok(None);
        }
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(Some(buf))
}

fn trim_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// One trailing newline (`\n` or `\r\n`) is how files and command output end;
/// it is not part of the passphrase. Anything else is kept as it is.
fn trim_one_newline(b: &[u8]) -> Secret {
    let b = b.strip_suffix(b"\n").map(trim_cr).unwrap_or(b);
    Secret::from_bytes(b)
}

/// Secrets fetched in this run, by reference. Failures are remembered too, so
/// a provider that failed is not asked again for the next host.
#[derive(Default)]
pub struct SecretCache {
    fetched: HashMap<String, Result<Arc<Secret>, ProviderError>>,
}

impl SecretCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(
        &mut self,
        providers: &Providers,
        r: &SecretRef,
    ) -> Result<Arc<Secret>, ProviderError> {
        self.fetched
            .entry(r.to_string())
            .or_insert_with(|| providers.fetch(r).map(Arc::new))
            .clone()
    }

    /// A redactor for every secret fetched so far.
    pub fn redactor(&self) -> Redactor {
        let mut r = Redactor::new();
        for s in self.fetched.values().flatten() {
            r.add(s);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    #[test]
    fn file_provider_strips_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "pass phrase \n\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Providers::default()
            .fetch(&SecretRef::File(f.clone()))
            .unwrap();
        assert_eq!(s.expose_for_test(), b"pass phrase \n");

        std::fs::write(&f, "crlf\r\n").unwrap();
        let s = Providers::default().fetch(&SecretRef::File(f)).unwrap();
        assert_eq!(s.expose_for_test(), b"crlf");
    }

    #[test]
    fn file_provider_errors_name_the_reference() {
        let e = Providers::default()
            .fetch(&SecretRef::File("/nonexistent/zfleet.key".into()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`file:/nonexistent/zfleet.key`: cannot read /nonexistent/zfleet.key: No such file or directory (os error 2)"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty");
        std::fs::write(&f, "\n").unwrap();
        let e = Providers::default()
            .fetch(&SecretRef::File(f.clone()))
            .unwrap_err();
        assert_eq!(e.problem, Problem::Empty);
        std::fs::write(&f, vec![b'x'; MAX_SECRET_LEN + 10]).unwrap();
        let e = Providers::default().fetch(&SecretRef::File(f)).unwrap_err();
        assert_eq!(e.problem, Problem::TooLarge);
    }

    #[test]
    fn env_provider_reads_and_withholds() {
        // PATH is set in every test environment; a real secret variable would be
        // set by the user before zfleet starts, which tests cannot do safely.
        let s = Providers::default()
            .fetch(&SecretRef::Env("ZFLEET_TEST_NO_SUCH_VAR_8".into()))
            .unwrap_err();
        assert_eq!(
            s.to_string(),
            "`env:ZFLEET_TEST_NO_SUCH_VAR_8`: the environment variable `ZFLEET_TEST_NO_SUCH_VAR_8` is not set"
        );
    }

    #[test]
    fn command_provider_runs_without_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let prog = script(dir.path(), "show", "printf '%s|%s\\n' \"$1\" \"$2\"\n");
        let s = Providers::default()
            .fetch(&SecretRef::Command(vec![
                prog.clone(),
                "a b".into(),
                "$(id)".into(),
            ]))
            .unwrap();
        assert_eq!(s.expose_for_test(), b"a b|$(id)");

        let bad = script(dir.path(), "bad", "echo 'no such secret' >&2; exit 3\n");
        let e = Providers::default()
            .fetch(&SecretRef::Command(vec![bad.clone()]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("`cmd:{bad}`: `{bad}` failed (exit status 3): no such secret")
        );

        let e = Providers::default()
            .fetch(&SecretRef::Command(vec!["/nonexistent/prog".into()]))
            .unwrap_err();
        assert_eq!(
            e.problem,
            Problem::NotInstalled {
                program: "/nonexistent/prog".into()
            }
        );

        let slow = script(dir.path(), "slow", "exec sleep 30\n");
        let p = Providers {
            timeout: Duration::from_millis(300),
            ..Providers::default()
        };
        let start = std::time::Instant::now();
        let e = p.fetch(&SecretRef::Command(vec![slow])).unwrap_err();
        assert!(matches!(e.problem, Problem::Timeout { .. }), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    /// A provider that is done is not waited on for children that inherited
    /// its pipes (before, such a child made a successful fetch take 30 s).
    #[test]
    fn a_provider_that_exited_is_not_waited_for_its_children() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body, ok) in [
            ("ok", "sleep 30 &\necho s3cret\n", true),
            (
                "fails",
                "sleep 30 &\necho 'vault is locked' >&2\nexit 4\n",
                false,
            ),
        ] {
            let prog = script(dir.path(), name, body);
            let start = std::time::Instant::now();
            let res = Providers::default().fetch(&SecretRef::Command(vec![prog]));
            let took = start.elapsed();
            assert!(took < Duration::from_secs(1), "{name}: took {took:?}");
            match res {
                Ok(s) => {
                    assert!(ok);
                    assert_eq!(s.expose_for_test(), b"s3cret");
                }
                Err(e) => {
                    assert!(!ok);
                    assert!(
                        e.to_string()
                            .ends_with("failed (exit status 4): vault is locked"),
                        "{e}"
                    );
                }
            }
        }
    }

    fn gone_or_zombie(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
        }
    }

    /// The timeout is kept, and covers the provider's children: the whole
    /// process group is killed at the timeout (before, a hanging provider
    /// took 160 s under a 120 s timeout, and its children lived on).
    #[test]
    fn the_timeout_covers_and_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let prog = script(
            dir.path(),
            "hangs",
            &format!("sleep 300 &\necho $! > {}\nwait\n", pid_file.display()),
        );
        let timeout = Duration::from_millis(1500);
        let p = Providers {
            timeout,
            ..Providers::default()
        };
        let start = std::time::Instant::now();
        let e = p.fetch(&SecretRef::Command(vec![prog])).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(e.problem, Problem::Timeout { .. }), "{e}");
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(1),
            "took {took:?} for a timeout of {timeout:?}"
        );
        let child = std::fs::read_to_string(&pid_file).unwrap();
        let child = child.trim();
        let killed = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            gone_or_zombie(child)
        });
        assert!(killed, "the provider's child {child} outlived the timeout");
    }

    /// A provider that printed (part of) the secret and then failed does not
    /// get to show it in its error message.
    #[test]
    fn a_failing_provider_does_not_repeat_its_output_in_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let prog = script(
            dir.path(),
            "checksum",
            "printf 'tr0ub4dor&3\n'\necho \"vault: decrypted 'tr0ub4dor&3' but the checksum does not match\" >&2\nprintf 'and \\033[2Kthis\\n' >&2\nexit 1\n",
        );
        let e = Providers::default()
            .fetch(&SecretRef::Command(vec![prog]))
            .unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains("tr0ub4dor"), "{shown}");
        assert!(
            shown.ends_with(
                "failed (exit status 1): vault: decrypted '[secret]' but the checksum does not match; and \\u{1b}[2Kthis"
            ),
            "{shown}"
        );
    }

    #[test]
    fn op_messages() {
        let argv = Argv::new("/usr/bin/op").args(["read", "op://nix/alpha/encryption"]);
        let p = classify_failure(&argv, "exit status 1", "[ERROR] 2024/05/01 10:00:00 You are not currently signed in. Please run `op signin --help` for instructions\n");
        assert_eq!(
            p,
            Problem::NotSignedIn {
                detail: "You are not currently signed in. Please run `op signin --help` for instructions".into()
            }
        );
        let p = classify_failure(&argv, "exit status 1", "[ERROR] 2024/05/01 10:00:00 could not read secret 'op://nix/alpha/encryption': \"alpha\" isn't an item in the \"nix\" vault. Specify the item with its UUID, name, or domain.\n");
        assert!(matches!(p, Problem::NoSuchEntry { .. }), "{p:?}");
        let p = classify_failure(
            &Argv::new("pass").args(["show", "x"]),
            "exit status 1",
            "Error: x is not in the password store.\n",
        );
        assert_eq!(
            p,
            Problem::NoSuchEntry {
                detail: "Error: x is not in the password store.".into()
            }
        );
    }

    #[test]
    fn cache_fetches_once_per_reference() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let prog = script(
            dir.path(),
            "counted",
            &format!("echo x >> {}\necho s3cret\n", count.display()),
        );
        let r = SecretRef::Command(vec![prog]);
        let mut cache = SecretCache::new();
        let p = Providers::default();
        let a = cache.get(&p, &r).unwrap();
        let b = cache.get(&p, &r).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\n");
    }
}
