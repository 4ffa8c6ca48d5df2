//! `zfleet verify` on real zfs-fuse pools over real ssh: a healthy backup
//! passes quick and content; a change on the client after the snapshot is
//! no difference; damage in the server's vdev is found and named while the
//! other files are still compared; a snapshot replaced by a same-named one
//! fails quick; a drill restores, compares, times and leaves nothing, also
//! after it was killed; the daemon verifies after its backups, records it
//! and tells a failure naming the files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::Engine;
use common::daemon::{http_get, utc, Daemon, Receiver};
use common::{host_line, mountpoint, served_fleet_file, ssh_fleet, start, zfleet, zfleet_bin, Run};
use zfleet_lab::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

const PS: &str = "zroot/persistSave";
const TARGET: &str = "zstorage/backups/client1/zroot/persistSave";

fn lab(name: &str) -> Lab {
    lab_with_clock(name, false)
}

/// With `faketime`, the hosts' clocks are set by the test (for the daemon).
fn lab_with_clock(name: &str, faketime: bool) -> Lab {
    lab_of(name, &["client1"], faketime)
}

/// Seed clients and one backup server.
fn lab_of(name: &str, clients: &[&str], faketime: bool) -> Lab {
    let spec = clients.iter().fold(LabSpec::new(name), |spec, c| {
        spec.host(HostSpec::seed_client(*c))
    });
    start(
        &spec
            .host(
                HostSpec::new("backup").pool(
                    PoolSpec::new("zstorage")
                        .vdev_size(512 << 20)
                        .dataset(DatasetSpec::new("zstorage/backups")),
                ),
            )
            .faketime(faketime),
    )
}

fn fleet(lab: &Lab) -> PathBuf {
    fleet_of(lab, &["client1"])
}

/// Every client backed up to `backup`, over plain ssh.
fn fleet_of(lab: &Lab, clients: &[&str]) -> PathBuf {
    let mut text = format!("[fleet]\nzfleet_path = \"{}\"\n", zfleet_bin().display());
    for c in clients {
        text += &host_line(lab.host(c).unwrap());
        text += &format!("[hosts.{c}.backup]\n");
    }
    text += &host_line(lab.host("backup").unwrap());
    text += "[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n";
    ssh_fleet(lab, &text)
}

/// A tree with every kind of thing the comparison looks at.
fn populate(c1: &Host) {
    let mp = mountpoint(c1, PS);
    c1.sh(&format!(
        r#"cd '{mp}' && mkdir -p etc home/alice && echo 'root:x:0:0' > etc/passwd
           head -c 3M /dev/urandom > home/alice/photo.bin
           echo secret > home/alice/key && chmod 600 home/alice/key && chown 1234:4321 home/alice/key
           ln -s ../etc/passwd home/link && ln etc/passwd etc/passwd.hard
           touch -d '2020-01-02 03:04:05' etc/passwd"#
    ))
    .unwrap();
}

fn verify(backup: &Host, f: &Path, args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let run = zfleet(backup, f, &all);
    let json = run.json();
    (run, json)
}

fn check<'a>(job: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    job["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {job}"))
}

fn datasets(h: &Host) -> String {
    h.sh("zfs list -H -o name -r zstorage").unwrap()
}

fn backed_up_and_scrubbed(lab: &Lab) -> (&Host, &Host, PathBuf) {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    populate(c1);
    c1.sh(&format!("zfs snapshot {PS}@s1")).unwrap();
    let f = fleet(lab);
    zfleet(backup, &f, &["backup"]).ok();
    backup.sh("zpool scrub zstorage && sleep 1").unwrap();
    (c1, backup, f)
}

