//! `zfleet-lab bench scale`: how `zfleet backup` grows with the fleet. One
//! lab of the largest host count asked for; for each count N, a fleet file of
//! the first N clients, a nightly run (a fresh snapshot with new data in every
//! dataset) and then a run with nothing new, each measured.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use super::measure::{self, mib, Run};
use crate::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

pub struct ScaleOptions {
    pub zfleet: PathBuf,
    /// Host counts, ascending.
    pub hosts: Vec<usize>,
    pub datasets: usize,
    pub delta_mib: u64,
    /// zfs-fuse's ARC per host: a hundred daemons with the default would not
    /// fit next to everything else on a 24 GiB machine.
    pub max_arc_mib: u32,
}

const ROOT: &str = "zstorage/backups";

pub fn scale(opts: &ScaleOptions) -> Result<()> {
    if !opts.zfleet.exists() {
        bail!("no zfleet binary at {}", opts.zfleet.display());
    }
    let Some(&max) = opts.hosts.iter().max() else {
        bail!("--hosts names no host count");
    };
    if max == 0 || opts.datasets == 0 {
        bail!("--hosts and --datasets must be at least 1");
    }
    crate::sim::check_prerequisites(false)?;
    let steps = opts.hosts.len() as u64;
    let per_dataset = (steps + 1) * opts.delta_mib + 1;
    let mut spec = LabSpec::new("scale").faketime(false);
    for i in 1..=max {
        let mut pool = PoolSpec::new("zroot")
            .vdev_size(((opts.datasets as u64 * per_dataset * 2) << 20).max(128 << 20))
            .property("mountpoint", "/zroot");
        for d in 0..opts.datasets {
            pool = pool.dataset(DatasetSpec::new(format!("zroot/d{d}")).snapshot("first"));
        }
        spec = spec.host(
            HostSpec::new(format!("client{i}"))
                .pool(pool)
                .max_arc_mib(opts.max_arc_mib),
        );
    }
    let server_vdev = ((max as u64 * opts.datasets as u64 * per_dataset * 2) << 20) + (512 << 20);
    spec = spec.host(
        HostSpec::new("backup")
            .pool(
                PoolSpec::new("zstorage")
                    .vdev_size(server_vdev)
                    .property("mountpoint", "/zstorage")
                    .dataset(DatasetSpec::new(ROOT).property("canmount", "off")),
            )
            .max_arc_mib(opts.max_arc_mib.max(64)),
    );
    println!(
        "starting a lab of {max} clients × {} datasets (zfs-fuse ARC {} MiB each)…",
        opts.datasets, opts.max_arc_mib
    );
    let started = std::time::Instant::now();
    let lab = Lab::start(&spec)?;
    println!(
        "  up in {:.0} s; {}",
        started.elapsed().as_secs_f64(),
        memory_line()
    );
    for h in lab.hosts() {
        measure::install_counters(h)?;
    }
    let backup = lab.host("backup")?;
    let clients: Vec<&Host> = lab
        .hosts()
        .iter()
        .filter(|h| h.name() != "backup")
        .collect();
    let all = fleet_file(&lab, &clients, opts.datasets, "all")?;
    let first = measure::measured(backup, &clients, &zfleet_line(opts, &all))?;
    check_arrived(backup, &clients, opts.datasets, "first")?;
    println!(
        "first backup of {max} clients × {} (empty) datasets: {:.2} s wall, {:.1} MiB peak RSS",
        opts.datasets,
        first.wall,
        mib(first.rss)
    );

    let mut rows: Vec<(usize, Run, Run)> = Vec::new();
    for (step, &n) in opts.hosts.iter().enumerate() {
        let these = &clients[..n.min(clients.len())];
        let fleet = fleet_file(&lab, these, opts.datasets, &n.to_string())?;
        let snap = format!("step{step}");
        write_deltas(these, opts.datasets, opts.delta_mib, &snap)?;
        let nightly = measure::measured(backup, these, &zfleet_line(opts, &fleet))?;
        check_arrived(backup, these, opts.datasets, &snap)?;
        let idle = measure::measured(backup, these, &zfleet_line(opts, &fleet))?;
        println!(
            "  {n:4} hosts: nightly {:7.2} s, nothing new {:6.2} s",
            nightly.wall, idle.wall
        );
        rows.push((n, nightly, idle));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nzfleet backup by fleet size, {} datasets per host, {} MiB new per dataset (load average {}):",
        opts.datasets,
        opts.delta_mib,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "  {:>6} {:>11} {:>9} {:>13} {:>9} {:>12} {:>12}",
        "hosts", "nightly s", "s/host", "nothing new s", "s/host", "ssh/host", "peak RSS"
    );
    for (n, nightly, idle) in &rows {
        let per = |x: f64| x / *n as f64;
        println!(
            "  {n:>6} {:>11.2} {:>9.3} {:>13.2} {:>9.3} {:>5.2} / {:<5.2} {:>7.1} MiB",
            nightly.wall,
            per(nightly.wall),
            idle.wall,
            per(idle.wall),
            nightly.clients.ssh_connections as f64 / *n as f64,
            idle.clients.ssh_connections as f64 / *n as f64,
            mib(nightly.rss.max(idle.rss))
        );
    }
    println!(
        "  remote commands per host with nothing new: {:.2}",
        rows.last()
            .map_or(0.0, |(n, _, idle)| idle.clients.ssh_sessions as f64
                / *n as f64)
    );
    lab.teardown()?;
    Ok(())
}

