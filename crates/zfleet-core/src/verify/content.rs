//! The content check: both hosts walk their copy of one snapshot at the same
//! time, each on its own disks; the source's listing (checksums, not data)
//! comes over its connection, the local one through a bounded channel, and
//! the two are merged as they arrive.

use std::io::BufReader;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::compare::{compare, Comparison};
use super::entry::Entry;
use super::snapdir::{checksum_argv, walk_snapshot};
use super::walk::{read_listing, WalkOptions};
use crate::exec::SpawnIo;
use crate::host::Host;
use crate::progress::Progress;
use crate::zfs::SnapshotName;
use crate::Error;

/// Entries in flight per side: enough to keep both walks busy, small enough
/// to keep memory flat.
const IN_FLIGHT: usize = 4096;

/// One side of a comparison: a host and its copy of the snapshot.
pub struct Copy<'a> {
    pub host: &'a Host,
    pub snapshot: &'a SnapshotName,
}

/// Compares `original` with `copy`. A side that is this machine is walked
/// in-process; a remote one runs `zfleet checksum` there (`program` over
/// plain ssh, `zfleet` through serve). `total` is the bytes the progress
/// bar expects (the copy's referenced size times the sampled share).
pub fn compare_copies(
    original: &Copy<'_>,
    copy: &Copy<'_>,
    program: &str,
    opts: WalkOptions,
    progress: &dyn Progress,
    total: Option<u64>,
) -> Result<Comparison, Error> {
    let bar = progress.transfer(
        &format!(
            "verify {}:{} ↔ {}:{}",
            original.host.name, original.snapshot, copy.host.name, copy.snapshot
        ),
        total,
    );
    let result = std::thread::scope(|s| {
        let (otx, orx) = sync_channel(IN_FLIGHT);
        let (ctx, crx) = sync_channel(IN_FLIGHT);
        s.spawn(move || produce(original, program, opts, otx));
        s.spawn(move || produce(copy, program, opts, ctx));
        let mut done = 0u64;
        let copy_entries = counted(crx, |e: &Entry| {
            if e.blake3.is_some() {
                done += e.size;
                bar.advance(done);
            }
        });
        compare(orx, copy_entries).map_err(Error::Internal)
    });
    match &result {
        Ok(c) => bar.finish(c.bytes_checksummed, true),
        Err(_) => bar.finish(0, false),
    }
    result
}

fn counted<'a>(
    rx: Receiver<Result<Entry, String>>,
    mut seen: impl FnMut(&Entry) + 'a,
) -> impl Iterator<Item = Result<Entry, String>> + 'a {
    rx.into_iter().inspect(move |r| {
        if let Ok(e) = r {
            seen(e);
        }
    })
}

/// Sends one side's entries; an error ends its listing (and so the merge).
fn produce(
    side: &Copy<'_>,
    program: &str,
    opts: WalkOptions,
    tx: SyncSender<Result<Entry, String>>,
) {
    let host = &side.host.name;
    if side.host.endpoint().is_local() {
        let mut emit = |e: Entry| {
            tx.send(Ok(e))
                .map_err(|_| std::io::Error::other("the comparison stopped"))
        };
        if let Err(e) = walk_snapshot(side.host, side.snapshot, opts, &mut emit) {
            let _ = tx.send(Err(format!("{host}: {e}")));
        }
        return;
    }
    let program = if side.host.is_served() {
        "zfleet"
    } else {
        program
    };
    let argv = checksum_argv(program, side.snapshot, &opts);
    let mut child = match side.host.endpoint().spawn(
        &argv,
        SpawnIo {
            stdin: false,
            stdout: true,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(e.to_string()));
            return;
        }
    };
    let stderr = child.stderr_reader();
    let Some(out) = child.take_stdout() else {
        let _ = tx.send(Err(format!("{host}: `{argv}` gave no output")));
        return;
    };
    for item in read_listing(BufReader::new(out)) {
        match item {
            Ok(e) => {
                if tx.send(Ok(e)).is_err() {
                    return;
                }
            }
            Err(listing) => {
                // Say why the other side stopped, not only that it did.
                let status = child.wait_timeout(Some(std::time::Duration::from_secs(30)));
                let err = stderr
                    .and_then(|h| h.join().ok())
                    .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                    .unwrap_or_default();
                let why = match status {
                    Ok(Some(st)) if st.code() == Some(127) => format!(
                        "`{program}` is not installed on {host} (or not on its PATH); install zfleet there or set [fleet] zfleet_path"
                    ),
                    Ok(Some(st)) if !st.success() => format!(
                        "`{argv}` failed on {host} ({}): {}",
                        crate::exec::describe_status(st),
                        crate::text::bounded(&err, 2000)
                    ),
                    _ => format!("{host}: {listing}"),
                };
                let _ = tx.send(Err(why));
                return;
            }
        }
    }
    let _ = child.wait_timeout(Some(std::time::Duration::from_secs(30)));
}
