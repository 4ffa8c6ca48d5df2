//! Remote unlock of encrypted hosts: `zfleet unlock`.
//!
//! Like every command that changes something, unlocking goes observe → plan →
//! execute:
//!
//! 1. **observe** ([`status`]): every host at once, with no secret in memory.
//!    A LUKS host is asked on its normal address (is it up?) and on its
//!    initrd's (is it waiting?), the initrd's key checked against the pin. A ZFS
//!    host is asked which of its encryption roots are locked or unmounted.
//! 2. **plan**: hosts that are up need nothing; hosts whose initrd key does not
//!    match, or that do not answer, fail here — before any secret is fetched.
//! 3. **secrets**: each reference the remaining hosts need is fetched once, one
//!    after another ([`provider::SecretCache`]).
//! 4. **execute**, all hosts at once, each within its own timeout: LUKS sends
//!    the passphrase over the connection whose key step 1 verified, then waits
//!    until the initrd is gone and the booted system answers; ZFS loads keys
//!    with the key on stdin, mounts, starts services and reports what is still
//!    locked.
//!
//! Secrets live in [`secret::Secret`] and reach children only on stdin. This
//! module never logs, stores or formats one; output of other programs that
//! might echo it goes through a [`Redactor`] before it becomes part of a
//! message, and every report is checked against all secrets of the run and
//! escaped ([`crate::text`]) before it leaves.

pub mod askpass;
pub mod pin;
pub mod provider;
pub mod redact;
pub mod secret;

mod luks;
mod zfs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Fleet, SecretRef, SshEndpoint, UnlockConfig, UnlockMethod};
use crate::exec::{self, SshOptions, SshTarget};
use crate::host::Host;
use crate::runtime::Runtime;
use crate::{parallel, text, Error};

pub use provider::{ProviderError, Providers, SecretCache};
pub use redact::Redactor;
pub use secret::Secret;

/// The longest message a report carries; the state database keeps
/// [`MAX_RECORDED`] characters of it.
pub const MAX_MESSAGE: usize = 2000;
/// The longest failure message stored in the state database.
pub const MAX_RECORDED: usize = 500;
/// Characters of remote output (askpass, zfs, a provider's stderr) quoted in
/// one message.
pub const MAX_EXCERPT: usize = 300;

/// One host to unlock and how to reach it.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub config: UnlockConfig,
    /// The booted system (local when zfleet runs on this host).
    pub host: Host,
    /// How the booted system is reached, for messages.
    pub normal: SshEndpoint,
    /// The initrd (LUKS), with the pinned key file as its only `known_hosts`.
    initrd: Option<Arc<SshTarget>>,
}

impl Target {
    pub fn initrd_endpoint(&self) -> Option<&SshEndpoint> {
        self.config.initrd.as_ref()
    }

    /// `user@address:port` of the booted system, or `local`.
    pub fn normal_shown(&self) -> String {
        if self.host.endpoint().is_local() {
            "this machine".into()
        } else {
            shown(&self.normal)
        }
    }
}

fn shown(ep: &SshEndpoint) -> String {
    match &ep.user {
        Some(u) => format!("{u}@{}:{}", ep.address, ep.port),
        None => format!("{}:{}", ep.address, ep.port),
    }
}

