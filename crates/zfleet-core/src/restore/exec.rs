//! Runs a dataset restore plan. The order keeps the destination whole at
//! every moment: everything arrives under a temporary name first; only then is
//! the old dataset set aside (kept, or destroyed if it was fresh and still is)
//! and the new one renamed into place.

use std::time::{Duration, Instant};

use super::observe;
use super::plan::{self, RestorePlan, Step, TEMP_MARK};
use crate::exec::{Argv, RunOptions};
use crate::failure::Side;
use crate::host::{Host, QUERY_TIMEOUT};
use crate::progress::Progress;
use crate::protocol::base_marker;
use crate::replicate::{base_moves, steps::make_moves};
use crate::transfer::{transfer, PumpOptions, Stream};
use crate::zfs::{cmd, DatasetName, SnapshotName, ZfsError, ZfsErrorKind};
use crate::Error;

/// What running a plan did.
#[derive(Debug, Default)]
pub struct Done {
    pub bytes: u64,
    pub warnings: Vec<String>,
}

/// Runs `plan`'s steps: `server` sends, `dest` receives.
pub fn run(
    plan: &RestorePlan,
    server: &Host,
    dest: &Host,
    pump: PumpOptions,
    progress: &dyn Progress,
    now: i64,
) -> Result<Done, Error> {
    let mut done = Done::default();
    // Whether the fresh dataset set aside was still empty when it was moved.
    let mut fresh_still_empty = false;
    // Datasets mounted inside the one set aside (/persist/save in /persist),
    // unmounted with it and mounted again inside the restored one.
    let mut nested: Vec<DatasetName> = Vec::new();
    for step in &plan.steps {
        tracing::info!("{}: {}", plan.destination, step.describe());
        match step {
            Step::DiscardLeftover { dataset } => {
                retry_busy(dest, &cmd::destroy_dataset(dataset))?;
            }
            Step::ReuseLeftover { .. } => {}
            Step::CreateParents { datasets } => {
                for d in datasets {
                    run_zfs(dest, &cmd::create(d, &[("canmount", "off")]))?;
                }
            }
            Step::SafetySnapshot { snapshot } => run_zfs(dest, &cmd::snapshot(snapshot))?,
            Step::Receive {
                base,
                snapshot,
                into,
                raw,
                mark,
                ..
            } => {
                done.bytes += receive(
                    server, dest, base, snapshot, into, *raw, *mark, plan, pump, progress,
                )?;
            }
            Step::DropBackupProperties { dataset } => {
                let rows = dest.properties(dataset)?;
                for p in plan::backup_side_properties(&rows) {
                    run_zfs(dest, &cmd::inherit(&p, dataset.as_str()))?;
                }
            }
            Step::SetAside {
                dataset, to, keep, ..
            } => {
                fresh_still_empty = !keep && still_fresh(dest, dataset)?;
                if !keep && !fresh_still_empty {
                    done.warnings.push(format!(
                        "{}:{dataset} changed since it was judged fresh; it is kept as {to} instead of being destroyed",
                        dest.name
                    ));
                }
                run_zfs(dest, &cmd::set("canmount", "noauto", dataset.as_str()))?;
                if is_mounted(dest, dataset)? {
                    nested = mounted_inside(dest, dataset)?;
                    for n in nested.iter().rev() {
                        retry_busy(dest, &cmd::unmount(n))?;
                    }
                    retry_busy(dest, &cmd::unmount(dataset))?;
                }
                retry_busy(dest, &cmd::rename(dataset, to))?;
            }
            Step::RenameIntoPlace { from, to } => retry_busy(dest, &cmd::rename(from, to))?,
            Step::SetProperties { dataset, set } => {
                for p in set {
                    if let Err(e) =
                        run_zfs(dest, &cmd::set(&p.property, &p.value, dataset.as_str()))
                    {
                        done.warnings.push(format!(
                            "{}={} not set on {dataset}: {e}",
                            p.property, p.value
                        ));
                    }
                }
                run_zfs(dest, &cmd::inherit(TEMP_MARK, dataset.as_str()))?;
            }
            Step::DestroyFresh { dataset } => {
                if fresh_still_empty {
                    if let Err(e) = retry_busy(dest, &cmd::destroy_dataset(dataset)) {
                        done.warnings.push(format!(
                            "the fresh dataset set aside as {dataset} could not be destroyed ({e}); it is empty, destroy it yourself"
                        ));
                    }
                }
            }
            Step::Mount { dataset } => {
                if let Some(w) = mount(dest, dataset)? {
                    done.warnings.push(w);
                }
                for n in &nested {
                    if let Err(e) = retry_busy(dest, &cmd::mount(n)) {
                        done.warnings.push(format!(
                            "{n} was unmounted to set {dataset} aside and could not be mounted again: {e}"
                        ));
                    }
                }
            }
            Step::MarkBase { dataset, marks } => {
                let bookmarks = dest.caps()?.bookmarks;
                for (server, snap) in marks {
                    // The client is the source of its backups: where the
                    // dialect has bookmarks, the base gets one too.
                    let marker = base_marker(server);
                    let moves = base_moves::fresh(snap, &marker, bookmarks);
                    make_moves(dest, Side::Target, dataset, &moves, &marker, now)?;
                }
            }
        }
    }
    Ok(done)
}

