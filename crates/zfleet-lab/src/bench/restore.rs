//! `zfleet-lab bench restore`: `zfleet restore` of one backed-up dataset onto
//! its client against the raw `ssh server zfs send | zfs receive` pipe run on
//! that client, same snapshot, same run, alternating which goes first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{median, run_zfleet, timed, PS};
use crate::sim::{Host, HostSpec, Lab, LabSpec};

pub struct RestoreOptions {
    pub zfleet: PathBuf,
    pub megabytes: u64,
    pub reps: usize,
}

pub(super) const TARGET: &str = "zstorage/backups/client1/zroot/persistSave";

/// The client's dataset gone (and any restore's leftovers), so that each run
/// restores into a dataset that does not exist. The server's base holds on
/// the client's snapshots go first: `destroy -r` stops at a held snapshot.
fn clear(client: &Host) -> Result<()> {
    client.sh(&format!(
        "for s in $(zfs list -H -o name -t snapshot -r {PS} 2>/dev/null); do zfs release zfleet:base:backup $s 2>/dev/null || true; done; \
         for i in $(seq 50); do zfs list {PS} >/dev/null 2>&1 || break; zfs destroy -rf {PS} 2>/dev/null || sleep 0.2; done; \
         zfs list {PS} >/dev/null 2>&1 && exit 1; \
         for d in $(zfs list -H -o name -d 1 zroot | grep -F 'zroot/persistSave.' ); do zfs destroy -rf $d; done; true"
    ))?;
    Ok(())
}

/// Same digest of the files on both sides, or the run did not restore. The
/// paths are read from zfs: lab pools are imported with an altroot.
fn check_restored(client: &Host, backup: &Host) -> Result<()> {
    let sum = |h: &Host, ds: &str| {
        h.sh(&format!(
            "zfs mount {ds} 2>/dev/null; sha256sum \"$(zfs get -H -o value mountpoint {ds})/data.bin\" | cut -d' ' -f1"
        ))
    };
    let (a, b) = (sum(client, PS)?, sum(backup, TARGET)?);
    if a.trim() != b.trim() || a.trim().is_empty() {
        bail!(
            "the restored data.bin ({}) is not the backup's ({})",
            a.trim(),
            b.trim()
        );
    }
    Ok(())
}

/// A lab of client1 and a backup server, `megabytes` of random data on
/// client1 in `@bench`, backed up once: what the restore and drill benches
/// start from. `vdev_factor` pools of the data's size (plus slack) per host.
pub(super) struct BackedUp {
    pub lab: Lab,
    pub fleet: PathBuf,
    /// Bytes in a full send stream of the backup's `@bench`.
    pub stream: f64,
}

pub(super) fn backed_up(
    name: &str,
    zfleet: &Path,
    megabytes: u64,
    vdev_factor: u64,
) -> Result<BackedUp> {
    if !zfleet.exists() {
        bail!("no zfleet binary at {}", zfleet.display());
    }
    crate::sim::check_prerequisites(false)?;
    let size = (megabytes + 256) << 20;
    let lab = Lab::start(
        &LabSpec::new(name)
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_backup("backup"))
            .vdev_size(size * vdev_factor)
            .faketime(false),
    )?;
    let (c1, backup) = (lab.host("client1")?, lab.host("backup")?);
    // A drill compares the client's snapshot too, with zfleet run there.
    let mut fleet = format!("[fleet]\nzfleet_path = \"{}\"\n", zfleet.display());
    fleet.push_str(&crate::fleet::ssh_header(&lab));
    fleet.push_str(&format!(
        "[hosts.client1]\naddress = \"{}\"\n[hosts.client1.backup]\n\
         [hosts.backup]\naddress = \"{}\"\n[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n",
        c1.addr(),
        backup.addr()
    ));
    let path = lab.dir().join("fleet.toml");
    std::fs::write(&path, fleet)?;
    println!("writing {megabytes} MiB of random data on client1, backing it up");
    c1.sh_within(
        &format!("cd \"$(zfs get -H -o value mountpoint {PS})\" && head -c {megabytes}M /dev/urandom > data.bin && zfs snapshot {PS}@bench"),
        Duration::from_secs(600),
    )?;
    run_zfleet(backup, zfleet, &path, &["-q", "backup"])?;
    let stream = backup
        .sh(&format!("zfs send {TARGET}@bench | wc -c"))?
        .trim()
        .parse::<f64>()
        .context("stream size")?;
    Ok(BackedUp {
        lab,
        fleet: path,
        stream,
    })
}

pub fn restore(opts: &RestoreOptions) -> Result<()> {
    let BackedUp {
        lab,
        fleet: path,
        stream: bytes,
    } = backed_up("restore", &opts.zfleet, opts.megabytes, 2)?;
    let (c1, backup) = (lab.host("client1")?, lab.host("backup")?);
    let mb = bytes / (1 << 20) as f64;
    let zf = opts.zfleet.display().to_string();
    let cfg = path.display().to_string();
    let (mut raw, mut zfl, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..opts.reps {
        let order: [&str; 2] = if rep % 2 == 0 {
            ["raw", "zfleet"]
        } else {
            ["zfleet", "raw"]
        };
        for tool in order {
            clear(c1)?;
            let (secs, kib) = if tool == "raw" {
                let t = timed(
                    c1,
                    &format!("ssh backup zfs send {TARGET}@bench | zfs receive {PS}"),
                )?;
                c1.sh(&format!("zfs set mountpoint=/persist/save {PS}"))?;
                t
            } else {
                timed(
                    c1,
                    &format!("{zf} --config {cfg} --host client1 -q restore client1"),
                )?
            };
            check_restored(c1, backup).with_context(|| format!("{tool}, run {}", rep + 1))?;
            println!(
                "  run {}: {tool:6} {secs:6.2} s  {:7.1} MiB/s",
                rep + 1,
                mb / secs
            );
            if tool == "raw" {
                raw.push(mb / secs);
            } else {
                zfl.push(mb / secs);
                rss.push(kib);
            }
        }
    }
    let (r, z) = (median(raw), median(zfl));
    println!(
        "\nrestore of {mb:.0} MiB from backup onto client1 over ssh (median of {} runs):",
        opts.reps
    );
    println!("  raw `ssh backup zfs send | zfs receive`   {r:7.1} MiB/s");
    println!("  zfleet restore                            {z:7.1} MiB/s");
    println!("  ratio zfleet / raw pipe                   {:7.2}", z / r);
    println!(
        "  zfleet peak RSS                           {:7.1} MiB",
        rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0
    );
    lab.teardown()?;
    Ok(())
}
