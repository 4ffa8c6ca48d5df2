use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use zfleet_core::config::{Fleet, HostConfig};
use zfleet_core::export::systemd::{
    daemon_units, package_daemon_unit, timer_units, Unit, UnitOptions,
};
use zfleet_core::Error;

use crate::cli::GlobalArgs;

/// Export the fleet for other tools.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    what: ExportWhat,
}

#[derive(Debug, Subcommand)]
enum ExportWhat {
    /// The Tailscale policy fragment (JSON, valid HuJSON) that lets each backup
    /// server reach exactly the clients it backs up, as the backup user, and
    /// push clients their servers.
    TailscaleAcl,
    /// systemd units for HOST (default: this machine): `zfleet.service`, the
    /// daemon with hardening, or with --timers a service and a timer for
    /// `zfleet run` and for `zfleet backup` (on a server or a pushing
    /// client), timed like the daemon would.
    ///
    /// Prints each unit after a `# NAME` line, or writes them into --dir.
    Systemd(SystemdArgs),
    /// HOST's pools as a disko expression (`disko.devices`), for installing
    /// with nixos-anywhere: the same partitions, LUKS containers, pool and
    /// dataset options and held `@empty` snapshots as `disks apply` makes.
    Disko { host: String },
    /// What rolls HOST's ephemeral root back at boot with `zfleet root
    /// rollback`: a systemd unit for systemd initrds, or a NixOS module
    /// (systemd initrd, or the seed's scripted `postDeviceCommands`).
    InitrdRollback {
        /// The host whose ephemeral root to roll back.
        host: String,
        #[arg(long, value_enum, default_value_t = InitrdFormat::Systemd)]
        format: InitrdFormat,
        /// The zfleet binary the initrd runs [default: /usr/local/bin/zfleet
        /// for the unit, `${pkgs.zfleet}/bin/zfleet` for NixOS].
        #[arg(long, value_name = "PATH")]
        zfleet: Option<String>,
    },
}

#[derive(Debug, Args)]
struct SystemdArgs {
    /// The host the units are for (default: this machine).
    host: Option<String>,
    /// Service and timer pairs instead of the daemon.
    #[arg(long)]
    timers: bool,
    /// The daemon's unit as the Debian package ships it, for any host: no
    /// `--host` in it (the daemon runs as the host named like the machine, or
    /// ZFLEET_HOST from /etc/default/zfleet), the default state directory;
    /// no fleet file is read.
    #[arg(long, conflicts_with_all = ["host", "timers"])]
    package: bool,
    /// The zfleet binary on that host [default: /usr/local/bin/zfleet;
    /// /usr/bin/zfleet with --package].
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// The fleet file on that host (default: --config).
    #[arg(long = "fleet-file", value_name = "PATH")]
    fleet_file: Option<PathBuf>,
    /// Write the units into this directory (`/etc/systemd/system`) instead of printing them.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InitrdFormat {
    /// A unit file (`zfleet-root-rollback.service`).
    Systemd,
    /// A NixOS module for `boot.initrd.systemd.enable = true`.
    Nixos,
    /// A NixOS module for the scripted initrd (`boot.initrd.postDeviceCommands`).
    Postdevice,
}

fn host<'f>(fleet: &'f Fleet, name: &str) -> Result<&'f HostConfig, Error> {
    let hc = fleet.host(name).ok_or_else(|| Error::UnknownHost {
        name: name.to_string(),
        known: fleet.hosts.keys().cloned().collect(),
    })?;
    if hc.layout.is_empty() {
        return Err(Error::Usage(format!(
            "host `{name}` has no pools in {}; add a [hosts.{name}.pools.POOL] table",
            fleet.file.display()
        )));
    }
    Ok(hc)
}

pub fn cmd_export(g: &GlobalArgs, a: &ExportArgs) -> Result<u8, Error> {
    if let ExportWhat::Systemd(s) = &a.what {
        if s.package {
            let opts = UnitOptions {
                bin: s
                    .bin
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/usr/bin/zfleet")),
                config: s
                    .fleet_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(zfleet_core::config::DEFAULT_PATH)),
            };
            write_units(&[package_daemon_unit(&opts)], s.dir.as_deref())?;
            return Ok(crate::exit::OK);
        }
    }
    let fleet = zfleet_core::config::load(&g.config)?;
    match &a.what {
        ExportWhat::TailscaleAcl => {
            crate::render::json(&zfleet_core::export::tailscale_acl(&fleet))
        }
        ExportWhat::Systemd(s) => {
            let host = s
                .host
                .clone()
                .or_else(|| g.this_host.clone())
                .unwrap_or_else(crate::context::hostname);
            let opts = UnitOptions {
                bin: s
                    .bin
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/usr/local/bin/zfleet")),
                config: s.fleet_file.clone().unwrap_or_else(|| g.config.clone()),
            };
            let units = if s.timers {
                timer_units(&fleet, &host, &opts)?
            } else {
                daemon_units(&fleet, &host, &opts)?
            };
            if units.is_empty() {
                eprintln!(
                    "{host} has nothing to run on a timer: no snapshot policies and no backups"
                );
            }
            write_units(&units, s.dir.as_deref())?;
        }
        ExportWhat::Disko { host: name } => {
            let hc = host(&fleet, name)?;
            let text = zfleet_core::layout::disko::expression(name, &hc.layout);
            outln!("{}", text.trim_end());
        }
        ExportWhat::InitrdRollback {
            host: name,
            format,
            zfleet,
        } => {
            let hc = host(&fleet, name)?;
            let (pool, dataset) = zfleet_core::root::ephemeral(&hc.layout).ok_or_else(|| {
                Error::Usage(format!(
                    "host `{name}` has no ephemeral root: no dataset of its root pool has `ephemeral = true`"
                ))
            })?;
            use zfleet_core::root::initrd;
            let text = match format {
                InitrdFormat::Systemd => initrd::systemd_unit(
                    zfleet.as_deref().unwrap_or("/usr/local/bin/zfleet"),
                    &pool.pool,
                    &dataset,
                ),
                InitrdFormat::Nixos => {
                    initrd::nixos_systemd(zfleet.as_deref(), &pool.pool, &dataset)
                }
                InitrdFormat::Postdevice => initrd::nixos_postdevice(zfleet.as_deref(), &dataset),
            };
            outln!("{}", text.trim_end());
        }
    }
    Ok(crate::exit::OK)
}

/// Into `dir`, or printed each after a `# NAME` line.
fn write_units(units: &[Unit], dir: Option<&std::path::Path>) -> Result<(), Error> {
    match dir {
        Some(dir) => {
            for u in units {
                let path = dir.join(&u.name);
                std::fs::write(&path, &u.text).map_err(|source| Error::File {
                    path: path.clone(),
                    action: "write",
                    source,
                })?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            for (i, u) in units.iter().enumerate() {
                if i > 0 {
                    outln!("");
                }
                outln!("# {}", u.name);
                outln!("{}", u.text.trim_end());
            }
        }
    }
    Ok(())
}
