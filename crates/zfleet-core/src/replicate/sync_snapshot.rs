//! Optional sync snapshots: `zfleet_sync_<server>_<UTC time>`, taken before a run
//! and cleaned up after it — only these names, only this server's.

use super::exec::{short_name, JobSpec};
use crate::exec::RunOptions;
use crate::host::{Host, QUERY_TIMEOUT};
use crate::zfs::{cmd, Listing, ZfsError};
use crate::Error;

const SYNC_PREFIX: &str = "zfleet_sync_";

/// `zfleet_sync_<server>_2026-11-25_23:00:00` (UTC): per server, so two servers'
/// sync snapshots never clean up each other's.
pub fn sync_snapshot_name(marker: &str, unix: i64) -> String {
    let t = jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{SYNC_PREFIX}{marker}_{}", t.strftime("%Y-%m-%d_%H:%M:%S"))
}

pub fn is_sync_snapshot_of(name: &str, marker: &str) -> bool {
    name.strip_prefix(SYNC_PREFIX)
        .and_then(|rest| rest.strip_prefix(marker))
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|stamp| {
            stamp.len() == 19
                && stamp
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '-' | '_' | ':'))
        })
}

/// Removes this marker's sync snapshots other than `keep`, on both sides: only
/// names zfleet made, never a policy or user snapshot.
pub(super) fn remove_old_sync_snapshots(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    keep: &str,
    src_l: &Listing,
    dst_l: Option<&Listing>,
) -> Result<(), Error> {
    for (host, ds, listing) in [(src, &job.source, Some(src_l)), (dst, &job.target, dst_l)] {
        let Some(l) = listing else { continue };
        for o in l.snapshots_of(ds) {
            let name = short_name(o);
            if name != keep && is_sync_snapshot_of(&name, &job.marker) {
                host.endpoint()
                    .run(
                        &cmd::destroy_snapshot(&ds.snapshot(&name)?),
                        &RunOptions::timeout(QUERY_TIMEOUT),
                    )
                    .map_err(ZfsError::from)?;
            }
        }
    }
    Ok(())
}
