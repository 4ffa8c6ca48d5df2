//! ZFS native encryption: load the keys of a booted host's encryption roots,
//! mount what they unlock, start the services that need it.
//!
//! observe: one `zfs get -r` per configured encryption root (key status,
//! encryption root, mount state of everything below). plan: the roots whose key
//! is not loaded. execute: `zfs load-key -L prompt ROOT` with the key on stdin
//! (`-L prompt` so a `keylocation=file://…` is not read instead), `zfs mount`
//! for each unlocked file system that should be mounted, `systemctl start` for
//! the configured units, then observe again and report what is still locked.
//! zfs-fuse has no native encryption, which the capability probe tells.

use std::time::{Duration, Instant};

use super::redact::Redactor;
use super::{
    line_break_failure, Failure, FailureKind as K, HostStatus, Outcome, Report, Secret, State,
    Target, MAX_EXCERPT,
};
use crate::exec::{Argv, Endpoint, ExecError, RunOptions};
use crate::host::QUERY_TIMEOUT;
use crate::zfs::{cmd, DatasetName, ZfsError, ZfsErrorKind};

/// One file system or volume below a configured encryption root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dataset {
    pub name: String,
    pub encryption_root: String,
    /// `available`, `unavailable`, or `-` (not encrypted).
    pub keystatus: String,
    /// `passphrase`, `hex`, `raw`, or `none`.
    pub keyformat: String,
    pub mounted: String,
    pub canmount: String,
    pub mountpoint: String,
}

impl Dataset {
    fn locked(&self) -> bool {
        self.keystatus == "unavailable"
    }

    /// Unlocked, meant to be mounted (the way `zfs mount -a` decides), and not.
    fn wants_mount(&self) -> bool {
        self.keystatus != "unavailable"
            && self.canmount == "on"
            && !matches!(self.mountpoint.as_str(), "none" | "legacy" | "-" | "")
            && self.mounted == "no"
    }
}

/// What the executor needs from the observation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub datasets: Vec<Dataset>,
}

impl Observed {
    fn locked(&self) -> Vec<String> {
        self.datasets
            .iter()
            .filter(|d| d.locked())
            .map(|d| d.name.clone())
            .collect()
    }

    fn unmounted(&self) -> Vec<String> {
        self.datasets
            .iter()
            .filter(|d| d.wants_mount())
            .map(|d| d.name.clone())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name == name)
    }
}

const PROPS: &str = "encryptionroot,keystatus,keyformat,mounted,canmount,mountpoint";

fn observe_argv(root: &DatasetName) -> Argv {
    cmd::zfs()
        .args(["get", "-H", "-p", "-r", "-t", "filesystem,volume", "-o"])
        .arg("name,property,value")
        .arg(PROPS)
        .arg(root.as_str())
}

/// Parses `zfs get -H -o name,property,value` output, in listing order
/// (parents before children).
pub(crate) fn parse_get(text: &str) -> Vec<Dataset> {
    let mut out: Vec<Dataset> = Vec::new();
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(name), Some(prop), Some(value)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let idx = match out.iter().position(|d| d.name == name) {
            Some(i) => i,
            None => {
                out.push(Dataset {
                    name: name.to_string(),
                    encryption_root: "-".into(),
                    keystatus: "-".into(),
                    keyformat: "none".into(),
                    mounted: "-".into(),
                    canmount: "-".into(),
                    mountpoint: "-".into(),
                });
                out.len() - 1
            }
        };
        let d = &mut out[idx];
        let v = value.to_string();
        match prop {
            "encryptionroot" => d.encryption_root = v,
            "keystatus" => d.keystatus = v,
            "keyformat" => d.keyformat = v,
            "mounted" => d.mounted = v,
            "canmount" => d.canmount = v,
            "mountpoint" => d.mountpoint = v,
            _ => {}
        }
    }
    out
}

enum ObserveError {
    Exec(ExecError),
    /// Configuration does not match the host (missing root, not a root).
    Mismatch(Vec<String>),
    Other(String),
}

