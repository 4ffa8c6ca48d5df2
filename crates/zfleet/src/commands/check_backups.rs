use clap::Args;
use zfleet_core::status::check::check_backups;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// Check that every backup is recent (Nagios plugin).
///
/// The judgement of `zfleet status`: late is CRITICAL, failing and never
/// backed up are WARNING, ok and paused are OK. A backup server whose state
/// cannot be read makes it UNKNOWN. Exits 0, 1, 2 or 3.
#[derive(Debug, Args)]
pub struct CheckBackupsArgs {
    /// Only these hosts (servers, or clients).
    hosts: Vec<String>,
    #[command(flatten)]
    out: OutputArgs,
}

pub fn cmd_check_backups(g: &GlobalArgs, a: &CheckBackupsArgs) -> Result<u8, Error> {
    let run = || -> Result<_, Error> {
        let cx = context::load(g)?;
        let r = super::status::collect(&cx, &a.hosts, 16)?;
        Ok(check_backups(&r))
    };
    Ok(render::nagios(run(), a.out.json))
}
