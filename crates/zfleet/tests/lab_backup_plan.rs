//! `zfleet backup --dry-run`: every job's plan, in words and as JSON, from a
//! real server and client; nothing changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{host_line, snapshots, ssh_fleet, start, zfleet};
use zfleet_lab::sim::{DatasetSpec, HostSpec, LabSpec, PoolSpec};

const PS: &str = "zroot/persistSave";
const TARGET: &str = "zstorage/backups/client1/zroot/persistSave";

#[test]
fn a_dry_run_prints_each_jobs_plan_and_changes_nothing() {
    let lab = start(
        &LabSpec::new("plan")
            .host(HostSpec::seed_client("client1"))
            .host(
                HostSpec::new("backup")
                    .pool(PoolSpec::new("zstorage").dataset(DatasetSpec::new("zstorage/backups"))),
            )
            .faketime(false),
    );
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let f = ssh_fleet(
        &lab,
        &format!(
            "{}[hosts.client1.backup]\n{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n",
            host_line(c1),
            host_line(backup)
        ),
    );
    // A first send, planned.
    c1.sh(&format!("zfs snapshot {PS}@a")).unwrap();
    let r = zfleet(backup, &f, &["backup", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(r["dry_run"], true);
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "planned", "{job}");
    assert_eq!(job["client"], "client1");
    assert_eq!(job["dataset"], PS);
    assert_eq!(job["plan"]["decision"], "send", "{job}");
    assert_eq!(job["plan"]["base"], serde_json::Value::Null);
    assert_eq!(job["plan"]["steps"][0]["step"], "full");
    assert_eq!(job["plan"]["steps"][0]["snapshot"]["name"], "a");
    assert!(
        snapshots(backup, TARGET).is_empty(),
        "a dry run sends nothing"
    );

    zfleet(backup, &f, &["backup"]).ok();
    c1.sh(&format!("zfs snapshot {PS}@b && zfs snapshot {PS}@c"))
        .unwrap();
    let guid = |s: &str| -> u64 {
        c1.sh(&format!("zfs get -H -p -o value guid {PS}@{s}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let r = zfleet(backup, &f, &["backup", "--dry-run", "--json"])
        .ok()
        .json();
    let plan = &r["clients"][0]["jobs"][0]["plan"];
    assert_eq!(plan["base"]["name"], "a", "{plan}");
    assert_eq!(plan["base"]["guid"], guid("a"), "{plan}");
    let step = &plan["steps"][0];
    assert_eq!(step["step"], "incremental", "{plan}");
    assert_eq!(step["from"]["name"], "a");
    assert_eq!(step["to"]["name"], "c");
    assert_eq!(step["to"]["guid"], guid("c"));
    assert_eq!(step["intermediates"], true);
    assert_eq!(step["snapshots"], 2);
    assert_eq!(plan["new_base"]["name"], "c");
    let moves: Vec<&str> = plan["base_moves"]["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["move"].as_str().unwrap())
        .collect();
    assert_eq!(moves, ["mark", "hold", "release", "unmark"], "{plan}");

    // The same plan in words.
    let run = zfleet(backup, &f, &["backup", "--dry-run"]).ok();
    for line in [
        "client1:zroot/persistSave → backup:zstorage/backups/client1/zroot/persistSave",
        "  common base: @a (guid ",
        "  1. incremental @a → @c with every snapshot in between (2 snapshots)",
        "  then @c is the base",
        "  on client1: mark @c as the base, hold @c, release @a, unmark @a",
        "dry run: nothing was changed",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in:\n{}", run.stdout);
    }
    assert_eq!(snapshots(backup, TARGET), ["a"], "a dry run sends nothing");
    let marked = c1
        .sh(&format!(
            "zfs get -H -o name,value -r zfleet:base:backup {PS} | awk '$2 != \"-\" {{print $1}}'"
        ))
        .unwrap();
    assert_eq!(marked.trim(), format!("{PS}@a"), "nor moves a base");
}
