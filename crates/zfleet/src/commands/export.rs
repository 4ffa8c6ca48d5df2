use clap::{Args, Subcommand};
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
}

pub fn cmd_export(g: &GlobalArgs, a: &ExportArgs) -> Result<u8, Error> {
    let fleet = zfleet_core::config::load(&g.config)?;
    match a.what {
        ExportWhat::TailscaleAcl => {
            crate::render::json(&zfleet_core::export::tailscale_acl(&fleet))
        }
    }
    Ok(crate::exit::OK)
}