/// The hosts to work on: `names`, or every host with an unlock section.
///
/// Also withholds every `env:` secret variable of the fleet from child
/// processes, before any is started: an ssh started to probe a host must not
/// inherit a passphrase zfleet was given in its environment.
pub fn targets(rt: &Runtime, names: &[String]) -> Result<Vec<Target>, Error> {
    let (fleet, sessions) = (&rt.fleet, rt.sessions());
    for h in fleet.hosts.values() {
        if let Some(SecretRef::Env(name)) = h.unlock.as_ref().map(|u| &u.secret) {
            exec::withhold_env_var(name);
        }
    }
    let names: Vec<String> = if names.is_empty() {
        let all: Vec<String> = fleet
            .hosts
            .values()
            .filter(|h| h.unlock.is_some())
            .map(|h| h.name.clone())
            .collect();
        if all.is_empty() {
            return Err(Error::Usage(
                "no host in the fleet file has an [hosts.NAME.unlock] section; see docs/unlock.md"
                    .into(),
            ));
        }
        all
    } else {
        names.to_vec()
    };
    let mut out = Vec::new();
    for name in &names {
        let hc = fleet.host(name).ok_or_else(|| Error::UnknownHost {
            name: name.clone(),
            known: fleet.hosts.keys().cloned().collect(),
        })?;
        let Some(config) = hc.unlock.clone() else {
            return Err(Error::Usage(format!(
                "host `{name}` has no [hosts.{name}.unlock] section, so zfleet does not know how to unlock it"
            )));
        };
        if out.iter().any(|t: &Target| &t.name == name) {
            continue;
        }
        let host = rt.host(name)?;
        let initrd = config.initrd.as_ref().map(|ep| {
            Arc::new(SshTarget::new(
                format!("{name} (initrd)"),
                ep.address.clone(),
                ep.user.clone(),
                ep.port,
                SshOptions {
                    identity: ep.identity.clone(),
                    known_hosts: ep.known_hosts.clone(),
                    connect_timeout: ep.connect_timeout,
                    pinned: true,
                    ..SshOptions::default()
                },
                sessions.clone(),
            ))
        });
        out.push(Target {
            name: name.clone(),
            config,
            host,
            normal: hc.ssh.clone(),
            initrd,
        });
    }
    Ok(out)
}

/// What a host is doing, as far as unlocking goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Booted and, for ZFS, every encryption root unlocked and mounted.
    Up,
    /// LUKS: the initrd answers with its pinned key, waiting for the passphrase.
    Initrd,
    /// ZFS: booted, but encryption roots are locked or not mounted.
    Locked,
    /// Nothing answered.
    Unreachable,
    /// A host key did not match (the initrd's pin, or the booted system's).
    HostKey,
    /// LUKS: no initrd key is pinned for this host yet.
    NotPinned,
    /// Something else went wrong while looking.
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Initrd => "initrd",
            State::Locked => "locked",
            State::Unreachable => "unreachable",
            State::HostKey => "host key mismatch",
            State::NotPinned => "not pinned",
            State::Error => "error",
        }
    }
}

/// One host's state, for `zfleet unlock --status` and as step 1 of unlocking.
#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub method: UnlockMethod,
    pub state: State,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// ZFS: datasets whose key is not loaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locked: Vec<String>,
    /// ZFS: datasets whose key is loaded but that are not mounted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmounted: Vec<String>,
}

impl HostStatus {
    /// Where a probe starts: an error until the probe learns better.
    pub(crate) fn unprobed(t: &Target) -> Self {
        HostStatus {
            host: t.name.clone(),
            method: t.config.method,
            state: State::Error,
            detail: String::new(),
            hint: None,
            locked: Vec::new(),
            unmounted: Vec::new(),
        }
    }
}

/// Observed state plus what the executor needs from the observation.
pub(crate) struct Probe {
    status: HostStatus,
    zfs: Option<zfs::Observed>,
}

fn probe(t: &Target) -> Probe {
    match t.config.method {
        UnlockMethod::LuksInitrd => Probe {
            status: luks::probe(t),
            zfs: None,
        },
        UnlockMethod::Zfs => {
            let (status, obs) = zfs::probe(t);
            Probe { status, zfs: obs }
        }
    }
}

/// Looks at every host at once; touches no secret.
pub fn status(targets: &[Target], parallel: usize) -> Vec<HostStatus> {
    let out = parallel::map(targets, parallel, |t| probe(t).status);
    for t in targets {
        if let Some(i) = &t.initrd {
            i.disconnect();
        }
    }
    out.into_iter()
        .map(|mut s| {
            // No secret exists yet; what a host said is escaped all the same.
            s.detail = text::one_line(&s.detail);
            s.hint = s.hint.as_deref().map(text::one_line);
            s
        })
        .collect()
}

/// How one host's unlock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// zfleet unlocked it and saw the result.
    Unlocked,
    /// It needed nothing.
    AlreadyUp,
    /// `--dry-run`: it would be unlocked.
    WouldUnlock,
    /// The host refused the secret (a wrong passphrase or key); still locked.
    Rejected,
    /// It is still locked (or could not be reached); `step` says where.
    Failed,
}

