use clap::Args;
use zfleet_core::snapshot::Steps;
use zfleet_core::Error;

use super::run::{execute, SnapshotCommon};
use crate::cli::GlobalArgs;

/// Destroy the snapshots that have expired on the host this machine is.
///
/// sanoid's rule per period: a snapshot goes when it is older than
/// `count × period` and more than `count` of its period are left. Never
/// destroyed: snapshots zfleet did not name, held ones, replication bases and
/// snapshots not yet replicated to a server that wants them.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub common: SnapshotCommon,
}

pub fn cmd_prune(g: &GlobalArgs, a: &PruneArgs) -> Result<u8, Error> {
    execute(
        g,
        &a.common,
        Steps {
            take: false,
            prune: true,
        },
    )
}
