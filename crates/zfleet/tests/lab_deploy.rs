//! `zfleet deploy` from an admin host to three lab hosts: one without
//! zfleet, one with an older build (a copy of this binary with another
//! version string), one with this very build. Each host's zfleet lives in its
//! own /var/lib/zfleet (the lab's per-host directory), its fleet file and
//! units in its own /etc (an overlay). Then a daemon that runs the older
//! build during the upgrade: restarted, it keeps its state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{start, zfleet, zfleet_bin, Run};
use zfleet_lab::sim::{Host, HostSpec, LabSpec};

/// Inside each lab host; outside, `<host dir>/var-lib-zfleet/bin/zfleet`.
const PATH: &str = "/var/lib/zfleet/bin/zfleet";

fn outside(h: &Host) -> PathBuf {
    h.dir().join("var-lib-zfleet/bin/zfleet")
}

/// This binary with its version string changed in every place (same length):
/// another build, as an older release would be.
fn older_build(to: &Path) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let last = version.chars().last().unwrap();
    let older = format!(
        "{}{}",
        &version[..version.len() - 1],
        if last == '9' { '8' } else { '9' }
    );
    let mut bytes = std::fs::read(zfleet_bin()).unwrap();
    let (from, into) = (version.as_bytes(), older.as_bytes());
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(into);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(n > 0, "the version string is not in the binary");
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(to, &bytes).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!("zfleet {older}")
}

fn version_on(h: &Host) -> String {
    h.sh(&format!("{PATH} --version"))
        .unwrap()
        .trim()
        .to_string()
}

fn sha(p: &Path) -> String {
    zfleet_core::deploy::remote::sha256_file(p).unwrap().0
}

fn deploy(admin: &Host, fleet: &Path, args: &[&str]) -> Run {
    let mut all = vec!["deploy", "--zfleet-path", PATH];
    all.extend_from_slice(args);
    zfleet(admin, fleet, &all)
}

/// Processes below `pid` (any depth) whose command is `name`.
fn descendants_named(pid: u32, name: &str) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    let mut comm = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let open = stat.find('(').unwrap_or(0);
        comm.insert(p, stat[open + 1..close].to_string());
        let ppid: u32 = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        parent.insert(p, ppid);
    }
    let below = |mut p: u32| {
        while let Some(&pp) = parent.get(&p) {
            if pp == pid {
                return true;
            }
            if pp <= 1 {
                return false;
            }
            p = pp;
        }
        false
    };
    comm.iter()
        .filter(|(p, c)| c.as_str() == name && below(**p))
        .map(|(p, _)| *p)
        .collect()
}

fn row<'a>(report: &'a serde_json::Value, host: &str) -> &'a serde_json::Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("no row for {host}: {report:#}"))
}

