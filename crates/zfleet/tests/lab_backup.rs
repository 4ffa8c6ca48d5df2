//! Pull backups over real ssh between lab hosts: who gets backed up, full then
//! incremental, byte for byte, and what faults leave behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{host_line, mountpoint, snapshots, ssh_fleet as fleet, start, zfleet, zfleet_bin};
use zfleet_lab::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

fn write(h: &Host, ds: &str, file: &str, megabytes: u32) {
    let mp = mountpoint(h, ds);
    h.sh(&format!(
        "head -c {megabytes}M /dev/urandom > '{mp}/{file}'"
    ))
    .unwrap();
}

fn digest(h: &Host, ds: &str) -> String {
    let mp = mountpoint(h, ds);
    h.sh(&format!(
        "cd '{mp}' && find . -type f | sort | xargs -r sha256sum"
    ))
    .unwrap()
}

fn exists(h: &Host, ds: &str) -> bool {
    h.sh(&format!(
        "zfs list -H -o name {ds} >/dev/null 2>&1 && echo yes || echo no"
    ))
    .unwrap()
    .trim()
        == "yes"
}

const PS: &str = "zroot/persistSave";

fn target(client: &str) -> String {
    format!("zstorage/backups/{client}/zroot/persistSave")
}

#[test]
fn who_is_backed_up_full_then_incremental_byte_for_byte() {
    let lab = start(
        &LabSpec::new("who")
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_client("client2"))
            .host(HostSpec::seed_client("laptop"))
            .host(HostSpec::seed_client("outsider"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(false),
    );
    let [c1, c2, laptop, outsider, backup] =
        ["client1", "client2", "laptop", "outsider", "backup"].map(|n| lab.host(n).unwrap());
    for c in [c1, c2, laptop, outsider] {
        write(c, PS, "a.bin", 3);
        c.sh(&format!(
            "echo {} > \"$(zfs get -H -o value mountpoint {PS})/name\" && zfs snapshot {PS}@s1",
            c.name()
        ))
        .unwrap();
    }
    // client2 is in the fleet but not (yet) a backup client; laptop is excluded;
    // outsider is not in the fleet at all but an extra client of the server.
    let body = |client2_enabled: bool| {
        format!(
            "{}[hosts.client1.backup]\n{}{}{}[hosts.laptop.backup]\n{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\nexclude = [\"laptop\"]\n[[hosts.backup.server.extra_clients]]\nname = \"outsider\"\naddress = \"{}\"\ndatasets = [\"{PS}\"]\n",
            host_line(c1),
            host_line(c2),
            if client2_enabled { "[hosts.client2.backup]\n" } else { "" },
            host_line(laptop),
            host_line(backup),
            outsider.addr()
        )
    };
    let f = fleet(&lab, &body(false));
    let run = zfleet(backup, &f, &["backup", "--json"]).ok();
    let report = run.json();
    let clients: Vec<&str> = report["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["client1", "outsider"]);
    assert!(exists(backup, &target("client1")) && exists(backup, &target("outsider")));
    assert!(
        !exists(backup, &target("client2")),
        "client2 is not enabled"
    );
    assert!(!exists(backup, &target("laptop")), "laptop is excluded");
    assert_eq!(digest(c1, PS), digest(backup, &target("client1")));
    assert_eq!(digest(outsider, PS), digest(backup, &target("outsider")));
    let full_bytes = report["clients"][0]["jobs"][0]["bytes"].as_u64().unwrap();
    assert!(full_bytes > 3 << 20, "{full_bytes}");

    // An incremental: two more snapshots, a small change.
    c1.sh(&format!("echo more >> \"$(zfs get -H -o value mountpoint {PS})/name\" && zfs snapshot {PS}@s2 && zfs snapshot {PS}@s3")).unwrap();
    let report = zfleet(backup, &f, &["backup", "client1", "--json"])
        .ok()
        .json();
    let job = &report["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "sent");
    assert_eq!(job["snapshots"], 2, "every snapshot in between is sent");
    assert!(
        job["bytes"].as_u64().unwrap() < 200_000,
        "incremental, not full: {job}"
    );
    assert_eq!(snapshots(backup, &target("client1")), ["s1", "s2", "s3"]);
    assert_eq!(digest(c1, PS), digest(backup, &target("client1")));

    // A host added to the fleet file is backed up on the next run.
    let f = fleet(&lab, &body(true));
    let report = zfleet(backup, &f, &["backup", "--json"]).ok().json();
    let clients: Vec<&str> = report["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["client1", "client2", "outsider"]);
    assert_eq!(report["clients"][0]["jobs"][0]["outcome"], "up_to_date");
    assert_eq!(digest(c2, PS), digest(backup, &target("client2")));
    assert!(!exists(backup, &target("laptop")));

    // Asking for an excluded host says why it is not backed up.
    let run = zfleet(backup, &f, &["backup", "laptop"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("`backup` does not back up `laptop`: excluded by this server"),
        "{}",
        run.stderr
    );

    // The state database has every job.
    let runs = backup
        .sh("sqlite3 /var/lib/zfleet/state.db 'select client, result from runs order by id'")
        .unwrap();
    assert!(
        runs.contains("client1|ok")
            && runs.contains("client1|up_to_date")
            && !runs.contains("running"),
        "{runs}"
    );
}

fn seed_lab(name: &str, server_vdev: Option<u64>) -> Lab {
    let mut backup = HostSpec::new("backup");
    let mut pool = PoolSpec::new("zstorage").dataset(DatasetSpec::new("zstorage/backups"));
    if let Some(v) = server_vdev {
        pool = pool.vdev_size(v);
    }
    backup = backup.pool(pool);
    start(
        &LabSpec::new(name)
            .host(HostSpec::seed_client("client1"))
            .host(backup)
            .faketime(false),
    )
}

fn simple_fleet(lab: &Lab) -> std::path::PathBuf {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    fleet(
        lab,
        &format!("{}[hosts.client1.backup]\n{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n", host_line(c1), host_line(backup)),
    )
}

fn spawn_backup(backup: &Host, f: &Path, extra: &[&str]) -> Child {
    backup
        .command(zfleet_bin())
        .arg("--config")
        .arg(f)
        .arg("--host")
        .arg("backup")
        .arg("backup")
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a process matching `pattern` runs on `h` (the stream is flowing).
fn wait_for_process(h: &Host, pattern: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if h.sh(&format!(
            "pgrep -f '{pattern}' >/dev/null && echo y || echo n"
        ))
        .unwrap()
        .trim()
            == "y"
        {
            return;
        }
        sleep(Duration::from_millis(100));
    }
    panic!("no process matching {pattern} on {}", h.name());
}

/// After a fault: the target is at a complete snapshot the source has (or does
/// not exist yet), and a normal run then brings it up to date, byte for byte.
fn assert_recovers(c1: &Host, backup: &Host, f: &Path, what: &str) {
    let t = target("client1");
    if exists(backup, &t) {
        let tsnaps = snapshots(backup, &t);
        let ssnaps = snapshots(c1, PS);
        assert!(
            tsnaps.iter().all(|s| ssnaps.contains(s)),
            "{what}: target has {tsnaps:?}, source {ssnaps:?}"
        );
    }
    let run = zfleet(backup, f, &["backup", "--json"]);
    assert_eq!(
        run.code, 0,
        "{what}: the next run must finish:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(snapshots(backup, &t), snapshots(c1, PS), "{what}");
    assert_eq!(digest(c1, PS), digest(backup, &t), "{what}");
}

#[test]
fn killing_any_part_mid_stream_leaves_a_consistent_target_and_the_next_run_finishes() {
    let lab = seed_lab("kill", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    // (victim host, pkill pattern): the sender, the receiver, the ssh carrying
    // the stream, and zfleet itself.
    let victims: [(&Host, &str); 4] = [
        (c1, "^zfs send"),
        (backup, "^zfs receive"),
        (backup, "^ssh .*zfs send"),
        (backup, "zfleet"),
    ];
    for (i, (victim, kill_pat)) in victims.iter().enumerate() {
        write(c1, PS, &format!("f{i}.bin"), 24);
        c1.sh(&format!("zfs snapshot {PS}@k{i}")).unwrap();
        let mut child = spawn_backup(backup, &f, &["--rate-limit", "3M", "--buffer", "1M"]);
        wait_for_process(backup, "^zfs receive");
        sleep(Duration::from_millis(1500));
        // zfleet itself by its name: its command line is also this shell's.
        let how = if *kill_pat == "zfleet" { "-x" } else { "-f" };
        victim
            .sh(&format!("pkill -9 {how} '{kill_pat}' || true"))
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "killing {kill_pat} must fail the run");
        assert_recovers(c1, backup, &f, kill_pat);
    }
}

#[test]
fn a_pulled_cable_mid_stream_fails_in_time_and_the_next_run_finishes() {
    let lab = seed_lab("cable", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    write(c1, PS, "big.bin", 16);
    c1.sh(&format!("zfs snapshot {PS}@c1")).unwrap();
    let mut child = spawn_backup(backup, &f, &["--rate-limit", "2M", "--buffer", "1M"]);
    wait_for_process(backup, "^zfs receive");
    sleep(Duration::from_secs(2));
    c1.link_down().unwrap();
    let started = Instant::now();
    let status = child.wait().unwrap();
    let took = started.elapsed();
    c1.link_up().unwrap();
    assert!(!status.success());
    // ssh's keepalive (5 s × 3) notices the dead link.
    assert!(took < Duration::from_secs(40), "took {took:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("FAILED"), "{err}");
    assert_recovers(c1, backup, &f, "link down");
}

#[test]
fn a_diverged_target_is_refused_and_nothing_is_destroyed() {
    let lab = seed_lab("diverge", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    c1.sh(&format!("zfs snapshot {PS}@a && zfs snapshot {PS}@b"))
        .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    // Someone snapshots the backup; the client rolls back and moves on.
    backup
        .sh(&format!("zfs snapshot {}@local-change", target("client1")))
        .unwrap();
    c1.sh(&format!("zfs snapshot {PS}@c")).unwrap();
    let before = snapshots(backup, &target("client1"));
    let run = zfleet(backup, &f, &["backup"]);
    assert_eq!(run.code, 5, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("REFUSED"), "{}", run.stdout);
    assert!(
        run.stderr.contains("has diverged from client1:zroot/persistSave: it has 1 snapshot the source does not have (@local-change) after the last common snapshot @b"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--rollback"));
    assert_eq!(
        snapshots(backup, &target("client1")),
        before,
        "nothing destroyed"
    );

    // The source was rolled back: refused too, never followed silently.
    backup
        .sh(&format!("zfs destroy {}@local-change", target("client1")))
        .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    c1.sh(&format!("zfs release zfleet:base:backup {PS}@c; zfs inherit zfleet:base:backup {PS}@c; zfs rollback -r {PS}@b && zfs snapshot {PS}@d")).unwrap();
    let run = zfleet(backup, &f, &["backup"]);
    assert_eq!(run.code, 5);
    assert!(
        run.stderr
            .contains("(@c) after the last common snapshot @b"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshots(backup, &target("client1")), ["a", "b", "c"]);
    // With --rollback the target follows, discarding @c.
    zfleet(backup, &f, &["backup", "--rollback"]).ok();
    assert_eq!(snapshots(backup, &target("client1")), ["a", "b", "d"]);
}

#[test]
fn a_target_pool_too_small_fails_clearly_and_the_next_run_finishes_after_freeing_space() {
    let lab = seed_lab("nospace", Some(128 << 20));
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    backup.sh("zfs create zstorage/filler").unwrap();
    write(backup, "zstorage/filler", "fill.bin", 70);
    write(c1, PS, "data.bin", 40);
    c1.sh(&format!("zfs snapshot {PS}@big")).unwrap();
    let run = zfleet(backup, &f, &["backup"]);
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.to_ascii_lowercase().contains("space"),
        "{}",
        run.stderr
    );
    // zfs-fuse keeps a just-written file's mount busy for a moment.
    let mut freed = false;
    for _ in 0..50 {
        if backup.sh("zfs destroy -rf zstorage/filler").is_ok() {
            freed = true;
            break;
        }
        sleep(Duration::from_millis(200));
    }
    assert!(freed, "could not free the space");
    assert_recovers(c1, backup, &f, "out of space");
}

#[test]
fn the_base_is_held_on_both_sides_and_moves_only_after_a_confirmed_step() {
    let lab = seed_lab("base", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    c1.sh(&format!("zfs snapshot {PS}@a")).unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    let marked = |h: &Host, ds: &str| {
        h.sh(&format!(
            "zfs get -H -o name,value -r zfleet:base:backup {ds} | awk '$2 != \"-\" {{print $1}}'"
        ))
        .unwrap()
    };
    assert_eq!(marked(c1, PS).trim(), format!("{PS}@a"));
    assert_eq!(
        marked(backup, &target("client1")).trim(),
        format!("{}@a", target("client1"))
    );
    // A held base cannot be destroyed, by a pruner or by hand.
    let e = c1
        .sh(&format!("zfs destroy {PS}@a"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("dataset is busy"), "{e}");

    // A run that fails mid-stream leaves the old base marked.
    write(c1, PS, "x.bin", 10);
    c1.sh(&format!("zfs snapshot {PS}@b")).unwrap();
    let mut child = spawn_backup(backup, &f, &["--rate-limit", "2M", "--buffer", "1M"]);
    wait_for_process(backup, "^zfs receive");
    sleep(Duration::from_secs(1));
    backup.sh("pkill -9 -f '^zfs receive' || true").unwrap();
    assert!(!child.wait().unwrap().success());
    assert_eq!(marked(c1, PS).trim(), format!("{PS}@a"));
    // The next run moves it, and releases the old one.
    zfleet(backup, &f, &["backup"]).ok();
    assert_eq!(marked(c1, PS).trim(), format!("{PS}@b"));
    assert_eq!(
        marked(backup, &target("client1")).trim(),
        format!("{}@b", target("client1"))
    );
    c1.sh(&format!("zfs destroy {PS}@a")).unwrap();
}

fn fleet_with_server_options(lab: &Lab, options: &str) -> std::path::PathBuf {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    fleet(
        lab,
        &format!(
            "{}[hosts.client1.backup]\n{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n{options}\n",
            host_line(c1),
            host_line(backup)
        ),
    )
}

#[test]
fn sync_snapshots_are_per_server_and_clean_up_only_their_own() {
    let lab = seed_lab("syncsnap", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = fleet_with_server_options(&lab, "sync_snapshot = true");
    // Neither a policy snapshot nor another server's sync snapshot is touched.
    c1.sh(&format!(
        "zfs snapshot {PS}@mine && zfs snapshot {PS}@zfleet_sync_other_2020-01-01_00:00:00"
    ))
    .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    sleep(Duration::from_millis(1100));
    write(c1, PS, "n.bin", 1);
    zfleet(backup, &f, &["backup"]).ok();
    let src = snapshots(c1, PS);
    let ours: Vec<&String> = src
        .iter()
        .filter(|s| s.starts_with("zfleet_sync_backup_"))
        .collect();
    assert_eq!(ours.len(), 1, "{src:?}");
    assert!(
        src.contains(&"mine".to_string())
            && src.contains(&"zfleet_sync_other_2020-01-01_00:00:00".to_string()),
        "{src:?}"
    );
    let dst = snapshots(backup, &target("client1"));
    assert_eq!(
        dst.last(),
        ours.last().copied(),
        "the newest sync snapshot is the common base"
    );
    assert_eq!(
        dst.iter()
            .filter(|s| s.starts_with("zfleet_sync_backup_"))
            .count(),
        1,
        "{dst:?}"
    );
    assert_eq!(digest(c1, PS), digest(backup, &target("client1")));
}

#[test]
fn properties_are_preserved_and_recorded_for_restores() {
    let lab = seed_lab("props", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    c1.sh(&format!("zfs set compression=gzip {PS} && zfs set recordsize=65536 {PS} && zfs set com.example:note=keep-me {PS} && zfs snapshot {PS}@p")).unwrap();
    let run = zfleet(backup, &f, &["backup"]).ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let get = |p: &str| {
        backup
            .sh(&format!("zfs get -H -o value {p} {}", target("client1")))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(get("compression"), "gzip");
    assert_eq!(get("recordsize"), "64K");
    assert_eq!(get("zfleet:src:com.example:note"), "keep-me");
    // The client's own value is recorded, not applied: nothing on the server
    // acts on a client's user properties, and nothing mounts at the client's path.
    assert_eq!(get("com.example:note"), "-");
    assert!(
        get("zfleet:src:mountpoint").ends_with("/persist/save"),
        "{}",
        get("zfleet:src:mountpoint")
    );
    assert_eq!(get("zfleet:src:canmount"), "on");
}

#[test]
fn zstd_on_the_wire_moves_the_same_bytes() {
    let lab = seed_lab("zstd", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = fleet_with_server_options(&lab, "compress = \"zstd\"");
    let mp = mountpoint(c1, PS);
    // Compressible data: the wire carries much less than the stream.
    c1.sh(&format!(
        "yes zfleet | head -c 8M > '{mp}/text' && zfs snapshot {PS}@z1"
    ))
    .unwrap();
    let report = zfleet(backup, &f, &["backup", "--json"]).ok().json();
    assert_eq!(report["clients"][0]["jobs"][0]["outcome"], "sent");
    assert_eq!(digest(c1, PS), digest(backup, &target("client1")));
    c1.sh(&format!("echo more >> '{mp}/text' && zfs snapshot {PS}@z2"))
        .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    assert_eq!(snapshots(backup, &target("client1")), ["z1", "z2"]);
    assert_eq!(digest(c1, PS), digest(backup, &target("client1")));
    // A sender killed behind the compressor is still a failed run: its exit
    // status is carried past zstd's.
    write(c1, PS, "random.bin", 32);
    c1.sh(&format!("zfs snapshot {PS}@z3")).unwrap();
    let mut child = spawn_backup(backup, &f, &["--rate-limit", "2M", "--buffer", "1M"]);
    wait_for_process(c1, "^zfs send");
    sleep(Duration::from_millis(1000));
    c1.sh("pkill -9 -f '^zfs send' || true").unwrap();
    assert!(!child.wait().unwrap().success());
    assert_recovers(c1, backup, &f, "zstd sender killed");
}

#[test]
fn a_push_client_sends_its_own_backups_and_the_server_leaves_it_alone() {
    let lab = start(
        &LabSpec::new("push")
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_client("roamer"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(false),
    );
    let [c1, roamer, backup] = ["client1", "roamer", "backup"].map(|n| lab.host(n).unwrap());
    let f = fleet(
        &lab,
        &format!(
            "{}[hosts.client1.backup]\n{}[hosts.roamer.backup]\npush = true\n{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n",
            host_line(c1),
            host_line(roamer),
            host_line(backup)
        ),
    );
    for c in [c1, roamer] {
        write(c, PS, "d.bin", 2);
        c.sh(&format!("zfs snapshot {PS}@p1")).unwrap();
    }
    let check = zfleet(backup, &f, &["check"]).ok();
    assert!(check.stdout.contains("roamer:zroot/persistSave → zstorage/backups/roamer/zroot/persistSave (pushed by the client)"), "{}", check.stdout);
    // The server pulls client1 and leaves roamer to itself.
    let report = zfleet(backup, &f, &["backup", "--json"]).ok().json();
    let peers: Vec<&str> = report["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["client1"]);
    assert!(!exists(backup, &target("roamer")));
    let run = zfleet(backup, &f, &["backup", "roamer"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("`roamer` pushes its own backups to `backup`"),
        "{}",
        run.stderr
    );
    // The client pushes: full, then incremental.
    let report = zfleet(roamer, &f, &["backup", "--json"]).ok().json();
    assert_eq!(report["clients"][0]["client"], "backup");
    assert_eq!(report["clients"][0]["jobs"][0]["outcome"], "sent");
    assert_eq!(digest(roamer, PS), digest(backup, &target("roamer")));
    roamer.sh(&format!("zfs snapshot {PS}@p2")).unwrap();
    zfleet(roamer, &f, &["backup"]).ok();
    assert_eq!(snapshots(backup, &target("roamer")), ["p1", "p2"]);
    // client1 is pulled, so it has nothing to push.
    let run = zfleet(c1, &f, &["backup"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("neither a backup server nor a client that pushes"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_client_without_snapshots_yet_is_reported_and_the_run_succeeds() {
    let lab = seed_lab("nosnaps", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    let run = zfleet(backup, &f, &["backup"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("no snapshot yet"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("client1:zroot/persistSave has no snapshots to send yet"),
        "{}",
        run.stderr
    );
    c1.sh(&format!("zfs snapshot {PS}@first")).unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    assert_eq!(snapshots(backup, &target("client1")), ["first"]);
}

#[test]
fn pruning_the_common_snapshot_during_a_run_is_refused_and_the_chain_holds() {
    let lab = seed_lab("inflight", None);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = simple_fleet(&lab);
    c1.sh(&format!("zfs snapshot {PS}@a")).unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    write(c1, PS, "big.bin", 24);
    c1.sh(&format!("zfs snapshot {PS}@b")).unwrap();
    let mut child = spawn_backup(backup, &f, &["--rate-limit", "3M", "--buffer", "1M"]);
    wait_for_process(backup, "^zfs receive");
    // A pruner on the client goes for the common snapshot mid-stream: the
    // base hold stops it.
    let e = c1.sh(&format!("zfs destroy {PS}@a")).unwrap_err();
    assert!(format!("{e:#}").contains("dataset is busy"), "{e:#}");
    assert!(child.wait().unwrap().success());
    assert_eq!(snapshots(backup, &target("client1")), ["a", "b"]);
    // Now @b is the base and @a can go; the next run is incremental from @b.
    c1.sh(&format!("zfs destroy {PS}@a && zfs snapshot {PS}@c"))
        .unwrap();
    let r = zfleet(backup, &f, &["backup", "--json"]).ok().json();
    assert_eq!(
        r["clients"][0]["jobs"][0]["steps"][0],
        "incremental @b → @c with every snapshot in between"
    );
}
