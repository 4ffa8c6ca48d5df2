//! LUKS in the initrd, over ssh: the seed's `initrd-unlock`, done carefully.
//!
//! The order is what makes it safe:
//!
//! 1. a master connection to the initrd that only authenticates (`ssh -N`),
//!    checking the initrd's key against this host's pin file and nothing else;
//!    a mismatch stops here, before the secret is even fetched;
//! 2. a session over that same connection (and only over it: see
//!    [`SshTarget::mux_session`]) that reaches askpass; the passphrase and a
//!    newline go to its stdin, and its output says whether it was accepted;
//! 3. confirmation, not a guess from a ping: the initrd's pinned key must
//!    disappear from its address, and the booted system must answer on its
//!    own address with its own key, within the host's timeout.

use std::io::{Read, Write};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use super::askpass::{is_prompt, is_rejection, Conversation, Event, Next, Scanner};
use super::pin::{self, ScannedKey};
use super::redact::Redactor;
use super::{
    shown, Failure, FailureKind as K, HostStatus, Outcome, Report, Secret, State, Target,
    MAX_EXCERPT,
};
use crate::exec::{Argv, ChildGuard, Endpoint, ExecError, SshTarget};

/// How long to wait for askpass's first prompt before sending anyway (some
/// askpass programs print none).
const PROMPT_WAIT: Duration = Duration::from_secs(5);
/// After a passphrase, how long askpass may stay silent and open before zfleet
/// stops waiting for it and looks at the host instead. cryptsetup tries each
/// key slot with a KDF tuned to take a second or two, so a rejection takes a
/// few seconds per slot.
const SETTLE: Duration = Duration::from_secs(30);
/// Pause between confirmation polls.
const POLL: Duration = Duration::from_secs(1);

enum InitrdProbe {
    /// Connected; the key matched the pin.
    Verified,
    /// Nothing pinned for this address (the initrd presents `presented`).
    NotPinned {
        presented: Vec<ScannedKey>,
    },
    /// The initrd presented a key that is not the pinned one.
    Mismatch {
        presented: Vec<ScannedKey>,
        pinned: Vec<ScannedKey>,
    },
    Failed(ExecError),
}

fn initrd_of(t: &Target) -> Option<(&SshTarget, &crate::config::SshEndpoint, &std::path::Path)> {
    let target = t.initrd.as_deref()?;
    let ep = t.config.initrd.as_ref()?;
    let file = ep.known_hosts.as_deref()?;
    Some((target, ep, file))
}

fn connect_normal(t: &Target) -> Result<(), ExecError> {
    match t.host.endpoint() {
        Endpoint::Local => Ok(()),
        Endpoint::Ssh(s) => s.connect(),
    }
}

fn probe_initrd(t: &Target) -> InitrdProbe {
    let Some((target, ep, file)) = initrd_of(t) else {
        return InitrdProbe::Failed(ExecError::Refused {
            host: t.name.clone(),
            reason: "no initrd endpoint".into(),
        });
    };
    let scan = || pin::scan(&t.name, ep, ep.connect_timeout).unwrap_or_default();
    let pinned = match pin::pinned_keys(file) {
        Ok(k) => k,
        Err(e) => {
            return InitrdProbe::Failed(ExecError::Refused {
                host: t.name.clone(),
                reason: format!("cannot read {}: {e}", file.display()),
            })
        }
    };
    // Nothing pinned: no connection at all, only a look at the key.
    if pinned.is_empty() {
        return InitrdProbe::NotPinned { presented: scan() };
    }
    match target.connect() {
        Ok(()) => InitrdProbe::Verified,
        Err(ExecError::HostKey { .. }) => {
            if pin::has_entry(file, ep) {
                InitrdProbe::Mismatch {
                    presented: scan(),
                    pinned: pin::fingerprints(&t.name, &pinned).unwrap_or_default(),
                }
            } else {
                InitrdProbe::NotPinned { presented: scan() }
            }
        }
        Err(e) => InitrdProbe::Failed(e),
    }
}

