//! Options every command shares, and logging set from them.

use std::path::PathBuf;

use clap::{Args, Parser};

use crate::commands::Command;

/// One fleet file for ZFS snapshots, pull backups, restores and remote unlock.
#[derive(Debug, Parser)]
#[command(
    name = "zfleet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The fleet file.
    #[arg(long, global = true, env = "ZFLEET_CONFIG", default_value = zfleet_core::config::DEFAULT_PATH, value_name = "PATH")]
    pub config: PathBuf,

    /// Which fleet host this machine is (default: its hostname).
    #[arg(long = "host", global = true, env = "ZFLEET_HOST", value_name = "NAME")]
    pub this_host: Option<String>,

    /// More log output (-v: each step, -vv: every command run).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// `--json` for commands whose output is data.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print machine-readable JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Logs go to stderr; stdout is for data. `ZFLEET_LOG` (tracing's filter
/// syntax) overrides -v/-q.
pub fn init_logging(g: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let level = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_env("ZFLEET_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}
