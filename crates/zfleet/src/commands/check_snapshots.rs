use clap::Args;
use zfleet_core::snapshot::monitor::check_snapshots;
use zfleet_core::snapshot::{exec, PlanInput};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// Check that every monitored dataset has fresh snapshots (Nagios plugin).
///
/// Like sanoid's `--monitor-snapshots`: for each period a dataset keeps, the
/// newest snapshot's age against `<period>_warn` and `<period>_crit`. Prints
/// one line; exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (could not check).
#[derive(Debug, Args)]
pub struct CheckSnapshotsArgs {
    #[command(flatten)]
    out: OutputArgs,
}

pub fn cmd_check_snapshots(g: &GlobalArgs, a: &CheckSnapshotsArgs) -> Result<u8, Error> {
    let run = || -> Result<_, Error> {
        let cx = context::load(g)?;
        let host = cx.host(&cx.this_host)?;
        let input = PlanInput::from_fleet(&cx.fleet, &cx.this_host);
        let obs = exec::observe(&host, &input)?;
        Ok(check_snapshots(&input, &obs.index, cx.now()))
    };
    Ok(render::nagios(run(), a.out.json))
}
