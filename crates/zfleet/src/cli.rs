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

/// How replications move: shared by backup and sync.
#[derive(Debug, Args, Clone)]
pub struct TransferArgs {
    /// Allow discarding target snapshots the source does not have, and changes
    /// made on the target since its newest snapshot.
    #[arg(long)]
    pub rollback: bool,
    /// Do not use bookmarks as incremental bases.
    #[arg(long)]
    pub no_bookmarks: bool,
    #[command(flatten)]
    pub stream: StreamArgs,
}

impl TransferArgs {
    pub fn plan_options(&self) -> zfleet_core::replicate::plan::Options {
        zfleet_core::replicate::plan::Options {
            rollback: self.rollback,
            bookmarks: !self.no_bookmarks,
            ..Default::default()
        }
    }

    pub fn pump_options(&self) -> Result<zfleet_core::transfer::PumpOptions, zfleet_core::Error> {
        self.stream.pump_options()
    }
}

/// How a stream is paced: shared by backup, sync and restore (which has no
/// use for --rollback or bookmarks).
#[derive(Debug, Args, Clone)]
pub struct StreamArgs {
    /// Limit the stream to this many bytes per second (`10M`, `500K`).
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// Memory for smoothing the stream (`32M`).
    #[arg(long, value_name = "SIZE", default_value = "32M")]
    pub buffer: String,
}

impl StreamArgs {
    pub fn pump_options(&self) -> Result<zfleet_core::transfer::PumpOptions, zfleet_core::Error> {
        let mut p = zfleet_core::transfer::PumpOptions {
            buffer: parse_size(&self.buffer)? as usize,
            ..Default::default()
        };
        p.rate_limit = self.rate_limit.as_deref().map(parse_size).transpose()?;
        Ok(p)
    }
}

/// `10M` → 10485760. Binary units, as mbuffer and pv read them.
pub fn parse_size(s: &str) -> Result<u64, zfleet_core::Error> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => 0,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    match (num.trim().parse::<f64>(), mult) {
        (Ok(n), m) if m > 0 && n > 0.0 => Ok((n * m as f64) as u64),
        _ => Err(zfleet_core::Error::Usage(format!(
            "`{s}` is not a size; write it like 500K, 10M or 1G"
        ))),
    }
}