fn observe(t: &Target) -> Result<Observed, ObserveError> {
    let mut all = Observed::default();
    let mut problems = Vec::new();
    for root in &t.config.encryption_roots {
        let argv = observe_argv(root);
        match t.host.query(&argv) {
            Ok(out) => {
                let ds = parse_get(&out.stdout_text());
                match ds.iter().find(|d| d.name == root.as_str()) {
                    Some(d) if d.encryption_root == root.as_str() => {}
                    Some(d) if d.keyformat == "none" || d.encryption_root == "-" => {
                        problems.push(format!("`{root}` is not encrypted"))
                    }
                    Some(d) => problems.push(format!(
                        "`{root}` is not an encryption root: it inherits its key from `{}`",
                        d.encryption_root
                    )),
                    None => problems.push(format!("`{root}` is not a file system or volume")),
                }
                all.datasets.extend(ds);
            }
            Err(ZfsError {
                kind: ZfsErrorKind::DoesNotExist { .. },
                ..
            }) => problems.push(format!("`{root}` does not exist on {}", t.name)),
            Err(e) => return Err(ObserveError::Exec(*e.exec)),
        }
    }
    if problems.is_empty() {
        Ok(all)
    } else {
        Err(ObserveError::Mismatch(problems))
    }
}

pub(super) fn probe(t: &Target) -> (HostStatus, Option<super::zfs::Observed>) {
    let mut st = HostStatus::unprobed(t);
    let res = connect(t).and_then(|()| {
        let caps = t.host.caps().map_err(|e| ObserveError::Exec(*e.exec))?;
        if !caps.encryption {
            return Err(ObserveError::Other(format!(
                "{} runs {}, which has no native encryption",
                t.name,
                caps.describe()
            )));
        }
        observe(t)
    });
    match res {
        Ok(obs) => {
            st.locked = obs.locked();
            st.unmounted = obs.unmounted();
            let n = t.config.encryption_roots.len();
            if st.locked.is_empty() && st.unmounted.is_empty() {
                st.state = State::Up;
                st.detail = format!(
                    "{n} encryption root{} unlocked and mounted",
                    if n == 1 { "" } else { "s" }
                );
            } else {
                st.state = State::Locked;
                st.detail = describe_locked(&st.locked, &st.unmounted);
            }
            (st, Some(obs))
        }
        Err(ObserveError::Exec(e)) => {
            st.state = match e {
                ExecError::Unreachable { .. } => State::Unreachable,
                ExecError::HostKey { .. } => State::HostKey,
                _ => State::Error,
            };
            st.detail = e.to_string();
            (st, None)
        }
        Err(ObserveError::Mismatch(p)) => {
            st.detail = p.join("; ");
            st.hint = Some(format!(
                "fix hosts.{}.unlock.encryption_roots in the fleet file",
                t.name
            ));
            (st, None)
        }
        Err(ObserveError::Other(m)) => {
            st.detail = m;
            (st, None)
        }
    }
}

fn connect(t: &Target) -> Result<(), ObserveError> {
    match t.host.endpoint() {
        Endpoint::Local => Ok(()),
        Endpoint::Ssh(s) => s.connect().map_err(ObserveError::Exec),
    }
}

