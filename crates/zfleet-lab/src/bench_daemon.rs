//! Benchmarks of the always-on parts: an idle `zfleet daemon` (CPU and memory
//! over minutes, on a backup server with many clients) and `zfleet status`
//! over a fleet (wall time, ssh connections per host).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

pub struct FleetOptions {
    pub zfleet: PathBuf,
    /// Clients; the lab has one more host, the backup server.
    pub hosts: usize,
    pub datasets: usize,
}

/// `hosts` clients with `datasets` datasets each (hourly snapshots), and a
/// backup server that has backed them all up once.
fn fleet_lab(name: &str, o: &FleetOptions, listen: bool) -> Result<(Lab, PathBuf)> {
    crate::sim::check_prerequisites(false)?;
    let mut spec = LabSpec::new(name).faketime(false);
    for i in 0..o.hosts {
        let mut pool = PoolSpec::new("zroot").property("mountpoint", "none");
        for d in 0..o.datasets {
            pool = pool.dataset(DatasetSpec::new(format!("zroot/d{d}")));
        }
        spec = spec.host(HostSpec::new(format!("client{i}")).pool(pool));
    }
    spec = spec.host(HostSpec::seed_backup("backup"));
    let lab = Lab::start(&spec)?;
    let datasets: Vec<String> = (0..o.datasets).map(|d| format!("\"zroot/d{d}\"")).collect();
    let mut fleet = crate::fleet::ssh_header(&lab);
    fleet.push_str(&format!(
        "[fleet]\nzfleet_path = \"{}\"\n\n[templates.t]\nhourly = 24\ndaily = 7\nmonthly = 0\n\n",
        o.zfleet.display()
    ));
    if listen {
        fleet.push_str("[daemon]\nlisten = \"127.0.0.1:9811\"\n\n");
    }
    for h in lab.hosts() {
        fleet.push_str(&format!(
            "[hosts.{}]\naddress = \"{}\"\n",
            h.name(),
            h.addr()
        ));
        if h.name() == "backup" {
            fleet.push_str(&format!(
                "[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\nparallel = {}\nretention = \"t\"\n",
                o.hosts
            ));
        } else {
            fleet.push_str(&format!(
                "[hosts.{}.backup]\ndatasets = [{}]\n",
                h.name(),
                datasets.join(", ")
            ));
            for d in 0..o.datasets {
                fleet.push_str(&format!(
                    "[hosts.{}.snapshots.\"zroot/d{d}\"]\nuse_template = [\"t\"]\n",
                    h.name()
                ));
            }
        }
    }
    let path = lab.dir().join("fleet.toml");
    std::fs::write(&path, fleet)?;
    for h in lab.hosts().iter().filter(|h| h.name() != "backup") {
        run_zfleet(h, &o.zfleet, &path, &["-q", "run"])?;
    }
    run_zfleet(lab.host("backup")?, &o.zfleet, &path, &["-q", "backup"])?;
    Ok((lab, path))
}

fn run_zfleet(h: &Host, bin: &Path, fleet: &Path, args: &[&str]) -> Result<String> {
    let out = h
        .command(bin)
        .arg("--config")
        .arg(fleet)
        .arg("--host")
        .arg(h.name())
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "zfleet {args:?} on {} failed: {}{}",
            h.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `zfleet status` on the server and on a client: wall time, and ssh
/// connections and sessions each host accepted.
pub fn status(o: &FleetOptions) -> Result<()> {
    let (lab, fleet) = fleet_lab("status", o, false)?;
    println!(
        "zfleet status, {} clients × {} datasets and one backup server:",
        o.hosts, o.datasets
    );
    for on in ["backup", "client0"] {
        let h = lab.host(on)?;
        let before: Vec<(usize, usize)> = lab
            .hosts()
            .iter()
            .map(|h| Ok((h.ssh_connections()?, h.ssh_sessions()?)))
            .collect::<Result<_>>()?;
        let mut walls = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let out = run_zfleet(h, &o.zfleet, &fleet, &["status", "--json"])?;
            walls.push(t.elapsed().as_secs_f64());
            let v: serde_json::Value = serde_json::from_str(&out).context("status --json")?;
            let rows = v["servers"][0]["rows"].as_array().map_or(0, Vec::len);
            let ok = v["servers"][0]["rows"]
                .as_array()
                .map_or(0, |r| r.iter().filter(|r| r["state"] == "ok").count());
            if rows != o.hosts * o.datasets || ok != rows {
                bail!(
                    "status shows {ok} of {rows} rows ok, expected {}",
                    o.hosts * o.datasets
                );
            }
        }
        let after: Vec<(usize, usize)> = lab
            .hosts()
            .iter()
            .map(|h| Ok((h.ssh_connections()?, h.ssh_sessions()?)))
            .collect::<Result<_>>()?;
        walls.sort_by(f64::total_cmp);
        let conns: Vec<usize> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.0 - b.0) / 3)
            .collect();
        let sess: Vec<usize> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.1 - b.1) / 3)
            .collect();
        println!("  run on {on}:");
        println!("    wall time (median of 3)     {:.2} s", walls[1]);
        println!("    ssh connections per host    {conns:?} (last: backup)");
        println!("    remote commands per host    {sess:?}");
    }
    lab.teardown()?;
    Ok(())
}

