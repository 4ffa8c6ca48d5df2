//! `zfleet-lab demo`: zfleet's main job on a lab fleet, step by step, with
//! every command and its output shown — the README's first command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::fleet::seed_fleet_toml;
use crate::sim::{Host, Lab, LabSpec};

pub struct DemoOptions {
    pub zfleet: PathBuf,
    pub megabytes: u64,
}

/// Where the `zfleet` binary is when none is given: next to this program
/// (both are built into the same target directory).
pub fn default_zfleet() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("zfleet")))
        .unwrap_or_else(|| PathBuf::from("zfleet"))
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// Runs zfleet on a lab host, echoing the command line and its output.
fn zfleet(host: &Host, bin: &Path, fleet: &Path, args: &[&str]) -> Result<String> {
    println!("[{}]$ zfleet {}", host.name(), args.join(" "));
    let out = host
        .command(bin)
        .arg("--config")
        .arg(fleet)
        .arg("--host")
        .arg(host.name())
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for l in stdout.lines().chain(stderr.lines()) {
        println!("  {l}");
    }
    if !out.status.success() {
        bail!(
            "zfleet {} failed on {} ({})",
            args.join(" "),
            host.name(),
            out.status
        );
    }
    Ok(stdout.into_owned())
}

fn sh(host: &Host, script: &str) -> Result<String> {
    println!("[{}]# {script}", host.name());
    host.sh(script)
}

