use clap::Args;
use zfleet_core::snapshot::Steps;
use zfleet_core::Error;

use super::run::{execute, SnapshotCommon};
use crate::cli::GlobalArgs;

/// Take the snapshots that are due on the host this machine is.
///
/// Names are sanoid's (`autosnap_YYYY-MM-DD_HH:MM:SS_<period>`, local time);
/// what is due follows sanoid's preferred times (`hourly_min`, `daily_hour`, …).
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub common: SnapshotCommon,
}

pub fn cmd_snapshot(g: &GlobalArgs, a: &SnapshotArgs) -> Result<u8, Error> {
    execute(
        g,
        &a.common,
        Steps {
            take: true,
            prune: false,
        },
    )
}
