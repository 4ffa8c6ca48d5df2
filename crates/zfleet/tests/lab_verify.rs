//! `zfleet verify` on real zfs-fuse pools over real ssh: a healthy backup
//! passes quick and content; a change on the client after the snapshot is
//! no difference; damage in the server's vdev is found and named while the
//! other files are still compared; a snapshot replaced by a same-named one
//! fails quick; a drill restores, compares, times and leaves nothing, also
//! after it was killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{host_line, mountpoint, ssh_fleet, start, zfleet, zfleet_bin, Run};
use zfleet_lab::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

const PS: &str = "zroot/persistSave";
const TARGET: &str = "zstorage/backups/client1/zroot/persistSave";

fn lab(name: &str) -> Lab {
    start(
        &LabSpec::new(name)
            .host(HostSpec::seed_client("client1"))
            .host(
                HostSpec::new("backup").pool(
                    PoolSpec::new("zstorage")
                        .vdev_size(512 << 20)
                        .dataset(DatasetSpec::new("zstorage/backups")),
                ),
            )
            .faketime(false),
    )
}

fn fleet(lab: &Lab) -> PathBuf {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    ssh_fleet(
        lab,
        &format!(
            "[fleet]\nzfleet_path = \"{}\"\n{}[hosts.client1.backup]\n{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n",
            zfleet_bin().display(),
            host_line(c1),
            host_line(backup)
        ),
    )
}

/// A tree with every kind of thing the comparison looks at.
fn populate(c1: &Host) {
    let mp = mountpoint(c1, PS);
    c1.sh(&format!(
        r#"cd '{mp}' && mkdir -p etc home/alice && echo 'root:x:0:0' > etc/passwd
           head -c 3M /dev/urandom > home/alice/photo.bin
           echo secret > home/alice/key && chmod 600 home/alice/key && chown 1234:4321 home/alice/key
           ln -s ../etc/passwd home/link && ln etc/passwd etc/passwd.hard
           touch -d '2020-01-02 03:04:05' etc/passwd"#
    ))
    .unwrap();
}

fn verify(backup: &Host, f: &Path, args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let run = zfleet(backup, f, &all);
    let json = run.json();
    (run, json)
}

fn check<'a>(job: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    job["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {job}"))
}

fn datasets(h: &Host) -> String {
    h.sh("zfs list -H -o name -r zstorage").unwrap()
}

fn backed_up_and_scrubbed(lab: &Lab) -> (&Host, &Host, PathBuf) {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    populate(c1);
    c1.sh(&format!("zfs snapshot {PS}@s1")).unwrap();
    let f = fleet(lab);
    zfleet(backup, &f, &["backup"]).ok();
    backup.sh("zpool scrub zstorage && sleep 1").unwrap();
    (c1, backup, f)
}

