//! `zfleet disks` on zfs-fuse (lab hosts, file vdevs): the seed's layout
//! without what zfs-fuse lacks (LUKS, the ESP, edonr, zstd, autotrim) planned
//! and applied from empty files, a second file attached as a mirror, and an
//! existing pool adopted: imported, kept, its properties set, missing
//! datasets created, `@empty` taken only where a dataset is still empty.
//! zfleet runs on `admin` and lays out `alpha` over ssh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{host_line, ssh_fleet, start, zfleet};
use zfleet_lab::sim::{Host, HostSpec, LabSpec};

fn lab() -> zfleet_lab::sim::Lab {
    start(
        &LabSpec::new("disks")
            .host(HostSpec::new("admin"))
            .host(HostSpec::new("alpha")),
    )
}

/// A 128 MiB sparse file on `alpha`, for a vdev.
fn vdev(alpha: &Host, name: &str) -> String {
    let path = alpha.dir().join(name).display().to_string();
    alpha.sh(&format!("truncate -s 128M {path}")).unwrap();
    path
}

/// The seed's layout, less what zfs-fuse cannot do.
const LAB_LAYOUT: &str = r#"
[layouts.lab]
from = "seed"
encryption = "none"
esp_size = "0"
reservation = "16M"
pool_options = { ashift = "inherit", autotrim = "inherit" }
root_options = { checksum = "sha256", compression = "gzip", dnodesize = "inherit", relatime = "inherit" }
"#;

fn get(h: &Host, props: &str, target: &str) -> String {
    h.sh(&format!(
        "zfs get -H -p -o name,property,value {props} {target}"
    ))
    .unwrap()
}

