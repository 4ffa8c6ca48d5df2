//! `zfleet daemon` on lab hosts, on the hosts' faked clocks: it takes the
//! snapshots that are due, runs the server's backup at its scheduled time,
//! shows it in `zfleet status`, in metrics and on its page; a client that
//! goes away turns failing, then late, with one notification each way; a
//! bad reload keeps the old configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::daemon::{http_get, states, utc, wait_status, Daemon, Receiver};
use common::{host_line, mountpoint, snapshots, ssh_fleet, start, zfleet, zfleet_bin};
use zfleet_lab::sim::{Host, HostSpec, Lab, LabSpec};

const PS: &str = "zroot/persistSave";
const LISTEN: &str = "127.0.0.1:9811";

fn lab(name: &str) -> Lab {
    start(
        &LabSpec::new(name)
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(true),
    )
}

/// The seed's shape: client1 snapshots both persist datasets hourly and is
/// pulled by `backup` on `schedule`; `extra` goes at the end.
fn fleet_file(lab: &Lab, schedule: &str, extra: &str) -> std::path::PathBuf {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    ssh_fleet(
        lab,
        &format!(
            r#"[fleet]
zfleet_path = "{bin}"

[templates.default]
hourly = 8
daily = 1
monthly = 1
yearly = 1

[templates.backup]
autosnap = false
hourly = 0
daily = 14
monthly = 6
yearly = 1

[daemon]
listen = "{LISTEN}"
watch_interval = "2s"
retries = 1
retry_delay = "3s"

{c1line}[hosts.client1.backup]
[hosts.client1.snapshots."zroot/persist"]
use_template = ["default"]
[hosts.client1.snapshots."{PS}"]
use_template = ["default"]

{bline}[hosts.backup.server]
target_root = "zstorage/backups"
retention = "backup"
schedule = "{schedule}"
{extra}
"#,
            bin = zfleet_bin().display(),
            c1line = host_line(c1),
            bline = host_line(backup),
        ),
    )
}

fn set_time(lab: &Lab, t: i64) {
    for h in lab.hosts() {
        h.set_time(t).unwrap();
    }
}

fn target(ds: &str) -> String {
    format!("zstorage/backups/client1/{ds}")
}

fn row<'v>(v: &'v serde_json::Value, client: &str, ds: &str) -> &'v serde_json::Value {
    v["servers"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["client"] == client && r["dataset"] == ds)
        .unwrap_or_else(|| panic!("no row {client}:{ds} in {v}"))
}