/// Where an unlock failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Reaching the host (normal address or initrd).
    Connect,
    /// Looking at a reachable host: its ZFS dialect, its encryption roots.
    Probe,
    /// A host key did not match, or no initrd key is pinned.
    HostKey,
    /// Fetching the secret from its provider.
    Secret,
    /// LUKS: handing the passphrase to askpass.
    Send,
    /// LUKS: waiting for the initrd to go and the booted system to answer.
    Confirm,
    /// ZFS: `zfs load-key`.
    LoadKey,
    /// ZFS: mounting the unlocked datasets.
    Mount,
    /// ZFS: starting the configured services.
    Services,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Probe => "probe",
            Step::HostKey => "host key",
            Step::Secret => "secret",
            Step::Send => "send",
            Step::Confirm => "confirm",
            Step::LoadKey => "load-key",
            Step::Mount => "mount",
            Step::Services => "services",
        }
    }
}

/// One host's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub host: String,
    pub method: UnlockMethod,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
    /// What went wrong, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<FailureKind>,
    /// What happened, for people. Anything in it that came from the host or a
    /// provider has been redacted and its control characters escaped.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Times the secret was sent (LUKS: to askpass; ZFS: `zfs load-key` runs).
    pub attempts: u32,
    /// ZFS: encryption roots whose key zfleet loaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loaded: Vec<String>,
    /// ZFS: datasets zfleet mounted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounted: Vec<String>,
    /// ZFS: datasets still locked or not mounted at the end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub still_locked: Vec<String>,
    /// ZFS: units started.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    pub seconds: f64,
}

impl Report {
    fn new(t: &Target, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            host: t.name.clone(),
            method: t.config.method,
            outcome,
            step: None,
            kind: None,
            message: message.into(),
            hint: None,
            attempts: 0,
            loaded: Vec::new(),
            mounted: Vec::new(),
            still_locked: Vec::new(),
            services: Vec::new(),
            seconds: 0.0,
        }
    }

    fn failed(t: &Target, f: Failure) -> Self {
        let outcome = if f.kind.is_rejection() {
            Outcome::Rejected
        } else {
            Outcome::Failed
        };
        let mut r = Self::new(t, outcome, f.message);
        r.step = Some(f.kind.step());
        r.kind = Some(f.kind);
        r.hint = f.hint;
        r.attempts = f.attempts;
        r
    }

    /// The report as it leaves zfleet-core: see [`clean`].
    fn cleaned(mut self, redactor: &Redactor) -> Self {
        self.message = clean(redactor, &self.message);
        self.hint = self.hint.map(|h| clean(redactor, &h));
        self
    }

    pub fn is_ok(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Unlocked | Outcome::AlreadyUp | Outcome::WouldUnlock
        )
    }
}

/// What went wrong, precisely enough to act on and to count. Each kind belongs
/// to one [`Step`]. Stored with the run in the state database; `kind` in
/// `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Nothing answered: not the booted system, not its initrd.
    Unreachable,
    /// ssh failed otherwise: authentication, a dropped connection.
    Connection,
    /// No initrd key is pinned for the initrd's address.
    NotPinned,
    /// A host presented a key other than the pinned (or known) one.
    HostKeyMismatch,
    /// A ZFS host answered but could not be unlocked as configured.
    Probe,
    /// The provider failed, is not signed in, or has no such entry.
    SecretUnavailable,
    /// The provider did not finish within its timeout.
    SecretTimeout,
    /// The secret holds a CR or LF, which a line-reading askpass would split.
    SecretLineBreak,
    /// The initrd rejected the passphrase.
    WrongPassphrase,
    /// askpass did not ask for a passphrase in time.
    NoPrompt,
    /// The initrd ended the session without asking.
    SessionEnded,
    /// askpass failed, or ssh could not start a session.
    AskpassFailed,
    /// askpass kept asking for more devices than a host has.
    TooManyPrompts,
    /// After the passphrase, askpass neither finished nor asked again in time.
    NoAnswer,
    /// The initrd still answered with its pinned key at the end of the timeout.
    InitrdStayed,
    /// The initrd went away, but the booted system did not answer in time.
    SystemDown,
    /// ZFS: the host refused the key.
    WrongKey,
    /// ZFS: `zfs load-key` failed otherwise.
    LoadKey,
    /// ZFS: mounting, or datasets still locked or unmounted at the end.
    Mount,
    /// ZFS: `systemctl start` failed.
    Services,
    /// zfleet lost track of the host (a bug).
    Internal,
}

