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

use super::askpass::{Conversation, Event, Next, Scanner};
use super::pin::{self, ScannedKey};
use super::{shown, Failure, HostStatus, Outcome, Report, Secret, State, Step, Target};
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
        return Report::failed(t, Failure::new(Step::Connect, "no initrd endpoint"));
    };
    // The probe's connection is normally still up. If it dropped, a new one
    // verifies the pinned key again before any session exists.
    if !target.is_connected() {
        if let Err(e) = target.connect() {
            let step = if matches!(e, ExecError::HostKey { .. }) {
                Step::HostKey
            } else {
                Step::Connect
            };
            return Report::failed(t, Failure::new(step, e.to_string()));
        }
    }
    let argv = t
        .config
        .initrd_command
        .as_ref()
        .and_then(|w| w.split_first())
        .map(|(p, rest)| Argv::new(p).args(rest.iter().cloned()));
    tracing::info!("{}: initrd key verified; sending the passphrase", t.name);
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

/// The askpass session. Returns how many times the passphrase was sent.
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
        .map_err(|e| Failure::new(Step::Connect, e.to_string()))?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(Step::Send, format!("{}: could not start ssh: {e}", t.name)))?;
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

    let mut conv = Conversation::new(retries);
    let mut scan = Scanner::default();
    let start = Instant::now();
    let prompt_wait = (start + PROMPT_WAIT).min(deadline);
    let mut send_now = false;
    let mut last_activity = start;
    let mut exit: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let said = |scan: &Scanner| secret.redact(&scan.last_lines());

    loop {
        if send_now {
            send_now = false;
            let line = secret.stdin_line();
            // A closed pipe means askpass is gone; its exit status tells why.
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(line.expose_secret()).and_then(|()| s.flush());
            }
            drop(line);
            conv.sent();
            last_activity = Instant::now();
            tracing::info!("{}: passphrase sent (attempt {})", t.name, conv.sent);
        }
        let now = Instant::now();
        if conv.sent == 0 && !conv.has_prompt() && now >= prompt_wait && exit.is_none() {
            // No prompt yet; many askpass programs read without one.
            send_now = true;
            continue;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(bytes)) => {
                last_activity = Instant::now();
                for ev in scan.feed(&String::from_utf8_lossy(&bytes)) {
                    match conv.on_event(ev) {
                        Next::Wait => {}
                        Next::Send => send_now = true,
                        Next::GiveUp { message } => {
                            // Prompts and error messages come on different
                            // streams; the reason may still be on its way.
                            let message = reason_after(&rx, &mut scan).unwrap_or(message);
                            return Err(wrong_passphrase(
                                t,
                                &secret.redact(&message),
                                &conv,
                                retries,
                            ));
                        }
                        Next::TooManyPrompts => {
                            return Err(Failure::new(
                                Step::Send,
                                format!(
                                    "askpass on the initrd of {} kept asking for more devices ({} passphrases sent): {}",
                                    t.name,
                                    conv.sent,
                                    said(&scan)
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
            let msg = if conv.sent == 0 {
                format!(
                    "askpass on the initrd of {} did not ask for a passphrase within {timeout:?}",
                    t.name
                )
            } else {
                format!(
                    "the passphrase was sent, but askpass on the initrd of {} neither finished nor asked again within {timeout:?}: {}",
                    t.name,
                    said(&scan)
                )
            };
            let step = if conv.sent == 0 {
                Step::Send
            } else {
                Step::Confirm
            };
            return Err(Failure::new(step, msg).attempts(conv.sent));
        }
    }
    for ev in scan.flush() {
        let _ = conv.on_event(ev);
    }
    drop(stdin);
    if conv.was_rejected().is_some() {
        let msg = conv.was_rejected().unwrap_or_default().to_string();
        return Err(wrong_passphrase(t, &secret.redact(&msg), &conv, retries));
    }
    let code = exit.and_then(|s| s.code());
    match code {
        // 255: ssh's own code, here because the initrd closed the connection,
        // which is what a successful unlock does when it leaves the initrd.
        Some(0) | Some(255) if conv.sent > 0 => Ok(conv.sent),
        Some(0) | Some(255) => Err(Failure::new(
            Step::Send,
            format!(
                "the initrd of {} ended the session without asking for a passphrase{}",
                t.name,
                colon(&said(&scan))
            ),
        )
        .hint("is it still waiting for one? `zfleet unlock --status` shows the state")),
        _ => Err(Failure::new(
            Step::Send,
            format!(
                "askpass on the initrd of {} failed ({}) after {} passphrase{}{}",
                t.name,
                exit.map(crate::exec::describe_status)
                    .unwrap_or_else(|| "no exit status".into()),
                conv.sent,
                if conv.sent == 1 { "" } else { "s" },
                colon(&said(&scan))
            ),
        )
        .attempts(conv.sent)),
    }
}

/// A rejection message that arrives shortly after askpass asked again.
fn reason_after(rx: &mpsc::Receiver<Option<Vec<u8>>>, scan: &mut Scanner) -> Option<String> {
    let until = Instant::now() + Duration::from_millis(300);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Some(bytes)) => {
                let found = scan
                    .feed(&String::from_utf8_lossy(&bytes))
                    .into_iter()
                    .find_map(|e| match e {
                        Event::Rejected(m) => Some(m),
                        Event::Prompt(_) => None,
                    });
                if found.is_some() {
                    return found;
                }
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
    None
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
        Step::Send,
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
    .rejected()
}

/// Waits until the initrd's pinned key is gone from its address and the booted
/// system answers on its own.
fn confirm(t: &Target, deadline: Instant, timeout: Duration) -> Result<String, Failure> {
    let Some((_, ep, file)) = initrd_of(t) else {
        return Err(Failure::new(Step::Confirm, "no initrd endpoint"));
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
            let msg = if initrd_gone {
                format!(
                    "the passphrase was accepted and the initrd went away, but {} did not answer on {} within {timeout:?}{}",
                    t.name,
                    t.normal_shown(),
                    colon(&last_error)
                )
            } else {
                format!(
                    "the passphrase was sent, but the initrd of {} still answered on {} with its pinned key after {timeout:?}: the unlock did not go through",
                    t.name,
                    shown(ep)
                )
            };
            return Err(Failure::new(Step::Confirm, msg));
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}
