//! Snapshots and pruning against real ZFS (zfs-fuse in the lab) with a faked
//! clock: sanoid's own regression scenarios with their exact counts and
//! checksums, the per-host lock, hooks, foreign snapshots and replication bases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{start, zfleet_bin, Run};
use zfleet_lab::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

/// sanoid's `tests/*/sanoid.conf` (template `production`, autoprune off).
const PRODUCTION: &str = "[templates.production]\nhourly = 36\ndaily = 30\nmonthly = 3\nyearly = 0\nautosnap = true\nautoprune = false\n";

fn fleet(lab: &Lab, body: &str) -> PathBuf {
    let hosts: String = lab.hosts().iter().map(common::host_line).collect();
    common::ssh_fleet(lab, &format!("{hosts}{body}"))
}

/// `zfleet --config FLEET --host HOST ARGS…` on `host`, in Vienna.
fn zfleet(host: &Host, fleet: &Path, args: &[&str]) -> Run {
    common::zfleet_in_tz(host, fleet, Some("Europe/Vienna"), args)
}

fn snapshots(h: &Host, root: &str) -> Vec<String> {
    h.sh(&format!("zfs list -H -o name -t snapshot -r {root}"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// sanoid's `saveSnapshotList` + `verifySnapshotList`: counts of hourly, daily
/// and monthly, and the SHA-256 of the sorted names with seconds zeroed.
fn sanoid_verify(h: &Host, pool: &str) -> (usize, usize, usize, String) {
    let names = snapshots(h, pool);
    let count = |p: &str| {
        names
            .iter()
            .filter(|n| n.contains("autosnap_") && n.ends_with(&format!("_{p}")))
            .count()
    };
    let sum = h
        .sh(&format!(
            "zfs list -t snapshot -o name -Hr {pool} | LC_ALL=C sort | \
             sed 's/\\(autosnap_[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]_[0-9][0-9]:[0-9][0-9]:\\)[0-9][0-9]/\\100/g' | sha256sum"
        ))
        .unwrap();
    (
        count("hourly"),
        count("daily"),
        count("monthly"),
        sum.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

fn sanoid_lab(name: &str, pool: &str) -> Lab {
    start(
        &LabSpec::new(name)
            .host(HostSpec::new("h").pool(PoolSpec::new(pool)))
            .faketime(true),
    )
}

/// sanoid `tests/2_dst_handling`: `zfleet run` every 15 minutes across the end
/// of DST 2017 in Vienna, one real zfleet process per run (289 runs).
#[test]
fn sanoid_dst_scenario_one_process_per_run() {
    let pool = "sanoid-test-2";
    let lab = sanoid_lab("sanoiddst", pool);
    let h = lab.host("h").unwrap();
    let f = fleet(
        &lab,
        &format!("{PRODUCTION}\n[hosts.h.snapshots.\"{pool}\"]\nuse_template = [\"production\"]\n"),
    );
    let started = Instant::now();
    let mut runs = 0;
    for t in (1_509_141_600..=1_509_400_800).step_by(900) {
        // Frozen: zfs-fuse's creation times and zfleet's `now` are exactly `t`.
        h.freeze_time(t).unwrap();
        zfleet(h, &f, &["run"]).ok();
        runs += 1;
    }
    h.reset_time().unwrap();
    eprintln!("{runs} runs in {:?}", started.elapsed());
    assert!(snapshots(h, pool).contains(&format!("{pool}@autosnap_2017-10-29_02:00:00dst_hourly")));
    assert_eq!(
        sanoid_verify(h, pool),
        (
            73,
            3,
            1,
            "846372ef238f2182b382c77a73ecddf99aa82f28cc9995bcc95592cc78305463".to_string()
        )
    );
    lab.teardown().unwrap();
}

/// sanoid `tests/1_one_year`: hourly runs through 2017 (8760 runs).
///
/// One zfleet process per run would spend most of three hours in observation:
/// zfs-fuse lists about 3,300 snapshots a second, and the pool grows to 9,137,
/// so run N lists N snapshots again. Instead one process inside the lab host
/// ([`replay_in_lab_host`]) runs the library's `run_with_index` — the same
/// planner, batching and executor as `zfleet run` — 8760 times against the
/// real pool, setting the host's (frozen) clock before each run, and carries
/// the observation from run to run with what each run did (so each run costs
/// one `zfs snapshot`, ~20 ms, instead of a growing listing). Every 30 simulated
/// days it observes the pool again and checks that the carried observation
/// equals ZFS's, names and creation times; the final list is checked against
/// sanoid's published checksum.
#[test]
fn sanoid_one_year_scenario() {
    let pool = "sanoid-test-1";
    let lab = sanoid_lab("sanoidyear", pool);
    let h = lab.host("h").unwrap();
    let started = Instant::now();
    let out = h
        .command(std::env::current_exe().unwrap())
        .env("TZ", "Europe/Vienna")
        .env(
            "ZFLEET_REPLAY",
            format!("{pool} 1483225200 1514761199 3600 2592000"),
        )
        .args([
            "--exact",
            "replay_in_lab_host",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the replay did not run:\n{stdout}\n{stderr}"
    );
    eprintln!(
        "{}",
        stderr
            .lines()
            .filter(|l| l.starts_with("replay:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("whole scenario {:?}", started.elapsed());
    assert_eq!(
        sanoid_verify(h, pool),
        (
            8760,
            365,
            12,
            "92f2c7afba94b59e8a6f6681705f0aa3f1c61e4aededaa38281e0b7653856935".to_string()
        )
    );
    lab.teardown().unwrap();
}

/// The body of [`sanoid_one_year_scenario`], run inside the lab host by that
/// test (as this test binary, through the host's faketime environment).
#[test]
#[ignore = "helper: started inside a lab host by sanoid_one_year_scenario"]
fn replay_in_lab_host() {
    use zfleet_core::config::{ExpandedPolicy, Policy, Recursive};
    use zfleet_core::snapshot::exec::{observe, run_with_index};
    use zfleet_core::snapshot::{PlanInput, Steps};
    use zfleet_core::zfs::DatasetName;

    let spec = std::env::var("ZFLEET_REPLAY").expect("ZFLEET_REPLAY: POOL START END STEP RESYNC");
    let w: Vec<&str> = spec.split_whitespace().collect();
    let (pool, start, end, step, resync): (&str, i64, i64, i64, i64) = (
        w[0],
        w[1].parse().unwrap(),
        w[2].parse().unwrap(),
        w[3].parse().unwrap(),
        w[4].parse().unwrap(),
    );
    let clock = PathBuf::from(
        std::env::var("FAKETIME_TIMESTAMP_FILE").expect("run under the lab's faketime"),
    );
    let set_clock = |t: i64| {
        let tmp = clock.with_extension("replay");
        std::fs::write(&tmp, format!("{t}\n")).unwrap();
        std::fs::rename(&tmp, &clock).unwrap();
    };
    // zfs-fuse (the daemon) keeps the host's faked clock and stamps creation
    // times with it; the `zfs` client needs no clock, and libfaketime's start-up
    // would almost triple the cost of each call (19 ms → 51 ms measured).
    std::env::remove_var("LD_PRELOAD");
    let host = zfleet_core::host::Host::local("h");
    let input = PlanInput {
        host: "h".into(),
        entries: vec![ExpandedPolicy {
            dataset: DatasetName::parse(pool).unwrap(),
            source: "template production".into(),
            policy: Policy {
                hourly: 36,
                daily: 30,
                monthly: 3,
                yearly: 0,
                autosnap: true,
                autoprune: false,
                ..Policy::default()
            },
            recursive: Recursive::No,
            process_children_only: false,
        }],
        wants: Vec::new(),
        servers: Vec::new(),
    };
    let tz = jiff::tz::TimeZone::system();
    assert_eq!(tz.iana_name(), Some("Europe/Vienna"));
    let started = Instant::now();
    let mut index = observe(&host, &input).unwrap().index;
    let (mut runs, mut calls, mut resyncs, mut resync_time) = (0, 1, 0, Duration::ZERO);
    let steps = Steps {
        take: true,
        prune: true,
    };
    let mut t = start;
    while t <= end {
        set_clock(t);
        let r = run_with_index(&host, &input, &mut index, t, &tz, steps).unwrap();
        assert_eq!(r.failed(), 0, "at {t}: {:#?}", r.outcomes);
        calls += r.zfs_calls;
        runs += 1;
        if (t - start) % resync == resync - step || t + step > end {
            let s = Instant::now();
            let fresh = observe(&host, &input).unwrap().index;
            calls += 1;
            let ds = DatasetName::parse(pool).unwrap();
            let view = |i: &zfleet_core::snapshot::Index| -> Vec<(String, i64)> {
                i.snapshots(&ds)
                    .iter()
                    .map(|s| (s.name.clone(), s.creation))
                    .collect()
            };
            assert_eq!(
                view(&fresh),
                view(&index),
                "carried observation differs from ZFS at {t}"
            );
            index = fresh;
            resyncs += 1;
            resync_time += s.elapsed();
        }
        t += step;
    }
    let el = started.elapsed();
    eprintln!(
        "replay: {runs} runs, {calls} zfs calls, {:?} ({:.1} ms per run); {resyncs} full observations took {resync_time:?}",
        el,
        el.as_secs_f64() * 1000.0 / f64::from(runs)
    );
}

const HOURLY2: &str = "[templates.t]\nhourly = 2\ndaily = 0\nmonthly = 0\n";

fn one_host(name: &str) -> Lab {
    start(
        &LabSpec::new(name)
            .host(
                HostSpec::new("h").pool(
                    PoolSpec::new("zroot")
                        .dataset(DatasetSpec::new("zroot/data"))
                        .dataset(DatasetSpec::new("zroot/data/a"))
                        .dataset(DatasetSpec::new("zroot/data/b")),
                ),
            )
            .faketime(true),
    )
}

/// Hourly snapshots for `hours` hours before `t`, as zfleet would have taken
/// them (creation times set through the clock).
fn history(h: &Host, f: &Path, t0: i64, hours: i64) {
    for i in 0..hours {
        h.freeze_time(t0 + i * 3600).unwrap();
        // A failing hook makes the exit code 4; tests check outcomes themselves.
        let r = zfleet(h, f, &["snapshot"]);
        assert!(r.code == 0 || r.code == 4, "{}{}", r.stdout, r.stderr);
    }
}

#[test]
fn lock_keeps_overlapping_runs_apart() {
    let lab = one_host("snaplock");
    let h = lab.host("h").unwrap();
    let f = fleet(&lab, &format!("{HOURLY2}\n[hosts.h.snapshots.\"zroot/data\"]\nuse_template = [\"t\"]\nrecursive = true\n"));
    h.freeze_time(1_700_000_000).unwrap();
    // Someone holds the lock: the run leaves at once with 75 and the holder's pid.
    let lock = "/var/lib/zfleet/h.lock";
    let ready = lab.dir().join("holder.ready");
    let mut holder = h
        .command("perl")
        .args(["-e", "use Fcntl ':flock'; open F, '+>>', $ARGV[0] or die; flock F, LOCK_EX; truncate F, 0; print F \"$$\\n\"; F->flush; open M, '>', $ARGV[1]; close M; sleep 60"])
        .arg(lock)
        .arg(&ready)
        .spawn()
        .unwrap();
    // nsenter forks into the pid namespace, so wait for the marker file.
    let t = Instant::now();
    while !ready.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the holder never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = zfleet(h, &f, &["run"]);
    assert_eq!(r.code, 75, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("is held by another zfleet process (pid "),
        "{}",
        r.stderr
    );
    assert!(snapshots(h, "zroot").is_empty());
    // The holder dies: the kernel drops its lock, nothing stale remains.
    let pid = h.sh(&format!("cat {lock}")).unwrap();
    assert!(
        r.stderr.contains(&format!("(pid {})", pid.trim())),
        "{}",
        r.stderr
    );
    h.sh(&format!("kill -9 {}", pid.trim())).unwrap();
    holder.wait().unwrap();
    zfleet(h, &f, &["run"]).ok();
    assert_eq!(snapshots(h, "zroot").len(), 3);

    // Eight runs at once, one hour later: each waits its turn; the first takes
    // the hourlies, the others find nothing due. No duplicates, no failures.
    h.freeze_time(1_700_003_600).unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            h.command(zfleet_bin())
                .arg("--config")
                .arg(&f)
                .args(["--host", "h", "run", "--wait", "60s", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut took = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = v["outcomes"].as_array().unwrap().len();
        if n > 0 {
            took += 1;
        }
    }
    assert_eq!(took, 1, "exactly one of the overlapping runs acts");
    assert_eq!(snapshots(h, "zroot").len(), 6);
    lab.teardown().unwrap();
}

#[test]
fn hooks_get_sanoids_environment_and_can_stop_a_snapshot() {
    let lab = one_host("snaphooks");
    let h = lab.host("h").unwrap();
    let log = lab.dir().join("hooks.log");
    let body = format!(
        "{HOURLY2}\n[hosts.h.snapshots.\"zroot/data/a\"]\nuse_template = [\"t\"]\n\
         pre_snapshot_script = \"echo pre $SANOID_SCRIPT $SANOID_TARGET $SANOID_SNAPNAMES $SANOID_TYPES >> {l}\"\n\
         post_snapshot_script = [\"/bin/sh\", \"-c\", \"echo post $SANOID_SCRIPT $SANOID_PRE_FAILURE $SANOID_SNAPNAME >> {l}\"]\n\
         pre_pruning_script = \"/bin/true\"\n\
         pruning_script = \"echo pruned $SANOID_SCRIPT $SANOID_TARGET@$SANOID_SNAPNAME >> {l}\"\n\
         [hosts.h.snapshots.\"zroot/data/b\"]\nuse_template = [\"t\"]\n\
         pre_snapshot_script = \"sleep 10\"\nscript_timeout = 1\nno_inconsistent_snapshot = true\n",
        l = log.display()
    );
    let f = fleet(&lab, &body);
    let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
    history(h, &f, t0, 3);
    h.freeze_time(t0 + 3 * 3600).unwrap();
    let r = zfleet(h, &f, &["run"]);
    let text = std::fs::read_to_string(&log).unwrap();
    insta::assert_snapshot!(text.lines().take(3).collect::<Vec<_>>().join("\n"), @r"
    pre pre zroot/data/a autosnap_2023-11-14_23:00:00_hourly hourly
    post post 0 autosnap_2023-11-14_23:00:00_hourly
    pre pre zroot/data/a autosnap_2023-11-15_00:00:00_hourly hourly
    ");
    assert!(
        text.contains("pruned prune zroot/data/a@autosnap_"),
        "{text}"
    );
    // zroot/data/b's pre hook times out: with no_inconsistent_snapshot nothing is taken there.
    assert!(snapshots(h, "zroot/data/b").is_empty());
    assert_eq!(
        r.code, 4,
        "a failed hook is a failure: {}{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout.contains("pre_snapshot_script FAILED"),
        "{}",
        r.stdout
    );
    lab.teardown().unwrap();
}

#[test]
fn foreign_snapshots_and_replication_bases_are_never_destroyed() {
    let lab = one_host("snapsafe");
    let h = lab.host("h").unwrap();
    let body = format!(
        "{HOURLY2}\n[hosts.h.snapshots.\"zroot/data\"]\nuse_template = [\"t\"]\nrecursive = true\n\
         [hosts.h.backup]\ndatasets = [\"zroot/data/a\"]\n\
         [hosts.vault]\naddress = \"192.0.2.1\"\n[hosts.vault.server]\ntarget_root = \"tank/backups\"\n"
    );
    let f = fleet(&lab, &body);
    let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
    h.freeze_time(t0 - 86_400).unwrap();
    for s in [
        "before-upgrade",
        "autosnap_manual_hourly",
        "syncoid_vault_2023-11-13:00:00:00-GMT01:00",
        "autosnap_2023-11-13_00:00:00_hourly_x",
    ] {
        h.sh(&format!("zfs snapshot -r zroot/data@{s}")).unwrap();
    }
    history(h, &f, t0, 6);
    let a = "zroot/data/a";
    let names = |ds: &str| -> Vec<String> {
        snapshots(h, ds)
            .into_iter()
            .filter(|n| n.starts_with(&format!("{ds}@")))
            .map(|n| n.rsplit('@').next().unwrap().to_string())
            .collect()
    };
    let auto: Vec<String> = names(a)
        .into_iter()
        .filter(|n| n.ends_with("00_hourly"))
        .collect();
    assert_eq!(auto.len(), 6);
    // By hand, as replication would: vault's base on the 2nd hourly (property
    // and hold), and a hold of someone else's on the 1st of zroot/data/b.
    h.sh(&format!("zfs set zfleet:base:vault={t0} {a}@{}", auto[1]))
        .unwrap();
    h.sh(&format!("zfs hold zfleet:base:vault {a}@{}", auto[1]))
        .unwrap();
    let b_first = names("zroot/data/b")
        .into_iter()
        .find(|n| n.ends_with("00_hourly"))
        .unwrap();
    h.sh(&format!("zfs hold backup-tool zroot/data/b@{b_first}"))
        .unwrap();

    h.freeze_time(t0 + 10 * 3600).unwrap();
    let plan = zfleet(h, &f, &["prune", "--dry-run", "--json"]).ok().json();
    let kept: Vec<String> = plan["kept"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["rule"]["kind"] != "minimum_count" && k["rule"]["kind"] != "retained")
        .map(|k| {
            format!(
                "{}@{}: {}",
                k["dataset"].as_str().unwrap(),
                k["name"].as_str().unwrap(),
                k["rule"]["kind"].as_str().unwrap()
            )
        })
        .collect();
    insta::assert_debug_snapshot!(kept, @r#"
    [
        "zroot/data/a@autosnap_2023-11-15_00:00:00_hourly: replication_base",
        "zroot/data/a@autosnap_2023-11-15_01:00:00_hourly: not_replicated",
        "zroot/data/a@autosnap_2023-11-15_02:00:00_hourly: not_replicated",
        "zroot/data/b@autosnap_2023-11-14_23:00:00_hourly: held",
    ]
    "#);
    zfleet(h, &f, &["prune"]).ok();
    // Everything not zfleet's is still there, on every dataset.
    for ds in ["zroot/data", a, "zroot/data/b"] {
        let left = names(ds);
        for s in [
            "before-upgrade",
            "autosnap_manual_hourly",
            "syncoid_vault_2023-11-13:00:00:00-GMT01:00",
            "autosnap_2023-11-13_00:00:00_hourly_x",
        ] {
            assert!(
                left.contains(&s.to_string()),
                "{ds}@{s} was destroyed: {left:?}"
            );
        }
    }
    // The base and everything newer stay on zroot/data/a; only the older one went.
    assert_eq!(
        names(a)
            .into_iter()
            .filter(|n| n.ends_with("00_hourly"))
            .collect::<Vec<_>>(),
        auto[1..].to_vec()
    );
    assert!(
        names("zroot/data/b").contains(&b_first),
        "held snapshot destroyed"
    );
    assert_eq!(
        names("zroot/data")
            .into_iter()
            .filter(|n| n.ends_with("00_hourly"))
            .count(),
        2
    );
    lab.teardown().unwrap();
}

/// `check-snapshots` and `check-pools` as Nagios runs them: one line and the
/// plugin exit code, from real snapshot ages on the host's clock; `--json`
/// with the same verdict; UNKNOWN (3) in the same shape when the check cannot run.
#[test]
fn monitoring_checks_answer_like_nagios_plugins() {
    let lab = one_host("snapmon");
    let h = lab.host("h").unwrap();
    let f = fleet(
        &lab,
        &format!("{HOURLY2}\n[hosts.h.snapshots.\"zroot/data\"]\nuse_template = [\"t\"]\n"),
    );
    let t0 = 1_700_000_000;
    h.freeze_time(t0).unwrap();
    zfleet(h, &f, &["run"]).ok();

    let r = zfleet(h, &f, &["check-snapshots"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.trim(),
        "OK: all monitored datasets (zroot/data) have fresh snapshots"
    );

    // Two hours later, nothing taken: past hourly_warn (90m), not hourly_crit (360m).
    h.freeze_time(t0 + 7200).unwrap();
    let r = zfleet(h, &f, &["check-snapshots"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.trim(),
        "WARN: zroot/data newest hourly snapshot is 2h 0m 0s old (should be < 1h 30m 0s)"
    );
    // Seven hours: critical, in JSON too.
    h.freeze_time(t0 + 7 * 3600).unwrap();
    let r = zfleet(h, &f, &["check-snapshots", "--json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["level"], "critical", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("CRIT: zroot/data newest hourly snapshot is 7h 0m 0s old"),
        "{v}"
    );

    let r = zfleet(h, &f, &["check-pools"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("OK ZPOOL zroot : ONLINE {Size:"),
        "{}",
        r.stdout
    );
    let v = zfleet(h, &f, &["check-pools", "--json"]).ok().json();
    assert_eq!(v["level"], "ok", "{v}");

    // A check that cannot run says why, exits 3, and keeps its shape in JSON.
    let missing = lab.dir().join("no-such-fleet.toml");
    for check in ["check-snapshots", "check-pools"] {
        let r = zfleet(h, &missing, &[check]);
        assert_eq!(r.code, 3, "{check}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.starts_with("UNKNOWN: "), "{check}: {}", r.stdout);
        let r = zfleet(h, &missing, &[check, "--json"]);
        assert_eq!(r.code, 3, "{check}: {}{}", r.stdout, r.stderr);
        let v = r.json();
        assert_eq!(v["level"], "unknown", "{check}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("no-such-fleet.toml"),
            "{check}: {v}"
        );
    }
}