impl FailureKind {
    pub fn step(self) -> Step {
        use FailureKind as K;
        match self {
            K::Unreachable | K::Connection | K::Internal => Step::Connect,
            K::NotPinned | K::HostKeyMismatch => Step::HostKey,
            K::Probe => Step::Probe,
            K::SecretUnavailable | K::SecretTimeout | K::SecretLineBreak => Step::Secret,
            K::WrongPassphrase
            | K::NoPrompt
            | K::SessionEnded
            | K::AskpassFailed
            | K::TooManyPrompts => Step::Send,
            K::NoAnswer | K::InitrdStayed | K::SystemDown => Step::Confirm,
            K::WrongKey | K::LoadKey => Step::LoadKey,
            K::Mount => Step::Mount,
            K::Services => Step::Services,
        }
    }

    /// The host said the secret was wrong.
    pub fn is_rejection(self) -> bool {
        matches!(self, FailureKind::WrongPassphrase | FailureKind::WrongKey)
    }

    /// The name in `--json` and in the state database.
    pub fn as_str(self) -> &'static str {
        use FailureKind as K;
        match self {
            K::Unreachable => "unreachable",
            K::Connection => "connection",
            K::NotPinned => "not-pinned",
            K::HostKeyMismatch => "host-key-mismatch",
            K::Probe => "probe",
            K::SecretUnavailable => "secret-unavailable",
            K::SecretTimeout => "secret-timeout",
            K::SecretLineBreak => "secret-line-break",
            K::WrongPassphrase => "wrong-passphrase",
            K::NoPrompt => "no-prompt",
            K::SessionEnded => "session-ended",
            K::AskpassFailed => "askpass-failed",
            K::TooManyPrompts => "too-many-prompts",
            K::NoAnswer => "no-answer",
            K::InitrdStayed => "initrd-stayed",
            K::SystemDown => "system-down",
            K::WrongKey => "wrong-key",
            K::LoadKey => "load-key",
            K::Mount => "mount",
            K::Services => "services",
            K::Internal => "internal",
        }
    }
}

/// A failure, as the executors report it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub hint: Option<String>,
    pub attempts: u32,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            attempts: 0,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }
}

/// What to do with one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It is up: nothing.
    Nothing,
    /// Fetch its secret and unlock it.
    Unlock,
    /// `--dry-run`: say it would be unlocked.
    WouldUnlock,
    /// It cannot be unlocked; report this failure, fetch nothing.
    Fail(FailureKind),
}