#[test]
fn a_healthy_backup_passes_quick_and_content_and_later_changes_on_the_client_are_no_difference() {
    let lab = lab("verify-healthy");
    let (c1, backup, f) = backed_up_and_scrubbed(&lab);

    let (run, r) = verify(backup, &f, &["--level", "quick"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let job = &r["jobs"][0];
    for c in ["guid", "send", "scrub", "base"] {
        assert_eq!(check(job, c)["ok"], true, "{c}: {job}");
    }
    assert!(check(job, "guid")["detail"]
        .as_str()
        .unwrap()
        .starts_with("newest backup snapshot @s1 is the source's s1"));

    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let content = &r["jobs"][0]["content"];
    // Root, etc, passwd, passwd.hard, home, alice, photo.bin, key, link.
    assert_eq!(content["entries"], 9, "{content}");
    assert_eq!(content["checksummed"], 4, "every file read on both hosts");
    assert_eq!(content["differing"], 0);
    assert!(content["bytes_checksummed"].as_u64().unwrap() > 3 << 20);

    // Changed after the snapshot: the live files are not what is compared.
    let mp = mountpoint(c1, PS);
    c1.sh(&format!(
        "echo changed >> '{mp}/etc/passwd' && rm '{mp}/home/alice/key' && chmod 700 '{mp}/home'"
    ))
    .unwrap();
    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["jobs"][0]["content"]["differing"], 0);
    assert_eq!(r["jobs"][0]["snapshot"], "s1");

    // --sample 50: two runs read disjoint halves that together are every file.
    let read: Vec<u64> = (0..2)
        .map(|_| {
            let (run, r) = verify(backup, &f, &["--level", "content", "--sample", "50"]);
            assert_eq!(run.code, 0, "{}", run.stdout);
            assert_eq!(r["jobs"][0]["content"]["entries"], 9, "metadata of all");
            r["jobs"][0]["content"]["checksummed"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(read.iter().sum::<u64>(), 4, "{read:?}");
    let buckets: Vec<String> = backup
        .sh("sqlite3 /var/lib/zfleet/state.db 'select runs from verify_rotation'")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(buckets, ["2"]);

    // Recorded per job and level; status shows it.
    let rows = backup
        .sh("sqlite3 /var/lib/zfleet/state.db \"select level, ok, checked from verifications order by id\"")
        .unwrap();
    assert_eq!(rows.lines().next(), Some("quick|1|0"), "{rows}");
    assert!(rows.contains("content|1|4"), "{rows}");

    let status = zfleet(backup, &f, &["status", "--json"]).json();
    let row = &status["servers"][0]["rows"][0];
    assert_eq!(row["verify"]["last_verified_level"], "content", "{row}");
    assert!(row["verify"]["failing"].is_null(), "{row}");

    // Only the snapshot's temporary clones were made, and they are gone.
    assert!(!datasets(backup).contains("zfleet-verify"));
    assert!(!c1
        .sh("zfs list -H -o name")
        .unwrap()
        .contains("zfleet-verify"));
}

/// Writes `/victim.bin`, 4 MiB of random data, into the client's dataset
/// and returns 64 bytes of it. Random data is stored as it is (compression
/// cannot shrink it), so the piece can be found in the server's vdev.
fn victim(c1: &Host) -> Vec<u8> {
    let mp = mountpoint(c1, PS);
    c1.sh(&format!("head -c 4M /dev/urandom > '{mp}/victim.bin'"))
        .unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(
            c1.sh(&format!(
                "dd if='{mp}/victim.bin' bs=4096 skip=512 count=1 2>/dev/null | head -c 64 | base64 -w0"
            ))
            .unwrap()
            .trim(),
        )
        .unwrap()
}

/// Out of the cache (export), overwrite 64 KiB of the server's vdev where
/// `needle` lies (its only copy), import again.
fn damage(backup: &Host, needle: &[u8]) {
    let vdev = backup.dir().join("vdev/zstorage.img");
    let reimport = format!(
        "zpool export zstorage && zpool import -d '{}' -R '{}' zstorage",
        backup.dir().join("vdev").display(),
        backup.altroot().display()
    );
    backup.sh(&reimport).unwrap();
    let image = std::fs::read(&vdev).unwrap();
    let at = image
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the file's data is in the server's vdev");
    assert_eq!(
        image[at + 1..]
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count(),
        0,
        "one copy of it"
    );
    drop(image);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut v = std::fs::OpenOptions::new().write(true).open(&vdev).unwrap();
        v.seek(SeekFrom::Start((at as u64 / 512) * 512)).unwrap();
        v.write_all(&vec![0x5a; 64 << 10]).unwrap();
    }
    backup.sh(&reimport).unwrap();
}

#[test]
fn damage_in_the_servers_vdev_is_found_and_named_and_the_other_files_are_still_checked() {
    let lab = lab("verify-damage");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    populate(c1);
    let needle = victim(c1);
    c1.sh(&format!("zfs snapshot {PS}@s1")).unwrap();
    let f = fleet(&lab);
    zfleet(backup, &f, &["backup"]).ok();
    damage(backup, &needle);

    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    let content = &r["jobs"][0]["content"];
    assert_eq!(
        (content["damaged"].as_u64(), content["differing"].as_u64()),
        (Some(1), Some(1)),
        "{content}"
    );
    let d = &content["differences"][0];
    assert_eq!(d["path"], "/victim.bin");
    assert_eq!(d["what"], "unreadable");
    assert_eq!(d["on"], "copy");
    assert!(
        d["error"].as_str().unwrap().contains("Input/output error"),
        "{d}"
    );
    // Every other file was read on both hosts and matched.
    assert_eq!(content["entries"], 10);
    assert_eq!(content["checksummed"], 4);
    // The table names it too, and the state database keeps it.
    let human = zfleet(backup, &f, &["verify", "--level", "content"]);
    assert_eq!(human.code, 6);
    assert!(
        human
            .stdout
            .contains("content: /victim.bin: unreadable on the copy: Input/output error"),
        "{}",
        human.stdout
    );
    let rows = backup
        .sh("sqlite3 /var/lib/zfleet/state.db \"select ok, damaged, error from verifications where level = 'content'\"")
        .unwrap();
    assert!(
        rows.starts_with("0|1|") && rows.contains("/victim.bin"),
        "{rows}"
    );
}

#[test]
fn a_snapshot_replaced_by_a_same_named_one_fails_quick() {
    let lab = lab("verify-replaced");
    let (c1, backup, f) = backed_up_and_scrubbed(&lab);
    let guid = |h: &Host, s: &str| {
        h.sh(&format!("zfs get -H -p -o value guid {s}"))
            .unwrap()
            .trim()
            .to_string()
    };
    let (old, backup_guid) = (
        guid(c1, &format!("{PS}@s1")),
        guid(backup, &format!("{TARGET}@s1")),
    );
    assert_eq!(old, backup_guid);
    c1.sh(&format!(
        "zfs release zfleet:base:backup {PS}@s1 2>/dev/null; zfs destroy {PS}@s1 && zfs snapshot {PS}@s1"
    ))
    .unwrap();
    let new = guid(c1, &format!("{PS}@s1"));
    assert_ne!(new, old);
    let (run, r) = verify(backup, &f, &["--level", "quick"]);
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    let job = &r["jobs"][0];
    let g = check(job, "guid");
    assert_eq!(g["ok"], false);
    assert_eq!(
        g["detail"],
        format!("the backup's newest snapshot @s1 has guid {backup_guid}, but the source's @s1 has guid {new}: they are different snapshots")
    );
    assert_eq!(
        check(job, "base")["ok"],
        false,
        "the base is gone from the source too"
    );
    assert_eq!(check(job, "scrub")["ok"], true);
}

#[test]
fn a_drill_restores_compares_and_times_and_leaves_nothing_also_when_killed() {
    let lab = lab("verify-drill");
    let (c1, backup, f) = backed_up_and_scrubbed(&lab);
    let before = datasets(backup);

    let (run, r) = verify(backup, &f, &["--level", "drill"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let d = &r["jobs"][0]["drill"];
    assert_eq!(d["dataset"], "zstorage/zfleet-drill/client1/persistSave");
    assert_eq!(d["removed"], true);
    assert!(d["seconds"].as_f64().unwrap() > 0.0);
    assert!(d["bytes"].as_u64().unwrap() > 3 << 20, "{d}");
    assert_eq!(d["comparison"]["differing"], 0);
    assert_eq!(d["comparison"]["checksummed"], 4);
    assert_eq!(datasets(backup), before, "nothing left behind");
    let rows = backup
        .sh("sqlite3 /var/lib/zfleet/state.db \"select ok, drill_seconds > 0, drill_bytes > 3000000 from verifications where level = 'drill'\"")
        .unwrap();
    assert_eq!(rows.trim(), "1|1|1");
    let status = zfleet(backup, &f, &["status", "--json"]).json();
    let v = &status["servers"][0]["rows"][0]["verify"];
    assert!(v["drill_seconds"].as_f64().unwrap() > 0.0, "{v}");

    // Killed mid-restore: what it left is recognised and removed next time.
    let mp = mountpoint(c1, PS);
    c1.sh(&format!(
        "head -c 96M /dev/urandom > '{mp}/big.bin' && zfs snapshot {PS}@s2"
    ))
    .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    let mut child = backup
        .command(zfleet_bin())
        .args(["--config"])
        .arg(&f)
        .args(["--host", "backup", "verify", "--level", "drill"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !backup
        .sh("zfs list -H -o name -r zstorage")
        .unwrap()
        .contains("zfleet-drill/client1/")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the drill never started receiving"
        );
        sleep(Duration::from_millis(50));
    }
    // The zfleet inside the host, not the nsenter that started it: its
    // children are left as a SIGKILL leaves them.
    backup
        .sh("pkill -9 -f '[z]fleet .*verify --level drill' || true")
        .unwrap();
    child.wait().unwrap();
    sleep(Duration::from_secs(1));
    assert!(
        datasets(backup).contains("zstorage/zfleet-drill"),
        "the kill left something"
    );
    let (run, r) = verify(backup, &f, &["--level", "drill"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["jobs"][0]["drill"]["snapshot"], "s2");
    assert_eq!(datasets(backup), before, "the next run cleaned up");
}

/// The clients of one server are verified side by side; their drills share
/// the server's drill container and lock, so they must take turns rather than
/// refuse each other (the demo's daemon found this with two clients).
#[test]
fn the_drills_of_two_clients_in_one_run_take_turns_and_both_pass() {
    let lab = lab_of("verify-two", &["client1", "client2"], false);
    let (c1, c2) = (lab.host("client1").unwrap(), lab.host("client2").unwrap());
    let backup = lab.host("backup").unwrap();
    let f = fleet_of(&lab, &["client1", "client2"]);
    for c in [c1, c2] {
        populate(c);
        c.sh(&format!("zfs snapshot {PS}@s1")).unwrap();
    }
    zfleet(backup, &f, &["backup"]).ok();
    backup.sh("zpool scrub zstorage && sleep 1").unwrap();
    let before = datasets(backup);

    let (run, r) = verify(backup, &f, &["--level", "drill"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let jobs = r["jobs"].as_array().unwrap();
    let mut drilled: Vec<&str> = jobs
        .iter()
        .map(|j| {
            let d = &j["drill"];
            assert_eq!(d["removed"], true, "{j}");
            assert_eq!(d["comparison"]["differing"], 0, "{j}");
            assert_eq!(d["comparison"]["checksummed"], 4, "{j}");
            d["dataset"].as_str().unwrap()
        })
        .collect();
    drilled.sort_unstable();
    assert_eq!(
        drilled,
        [
            "zstorage/zfleet-drill/client1/persistSave",
            "zstorage/zfleet-drill/client2/persistSave"
        ]
    );
    assert_eq!(datasets(backup), before, "nothing left behind");
}

#[test]
fn content_through_the_serve_account_reads_only_the_backed_up_snapshot() {
    let lab = start(
        &LabSpec::new("verify-serve")
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(false),
    );
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let (f, key) = served_fleet_file(
        &lab,
        &format!("zfleet_path = \"{}\"\n", zfleet_bin().display()),
        "",
    );
    let (bin_s, f_s) = (zfleet_bin().display().to_string(), f.display().to_string());
    zfleet(
        backup,
        &f,
        &[
            "grant",
            "client1",
            "--apply",
            "--zfleet-path",
            &bin_s,
            "--config-path",
            &f_s,
        ],
    )
    .ok();
    populate(c1);
    c1.sh(&format!(
        "zfs snapshot {PS}@s1 && zfs snapshot zroot/persist@other"
    ))
    .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    backup.sh("zpool scrub zstorage && sleep 1").unwrap();

    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let content = &r["jobs"][0]["content"];
    assert_eq!(
        (content["entries"].as_u64(), content["checksummed"].as_u64()),
        (Some(9), Some(4)),
        "{content}"
    );
    let log = c1.sh("cat /var/log/zfleet/serve.log").unwrap();
    assert!(
        log.contains(&format!(
            "allowed request=\"zfleet checksum {PS}@s1 --sample 0/1\""
        )),
        "{log}"
    );
    // The backup key cannot have another dataset's files listed.
    let out = backup
        .ssh_as(c1, "zfleet", &key)
        .arg("zfleet checksum zroot/persist@other --sample 0/1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(out.stdout.is_empty(), "nothing listed");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("zroot/persist@other"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!c1
        .sh("zfs list -H -o name")
        .unwrap()
        .contains("zfleet-verify"));
}

const LISTEN: &str = "127.0.0.1:9812";

/// Waits until `d`'s log has `n` lines containing `needle`.
fn wait_lines(d: &Daemon, needle: &str, n: usize, within: Duration) -> String {
    let t = Instant::now();
    loop {
        let text = d.log_text();
        if text.lines().filter(|l| l.contains(needle)).count() >= n {
            return text;
        }
        assert!(
            t.elapsed() < within,
            "not {n} log lines with `{needle}` within {within:?}:\n{text}"
        );
        sleep(Duration::from_millis(200));
    }
}

/// One sample of the daemon's metrics, parsed with a Prometheus text parser.
fn metric(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (code, _, body) = http_get(host, LISTEN, "/metrics");
    assert_eq!(code, 200, "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

fn status_row(backup: &Host, f: &Path) -> serde_json::Value {
    let st = zfleet(backup, f, &["status", "--json"]).ok().json();
    st["servers"][0]["rows"][0].clone()
}

#[test]
fn the_daemon_verifies_after_its_backups_records_it_and_tells_a_failure_naming_the_files() {
    let lab = lab_with_clock("verify-daemon", true);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let set_time = |t: i64| {
        for h in lab.hosts() {
            h.set_time(t).unwrap();
        }
    };
    set_time(utc("2026-06-10 09:59:00"));
    populate(c1);
    let needle = victim(c1);
    c1.sh(&format!("zfs snapshot {PS}@s1")).unwrap();
    let hook = Receiver::start(backup);
    let f = ssh_fleet(
        &lab,
        &format!(
            r#"[fleet]
zfleet_path = "{bin}"

[daemon]
listen = "{LISTEN}"
watch_interval = "2s"
retries = 1
retry_delay = "3s"
verify_after_backup = "quick"
verify_content_every = "2d"
verify_drill_every = "never"

[notify.hook]
webhook = "http://127.0.0.1:{port}/hook"

{c1line}[hosts.client1.backup]
{bline}[hosts.backup.server]
target_root = "zstorage/backups"
schedule = "hourly"
# The clock jumps two days: that is not what this test tells.
late_after = "168h"
"#,
            bin = zfleet_bin().display(),
            port = hook.port,
            c1line = host_line(c1),
            bline = host_line(backup),
        ),
    );
    let job = [("server", "backup"), ("client", "client1"), ("dataset", PS)];
    let verified_at = |level: &str| {
        metric(
            backup,
            "zfleet_verify_last_success_timestamp_seconds",
            &[job[0], job[1], job[2], ("level", level)],
        )
    };

    // The first backup: never verified, so content is due (the weekly
    // level, here every 2 days). The pool was never scrubbed but is new: a
    // warning in the log and in status, not a failure, not a notification.
    let d = Daemon::start(&lab, backup, &f, &[]);
    set_time(utc("2026-06-10 09:59:58"));
    let log = wait_lines(
        &d,
        "verify backup: 1 backups at level content, 0 failed",
        1,
        Duration::from_secs(120),
    );
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("verify backup: client1:zroot/persistSave: scrub: pool zstorage has not been scrubbed yet")),
        "{log}"
    );
    let t = Instant::now();
    let content_at = loop {
        if let Some(v) = verified_at("content") {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no content metric");
        sleep(Duration::from_millis(300));
    };
    let fake = utc("2026-06-10 09:59:58") as f64;
    assert!((fake..fake + 600.0).contains(&content_at), "{content_at}");
    let r = status_row(backup, &f);
    assert_eq!(r["state"], "ok", "{r}");
    assert_eq!(r["verify"]["last_verified_level"], "content", "{r}");
    assert_eq!(r["verify"]["last_verified"].as_f64(), Some(content_at));
    assert!(r["verify"]["failing"].is_null(), "{r}");
    assert!(
        r["verify"]["warning"]
            .as_str()
            .unwrap()
            .contains("pool zstorage has not been scrubbed yet"),
        "{r}"
    );
    let human = zfleet(backup, &f, &["status"]).ok().stdout;
    assert!(human.contains("(content, warning)"), "{human}");
    assert!(
        human.contains("client1:zroot/persistSave verified with a warning (content): scrub: pool zstorage has not been scrubbed yet"),
        "{human}"
    );

    // The next hourly backup: quick only.
    set_time(utc("2026-06-10 10:59:58"));
    wait_lines(
        &d,
        "verify backup: 1 backups at level quick, 0 failed",
        1,
        Duration::from_secs(120),
    );
    let t = Instant::now();
    let quick_at = loop {
        if let Some(v) = verified_at("quick") {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no quick metric");
        sleep(Duration::from_millis(300));
    };
    assert!(quick_at >= content_at + 3000.0, "{quick_at} {content_at}");
    let rows = backup
        .sh("sqlite3 /var/lib/zfleet/state.db \"select level, ok, warning is not null, error is null from verifications order by id\"")
        .unwrap();
    assert_eq!(rows, "content|1|1|1\nquick|1|1|1\n");
    assert!(hook.kinds().is_empty(), "{:?}", hook.events());

    // Damage under /victim.bin in the server's vdev (daemon stopped while
    // the pool is exported), two days on: content is due again, finds it,
    // and the notification names the dataset and the file.
    d.stop(Duration::from_secs(30));
    drop(d);
    damage(backup, &needle);
    let d = Daemon::start(&lab, backup, &f, &[]);
    set_time(utc("2026-06-12 11:59:58"));
    let log = wait_lines(
        &d,
        "verify backup: 1 backups at level content, 1 failed",
        1,
        Duration::from_secs(120),
    );
    let t = Instant::now();
    while hook.kinds().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no notification:\n{log}"
        );
        sleep(Duration::from_millis(200));
    }
    let ev = hook.events();
    assert_eq!(hook.kinds(), ["failed"], "{ev:?}");
    assert_eq!(
        (
            ev[0]["host"].as_str(),
            ev[0]["client"].as_str(),
            ev[0]["dataset"].as_str(),
            ev[0]["kind"].as_str()
        ),
        (Some("backup"), Some("client1"), Some(PS), Some("verify")),
        "{}",
        ev[0]
    );
    let error = ev[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("content verification failed: ")
            && error.contains("/victim.bin: unreadable on the copy: Input/output error"),
        "{error}"
    );
    let r = status_row(backup, &f);
    assert_eq!(r["verify"]["failing_level"], "content", "{r}");
    assert_eq!(r["verify"]["damaged"], 1, "{r}");
    assert_eq!(
        metric(
            backup,
            "zfleet_verify_damaged_files",
            &[job[0], job[1], job[2]]
        ),
        Some(1.0)
    );

    // The next hour's backup runs quick only; the content failure stands
    // (no "recovered") until content passes again.
    set_time(utc("2026-06-12 12:59:58"));
    wait_lines(
        &d,
        "verify backup: 1 backups at level quick",
        2,
        Duration::from_secs(120),
    );
    sleep(Duration::from_secs(3));
    assert_eq!(hook.kinds(), ["failed"], "{:?}", hook.events());
    let r = status_row(backup, &f);
    assert_eq!(r["verify"]["failing_level"], "content", "{r}");
}

#[test]
fn a_drill_onto_another_host_restores_there_compares_and_leaves_nothing() {
    let lab = lab("verify-drill-to");
    let (c1, backup, f) = backed_up_and_scrubbed(&lab);
    let list = |h: &Host| h.sh("zfs list -H -o name -t all").unwrap();
    let (c1_before, backup_before) = (list(c1), list(backup));

    let (run, r) = verify(backup, &f, &["--level", "drill", "--to", "client1"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let d = &r["jobs"][0]["drill"];
    assert_eq!(
        (d["host"].as_str(), d["dataset"].as_str()),
        (
            Some("client1"),
            Some("zroot/zfleet-drill/client1/persistSave")
        ),
        "{d}"
    );
    assert_eq!(d["removed"], true);
    assert!(d["bytes"].as_u64().unwrap() > 3 << 20, "{d}");
    assert_eq!(d["comparison"]["differing"], 0, "{d}");
    assert_eq!(d["comparison"]["checksummed"], 4, "{d}");
    assert_eq!(list(c1), c1_before, "nothing left on the drill's host");
    assert_eq!(list(backup), backup_before, "nor on the server");

    // An explicit pool that is not there: a clear error, nothing made.
    let (run, r) = verify(backup, &f, &["--level", "drill", "--to", "client1:nopool"]);
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    let drill = check(&r["jobs"][0], "drill");
    assert_eq!(drill["ok"], false);
    assert!(
        drill["detail"].as_str().unwrap().contains("nopool"),
        "{drill}"
    );
    assert_eq!(list(c1), c1_before);
}
