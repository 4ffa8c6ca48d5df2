//! The drill: a real restore of the newest backup through `restore` (same
//! observe, plan and execute as `zfleet restore`, into a scratch dataset
//! under `<pool>/zfleet-drill/`), compared with the backup snapshot it came
//! from, timed, and destroyed. The container carries `zfleet:drill`, which
//! everything below it inherits; a drill that was killed leaves datasets a
//! later drill recognises by it and removes before it starts.

use std::time::Instant;

use super::content::{compare_copies, Copy};
use super::run::{Drill, Options};
use super::walk::WalkOptions;
use crate::config::Job;
use crate::host::Host;
use crate::progress::Progress;
use crate::restore::{self, Hosts, Selector, Target};
use crate::runtime::Runtime;
use crate::transfer::PumpOptions;
use crate::zfs::{cmd, DatasetName, SnapshotName};
use crate::Error;

/// The property on the container of scratch copies.
pub const DRILL_MARK: &str = "zfleet:drill";
pub const CONTAINER: &str = "zfleet-drill";

/// `--to HOST[:POOL]`: the host and pool a drill restores into.
fn destination(
    rt: &Runtime,
    target: &Host,
    job: &Job,
    opts: &Options,
) -> Result<(String, String), Error> {
    match opts.drill_to.as_deref() {
        None => Ok((target.name.clone(), job.target.pool().as_str().to_string())),
        Some(to) => match to.split_once(':') {
            Some((h, p)) => Ok((h.to_string(), p.to_string())),
            None => {
                let h = rt.host(to)?;
                let pools = h.pools()?;
                let pool = pools.first().ok_or_else(|| {
                    Error::Usage(format!("{to} has no imported pool to restore a drill into"))
                })?;
                Ok((to.to_string(), pool.as_str().to_string()))
            }
        },
    }
}

/// Removes everything a drill left under `container` (it is zfleet's: it
/// carries [`DRILL_MARK`] as its own property). Anything else of that name
/// is not touched: the drill refuses instead.
pub fn clean(host: &Host, container: &DatasetName) -> Result<bool, Error> {
    let argv = cmd::zfs()
        .args(["get", "-H", "-o", "value,source", DRILL_MARK])
        .arg(container.as_str());
    let out = match host.query(&argv) {
        Ok(o) => o,
        Err(e) if matches!(e.kind, crate::zfs::ZfsErrorKind::DoesNotExist { .. }) => {
            return Ok(false)
        }
        Err(e) => return Err(e.into()),
    };
    let text = out.stdout_text();
    let mut words = text.split_whitespace();
    let (value, source) = (words.next().unwrap_or("-"), words.next().unwrap_or("-"));
    if value == "-" || source != "local" {
        return Err(Error::Usage(format!(
            "{}:{container} exists but is not zfleet's drill container (it lacks {DRILL_MARK}); rename it or choose another pool with --to",
            host.name
        )));
    }
    crate::restore::exec::retry_busy(host, &cmd::destroy_dataset(container))?;
    Ok(true)
}

/// The turn a drill waits for in this process (see [`run`]).
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Restores `backup` into a scratch dataset, compares it unless `keyless`
/// (a raw backup whose key is not on the server: its files cannot be read,
/// so receiving the whole stream, which makes ZFS check every block's
/// checksum on both ends, is what can be proved), and destroys it.
pub fn run(
    rt: &Runtime,
    job: &Job,
    target: &Host,
    backup: &SnapshotName,
    opts: &Options,
    progress: &dyn Progress,
    keyless: bool,
) -> Result<Drill, Error> {
    let (host_name, pool) = destination(rt, target, job, opts)?;
    let hosts = Hosts::new(rt);
    let dest = hosts.get(&host_name)?;
    let container = DatasetName::parse(&format!("{pool}/{CONTAINER}"))?;
    // Drills of one process take turns: they share the container, which each
    // one cleans before and after, and the lock file's flock belongs to one
    // open file, so two threads of one process would refuse each other.
    let _turn = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    let _lock = crate::lock::Lock::acquire(
        &rt.fleet.state_dir,
        "verify-drill",
        std::time::Duration::from_secs(0),
    )
    .map_err(|e| Error::Usage(format!("another drill is running: {e}")))?;
    if clean(&dest, &container)? {
        tracing::info!("removed the leftovers of an earlier drill under {container}");
    }
    dest.query(&cmd::create(
        &container,
        &[
            ("canmount", "off"),
            ("mountpoint", "none"),
            (DRILL_MARK, "container"),
        ],
    ))?;
    let scratch = container.join(&format!(
        "{}/{}",
        job.client,
        job.source.path_in_pool().replace('/', "_")
    ))?;
    let req = restore::Request {
        host: job.client.clone(),
        datasets: vec![job.source.clone()],
        selector: Selector::Named(backup.name.clone()),
        from: Some(job.server.clone()),
        to: Some(Target {
            host: host_name.clone(),
            dataset: Some(scratch.clone()),
        }),
        force: false,
        dry_run: false,
        pump: PumpOptions::default(),
        scratch: true,
    };
    let started = Instant::now();
    let result = restore::restore(rt, &req, &hosts, progress);
    let seconds = started.elapsed().as_secs_f64();
    let outcome = result.and_then(|r| {
        let d = r
            .datasets
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("the restore reported no dataset".into()))?;
        match d.outcome {
            restore::Outcome::Restored => Ok(d.bytes),
            other => Err(Error::Internal(format!(
                "the drill's restore did not restore: {}",
                serde_json::to_string(&other).unwrap_or_default()
            ))),
        }
    });
    let comparison = match &outcome {
        Ok(_) if keyless => None,
        Ok(_) => {
            let copy = scratch.snapshot(&backup.name)?;
            Some(compare_copies(
                &Copy {
                    host: target,
                    snapshot: backup,
                },
                &Copy {
                    host: &dest,
                    snapshot: &copy,
                },
                &rt.fleet.zfleet_path,
                WalkOptions {
                    sample: super::Sample::ALL,
                    rate: opts.rate,
                },
                progress,
                None,
            ))
        }
        Err(_) => None,
    };
    let removed = match clean(&dest, &container) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(
                "the drill's scratch datasets under {container} could not be removed: {e}"
            );
            false
        }
    };
    let bytes = outcome?;
    let comparison = comparison.transpose()?;
    Ok(Drill {
        host: host_name,
        dataset: scratch.to_string(),
        snapshot: backup.name.clone(),
        seconds,
        bytes,
        bytes_per_second: if seconds > 0.0 {
            bytes as f64 / seconds
        } else {
            0.0
        },
        removed,
        keyless,
        comparison,
    })
}