/// The plan for one host, from its observed state alone. A secret is fetched
/// only for `Unlock`: never for a host whose key does not match, that is not
/// pinned, or that does not answer.
pub fn plan(status: &HostStatus, dry_run: bool) -> Action {
    match status.state {
        State::Up => Action::Nothing,
        State::Initrd | State::Locked if dry_run => Action::WouldUnlock,
        State::Initrd | State::Locked => Action::Unlock,
        State::HostKey => Action::Fail(FailureKind::HostKeyMismatch),
        State::NotPinned => Action::Fail(FailureKind::NotPinned),
        State::Unreachable => Action::Fail(FailureKind::Unreachable),
        State::Error => Action::Fail(match status.method {
            UnlockMethod::LuksInitrd => FailureKind::Connection,
            UnlockMethod::Zfs => FailureKind::Probe,
        }),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overrides each host's `timeout`.
    pub timeout: Option<Duration>,
    /// Overrides each host's `retries`.
    pub retries: Option<u32>,
    /// Hosts worked on at the same time.
    pub parallel: usize,
    /// Observe and plan only: no secret is fetched, nothing is sent.
    pub dry_run: bool,
}

/// Unlocks `targets`; one report per target, in order.
pub fn unlock(targets: &[Target], providers: &Providers, opts: &Options) -> Vec<Report> {
    let started = Instant::now();
    // 1. observe
    let probes = parallel::map(targets, opts.parallel, probe);

    // 2. plan
    let mut reports: Vec<Option<Report>> = Vec::new();
    for (t, p) in targets.iter().zip(&probes) {
        let s = &p.status;
        reports.push(match plan(s, opts.dry_run) {
            Action::Nothing => Some(Report::new(t, Outcome::AlreadyUp, s.detail.clone())),
            Action::Unlock => None,
            Action::WouldUnlock => {
                let how = match t.config.method {
                    UnlockMethod::LuksInitrd => "would send the passphrase to the initrd",
                    UnlockMethod::Zfs => "would load keys and mount",
                };
                Some(Report::new(
                    t,
                    Outcome::WouldUnlock,
                    format!("{}; {how} (secret from `{}`)", s.detail, t.config.secret),
                ))
            }
            Action::Fail(kind) => Some(probe_failure(t, s, kind)),
        });
    }

    // 3. secrets, each reference once, one at a time
    if reports.iter().any(Option::is_none) {
        secret::protect_process();
    }
    let mut cache = SecretCache::new();
    let mut secrets: Vec<Option<Arc<Secret>>> = Vec::new();
    for (t, r) in targets.iter().zip(reports.iter_mut()) {
        if r.is_some() {
            secrets.push(None);
            continue;
        }
        tracing::info!("{}: fetching the secret `{}`", t.name, t.config.secret);
        let fetched = cache.get(providers, &t.config.secret).map_err(|e| {
            let kind = match e.problem {
                provider::Problem::Timeout { .. } => FailureKind::SecretTimeout,
                _ => FailureKind::SecretUnavailable,
            };
            let mut f = Failure::new(
                kind,
                format!("could not get the secret for {}: {e}", t.name),
            );
            f.hint = e.hint();
            f
        });
        // askpass reads up to the first line break; zfs too, for
        // passphrase and hex keys (checked there, per key format).
        let fetched = fetched.and_then(|s| match t.config.method {
            UnlockMethod::LuksInitrd => match line_break_failure(t, &s) {
                Some(f) => Err(f),
                None => Ok(s),
            },
            UnlockMethod::Zfs => Ok(s),
        });
        match fetched {
            Ok(s) => secrets.push(Some(s)),
            Err(f) => {
                *r = Some(Report::failed(t, f));
                secrets.push(None);
            }
        }
    }
    // Every secret of the run, for a last look at every message: a provider's
    // error may quote another reference's secret.
    let redactor = cache.redactor();
    drop(cache);
    tracing::debug!("secrets fetched after {:?}", started.elapsed());

    // 4. execute
    let work: Vec<(usize, &Target)> = targets.iter().enumerate().collect();
    let done = parallel::map(&work, opts.parallel, |(i, t)| {
        let (Some(secret), None) = (&secrets[*i], &reports[*i]) else {
            return None;
        };
        let start = Instant::now();
        let timeout = opts.timeout.unwrap_or(t.config.timeout);
        let deadline = start + timeout;
        let mut r = match t.config.method {
            UnlockMethod::LuksInitrd => {
                let retries = opts.retries.unwrap_or(t.config.retries);
                luks::unlock(t, secret, retries, deadline, timeout)
            }
            UnlockMethod::Zfs => zfs::unlock(t, probes[*i].zfs.as_ref(), secret, deadline),
        };
        r.seconds = start.elapsed().as_secs_f64();
        Some(r)
    });
    drop(secrets);
    for t in targets {
        if let Some(i) = &t.initrd {
            i.disconnect();
        }
    }
    // Every host has a report from planning or from execution, never both.
    targets
        .iter()
        .zip(reports.into_iter().zip(done))
        .map(|(t, (planned, done))| {
            let r = planned.or(done).unwrap_or_else(|| {
                Report::failed(
                    t,
                    Failure::new(FailureKind::Internal, "internal error: no result"),
                )
            });
            r.cleaned(&redactor)
        })
        .collect()
}

/// Text as it leaves zfleet-core: no whole secret of the run in it (remote
/// output quoted in it was redacted when it was read), no control characters,
/// one line, bounded.
fn clean(redactor: &Redactor, s: &str) -> String {
    text::bounded(&text::one_line(&redactor.scrub(s)), MAX_MESSAGE).into_owned()
}

/// The refusal of a secret with a line break, naming host and reference, or
/// `None` when it has none.
pub(crate) fn line_break_failure(t: &Target, secret: &Secret) -> Option<Failure> {
    let (at, which) = secret.line_break()?;
    Some(
        Failure::new(
            FailureKind::SecretLineBreak,
            format!(
                "the secret `{}` for {} contains a {} (byte {} of {}): a passphrase is read up to the first line break, so {} would take this one for two and spend a try on each. Nothing was sent.",
                t.config.secret,
                t.name,
                which.name(),
                at + 1,
                secret.len(),
                t.name
            ),
        )
        .hint(format!(
            "remove the line break from the entry `{}` (the one newline a provider prints at the end is already taken off)",
            t.config.secret
        )),
    )
}

/// Records each attempted unlock (not hosts that were already up) in the
/// state database as a run of kind `unlock`: host, method, outcome and, for a
/// failure, its [`FailureKind`] and the start of its message ([`MAX_RECORDED`]
/// characters). Messages are redacted and escaped before they leave
/// [`unlock`], so nothing a host or provider printed is stored as it came.
pub fn record(
    state: &crate::state::State,
    reports: &[Report],
    now: i64,
) -> Result<(), crate::state::StateError> {
    for r in reports {
        let result = match r.outcome {
            Outcome::AlreadyUp | Outcome::WouldUnlock => continue,
            Outcome::Unlocked => "unlocked",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        };
        let started = now - r.seconds.ceil() as i64;
        let id = state.start_run(&crate::state::RunRecord {
            kind: "unlock".into(),
            client: Some(r.host.clone()),
            source: Some(
                match r.method {
                    UnlockMethod::LuksInitrd => "luks-initrd",
                    UnlockMethod::Zfs => "zfs",
                }
                .into(),
            ),
            started,
            ..Default::default()
        })?;
        let failed = r.outcome != Outcome::Unlocked;
        let kind = r.kind.filter(|_| failed).map(FailureKind::as_str);
        let error =
            failed.then(|| text::bounded(&text::one_line(&r.message), MAX_RECORDED).into_owned());
        state.finish_run_failed(id, now, 0, 0, result, kind, error.as_deref())?;
    }
    Ok(())
}

fn probe_failure(t: &Target, s: &HostStatus, kind: FailureKind) -> Report {
    let mut f = Failure::new(kind, s.detail.clone());
    f.hint = s.hint.clone();
    Report::failed(t, f)
}

/// Whether one host's secret can be had, for `--check-secrets`.
#[derive(Debug, Clone, Serialize)]
pub struct SecretCheck {
    pub host: String,
    /// The reference, as written in the fleet file.
    pub secret: String,
    pub ok: bool,
    /// What went wrong with `secret` (which is not repeated here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Fetches each host's secret (each reference once) and forgets it again,
/// without contacting any host: to find out before a reboot that the password
/// manager is signed in and every entry exists.
pub fn check_secrets(targets: &[Target], providers: &Providers) -> Vec<SecretCheck> {
    secret::protect_process();
    let mut cache = SecretCache::new();
    let checks: Vec<SecretCheck> = targets
        .iter()
        .map(|t| {
            let res = cache.get(providers, &t.config.secret);
            let (error, hint) = match &res {
                Err(e) => (Some(e.problem.to_string()), e.hint()),
                // The same refusal `unlock` makes, before a reboot rather
                // than during one. ZFS raw keys may hold any byte; which
                // format a key has is on the host, not looked at here.
                Ok(s) => match (t.config.method, line_break_failure(t, s)) {
                    (UnlockMethod::LuksInitrd, Some(f)) => (Some(f.message), f.hint),
                    _ => (None, None),
                },
            };
            SecretCheck {
                host: t.name.clone(),
                secret: t.config.secret.to_string(),
                ok: error.is_none(),
                error,
                hint,
            }
        })
        .collect();
    let redactor = cache.redactor();
    checks
        .into_iter()
        .map(|c| SecretCheck {
            error: c.error.map(|e| clean(&redactor, &e)),
            hint: c.hint.map(|h| clean(&redactor, &h)),
            ..c
        })
        .collect()
}

/// What `--pin` found: the keys the initrd presents, what is pinned now, and
/// other hosts that pin the same key.
#[derive(Debug, Clone, Serialize)]
pub struct PinPlan {
    pub host: String,
    pub address: String,
    pub file: std::path::PathBuf,
    pub presented: Vec<pin::ScannedKey>,
    pub pinned: Vec<pin::ScannedKey>,
    /// Hosts whose pin file already holds one of the presented keys.
    pub shared_with: Vec<String>,
}

impl PinPlan {
    /// Whether the presented keys are exactly what is pinned already.
    pub fn unchanged(&self) -> bool {
        !self.pinned.is_empty()
            && self.presented.len() == self.pinned.len()
            && self
                .presented
                .iter()
                .all(|k| self.pinned.iter().any(|p| p.key == k.key))
    }
}

/// Step one of `--pin`: scan the initrd's keys. Sends nothing but the ssh
/// handshake (`ssh-keyscan`).
pub fn pin_plan(fleet: &Fleet, name: &str) -> Result<PinPlan, Error> {
    let hc = fleet.host(name).ok_or_else(|| Error::UnknownHost {
        name: name.to_string(),
        known: fleet.hosts.keys().cloned().collect(),
    })?;
    let ep = hc
        .unlock
        .as_ref()
        .and_then(|u| u.initrd.as_ref())
        .ok_or_else(|| {
            Error::Usage(format!(
                "host `{name}` is not unlocked through an initrd (no [hosts.{name}.unlock] with method = \"luks-initrd\"), so it has no initrd key to pin"
            ))
        })?;
    let file = ep
        .known_hosts
        .clone()
        .ok_or_else(|| Error::Internal("the initrd has no pin file".into()))?;
    let presented = pin::scan(name, ep, ep.connect_timeout)?;
    if presented.is_empty() {
        return Err(Error::Usage(format!(
            "the initrd of `{name}` ({}) did not answer ssh-keyscan within {:?}; is {name} waiting for its passphrase?",
            shown(ep),
            ep.connect_timeout
        )));
    }
    // An initrd often shares the booted system's address; scanning a host that
    // is up would offer its everyday key for pinning.
    let normal_known = hc.ssh.known_hosts.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".ssh/known_hosts"))
    });
    if let Some(known) = normal_known {
        let booted = pin::known_keys(&known, &hc.ssh);
        if let Some(k) = presented.iter().find(|k| booted.contains(&k.key)) {
            return Err(Error::Usage(format!(
                "{} presents {k}, the key of {name}'s booted system (as known in {}): {name} is up, not waiting in its initrd. Nothing was pinned; pin while it waits for its passphrase, after a reboot.",
                shown(ep),
                known.display()
            )));
        }
    }
    let pinned_keys = pin::pinned_keys(&file).map_err(|source| Error::File {
        path: file.clone(),
        action: "read",
        source,
    })?;
    let pinned = pin::fingerprints(name, &pinned_keys)?;
    let mut shared_with = Vec::new();
    for other in fleet.hosts.values().filter(|h| h.name != name) {
        let Some(f) = other
            .unlock
            .as_ref()
            .and_then(|u| u.initrd.as_ref())
            .and_then(|i| i.known_hosts.as_ref())
        else {
            continue;
        };
        let theirs = pin::pinned_keys(f).unwrap_or_default();
        if presented.iter().any(|k| theirs.contains(&k.key)) {
            shared_with.push(other.name.clone());
        }
    }
    Ok(PinPlan {
        host: name.to_string(),
        address: shown(ep),
        file,
        presented,
        pinned,
        shared_with,
    })
}