#[test]
fn the_seed_layout_on_empty_file_vdevs_then_a_mirror() {
    let lab = lab();
    let (admin, alpha) = (lab.host("admin").unwrap(), lab.host("alpha").unwrap());
    let (a, b) = (vdev(alpha, "vdev-a.img"), vdev(alpha, "vdev-b.img"));
    let write = |disks: &str| {
        ssh_fleet(
            &lab,
            &format!(
                "{LAB_LAYOUT}\n{}{}\n[hosts.alpha.pools.zroot]\nlayout = \"lab\"\n{disks}\n",
                host_line(admin),
                host_line(alpha)
            ),
        )
    };
    let fleet = write(&format!("disks = [\"{a}\"]"));

    let run = zfleet(admin, &fleet, &["disks", "plan", "alpha", "--json"]).ok();
    let plan = run.json();
    let actions: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    // No partitions on a file: the pool, six datasets, and for five of them
    // @empty, its hold and its record.
    assert_eq!(actions[0], "create_pool", "{plan}");
    assert_eq!(actions.len(), 1 + 6 + 5 * 3, "{plan}");
    assert!(alpha.sh("zpool list -H -o name").unwrap().trim().is_empty());

    let run = zfleet(admin, &fleet, &["disks", "apply", "alpha"]).ok();
    assert!(
        run.stdout.ends_with("alpha: 22 changes\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        get(alpha, "checksum,compression,normalization,canmount,mountpoint,com.sun:auto-snapshot", "zroot"),
        "zroot\tchecksum\tsha256\nzroot\tcompression\tgzip\nzroot\tnormalization\tformD\nzroot\tcanmount\toff\nzroot\tmountpoint\tnone\nzroot\tcom.sun:auto-snapshot\tfalse\n"
    );
    assert_eq!(
        get(alpha, "canmount,mountpoint,reservation", "zroot/reserved"),
        format!("zroot/reserved\tcanmount\toff\nzroot/reserved\tmountpoint\tnone\nzroot/reserved\treservation\t{}\n", 16 << 20)
    );
    assert_eq!(
        get(alpha, "mountpoint,atime,canmount,compression", "zroot/nix"),
        "zroot/nix\tmountpoint\tlegacy\nzroot/nix\tatime\toff\nzroot/nix\tcanmount\ton\nzroot/nix\tcompression\tgzip\n"
    );
    for ds in ["etcssh", "persist", "persistSave", "nix", "root"] {
        let snap = format!("zroot/{ds}@empty");
        let props = get(alpha, "guid,userrefs", &snap);
        let guid = props.lines().next().unwrap().split('\t').nth(2).unwrap();
        assert!(props.contains("userrefs\t1"), "{snap} is not held: {props}");
        let recorded = alpha
            .sh(&format!("zfs get -H -o value zfleet:blank zroot/{ds}"))
            .unwrap();
        assert_eq!(recorded.trim(), guid, "{ds}");
        assert!(
            alpha
                .sh(&format!("zfs destroy {snap} 2>&1 || true"))
                .unwrap()
                .contains("dataset is busy"),
            "{snap} could be destroyed"
        );
    }
    let run = zfleet(admin, &fleet, &["disks", "apply", "alpha"]).ok();
    assert_eq!(run.stdout, "alpha: 0 changes\n");

    // A second file: attached, the pool is a mirror.
    let fleet = write(&format!(
        "topology = \"mirror\"\ndisks = [\"{a}\", \"{b}\"]"
    ));
    let run = zfleet(admin, &fleet, &["disks", "apply", "alpha"]).ok();
    assert!(
        run.stdout
            .contains(&format!("attach {b} to {a} in zroot (mirror)")),
        "{}",
        run.stdout
    );
    let status = alpha.sh("zpool status zroot").unwrap();
    assert!(
        status.contains("mirror-0") && status.contains(&b),
        "{status}"
    );
    assert_eq!(
        zfleet(admin, &fleet, &["disks", "apply", "alpha"])
            .ok()
            .stdout,
        "alpha: 0 changes\n"
    );

    // zfs-fuse has no `zfs diff`: root diff says so.
    let run = zfleet(admin, &fleet, &["root", "diff", "alpha"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("`zfs diff` is not available on alpha (ZFS pool version 23"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_existing_pool_is_imported_and_adopted_never_recreated() {
    let lab = lab();
    let (admin, alpha) = (lab.host("admin").unwrap(), lab.host("alpha").unwrap());
    let c = vdev(alpha, "vdev-c.img");
    let data_dir = alpha.dir().join("data").display().to_string();
    // Made by hand, before zfleet: data in tank/data, tank/empty empty.
    alpha
        .sh(&format!(
            "zpool create -m none -O compression=off tank {c} && \
             zfs create -o mountpoint={data_dir} tank/data && zfs create -o mountpoint=legacy tank/empty && \
             head -c 2000000 /dev/urandom > {data_dir}/photos && sync && zpool export tank"
        ))
        .unwrap();
    let fleet = ssh_fleet(
        &lab,
        &format!(
            "[layouts.adopt]\nreservation = \"8M\"\nroot_options = {{ compression = \"gzip\", \"com.sun:auto-snapshot\" = \"false\" }}\n\
             [layouts.adopt.datasets.data]\noptions = {{ mountpoint = \"{data_dir}\" }}\n\
             [layouts.adopt.datasets.empty]\noptions = {{ mountpoint = \"legacy\" }}\n\
             [layouts.adopt.datasets.new]\noptions = {{ mountpoint = \"legacy\", atime = \"off\" }}\n\n\
             {}{}\n[hosts.alpha.pools.tank]\nlayout = \"adopt\"\ndisks = [\"{c}\"]\n",
            host_line(admin),
            host_line(alpha)
        ),
    );
    let run = zfleet(admin, &fleet, &["disks", "plan", "alpha"]).ok();
    assert!(run.stdout.contains("import pool tank"), "{}", run.stdout);
    assert!(!run.stdout.contains("create pool"), "{}", run.stdout);
    // Importing is what plans the rest: apply imports, observes again, adopts.
    let run = zfleet(admin, &fleet, &["disks", "apply", "alpha"]).ok();
    assert!(run.stdout.contains("import pool tank"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("set compression=gzip on tank (was off)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("create tank/reserved") && run.stdout.contains("create tank/new"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("snapshot tank/empty@empty")
            && run.stdout.contains("snapshot tank/new@empty"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("tank/data: has no tank/data@empty, and holds"),
        "a populated dataset gets no blank snapshot, with a note:\n{}",
        run.stdout
    );
    let before_guid = alpha.sh("zpool get guid tank | tail -1").unwrap();
    let sum = alpha.sh(&format!("sha256sum {data_dir}/photos")).unwrap();
    let snaps = alpha.sh("zfs list -H -o name -t snapshot -r tank").unwrap();
    assert!(!snaps.contains("tank/data@"), "{snaps}");
    assert!(
        snaps.contains("tank/empty@empty") && snaps.contains("tank/new@empty"),
        "{snaps}"
    );
    assert_eq!(
        get(alpha, "compression", "tank/data"),
        "tank/data\tcompression\tgzip\n"
    );
    assert_eq!(get(alpha, "atime", "tank/new"), "tank/new\tatime\toff\n");
    // The second run changes nothing, and the data is the data.
    let run = zfleet(admin, &fleet, &["disks", "apply", "alpha"]).ok();
    assert!(run.stdout.ends_with("alpha: 0 changes\n"), "{}", run.stdout);
    assert_eq!(
        alpha.sh("zpool get guid tank | tail -1").unwrap(),
        before_guid
    );
    assert_eq!(
        alpha.sh(&format!("sha256sum {data_dir}/photos")).unwrap(),
        sum
    );
}
