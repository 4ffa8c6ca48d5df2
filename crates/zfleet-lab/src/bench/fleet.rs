//! `zfleet-lab bench fleet`: the nightly workload, many clients with a few
//! datasets each and a few MiB new in each, pulled by a backup server three
//! ways on the same lab in the same run: `zfleet backup`, syncoid once per
//! dataset (as the NixOS module's units run it, with the seed's
//! `--no-sync-snap`), and zfs-autobackup once per client.
//!
//! Each repetition gives every client dataset a fresh snapshot holding a new
//! random file, then runs the peers one after the other, each into its own
//! target tree, in an order that rotates between repetitions. A peer that did
//! not bring the snapshot over with the same content (a checksum of every file,
//! read from a clone of the received snapshot) fails the benchmark.
//!
//! What zfs-fuse lacks and the peers use is wrapped or turned off, and said so:
//! see `count-zfs.sh` for `zfs get -t` and `zpool get -H -p -o`; zfs-fuse's
//! `zfs holds` needs a Python module Debian's package does not ship, so
//! zfs-autobackup runs with `--no-holds`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::measure::{self, median_run, mib, Run};
use crate::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

/// The zfs-autobackup release compared against, from PyPI.
pub const AUTOBACKUP_VERSION: &str = "3.3";

/// Where the bench installs zfs-autobackup (`pip install --target`) when it
/// is not there yet.
pub const AUTOBACKUP_DIR: &str = "/var/cache/zfleet-lab/zfs-autobackup-3.3";

const SERVER: &str = "backup";
const NEW_HOST: &str = "fresh";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Zfleet,
    Syncoid,
    Autobackup,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::Zfleet, Peer::Syncoid, Peer::Autobackup];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Zfleet => "zfleet",
            Peer::Syncoid => "syncoid",
            Peer::Autobackup => "zfs-autobackup",
        }
    }

    fn root(self) -> &'static str {
        match self {
            Peer::Zfleet => "zstorage/zfleet",
            Peer::Syncoid => "zstorage/syncoid",
            Peer::Autobackup => "zstorage/zab",
        }
    }

    /// Where `client`'s dataset lands: zfleet keeps the pool in the path;
    /// syncoid's targets are named like the seed's, zfs-autobackup's with
    /// `--strip-path 1`.
    fn target(self, client: &str, dataset: &str) -> String {
        match self {
            Peer::Zfleet => format!("{}/{client}/{dataset}", self.root()),
            _ => format!(
                "{}/{client}/{}",
                self.root(),
                dataset.split_once('/').map_or(dataset, |(_, rest)| rest)
            ),
        }
    }
}

pub struct FleetOptions {
    pub zfleet: PathBuf,
    pub clients: usize,
    pub datasets: usize,
    /// MiB of new random data per dataset and repetition.
    pub delta_mib: u64,
    pub reps: usize,
    pub peers: Vec<Peer>,
    /// Datasets of the new host whose first backup is measured (0: none).
    pub new_host_datasets: usize,
    pub new_host_mib: u64,
    /// Print every `zfs`/`zpool` call each peer made on the first client and
    /// on the server in the last repetition.
    pub show_calls: bool,
}

struct Bench<'a> {
    lab: &'a Lab,
    backup: &'a Host,
    datasets: Vec<String>,
    /// The new host's datasets.
    new_datasets: Vec<String>,
    zfleet: PathBuf,
    autobackup: Option<PathBuf>,
    ssh_config: PathBuf,
}