pub struct IdleOptions {
    pub fleet: FleetOptions,
    pub minutes: u64,
}

/// The pid, in the machine's namespace, of the process that is `ns_pid` in
/// `host`'s pid namespace.
fn machine_pid(host: &Host, ns_pid: u32) -> Result<u32> {
    let want = std::fs::read_link(format!("/proc/{}/ns/pid", host.pid()))?;
    for e in std::fs::read_dir("/proc")? {
        let Ok(e) = e else { continue };
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&want)
        {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let last = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|s| s.parse::<u32>().ok());
        if last == Some(ns_pid) {
            return Ok(pid);
        }
    }
    bail!("no process {ns_pid} in {}'s namespace", host.name())
}

/// CPU seconds (user + system) and resident MiB of `pid`.
fn sample(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the command name.
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    Ok((ticks / hz, kb / 1024.0))
}

/// Idle daemons on the backup server and on one client for `minutes`: CPU
/// share of one core and RSS at the start, the end and its range.
pub fn daemon_idle(o: &IdleOptions) -> Result<()> {
    let (lab, fleet) = fleet_lab("idle", &o.fleet, true)?;
    let mut daemons = Vec::new();
    for name in ["backup", "client0"] {
        let h = lab.host(name)?;
        let pidfile = lab.dir().join(format!("{name}.pid"));
        let log = lab.dir().join(format!("{name}.log"));
        let script = format!(
            "echo $$ > '{}'; exec '{}' --config '{}' --host {name} daemon >>'{}' 2>&1 </dev/null",
            pidfile.display(),
            o.fleet.zfleet.display(),
            fleet.display(),
            log.display()
        );
        let child = h
            .command("/bin/sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let t = Instant::now();
        let ns_pid = loop {
            if let Some(p) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                break p;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("the daemon on {name} did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        daemons.push((name, h, child, machine_pid(h, ns_pid)?, ns_pid, log));
    }
    // Let start-up (a snapshot run, the first look at the clients) pass.
    std::thread::sleep(Duration::from_secs(30));
    let start = Instant::now();
    let first: Vec<(f64, f64)> = daemons.iter().map(|d| sample(d.3)).collect::<Result<_>>()?;
    let mut rss: Vec<Vec<f64>> = first.iter().map(|s| vec![s.1]).collect();
    while start.elapsed() < Duration::from_secs(o.minutes * 60) {
        std::thread::sleep(Duration::from_secs(10));
        for (i, d) in daemons.iter().enumerate() {
            rss[i].push(sample(d.3)?.1);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "idle zfleet daemon over {:.1} min, {} clients × {} datasets, one backup server (watch every 5 min):",
        wall / 60.0,
        o.fleet.hosts,
        o.fleet.datasets
    );
    for (i, d) in daemons.iter_mut().enumerate() {
        let (cpu, last_rss) = sample(d.3)?;
        let share = (cpu - first[i].0) / wall * 100.0;
        let (lo, hi) = rss[i]
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!(
            "  {:8} CPU {share:.3}% of one core ({:.2} s in {:.0} s); RSS {:.1} MiB at start, {:.1} MiB at end, range {:.1}–{:.1} MiB",
            d.0,
            cpu - first[i].0,
            wall,
            first[i].1,
            last_rss,
            lo,
            hi
        );
        let _ = d.1.sh(&format!("kill -TERM {} 2>/dev/null; true", d.4));
        let _ = d.2.wait();
        let _ = &d.5;
    }
    lab.teardown()?;
    Ok(())
}