/// Step two of `--pin`: write the keys the user accepted. With `fingerprint`,
/// only the presented key with that fingerprint, which must exist.
pub fn pin_apply(
    fleet: &Fleet,
    plan: &PinPlan,
    fingerprint: Option<&str>,
    now: &str,
) -> Result<Vec<pin::ScannedKey>, Error> {
    let keys: Vec<pin::ScannedKey> = match fingerprint {
        None => plan.presented.clone(),
        Some(fp) => {
            let want = fp.trim();
            let want = want.strip_prefix("SHA256:").unwrap_or(want);
            let found: Vec<_> = plan
                .presented
                .iter()
                .filter(|k| k.fingerprint.strip_prefix("SHA256:") == Some(want))
                .cloned()
                .collect();
            if found.is_empty() {
                let list: Vec<String> = plan.presented.iter().map(|k| k.to_string()).collect();
                return Err(Error::Usage(format!(
                    "the initrd of `{}` ({}) presents no key with fingerprint {fp}; it presents {}. Nothing was pinned.",
                    plan.host,
                    plan.address,
                    list.join(", ")
                )));
            }
            found
        }
    };
    let ep = fleet
        .host(&plan.host)
        .and_then(|h| h.unlock.as_ref())
        .and_then(|u| u.initrd.as_ref())
        .ok_or_else(|| Error::Internal("host changed between scan and pin".into()))?;
    pin::write_pin(&plan.file, &plan.host, ep, &keys, now).map_err(|source| Error::File {
        path: plan.file.clone(),
        action: "write",
        source,
    })?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn status(method: UnlockMethod, state: State) -> HostStatus {
        HostStatus {
            host: "alpha".into(),
            method,
            state,
            detail: String::new(),
            hint: None,
            locked: Vec::new(),
            unmounted: Vec::new(),
        }
    }

    /// `--json` and the state database name a kind the same way.
    #[test]
    fn failure_kinds_have_one_name() {
        use FailureKind as K;
        for k in [
            K::Unreachable,
            K::Connection,
            K::NotPinned,
            K::HostKeyMismatch,
            K::Probe,
            K::SecretUnavailable,
            K::SecretTimeout,
            K::SecretLineBreak,
            K::WrongPassphrase,
            K::NoPrompt,
            K::SessionEnded,
            K::AskpassFailed,
            K::TooManyPrompts,
            K::NoAnswer,
            K::InitrdStayed,
            K::SystemDown,
            K::WrongKey,
            K::LoadKey,
            K::Mount,
            K::Services,
            K::Internal,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(
                k.is_rejection(),
                matches!(k.step(), Step::Send | Step::LoadKey) && k.as_str().starts_with("wrong-")
            );
        }
    }

    #[rstest]
    #[case(UnlockMethod::LuksInitrd, State::Up, false, Action::Nothing)]
    #[case(UnlockMethod::LuksInitrd, State::Initrd, false, Action::Unlock)]
    #[case(UnlockMethod::LuksInitrd, State::Initrd, true, Action::WouldUnlock)]
    #[case(UnlockMethod::Zfs, State::Locked, false, Action::Unlock)]
    #[case(UnlockMethod::Zfs, State::Locked, true, Action::WouldUnlock)]
    #[case(
        UnlockMethod::LuksInitrd,
        State::HostKey,
        false,
        Action::Fail(FailureKind::HostKeyMismatch)
    )]
    #[case(
        UnlockMethod::LuksInitrd,
        State::NotPinned,
        false,
        Action::Fail(FailureKind::NotPinned)
    )]
    #[case(
        UnlockMethod::LuksInitrd,
        State::NotPinned,
        true,
        Action::Fail(FailureKind::NotPinned)
    )]
    #[case(
        UnlockMethod::LuksInitrd,
        State::Unreachable,
        false,
        Action::Fail(FailureKind::Unreachable)
    )]
    #[case(
        UnlockMethod::Zfs,
        State::Unreachable,
        false,
        Action::Fail(FailureKind::Unreachable)
    )]
    #[case(
        UnlockMethod::LuksInitrd,
        State::Error,
        false,
        Action::Fail(FailureKind::Connection)
    )]
    #[case(
        UnlockMethod::Zfs,
        State::Error,
        false,
        Action::Fail(FailureKind::Probe)
    )]
    #[case(UnlockMethod::Zfs, State::Up, true, Action::Nothing)]
    fn plans(
        #[case] method: UnlockMethod,
        #[case] state: State,
        #[case] dry_run: bool,
        #[case] want: Action,
    ) {
        assert_eq!(plan(&status(method, state), dry_run), want);
    }
}
