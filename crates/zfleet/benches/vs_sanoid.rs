//! zfleet against Debian's sanoid on the same lab pool with the same policy:
//! wall time and `zfs`/`zpool` processes per run, and their ratios.
//!
//! `cargo bench -p zfleet --bench vs_sanoid` (root; starts a one-host lab).
//!
//! The pool holds two identical trees, `bench/s` (sanoid's) and `bench/z`
//! (zfleet's): a parent and 99 children, 100 datasets each, with 50 hourly
//! snapshots taken an hour apart under a faked clock. Both tools get the same
//! policy (hourly = 48, autosnap and autoprune, recursive), and run at the
//! same faked time, three times: the first takes 100 hourlies and prunes 200
//! (both tools prune from what they saw before taking), the second prunes the
//! 100 that the first run's snapshots pushed out, the third finds nothing to do.
//!
//! Processes are counted by `zfs` and `zpool` wrappers first on `PATH`. The
//! wrappers run the real commands without libfaketime (the clock matters only
//! to the tools and to zfs-fuse, which keep it), and translate the one call
//! zfs-fuse does not understand, sanoid's `zfs get -Hrpt snapshot creation`
//! (no `-t` in this dialect), into `zfs get -Hrp creation` filtered to
//! snapshots. sanoid's cache is removed before each run, as an hourly cron
//! run finds it (its TTL is 15 minutes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use zfleet_lab::sim::{Host, HostSpec, Lab, LabSpec, PoolSpec};

const CHILDREN: usize = 99;
const HISTORY: i64 = 50;
const T0: i64 = 1_700_000_000 - 1_700_000_000 % 3600;

fn sh(h: &Host, script: &str) -> String {
    h.sh_within(script, Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

fn wrapper(dir: &Path, tool: &str, log: &Path) {
    let real = format!("/usr/sbin/{tool}");
    let body = format!(
        "#!/bin/sh\necho \"$*\" >> {log}\n\
         if [ \"$*\" = \"get -Hrpt snapshot creation\" ]; then\n\
           env -u LD_PRELOAD {real} get -Hrp creation | grep @\n  exit 0\nfi\n\
         exec env -u LD_PRELOAD {real} \"$@\"\n",
        log = log.display()
    );
    let p = dir.join(tool);
    std::fs::write(&p, body).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&p)
        .status()
        .unwrap();
}

struct Measured {
    wall: Duration,
    procs: usize,
}

fn measure(h: &Host, lab: &Lab, script: &str) -> Measured {
    let log = lab.dir().join("calls.log");
    let _ = std::fs::remove_file(&log);
    let start = Instant::now();
    sh(h, script);
    let wall = start.elapsed();
    let procs = std::fs::read_to_string(&log)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    Measured { wall, procs }
}

fn count(h: &Host, tree: &str) -> usize {
    sh(
        h,
        &format!("zfs list -H -o name -t snapshot -r {tree} | wc -l"),
    )
    .trim()
    .parse()
    .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        // `cargo test --benches` asks for tests; this is not one.
        return;
    }
    let lab = Lab::start(
        &LabSpec::new("vssanoid")
            .host(HostSpec::new("h").pool(PoolSpec::new("bench").vdev_size(1 << 30)))
            .faketime(true),
    )
    .unwrap_or_else(|e| panic!("lab: {e:#}"));
    let h = lab.host("h").unwrap();
    let dir = lab.dir().to_path_buf();
    eprintln!(
        "building two trees of {} datasets with {HISTORY} hourly snapshots each…",
        CHILDREN + 1
    );
    sh(
        h,
        &format!(
            "for t in s z; do zfs create bench/$t; for i in $(seq -w 0 {}); do zfs create bench/$t/c$i; done; done",
            CHILDREN - 1
        ),
    );
    for i in 0..HISTORY {
        let t = T0 + i * 3600;
        h.freeze_time(t).unwrap();
        let name = jiff::Timestamp::from_second(t)
            .unwrap()
            .strftime("autosnap_%Y-%m-%d_%H:%M:%S_hourly")
            .to_string();
        sh(h, &format!("zfs snapshot -r bench@{name}"));
    }
    let before = (count(h, "bench/s"), count(h, "bench/z"));
    assert_eq!(before.0, before.1);

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("calls.log");
    wrapper(&bin, "zfs", &log);
    wrapper(&bin, "zpool", &log);
    let sdir = dir.join("sanoid");
    std::fs::create_dir_all(&sdir).unwrap();
    std::fs::write(
        sdir.join("sanoid.conf"),
        "[bench/s]\n\tuse_template = b\n\trecursive = yes\n\n[template_b]\n\thourly = 48\n\tdaily = 0\n\tmonthly = 0\n\tyearly = 0\n\tautosnap = yes\n\tautoprune = yes\n",
    )
    .unwrap();
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[fleet]\nstate_dir = \"{}\"\n[templates.b]\nhourly = 48\ndaily = 0\nmonthly = 0\nyearly = 0\n\
             [hosts.h]\n[hosts.h.snapshots.\"bench/z\"]\nuse_template = [\"b\"]\nrecursive = true\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let zfleet = env!("CARGO_BIN_EXE_zfleet");
    let env = format!("env PATH={}:$PATH TZ=UTC", bin.display());
    let sanoid = format!(
        "rm -rf {d}/sanoid-cache; {env} sanoid --cron --configdir={s} --cache-dir={d}/sanoid-cache --run-dir={d}/sanoid-run >/dev/null",
        d = dir.display(),
        s = sdir.display()
    );
    let zf = format!(
        "{env} {zfleet} --config {} --host h run >/dev/null",
        fleet.display()
    );

    h.set_time(T0 + HISTORY * 3600 + 5).unwrap();
    let s1 = measure(h, &lab, &sanoid);
    let z1 = measure(h, &lab, &zf);
    let after = (count(h, "bench/s"), count(h, "bench/z"));
    let s2 = measure(h, &lab, &sanoid);
    let z2 = measure(h, &lab, &zf);
    let again = (count(h, "bench/s"), count(h, "bench/z"));
    let s3 = measure(h, &lab, &sanoid);
    let z3 = measure(h, &lab, &zf);

    println!(
        "sanoid (Debian {}) and zfleet, {} datasets × {HISTORY} snapshots, hourly = 48:",
        sh(h, "dpkg-query -W -f '${Version}' sanoid").trim(),
        CHILDREN + 1
    );
    println!("  snapshots in the tree (sanoid / zfleet): before {} / {}, after run 1 {} / {}, after run 2 {} / {}",
        before.0, before.1, after.0, after.1, again.0, again.1);
    println!(
        "  {:<28} {:>12} {:>12} {:>8}",
        "", "sanoid", "zfleet", "ratio"
    );
    for (what, s, z) in [
        ("1: take 100, prune 200", &s1, &z1),
        ("2: prune 100", &s2, &z2),
        ("3: nothing to do", &s3, &z3),
    ] {
        println!(
            "  {:<28} {:>10.2} s {:>10.2} s {:>7.1}×   wall time",
            what,
            s.wall.as_secs_f64(),
            z.wall.as_secs_f64(),
            s.wall.as_secs_f64() / z.wall.as_secs_f64()
        );
        println!(
            "  {:<28} {:>12} {:>12} {:>7.1}×   zfs + zpool processes",
            "",
            s.procs,
            z.procs,
            s.procs as f64 / z.procs.max(1) as f64
        );
    }
    assert_eq!(
        after.0, after.1,
        "both tools should leave the same number of snapshots"
    );
    lab.teardown().unwrap();
}
