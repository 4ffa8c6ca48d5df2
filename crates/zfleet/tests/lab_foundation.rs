//! The foundation against real parts: the fleet file, the ZFS layer and ssh,
//! run by the `zfleet` binary inside lab hosts (zfs-fuse + sshd in namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fleet_file, start, zfleet};
use zfleet_core::config::SshEndpoint;
use zfleet_core::exec::{Argv, ExecError, RunOptions, SshSessions};
use zfleet_core::host::Host;
use zfleet_lab::sim::LabSpec;

#[test]
fn list_reads_every_host_over_one_ssh_connection_each() {
    let lab = start(&LabSpec::seed().faketime(false));
    let fleet = fleet_file(&lab, "");
    let (c1, c2, backup) = (
        lab.host("client1").unwrap(),
        lab.host("client2").unwrap(),
        lab.host("backup").unwrap(),
    );
    c1.sh("zfs snapshot zroot/persistSave@one && zfs snapshot zroot/persistSave@two")
        .unwrap();
    c2.sh("zfs snapshot zroot/persist@only").unwrap();
    let before = [c1.ssh_connections().unwrap(), c2.ssh_connections().unwrap()];

    let run = zfleet(backup, &fleet, &["list", "--json"]).ok();
    let v = run.json();
    let hosts = v.as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    let names = |h: &serde_json::Value| -> Vec<String> {
        h["pools"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p["objects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["name"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let c1_names = names(&hosts[0]);
    assert!(
        c1_names.contains(&"zroot/persistSave@one".to_string()),
        "{c1_names:?}"
    );
    assert!(c1_names.contains(&"zroot/persistSave@two".to_string()));
    assert!(names(&hosts[1]).contains(&"zroot/persist@only".to_string()));
    assert!(names(&hosts[2]).contains(&"zstorage/backups".to_string()));
    assert_eq!(hosts[0]["zfs"], "ZFS pool version 23 (zfs-fuse dialect)");

    // Probe, pool list and listing all rode on one connection per client; the
    // backup server itself was asked locally.
    let after = [c1.ssh_connections().unwrap(), c2.ssh_connections().unwrap()];
    assert_eq!([after[0] - before[0], after[1] - before[1]], [1, 1]);

    // The human form shows the same.
    let human = zfleet(backup, &fleet, &["list", "--snapshots", "client1"]).ok();
    assert!(
        human
            .stdout
            .contains("client1 (ZFS pool version 23 (zfs-fuse dialect))"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("@two"), "{}", human.stdout);
}

/// Words with spaces, quotes, `$()`, `;`, newlines either arrive exactly through
/// sshd and the remote login shell, or are refused before anything runs.
#[test]
fn remote_command_lines_round_trip_or_are_refused() {
    let lab = start(&LabSpec::seed().faketime(false));
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let words = [
        "plain",
        "with space",
        "it's",
        "\"double\"",
        "$(touch /tmp/zfleet-pwned)",
        "`touch /tmp/zfleet-pwned`",
        "a;touch /tmp/zfleet-pwned",
        "a && b || c",
        "line1\nline2",
        "",
        "~root",
        "*",
        "#not-a-comment",
        "back\\slash",
        "ünïcödé",
    ];
    let endpoint = SshEndpoint {
        address: c1.addr().to_string(),
        user: Some("root".into()),
        port: 22,
        identity: Some(lab.user_key().to_path_buf()),
        known_hosts: Some(lab.known_hosts().to_path_buf()),
        connect_timeout: Duration::from_secs(5),
    };
    let before = c1.ssh_connections().unwrap();
    let (echoed, refused) = backup
        .with_network(|| {
            let host = Host::ssh("client1", &endpoint, SshSessions::new().unwrap());
            let refused = host.endpoint().run(
                &Argv::new("printf").arg("%s").arg("nul\0byte"),
                &RunOptions::default(),
            );
            let out = host
                .endpoint()
                .run(
                    &Argv::new("printf").arg("%s\\0").args(words),
                    &RunOptions::timeout(Duration::from_secs(30)),
                )
                .unwrap();
            (out.stdout, refused)
        })
        .unwrap();
    let got: Vec<String> = echoed
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect();
    let mut want: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    want.push(String::new());
    assert_eq!(got, want);
    assert!(!c1.ns_path("/tmp/zfleet-pwned").exists());
    match refused {
        Err(ExecError::Refused { host, reason }) => {
            assert_eq!(host, "client1");
            assert!(reason.contains("NUL byte"), "{reason}");
        }
        other => panic!("a NUL byte must be refused before running: {other:?}"),
    }
    // The refusal came before the connection: only the printf connected.
    assert_eq!(c1.ssh_connections().unwrap() - before, 1);
}

#[test]
fn a_host_that_does_not_answer_fails_in_time_with_its_name() {
    let lab = start(&LabSpec::seed().faketime(false));
    let backup = lab.host("backup").unwrap();
    let c2 = lab.host("client2").unwrap();
    // An address in the lab's subnet that nobody has, and a host whose cable is pulled.
    let ghost = {
        let o = backup.addr().octets();
        format!("{}.{}.{}.250", o[0], o[1], o[2])
    };
    let fleet = fleet_file(
        &lab,
        &format!("[hosts.ghost]\naddress = \"{ghost}\"\nconnect_timeout = \"2s\"\n"),
    );

    let started = Instant::now();
    let run = zfleet(backup, &fleet, &["list", "ghost"]);
    let took = started.elapsed();
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ghost: FAILED"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("host `ghost` (root@{ghost}:22) did not answer")),
        "{}",
        run.stdout
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");

    c2.link_down().unwrap();
    let started = Instant::now();
    let run = zfleet(backup, &fleet, &["list", "client1", "client2"]);
    assert_eq!(run.code, 4);
    assert!(run.stdout.contains("client2: FAILED"), "{}", run.stdout);
    assert!(run.stdout.contains("host `client2`"), "{}", run.stdout);
    // The other host is listed all the same.
    assert!(run.stdout.contains("zroot/persistSave"), "{}", run.stdout);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn check_prints_the_expanded_plan_for_the_lab_fleet() {
    let lab = start(&LabSpec::seed().faketime(false));
    let fleet = fleet_file(&lab, "");
    let backup = lab.host("backup").unwrap();
    let run = zfleet(backup, &fleet, &["check"]).ok();
    assert!(
        run.stdout
            .contains("client1:zroot/persistSave → zstorage/backups/client1/zroot/persistSave"),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .contains("client2:zroot/persistSave → zstorage/backups/client2/zroot/persistSave"));
    let json = zfleet(backup, &fleet, &["check", "--json"]).ok().json();
    assert_eq!(json["servers"][0]["jobs"].as_array().unwrap().len(), 2);
    let _ = Arc::new(());
}
