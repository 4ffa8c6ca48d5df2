//! `zfleet-lab bench drill`: the restore inside `zfleet verify --level drill`
//! (its reported `drill.seconds`, the recovery time it tells users) against a
//! plain `zfs send BACKUP@snap | zfs receive` of the same snapshot on the same
//! backup server, same run, alternating which goes first.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::restore::{backed_up, BackedUp, TARGET};
use super::{median, run_zfleet, timed};

pub struct DrillOptions {
    pub zfleet: PathBuf,
    pub megabytes: u64,
    pub reps: usize,
}

const RAW_INTO: &str = "zstorage/rawdrill";

/// The drill's `seconds` and `bytes` from `verify --json`, after checking
/// that it restored, compared every file equal and removed its copy: a drill
/// that did not move the data must not be reported as fast.
fn drill_figures(json: &str) -> Result<(f64, u64)> {
    let v: serde_json::Value = serde_json::from_str(json).context("verify --json output")?;
    let jobs = v
        .get("jobs")
        .or_else(|| v.get(0).and_then(|r| r.get("jobs")))
        .and_then(|j| j.as_array())
        .context("no jobs in verify --json")?;
    let d = jobs
        .first()
        .and_then(|j| j.get("drill"))
        .filter(|d| !d.is_null())
        .context("verify --json reports no drill")?;
    if d["removed"] != serde_json::Value::Bool(true) {
        bail!("the drill left its scratch copy behind: {d}");
    }
    let cmp = &d["comparison"];
    let differing = cmp["differing"].as_u64().unwrap_or(u64::MAX);
    if differing != 0 {
        bail!("the drill's copy differs from the backup: {cmp}");
    }
    let seconds = d["seconds"].as_f64().context("drill.seconds")?;
    let bytes = d["bytes"].as_u64().context("drill.bytes")?;
    Ok((seconds, bytes))
}

pub fn drill(opts: &DrillOptions) -> Result<()> {
    let BackedUp {
        lab,
        fleet: path,
        stream,
    } = backed_up("drill", &opts.zfleet, opts.megabytes, 3)?;
    let backup = lab.host("backup")?;
    let mb = stream / (1 << 20) as f64;
    let (mut raw, mut zfl, mut walls) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..opts.reps {
        let order: [&str; 2] = if rep % 2 == 0 {
            ["raw", "drill"]
        } else {
            ["drill", "raw"]
        };
        for tool in order {
            let secs = if tool == "raw" {
                // -u where it exists would be fairer to zfs-fuse's mount on
                // receive; the drill's scratch copy is not mounted either
                // (mountpoint=none), so the raw copy is received the same way.
                backup.sh(&format!(
                    "zfs create -o mountpoint=none -o canmount=off {RAW_INTO}"
                ))?;
                let (t, _) = timed(
                    backup,
                    &format!("zfs send {TARGET}@bench | zfs receive {RAW_INTO}/copy"),
                )?;
                let got = backup.sh(&format!(
                    "zfs get -H -p -o value guid {RAW_INTO}/copy@bench"
                ))?;
                let want = backup.sh(&format!("zfs get -H -p -o value guid {TARGET}@bench"))?;
                if got.trim() != want.trim() {
                    bail!("the raw pipe did not receive @bench (guid {got:?}, want {want:?})");
                }
                backup.sh(&format!(
                    "for i in $(seq 50); do zfs destroy -r {RAW_INTO} 2>/dev/null && break; sleep 0.2; done"
                ))?;
                t
            } else {
                let started = std::time::Instant::now();
                let out = run_zfleet(
                    backup,
                    &opts.zfleet,
                    &path,
                    &["-q", "verify", "--level", "drill", "--json", "client1"],
                )?;
                walls.push(started.elapsed().as_secs_f64());
                let (secs, bytes) =
                    drill_figures(&out).with_context(|| format!("drill, run {}", rep + 1))?;
                if (bytes as f64) < stream * 0.9 {
                    bail!("the drill moved {bytes} bytes of a {stream} byte stream");
                }
                secs
            };
            println!(
                "  run {}: {tool:5} {secs:6.2} s  {:7.1} MiB/s",
                rep + 1,
                mb / secs
            );
            if tool == "raw" {
                raw.push(mb / secs);
            } else {
                zfl.push(mb / secs);
            }
        }
    }
    let (r, z) = (median(raw), median(zfl));
    println!(
        "\ndrill of {mb:.0} MiB on the backup server (median of {} runs):",
        opts.reps
    );
    println!("  raw `zfs send | zfs receive`               {r:7.1} MiB/s");
    println!("  zfleet verify --level drill, its restore   {z:7.1} MiB/s");
    println!("  ratio drill / raw pipe                     {:7.2}", z / r);
    println!(
        "  whole verify --level drill run (median)    {:7.2} s (quick checks, restore, comparison of both copies)",
        median(walls)
    );
    content_walk(backup, &opts.zfleet, opts.reps, mb)?;
    lab.teardown()?;
    Ok(())
}