#[test]
fn scheduled_snapshots_and_backup_then_status_metrics_and_page() {
    let lab = lab("dcycle");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let t0 = utc("2026-06-10 01:58:00");
    set_time(&lab, t0);
    // The backup at 02:01 carries the hourly the client takes at 02:00.
    let f = fleet_file(&lab, "daily 02:01", "");
    let mp = mountpoint(c1, PS);
    c1.sh(&format!("head -c 2M /dev/urandom > '{mp}/a.bin'"))
        .unwrap();

    let client_d = Daemon::start(&lab, c1, &f, &[]);
    // Snapshots run at start and take what is due at 01:58.
    client_d.wait_log("snapshots client1:", "done", Duration::from_secs(60));
    let snaps = snapshots(c1, PS);
    for period in ["hourly", "daily", "monthly", "yearly"] {
        assert!(
            snaps
                .iter()
                .any(|s| s.starts_with("autosnap_2026-06-10_01:58") && s.ends_with(period)),
            "{period} in {snaps:?}"
        );
    }

    let server_d = Daemon::start(&lab, backup, &f, &[]);
    let started = server_d.wait_log("daemon backup:", "started", Duration::from_secs(5));
    assert!(
        started.contains("backup (next in 3m)") || started.contains("backup (next in 2m"),
        "{started}"
    );
    assert!(
        started.contains(&format!("status page http://{LISTEN}/")),
        "{started}"
    );
    // Nothing is backed up before the schedule says so.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(snapshots(backup, &target(PS)), Vec::<String>::new());
    let v = wait_status(backup, LISTEN, Duration::from_secs(10), "a row", |v| {
        !states(v).is_empty()
    });
    assert_eq!(states(&v), [format!("client1:{PS}=never")]);

    // The clocks jump to just before 02:00: the daemons notice the jump, the
    // client's takes the hourly due at 02:00 at its time...
    set_time(&lab, utc("2026-06-10 01:59:57"));
    server_d.wait_log(
        "clock jumped by +",
        "schedules recomputed",
        Duration::from_secs(10),
    );
    let at_two = |s: &String| s.starts_with("autosnap_2026-06-10_02:00") && s.ends_with("hourly");
    let t = std::time::Instant::now();
    while !snapshots(c1, PS).iter().any(at_two) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no 02:00 hourly on client1: {:?}\n{}",
            snapshots(c1, PS),
            client_d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // ... and the server's runs the backup when 02:01 comes.
    assert_eq!(snapshots(backup, &target(PS)), Vec::<String>::new());
    set_time(&lab, utc("2026-06-10 02:00:57"));
    server_d.wait_log(
        "backup backup: scheduled run",
        "started",
        Duration::from_secs(20),
    );
    let done = server_d.wait_log("backup backup: done", "next run", Duration::from_secs(120));
    assert!(
        done.contains("next run in 23h") || done.contains("next run in 1d"),
        "{done}"
    );
    assert_eq!(snapshots(backup, &target(PS)), snapshots(c1, PS));
    assert!(snapshots(backup, &target(PS)).iter().any(at_two));
    // The client's own metrics: its newest policy snapshot per period.
    let newest = |period: &str| {
        metric(
            c1,
            "zfleet_snapshot_newest_timestamp_seconds",
            &[("host", "client1"), ("dataset", PS), ("period", period)],
        )
    };
    let hourly = newest("hourly");
    assert!(
        (utc("2026-06-10 02:00:00") as f64..utc("2026-06-10 02:01:00") as f64).contains(&hourly),
        "{hourly}"
    );
    for period in ["daily", "monthly", "yearly"] {
        let v = newest(period);
        assert!(
            (utc("2026-06-10 01:58:00") as f64..utc("2026-06-10 01:59:00") as f64).contains(&v),
            "{period}: {v}"
        );
    }

    // The page's own view: ok, nothing behind.
    let v = wait_status(
        backup,
        LISTEN,
        Duration::from_secs(30),
        "ok with a listing",
        |v| {
            let r = row(v, "client1", PS);
            r["state"] == "ok" && r["lag_snapshots"] == 0
        },
    );
    let r = row(&v, "client1", PS);
    assert_eq!(r["lag_seconds"], 0);
    assert!(r["bytes_last_run"].as_u64().unwrap() > 2 << 20, "{r}");
    assert_eq!(r["next_run"].as_i64().unwrap(), utc("2026-06-11 02:01:00"));

    // zfleet status from the client (reads the server's state over ssh) and
    // from the server: the same judgement.
    for on in [c1, backup] {
        let st = zfleet(on, &f, &["status", "--json"]).ok().json();
        let r = row(&st, "client1", PS);
        assert_eq!(r["state"], "ok", "status on {}: {st}", on.name());
        assert_eq!(r["server_newest"]["name"], r["client_newest"]["name"]);
        let hosts: Vec<&str> = st["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["host"].as_str().unwrap())
            .collect();
        assert_eq!(hosts, ["client1", "backup"]);
    }
    let human = zfleet(c1, &f, &["status"]).ok().stdout;
    assert!(human.contains("backup (backups daily 02:01)"), "{human}");
    assert!(
        human
            .lines()
            .any(|l| l.contains("client1") && l.contains(PS) && l.contains(" ok ")),
        "{human}"
    );
    let check = zfleet(backup, &f, &["check-backups"]);
    assert_eq!((check.code, check.stdout.trim()), (0, "OK: 1 backups ok"));

    check_metrics(backup);
    check_page(&lab, backup);

    let took = server_d.stop(Duration::from_secs(20));
    assert!(took < Duration::from_secs(10), "{took:?}");
    server_d.wait_log("daemon backup:", "stopped", Duration::from_secs(1));
}

/// Every metric, parsed with a Prometheus text parser, with its labels and a
/// plausible value.
fn check_metrics(backup: &Host) {
    let (code, ct, body) = http_get(backup, LISTEN, "/metrics");
    assert_eq!(code, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let mut by_name: BTreeMap<String, Vec<&prometheus_parse::Sample>> = BTreeMap::new();
    for s in &scrape.samples {
        by_name.entry(s.metric.clone()).or_default().push(s);
    }
    let value = |s: &prometheus_parse::Sample| match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    };
    let one = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let ss = by_name
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in\n{body}"));
        let s = ss
            .iter()
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{body}"));
        value(s)
    };
    let job = [("server", "backup"), ("client", "client1"), ("dataset", PS)];
    let now = jiff::Timestamp::now().as_second() as f64;
    let fake_now = utc("2026-06-10 02:00:00") as f64;
    let success = one("zfleet_backup_last_success_timestamp_seconds", &job);
    assert!(
        (fake_now..fake_now + 600.0).contains(&success),
        "{success} vs {now}"
    );
    let attempt = one("zfleet_backup_last_attempt_timestamp_seconds", &job);
    assert!(attempt <= success && attempt >= fake_now - 5.0, "{attempt}");
    assert_eq!(one("zfleet_backup_lag_seconds", &job), 0.0);
    assert_eq!(one("zfleet_backup_lag_snapshots", &job), 0.0);
    assert!(one("zfleet_backup_bytes_total", &job) > 2.0 * 1024.0 * 1024.0);
    assert_eq!(
        one(
            "zfleet_backup_state",
            &[job[0], job[1], job[2], ("state", "ok")]
        ),
        1.0
    );
    assert_eq!(
        one(
            "zfleet_backup_state",
            &[job[0], job[1], job[2], ("state", "late")]
        ),
        0.0
    );
    assert_eq!(
        one(
            "zfleet_pool_health",
            &[("host", "backup"), ("pool", "zstorage")]
        ),
        0.0
    );
    let cap = one(
        "zfleet_pool_capacity_ratio",
        &[("host", "backup"), ("pool", "zstorage")],
    );
    assert!((0.0..1.0).contains(&cap), "{cap}");
    assert_eq!(
        one(
            "zfleet_job_running",
            &[("host", "backup"), ("job", "backup")]
        ),
        0.0
    );
    assert_eq!(
        one(
            "zfleet_job_running",
            &[("host", "backup"), ("job", "snapshots")]
        ),
        0.0
    );
    // No failure yet and no transfer running: no samples (the lab tests of
    // failures and transfers find them).
    for name in [
        "zfleet_backup_failures_total",
        "zfleet_transfer_bytes_remaining",
    ] {
        assert!(!by_name.contains_key(name), "{name} has samples:\n{body}");
    }
    // Only GET: the listener never acts.
    let post = backup
        .with_network(|| {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            agent
                .post(&format!("http://{LISTEN}/"))
                .send("x")
                .unwrap()
                .status()
                .as_u16()
        })
        .unwrap();
    assert_eq!(post, 405);
}