pub fn fleet(opts: &FleetOptions) -> Result<()> {
    if !opts.zfleet.exists() {
        bail!("no zfleet binary at {}", opts.zfleet.display());
    }
    if opts.clients == 0 || opts.datasets == 0 || opts.reps == 0 {
        bail!("--clients, --datasets and --reps must be at least 1");
    }
    crate::sim::check_prerequisites(false)?;
    let autobackup = if opts.peers.contains(&Peer::Autobackup) {
        Some(install_autobackup()?)
    } else {
        None
    };
    if opts.peers.contains(&Peer::Syncoid) && !Path::new("/usr/sbin/syncoid").exists() {
        bail!("syncoid is not installed (Debian package `sanoid`)");
    }
    let datasets: Vec<String> = (0..opts.datasets).map(|d| format!("zroot/d{d}")).collect();
    let new_datasets: Vec<String> = (0..opts.new_host_datasets)
        .map(|d| format!("zroot/d{d}"))
        .collect();
    let per_dataset = 1 + (opts.reps as u64 + 1) * opts.delta_mib;
    let client_vdev = ((opts.datasets as u64 * per_dataset * 2) << 20).max(256 << 20);
    let new_host_total = opts.new_host_datasets as u64 * opts.new_host_mib;
    let server_vdev = ((3 * opts.clients as u64 * opts.datasets as u64 * per_dataset * 2
        + 3 * new_host_total * 2)
        << 20)
        + (512 << 20);
    let mut spec = LabSpec::new("fleet").faketime(false);
    for i in 1..=opts.clients {
        spec = spec.host(client_spec(&format!("client{i}"), &datasets, client_vdev));
    }
    if opts.new_host_datasets > 0 {
        spec = spec.host(client_spec(
            NEW_HOST,
            &new_datasets,
            ((new_host_total * 2) << 20).max(256 << 20),
        ));
    }
    let mut pool = PoolSpec::new("zstorage")
        .vdev_size(server_vdev)
        .property("mountpoint", "/zstorage");
    for p in Peer::ALL {
        pool = pool.dataset(DatasetSpec::new(p.root()).property("canmount", "off"));
    }
    // syncoid creates no parents (the seed's server had them), and
    // zfs-autobackup wants its target path to exist.
    let names = (1..=opts.clients)
        .map(|i| format!("client{i}"))
        .chain([NEW_HOST.to_string()]);
    for name in names {
        for p in [Peer::Syncoid, Peer::Autobackup] {
            pool = pool.dataset(
                DatasetSpec::new(format!("{}/{name}", p.root())).property("canmount", "off"),
            );
        }
    }
    spec = spec.host(HostSpec::new(SERVER).pool(pool));
    println!(
        "starting a lab of {} clients × {} datasets and a backup server…",
        opts.clients, opts.datasets
    );
    let lab = Lab::start(&spec)?;
    let backup = lab.host(SERVER)?;
    for h in lab.hosts() {
        measure::install_counters(h)?;
    }
    let ssh_config = lab.dir().join("autobackup-ssh.conf");
    std::fs::write(&ssh_config, autobackup_ssh_config(&lab))?;
    let bench = Bench {
        lab: &lab,
        backup,
        datasets: datasets.clone(),
        new_datasets: new_datasets.clone(),
        zfleet: opts.zfleet.clone(),
        autobackup,
        ssh_config,
    };
    std::fs::write(bench.fleet_path(), bench.fleet_toml(false))?;
    std::fs::write(bench.fleet_path_new(), bench.fleet_toml(true))?;
    let clients: Vec<&Host> = lab
        .hosts()
        .iter()
        .filter(|h| h.name().starts_with("client"))
        .collect();

    // Every peer's first backup of the clients, then the nightly runs.
    let mut expected = bench.new_snapshots(&clients, &bench.datasets, 1, 0)?;
    println!("first backup of every client by every peer (not measured)…");
    for &p in &opts.peers {
        bench.run(p, &clients)?;
        bench.verify(p, &clients, &bench.datasets, &expected)?;
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); opts.peers.len()];
    for rep in 0..opts.reps {
        expected = bench.new_snapshots(&clients, &bench.datasets, opts.delta_mib, rep + 1)?;
        for k in 0..opts.peers.len() {
            let i = (k + rep) % opts.peers.len();
            let p = opts.peers[i];
            let first = (
                measure::counters(clients[0], false)?.zfs_calls,
                measure::counters(backup, false)?.zfs_calls,
            );
            let r = bench.run(p, &clients)?;
            if opts.show_calls && rep + 1 == opts.reps {
                for (h, from) in [(clients[0], first.0), (backup, first.1)] {
                    println!("    {} on {}:", p.name(), h.name());
                    for c in measure::calls_since(h, from) {
                        println!("      {c}");
                    }
                }
            }
            println!(
                "  rep {}: {:15} {:7.2} s  {:5} zfs on clients  {:4} on server  {:4} ssh connections  {:7.1} MiB on the wire",
                rep + 1,
                p.name(),
                r.wall,
                r.clients.zfs_calls,
                r.server.zfs_calls,
                r.clients.ssh_connections,
                mib(r.server.wire_bytes)
            );
            bench.verify(p, &clients, &bench.datasets, &expected)?;
            runs[i].push(r);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nnightly incremental, {} clients × {} datasets, {} MiB new per dataset (median of {} runs; load average {}):",
        opts.clients,
        opts.datasets,
        opts.delta_mib,
        opts.reps,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let medians: Vec<Run> = runs.iter().map(|r| median_run(r)).collect();
    print_table(&opts.peers, &medians, opts.clients * opts.datasets);

    if opts.new_host_datasets > 0 {
        let fresh = lab.host(NEW_HOST)?;
        let new = &new_datasets;
        let expected = bench.new_snapshots(&[fresh], new, opts.new_host_mib, 0)?;
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); opts.peers.len()];
        println!(
            "\nfirst backup of a new host with {} datasets × {} MiB:",
            opts.new_host_datasets, opts.new_host_mib
        );
        for rep in 0..opts.reps {
            for k in 0..opts.peers.len() {
                let i = (k + rep) % opts.peers.len();
                let p = opts.peers[i];
                bench.forget(p, fresh)?;
                let r = bench.run_new(p, fresh)?;
                println!("  rep {}: {:15} {:7.2} s", rep + 1, p.name(), r.wall);
                bench.verify(p, &[fresh], new, &expected)?;
                runs[i].push(r);
            }
        }
        let medians: Vec<Run> = runs.iter().map(|r| median_run(r)).collect();
        print_table(&opts.peers, &medians, new.len());
    }
    lab.teardown()?;
    Ok(())
}

