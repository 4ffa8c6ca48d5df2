//! Remote commands per job, counted by the client's sshd: an incremental of
//! an up-to-date job costs the client its stream and one command (the base
//! move with the property read), besides the one listing per client. On
//! OpenZFS the size estimate (`zfs send -nvP`) adds one more; zfs-fuse has
//! none. A round trip that comes back shows here, as root over ssh and
//! through `zfleet serve`. A first backup's commands on the server are
//! counted too (from its `-vv` log): `readonly=on` rides in the base moves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{
    host_line, mountpoint, served_fleet_file, snapshots, ssh_fleet, start, zfleet, zfleet_bin,
};
use zfleet_lab::sim::{Host, HostSpec, Lab, LabSpec};

const DATASETS: [&str; 3] = ["zroot/persist", "zroot/persistSave", "zroot/extra"];

/// Remote commands an incremental dataset may cost besides its stream, on
/// zfs-fuse (no size estimate). Before the property read was folded into the
/// base move it was 2.
const PER_DATASET: usize = 1;

/// The server's own commands for a dataset's first backup besides its
/// stream: its target listing and its parent's, the base moves (after
/// `readonly=on`) with the property read, and the property writes. Before
/// `readonly=on` rode in the base moves it was 5.
const FULL_PER_DATASET: usize = 4;

/// The server's own commands of a first backup whatever the datasets: the
/// probe, the listing of the target root, and the two parents it creates
/// with one more listing (the first dataset looks two levels up).
const FULL_FIXED: usize = 5;

fn lab(name: &str) -> Lab {
    let lab = start(
        &LabSpec::new(name)
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(false),
    );
    lab.host("client1")
        .unwrap()
        .sh("zfs create -o mountpoint=/extra zroot/extra")
        .unwrap();
    lab
}

fn datasets_line() -> String {
    let quoted: Vec<String> = DATASETS.iter().map(|d| format!("\"{d}\"")).collect();
    format!("datasets = [{}]\n", quoted.join(", "))
}

/// A new snapshot `@name` of every dataset, each with a MiB of new data.
fn change_all(c1: &Host, name: &str) {
    for ds in DATASETS {
        let mp = mountpoint(c1, ds);
        c1.sh(&format!(
            "head -c 1M /dev/urandom > '{mp}/{name}.bin' && zfs snapshot {ds}@{name}"
        ))
        .unwrap();
    }
}

fn digest(h: &Host, ds: &str) -> String {
    let mp = mountpoint(h, ds);
    h.sh(&format!(
        "cd '{mp}' && find . -xdev -type f | sort | xargs -r sha256sum"
    ))
    .unwrap()
}

/// Runs a backup; returns its JSON report and the sessions the client's
/// sshd started meanwhile.
fn counted_backup(c1: &Host, backup: &Host, fleet: &Path) -> (serde_json::Value, usize) {
    let before = c1.ssh_sessions().unwrap();
    let report = zfleet(backup, fleet, &["backup", "--json"]).ok().json();
    (report, c1.ssh_sessions().unwrap() - before)
}

fn outcomes(report: &serde_json::Value) -> Vec<String> {
    report["clients"][0]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["outcome"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Full, no-change and incremental runs; the incremental's sessions beyond
/// the no-change run's (the per-client listing and probe) are its streams
/// and per-dataset commands.
fn check_round_trips(lab: &Lab, fleet: &Path, log: impl Fn() -> String) {
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    change_all(c1, "s1");
    let run = zfleet(backup, fleet, &["-vv", "backup", "--json"]).ok();
    let full = run.json();
    assert_eq!(outcomes(&full), ["sent"; 3], "{full}");
    // Every command zfleet runs is logged at -vv; the server's are `local`.
    let own: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("DEBUG local:"))
        .collect();
    eprintln!(
        "server commands of the first backup of {} datasets: {}",
        DATASETS.len(),
        own.len()
    );
    assert!(
        !own.iter().any(|l| l.contains("local: zfs set readonly=on")),
        "readonly=on of a full receive ran on its own:\n{}",
        own.join("\n")
    );
    assert!(
        own.len() <= FULL_FIXED + DATASETS.len() * FULL_PER_DATASET,
        "the first backup of {} datasets took the server {} commands of its own, at most {} wanted:\n{}",
        DATASETS.len(),
        own.len(),
        FULL_FIXED + DATASETS.len() * FULL_PER_DATASET,
        own.join("\n")
    );
    let (same, fixed) = counted_backup(c1, backup, fleet);
    assert_eq!(outcomes(&same), ["up_to_date"; 3], "{same}");
    change_all(c1, "s2");
    let (incr, total) = counted_backup(c1, backup, fleet);
    assert_eq!(outcomes(&incr), ["sent"; 3], "{incr}");
    for ds in DATASETS {
        let target = format!("zstorage/backups/client1/{ds}");
        assert_eq!(snapshots(backup, &target), ["s1", "s2"], "{target}");
        assert_eq!(digest(c1, ds), digest(backup, &target), "{target}");
    }
    let per_dataset = total.saturating_sub(fixed) as f64 / DATASETS.len() as f64 - 1.0;
    eprintln!(
        "remote commands: no-change run {fixed}, incremental run {total} for {} datasets: {per_dataset:.2} per dataset besides its stream",
        DATASETS.len()
    );
    assert!(
        total <= fixed + DATASETS.len() * (1 + PER_DATASET),
        "the incremental of {} datasets took {total} remote commands, the no-change run {fixed}: \
         {per_dataset:.2} per dataset besides the stream, at most {PER_DATASET} wanted\n{}",
        DATASETS.len(),
        log()
    );
}

#[test]
fn an_incremental_costs_the_client_its_stream_and_one_command_as_root() {
    let lab = lab("trips-root");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let fleet = ssh_fleet(
        &lab,
        &format!(
            "{}[hosts.client1.backup]\n{}{}[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\n",
            host_line(c1),
            datasets_line(),
            host_line(backup)
        ),
    );
    check_round_trips(&lab, &fleet, String::new);
}

/// A fleet whose server pulls as the `zfleet` account, set up by `grant --apply`.
fn served_fleet(lab: &Lab) -> PathBuf {
    let (fleet, _) = served_fleet_file(lab, "", &datasets_line());
    let backup = lab.host("backup").unwrap();
    let bin = zfleet_bin().display().to_string();
    let config = fleet.display().to_string();
    zfleet(
        backup,
        &fleet,
        &[
            "grant",
            "client1",
            "--apply",
            "--zfleet-path",
            &bin,
            "--config-path",
            &config,
        ],
    )
    .ok();
    fleet
}

#[test]
fn an_incremental_costs_the_client_its_stream_and_one_command_through_serve() {
    let lab = lab("trips-serve");
    let fleet = served_fleet(&lab);
    let c1 = lab.host("client1").unwrap();
    check_round_trips(&lab, &fleet, || {
        c1.sh("tail -n 40 /var/log/zfleet/serve.log")
            .unwrap_or_default()
    });
    // Every request was serve's: none ran as root behind its back.
    let log = c1.sh("cat /var/log/zfleet/serve.log").unwrap();
    assert!(log.contains("allowed request=\"zfs send"), "{log}");
    assert!(!log.contains("refused"), "{log}");
}