fn keys_list(keys: &[ScannedKey]) -> String {
    keys.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn probe(t: &Target) -> HostStatus {
    let mut st = HostStatus::unprobed(t);
    let Some((target, ep, file)) = initrd_of(t) else {
        st.detail = "no initrd endpoint configured".into();
        return st;
    };
    // Both at once: a host in its initrd often does not answer on its normal
    // address at all, and waiting for that timeout first would double the wait.
    let (normal, initrd) = std::thread::scope(|s| {
        let n = s.spawn(|| connect_normal(t));
        let i = s.spawn(|| probe_initrd(t));
        (
            n.join().unwrap_or_else(|_| {
                Err(ExecError::Refused {
                    host: t.name.clone(),
                    reason: "probe panicked".into(),
                })
            }),
            i.join().unwrap_or_else(|_| {
                InitrdProbe::Failed(ExecError::Refused {
                    host: t.name.clone(),
                    reason: "probe panicked".into(),
                })
            }),
        )
    });
    let initrd_at = shown(ep);
    let repin = format!(
        "compare the fingerprint with the initrd key on {name} itself (`ssh-keygen -lf <initrd host key>` while it is booted, or its console), then pin it: `zfleet unlock --pin {name}`",
        name = t.name
    );
    match (normal, initrd) {
        (Ok(()), _) => {
            target.disconnect();
            st.state = State::Up;
            st.detail = format!("answers on {}", t.normal_shown());
        }
        (Err(_), InitrdProbe::Verified) => {
            tracing::info!(
                "{}: the initrd's host key is the one pinned in {}",
                t.name,
                file.display()
            );
            st.state = State::Initrd;
            st.detail = format!("waiting in the initrd on {initrd_at} (pinned key verified)");
        }
        (Err(_), InitrdProbe::Mismatch { presented, pinned }) => {
            st.state = State::HostKey;
            st.detail = format!(
                "the initrd on {initrd_at} presented a host key that is not the one pinned in {}: refusing to send the passphrase (presented: {}; pinned: {})",
                file.display(),
                if presented.is_empty() { "?".into() } else { keys_list(&presented) },
                keys_list(&pinned),
            );
            st.hint = Some(format!(
                "if {}'s initrd key changed on purpose (a reinstall, a new key), {repin}; if not, something else answers on {initrd_at}: do not unlock",
                t.name
            ));
        }
        (Err(ne @ ExecError::Unreachable { .. }), InitrdProbe::NotPinned { presented })
            if presented.is_empty() =>
        {
            st.state = State::Unreachable;
            st.detail = format!(
                "neither {} nor its initrd answered: {ne}; initrd: nothing answers on {initrd_at} (and no key is pinned for it in {})",
                t.name,
                file.display()
            );
            st.hint = Some(repin);
        }
        (Err(_), InitrdProbe::NotPinned { presented }) => {
            st.state = State::NotPinned;
            st.detail = if presented.is_empty() {
                format!(
                    "no initrd key is pinned in {} for {initrd_at}, and nothing answers there",
                    file.display()
                )
            } else {
                format!(
                    "no initrd key is pinned in {} for {initrd_at}; it presents {}",
                    file.display(),
                    keys_list(&presented)
                )
            };
            st.hint = Some(repin);
        }
        (Err(ne), InitrdProbe::Failed(ie)) => {
            let unreachable = |e: &ExecError| matches!(e, ExecError::Unreachable { .. });
            if let ExecError::HostKey { .. } = ne {
                st.state = State::HostKey;
                st.detail = ne.to_string();
            } else if unreachable(&ne) && unreachable(&ie) {
                st.state = State::Unreachable;
                st.detail = format!("neither {} nor its initrd answered: {ne}; {ie}", t.name);
            } else {
                st.state = State::Error;
                st.detail = format!("{ne}; initrd: {ie}");
            }
        }
    }
    st
}

pub(super) fn unlock(
    t: &Target,
    secret: &Secret,
    retries: u32,
    deadline: Instant,
    timeout: Duration,
) -> Report {
    let Some((target, _, _)) = initrd_of(t) else {
        return Report::failed(t, Failure::new(K::Internal, "no initrd endpoint"));
    };
    // The probe's connection is normally still up. If it dropped, a new one
    // verifies the pinned key again before any session exists.
    if !target.is_connected() {
        if let Err(e) = target.connect() {
            let kind = match e {
                ExecError::HostKey { .. } => K::HostKeyMismatch,
                ExecError::Unreachable { .. } => K::Unreachable,
                _ => K::Connection,
            };
            return Report::failed(t, Failure::new(kind, e.to_string()));
        }
    }
    let argv = t
        .config
        .initrd_command
        .as_ref()
        .and_then(|w| w.split_first())
        .map(|(p, rest)| Argv::new(p).args(rest.iter().cloned()));
    tracing::info!(
        "{}: sending the passphrase over the verified connection",
        t.name
    );
    let sent = converse(t, target, argv.as_ref(), secret, retries, deadline, timeout);
    target.disconnect();
    let sent = match sent {
        Ok(n) => n,
        Err(f) => return Report::failed(t, f),
    };
    tracing::info!(
        "{}: passphrase handed over; waiting for the booted system",
        t.name
    );
    match confirm(t, deadline, timeout) {
        Ok(msg) => {
            let mut r = Report::new(t, Outcome::Unlocked, msg);
            r.attempts = sent;
            r
        }
        Err(f) => Report::failed(t, f.attempts(sent)),
    }
}

/// Everything askpass said in this session, as bytes in the order they came
/// (stdout and stderr together), for messages: only ever shown through the
/// [`Redactor`], which sees the whole of it at once, so an echo split across
/// reads or lines is still found.
#[derive(Default)]
struct Transcript {
    bytes: Vec<u8>,
}

/// The transcript keeps the last this many bytes (and then half as many):
/// messages quote its end, and an initrd that talks forever must not grow
/// zfleet's memory.
const MAX_TRANSCRIPT: usize = 64 * 1024;

impl Transcript {
    /// A prompt ends without a line break, and the reply to it (on the other
    /// stream) would continue its line; the scanner took it as a line, so the
    /// transcript gets the break. Line breaks never hide a secret from the
    /// redactor, which matches across them.
    fn line_ended(&mut self, scan: &Scanner, chunk: &[u8]) {
        if scan.at_line_start() && !chunk.ends_with(b"\n") && !chunk.ends_with(b"\r") {
            self.bytes.push(b'\n');
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > MAX_TRANSCRIPT {
            // A secret cut in two here is still found: the redactor also
            // takes the end of a secret at the start of the text.
            let cut = self.bytes.len() - MAX_TRANSCRIPT / 2;
            self.bytes.drain(..cut);
        }
    }
}

/// The askpass session. Returns how many times the passphrase was sent:
/// written whole to askpass's stdin, not merely attempted.
fn converse(
    t: &Target,
    target: &SshTarget,
    argv: Option<&Argv>,
    secret: &Secret,
    retries: u32,
    deadline: Instant,
    timeout: Duration,
) -> Result<u32, Failure> {
    let mut cmd = target
        .mux_session(argv)
        .map_err(|e| Failure::new(K::Connection, e.to_string()))?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Failure::new(
            K::AskpassFailed,
            format!("{}: could not start ssh: {e}", t.name),
        )
    })?;
    let mut stdin = child.stdin.take();
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    let mut streams = 0;
    let readers: Vec<Box<dyn Read + Send>> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    for mut r in readers {
        streams += 1;
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Some(buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(None);
        });
    }
    drop(tx);
    let mut guard = ChildGuard::new(child);

    let redactor = Redactor::of(secret);
    let mut said = Transcript::default();
    let excerpt = |said: &Transcript| redactor.excerpt(&said.bytes, 6, MAX_EXCERPT);
    let mut conv = Conversation::new(retries);
    let mut scan = Scanner::default();
    let start = Instant::now();
    let prompt_wait = (start + PROMPT_WAIT).min(deadline);
    let mut send_now = false;
    let mut last_activity = start;
    let mut exit: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;

    loop {
        if send_now {
            send_now = false;
            let line = secret.stdin_line();
            // A closed pipe means askpass is gone; its exit status tells why.
            let written = stdin.as_mut().is_some_and(|s| {
                s.write_all(line.expose_secret())
                    .and_then(|()| s.flush())
                    .is_ok()
            });
            drop(line);
            if written {
                conv.sent();
                tracing::info!("{}: passphrase sent (attempt {})", t.name, conv.sent);
            } else {
                stdin = None;
            }
            last_activity = Instant::now();
        }
        let now = Instant::now();
        if conv.sent == 0
            && !conv.has_prompt()
            && now >= prompt_wait
            && exit.is_none()
            && stdin.is_some()
        {
            // No prompt yet; many askpass programs read without one.
            send_now = true;
            continue;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(bytes)) => {
                last_activity = Instant::now();
                said.push(&bytes);
                let events = scan.feed(&bytes);
                said.line_ended(&scan, &bytes);
                for ev in events {
                    match conv.on_event(ev) {
                        Next::Wait => {}
                        Next::Send => send_now = stdin.is_some(),
                        Next::GiveUp => {
                            // Prompts and error messages come on different
                            // streams; the reason may still be on its way.
                            reason_after(&rx, &mut scan, &mut said);
                            return Err(wrong_passphrase(
                                t,
                                &reason(&redactor, &said),
                                &conv,
                                retries,
                            ));
                        }
                        Next::TooManyPrompts => {
                            return Err(Failure::new(
                                K::TooManyPrompts,
                                format!(
                                    "askpass on the initrd of {} kept asking for more devices ({} passphrases sent): {}",
                                    t.name,
                                    conv.sent,
                                    excerpt(&said)
                                ),
                            )
                            .attempts(conv.sent));
                        }
                    }
                }
            }
            Ok(None) => streams -= 1,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => streams = 0,
        }
        if exit.is_none() {
            exit = guard.try_wait().ok().flatten();
            if exit.is_some() {
                exited_at = Some(Instant::now());
            }
        }
        if exit.is_some() && (streams == 0 || exited_at.is_some_and(|e| e.elapsed() > POLL)) {
            break;
        }
        let now = Instant::now();
        if conv.sent > 0
            && !send_now
            && exit.is_none()
            && now.duration_since(last_activity) >= SETTLE
        {
            // Askpass neither finished nor asked again: hand over to confirmation,
            // which looks at the host rather than at askpass.
            tracing::info!(
                "{}: askpass silent for {SETTLE:?} after the passphrase; checking the host",
                t.name
            );
            return Ok(conv.sent);
        }
        if now >= deadline {
            return Err(if conv.sent == 0 {
                Failure::new(
                    K::NoPrompt,
                    format!(
                        "askpass on the initrd of {} did not ask for a passphrase within {timeout:?}{}",
                        t.name,
                        colon(&excerpt(&said))
                    ),
                )
            } else {
                Failure::new(
                    K::NoAnswer,
                    format!(
                        "the passphrase was sent, but askpass on the initrd of {} neither finished nor asked again within {timeout:?}{}",
                        t.name,
                        colon(&excerpt(&said))
                    ),
                )
                .attempts(conv.sent)
            });
        }
    }
    for ev in scan.flush() {
        let _ = conv.on_event(ev);
    }
    drop(stdin);
    if conv.was_rejected() {
        return Err(wrong_passphrase(
            t,
            &reason(&redactor, &said),
            &conv,
            retries,
        ));
    }
    let code = exit.and_then(|s| s.code());
    match code {
        // 255: ssh's own code, here because the initrd closed the connection,
        // which is what a successful unlock does when it leaves the initrd.
        Some(0) | Some(255) if conv.sent > 0 => Ok(conv.sent),
        Some(0) | Some(255) => Err(Failure::new(
            K::SessionEnded,
            format!(
                "the initrd of {} ended the session without asking for a passphrase{}",
                t.name,
                colon(&excerpt(&said))
            ),
        )
        .hint("is it still waiting for one? `zfleet unlock --status` shows the state")),
        _ => Err(Failure::new(
            K::AskpassFailed,
            format!(
                "askpass on the initrd of {} failed ({}) after {} passphrase{}{}",
                t.name,
                exit.map(crate::exec::describe_status)
                    .unwrap_or_else(|| "no exit status".into()),
                conv.sent,
                if conv.sent == 1 { "" } else { "s" },
                colon(&excerpt(&said))
            ),
        )
        .attempts(conv.sent)),
    }
}

