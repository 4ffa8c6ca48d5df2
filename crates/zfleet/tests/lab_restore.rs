//! Restores over real ssh between lab hosts: a reinstalled client gets its
//! data back byte for byte and backups continue; data is never overwritten
//! unasked; migration to another host; single files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{
    host_line, mountpoint, snapshots, ssh_fleet as fleet, start, zfleet, zfleet_bin, zfleet_in_tz,
};
use zfleet_lab::sim::{Host, HostSpec, Lab, LabSpec};

const PS: &str = "zroot/persistSave";
const P: &str = "zroot/persist";

fn target(client: &str, ds: &str) -> String {
    format!("zstorage/backups/{client}/{ds}")
}

fn prop(h: &Host, p: &str, ds: &str) -> String {
    h.sh(&format!("zfs get -H -o value {p} {ds}"))
        .unwrap()
        .trim()
        .to_string()
}

fn datasets(h: &Host) -> Vec<String> {
    h.sh("zfs list -H -o name -r zroot")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Type, path, mode, owner, group, mtime, size, links and symlink target of
/// everything below `dir`, then the sha256 of every file.
fn manifest_of(h: &Host, dir: &str) -> String {
    h.sh(&format!(
        "cd '{dir}' && find . -printf '%y\\t%p\\t%m %U %G %T@ %s %n %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
    ))
    .unwrap()
}

fn manifest(h: &Host, ds: &str) -> String {
    manifest_of(h, &mountpoint(h, ds))
}

/// client1 and client2 as the seed's reinstalled machines would be (every
/// dataset with an `@empty`), and a backup server.
fn lab(name: &str, servers: &[&str]) -> Lab {
    let mut spec = LabSpec::new(name)
        .host(HostSpec::seed_client_full("client1"))
        .host(HostSpec::seed_client_full("client2"))
        .faketime(false);
    for s in servers {
        spec = spec.host(HostSpec::seed_backup(*s));
    }
    start(&spec)
}

/// client1 backs up both persist datasets to every server.
fn seed_fleet(lab: &Lab, servers: &[&str]) -> PathBuf {
    let mut body = String::new();
    for c in ["client1", "client2"] {
        let h = lab.host(c).unwrap();
        body.push_str(&host_line(h));
        body.push_str(&format!(
            "[hosts.{c}.backup]\ndatasets = [\"{P}\", \"{PS}\"]\n"
        ));
    }
    for s in servers {
        body.push_str(&host_line(lab.host(s).unwrap()));
        body.push_str(&format!(
            "[hosts.{s}.server]\ntarget_root = \"zstorage/backups\"\n"
        ));
    }
    fleet(lab, &body)
}

/// Files of several sizes, modes and owners, a symlink, a dangling one, a
/// hard link, a name with a space, directories with their own modes and
/// times. Everything gets a fixed mtime, so "times kept" is a real check.
fn populate(h: &Host, ds: &str) {
    let mp = mountpoint(h, ds);
    h.sh(&format!(
        r#"set -e
cd '{mp}'
: > empty
printf x > one-byte
head -c 100000 /dev/urandom > hundred-k
head -c 3M /dev/urandom > three-m
echo secret > private && chmod 600 private && chown 1234:5678 private
echo tool > setuid && chmod 4755 setuid
echo dash > ./-dash
mkdir -p 'with space/inner' shared && chmod 1777 shared && chown 65534:65534 'with space'
echo deep > 'with space/inner/f' && chmod 640 'with space/inner/f'
ln -s one-byte link && ln -s missing dangling && ln three-m hard
touch -h -d '2021-03-04 05:06:07' link dangling
find . -mindepth 1 ! -type l -exec touch -d '2022-01-02 03:04:05' {{}} +
touch -d '2020-06-07 08:09:10' . 'with space'
"#
    ))
    .unwrap();
}

/// The client snapshots, then the server backs up; returns the report.
fn snapshot_and_backup(client: &Host, server: &Host, f: &Path, snap: &str) -> serde_json::Value {
    client
        .sh(&format!(
            "zfs snapshot {P}@{snap} && zfs snapshot {PS}@{snap}"
        ))
        .unwrap();
    zfleet(server, f, &["backup", "--json"]).ok().json()
}

fn assert_no_backup_side_properties(h: &Host, ds: &str) {
    let local = h
        .sh(&format!(
            "zfs get -H -o property,value -s local,received all {ds}"
        ))
        .unwrap();
    assert!(
        !local.contains("zfleet:src:") && !local.contains("readonly"),
        "{ds} carries the backup's properties:\n{local}"
    );
    assert_eq!(prop(h, "readonly", ds), "off");
    assert_eq!(prop(h, "zfleet:restoring", ds), "-");
}

#[test]
fn a_reinstalled_client_gets_everything_back_and_backups_continue() {
    let started = Instant::now();
    let lab = lab("rcycle", &["backup"]);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = seed_fleet(&lab, &["backup"]);
    populate(c1, PS);
    populate(c1, P);
    c1.sh(&format!("zfs set com.example:note=keep-me {PS}"))
        .unwrap();
    snapshot_and_backup(c1, backup, &f, "a");
    c1.sh(&format!(
        "echo later > '{}/later' && touch -d '2022-01-02 03:04:05' '{}/later'",
        mountpoint(c1, PS),
        mountpoint(c1, PS)
    ))
    .unwrap();
    snapshot_and_backup(c1, backup, &f, "b");
    let before_ps = manifest(c1, PS);
    let before_p = manifest(c1, P);
    assert!(before_ps.contains("l\t./link\t777 0 0 ") && before_ps.contains(" one-byte"));

    // The disk dies; the machine is reinstalled with the same layout.
    c1.reinstall_pool("zroot").unwrap();
    assert_eq!(snapshots(c1, PS), ["empty"]);
    assert_eq!(manifest(c1, PS).lines().count(), 1, "fresh and empty");

    // One command, run on the reinstalled host itself as the admin.
    let dry = zfleet(c1, &f, &["restore", "client1", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(dry["datasets"][0]["outcome"], "planned");
    assert_eq!(dry["datasets"][1]["plan"]["disposition"], "replace_fresh");
    assert_eq!(snapshots(c1, PS), ["empty"], "a dry run changes nothing");
    let t = Instant::now();
    let run = zfleet(c1, &f, &["restore", "client1"]).ok();
    let restore_secs = t.elapsed().as_secs_f64();
    assert!(
        run.stdout.contains(
            "backups of client1:zroot/persistSave to backup continue incrementally from @b"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(manifest(c1, PS), before_ps, "every file identical");
    assert_eq!(manifest(c1, P), before_p);
    assert_eq!(snapshots(c1, PS), ["b"]);
    // The client's properties are back, the backup's are not; the fresh
    // datasets are gone and no temporary one is left.
    assert_eq!(prop(c1, "com.example:note", PS), "keep-me");
    assert!(mountpoint(c1, PS).ends_with("/persist/save"));
    assert_eq!(
        c1.sh(&format!("zfs get -H -o source mountpoint {PS}"))
            .unwrap()
            .trim(),
        "local"
    );
    assert_no_backup_side_properties(c1, PS);
    assert_no_backup_side_properties(c1, P);
    assert!(
        !datasets(c1).iter().any(|d| d.contains("zfleet")),
        "{:?}",
        datasets(c1)
    );
    // Held as the base, so pruning cannot take it before the next backup.
    assert_eq!(prop(c1, "userrefs", &format!("{PS}@b")), "1");

    // The next backup is incremental: a few KiB, not the data again.
    c1.sh(&format!("echo new > '{}/new'", mountpoint(c1, PS)))
        .unwrap();
    let report = snapshot_and_backup(c1, backup, &f, "c");
    for job in report["clients"][0]["jobs"].as_array().unwrap() {
        assert_eq!(job["outcome"], "sent", "{job}");
        assert!(job["bytes"].as_u64().unwrap() < 200_000, "{job}");
    }
    assert_eq!(
        snapshots(backup, &target("client1", PS)),
        ["empty", "a", "b", "c"]
    );
    // And snapshots go on as before; the base moved to @c.
    c1.sh(&format!("zfs snapshot {PS}@d")).unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    assert_eq!(
        snapshots(backup, &target("client1", PS)),
        ["empty", "a", "b", "c", "d"]
    );
    assert_eq!(prop(c1, "userrefs", &format!("{PS}@b")), "0");
    // Running it again finds nothing to do.
    let again = zfleet(
        c1,
        &f,
        &[
            "restore",
            "client1",
            "--dataset",
            PS,
            "--snapshot",
            "d",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(again["datasets"][0]["outcome"], "already_there");
    eprintln!(
        "timing: full cycle {:.1}s, restore of two datasets {restore_secs:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn data_is_never_overwritten_unasked_and_force_can_be_undone() {
    let lab = lab("rforce", &["backup"]);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = seed_fleet(&lab, &["backup"]);
    populate(c1, PS);
    snapshot_and_backup(c1, backup, &f, "a");
    c1.sh(&format!("echo v2 > '{}/one-byte'", mountpoint(c1, PS)))
        .unwrap();
    snapshot_and_backup(c1, backup, &f, "b");
    // The client moved on and has data the backup does not.
    c1.sh(&format!("echo precious > '{}/unsaved'", mountpoint(c1, PS)))
        .unwrap();
    let before = manifest(c1, PS);
    let snaps_before = snapshots(c1, PS);

    let run = zfleet(
        backup,
        &f,
        &["restore", "client1", "--dataset", PS, "--snapshot", "a"],
    );
    assert_eq!(run.code, 5, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "client1:zroot/persistSave holds data: 3 snapshots, newest @b, files such as"
        ),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains("--force keeps it as zroot/persistSave-zfleet-before-restore-"));
    assert_eq!(manifest(c1, PS), before, "nothing changed");
    assert_eq!(snapshots(c1, PS), snaps_before);

    // Not found: a snapshot name, a server that has no copy.
    let run = zfleet(backup, &f, &["restore", "client1", "--snapshot", "nope"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("has a snapshot @nope (looked on backup)")
            && run.stderr.contains("backup: @b @a @empty"),
        "{}",
        run.stderr
    );
    let run = zfleet(backup, &f, &["restore", "client1", "--from", "client2"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("`client2` is not a backup server"),
        "{}",
        run.stderr
    );

    // --force: the old data is snapshotted and kept aside; the undo works.
    let forced = zfleet(
        backup,
        &f,
        &[
            "restore",
            "client1",
            "--dataset",
            PS,
            "--snapshot",
            "a",
            "--force",
        ],
    )
    .ok();
    assert!(
        forced.stdout.contains("will be refused as diverged"),
        "an older snapshot says what it means for the next backup:\n{}",
        forced.stdout
    );
    assert_eq!(snapshots(c1, PS), ["a"]);
    let kept = datasets(c1)
        .into_iter()
        .find(|d| d.starts_with("zroot/persistSave-zfleet-before-restore-"))
        .expect("the old dataset is kept");
    let stamp = kept.rsplit('-').next().unwrap().to_string();
    assert!(snapshots(c1, &kept).contains(&format!("zfleet_before_restore_{stamp}")));
    assert_eq!(prop(c1, "canmount", &kept), "noauto");
    assert_eq!(prop(c1, "mounted", &kept), "no");
    assert_eq!(prop(c1, "mounted", PS), "yes");
    assert!(!manifest(c1, PS).contains("unsaved"));
    // The next backup is refused (the server has @b, newer than @a) and the
    // server loses nothing.
    let run = zfleet(backup, &f, &["backup", "client1"]);
    assert_eq!(run.code, 5);
    assert_eq!(
        snapshots(backup, &target("client1", PS)),
        ["empty", "a", "b"]
    );

    // Undo, with the commands it printed.
    let undo: Vec<String> = forced
        .stdout
        .lines()
        .skip_while(|l| !l.contains("to undo this restore, on client1:"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .collect();
    assert!(undo.len() >= 4, "{}", forced.stdout);
    for line in &undo {
        sh_retrying(c1, line);
    }
    assert_eq!(
        manifest(c1, PS),
        before,
        "the undo brings the old data back"
    );
    assert_eq!(snapshots(c1, PS), snaps_before);
}

/// A command a user would type, tried again while zfs-fuse still holds the
/// just-written file system busy.
fn sh_retrying(h: &Host, line: &str) {
    for _ in 0..50 {
        match h.sh(line) {
            Ok(_) => return,
            Err(e) if format!("{e:#}").contains("busy") => sleep(Duration::from_millis(200)),
            Err(e) => panic!("{line}: {e:#}"),
        }
    }
    panic!("{line}: still busy");
}

#[test]
fn migration_to_another_host_and_files_back_in_place() {
    let lab = lab("rmigrate", &["backup"]);
    let [c1, c2, backup] = ["client1", "client2", "backup"].map(|n| lab.host(n).unwrap());
    let f = seed_fleet(&lab, &["backup"]);
    populate(c1, PS);
    snapshot_and_backup(c1, backup, &f, "a");
    let before = manifest(c1, PS);

    // Next to client2's own data, under a new name: the mountpoint client1
    // used is client2's persistSave's, so it is not taken.
    let run = zfleet(
        backup,
        &f,
        &[
            "restore",
            "client1",
            "--dataset",
            PS,
            "--to",
            "client2:zroot/restored",
        ],
    )
    .ok();
    assert!(
        run.stdout.contains("already mounts there"),
        "{}",
        run.stdout
    );
    assert_eq!(snapshots(c2, "zroot/restored"), ["a"]);
    assert_eq!(prop(c2, "zfleet:base:backup", "zroot/restored@a"), "-");
    c2.sh("zfs set mountpoint=/srv/restored zroot/restored")
        .unwrap();
    assert_eq!(manifest(c2, "zroot/restored"), before);
    assert_no_backup_side_properties(c2, "zroot/restored");

    // Single files: a deleted file, a deleted directory tree's deepest file
    // (its parents come back as they were, nothing else of theirs), a
    // changed file (refused, then forced), and one written elsewhere.
    let mp = mountpoint(c1, PS);
    c1.sh(&format!(
        "cd '{mp}' && rm private ./-dash && rm -r 'with space' && echo changed > one-byte && echo mine > three-m.note"
    ))
    .unwrap();
    let path = |p: &str| format!("{mp}/{p}");
    zfleet(c1, &f, &["restore", "client1", "--path", &path("private")]).ok();
    zfleet(c1, &f, &["restore", "client1", "--path", &path("-dash")]).ok();
    zfleet(
        c1,
        &f,
        &["restore", "client1", "--path", &path("with space/inner/f")],
    )
    .ok();
    let line = |m: &str, p: &str| {
        m.lines()
            .find(|l| l.split('\t').nth(1) == Some(p))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{p} not in\n{m}"))
    };
    let now = manifest(c1, PS);
    for p in [
        "./private",
        "./-dash",
        "./with space",
        "./with space/inner",
        "./with space/inner/f",
    ] {
        assert_eq!(line(&now, p), line(&before, p), "{p}");
    }
    assert!(now.contains("./three-m.note"), "nothing else touched");
    let run = zfleet(c1, &f, &["restore", "client1", "--path", &path("one-byte")]);
    assert_eq!(run.code, 5, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("exists; restoring would overwrite it"),
        "{}",
        run.stderr
    );
    assert_eq!(
        c1.sh(&format!("cat '{}'", path("one-byte"))).unwrap(),
        "changed\n"
    );
    zfleet(
        c1,
        &f,
        &["restore", "client1", "--path", &path("one-byte"), "--force"],
    )
    .ok();
    assert_eq!(
        line(&manifest(c1, PS), "./one-byte"),
        line(&before, "./one-byte")
    );
    assert!(snapshots(c1, PS)
        .iter()
        .any(|s| s.starts_with("zfleet_before_restore_")));
    zfleet(
        backup,
        &f,
        &[
            "restore",
            "client1",
            "--path",
            &path("three-m"),
            "--into",
            "/run/restored",
        ],
    )
    .ok();
    assert_eq!(
        c1.sh("sha256sum < /run/restored/three-m").unwrap(),
        c1.sh(&format!("sha256sum < '{}'", path("three-m")))
            .unwrap()
    );
    // Nothing is left on the server from reading the snapshot.
    assert!(!backup
        .sh("zfs list -H -o name -r zstorage")
        .unwrap()
        .contains("zfleet-files"));
}

#[test]
fn at_picks_the_snapshot_from_that_time_and_from_picks_the_server() {
    let lab = lab("rat", &["backup", "backup2"]);
    let [c1, backup, backup2] = ["client1", "backup", "backup2"].map(|n| lab.host(n).unwrap());
    let f = seed_fleet(&lab, &["backup", "backup2"]);
    populate(c1, PS);
    snapshot_and_backup(c1, backup, &f, "a");
    sleep(Duration::from_millis(2100));
    snapshot_and_backup(c1, backup, &f, "b");
    sleep(Duration::from_millis(2100));
    snapshot_and_backup(c1, backup, &f, "c");
    let list = zfleet(
        c1,
        &f,
        &["restore", "client1", "--list", "--json", "--dataset", PS],
    )
    .ok()
    .json();
    let servers = list["datasets"][0]["servers"].as_array().unwrap();
    assert_eq!(servers[0]["state"], "copy");
    assert_eq!(servers[1]["state"], "no_copy", "backup2 never ran");
    let created = |n: &str| {
        servers[0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()["creation"]
            .as_i64()
            .unwrap()
    };
    let (b, c) = (created("b"), created("c"));
    assert!(c > b + 1);
    let rfc = |t: i64| {
        jiff::Timestamp::from_second(t)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let chosen = |args: &[&str]| {
        let mut a = vec!["restore", "client1", "--dataset", PS, "--dry-run", "--json"];
        a.extend_from_slice(args);
        let r = zfleet(c1, &f, &a).json();
        r["datasets"][0]["choice"]["snapshot"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(chosen(&["--at", &rfc(b)]), "b");
    assert_eq!(chosen(&["--at", &rfc(c - 1)]), "b");
    assert_eq!(chosen(&["--at", &rfc(c)]), "c");
    assert_eq!(chosen(&[]), "c");
    // Local time, as people type it (the zfleet process's zone: UTC here).
    let local = jiff::Timestamp::from_second(b)
        .unwrap()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string();
    let out = c1
        .command(zfleet_bin())
        .env("TZ", "UTC")
        .args(["--config"])
        .arg(&f)
        .args(["--host", "client1", "restore", "client1", "--dataset", PS])
        .args(["--dry-run", "--json", "--at", &local])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["datasets"][0]["choice"]["snapshot"]["name"], "b");
    let run = zfleet(c1, &f, &["restore", "client1", "--at", "2001-01-01 00:00"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("the oldest is @empty on backup"),
        "{}",
        run.stderr
    );

    // A server that has no copy, asked for by name.
    let run = zfleet(c1, &f, &["restore", "client1", "--from", "backup2"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("backup2 has no zstorage/backups/client1/zroot/persistSave"),
        "{}",
        run.stderr
    );
    // Once it has one, it is the server with the newest copy only if it is.
    zfleet(backup2, &f, &["backup"]).ok();
    let r = zfleet(
        c1,
        &f,
        &[
            "restore",
            "client1",
            "--dry-run",
            "--json",
            "--from",
            "backup2",
        ],
    )
    .json();
    assert_eq!(r["datasets"][1]["choice"]["server"], "backup2");
    let _ = backup2;
}

#[test]
fn an_interrupted_restore_leaves_the_destination_as_it_was() {
    let lab = lab("rkill", &["backup"]);
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = seed_fleet(&lab, &["backup"]);
    let mp = mountpoint(c1, PS);
    c1.sh(&format!("head -c 24M /dev/urandom > '{mp}/big'"))
        .unwrap();
    snapshot_and_backup(c1, backup, &f, "a");
    let before = manifest(c1, PS);
    c1.reinstall_pool("zroot").unwrap();
    let child = c1
        .command(zfleet_bin())
        .arg("--config")
        .arg(&f)
        .args(["--host", "client1", "restore", "client1", "--dataset", PS])
        .args(["--rate-limit", "3M", "--buffer", "1M"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30)
        && c1
            .sh("pgrep -f '^zfs receive' >/dev/null && echo y || echo n")
            .unwrap()
            .trim()
            != "y"
    {
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_millis(1500));
    c1.sh("pkill -9 -f '^zfs receive' || true").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The fresh dataset is untouched and nothing half-received is left.
    assert_eq!(snapshots(c1, PS), ["empty"]);
    assert_eq!(prop(c1, "mounted", PS), "yes");
    assert!(
        !datasets(c1).iter().any(|d| d.contains("zfleet")),
        "{:?}",
        datasets(c1)
    );
    zfleet(c1, &f, &["restore", "client1", "--dataset", PS]).ok();
    assert_eq!(manifest(c1, PS), before);
}

#[test]
fn with_two_servers_a_lagging_one_continues_too() {
    let lab = lab("rtwo", &["backup", "backup2"]);
    let [c1, backup, backup2] = ["client1", "backup", "backup2"].map(|n| lab.host(n).unwrap());
    let f = seed_fleet(&lab, &["backup", "backup2"]);
    populate(c1, PS);
    c1.sh(&format!("zfs snapshot {PS}@a")).unwrap();
    zfleet(backup, &f, &["backup", "client1"]).ok();
    zfleet(backup2, &f, &["backup", "client1"]).ok();
    // backup2 is a day behind.
    c1.sh(&format!(
        "echo b > '{}/b' && zfs snapshot {PS}@b",
        mountpoint(c1, PS)
    ))
    .unwrap();
    zfleet(backup, &f, &["backup", "client1"]).ok();
    let before = manifest(c1, PS);
    c1.reinstall_pool("zroot").unwrap();

    let run = zfleet(c1, &f, &["restore", "client1", "--dataset", PS]).ok();
    assert!(
        run.stdout.contains("backups of client1:zroot/persistSave to backup2 continue incrementally from @a (restored too)"),
        "{}",
        run.stdout
    );
    assert_eq!(manifest(c1, PS), before);
    assert_eq!(snapshots(c1, PS), ["a", "b"]);
    assert_ne!(prop(c1, "zfleet:base:backup2", &format!("{PS}@a")), "-");
    assert_ne!(prop(c1, "zfleet:base:backup", &format!("{PS}@b")), "-");
    // Both servers continue incrementally.
    c1.sh(&format!(
        "echo c > '{}/c' && zfs snapshot {PS}@c",
        mountpoint(c1, PS)
    ))
    .unwrap();
    for server in [backup, backup2] {
        // (zroot/persist was reinstalled but not restored: its backup is
        // refused, which is not what this test is about.)
        let r = zfleet(server, &f, &["backup", "client1", "--json"]).json();
        let job = r["clients"][0]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["source"].as_str().unwrap().ends_with(PS))
            .unwrap()
            .clone();
        assert_eq!(job["outcome"], "sent", "{}: {job}", server.name());
        assert!(job["bytes"].as_u64().unwrap() < 200_000, "{job}");
    }
    assert_eq!(
        snapshots(backup2, &target("client1", PS)),
        ["empty", "a", "b", "c"]
    );
}

#[test]
fn snapshots_and_pruning_resume_after_a_restore() {
    let lab = start(
        &LabSpec::new("rresume")
            .host(HostSpec::seed_client_full("client1").faketime(true))
            .host(HostSpec::seed_backup("backup")),
    );
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = fleet(
        &lab,
        &format!(
            "[templates.two]\nfrequently = 0\nhourly = 2\ndaily = 0\nweekly = 0\nmonthly = 0\nyearly = 0\n\n{}[hosts.client1.backup]\ndatasets = [\"{PS}\"]\n[hosts.client1.snapshots.\"{PS}\"]\nuse_template = [\"two\"]\n{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n",
            host_line(c1),
            host_line(backup)
        ),
    );
    let hourlies = || -> Vec<String> {
        snapshots(c1, PS)
            .into_iter()
            .filter(|s| s.starts_with("autosnap_") && s.ends_with("_hourly"))
            .collect()
    };
    // 2026-01-10 10:05 UTC, then every three hours: with `hourly = 2`
    // (sanoid's rule: older than 2 h and more than 2 left) pruning is plain.
    let t0 = 1_768_039_500;
    let at = |h: i64| c1.set_time(t0 + h * 3600).unwrap();
    populate(c1, PS);
    at(0);
    zfleet_in_tz(c1, &f, Some("UTC"), &["run"]).ok();
    zfleet(backup, &f, &["backup"]).ok();
    let restored = hourlies().last().unwrap().clone();

    c1.reinstall_pool("zroot").unwrap();
    // The new install's snapshot timer runs before anyone restores: the
    // dataset is still fresh (its snapshots are empty), and kept aside.
    at(1);
    zfleet_in_tz(c1, &f, Some("UTC"), &["run"]).ok();
    assert_eq!(hourlies().len(), 1);
    let run = zfleet_in_tz(c1, &f, Some("UTC"), &["restore", "client1"]).ok();
    assert!(
        run.stdout.contains("fresh: 2 empty snapshots")
            && run
                .stdout
                .contains("is kept as zroot/persistSave-zfleet-fresh-"),
        "{}",
        run.stdout
    );
    assert_eq!(hourlies(), std::slice::from_ref(&restored));
    // The runs take snapshots as before. The restored one is the backup's
    // base, and what came after is not replicated yet: both stay.
    for h in [3, 6, 9] {
        at(h);
        zfleet_in_tz(c1, &f, Some("UTC"), &["run"]).ok();
    }
    let now = hourlies();
    assert_eq!(now.len(), 4, "{now:?}");
    assert_eq!(now[0], restored, "the base is not pruned");
    let r = zfleet(backup, &f, &["backup", "--json"]).ok().json();
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "sent", "{job}");
    assert_eq!(job["snapshots"], 3, "{job}");
    assert!(job["bytes"].as_u64().unwrap() < 200_000, "{job}");
    // With the base moved on, pruning is sanoid's again.
    at(12);
    zfleet_in_tz(c1, &f, Some("UTC"), &["run"]).ok();
    let now = hourlies();
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(!now.contains(&restored), "{now:?}");
    c1.reset_time().unwrap();
}