/// A full send of `base`, then (when `snapshot` is newer) one incremental
/// stream with every snapshot in between, into the new dataset `into`.
#[allow(clippy::too_many_arguments)]
fn receive(
    server: &Host,
    dest: &Host,
    base: &str,
    snapshot: &SnapshotName,
    into: &DatasetName,
    raw: bool,
    mark: bool,
    plan: &RestorePlan,
    pump: PumpOptions,
    progress: &dyn Progress,
) -> Result<u64, Error> {
    let base_snap = snapshot.dataset.snapshot(base)?;
    let full = cmd::Send {
        from: None,
        to: base_snap.clone(),
        intermediates: false,
        raw,
    };
    let mut bytes = match stream(server, dest, &full, into, plan, pump, progress) {
        Ok(n) => n,
        Err(e) => {
            discard_partial(dest, into);
            return Err(e);
        }
    };
    if base != snapshot.name {
        // Nothing may change it between the streams (zfs-fuse mounts what it
        // receives); dropped again with the backup side's properties.
        run_zfs(dest, &cmd::set("readonly", "on", into.as_str()))?;
        let incr = cmd::Send {
            from: Some(cmd::From::Snapshot(base_snap)),
            to: snapshot.clone(),
            intermediates: true,
            raw,
        };
        match stream(server, dest, &incr, into, plan, pump, progress) {
            Ok(n) => bytes += n,
            Err(e) => {
                discard_partial(dest, into);
                return Err(e);
            }
        }
    }
    if mark {
        // Marked at once: from here on a leftover is known to be zfleet's.
        run_zfs(
            dest,
            &cmd::set(
                TEMP_MARK,
                &plan.choice.snapshot.guid.to_string(),
                into.as_str(),
            ),
        )?;
    }
    Ok(bytes)
}

/// The new dataset did not exist before this restore began receiving it, so
/// after a failure it is zfleet's to remove; left without its mark it would
/// block the next attempt.
fn discard_partial(dest: &Host, into: &DatasetName) {
    if let Ok(Some(_)) = dest.observe_if_exists(into, &[]) {
        let _ = retry_busy(dest, &cmd::destroy_dataset(into));
    }
}

fn stream(
    server: &Host,
    dest: &Host,
    send: &cmd::Send,
    into: &DatasetName,
    plan: &RestorePlan,
    pump: PumpOptions,
    progress: &dyn Progress,
) -> Result<u64, Error> {
    let caps = server.caps()?.clone();
    let estimate = if caps.send_estimate {
        server
            .endpoint()
            .run(
                &cmd::send_estimate(&caps, send),
                &RunOptions::timeout(QUERY_TIMEOUT),
            )
            .ok()
            .and_then(|o| {
                cmd::parse_send_estimate(&o.stdout_text())
                    .or_else(|| cmd::parse_send_estimate(&o.stderr_text()))
            })
    } else {
        None
    };
    let recv = cmd::receive_new(dest.caps()?, into);
    let label = match &send.from {
        Some(cmd::From::Snapshot(f)) => {
            format!("{} ← @{} → @{}", plan.destination, f.name, send.to.name)
        }
        _ => format!("{} ← @{} (full)", plan.destination, send.to.name),
    };
    let stream = Stream {
        send: cmd::send(&caps, send),
        receive: recv,
        estimate,
        label,
        compress: false,
    };
    Ok(transfer(server, dest, &stream, pump, progress)?)
}