fn describe_locked(locked: &[String], unmounted: &[String]) -> String {
    let mut parts = Vec::new();
    if !locked.is_empty() {
        parts.push(format!("locked: {}", locked.join(", ")));
    }
    if !unmounted.is_empty() {
        parts.push(format!("not mounted: {}", unmounted.join(", ")));
    }
    parts.join("; ")
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

pub(super) fn unlock(
    t: &Target,
    observed: Option<&Observed>,
    secret: &Secret,
    deadline: Instant,
) -> Report {
    let Some(observed) = observed else {
        return Report::failed(t, Failure::new(K::Internal, "not observed"));
    };
    let ep = t.host.endpoint();
    // `zfs load-key` reads a passphrase or hex key up to the first line break;
    // only raw keys are read as they are.
    let line_read = observed.datasets.iter().any(|d| {
        d.locked()
            && d.keyformat != "raw"
            && t.config
                .encryption_roots
                .iter()
                .any(|r| r.as_str() == d.name)
    });
    if line_read {
        if let Some(f) = line_break_failure(t, secret) {
            return Report::failed(t, f);
        }
    }
    let redactor = Redactor::of(secret);
    let mut loaded = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let mut attempts = 0;

    // load-key, root by root; a wrong key for one root leaves it locked and
    // nothing below it mounted.
    for root in &t.config.encryption_roots {
        let Some(d) = observed.get(root.as_str()) else {
            continue;
        };
        if !d.locked() {
            continue;
        }
        let stdin = if d.keyformat == "raw" {
            secret.stdin_raw()
        } else {
            secret.stdin_line()
        };
        let argv = cmd::zfs()
            .args(["load-key", "-L", "prompt"])
            .arg(root.as_str());
        attempts += 1;
        tracing::info!("{}: loading the key of {root}", t.name);
        let res = ep.run_unchecked(
            &argv,
            &RunOptions {
                timeout: Some(remaining(deadline)),
                stdin: Some(stdin),
            },
        );
        match res {
            Ok(out) if out.status.success() => loaded.push(root.to_string()),
            Ok(out) => {
                let stderr = redactor.excerpt(&out.stderr, 3, MAX_EXCERPT);
                failures.push(load_key_failure(
                    t,
                    root,
                    &format!("`{argv}` failed on {}: {stderr}", t.name),
                    &stderr,
                ));
            }
            // zfs load-key exits 255 on a wrong key, which over ssh reads as
            // ssh's own code; the message tells them apart.
            Err(e) => {
                let stderr =
                    redactor.excerpt(e.stderr().unwrap_or_default().as_bytes(), 3, MAX_EXCERPT);
                let message = match &e {
                    ExecError::Failed { status, .. } => {
                        format!("`{argv}` failed on {} ({status}): {stderr}", t.name)
                    }
                    ExecError::Timeout { after, .. } => format!(
                        "`{argv}` did not finish on {} within {after:?}: {stderr}",
                        t.name
                    ),
                    other => redactor.scrub(&other.to_string()),
                };
                failures.push(load_key_failure(t, root, &message, &stderr));
            }
        }
    }

    // mount what is unlocked and meant to be mounted, parents first.
    let mut mounted = Vec::new();
    let now = match observe(t) {
        Ok(o) => o,
        Err(e) => return finish(t, observe_failure(e), attempts, loaded, mounted),
    };
    for d in now.datasets.iter().filter(|d| d.wants_mount()) {
        let argv = cmd::zfs().arg("mount").arg(&d.name);
        match ep.run(
            &argv,
            &RunOptions::timeout(remaining(deadline).min(QUERY_TIMEOUT)),
        ) {
            Ok(_) => mounted.push(d.name.clone()),
            Err(e) => failures.push(Failure::new(K::Mount, e.to_string())),
        }
    }

    // what is still locked or unmounted
    let after = match observe(t) {
        Ok(o) => o,
        Err(e) => return finish(t, observe_failure(e), attempts, loaded, mounted),
    };
    let still_locked = after.locked();
    let unmounted = after.unmounted();

    let mut services = Vec::new();
    if failures.is_empty() && still_locked.is_empty() && unmounted.is_empty() {
        if !t.config.services.is_empty() {
            let argv = Argv::new("systemctl")
                .arg("start")
                .args(t.config.services.iter().cloned());
            match ep.run(&argv, &RunOptions::timeout(remaining(deadline))) {
                Ok(_) => services = t.config.services.clone(),
                Err(e) => failures.push(Failure::new(K::Services, e.to_string())),
            }
        }
    } else if !t.config.services.is_empty() && failures.is_empty() {
        failures.push(Failure::new(
            K::Mount,
            format!(
                "{}; services not started",
                describe_locked(&still_locked, &unmounted)
            ),
        ));
    }

    let mut r = if let Some(first) = failures.first().cloned() {
        let mut f = first;
        if failures.len() > 1 {
            let rest: Vec<String> = failures[1..].iter().map(|f| f.message.clone()).collect();
            f.message = format!("{}; {}", f.message, rest.join("; "));
        }
        Report::failed(t, f)
    } else if !still_locked.is_empty() || !unmounted.is_empty() {
        Report::failed(
            t,
            Failure::new(K::Mount, describe_locked(&still_locked, &unmounted)),
        )
    } else {
        let mut msg = format!(
            "unlocked: loaded {}",
            if loaded.is_empty() {
                "no key (all were loaded)".to_string()
            } else {
                loaded.join(", ")
            }
        );
        if !mounted.is_empty() {
            msg.push_str(&format!("; mounted {}", mounted.len()));
        }
        if !services.is_empty() {
            msg.push_str(&format!("; started {}", services.join(", ")));
        }
        Report::new(t, Outcome::Unlocked, msg)
    };
    r.attempts = attempts;
    r.loaded = loaded;
    r.mounted = mounted;
    r.still_locked = still_locked.into_iter().chain(unmounted).collect();
    r.services = services;
    r
}

fn load_key_failure(t: &Target, root: &DatasetName, message: &str, stderr: &str) -> Failure {
    if ZfsErrorKind::classify(stderr) == ZfsErrorKind::WrongKey {
        Failure::new(
            K::WrongKey,
            format!("wrong key for `{root}` on {}: {stderr}", t.name),
        )
        .hint(format!(
            "check the secret `{}` for {}; nothing below `{root}` was mounted",
            t.config.secret, t.name
        ))
    } else {
        Failure::new(K::LoadKey, message)
    }
}

fn observe_failure(e: ObserveError) -> Failure {
    match e {
        ObserveError::Exec(e) => Failure::new(K::Mount, e.to_string()),
        ObserveError::Mismatch(p) => Failure::new(K::Mount, p.join("; ")),
        ObserveError::Other(m) => Failure::new(K::Mount, m),
    }
}

fn finish(
    t: &Target,
    f: Failure,
    attempts: u32,
    loaded: Vec<String>,
    mounted: Vec<String>,
) -> Report {
    let mut r = Report::failed(t, f);
    r.attempts = attempts;
    r.loaded = loaded;
    r.mounted = mounted;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `zfs get -H -p -r -t filesystem,volume -o name,property,value …` on
    /// OpenZFS 2.1 after an export/import: the root and its child locked, an
    /// unencrypted sibling is not listed (it is not below the root).
    const LOCKED: &str = "tank/secure\tencryptionroot\ttank/secure\n\
tank/secure\tkeystatus\tunavailable\n\
tank/secure\tkeyformat\tpassphrase\n\
tank/secure\tmounted\tno\n\
tank/secure\tcanmount\ton\n\
tank/secure\tmountpoint\t/tank/secure\n\
tank/secure/db\tencryptionroot\ttank/secure\n\
tank/secure/db\tkeystatus\tunavailable\n\
tank/secure/db\tkeyformat\tpassphrase\n\
tank/secure/db\tmounted\tno\n\
tank/secure/db\tcanmount\ton\n\
tank/secure/db\tmountpoint\t/tank/secure/db\n\
tank/secure/vol\tencryptionroot\ttank/secure\n\
tank/secure/vol\tkeystatus\tunavailable\n\
tank/secure/vol\tkeyformat\tpassphrase\n\
tank/secure/vol\tmounted\t-\n\
tank/secure/vol\tcanmount\t-\n\
tank/secure/vol\tmountpoint\t-\n\
tank/secure/off\tencryptionroot\ttank/secure\n\
tank/secure/off\tkeystatus\tavailable\n\
tank/secure/off\tkeyformat\tpassphrase\n\
tank/secure/off\tmounted\tno\n\
tank/secure/off\tcanmount\tnoauto\n\
tank/secure/off\tmountpoint\t/tank/secure/off\n";

    #[test]
    fn parses_and_judges() {
        let obs = Observed {
            datasets: parse_get(LOCKED),
        };
        assert_eq!(obs.datasets.len(), 4);
        assert_eq!(
            obs.locked(),
            ["tank/secure", "tank/secure/db", "tank/secure/vol"]
        );
        assert!(
            obs.unmounted().is_empty(),
            "locked ones are not mountable yet"
        );

        let unlocked = LOCKED.replace("unavailable", "available");
        let obs = Observed {
            datasets: parse_get(&unlocked),
        };
        assert!(obs.locked().is_empty());
        // Volumes are not mounted, canmount=noauto stays as it is.
        assert_eq!(obs.unmounted(), ["tank/secure", "tank/secure/db"]);
        assert_eq!(
            describe_locked(&["a".into()], &["b".into(), "c".into()]),
            "locked: a; not mounted: b, c"
        );
    }

    #[test]
    fn observe_command() {
        let root = DatasetName::parse("tank/secure").unwrap();
        assert_eq!(
            observe_argv(&root).to_string(),
            "zfs get -H -p -r -t filesystem,volume -o name,property,value encryptionroot,keystatus,keyformat,mounted,canmount,mountpoint tank/secure"
        );
    }
}