/// `zfleet checksum` of the backup's `@bench` (what content verification
/// runs on each host: BLAKE3 and metadata per file, through a temporary
/// read-only clone on zfs-fuse, whose `.zfs/snapshot` is not visible)
/// against `sha256sum` and `b3sum` of the same files read the same way.
/// Same host, rotating the order.
fn content_walk(
    backup: &crate::sim::Host,
    zfleet: &std::path::Path,
    reps: usize,
    mb: f64,
) -> Result<()> {
    // Each peer reads what zfleet reads: the snapshot through a new
    // read-only clone, made and destroyed within its time. (The mounted
    // backup itself would be read from the page cache its last access left.)
    let through_clone = |hash: &str| {
        format!(
            "zfs clone -o readonly=on {TARGET}@bench zstorage/benchclone && \
             find \"$(zfs get -H -o value mountpoint zstorage/benchclone)\" -type f -print0 | xargs -0 {hash} > /dev/null; \
             s=$?; for i in $(seq 50); do zfs destroy zstorage/benchclone 2>/dev/null && break; sleep 0.1; done; exit $s"
        )
    };
    let has_b3sum = !backup.sh("command -v b3sum || true")?.trim().is_empty();
    let mut tools: Vec<(&str, String)> = vec![
        (
            "zfleet checksum",
            format!(
                "n=$({} checksum {TARGET}@bench | grep -c blake3); [ \"$n\" -ge 1 ] || {{ echo zfleet listed no checksum >&2; exit 1; }}",
                zfleet.display()
            ),
        ),
        ("sha256sum", through_clone("sha256sum")),
    ];
    if has_b3sum {
        tools.push(("b3sum, 1 thread", through_clone("b3sum --num-threads 1")));
        tools.push(("b3sum, all cores", through_clone("b3sum")));
    } else {
        println!("\n(b3sum is not installed: `apt install b3sum` to compare with it)");
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    println!("\ncontent walk of the backup's {mb:.0} MiB on the backup server:");
    for rep in 0..reps {
        for k in 0..tools.len() {
            let i = (rep + k) % tools.len();
            let (name, script) = &tools[i];
            let (secs, _) = timed(backup, script).with_context(|| name.to_string())?;
            println!(
                "  run {}: {name:17} {secs:6.2} s  {:7.1} MiB/s",
                rep + 1,
                mb / secs
            );
            rates[i].push(mb / secs);
        }
    }
    let medians: Vec<f64> = rates.into_iter().map(median).collect();
    println!("\ncontent walk (median of {reps} runs):");
    for ((name, _), m) in tools.iter().zip(&medians) {
        println!("  {name:17} {m:7.1} MiB/s");
    }
    for ((name, _), m) in tools.iter().zip(&medians).skip(1) {
        println!("  ratio zfleet checksum / {name:17} {:5.2}", medians[0] / m);
    }
    Ok(())
}
