//! The simulated-host lab against the real thing: zfs-fuse, sshd, namespaces.
//! Needs root; fails (does not skip) without it.

// A test crate: its helpers fail the test loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use zfleet_lab::sim::{DatasetSpec, Host, HostSpec, Lab, LabSpec, PoolSpec};

fn start(spec: &LabSpec) -> Lab {
    common::require_lab();
    Lab::start(spec).unwrap_or_else(|e| panic!("lab did not start: {e:?}"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// Runs `ssh from → to` with the lab's key and strict host key checking.
fn ssh(from: &Host, to: &Host, remote: &str) -> anyhow::Result<String> {
    from.run(from.ssh(to).arg(remote))
}

#[test]
fn seed_lab_hosts_have_their_own_pools_names_and_ssh() {
    common::require_lab();
    let started = Instant::now();
    let lab = start(&LabSpec::seed());
    eprintln!(
        "seed lab (3 hosts) up in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let c1 = lab.host("client1").unwrap();
    let c2 = lab.host("client2").unwrap();
    let backup = lab.host("backup").unwrap();

    assert_eq!(lab.host_names(), ["client1", "client2", "backup"]);
    for h in lab.hosts() {
        assert_eq!(h.sh("hostname").unwrap().trim(), h.name());
        // The lab's subnet is all a host can reach: no default route, no uplink.
        assert_eq!(
            h.sh("ip -4 route").unwrap().trim(),
            format!(
                "10.231.0.0/24 dev eth0 proto kernel scope link src {}",
                h.addr()
            )
        );
    }
    for c in [c1, c2] {
        assert_eq!(lines(&c.sh("zpool list -H -o name").unwrap()), ["zroot"]);
        assert_eq!(
            lines(&c.sh("zfs list -H -o name").unwrap()),
            ["zroot", "zroot/persist", "zroot/persistSave"]
        );
    }
    assert_eq!(
        lines(&backup.sh("zpool list -H -o name").unwrap()),
        ["zstorage"]
    );
    assert_eq!(
        lines(&backup.sh("zfs list -H -o name").unwrap()),
        ["zstorage", "zstorage/backups"]
    );

    // Same pool name, separate pools: a file and a snapshot on client1 only.
    c1.sh("echo one > \"$(zfs get -H -o value mountpoint zroot/persist)/f\" && zfs snapshot zroot/persist@only1")
        .unwrap();
    assert!(c2.sh("zfs list -H -t snapshot -o name").unwrap().is_empty());
    let persist = c1.altroot().join("persist/f");
    assert!(
        persist.starts_with(c1.dir()),
        "mounts stay below the host dir"
    );
    let seen = std::fs::read_to_string(c1.ns_path(&persist)).unwrap();
    assert_eq!(seen, "one\n");
    assert!(!c2.ns_path(&persist).exists());

    let before = backup.ssh_connections().unwrap();
    assert_eq!(ssh(c1, backup, "hostname").unwrap().trim(), "backup");
    assert_eq!(ssh(backup, c1, "hostname").unwrap().trim(), "client1");
    assert_eq!(
        ssh(c2, backup, "zfs list -H -o name zstorage/backups")
            .unwrap()
            .trim(),
        "zstorage/backups"
    );
    assert_eq!(backup.ssh_connections().unwrap(), before + 2);

    // Inside the lab, root's own ssh setup is the lab's: names resolve through
    // the host's /etc/hosts and host keys are checked against known_hosts.
    let out = c2
        .sh("ssh -o BatchMode=yes -o StrictHostKeyChecking=yes client1 'hostname; getent hosts backup'")
        .unwrap();
    assert_eq!(lines(&out)[0], "client1");
    assert!(out.contains(&format!("{} ", backup.addr())), "{out}");

    // A host key that does not match is refused.
    let wrong = c1.dir().join("wrong_known_hosts");
    let kh = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let c2_key = kh.lines().find(|l| l.starts_with("client2,")).unwrap();
    let key = c2_key.split_once(' ').unwrap().1;
    std::fs::write(&wrong, format!("backup,{} {key}\n", backup.addr())).unwrap();
    let err = c1
        .run(c1.command("ssh").args([
            "-i",
            lab.user_key().to_str().unwrap(),
            "-o",
            &format!("UserKnownHostsFile={}", wrong.display()),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "backup",
            "true",
        ]))
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err:#}"
    );

    lab.teardown().unwrap();
}

#[test]
fn faketime_moves_snapshot_creation_and_date_together() {
    let lab = start(&LabSpec::seed());
    let c1 = lab.host("client1").unwrap();
    let backup = lab.host("backup").unwrap();
    let creation = |snap: &str| -> i64 {
        c1.sh(&format!("zfs get -H -p -o value creation {snap}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let near = |got: i64, want: i64| assert!((got - want).abs() <= 1, "got {got}, want {want} ± 1");

    let t1 = 1_600_000_000; // 2020-09-13
    c1.set_time(t1).unwrap();
    c1.sh("zfs snapshot zroot/persist@t1").unwrap();
    near(creation("zroot/persist@t1"), t1);
    near(c1.sh("date +%s").unwrap().trim().parse().unwrap(), t1);
    // Over ssh the session gets the same clock (sshd's SetEnv).
    near(
        ssh(backup, c1, "date +%s").unwrap().trim().parse().unwrap(),
        t1,
    );
    // Other hosts keep theirs.
    let (before, got, after) = (now(), backup.sh("date +%s").unwrap(), now());
    let got: i64 = got.trim().parse().unwrap();
    assert!(
        before - 1 <= got && got <= after + 1,
        "{before} <= {got} <= {after}"
    );

    let t2 = t1 + 3 * 3600 + 17;
    c1.set_time(t2).unwrap();
    c1.sh("zfs snapshot zroot/persist@t2").unwrap();
    near(creation("zroot/persist@t2"), t2);
    assert!(creation("zroot/persist@t2") > creation("zroot/persist@t1"));

    // The clock keeps running after set_time.
    std::thread::sleep(Duration::from_millis(2100));
    let later: i64 = c1.sh("date +%s").unwrap().trim().parse().unwrap();
    assert!(later >= t2 + 2 && later <= t2 + 4, "{later}");

    // Backwards works too, and the daemon keeps going.
    c1.set_time(t1 - 86_400).unwrap();
    c1.sh("zfs snapshot zroot/persist@t0").unwrap();
    near(creation("zroot/persist@t0"), t1 - 86_400);

    // A frozen clock: zfs-fuse keeps working, every snapshot gets the same time.
    c1.freeze_time(t1 + 7).unwrap();
    c1.sh("zfs snapshot zroot/persist@f1; sleep 1.2; echo x > \"$(zfs get -H -o value mountpoint zroot/persist)/x\"; zfs snapshot zroot/persist@f2").unwrap();
    assert_eq!(creation("zroot/persist@f1"), t1 + 7);
    assert_eq!(creation("zroot/persist@f2"), t1 + 7);

    c1.reset_time().unwrap();
    let (before, got, after) = (now(), c1.sh("date +%s").unwrap(), now());
    let got: i64 = got.trim().parse().unwrap();
    assert!(
        before - 1 <= got && got <= after + 1,
        "{before} <= {got} <= {after}"
    );
    lab.teardown().unwrap();
}

#[test]
fn a_pulled_cable_makes_ssh_fail_and_plugging_it_back_restores_it() {
    let lab = start(&LabSpec::seed());
    let c1 = lab.host("client1").unwrap();
    let c2 = lab.host("client2").unwrap();
    let backup = lab.host("backup").unwrap();
    assert_eq!(ssh(backup, c1, "hostname").unwrap().trim(), "client1");

    c1.link_down().unwrap();
    let t = Instant::now();
    let err = ssh(backup, c1, "hostname").unwrap_err();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(15), "ssh took {took:?} to fail");
    assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    // Only that host is cut off.
    assert_eq!(ssh(backup, c2, "hostname").unwrap().trim(), "client2");

    c1.link_up().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ssh(backup, c1, "hostname") {
            Ok(out) => {
                assert_eq!(out.trim(), "client1");
                break;
            }
            Err(e) if Instant::now() > deadline => panic!("ssh did not come back: {e:#}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    lab.teardown().unwrap();
}

#[test]
fn zfs_fuse_crash_and_restart_keeps_the_pool() {
    let spec = LabSpec::new("crash").host(
        HostSpec::new("solo").pool(
            PoolSpec::new("tank").vdev_size(128 << 20).dataset(
                DatasetSpec::new("tank/a/b")
                    .property("compression", "on")
                    .snapshot("s"),
            ),
        ),
    );
    let lab = start(&spec);
    let h = lab.host("solo").unwrap();
    assert_eq!(
        lines(&h.sh("zfs list -H -t all -o name").unwrap()),
        ["tank", "tank/a", "tank/a/b", "tank/a/b@s"]
    );
    assert_eq!(
        h.sh("zfs get -H -o value compression tank/a/b")
            .unwrap()
            .trim(),
        "on"
    );
    // SIGKILL loses what is not in a synced txg (zfs-fuse syncs every ~30 s and
    // fsync does not help); a snapshot waits for its txg to sync.
    h.sh("echo kept > \"$(zfs get -H -o value mountpoint tank/a/b)/f\"; zfs snapshot tank/a/b@synced")
        .unwrap();

    h.kill_zfs().unwrap();
    assert!(h.sh("zfs list").is_err(), "zfs answers without its daemon");
    h.start_zfs().unwrap();
    // A second crash with nested mounts, which must be cleared parents first.
    h.kill_zfs().unwrap();
    h.start_zfs().unwrap();
    assert_eq!(
        h.sh("cat \"$(zfs get -H -o value mountpoint tank/a/b)/f\"")
            .unwrap(),
        "kept\n"
    );
    assert_eq!(
        h.sh("zfs get -H -o value mounted tank/a/b").unwrap().trim(),
        "yes"
    );
    lab.teardown().unwrap();
}

#[test]
fn accounts_keys_and_sshd_restarts_stay_on_their_host() {
    let lab = start(&LabSpec::seed());
    let c1 = lab.host("client1").unwrap();
    let backup = lab.host("backup").unwrap();

    // A restricted backup account on client1 only.
    c1.add_user("syncoid").unwrap();
    assert!(backup.sh("id syncoid").is_err());
    assert!(
        std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .all(|l| !l.starts_with("syncoid:")),
        "useradd in a host changed the machine's /etc/passwd"
    );
    let key = backup.dir().join("syncoid_key");
    backup
        .sh(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {}",
            key.display()
        ))
        .unwrap();
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    c1.authorize_key(
        "syncoid",
        &format!(
            "command=\"echo forced:$SSH_ORIGINAL_COMMAND\",restrict {}",
            public.trim()
        ),
    )
    .unwrap();
    let out = backup
        .run(
            backup
                .ssh_as(c1, "syncoid", &key)
                .arg("zfs destroy zroot/persist"),
        )
        .unwrap();
    assert_eq!(out.trim(), "forced:zfs destroy zroot/persist");
    assert!(backup
        .run(backup.ssh_as(c1, "root", &key).arg("true"))
        .is_err());

    // sshd stop/start.
    c1.stop_sshd().unwrap();
    let err = ssh(backup, c1, "true").unwrap_err();
    assert!(format!("{err:#}").contains("refused"), "{err:#}");
    c1.start_sshd().unwrap();
    assert_eq!(ssh(backup, c1, "hostname").unwrap().trim(), "client1");
    lab.teardown().unwrap();
}

#[test]
fn labs_in_parallel_do_not_see_each_other() {
    let a = start(&LabSpec::new("para").host(HostSpec::seed_client("h")));
    let b = start(&LabSpec::new("para").host(HostSpec::seed_client("h")));
    assert_ne!(a.dir(), b.dir());
    let (ha, hb) = (a.host("h").unwrap(), b.host("h").unwrap());
    assert_eq!(ha.addr(), hb.addr(), "each lab has its own switch");
    ha.sh("zfs snapshot zroot/persist@in-a").unwrap();
    assert!(hb.sh("zfs list -H -t snapshot -o name").unwrap().is_empty());
    a.teardown().unwrap();
    assert_eq!(hb.sh("hostname").unwrap().trim(), "h");
    b.teardown().unwrap();
}

#[test]
fn bad_specs_fail_before_anything_starts() {
    common::require_lab();
    let err = Lab::start(&LabSpec::new("bad").host(HostSpec::new("a b")))
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("host name `a b`"), "{err:#}");
}
