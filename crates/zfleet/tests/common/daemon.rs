//! The real `zfleet daemon` on lab hosts, and what tests need around it: its
//! log, HTTP from inside the host's network, a receiver for notifications.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use zfleet_lab::sim::{Host, Lab};

use super::zfleet_bin;

/// A daemon started on a lab host, stopped (SIGKILL) when dropped.
pub struct Daemon<'a> {
    pub host: &'a Host,
    pub log: PathBuf,
    pidfile: PathBuf,
    /// nsenter, waited for when the daemon is gone.
    child: std::process::Child,
}

impl<'a> Daemon<'a> {
    pub fn start(lab: &Lab, host: &'a Host, fleet: &Path, extra: &[&str]) -> Self {
        Self::start_with(lab, host, &zfleet_bin(), fleet, extra)
    }

    /// The daemon of the zfleet at `bin` (a path as `host` sees it).
    pub fn start_with(lab: &Lab, host: &'a Host, bin: &Path, fleet: &Path, extra: &[&str]) -> Self {
        let log = lab.dir().join(format!("daemon-{}.log", host.name()));
        let pidfile = lab.dir().join(format!("daemon-{}.pid", host.name()));
        let _ = std::fs::remove_file(&pidfile);
        let mut args = vec![
            format!("'{}'", bin.display()),
            "--config".into(),
            format!("'{}'", fleet.display()),
            "--host".into(),
            host.name().to_string(),
            "daemon".into(),
        ];
        args.extend(extra.iter().map(|a| format!("'{a}'")));
        // Through sh so the pid is the daemon's in the host's pid namespace.
        let script = format!(
            "echo $$ > '{}'; export TZ=UTC; exec {} >>'{}' 2>&1 </dev/null",
            pidfile.display(),
            args.join(" "),
            log.display()
        );
        let mut c = host.command("/bin/sh");
        c.args(["-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = c.spawn().unwrap();
        let t = Instant::now();
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the daemon did not start"
            );
            sleep(Duration::from_millis(50));
        }
        let d = Daemon {
            host,
            log,
            pidfile,
            child,
        };
        d.wait_log("daemon ", "started", Duration::from_secs(30));
        d
    }

    pub fn pid(&self) -> String {
        std::fs::read_to_string(&self.pidfile)
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing all of `words`, failing with the log.
    pub fn wait_log(&self, a: &str, b: &str, within: Duration) -> String {
        let t = Instant::now();
        loop {
            let text = self.log_text();
            if let Some(l) = text.lines().find(|l| l.contains(a) && l.contains(b)) {
                return l.to_string();
            }
            assert!(
                t.elapsed() < within,
                "no log line with `{a}` and `{b}` on {} within {within:?}:\n{text}",
                self.host.name()
            );
            sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: &str) {
        self.host
            .sh(&format!("kill -{sig} {}", self.pid()))
            .unwrap();
    }

    pub fn running(&self) -> bool {
        self.host
            .sh(&format!(
                "kill -0 {} 2>/dev/null && echo yes || echo no",
                self.pid()
            ))
            .unwrap()
            .trim()
            == "yes"
    }

    /// SIGTERM, then how long it took to exit.
    pub fn stop(&self, within: Duration) -> Duration {
        let t = Instant::now();
        self.signal("TERM");
        while self.running() {
            assert!(
                t.elapsed() < within,
                "the daemon on {} did not exit within {within:?} of SIGTERM:\n{}",
                self.host.name(),
                self.log_text()
            );
            sleep(Duration::from_millis(50));
        }
        t.elapsed()
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- daemon log of {} ---\n{}",
                self.host.name(),
                self.log_text()
            );
        }
        let _ = self
            .host
            .sh(&format!("kill -KILL {} 2>/dev/null; true", self.pid()));
    }
}

/// `GET path` from inside `host`'s network: (status, content type, body).
pub fn http_get(host: &Host, addr: &str, path: &str) -> (u16, String, String) {
    let url = format!("http://{addr}{path}");
    host.with_network(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let mut r = agent.get(&url).call().unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        (status, ct, r.body_mut().read_to_string().unwrap())
    })
    .unwrap()
}

/// The daemon's `/status.json`, polled until `ok` says yes.
pub fn wait_status(
    host: &Host,
    addr: &str,
    within: Duration,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let (code, _, body) = http_get(host, addr, "/status.json");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if ok(&v) {
            return v;
        }
        assert!(
            t.elapsed() < within,
            "waited {within:?} for {what}; status is\n{body}"
        );
        sleep(Duration::from_millis(300));
    }
}

/// The states of all rows, `client:dataset=state`.
pub fn states(v: &serde_json::Value) -> Vec<String> {
    v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["rows"].as_array().unwrap().clone())
        .map(|r| {
            format!(
                "{}:{}={}",
                r["client"].as_str().unwrap(),
                r["dataset"].as_str().unwrap(),
                r["state"].as_str().unwrap()
            )
        })
        .collect()
}

/// An HTTP server inside a lab host that keeps every request body it gets.
pub struct Receiver {
    pub port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub fn start(host: &Host) -> Self {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let keep = bodies.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        host.spawn_in_network(move || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(l.local_addr().unwrap().port()).unwrap();
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let t = line.trim_end();
                    if t.is_empty() {
                        break;
                    }
                    if let Some(v) = t.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                keep.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        })
        .unwrap();
        let port = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Receiver { port, bodies }
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or(serde_json::Value::String(b.clone())))
            .collect()
    }

    /// The `event` word of each notification so far.
    pub fn kinds(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["event"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

/// Unix seconds of a UTC time written `2026-06-10 01:58:00`.
pub fn utc(s: &str) -> i64 {
    let dt: jiff::civil::DateTime = s.parse().unwrap();
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second()
}