fn zfleet_line(opts: &ScaleOptions, fleet: &std::path::Path) -> String {
    format!(
        "{} --config {} --host backup -q backup",
        opts.zfleet.display(),
        fleet.display()
    )
}

fn fleet_file(lab: &Lab, clients: &[&Host], datasets: usize, tag: &str) -> Result<PathBuf> {
    let mut s = crate::fleet::ssh_header(lab);
    let list: Vec<String> = (0..datasets).map(|d| format!("\"zroot/d{d}\"")).collect();
    for h in clients {
        let _ = writeln!(
            s,
            "[hosts.{n}]\naddress = \"{}\"\n[hosts.{n}.backup]\ndatasets = [{}]\n",
            h.addr(),
            list.join(", "),
            n = h.name()
        );
    }
    let backup = lab.host("backup")?;
    let _ = writeln!(
        s,
        "[hosts.backup]\naddress = \"{}\"\n[hosts.backup.server]\ntarget_root = \"{ROOT}\"",
        backup.addr()
    );
    let path = lab.dir().join(format!("fleet-{tag}.toml"));
    std::fs::write(&path, s)?;
    Ok(path)
}

/// New random data and a snapshot in every dataset of `hosts`, many hosts
/// at a time.
fn write_deltas(hosts: &[&Host], datasets: usize, mib: u64, snap: &str) -> Result<()> {
    let mut script = String::from("set -e\n");
    for d in 0..datasets {
        let _ = writeln!(
            script,
            "mp=$(zfs get -H -o value mountpoint zroot/d{d})\nhead -c {mib}M /dev/urandom > \"$mp/data.bin\"\nzfs snapshot zroot/d{d}@{snap}"
        );
    }
    for chunk in hosts.chunks(16) {
        let results: Vec<Result<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|h| {
                    let script = &script;
                    s.spawn(move || h.sh_within(script, Duration::from_secs(600)))
                })
                .collect();
            handles
                .into_iter()
                .map(|j| {
                    j.join()
                        .unwrap_or_else(|_| bail!("a writer thread panicked"))
                })
                .collect()
        });
        for r in results {
            r?;
        }
    }
    Ok(())
}

/// Fails unless every client dataset's snapshot `snap` is on the server.
fn check_arrived(backup: &Host, clients: &[&Host], datasets: usize, snap: &str) -> Result<()> {
    let out = backup.sh(&format!("zfs list -H -o name -t snapshot -r {ROOT}"))?;
    for h in clients {
        for d in 0..datasets {
            let want = format!("{ROOT}/{}/zroot/d{d}@{snap}", h.name());
            if !out.lines().any(|l| l == want) {
                bail!(
                    "zfleet did not transfer {}:zroot/d{d}@{snap}: {want} is missing",
                    h.name()
                );
            }
        }
    }
    Ok(())
}

fn memory_line() -> String {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    format!(
        "machine memory available {:.1} of {:.1} GiB",
        kib("MemAvailable:") as f64 / 1048576.0,
        kib("MemTotal:") as f64 / 1048576.0
    )
}