/// One sample of the daemon's metrics on `host`, parsed with a Prometheus
/// text parser.
fn metric(host: &Host, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (code, _, body) = http_get(host, LISTEN, "/metrics");
    assert_eq!(code, 200, "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name}{labels:?} on {}:\n{body}", host.name()));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{name} is not a number"),
    }
}

/// The page in a real browser: headless Chromium through chromedriver (the
/// W3C WebDriver protocol), the DOM's rows and states, and a screenshot.
fn check_page(lab: &Lab, backup: &Host) {
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let profile = lab.dir().join("chromium-profile");
    let got = backup
        .with_network(move || common::browser::page(&format!("http://{LISTEN}/"), &profile, &shot))
        .unwrap();
    assert_eq!(got.title, "zfleet on backup: ok");
    assert_eq!(
        got.rows,
        [("client1".to_string(), PS.to_string(), "ok".to_string())]
    );
    assert!(got.badges.iter().any(|b| b == "ok"), "{:?}", got.badges);
    assert!(got.refresh.contains("30"), "{}", got.refresh);
    assert!(
        got.ages.iter().all(|a| a.ends_with(" ago")),
        "{:?}",
        got.ages
    );
    assert!(got.png_bytes > 1000);
    eprintln!("status page screenshot: {}", got.screenshot.display());
}

