//! Sending notifications: ntfy, webhooks, healthchecks pings and commands,
//! on a thread of their own so that a target that is down never holds up a
//! job. Each message is tried a few times and every result is logged by the
//! target's name only: URLs can hold tokens, so they never reach a log line.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use zfleet_core::config::{NotifyKind, NotifyTarget, UrlRef};
use zfleet_core::daemon::notify::Event;
use zfleet_core::unlock::Providers;

/// Attempts per message, and the waits between them.
const BACKOFF: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(10)];

/// A target with its secrets read.
pub struct Ready {
    pub target: NotifyTarget,
    url: Option<SecretString>,
    token: Option<SecretString>,
}

/// What the sender thread is asked to do.
pub enum Outgoing {
    Event(Box<Event>),
    /// A healthchecks signal for the job `job`.
    Ping {
        job: String,
        signal: Ping,
    },
    Targets(Vec<Ready>),
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

fn secret_string(
    p: &Providers,
    r: &zfleet_core::config::SecretRef,
) -> Result<SecretString, String> {
    let s = p.fetch(r).map_err(|e| e.to_string())?;
    let raw = s.stdin_raw();
    let text = std::str::from_utf8(raw.expose_secret())
        .map_err(|_| format!("{r} is not text"))?
        .trim()
        .to_string();
    Ok(SecretString::from(text))
}

/// Reads the targets' secrets; a target whose secret cannot be read is left
/// out with a log line (the daemon runs on without it).
pub fn prepare(targets: &[NotifyTarget]) -> Vec<Ready> {
    let providers = Providers::default();
    let mut out = Vec::new();
    for t in targets {
        let url = match &t.kind {
            NotifyKind::Ntfy { url }
            | NotifyKind::Webhook { url }
            | NotifyKind::Healthchecks { url } => match url {
                UrlRef::Plain(u) => Some(SecretString::from(u.clone())),
                UrlRef::Secret(r) => match secret_string(&providers, r) {
                    Ok(s)
                        if s.expose_secret().starts_with("http://")
                            || s.expose_secret().starts_with("https://") =>
                    {
                        Some(s)
                    }
                    Ok(_) => {
                        tracing::error!(
                            "notify.{}: {r} does not hold an http(s) URL; this target is off",
                            t.name
                        );
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(
                            "notify.{}: cannot read its URL: {e}; this target is off",
                            t.name
                        );
                        continue;
                    }
                },
            },
            NotifyKind::Command { .. } => None,
        };
        let token = match &t.token {
            None => None,
            Some(r) => match secret_string(&providers, r) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(
                        "notify.{}: cannot read its token: {e}; this target is off",
                        t.name
                    );
                    continue;
                }
            },
        };
        out.push(Ready {
            target: t.clone(),
            url,
            token,
        });
    }
    out
}

/// The sender thread's loop.
pub fn run(rx: Receiver<Outgoing>, host: String) {
    let mut targets: Vec<Ready> = Vec::new();
    while let Ok(m) = rx.recv() {
        match m {
            Outgoing::Stop => break,
            Outgoing::Targets(t) => targets = t,
            Outgoing::Event(e) => {
                for t in targets.iter().filter(|t| t.target.wants(e.event)) {
                    if matches!(t.target.kind, NotifyKind::Healthchecks { .. }) {
                        continue;
                    }
                    with_retries(
                        &t.target.name,
                        &format!(
                            "{} {}",
                            e.event.as_str(),
                            e.client.as_deref().or(e.pool.as_deref()).unwrap_or(&e.host)
                        ),
                        || send_event(t, &e),
                    );
                }
            }
            Outgoing::Ping { job, signal } => {
                for t in targets
                    .iter()
                    .filter(|t| matches!(t.target.kind, NotifyKind::Healthchecks { .. }))
                {
                    with_retries(
                        &t.target.name,
                        &format!("{signal:?} ping for {job} on {host}").to_lowercase(),
                        || ping(t, signal),
                    );
                }
            }
        }
    }
}

fn with_retries(name: &str, what: &str, mut f: impl FnMut() -> Result<(), String>) {
    for attempt in 0..=BACKOFF.len() {
        match f() {
            Ok(()) => {
                tracing::info!("notify.{name}: sent {what}");
                return;
            }
            Err(e) => {
                let n = attempt + 1;
                let total = BACKOFF.len() + 1;
                match BACKOFF.get(attempt) {
                    Some(wait) => {
                        tracing::warn!("notify.{name}: {what} not delivered (attempt {n}/{total}): {e}; again in {}s", wait.as_secs());
                        std::thread::sleep(*wait);
                    }
                    None => tracing::error!(
                        "notify.{name}: {what} not delivered (attempt {n}/{total}): {e}; dropped"
                    ),
                }
            }
        }
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// What went wrong, without the URL (ureq's messages may contain it).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(c) => format!("HTTP {c}"),
        ureq::Error::Timeout(_) => "timed out".to_string(),
        ureq::Error::Io(io) => format!("{:?}", io.kind()),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        _ => "request failed".to_string(),
    }
}

fn check(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(), String> {
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("HTTP {}", resp.status().as_u16())),
        Err(e) => Err(describe(&e)),
    }
}

fn send_event(t: &Ready, e: &Event) -> Result<(), String> {
    let json = serde_json::to_string(e).map_err(|x| x.to_string())?;
    let url = t.url.as_ref().map(|u| u.expose_secret().to_string());
    let bearer = t
        .token
        .as_ref()
        .map(|s| format!("Bearer {}", s.expose_secret()));
    match &t.target.kind {
        NotifyKind::Ntfy { .. } => {
            let url = url.ok_or("no URL")?;
            let mut req = agent(t.target.timeout)
                .post(&url)
                .header("Title", &ascii(&e.title))
                .header(
                    "Priority",
                    if e.event.urgent() { "high" } else { "default" },
                )
                .header(
                    "Tags",
                    if e.event.urgent() {
                        "warning"
                    } else {
                        "white_check_mark"
                    },
                );
            if let Some(b) = &bearer {
                req = req.header("Authorization", b);
            }
            let body = match &e.error {
                Some(err) => format!("{}\n{err}\n\n{}", e.title, e.next),
                None => format!("{}\n\n{}", e.title, e.next),
            };
            check(req.send(body.as_bytes()))
        }
        NotifyKind::Webhook { .. } => {
            let url = url.ok_or("no URL")?;
            let mut req = agent(t.target.timeout)
                .post(&url)
                .header("Content-Type", "application/json");
            if let Some(b) = &bearer {
                req = req.header("Authorization", b);
            }
            check(req.send(json.as_bytes()))
        }
        NotifyKind::Command { argv } => run_command(argv, &json, t.target.timeout),
        NotifyKind::Healthchecks { .. } => Ok(()),
    }
}

/// HTTP header values must be visible ASCII; titles are turned into it.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn ping(t: &Ready, signal: Ping) -> Result<(), String> {
    let base = t
        .url
        .as_ref()
        .ok_or("no URL")?
        .expose_secret()
        .trim_end_matches('/')
        .to_string();
    let url = match signal {
        Ping::Start => format!("{base}/start"),
        Ping::Success => base,
        Ping::Fail => format!("{base}/fail"),
    };
    check(agent(t.target.timeout).post(&url).send(&[][..]))
}

fn run_command(argv: &[String], json: &str, timeout: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("no program")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(json.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("{program} exited with {s}")),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {}s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Starts the sender thread.
pub fn start(host: String) -> (Sender<Outgoing>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || run(rx, host))
        .unwrap_or_else(|_| std::thread::spawn(|| {}));
    (tx, h)
}
