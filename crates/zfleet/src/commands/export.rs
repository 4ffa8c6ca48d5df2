use std::path::PathBuf;

use clap::{Args, Subcommand};
use zfleet_core::export::systemd::{daemon_units, timer_units, UnitOptions};
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
}

#[derive(Debug, Args)]
struct SystemdArgs {
    /// The host the units are for (default: this machine).
    host: Option<String>,
    /// Service and timer pairs instead of the daemon.
    #[arg(long)]
    timers: bool,
    /// The zfleet binary on that host.
    #[arg(long, value_name = "PATH", default_value = "/usr/local/bin/zfleet")]
    bin: PathBuf,
    /// The fleet file on that host (default: --config).
    #[arg(long = "fleet-file", value_name = "PATH")]
    fleet_file: Option<PathBuf>,
    /// Write the units into this directory (`/etc/systemd/system`) instead of printing them.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn cmd_export(g: &GlobalArgs, a: &ExportArgs) -> Result<u8, Error> {
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
                bin: s.bin.clone(),
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
            match &s.dir {
                Some(dir) => {
                    for u in &units {
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
        }
    }
    Ok(crate::exit::OK)
}
