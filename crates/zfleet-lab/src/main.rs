//! `zfleet-lab`: bring the test lab up and down by hand, for demos and debugging.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use zfleet_lab::sim::{HostSpec, Lab, LabSpec, DEFAULT_ROOT};

#[derive(Parser)]
#[command(name = "zfleet-lab", about = "The zfleet test lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Simulated hosts: zfs-fuse and sshd in namespaces (needs root).
    #[command(subcommand)]
    Sim(SimCommand),
    /// zfleet's main job on a lab fleet of two clients and a backup server,
    /// every command shown with its output (needs root).
    Demo(DemoArgs),
    /// Benchmarks on the lab, printed as ratios (needs root).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The OpenZFS 2.x qemu guest: build, boot, fixtures.
    Guest(zfleet_lab::guest::cli::GuestArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// zfleet against the raw `ssh host zfs send | zfs recv` pipe, same data, same run.
    Throughput {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        /// MiB of random data in the stream.
        #[arg(long, default_value_t = 256)]
        megabytes: u64,
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// `zfleet restore` of one dataset against the raw `ssh server zfs send |
    /// zfs recv` pipe on the client, same snapshot, same run.
    Restore {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        /// MiB of random data in the dataset.
        #[arg(long, default_value_t = 512)]
        megabytes: u64,
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// The restore inside `zfleet verify --level drill` against a plain
    /// `zfs send | zfs recv` of the same snapshot on the backup server.
    Drill {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        /// MiB of random data in the dataset.
        #[arg(long, default_value_t = 400)]
        megabytes: u64,
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// On the OpenZFS guest: zfleet sync against syncoid and the raw pipe.
    Syncoid {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        #[arg(long, default_value_t = 128)]
        megabytes: u64,
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// The nightly workload: N clients × D datasets with a fresh snapshot of a
    /// few new MiB each, pulled by zfleet, syncoid (once per dataset) and
    /// zfs-autobackup (once per client) side by side, plus the first backup of
    /// a new host.
    Fleet {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        #[arg(long, default_value_t = 20)]
        clients: usize,
        #[arg(long, default_value_t = 3)]
        datasets: usize,
        /// MiB of new random data per dataset and repetition.
        #[arg(long, default_value_t = 2)]
        delta: u64,
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Peers to run, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "zfleet,syncoid,zfs-autobackup"
        )]
        peers: Vec<PeerArg>,
        /// Datasets of the new host whose first backup is measured (0: skip).
        #[arg(long, default_value_t = 10)]
        new_host_datasets: usize,
        /// MiB of random data in each of the new host's datasets.
        #[arg(long, default_value_t = 8)]
        new_host_mib: u64,
        /// Print the zfs/zpool calls each peer made on one client and on the
        /// server in the last repetition.
        #[arg(long)]
        show_calls: bool,
    },
    /// How `zfleet backup` grows with the fleet: a nightly run and a run with
    /// nothing new for each host count, on one lab of the largest.
    Scale {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        /// Host counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10,20,50,100")]
        hosts: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        datasets: usize,
        /// MiB of new random data per dataset in each nightly run.
        #[arg(long, default_value_t = 2)]
        delta: u64,
        /// zfs-fuse's ARC limit per host, MiB.
        #[arg(long, default_value_t = 16)]
        max_arc: u32,
    },
    /// A backup run with nothing new: wall time, ssh connections, remote commands per host.
    NoChange {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        hosts: usize,
        #[arg(long, default_value_t = 3)]
        datasets: usize,
    },
    /// `zfleet status` over N clients × M datasets: wall time and ssh connections per host.
    Status {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        hosts: usize,
        #[arg(long, default_value_t = 3)]
        datasets: usize,
    },
    /// Idle daemons on a backup server and a client: CPU share and RSS over MINUTES.
    DaemonIdle {
        #[arg(long)]
        zfleet: Option<PathBuf>,
        #[arg(long, default_value_t = 9)]
        hosts: usize,
        #[arg(long, default_value_t = 3)]
        datasets: usize,
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PeerArg {
    Zfleet,
    Syncoid,
    #[value(name = "zfs-autobackup")]
    ZfsAutobackup,
}

impl From<PeerArg> for zfleet_lab::bench::Peer {
    fn from(p: PeerArg) -> Self {
        match p {
            PeerArg::Zfleet => zfleet_lab::bench::Peer::Zfleet,
            PeerArg::Syncoid => zfleet_lab::bench::Peer::Syncoid,
            PeerArg::ZfsAutobackup => zfleet_lab::bench::Peer::Autobackup,
        }
    }
}

#[derive(Args)]
struct DemoArgs {
    /// The zfleet binary [default: next to this program].
    #[arg(long)]
    zfleet: Option<PathBuf>,
    /// Megabytes of data per client.
    #[arg(long, default_value_t = 8)]
    megabytes: u64,
}

#[derive(Subcommand)]
enum SimCommand {
    Up(UpArgs),
    Exec(ExecArgs),
}

/// Bring up a lab and keep it until Ctrl-C (or SIGTERM), then tear it down.
///
/// Prints each host's address, directories and a command line to enter it, then
/// `ready`. Hosts whose name contains `backup` get the seed's backup server
/// layout (`zstorage/backups`), the others the seed's client layout
/// (`zroot/persist`, `zroot/persistSave`).
#[derive(Args)]
struct UpArgs {
    /// Lab name (the directory gets the pid and a counter appended).
    #[arg(long, default_value = "seed")]
    name: String,
    /// Host names, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "client1,client2,backup")]
    hosts: Vec<String>,
    /// Give clients the seed's full root pool (`zroot/root`, `zroot/nix`, `@empty`).
    #[arg(long)]
    full: bool,
    /// Run hosts without libfaketime.
    #[arg(long)]
    no_faketime: bool,
    /// Directory holding lab directories [default: $ZFLEET_LAB_ROOT or /tmp/zfleet-lab].
    #[arg(long)]
    root: Option<PathBuf>,
}

/// Run a command on a host of a running lab.
#[derive(Args)]
struct ExecArgs {
    /// The lab's directory name (as printed by `up`); optional when one lab runs.
    #[arg(long)]
    lab: Option<String>,
    /// Directory holding lab directories [default: $ZFLEET_LAB_ROOT or /tmp/zfleet-lab].
    #[arg(long)]
    root: Option<PathBuf>,
    host: String,
    /// The command and its arguments (default: an interactive shell).
    #[arg(last = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Top::Sim(SimCommand::Up(args)) => up(args),
        Top::Sim(SimCommand::Exec(args)) => exec(args),
        Top::Bench(BenchCommand::Throughput {
            zfleet,
            megabytes,
            reps,
        }) => zfleet_lab::bench::throughput(&zfleet_lab::bench::ThroughputOptions {
            zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            megabytes,
            reps,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Bench(BenchCommand::Restore {
            zfleet,
            megabytes,
            reps,
        }) => zfleet_lab::bench::restore(&zfleet_lab::bench::RestoreOptions {
            zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            megabytes,
            reps,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Bench(BenchCommand::Drill {
            zfleet,
            megabytes,
            reps,
        }) => zfleet_lab::bench::drill(&zfleet_lab::bench::DrillOptions {
            zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            megabytes,
            reps,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Bench(BenchCommand::Syncoid {
            zfleet,
            megabytes,
            reps,
        }) => zfleet_lab::bench::guest_syncoid(&zfleet_lab::bench::GuestBenchOptions {
            zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            megabytes,
            reps,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Bench(BenchCommand::Fleet {
            zfleet,
            clients,
            datasets,
            delta,
            reps,
            peers,
            new_host_datasets,
            new_host_mib,
            show_calls,
        }) => zfleet_lab::bench::fleet(&zfleet_lab::bench::FleetOptions {
            zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            clients,
            datasets,
            delta_mib: delta,
            reps,
            peers: peers.into_iter().map(Into::into).collect(),
            new_host_datasets,
            new_host_mib,
            show_calls,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Bench(BenchCommand::Scale {
            zfleet,
            mut hosts,
            datasets,
            delta,
            max_arc,
        }) => {
            hosts.sort_unstable();
            zfleet_lab::bench::scale(&zfleet_lab::bench::ScaleOptions {
                zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
                hosts,
                datasets,
                delta_mib: delta,
                max_arc_mib: max_arc,
            })
            .map(|()| ExitCode::SUCCESS)
        }
        Top::Bench(BenchCommand::NoChange {
            zfleet,
            hosts,
            datasets,
        }) => zfleet_lab::bench::no_change(&zfleet_lab::bench::NoChangeOptions {
            zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            hosts,
            datasets,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Bench(BenchCommand::Status {
            zfleet,
            hosts,
            datasets,
        }) => zfleet_lab::bench_daemon::status(&zfleet_lab::bench_daemon::FleetOptions {
            zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            hosts,
            datasets,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Bench(BenchCommand::DaemonIdle {
            zfleet,
            hosts,
            datasets,
            minutes,
        }) => zfleet_lab::bench_daemon::daemon_idle(&zfleet_lab::bench_daemon::IdleOptions {
            fleet: zfleet_lab::bench_daemon::FleetOptions {
                zfleet: zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
                hosts,
                datasets,
            },
            minutes,
        })
        .map(|()| ExitCode::SUCCESS),
        Top::Guest(args) => zfleet_lab::guest::cli::run(args).map(|()| ExitCode::SUCCESS),
        Top::Demo(args) => zfleet_lab::demo::run(&zfleet_lab::demo::DemoOptions {
            zfleet: args.zfleet.unwrap_or_else(zfleet_lab::demo::default_zfleet),
            megabytes: args.megabytes,
        })
        .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn up(args: UpArgs) -> Result<ExitCode> {
    let mut spec = LabSpec::new(&args.name);
    for name in &args.hosts {
        let host = if name.contains("backup") {
            HostSpec::seed_backup(name)
        } else if args.full {
            HostSpec::seed_client_full(name)
        } else {
            HostSpec::seed_client(name)
        };
        spec = spec.host(host.faketime(!args.no_faketime));
    }
    if let Some(root) = args.root {
        spec = spec.root(root);
    }
    // Installed before the lab exists, so an early Ctrl-C still tears down.
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("cannot install the Ctrl-C handler")?;

    let started = Instant::now();
    let lab = Lab::start(&spec)?;
    println!(
        "lab {} up in {:.2} s",
        lab.name(),
        started.elapsed().as_secs_f64()
    );
    println!("dir {}", lab.dir().display());
    println!("user-key {}", lab.user_key().display());
    println!("known-hosts {}", lab.known_hosts().display());
    let fleet = lab.dir().join("fleet.toml");
    std::fs::write(&fleet, zfleet_lab::fleet::seed_fleet_toml(&lab, ""))
        .with_context(|| format!("cannot write {}", fleet.display()))?;
    println!(
        "fleet {} (use with zfleet --config inside a host)",
        fleet.display()
    );
    println!("switch pid={}", lab.switch_pid());
    for h in lab.hosts() {
        println!(
            "host {} {} pid={} dir={} altroot={}",
            h.name(),
            h.addr(),
            h.pid(),
            h.dir().display(),
            h.altroot().display()
        );
    }
    for h in lab.hosts() {
        println!("enter {}: {}", h.name(), h.enter_command());
    }
    println!("ready; Ctrl-C tears the lab down");

    let _ = rx.recv();
    eprintln!("tearing down {}", lab.name());
    lab.teardown()?;
    Ok(ExitCode::SUCCESS)
}

fn exec(args: ExecArgs) -> Result<ExitCode> {
    let root = args
        .root
        .or_else(|| std::env::var_os("ZFLEET_LAB_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let lab = match args.lab {
        Some(name) => root.join(name),
        None => only_lab(&root)?,
    };
    let host_dir = lab.join(&args.host);
    let pid = std::fs::read_to_string(host_dir.join("init.pid"))
        .with_context(|| format!("no host `{}` in {}", args.host, lab.display()))?;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--target={}", pid.trim()))
        .args(["--mount", "--net", "--uts", "--pid", "--"]);
    if let Ok(env) = std::fs::read_to_string(host_dir.join("faketime.env")) {
        cmd.arg("env").args(env.lines());
    }
    if args.command.is_empty() {
        cmd.arg("/bin/bash");
    } else {
        cmd.args(&args.command);
    }
    let status = cmd.status().context("cannot run nsenter")?;
    Ok(ExitCode::from(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
    ))
}

fn only_lab(root: &Path) -> Result<PathBuf> {
    let mut labs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("owner").exists())
        .collect();
    match labs.len() {
        1 => Ok(labs.remove(0)),
        0 => bail!("no lab is running under {}", root.display()),
        n => bail!(
            "{n} labs under {}; choose one with --lab: {}",
            root.display(),
            labs.iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