#[test]
fn a_healthy_backup_passes_quick_and_content_and_later_changes_on_the_client_are_no_difference() {
    let lab = lab("verify-healthy");
    let (c1, backup, f) = backed_up_and_scrubbed(&lab);

    let (run, r) = verify(backup, &f, &["--level", "quick"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let job = &r["jobs"][0];
    for c in ["guid", "send", "scrub", "base"] {
        assert_eq!(check(job, c)["ok"], true, "{c}: {job}");
    }
    assert!(check(job, "guid")["detail"]
        .as_str()
        .unwrap()
        .starts_with("newest backup snapshot @s1 is the source's s1"));

    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let content = &r["jobs"][0]["content"];
    // Root, etc, passwd, passwd.hard, home, alice, photo.bin, key, link.
    assert_eq!(content["entries"], 9, "{content}");
    assert_eq!(content["checksummed"], 4, "every file read on both hosts");
    assert_eq!(content["differing"], 0);
    assert!(content["bytes_checksummed"].as_u64().unwrap() > 3 << 20);

    // Changed after the snapshot: the live files are not what is compared.
    let mp = mountpoint(c1, PS);
    c1.sh(&format!(
        "echo changed >> '{mp}/etc/passwd' && rm '{mp}/home/alice/key' && chmod 700 '{mp}/home'"
    ))
    .unwrap();
    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["jobs"][0]["content"]["differing"], 0);
    assert_eq!(r["jobs"][0]["snapshot"], "s1");

    // --sample 50: two runs read disjoint halves that together are every file.
    let read: Vec<u64> = (0..2)
        .map(|_| {
            let (run, r) = verify(backup, &f, &["--level", "content", "--sample", "50"]);
            assert_eq!(run.code, 0, "{}", run.stdout);
            assert_eq!(r["jobs"][0]["content"]["entries"], 9, "metadata of all");
            r["jobs"][0]["content"]["checksummed"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(read.iter().sum::<u64>(), 4, "{read:?}");
    let buckets: Vec<String> = backup
        .sh("sqlite3 /var/lib/zfleet/state.db 'select runs from verify_rotation'")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(buckets, ["2"]);

    // Recorded per job and level; status shows it.
    let rows = backup
        .sh("sqlite3 /var/lib/zfleet/state.db \"select level, ok, checked from verifications order by id\"")
        .unwrap();
    assert_eq!(rows.lines().next(), Some("quick|1|0"), "{rows}");
    assert!(rows.contains("content|1|4"), "{rows}");

    let status = zfleet(backup, &f, &["status", "--json"]).json();
    let row = &status["servers"][0]["rows"][0];
    assert_eq!(row["verify"]["last_verified_level"], "content", "{row}");
    assert!(row["verify"]["failing"].is_null(), "{row}");

    // Only the snapshot's temporary clones were made, and they are gone.
    assert!(!datasets(backup).contains("zfleet-verify"));
    assert!(!c1
        .sh("zfs list -H -o name")
        .unwrap()
        .contains("zfleet-verify"));
}

#[test]
fn damage_in_the_servers_vdev_is_found_and_named_and_the_other_files_are_still_checked() {
    let lab = lab("verify-damage");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    populate(c1);
    let mp = mountpoint(c1, PS);
    // Random data is stored as it is (compression cannot shrink it), so a
    // piece of it can be found in the server's vdev.
    c1.sh(&format!("head -c 4M /dev/urandom > '{mp}/victim.bin'"))
        .unwrap();
    let needle = base64::engine::general_purpose::STANDARD
        .decode(
            c1.sh(&format!(
                "dd if='{mp}/victim.bin' bs=4096 skip=512 count=1 2>/dev/null | head -c 64 | base64 -w0"
            ))
            .unwrap()
            .trim(),
        )
        .unwrap();
    c1.sh(&format!("zfs snapshot {PS}@s1")).unwrap();
    let f = fleet(&lab);
    zfleet(backup, &f, &["backup"]).ok();

    // Out of the cache, then overwrite 64 KiB where the piece lies.
    let vdev = backup.dir().join("vdev/zstorage.img");
    let reimport = format!(
        "zpool export zstorage && zpool import -d '{}' -R '{}' zstorage",
        backup.dir().join("vdev").display(),
        backup.altroot().display()
    );
    backup.sh(&reimport).unwrap();
    let image = std::fs::read(&vdev).unwrap();
    let at = image
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("the file's data is in the server's vdev");
    assert_eq!(
        image[at + 1..]
            .windows(needle.len())
            .filter(|w| *w == needle.as_slice())
            .count(),
        0,
        "one copy of it"
    );
    drop(image);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut v = std::fs::OpenOptions::new().write(true).open(&vdev).unwrap();
        v.seek(SeekFrom::Start((at as u64 / 512) * 512)).unwrap();
        v.write_all(&vec![0x5a; 64 << 10]).unwrap();
    }
    backup.sh(&reimport).unwrap();

    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    let content = &r["jobs"][0]["content"];
    assert_eq!(
        (content["damaged"].as_u64(), content["differing"].as_u64()),
        (Some(1), Some(1)),
        "{content}"
    );
    let d = &content["differences"][0];
    assert_eq!(d["path"], "/victim.bin");
    assert_eq!(d["what"], "unreadable");
    assert_eq!(d["on"], "copy");
    assert!(
        d["error"].as_str().unwrap().contains("Input/output error"),
        "{d}"
    );
    // Every other file was read on both hosts and matched.
    assert_eq!(content["entries"], 10);
    assert_eq!(content["checksummed"], 4);
    // The table names it too, and the state database keeps it.
    let human = zfleet(backup, &f, &["verify", "--level", "content"]);
    assert_eq!(human.code, 6);
    assert!(
        human
            .stdout
            .contains("content: /victim.bin: unreadable on the copy: Input/output error"),
        "{}",
        human.stdout
    );
    let rows = backup
        .sh("sqlite3 /var/lib/zfleet/state.db \"select ok, damaged, error from verifications where level = 'content'\"")
        .unwrap();
    assert!(
        rows.starts_with("0|1|") && rows.contains("/victim.bin"),
        "{rows}"
    );
}

#[test]
fn a_snapshot_replaced_by_a_same_named_one_fails_quick() {
    let lab = lab("verify-replaced");
    let (c1, backup, f) = backed_up_and_scrubbed(&lab);
    let guid = |h: &Host, s: &str| {
        h.sh(&format!("zfs get -H -p -o value guid {s}"))
            .unwrap()
            .trim()
            .to_string()
    };
    let (old, backup_guid) = (
        guid(c1, &format!("{PS}@s1")),
        guid(backup, &format!("{TARGET}@s1")),
    );
    assert_eq!(old, backup_guid);
    c1.sh(&format!(
        "zfs release zfleet:base:backup {PS}@s1 2>/dev/null; zfs destroy {PS}@s1 && zfs snapshot {PS}@s1"
    ))
    .unwrap();
    let new = guid(c1, &format!("{PS}@s1"));
    assert_ne!(new, old);
    let (run, r) = verify(backup, &f, &["--level", "quick"]);
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    let job = &r["jobs"][0];
    let g = check(job, "guid");
    assert_eq!(g["ok"], false);
    assert_eq!(
        g["detail"],
        format!("the backup's newest snapshot @s1 has guid {backup_guid}, but the source's @s1 has guid {new}: they are different snapshots")
    );
    assert_eq!(
        check(job, "base")["ok"],
        false,
        "the base is gone from the source too"
    );
    assert_eq!(check(job, "scrub")["ok"], true);
}

#[test]
fn a_drill_restores_compares_and_times_and_leaves_nothing_also_when_killed() {
    let lab = lab("verify-drill");
    let (c1, backup, f) = backed_up_and_scrubbed(&lab);
    let before = datasets(backup);

    let (run, r) = verify(backup, &f, &["--level", "drill"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let d = &r["jobs"][0]["drill"];
    assert_eq!(d["dataset"], "zstorage/zfleet-drill/client1/persistSave");
    assert_eq!(d["removed"], true);
    assert!(d["seconds"].as_f64().unwrap() > 0.0);
    assert!(d["bytes"].as_u64().unwrap() > 3 << 20, "{d}");
    assert_eq!(d["comparison"]["differing"], 0);
    assert_eq!(d["comparison"]["checksummed"], 4);
    assert_eq!(datasets(backup), before, "nothing left behind");
    let rows = backup
        .sh("sqlite3 /var/lib/zfleet/state.db \"select ok, drill_seconds > 0, drill_bytes > 3000000 from verifications where level = 'drill'\"")
        .unwrap();
    assert_eq!(rows.trim(), "1|1|1");
    let status = zfleet(backup, &f, &["status", "--json"]).json();
    let v = &status["servers"][0]["rows"][0]["verify"];
    assert!(v["drill_seconds"].as_f64().unwrap() > 0.0, "{v}");

    // Killed mid-restore: what it left is recognised and removed next time.
    let mp = mountpoint(c1, PS);
    c1.sh(&format!(
        "head -c 96M /dev/urandom > '{mp}/big.bin' && zfs snapshot {PS}@s2"
    ))
    .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    let mut child = backup
        .command(zfleet_bin())
        .args(["--config"])
        .arg(&f)
        .args(["--host", "backup", "verify", "--level", "drill"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !backup
        .sh("zfs list -H -o name -r zstorage")
        .unwrap()
        .contains("zfleet-drill/client1/")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the drill never started receiving"
        );
        sleep(Duration::from_millis(50));
    }
    // The zfleet inside the host, not the nsenter that started it: its
    // children are left as a SIGKILL leaves them.
    backup
        .sh("pkill -9 -f '[z]fleet .*verify --level drill' || true")
        .unwrap();
    child.wait().unwrap();
    sleep(Duration::from_secs(1));
    assert!(
        datasets(backup).contains("zstorage/zfleet-drill"),
        "the kill left something"
    );
    let (run, r) = verify(backup, &f, &["--level", "drill"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(r["jobs"][0]["drill"]["snapshot"], "s2");
    assert_eq!(datasets(backup), before, "the next run cleaned up");
}

#[test]
fn content_through_the_serve_account_reads_only_the_backed_up_snapshot() {
    let lab = start(
        &LabSpec::new("verify-serve")
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(false),
    );
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let key = lab.dir().join("backup_key");
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "zfleet@backup", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let f = lab.dir().join("fleet.toml");
    std::fs::write(
        &f,
        format!(
            "[fleet]\nbackup_user = \"zfleet\"\nbackup_identity = \"{}\"\nzfleet_path = \"{}\"\n\
             [ssh]\nuser = \"root\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n\
             [hosts.client1]\naddress = \"{}\"\n[hosts.client1.backup]\n\
             [hosts.backup]\naddress = \"{}\"\n[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\npublic_key = \"{}\"\n",
            key.display(),
            zfleet_bin().display(),
            lab.user_key().display(),
            lab.known_hosts().display(),
            c1.addr(),
            backup.addr(),
            public.trim()
        ),
    )
    .unwrap();
    let (bin_s, f_s) = (zfleet_bin().display().to_string(), f.display().to_string());
    zfleet(
        backup,
        &f,
        &[
            "grant",
            "client1",
            "--apply",
            "--zfleet-path",
            &bin_s,
            "--config-path",
            &f_s,
        ],
    )
    .ok();
    populate(c1);
    c1.sh(&format!(
        "zfs snapshot {PS}@s1 && zfs snapshot zroot/persist@other"
    ))
    .unwrap();
    zfleet(backup, &f, &["backup"]).ok();
    backup.sh("zpool scrub zstorage && sleep 1").unwrap();

    let (run, r) = verify(backup, &f, &["--level", "content"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let content = &r["jobs"][0]["content"];
    assert_eq!(
        (content["entries"].as_u64(), content["checksummed"].as_u64()),
        (Some(9), Some(4)),
        "{content}"
    );
    let log = c1.sh("cat /var/log/zfleet/serve.log").unwrap();
    assert!(
        log.contains(&format!(
            "allowed request=\"zfleet checksum {PS}@s1 --sample 0/1\""
        )),
        "{log}"
    );
    // The backup key cannot have another dataset's files listed.
    let out = backup
        .ssh_as(c1, "zfleet", &key)
        .arg("zfleet checksum zroot/persist@other --sample 0/1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(out.stdout.is_empty(), "nothing listed");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("zroot/persist@other"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!c1
        .sh("zfs list -H -o name")
        .unwrap()
        .contains("zfleet-verify"));
}
