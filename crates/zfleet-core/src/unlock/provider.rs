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
//! produced no secret, and what it printed on stderr is shown shortened.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use zeroize::Zeroizing;

use super::secret::{Secret, MAX_SECRET_LEN};
use crate::config::SecretRef;
use crate::exec::{self, describe_status, Argv, Endpoint, SpawnIo};

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
    /// zeroed buffer, stderr kept for the error message.
    fn run(&self, argv: &Argv) -> Result<Zeroizing<Vec<u8>>, Problem> {
        let mut child = match Endpoint::Local.spawn(
            argv,
            SpawnIo {
                stdin: false,
                stdout: true,
            },
        ) {
            Ok(c) => c,
            Err(exec::ExecError::Spawn { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(Problem::NotInstalled {
                    program: argv.program.clone(),
                })
            }
            Err(e) => {
                return Err(Problem::Failed {
                    cmdline: argv.to_string(),
                    status: "could not start".into(),
                    detail: e.to_string(),
                })
            }
        };
        let stderr = child.stderr_reader();
        let (tx, rx) = mpsc::channel();
        if let Some(mut out) = child.take_stdout() {
            std::thread::spawn(move || {
                let _ = tx.send(read_capped(&mut out));
            });
        }
        let status = child
            .wait_timeout(Some(self.timeout))
            .map_err(|e| Problem::Failed {
                cmdline: argv.to_string(),
                status: "could not wait for it".into(),
                detail: e.to_string(),
            })?;
        // A grandchild that kept the pipe open must not hang the run.
        let stdout = rx.recv_timeout(Duration::from_secs(2));
        let stderr = stderr
            .and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let Some(status) = status else {
            return Err(Problem::Timeout {
                cmdline: argv.to_string(),
                after: self.timeout,
            });
        };
        if !status.success() {
            return Err(classify_failure(argv, &describe_status(status), &stderr));
        }
        match stdout {
            Ok(Ok(Some(buf))) => Ok(buf),
            Ok(Ok(None)) => Err(Problem::TooLarge),
            Ok(Err(e)) => Err(Problem::Failed {
                cmdline: argv.to_string(),
                status: "could not read its output".into(),
                detail: e.to_string(),
            }),
            Err(_) => Err(Problem::Failed {
                cmdline: argv.to_string(),
                status: "its output did not end".into(),
                detail: String::new(),
            }),
        }
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

/// The first lines of a provider's stderr, without op's `[ERROR] date time`
/// prefix, at most ~300 characters.
fn shorten(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(strip_op_prefix)
        .take(3)
        .collect();
    let joined = lines.join("; ");
    if joined.chars().count() > 300 {
        let cut: String = joined.chars().take(300).collect();
        format!("{cut}…")
    } else {
        joined
    }
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
