use clap::{Args, Subcommand, ValueEnum};
use zfleet_core::config::{Fleet, HostConfig};
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
    let fleet = zfleet_core::config::load(&g.config)?;
    match &a.what {
        ExportWhat::TailscaleAcl => {
            crate::render::json(&zfleet_core::export::tailscale_acl(&fleet))
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