/// The fresh dataset is still empty just before it is moved away: its root
/// directory when mounted (it stays mounted until the next step), its
/// numbers otherwise (nothing can write to an unmounted dataset).
fn still_fresh(h: &Host, ds: &DatasetName) -> Result<bool, Error> {
    let dialect = h.caps()?.dialect.clone();
    let mut extra = vec![
        "mountpoint".to_string(),
        "canmount".to_string(),
        "mounted".to_string(),
    ];
    if matches!(dialect, crate::zfs::Dialect::OpenZfs { .. }) {
        extra.push("written".to_string());
    }
    // The whole pool: other datasets' mountpoints inside it do not count.
    let Some(l) = h.observe_if_exists(&ds.pool().dataset(), &extra)? else {
        return Ok(false);
    };
    Ok(observe::existing(h, &l, ds)?.is_some_and(|e| plan::freshness(&e).fresh))
}

/// Datasets of the same pool mounted below `ds`'s mountpoint, shallowest first.
fn mounted_inside(h: &Host, ds: &DatasetName) -> Result<Vec<DatasetName>, Error> {
    let extra = ["mountpoint".to_string(), "mounted".to_string()];
    let Some(l) = h.observe_if_exists(&ds.pool().dataset(), &extra)? else {
        return Ok(Vec::new());
    };
    let Some(mp) = l.dataset(ds).and_then(|o| o.props.get("mountpoint")) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}/", mp.trim_end_matches('/'));
    let mut inside: Vec<(usize, DatasetName)> = l
        .datasets()
        .filter(|o| o.name.dataset() != ds)
        .filter(|o| o.props.get("mounted").map(String::as_str) == Some("yes"))
        .filter_map(|o| {
            let m = o.props.get("mountpoint")?;
            m.starts_with(&prefix)
                .then(|| (m.matches('/').count(), o.name.dataset().clone()))
        })
        .collect();
    inside.sort();
    Ok(inside.into_iter().map(|(_, d)| d).collect())
}

fn is_mounted(h: &Host, ds: &DatasetName) -> Result<bool, Error> {
    let out = h.query(
        &cmd::zfs()
            .args(["get", "-H", "-o", "value", "mounted"])
            .arg(ds.as_str()),
    )?;
    Ok(out.stdout_text().trim() == "yes")
}

/// Mounts `ds` where it should mount: `canmount=on`, a path as mountpoint,
/// and its key loaded. Returns a warning when it should but could not.
fn mount(h: &Host, ds: &DatasetName) -> Result<Option<String>, Error> {
    let rows = h.properties(ds)?;
    let v = |k: &str| {
        rows.iter()
            .find(|r| r.property == k)
            .map(|r| r.value.as_str())
            .unwrap_or("-")
    };
    if v("mounted") == "yes" || v("canmount") != "on" || !v("mountpoint").starts_with('/') {
        return Ok(None);
    }
    if v("keystatus") == "unavailable" {
        return Ok(None);
    }
    match retry_busy(h, &cmd::mount(ds)) {
        Ok(()) => Ok(None),
        Err(e) => Ok(Some(format!("{ds} was restored but not mounted: {e}"))),
    }
}

fn run_zfs(h: &Host, argv: &Argv) -> Result<(), Error> {
    h.endpoint()
        .run(argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .map_err(ZfsError::from)?;
    Ok(())
}

/// zfs-fuse keeps a file system busy for a moment after writes to it
/// (and a real system may have a process leaving the directory): a rename,
/// unmount or destroy that fails with "busy" is tried again for a few seconds.
pub(crate) fn retry_busy(h: &Host, argv: &Argv) -> Result<(), Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match h.endpoint().run(argv, &RunOptions::timeout(QUERY_TIMEOUT)) {
            Ok(_) => return Ok(()),
            Err(e) => {
                let z = ZfsError::from(e);
                // zfs-fuse says "Device or resource busy": Busy too.
                let busy = z.kind == ZfsErrorKind::Busy;
                if !busy || start.elapsed() > Duration::from_secs(15) {
                    return Err(z.into());
                }
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