#[test]
fn deploy_installs_upgrades_and_skips_and_a_broken_copy_changes_nothing() {
    let spec = LabSpec::new("deploy")
        .host(HostSpec::new("admin"))
        .host(HostSpec::new("fresh"))
        .host(HostSpec::new("older"))
        .host(HostSpec::new("same"));
    let lab = start(&spec);
    let [admin, fresh, older, same] =
        ["admin", "fresh", "older", "same"].map(|n| lab.host(n).unwrap());
    let hosts: String = lab.hosts().iter().map(common::host_line).collect();
    let fleet = common::ssh_fleet(&lab, &hosts);
    let current = format!("zfleet {}", env!("CARGO_PKG_VERSION"));
    let old_version = older_build(&outside(older));
    assert_eq!(version_on(older), old_version);
    let old_sha = sha(&outside(older));
    std::fs::create_dir_all(outside(same).parent().unwrap()).unwrap();
    std::fs::copy(zfleet_bin(), outside(same)).unwrap();
    // Each host's unit directory (in its own /etc), so deploy installs units.
    for h in [fresh, older, same] {
        h.sh("mkdir -p /etc/systemd/system").unwrap();
    }
    // `older` has another fleet file, `same` this one, `fresh` none.
    older
        .sh("mkdir -p /etc/zfleet && echo '# an old fleet' > /etc/zfleet/fleet.toml")
        .unwrap();
    let fleet_text = std::fs::read_to_string(&fleet).unwrap();
    same.sh(&format!(
        "mkdir -p /etc/zfleet && cp {} /etc/zfleet/fleet.toml",
        fleet.display()
    ))
    .unwrap();

    // --dry-run: the plan per host, and nothing changes.
    let dry = deploy(admin, &fleet, &["--dry-run", "--json"]).ok().json();
    assert_eq!(row(&dry, "fresh")["result"], "would install");
    assert_eq!(row(&dry, "older")["result"], "would upgrade");
    assert_eq!(row(&dry, "older")["old_version"], old_version.as_str());
    assert_eq!(row(&dry, "same")["result"], "up to date");
    assert_eq!(row(&dry, "fresh")["fleet"], "would install");
    assert_eq!(row(&dry, "older")["fleet"], "would update");
    assert_eq!(row(&dry, "same")["fleet"], "same");
    for h in ["fresh", "older", "same"] {
        assert_eq!(row(&dry, h)["units"], "would install", "{h}");
    }
    assert!(!outside(fresh).exists());
    assert_eq!(
        fresh
            .sh(&format!(
                "test -e {UNIT_ON_HOST} && echo there || echo none"
            ))
            .unwrap()
            .trim(),
        "none"
    );
    assert_eq!(sha(&outside(older)), old_sha);

    // A copy to `older` that breaks off (its ssh killed) leaves the old
    // binary working and no partial file.
    let child = admin
        .command(zfleet_bin())
        .args([
            "--config",
            fleet.to_str().unwrap(),
            "--host",
            "admin",
            "deploy",
            "--zfleet-path",
            PATH,
            "--rate-limit",
            "2M",
            "older",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let partial = older.dir().join("var-lib-zfleet/bin/.zfleet.zfleet-deploy");
    let t0 = Instant::now();
    let killed = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the copy never started"
        );
        let grown = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if grown > 1 << 20 {
            let ssh = descendants_named(child.id(), "ssh");
            assert!(!ssh.is_empty(), "no ssh below deploy");
            for p in &ssh {
                // Only the ssh processes this test's deploy started.
                kill_by_id(*p);
            }
            break grown;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let run = Run::from(out);
    assert_eq!(
        run.code, 4,
        "a failed copy is a remote failure:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains("error: older:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the file there is unchanged"),
        "{}",
        run.stderr
    );
    assert!(killed < std::fs::metadata(zfleet_bin()).unwrap().len());
    assert_eq!(sha(&outside(older)), old_sha, "the old binary was touched");
    assert_eq!(version_on(older), old_version);
    let t1 = Instant::now();
    while partial.exists() && t1.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!partial.exists(), "the partial copy was left behind");
    assert!(
        run.stderr.contains(&format!(
            "warning: the fleet runs mixed versions: {current} on admin; {old_version} on older"
        )),
        "{}",
        run.stderr
    );

    // The real deploy: install, upgrade, skip.
    let started = Instant::now();
    let done = deploy(admin, &fleet, &["--json"]).ok().json();
    eprintln!(
        "deploy to 3 hosts (install, upgrade, skip; {} bytes): {:.2} s",
        std::fs::metadata(zfleet_bin()).unwrap().len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(row(&done, "fresh")["result"], "installed");
    assert_eq!(row(&done, "older")["result"], "upgraded");
    assert_eq!(row(&done, "same")["result"], "up to date");
    for h in [fresh, older, same] {
        assert_eq!(sha(&outside(h)), sha(&zfleet_bin()), "{}", h.name());
        assert_eq!(version_on(h), current);
        assert_eq!(row(&done, h.name())["new_version"], current.as_str());
        assert_eq!(
            h.sh("cat /etc/zfleet/fleet.toml").unwrap(),
            fleet_text,
            "{}",
            h.name()
        );
    }
    assert_eq!(row(&done, "fresh")["fleet"], "installed");
    assert_eq!(row(&done, "older")["fleet"], "updated");
    assert_eq!(row(&done, "same")["fleet"], "same");
    for h in [fresh, older, same] {
        assert_eq!(row(&done, h.name())["units"], "installed", "{}", h.name());
        let unit = h.sh(&format!("cat {UNIT_ON_HOST}")).unwrap();
        assert!(
            unit.contains(&format!(
                "ExecStart={PATH} --config {FLEET_ON_HOST} --host {} daemon",
                h.name()
            )),
            "{unit}"
        );
    }
    assert_eq!(
        older.sh("cat /etc/zfleet/fleet.toml.previous").unwrap(),
        "# an old fleet\n"
    );
    assert_eq!(done["mixed_versions"], serde_json::json!([]));

    // Again: nothing to do, and the table says so.
    let started = Instant::now();
    let again = deploy(admin, &fleet, &[]).ok();
    eprintln!(
        "deploy with nothing to do: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let lines: Vec<&str> = again.stdout.lines().collect();
    assert!(lines[0].starts_with("HOST"), "{}", again.stdout);
    for h in ["fresh", "older", "same"] {
        let l = lines.iter().find(|l| l.starts_with(h)).unwrap();
        let words = l.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains(&format!("{current} {current} up to date same same")),
            "{l}"
        );
    }
    assert!(!again.stderr.contains("mixed"), "{}", again.stderr);
}

/// SIGKILL to one process by id.
fn kill_by_id(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

const FLEET_ON_HOST: &str = "/etc/zfleet/fleet.toml";
const UNIT_ON_HOST: &str = "/etc/systemd/system/zfleet.service";

/// What the daemon's state says, minus what changes with every start (its
/// pid, when it last wrote).
fn state_of(h: &Host, fleet: &Path) -> (Vec<zfleet_core::state::RunRecord>, serde_json::Value) {
    let runs = zfleet_core::state::State::open(&h.dir().join("var-lib-zfleet"))
        .unwrap()
        .recent_runs(1000)
        .unwrap();
    let mut dump = zfleet(h, fleet, &["state", "--json"]).ok().json();
    scrub(&mut dump, &["pid", "updated", "now", "generated"]);
    (runs, dump)
}

fn scrub(v: &mut serde_json::Value, keys: &[&str]) {
    match v {
        serde_json::Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            for x in m.values_mut() {
                scrub(x, keys);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| scrub(x, keys)),
        _ => {}
    }
}

/// SHA-256 of what process `pid` runs (its executable, even once replaced).
fn exe_sha(h: &Host, pid: &str) -> String {
    h.sh(&format!("sha256sum /proc/{pid}/exe"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The backup server runs its daemon from the older build when deploy
/// upgrades it. Deploy writes the daemon's unit and leaves the running daemon
/// alone: the lab hosts have no systemd, so where deploy would run `systemctl
/// try-restart`, the test restarts it as systemd would (SIGTERM, then the
/// unit's ExecStart). The new daemon runs the new build with the state the
/// old one left: the same runs, bases, plans and `zfleet status`.
#[test]
fn a_daemon_running_during_the_upgrade_is_restarted_and_keeps_its_state() {
    let spec = LabSpec::new("deployd")
        .host(HostSpec::new("admin"))
        .host(HostSpec::seed_client("client1"))
        .host(HostSpec::seed_backup("backup"));
    let lab = start(&spec);
    let [admin, c1, backup] = ["admin", "client1", "backup"].map(|n| lab.host(n).unwrap());
    // A daily backup half a day away: nothing runs by itself during the test,
    // and the next run stays the same across the restart.
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(12);
    let at = at.to_zoned(jiff::tz::TimeZone::UTC);
    let fleet = common::ssh_fleet(
        &lab,
        &format!(
            r#"[fleet]
zfleet_path = "{bin}"

[templates.default]
hourly = 8
daily = 1

[templates.backup]
autosnap = false
hourly = 0
daily = 14

[daemon]
watch_interval = "2s"
verify_after_backup = "none"
verify_content_every = "never"
verify_drill_every = "never"

{a}{c}[hosts.client1.backup]
[hosts.client1.snapshots."zroot/persist"]
use_template = ["default"]
[hosts.client1.snapshots."zroot/persistSave"]
use_template = ["default"]

{b}[hosts.backup.server]
target_root = "zstorage/backups"
retention = "backup"
schedule = "daily {hh:02}:{mm:02}"
"#,
            bin = zfleet_bin().display(),
            a = common::host_line(admin),
            c = common::host_line(c1),
            b = common::host_line(backup),
            hh = at.hour(),
            mm = at.minute(),
        ),
    );
    let old_version = older_build(&outside(backup));
    let old_sha = sha(&outside(backup));
    backup
        .sh(&format!(
            "mkdir -p /etc/zfleet /etc/systemd/system && cp {} {FLEET_ON_HOST} && ! test -e {UNIT_ON_HOST}",
            fleet.display()
        ))
        .unwrap();
    // History made by the older build: the client's snapshots, one backup.
    zfleet(c1, &fleet, &["run"]).ok();
    backup
        .sh(&format!(
            "{PATH} --config {FLEET_ON_HOST} --host backup backup"
        ))
        .unwrap();
    let old = Daemon::start_with(&lab, backup, Path::new(PATH), Path::new(FLEET_ON_HOST), &[]);
    old.wait_log("daemon backup:", "started", Duration::from_secs(30));
    // Its first snapshot run (due at start) moves that job's next run: read
    // the state once it is done.
    old.wait_log(
        "snapshots backup: done",
        "next run",
        Duration::from_secs(60),
    );
    assert_eq!(exe_sha(backup, &old.pid()), old_sha);
    let before = state_of(backup, &fleet);
    assert!(
        before
            .0
            .iter()
            .any(|r| r.kind == "backup" && r.result == "ok"),
        "no backup run in the state: {:#?}",
        before.0
    );
    let status = || {
        let mut v = zfleet(backup, &fleet, &["status", "--json"]).ok().json();
        scrub(&mut v, &["generated"]);
        v
    };
    let status_before = status();
    assert_eq!(
        status_before["servers"][0]["rows"][0]["state"], "ok",
        "{status_before:#}"
    );

    let started = Instant::now();
    let done = deploy(admin, &fleet, &["--json", "backup"]).ok().json();
    eprintln!(
        "deploy to 1 host with a running daemon (upgrade + unit): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let r = row(&done, "backup");
    assert_eq!(r["old_version"], old_version.as_str());
    assert_eq!(r["result"], "upgraded");
    assert_eq!(r["fleet"], "same");
    assert_eq!(r["units"], "installed");
    assert_eq!(r["daemon"], "no systemd");
    // The unit is `export systemd`'s for this host and these paths.
    let dir = lab.dir().join("expected-units");
    std::fs::create_dir_all(&dir).unwrap();
    zfleet(
        admin,
        &fleet,
        &[
            "export",
            "systemd",
            "backup",
            "--bin",
            PATH,
            "--fleet-file",
            FLEET_ON_HOST,
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
    .ok();
    let unit = backup.sh(&format!("cat {UNIT_ON_HOST}")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(dir.join("zfleet.service")).unwrap()
    );
    // The old daemon still runs the old file, which the rename left intact.
    assert!(old.running());
    assert_eq!(exe_sha(backup, &old.pid()), old_sha);
    assert_eq!(sha(&outside(backup)), sha(&zfleet_bin()));

    // The restart, as systemd does it for this unit.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert_eq!(
        exec,
        format!("{PATH} --config {FLEET_ON_HOST} --host backup daemon")
    );
    old.stop(Duration::from_secs(60));
    drop(old);
    let new = Daemon::start_with(&lab, backup, Path::new(PATH), Path::new(FLEET_ON_HOST), &[]);
    new.wait_log("daemon backup:", "started", Duration::from_secs(30));
    new.wait_log(
        "snapshots backup: done",
        "next run",
        Duration::from_secs(60),
    );
    assert_eq!(exe_sha(backup, &new.pid()), sha(&zfleet_bin()));
    assert_eq!(
        backup.sh(&format!("{PATH} --version")).unwrap().trim(),
        format!("zfleet {}", env!("CARGO_PKG_VERSION"))
    );
    let after = state_of(backup, &fleet);
    assert_eq!(after.0, before.0, "the runs changed across the restart");
    assert_eq!(after.1, before.1, "the state changed across the restart");
    assert_eq!(status(), status_before);
    // A second deploy: nothing to do, the daemon is left alone.
    let again = deploy(admin, &fleet, &["--json", "backup"]).ok().json();
    let r = row(&again, "backup");
    assert_eq!(
        (&r["result"], &r["fleet"], &r["units"]),
        (
            &serde_json::json!("up to date"),
            &serde_json::json!("same"),
            &serde_json::json!("same")
        )
    );
    assert!(new.running());
}