fn client_spec(name: &str, datasets: &[String], vdev: u64) -> HostSpec {
    let mut pool = PoolSpec::new("zroot")
        .vdev_size(vdev)
        .property("mountpoint", "/zroot");
    for d in datasets {
        // zfs-autobackup's selection: the property on each source dataset.
        pool = pool.dataset(DatasetSpec::new(d.as_str()).property("autobackup:bench", "true"));
    }
    HostSpec::new(name).pool(pool)
}

impl Bench<'_> {
    fn fleet_path(&self) -> PathBuf {
        self.lab.dir().join("fleet.toml")
    }

    fn fleet_path_new(&self) -> PathBuf {
        self.lab.dir().join("fleet-new-host.toml")
    }

    /// The fleet: every client backs up its datasets to the server, which
    /// runs with the default parallelism. `with_new` adds the new host.
    fn fleet_toml(&self, with_new: bool) -> String {
        let mut s = crate::fleet::ssh_header(self.lab);
        for h in self.lab.hosts() {
            let _ = writeln!(s, "[hosts.{}]\naddress = \"{}\"", h.name(), h.addr());
            if h.name() == SERVER {
                let _ = writeln!(
                    s,
                    "[hosts.{SERVER}.server]\ntarget_root = \"{}\"",
                    Peer::Zfleet.root()
                );
            } else if h.name() != NEW_HOST || with_new {
                let datasets = if h.name() == NEW_HOST {
                    &self.new_datasets
                } else {
                    &self.datasets
                };
                let list: Vec<String> = datasets.iter().map(|d| format!("\"{d}\"")).collect();
                let _ = writeln!(
                    s,
                    "[hosts.{}.backup]\ndatasets = [{}]",
                    h.name(),
                    list.join(", ")
                );
            }
            s.push('\n');
        }
        s
    }

    /// Writes `mib` MiB of new random data into every dataset of `hosts`
    /// (replacing the previous rep's file) and snapshots it with a sanoid
    /// name all three peers send. Returns (host, dataset, snapshot) →
    /// checksum of the dataset's files.
    fn new_snapshots(
        &self,
        hosts: &[&Host],
        datasets: &[String],
        mib: u64,
        rep: usize,
    ) -> Result<Vec<Expected>> {
        // Names a second apart per rep, so that they sort and never collide.
        let t = jiff::Timestamp::now().as_second() + rep as i64;
        let snap = jiff::Timestamp::from_second(t)
            .map(|ts| {
                ts.to_zoned(jiff::tz::TimeZone::UTC)
                    .strftime("autosnap_%Y-%m-%d_%H:%M:%S_hourly")
                    .to_string()
            })
            .context("the time")?;
        let mut script = String::from("set -e\n");
        for d in datasets {
            let _ = writeln!(
                script,
                "mp=$(zfs get -H -o value mountpoint {d})\n\
                 head -c {mib}M /dev/urandom > \"$mp/rep.bin\"\n\
                 printf '%s %s\\n' {d} \"$(cd \"$mp\" && {TREE_SUM})\"\n\
                 zfs snapshot {d}@{snap}"
            );
        }
        let outs: Vec<Result<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .iter()
                .map(|h| {
                    let script = &script;
                    s.spawn(move || h.sh_within(script, Duration::from_secs(900)))
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
        let mut expected = Vec::new();
        for (h, out) in hosts.iter().zip(outs) {
            for line in out?.lines() {
                if let Some((d, sum)) = line.split_once(' ') {
                    expected.push(Expected {
                        host: h.name().to_string(),
                        dataset: d.to_string(),
                        snapshot: snap.clone(),
                        sum: sum.trim().to_string(),
                    });
                }
            }
        }
        Ok(expected)
    }

    /// Runs one peer over `clients`, measured.
    fn run(&self, peer: Peer, clients: &[&Host]) -> Result<Run> {
        let names: Vec<&str> = clients.iter().map(|h| h.name()).collect();
        let script = match peer {
            Peer::Zfleet => format!(
                "{} --config {} --host {SERVER} -q backup",
                self.zfleet.display(),
                self.fleet_path().display()
            ),
            Peer::Syncoid => self.syncoid_script(&names, &self.datasets),
            Peer::Autobackup => self.autobackup_script(&names)?,
        };
        self.measured(peer, clients, &script)
    }

    /// A peer's first backup of the new host, measured.
    fn run_new(&self, peer: Peer, fresh: &Host) -> Result<Run> {
        let script = match peer {
            Peer::Zfleet => format!(
                "{} --config {} --host {SERVER} -q backup {NEW_HOST}",
                self.zfleet.display(),
                self.fleet_path_new().display()
            ),
            Peer::Syncoid => self.syncoid_script(&[NEW_HOST], &self.new_datasets),
            Peer::Autobackup => self.autobackup_script(&[NEW_HOST])?,
        };
        self.measured(peer, &[fresh], &script)
    }

    fn measured(&self, peer: Peer, clients: &[&Host], script: &str) -> Result<Run> {
        let run = measure::measured(self.backup, clients, script);
        if peer == Peer::Autobackup {
            // Its ssh masters outlive the run (ControlPersist); a nightly run
            // would find none, so neither does the next repetition.
            let mut close = String::new();
            for c in clients {
                let _ = writeln!(
                    close,
                    "ssh -F {} -O exit {} 2>/dev/null || true",
                    self.ssh_config.display(),
                    c.name()
                );
            }
            self.backup.sh(&close)?;
        }
        run.with_context(|| format!("{} failed", peer.name()))
    }

    /// One syncoid per dataset, one after the other, with the arguments the
    /// NixOS module's unit passes (the seed's `commonArgs` and
    /// `recvOptions`). The units' `zfs allow` before and `zfs unallow` after
    /// are left out: syncoid runs as root here.
    fn syncoid_script(&self, clients: &[&str], datasets: &[String]) -> String {
        let mut s = String::from("set -e\n");
        for c in clients {
            for d in datasets {
                let _ = writeln!(
                    s,
                    "/usr/sbin/syncoid --no-sync-snap --sendoptions '' --recvoptions c --no-privilege-elevation root@{c}:{d} {}",
                    Peer::Syncoid.target(c, d)
                );
            }
        }
        s
    }

    /// One zfs-autobackup run per client, one after the other, pulling over
    /// ssh with its wiki's persistent-connection tip, selecting the datasets
    /// by its property and the snapshots by the sanoid name format; it takes
    /// and thins none itself.
    fn autobackup_script(&self, clients: &[&str]) -> Result<String> {
        let Some(dir) = &self.autobackup else {
            bail!("zfs-autobackup is not installed");
        };
        let mut s = String::from("set -e\n");
        for c in clients {
            let _ = writeln!(
                s,
                "PYTHONPATH={d} /usr/bin/python3 {d}/bin/zfs-autobackup --ssh-source {c} --ssh-config {cfg} \
                 --no-snapshot --no-thinning --no-holds --no-progress --strip-path 1 \
                 --snapshot-format 'autosnap_%Y-%m-%d_%H:%M:%S_hourly' bench {root}/{c}",
                d = dir.display(),
                cfg = self.ssh_config.display(),
                root = Peer::Autobackup.root()
            );
        }
        Ok(s)
    }

    /// Checks that every expected snapshot arrived in `peer`'s tree with the
    /// same files: each is cloned, mounted, summed and destroyed.
    fn verify(
        &self,
        peer: Peer,
        hosts: &[&Host],
        datasets: &[String],
        expected: &[Expected],
    ) -> Result<()> {
        // zfs-fuse keeps a just-read mount busy for a moment: force, retry.
        let mut script = String::from(
            "gone() { for i in $(seq 50); do zfs destroy -f \"$1\" 2>/dev/null && return 0; sleep 0.2; done; zfs destroy -f \"$1\"; }\n",
        );
        for (k, e) in expected.iter().enumerate() {
            debug_assert!(
                hosts.iter().any(|h| h.name() == e.host) && datasets.contains(&e.dataset)
            );
            let target = peer.target(&e.host, &e.dataset);
            let clone = format!("zstorage/verify{k}");
            let _ = writeln!(
                script,
                "if zfs clone -o mountpoint=/verify/{k} {target}@{snap} {clone} 2>/dev/null; then \
                   printf '%s %s\\n' {k} \"$(cd \"$(zfs get -H -o value mountpoint {clone})\" && {TREE_SUM})\"; \
                   gone {clone}; \
                 else echo {k} missing; fi",
                snap = e.snapshot
            );
        }
        let out = self.backup.sh_within(&script, Duration::from_secs(1800))?;
        let mut seen = 0;
        for line in out.lines() {
            let Some((k, sum)) = line.split_once(' ') else {
                continue;
            };
            let Some(e) = k.parse::<usize>().ok().and_then(|k| expected.get(k)) else {
                continue;
            };
            seen += 1;
            if sum == "missing" {
                bail!(
                    "{} did not transfer {}:{}@{}: {} has no such snapshot",
                    peer.name(),
                    e.host,
                    e.dataset,
                    e.snapshot,
                    peer.target(&e.host, &e.dataset)
                );
            }
            if sum != e.sum {
                bail!(
                    "{} transferred {}:{}@{} with different content: files sum to {sum} on the server, {} on the client",
                    peer.name(),
                    e.host,
                    e.dataset,
                    e.snapshot,
                    e.sum
                );
            }
        }
        if seen != expected.len() {
            bail!(
                "checking {}'s copies: {seen} of {} answered",
                peer.name(),
                expected.len()
            );
        }
        Ok(())
    }

    /// Removes `peer`'s copy of `host`, so that its next run is a first backup.
    fn forget(&self, peer: Peer, host: &Host) -> Result<()> {
        let tree = format!("{}/{}", peer.root(), host.name());
        let keep_parent = peer != Peer::Zfleet;
        // zfs-fuse keeps a just-written mount busy for a moment: retry.
        let destroy = if keep_parent {
            format!("for c in $(zfs list -H -o name -d 1 {tree} | tail -n +2); do zfs destroy -r $c; done")
        } else {
            format!("zfs destroy -r {tree}")
        };
        self.backup.sh(&format!(
            "zfs list {tree} >/dev/null 2>&1 || exit 0\n\
             for s in $(zfs list -H -o name -t snapshot -r {tree}); do zfs release zfleet:base:{SERVER} $s 2>/dev/null || true; done\n\
             for i in $(seq 50); do if {destroy} 2>/dev/null; then exit 0; fi; sleep 0.2; done\n\
             {destroy}"
        ))?;
        Ok(())
    }
}

/// A client's snapshot and the checksum of its files.
struct Expected {
    host: String,
    dataset: String,
    snapshot: String,
    sum: String,
}

/// sha256 of every file's sha256 and path, in path order.
const TREE_SUM: &str =
    "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1";

fn print_table(peers: &[Peer], medians: &[Run], datasets: usize) {
    println!(
        "  {:15} {:>8} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "", "wall s", "zfs/client", "zfs/server", "ssh conn", "sessions", "wire MiB", "peak RSS"
    );
    for (p, r) in peers.iter().zip(medians) {
        println!(
            "  {:15} {:8.2} {:10} {:10} {:8} {:9} {:9.1} {:8.1}M",
            p.name(),
            r.wall,
            r.clients.zfs_calls,
            r.server.zfs_calls,
            r.clients.ssh_connections,
            r.clients.ssh_sessions,
            mib(r.server.wire_bytes),
            mib(r.rss)
        );
    }
    println!("  per dataset ({datasets}):");
    for (p, r) in peers.iter().zip(medians) {
        let per = |n: usize| n as f64 / datasets.max(1) as f64;
        println!(
            "  {:15} {:8.3} s  {:5.1} zfs on clients  {:5.1} on server  {:5.2} ssh connections  {:5.1} ssh sessions",
            p.name(),
            r.wall / datasets.max(1) as f64,
            per(r.clients.zfs_calls),
            per(r.server.zfs_calls),
            per(r.clients.ssh_connections),
            per(r.clients.ssh_sessions)
        );
    }
    if let Some(z) = peers
        .iter()
        .position(|p| *p == Peer::Zfleet)
        .map(|i| medians[i])
    {
        for (p, r) in peers.iter().zip(medians) {
            if *p != Peer::Zfleet && z.wall > 0.0 {
                println!(
                    "  zfleet is {:.2}× as fast as {} (wall time)",
                    r.wall / z.wall,
                    p.name()
                );
            }
        }
    }
}

/// The ssh client configuration zfs-autobackup gets (`--ssh-config`): the
/// lab's key and known hosts, and the persistent connection its wiki
/// recommends ("Speeding up SSH").
fn autobackup_ssh_config(lab: &Lab) -> String {
    format!(
        "Host *\n  User root\n  IdentityFile {}\n  UserKnownHostsFile {}\n  BatchMode yes\n  \
         ControlPath {}/zab-cm-%r@%h:%p\n  ControlMaster auto\n  ControlPersist 3600\n",
        lab.user_key().display(),
        lab.known_hosts().display(),
        lab.dir().display()
    )
}

/// zfs-autobackup 3.3 from PyPI, installed once with pip into
/// [`AUTOBACKUP_DIR`] (with colorama, its one dependency the standard
/// library lacks; PyPI's `argparse` would shadow the standard library's).
fn install_autobackup() -> Result<PathBuf> {
    let dir = PathBuf::from(AUTOBACKUP_DIR);
    let script = dir.join("bin/zfs-autobackup");
    if script.exists() {
        return Ok(dir);
    }
    println!("installing zfs-autobackup {AUTOBACKUP_VERSION} from PyPI into {AUTOBACKUP_DIR}…");
    let status = std::process::Command::new("/usr/bin/python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(&dir)
        .arg(format!("zfs-autobackup=={AUTOBACKUP_VERSION}"))
        .arg("colorama")
        .status()
        .context("cannot run /usr/bin/python3 -m pip (Debian package python3-pip)")?;
    if !status.success() || !script.exists() {
        bail!("pip could not install zfs-autobackup {AUTOBACKUP_VERSION} into {AUTOBACKUP_DIR}");
    }
    Ok(dir)
}
