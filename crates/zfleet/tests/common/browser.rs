//! A real browser for tests of the status page: Debian's `chromium`, headless,
//! driven by `chromedriver` (package `chromium-driver`) over the W3C
//! WebDriver protocol. Called on a thread inside a lab host's network, so
//! the browser reaches the daemon's listener at its address there.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What the test asserts on.
#[derive(Debug)]
pub struct Page {
    pub title: String,
    /// (client, dataset, data-state) of each backup row.
    pub rows: Vec<(String, String, String)>,
    /// The text of each state badge.
    pub badges: Vec<String>,
    /// The text of each "last success" cell.
    pub ages: Vec<String>,
    /// The `content` of `<meta http-equiv=refresh>`.
    pub refresh: String,
    pub screenshot: PathBuf,
    pub png_bytes: usize,
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let a = agent();
    let mut r = match (method, body) {
        ("POST", b) => a
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.unwrap_or(json!({})).to_string())
            .unwrap(),
        ("DELETE", _) => a.delete(url).call().unwrap(),
        _ => a.get(url).call().unwrap(),
    };
    let text = r.body_mut().read_to_string().unwrap();
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"));
    assert!(
        v["value"].get("error").is_none(),
        "WebDriver {method} {url} failed: {text}"
    );
    v["value"].clone()
}

/// Loads `url`, reads the DOM, saves a screenshot to `shot`.
pub fn page(url: &str, profile: &Path, shot: &Path) -> Page {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(profile);
    std::fs::create_dir_all(profile).unwrap();
    let session = call(
        "POST",
        &format!("{base}/session"),
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}})),
    );
    let id = session["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
        .to_string();
    let s = format!("{base}/session/{id}");
    call("POST", &format!("{s}/url"), Some(json!({ "url": url })));
    let title = call("GET", &format!("{s}/title"), None)
        .as_str()
        .unwrap()
        .to_string();
    let find = |css: &str| -> Vec<String> {
        call(
            "POST",
            &format!("{s}/elements"),
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("not an element reference: {e}"))
                .to_string()
        })
        .collect()
    };
    let attr = |e: &str, name: &str| -> String {
        call("GET", &format!("{s}/element/{e}/attribute/{name}"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let text = |e: &str| -> String {
        call("GET", &format!("{s}/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let rows = find("table.backups tr.row")
        .iter()
        .map(|e| {
            (
                attr(e, "data-client"),
                attr(e, "data-dataset"),
                attr(e, "data-state"),
            )
        })
        .collect();
    let badges = find("table.backups td.state .badge")
        .iter()
        .map(|e| text(e))
        .collect();
    let ages = find("table.backups td.age")
        .iter()
        .map(|e| text(e))
        .collect();
    let refresh = find("meta[http-equiv=refresh]")
        .first()
        .map(|e| attr(e, "content"))
        .unwrap_or_default();
    let png = call("GET", &format!("{s}/screenshot"), None);
    let png = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap()
    };
    std::fs::write(shot, &png).unwrap();
    call("DELETE", &s, None);
    Page {
        title,
        rows,
        badges,
        ages,
        refresh,
        screenshot: shot.to_path_buf(),
        png_bytes: png.len(),
    }
}
