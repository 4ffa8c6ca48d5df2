//! `zfleet-lab bench …`: replication measured on the lab, printed as ratios
//! against the raw `ssh host zfs send | zfs recv` pipe on the same data in the
//! same run. Benchmarks, not tests: they assert nothing and print figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

mod drill;
mod fleet;
mod measure;
mod restore;
mod scale;

pub use drill::{drill, DrillOptions};
pub use fleet::{fleet, FleetOptions, Peer, AUTOBACKUP_DIR, AUTOBACKUP_VERSION};
pub use restore::{restore, RestoreOptions};
pub use scale::{scale, ScaleOptions};

const PS: &str = "zroot/persistSave";

pub struct ThroughputOptions {
    pub zfleet: PathBuf,
    pub megabytes: u64,
    pub reps: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs a shell line on a host and returns (wall seconds, peak RSS in KiB of
/// the measured command, from GNU time).
fn timed(h: &Host, script: &str) -> Result<(f64, u64)> {
    let start = Instant::now();
    let out = h.sh_within(
        &format!(
            "/usr/bin/time -f 'zfleet-bench-rss %M' sh -c {} 2>&1",
            shell_quote(script)
        ),
        Duration::from_secs(3600),
    )?;
    for l in out
        .lines()
        .filter(|l| l.contains(" in ") && l.contains("/s"))
    {
        println!("      {}", l.trim());
    }
    let secs = start.elapsed().as_secs_f64();
    let rss = out
        .lines()
        .chain(std::iter::empty())
        .find_map(|l| l.strip_prefix("zfleet-bench-rss "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Ok((secs, rss))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Removes a bench target and zfleet's marks on both sides, so each run starts
/// from the same state.
fn reset(client: &Host, backup: &Host, target: &str) -> Result<()> {
    // zfs-fuse keeps a just-written mount busy for a moment: retry the destroy.
    backup.sh(&format!(
        "for s in $(zfs list -H -o name -t snapshot -r {target} 2>/dev/null); do zfs release zfleet:base:sync $s 2>/dev/null || true; done; \
         for i in $(seq 50); do zfs list {target} >/dev/null 2>&1 || break; zfs destroy -rf {target} 2>/dev/null || sleep 0.2; done"
    ))?;
    client.sh(&format!(
        "for s in $(zfs list -H -o name -t snapshot -r {PS}); do zfs release zfleet:base:sync $s 2>/dev/null || true; zfs inherit zfleet:base:sync $s; done"
    ))?;
    Ok(())
}

/// zfleet against the raw pipe over the same ssh, same data, same run.
pub fn throughput(opts: &ThroughputOptions) -> Result<()> {
    if !opts.zfleet.exists() {
        bail!("no zfleet binary at {}", opts.zfleet.display());
    }
    crate::sim::check_prerequisites(false)?;
    let size = (opts.megabytes + 256) << 20;
    let lab = Lab::start(
        &LabSpec::new("bench")
            .host(HostSpec::seed_client("client1"))
            .host(
                HostSpec::new("backup").pool(
                    PoolSpec::new("zstorage")
                        .dataset(DatasetSpec::new("zstorage/bench").property("canmount", "off")),
                ),
            )
            .vdev_size(size * 2)
            .faketime(false),
    )?;
    let (c1, backup) = (lab.host("client1")?, lab.host("backup")?);
    println!(
        "writing {} MiB of random data on client1 and snapshotting it",
        opts.megabytes
    );
    c1.sh_within(
        &format!("cd \"$(zfs get -H -o value mountpoint {PS})\" && head -c {}M /dev/urandom > data.bin && zfs snapshot {PS}@bench", opts.megabytes),
        Duration::from_secs(600),
    )?;
    let bytes = c1
        .sh(&format!("zfs send {PS}@bench | wc -c"))?
        .trim()
        .parse::<f64>()
        .context("stream size")?;
    let mb = bytes / (1 << 20) as f64;
    let zf = opts.zfleet.display().to_string();
    // "zfleet": the raw pipe's wire (nothing compressed on top of ZFS), as
    // `zfleet backup` sends by default; "zstd": `zfleet sync`'s default,
    // syncoid's compressed wire.
    const TOOLS: [&str; 3] = ["raw", "zfleet", "zstd"];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut rss = Vec::new();
    for rep in 0..opts.reps {
        // Rotate the order so no tool always runs on a warmer cache.
        for k in 0..TOOLS.len() {
            let i = (rep + k) % TOOLS.len();
            let tool = TOOLS[i];
            let target = format!("zstorage/bench/{tool}");
            reset(c1, backup, &target)?;
            let (secs, kib) = match tool {
                "raw" => timed(
                    backup,
                    &format!("ssh client1 zfs send {PS}@bench | zfs receive {target}"),
                )?,
                // The same one snapshot the pipe sends: without the flag,
                // sync makes and sends a sync snapshot too, as syncoid does.
                _ => timed(
                    backup,
                    &format!(
                        "{zf} --config /nonexistent -v sync --no-sync-snap {} client1:{PS} {target}",
                        if tool == "zstd" { "" } else { "--compress=none" }
                    ),
                )?,
            };
            println!(
                "  run {}: {tool:6} {secs:6.2} s  {:7.1} MiB/s",
                rep + 1,
                mb / secs
            );
            rates[i].push(mb / secs);
            if tool != "raw" {
                rss.push(kib);
            }
        }
    }
    let [r, z, c] = rates.map(median);
    println!(
        "\nfull send of {mb:.0} MiB from client1 to backup over ssh (median of {} runs):",
        opts.reps
    );
    println!("  raw `ssh client1 zfs send | zfs receive`  {r:7.1} MiB/s");
    println!("  zfleet sync --compress=none               {z:7.1} MiB/s");
    println!("  zfleet sync (zstd on the wire)            {c:7.1} MiB/s");
    println!("  ratio zfleet / raw pipe                   {:7.2}", z / r);
    println!("  ratio zfleet with zstd / raw pipe         {:7.2}", c / r);
    println!(
        "  zfleet peak RSS                           {:7.1} MiB",
        rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0
    );
    lab.teardown()?;
    Ok(())
}

pub struct NoChangeOptions {
    pub zfleet: PathBuf,
    pub hosts: usize,
    pub datasets: usize,
}

/// A backup run with nothing new over N hosts × M datasets: wall time, ssh
/// connections and remote commands per host.
pub fn no_change(opts: &NoChangeOptions) -> Result<()> {
    crate::sim::check_prerequisites(false)?;
    let mut spec = LabSpec::new("nochange").faketime(false);
    for i in 0..opts.hosts {
        let mut pool = PoolSpec::new("zroot").property("mountpoint", "none");
        for d in 0..opts.datasets {
            pool = pool.dataset(DatasetSpec::new(format!("zroot/d{d}")).snapshot("s1"));
        }
        spec = spec.host(HostSpec::new(format!("client{i}")).pool(pool));
    }
    spec = spec.host(HostSpec::seed_backup("backup"));
    let lab = Lab::start(&spec)?;
    let datasets: Vec<String> = (0..opts.datasets)
        .map(|d| format!("\"zroot/d{d}\""))
        .collect();
    let mut fleet = crate::fleet::ssh_header(&lab);
    for h in lab.hosts() {
        fleet.push_str(&format!(
            "[hosts.{}]\naddress = \"{}\"\n",
            h.name(),
            h.addr()
        ));
        if h.name() == "backup" {
            fleet.push_str(&format!(
                "[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\nparallel = {}\n",
                opts.hosts
            ));
        } else {
            fleet.push_str(&format!(
                "[hosts.{}.backup]\ndatasets = [{}]\n",
                h.name(),
                datasets.join(", ")
            ));
        }
    }
    let path = lab.dir().join("fleet.toml");
    std::fs::write(&path, fleet)?;
    let backup = lab.host("backup")?;
    run_zfleet(backup, &opts.zfleet, &path, &["-q", "backup"])?;
    let clients: Vec<&Host> = lab
        .hosts()
        .iter()
        .filter(|h| h.name() != "backup")
        .collect();
    let before: Vec<(usize, usize)> = clients
        .iter()
        .map(|h| Ok((h.ssh_connections()?, h.ssh_sessions()?)))
        .collect::<Result<_>>()?;
    let start = Instant::now();
    let out = run_zfleet(backup, &opts.zfleet, &path, &["backup"])?;
    let secs = start.elapsed().as_secs_f64();
    let after: Vec<(usize, usize)> = clients
        .iter()
        .map(|h| Ok((h.ssh_connections()?, h.ssh_sessions()?)))
        .collect::<Result<_>>()?;
    let up_to_date = out.matches("up to date").count();
    let conns: Vec<usize> = before.iter().zip(&after).map(|(b, a)| a.0 - b.0).collect();
    let sess: Vec<usize> = before.iter().zip(&after).map(|(b, a)| a.1 - b.1).collect();
    println!(
        "no-change backup run, {} hosts × {} datasets:",
        opts.hosts, opts.datasets
    );
    println!("  wall time                    {secs:.2} s");
    println!(
        "  jobs up to date              {up_to_date} of {}",
        opts.hosts * opts.datasets
    );
    println!("  ssh connections per host     {:?}", conns);
    println!(
        "  remote commands per host     {:?} (each one ssh session: zfs probe, listings, marks)",
        sess
    );
    lab.teardown()?;
    Ok(())
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
            "zfleet {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub struct GuestBenchOptions {
    pub zfleet: PathBuf,
    pub megabytes: u64,
    pub reps: usize,
}

/// On OpenZFS (the qemu guest, client and server in their own network
/// namespaces with sshd): zfleet sync, syncoid and the raw pipe, full sends of
/// the same snapshot over the same ssh, alternating, medians and ratios.
pub fn guest_syncoid(opts: &GuestBenchOptions) -> Result<()> {
    let guest = crate::guest::shared_guest().map_err(|e| anyhow::anyhow!("no guest: {e:?}"))?;
    guest.copy_in(&opts.zfleet, "/usr/local/bin/zfleet", true)?;
    let s = guest.scenario_with(&crate::guest::ScenarioOptions {
        hosts_in_netns: true,
    })?;
    if s.run("command -v syncoid").is_err() {
        bail!("syncoid is not in the guest image; rebuild it (`zfleet-lab guest build`)");
    }
    s.run("zfs create -o canmount=off zstorage/bench")?;
    println!(
        "writing {} MiB of random data on the guest's client",
        opts.megabytes
    );
    s.on_client(&format!(
        "zfs create -o compression=off zroot/bench && head -c {}M /dev/urandom > /zroot/bench/blob && zfs snapshot zroot/bench@s1",
        opts.megabytes
    ))?;
    let mb = opts.megabytes as f64;
    let tools = ["raw", "syncoid", "zfleet"];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    for rep in 0..opts.reps {
        for k in 0..tools.len() {
            let i = (k + rep) % tools.len();
            let tool = tools[i];
            let target = format!("zstorage/bench/{tool}");
            let cmd = match tool {
                "raw" => format!("ssh -o BatchMode=yes root@zfleet-client zfs send zroot/bench@s1 | zfs receive -u {target}"),
                "syncoid" => format!("syncoid --quiet --no-sync-snap --no-privilege-elevation root@zfleet-client:zroot/bench {target}"),
                _ => format!("zfleet --config /nonexistent -q sync zfleet-client:zroot/bench {target}"),
            };
            let start = Instant::now();
            s.on_server(&cmd)
                .with_context(|| format!("{tool} failed"))?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "  run {}: {tool:8} {secs:6.2} s  {:6.1} MiB/s",
                rep + 1,
                mb / secs
            );
            rates[i].push(mb / secs);
            s.run(&format!(
                "for x in $(zfs list -H -o name -t snapshot -r {target}); do zfs release zfleet:base:sync $x 2>/dev/null; done; zfs destroy -r {target}; \
                 zfs release zfleet:base:sync zroot/bench@s1 2>/dev/null; zfs inherit zfleet:base:sync zroot/bench@s1; \
                 for b in $(zfs list -H -o name -t bookmark zroot/bench); do zfs destroy $b; done; true"
            ))?;
        }
    }
    let med: Vec<f64> = rates.into_iter().map(median).collect();
    println!("\nOpenZFS {} guest, full send of {mb:.0} MiB over ssh between namespaces (median of {} runs):", s.run("zfs version | head -1")?.trim(), opts.reps);
    for (t, r) in tools.iter().zip(&med) {
        println!("  {t:8} {r:6.1} MiB/s");
    }
    println!("  ratio zfleet / raw pipe   {:.2}", med[2] / med[0]);
    println!("  ratio zfleet / syncoid    {:.2}", med[2] / med[1]);
    Ok(())
}