#[test]
fn unreachable_client_fails_after_retries_then_late_then_recovers_with_one_notice_each() {
    let lab = lab("dfail");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    set_time(&lab, utc("2026-06-10 09:59:00"));
    let hook = Receiver::start(backup);
    let f = fleet_file(
        &lab,
        "hourly",
        &format!(
            "late_after = \"2h\"\n\n[notify.hook]\nwebhook = \"http://127.0.0.1:{}/hook\"\n",
            hook.port
        ),
    );
    zfleet(c1, &f, &["run"]).ok();
    let d = Daemon::start(&lab, backup, &f, &[]);

    set_time(&lab, utc("2026-06-10 09:59:58"));
    d.wait_log("backup backup: done", "next run", Duration::from_secs(60));

    // The cable is pulled; the 11:00 run and its one retry fail.
    c1.link_down().unwrap();
    set_time(&lab, utc("2026-06-10 10:59:58"));
    let first = d.wait_log(
        "client1:zroot/persistSave failed (",
        "retry 1 in",
        Duration::from_secs(60),
    );
    assert!(first.contains("failed (unreachable)"), "{first}");
    let v = wait_status(
        backup,
        LISTEN,
        Duration::from_secs(10),
        "failing with a retry",
        |v| row(v, "client1", PS)["retry"]["attempt"] == 1,
    );
    assert_eq!(row(&v, "client1", PS)["state"], "failing");
    assert!(
        hook.kinds().is_empty(),
        "a retry is not worth a notification: {:?}",
        hook.events()
    );
    d.wait_log(
        "client1:zroot/persistSave failed (",
        "next scheduled run in",
        Duration::from_secs(60),
    );
    let t = std::time::Instant::now();
    while hook.kinds().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no failure notification:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = wait_status(backup, LISTEN, Duration::from_secs(10), "failing", |v| {
        row(v, "client1", PS)["state"] == "failing"
    });
    let r = row(&v, "client1", PS);
    assert_eq!(r["last_failure"]["kind"], "unreachable", "{r}");
    assert_eq!(
        r["last_success"].as_i64().unwrap() / 60,
        utc("2026-06-10 10:00:00") / 60
    );

    // Two hours after the last success it is late; the failure was told, so
    // late adds no notification.
    set_time(&lab, utc("2026-06-10 12:10:00"));
    wait_status(backup, LISTEN, Duration::from_secs(30), "late", |v| {
        row(v, "client1", PS)["state"] == "late"
    });
    let (_, _, metrics) = http_get(backup, LISTEN, "/metrics");
    let failures: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("zfleet_backup_failures_total{")
                && l.contains("kind=\"unreachable\"")
                && l.contains("client=\"client1\"")
        })
        .unwrap_or_else(|| panic!("no failure counter by kind:\n{metrics}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 2.0, "{failures}");
    assert!(metrics.contains("zfleet_backup_state{server=\"backup\",client=\"client1\",dataset=\"zroot/persistSave\",state=\"late\"} 1"), "{metrics}");

    // Back: the next run works and the recovery is told.
    c1.link_up().unwrap();
    set_time(&lab, utc("2026-06-10 12:59:58"));
    let t = std::time::Instant::now();
    while hook.kinds().len() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "no recovery notification:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_status(backup, LISTEN, Duration::from_secs(30), "ok again", |v| {
        row(v, "client1", PS)["state"] == "ok"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.kinds(), ["failed", "recovered"], "{:?}", hook.events());
    let ev = hook.events();
    assert_eq!(
        (ev[0]["host"].as_str(), ev[0]["client"].as_str()),
        (Some("backup"), Some("client1"))
    );
    assert_eq!(ev[0]["dataset"], PS);
    assert_eq!(ev[0]["kind"], "unreachable");
    assert!(
        ev[0]["error"].as_str().unwrap().contains("client1"),
        "{}",
        ev[0]
    );
    assert!(
        ev[0]["next"]
            .as_str()
            .unwrap()
            .contains("Check that client1 is on"),
        "{}",
        ev[0]
    );
    assert_eq!(ev[1]["state"], "ok");
    // The URL never reaches the log.
    assert!(
        !d.log_text().contains(&format!("127.0.0.1:{}", hook.port)),
        "{}",
        d.log_text()
    );
    assert!(
        d.log_text().contains("notify.hook: sent failed client1"),
        "{}",
        d.log_text()
    );
}