/// Reads what arrives in the next moments: a rejection message that comes
/// shortly after askpass asked again, on the other stream.
fn reason_after(rx: &mpsc::Receiver<Option<Vec<u8>>>, scan: &mut Scanner, said: &mut Transcript) {
    let until = Instant::now() + Duration::from_millis(300);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Some(bytes)) => {
                said.push(&bytes);
                let events = scan.feed(&bytes);
                said.line_ended(scan, &bytes);
                if events.iter().any(|e| matches!(e, Event::Rejected(_))) {
                    return;
                }
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
}

/// Why the passphrase counts as rejected, in askpass's words as redacted: its
/// last rejection message, or else the prompt it repeated.
fn reason(redactor: &Redactor, said: &Transcript) -> String {
    let lines = redactor.lines(&said.bytes);
    let bounded = |s: &str| crate::text::bounded(s, MAX_EXCERPT).into_owned();
    if let Some(r) = lines.iter().rev().find(|l| is_rejection(l)) {
        return bounded(r);
    }
    match lines.iter().rev().find(|l| is_prompt(l)) {
        Some(p) => bounded(&format!("askpass asked again: {p}")),
        None => "askpass asked again".into(),
    }
}

fn colon(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

fn wrong_passphrase(t: &Target, said: &str, conv: &Conversation, retries: u32) -> Failure {
    Failure::new(
        K::WrongPassphrase,
        format!(
            "wrong passphrase: the initrd of {} rejected it ({said}); sent {} time{}, retries = {retries}",
            t.name,
            conv.sent,
            if conv.sent == 1 { "" } else { "s" }
        ),
    )
    .hint(format!(
        "check the secret `{}` for {}; the host is still waiting in its initrd",
        t.config.secret, t.name
    ))
    .attempts(conv.sent)
}

/// Waits until the initrd's pinned key is gone from its address and the booted
/// system answers on its own.
fn confirm(t: &Target, deadline: Instant, timeout: Duration) -> Result<String, Failure> {
    let Some((_, ep, file)) = initrd_of(t) else {
        return Err(Failure::new(K::Internal, "no initrd endpoint"));
    };
    let pinned = pin::pinned_keys(file).unwrap_or_default();
    let start = Instant::now();
    let mut initrd_gone = false;
    let mut last_error = String::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !initrd_gone {
            let wait = remaining
                .min(Duration::from_secs(3))
                .max(Duration::from_secs(1));
            let presented = pin::scan_keys(&t.name, ep, wait).unwrap_or_default();
            initrd_gone = presented.is_disjoint(&pinned);
            if initrd_gone {
                tracing::info!("{}: the initrd is gone", t.name);
            }
        }
        if initrd_gone {
            match connect_normal(t) {
                Ok(()) => {
                    return Ok(format!(
                        "unlocked: the initrd went away and {} answered on {} after {:.0}s",
                        t.name,
                        t.normal_shown(),
                        start.elapsed().as_secs_f64()
                    ))
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            let (kind, msg) = if initrd_gone {
                (K::SystemDown, format!(
                    "the passphrase was accepted and the initrd went away, but {} did not answer on {} within {timeout:?}{}",
                    t.name,
                    t.normal_shown(),
                    colon(&last_error)
                ))
            } else {
                (K::InitrdStayed, format!(
                    "the passphrase was sent, but the initrd of {} still answered on {} with its pinned key after {timeout:?}: the unlock did not go through",
                    t.name,
                    shown(ep)
                ))
            };
            return Err(Failure::new(kind, msg));
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}
