use std::path::PathBuf;

use clap::{Args, Subcommand};
use zfleet_core::snapshot::sanoid_import::import;
use zfleet_core::Error;

use crate::cli::GlobalArgs;

/// Turn another tool's configuration into fleet.toml sections.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    what: ImportWhat,
}

#[derive(Debug, Subcommand)]
enum ImportWhat {
    /// Print the fleet.toml equivalent of a sanoid.conf (templates,
    /// use_template, recursive, per-dataset overrides, hooks, monitoring) on
    /// stdout, and on stderr what could not be carried over.
    Sanoid {
        /// The sanoid.conf to read.
        #[arg(default_value = "/etc/sanoid/sanoid.conf")]
        path: PathBuf,
        /// Put the datasets under `[hosts.HOST.snapshots]` instead of the
        /// fleet-wide `[snapshots]`.
        #[arg(long = "for-host", value_name = "HOST")]
        for_host: Option<String>,
        /// Print the result even where zfleet would keep a different number
        /// of snapshots than sanoid (each difference is listed on stderr).
        /// Without it, such an import is refused (exit 5).
        #[arg(long)]
        accept_differences: bool,
    },
}

pub fn cmd_import(_g: &GlobalArgs, a: &ImportArgs) -> Result<u8, Error> {
    match &a.what {
        ImportWhat::Sanoid {
            path,
            for_host,
            accept_differences,
        } => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
            let r = import(&text, for_host.as_deref());
            for d in &r.differences {
                eprintln!("differs from sanoid: {d}");
            }
            if !r.differences.is_empty() && !accept_differences {
                eprintln!("refused: the imported policy would keep other snapshots than sanoid does (above); fix the sections, or pass --accept-differences");
                return Ok(crate::exit::REFUSED);
            }
            outln!("{}", r.toml.trim_end());
            for l in &r.layered {
                eprintln!("note: {}: {l}", path.display());
            }
            for n in &r.notes {
                eprintln!("not carried over: {}: {n}", path.display());
            }
            // The result must be a fleet file zfleet accepts.
            if let Err(e) = zfleet_core::config::parse(&r.toml, std::path::Path::new("imported")) {
                eprintln!("warning: the imported text does not validate on its own:\n{e}");
            }
            Ok(crate::exit::OK)
        }
    }
}