pub fn run(opts: &DemoOptions) -> Result<()> {
    if !opts.zfleet.exists() {
        bail!(
            "no zfleet binary at {} (build it with `cargo build`)",
            opts.zfleet.display()
        );
    }
    crate::sim::check_prerequisites(false)?;
    let started = Instant::now();
    step(
        "A lab fleet: two clients and one backup server, each with its own zfs-fuse pool and sshd",
    );
    let lab = Lab::start(&LabSpec::seed()).context("the lab did not start")?;
    // Every host's clock starts at the same moment, a minute before the hour,
    // so the snapshot policy has something due and, an hour later, more.
    let t0: i64 = 1_795_687_140; // 2026-11-26 09:59:00 UTC
    for h in lab.hosts() {
        h.set_time(t0)?;
    }
    for h in lab.hosts() {
        println!(
            "  {:8} {}  (enter: {})",
            h.name(),
            h.addr(),
            h.enter_command()
        );
    }
    println!("  up in {:.1}s", started.elapsed().as_secs_f64());
    let fleet = lab.dir().join("fleet.toml");
    std::fs::write(&fleet, seed_fleet_toml(&lab, ""))?;
    let (c1, c2, backup) = (
        lab.host("client1")?,
        lab.host("client2")?,
        lab.host("backup")?,
    );
    let bin = &opts.zfleet;

    step("The fleet file, checked and expanded");
    println!("  {}", fleet.display());
    zfleet(backup, bin, &fleet, &["check"])?;

    step("Data on the clients, and the policy's snapshots (sanoid's names, hourly/daily/monthly/yearly)");
    let mb = opts.megabytes;
    for c in [c1, c2] {
        sh(c, &format!("cd \"$(zfs get -H -o value mountpoint zroot/persistSave)\" && head -c {mb}M /dev/urandom > data.bin && echo hello from {} > hello.txt", c.name()))?;
        zfleet(c, bin, &fleet, &["run"])?;
    }

    step("Every host's datasets, listed over ssh from the backup server");
    zfleet(backup, bin, &fleet, &["list"])?;

    step("The first backup: a full send of each client's oldest snapshot, then every later one incrementally");
    zfleet(backup, bin, &fleet, &["backup"])?;

    step("An hour later: more data, the next hourly snapshot, an incremental backup");
    for h in lab.hosts() {
        h.set_time(t0 + 3600)?;
    }
    for c in [c1, c2] {
        sh(c, "cd \"$(zfs get -H -o value mountpoint zroot/persistSave)\" && head -c 1M /dev/urandom >> data.bin && date > changed.txt")?;
        zfleet(c, bin, &fleet, &["run"])?;
    }
    zfleet(backup, bin, &fleet, &["backup"])?;

    step("Nothing new: a backup run that sends nothing");
    zfleet(backup, bin, &fleet, &["backup"])?;

    step("Verify: the received data equals the clients' data, byte for byte");
    for c in [c1, c2] {
        let src = sh(c, "cd \"$(zfs get -H -o value mountpoint zroot/persistSave)\" && sha256sum data.bin hello.txt changed.txt")?;
        let dst = sh(
            backup,
            &format!("cd \"$(zfs get -H -o value mountpoint zstorage/backups/{}/zroot/persistSave)\" && sha256sum data.bin hello.txt changed.txt", c.name()),
        )?;
        if src != dst {
            bail!(
                "{}: backup differs from the source:\n{src}\n{dst}",
                c.name()
            );
        }
        println!("  {}: 3 files identical", c.name());
    }

    step("The backup server prunes what it received by its own retention (daily 14, monthly 6, yearly 1), never the newest common snapshot");
    zfleet(backup, bin, &fleet, &["run", "--dry-run"])?;
    zfleet(backup, bin, &fleet, &["run"])?;

    step("client1 is reinstalled: its pool destroyed and created again, empty, as a fresh install would");
    let before = sh(c1, "cd \"$(zfs get -H -o value mountpoint zroot/persistSave)\" && sha256sum data.bin hello.txt changed.txt")?;
    println!(
        "[client1]# (reinstall: zpool destroy zroot; zpool create zroot … with the seed's layout)"
    );
    c1.reinstall_pool("zroot")?;
    sh(c1, "zfs list -H -o name,used -r zroot")?;

    step("One command brings client1's data back from the backup server");
    zfleet(backup, bin, &fleet, &["restore", "client1", "--dry-run"])?;
    zfleet(backup, bin, &fleet, &["restore", "client1"])?;
    let after = sh(c1, "cd \"$(zfs get -H -o value mountpoint zroot/persistSave)\" && sha256sum data.bin hello.txt changed.txt")?;
    if before != after {
        bail!("client1: restored files differ:\n{before}\n{after}");
    }
    println!("  client1: 3 files identical after the restore");

    step("Backups continue incrementally from the restored snapshot");
    for h in lab.hosts() {
        h.set_time(t0 + 7200)?;
    }
    zfleet(c1, bin, &fleet, &["run"])?;
    zfleet(backup, bin, &fleet, &["backup", "client1"])?;

    step("What the backup server now holds");
    zfleet(backup, bin, &fleet, &["list", "--snapshots", "backup"])?;

    step("Always on: zfleet daemon on the backup server runs its scheduled backup (daily 02:00) by itself");
    // The status commands run `zfleet state` on the server; tell them where it is.
    std::fs::write(
        &fleet,
        seed_fleet_toml(
            &lab,
            &format!(
                "\n[fleet]\nzfleet_path = \"{}\"\n\n[daemon]\nlisten = \"127.0.0.1:9811\"\n",
                bin.display()
            ),
        ),
    )?;
    // The next night, seconds before two: the clients have taken their
    // snapshots, the server's daemon waits for its schedule.
    let night: i64 = 1_795_744_785; // 2026-11-27 01:59:45 UTC
    for h in lab.hosts() {
        h.set_time(night)?;
    }
    for c in [c1, c2] {
        sh(
            c,
            "cd \"$(zfs get -H -o value mountpoint zroot/persistSave)\" && date > night.txt",
        )?;
        zfleet(c, bin, &fleet, &["-q", "run"])?;
    }
    let log = lab.dir().join("daemon-backup.log");
    let pidfile = lab.dir().join("daemon-backup.pid");
    println!("[backup]$ zfleet daemon    (log: {})", log.display());
    let mut daemon = backup
        .command("/bin/sh")
        .args([
            "-c",
            &format!(
                "echo $$ > '{}'; exec '{}' --config '{}' --host backup daemon >>'{}' 2>&1 </dev/null",
                pidfile.display(),
                bin.display(),
                fleet.display(),
                log.display()
            ),
        ])
        .spawn()
        .context("cannot start the daemon")?;
    let waited = Instant::now();
    let mut shown = 0;
    let mut done = false;
    // The first scheduled run also verifies the two backups at drill level
    // (never drilled is due), which restores each once: allow for a slow machine.
    while waited.elapsed().as_secs() < 300 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for l in text.lines().skip(shown) {
            println!("  {l}");
            done |= l.contains("backup backup: done");
        }
        shown = text.lines().count();
        if done {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    if !done {
        bail!(
            "the daemon did not run its scheduled backup; its log is {}",
            log.display()
        );
    }

    step("zfleet status: where every backup stands (from client1, reading the server's state over ssh)");
    zfleet(c1, bin, &fleet, &["status"])?;

    step("The daemon's status page and metrics");
    let metrics = backup.with_network(|| http_get("127.0.0.1:9811", "/metrics"))??;
    for l in metrics.lines().filter(|l| {
        l.starts_with("zfleet_backup_last_success")
            || l.starts_with("zfleet_backup_lag_snapshots")
            || l.starts_with("zfleet_pool_health")
    }) {
        println!("  {l}");
    }
    println!(
        "  the status page is http://127.0.0.1:9811/ in the backup host's network: `nsenter --target {} --net -- curl -s http://127.0.0.1:9811/`\n  (`zfleet-lab sim up` keeps a lab running, to open the page in a browser there)",
        backup.pid()
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
    sh(backup, &format!("kill -TERM {}", pid.trim()))?;
    let _ = daemon.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for l in text.lines().skip(shown) {
        println!("  {l}");
    }

    lab.teardown()?;
    println!(
        "\nDemo finished in {:.1}s; the lab is torn down.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `GET path` over plain HTTP/1.0, for the demo's look at the daemon.
fn http_get(addr: &str, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map_or(out.clone(), |(_, b)| b.to_string()))
}
