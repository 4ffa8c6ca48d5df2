use std::path::PathBuf;

use clap::Args;
use zfleet_core::state::State;
use zfleet_core::status::history;
use zfleet_core::Error;

use crate::cli::GlobalArgs;
use crate::render;

/// Print this host's state database, summarised, as JSON: per backup job its
/// last success, last attempt and last failure, and what its daemon plans.
///
/// This is what `zfleet status` runs on each backup server (and push client)
/// over ssh; it only reads.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The state directory (default: `state_dir` of the fleet file, which is
    /// then not needed).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// JSON (the only output; accepted for symmetry with other commands).
    #[arg(long)]
    json: bool,
}

pub fn cmd_state(g: &GlobalArgs, a: &StateArgs) -> Result<u8, Error> {
    let _ = a.json;
    let dir = match &a.state_dir {
        Some(d) => d.clone(),
        None => zfleet_core::config::load(&g.config)?.state_dir,
    };
    let host = g.this_host.clone().unwrap_or_else(crate::context::hostname);
    let state = State::open(&dir).map_err(|e| Error::Internal(e.to_string()))?;
    let dump = history::dump(&state, &host, jiff::Timestamp::now().as_second())
        .map_err(|e| Error::Internal(e.to_string()))?;
    render::json(&dump);
    Ok(crate::exit::OK)
}