#[test]
fn a_bad_reload_keeps_the_old_config_and_a_good_one_takes_over() {
    let lab = lab("dreload");
    let backup = lab.host("backup").unwrap();
    set_time(&lab, utc("2026-06-10 08:00:00"));
    let f = fleet_file(&lab, "daily 02:00", "");
    let good = std::fs::read_to_string(&f).unwrap();
    let d = Daemon::start(&lab, backup, &f, &[]);
    let schedule = |v: &serde_json::Value| {
        v["servers"][0]["schedule"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let v = wait_status(backup, LISTEN, Duration::from_secs(10), "a server", |v| {
        !schedule(v).is_empty()
    });
    assert_eq!(schedule(&v), "daily 02:00");

    // A changed file is picked up by itself; an invalid one is refused.
    std::fs::write(
        &f,
        good.replace("schedule = \"daily 02:00\"", "schedule = \"nightly\""),
    )
    .unwrap();
    let l = d.wait_log(
        "is invalid; keeping the configuration in force",
        "nightly",
        Duration::from_secs(10),
    );
    assert!(l.contains("hosts.backup.server.schedule"), "{l}");
    assert!(l.contains(&format!("{}:", f.display())), "{l}");
    let v = wait_status(
        backup,
        LISTEN,
        Duration::from_secs(5),
        "still served",
        |_| true,
    );
    assert_eq!(schedule(&v), "daily 02:00");
    assert!(d.running());

    // SIGHUP reloads a valid file even when its time stamp did not move.
    let before = std::fs::metadata(&f).unwrap().modified().unwrap();
    std::fs::write(
        &f,
        good.replace("schedule = \"daily 02:00\"", "schedule = \"hourly :30\""),
    )
    .unwrap();
    let file = std::fs::File::options().write(true).open(&f).unwrap();
    file.set_modified(before).unwrap();
    drop(file);
    std::thread::sleep(Duration::from_secs(2));
    let v = wait_status(
        backup,
        LISTEN,
        Duration::from_secs(5),
        "unchanged before SIGHUP",
        |_| true,
    );
    assert_eq!(schedule(&v), "daily 02:00");
    d.signal("HUP");
    d.wait_log("reloaded", "(SIGHUP)", Duration::from_secs(10));
    let v = wait_status(
        backup,
        LISTEN,
        Duration::from_secs(10),
        "the new schedule",
        |v| schedule(v) == "hourly :30",
    );
    assert_eq!(
        row(&v, "client1", PS)["next_run"].as_i64().unwrap(),
        utc("2026-06-10 08:30:00")
    );
}

fn digest(h: &Host, ds: &str) -> String {
    let mp = mountpoint(h, ds);
    h.sh(&format!(
        "cd '{mp}' && find . -type f | sort | xargs -r sha256sum"
    ))
    .unwrap()
}

/// A first backup of a small client1, then `megabytes` of new data in a new
/// snapshot: the next backup is one large incremental.
fn big_incremental(lab: &Lab, f: &Path, megabytes: u32) {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let mp = mountpoint(c1, PS);
    c1.sh(&format!("echo small > '{mp}/small'")).unwrap();
    zfleet(c1, f, &["run"]).ok();
    zfleet(backup, f, &["backup"]).ok();
    c1.sh(&format!(
        "head -c {megabytes}M /dev/urandom > '{mp}/big.bin'"
    ))
    .unwrap();
}

/// Waits until a transfer of client1's dataset has moved `bytes`.
fn wait_transfer(backup: &Host, bytes: u64) -> serde_json::Value {
    wait_status(
        backup,
        LISTEN,
        Duration::from_secs(60),
        "a running transfer",
        |v| {
            row(v, "client1", PS)["transfer"]["bytes"]
                .as_u64()
                .is_some_and(|b| b >= bytes)
        },
    )
}

#[test]
fn sigterm_mid_transfer_exits_in_time_and_the_next_start_completes_the_backup() {
    let lab = lab("dterm");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    set_time(&lab, utc("2026-06-10 10:50:00"));
    let f = fleet_file(&lab, "hourly :05", "");
    // 8 MiB/s: the 48 MiB stream takes several seconds.
    let text = std::fs::read_to_string(&f).unwrap().replace(
        "[daemon]\n",
        "[daemon]\nrate_limit = \"8M\"\nshutdown_timeout = \"15s\"\n",
    );
    std::fs::write(&f, text).unwrap();
    big_incremental(&lab, &f, 48);
    // The next hour's policy snapshot carries the new data.
    set_time(&lab, utc("2026-06-10 11:00:10"));
    zfleet(c1, &f, &["snapshot"]).ok();
    let before = snapshots(backup, &target(PS));
    let d = Daemon::start(&lab, backup, &f, &[]);
    set_time(&lab, utc("2026-06-10 11:04:58"));
    let v = wait_transfer(backup, 8 << 20);
    // While it runs: the bytes sent so far and the job as running. zfs-fuse's
    // send has no size estimate, so the bytes remaining are not known here
    // (OpenZFS senders give one; the metric's unit test covers it).
    let (_, _, m) = http_get(backup, LISTEN, "/metrics");
    let sent = m
        .lines()
        .find(|l| l.starts_with("zfleet_transfer_bytes{"))
        .unwrap_or_else(|| panic!("no bytes sent while a transfer runs:\n{m}"));
    let sent: f64 = sent.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (8.0 * 1048576.0..48.0 * 1048576.0).contains(&sent),
        "{sent}"
    );
    assert!(!m.contains("zfleet_transfer_bytes_remaining{"), "{m}");
    assert!(
        m.contains("zfleet_job_running{host=\"backup\",job=\"backup\"} 1"),
        "{m}"
    );
    assert_eq!(row(&v, "client1", PS)["state"], "ok");
    // A backup by hand meanwhile says who holds the host's backup lock.
    let busy = zfleet(backup, &f, &["backup"]);
    assert_eq!(busy.code, 75, "{}", busy.stderr);
    assert!(
        busy.stderr.contains(&format!(
            "backup.backup.lock is held by another zfleet process (pid {})",
            d.pid()
        )),
        "{}",
        busy.stderr
    );

    let took = d.stop(Duration::from_secs(20));
    assert!(
        took < Duration::from_secs(15),
        "exit took {took:?}:\n{}",
        d.log_text()
    );
    let log = d.log_text();
    assert!(
        log.contains("stopping; waiting up to 15s for backup"),
        "{log}"
    );
    assert!(log.contains("failed (interrupted)"), "{log}");
    // The target is at the snapshot it had: consistent, nothing half-received.
    assert_eq!(snapshots(backup, &target(PS)), before);
    drop(d);

    // The next start continues: the interrupted run is run again at once.
    let d = Daemon::start(&lab, backup, &f, &[]);
    d.wait_log("backup backup: done", "next run", Duration::from_secs(120));
    assert_eq!(snapshots(backup, &target(PS)), snapshots(c1, PS));
    assert_eq!(digest(c1, PS), digest(backup, &target(PS)));
}

#[test]
fn a_stalled_sender_is_stopped_after_stall_timeout_and_retried() {
    let lab = lab("dstall");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    set_time(&lab, utc("2026-06-10 10:50:00"));
    let f = fleet_file(&lab, "hourly :05", "");
    let text = std::fs::read_to_string(&f).unwrap().replace(
        "[daemon]\n",
        "[daemon]\nrate_limit = \"4M\"\nstall_timeout = \"4s\"\n",
    );
    std::fs::write(&f, text).unwrap();
    big_incremental(&lab, &f, 24);
    // The next hour's policy snapshot carries the new data.
    set_time(&lab, utc("2026-06-10 11:00:10"));
    zfleet(c1, &f, &["snapshot"]).ok();
    let d = Daemon::start(&lab, backup, &f, &[]);
    set_time(&lab, utc("2026-06-10 11:04:58"));
    wait_transfer(backup, 2 << 20);
    // The sender on the client stops dead (not killed: no error, no EOF).
    let pid = c1
        .sh("pgrep -o -f '^zfs send' || true")
        .unwrap()
        .trim()
        .to_string();
    assert!(!pid.is_empty(), "no zfs send on client1");
    c1.sh(&format!("kill -STOP {pid}")).unwrap();
    let stalled = d.wait_log("no progress for", "stopping it", Duration::from_secs(30));
    assert!(
        stalled.contains("transfer client1:zroot/persistSave"),
        "{stalled}"
    );
    d.wait_log("failed (stalled)", "retry 1 in", Duration::from_secs(30));
    d.wait_log("backup backup: done", "next run", Duration::from_secs(120));
    c1.sh(&format!("kill -CONT {pid} 2>/dev/null; true"))
        .unwrap();
    assert_eq!(snapshots(backup, &target(PS)), snapshots(c1, PS));
    assert_eq!(digest(c1, PS), digest(backup, &target(PS)));
    let st = zfleet(backup, &f, &["status", "--json"]).ok().json();
    let r = row(&st, "client1", PS);
    assert_eq!(r["state"], "ok");
    assert!(
        r["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "stalled"),
        "{r}"
    );
}
