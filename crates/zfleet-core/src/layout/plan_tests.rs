//! The layout planner on output captured from the OpenZFS guest
//! (`tests/fixtures/layout/`, made by `capture.sh`): blank disks, the seed's
//! root pool on one disk and as a mirror, its containers closed after a
//! reboot, a pool another system left active, foreign file systems and
//! partition tables. Each plan is a snapshot a reviewer can read.

use std::path::Path;

use rstest::rstest;

use super::*;
use crate::layout::parse::{assemble, Captured};

fn fixture(state: &str, file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layout")
        .join(state)
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_default()
}

/// What `observe` would have read in one captured state.
fn captured(state: &str) -> Captured {
    Captured {
        lsblk: fixture(state, "lsblk.json"),
        links: fixture(state, "links.txt"),
        wipefs: fixture(state, "wipefs.json"),
        files: Vec::new(),
        status: fixture(state, "zpool-status.txt"),
        import: vec![fixture(state, "zpool-import.txt")],
        pool_get: fixture(state, "zpool-get-zroot.txt"),
        zfs_get: fixture(state, "zfs-get-zroot.txt"),
        blanks: fixture(state, "blanks-zroot.txt"),
        holds: Some(fixture(state, "holds-zroot.txt")),
        findmnt: None,
        hostid: fixture(state, "hostid.txt"),
        modern: true,
        facts: Default::default(),
    }
}

fn layout(toml: &str) -> HostLayout {
    let fleet = crate::config::parse(toml, Path::new("fleet.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    fleet.host("alpha").unwrap().layout.clone()
}

const D4: &str = "/dev/disk/by-id/virtio-zfleet-disk4";
const D5: &str = "/dev/disk/by-id/virtio-zfleet-disk5";
const D6: &str = "/dev/disk/by-id/virtio-zfleet-disk6";
const D7: &str = "/dev/disk/by-id/virtio-zfleet-disk7";

/// The seed's root pool (with the fixtures' 100 MiB reservation) on `disks`.
fn seed(disks: &[&str], extra: &str) -> String {
    let list: Vec<String> = disks.iter().map(|d| format!("\"{d}\"")).collect();
    let topology = if disks.len() > 1 {
        "topology = \"mirror\"\n"
    } else {
        ""
    };
    format!(
        "[hosts.alpha]\nhost_id = \"5a464c54\"\n[hosts.alpha.pools.zroot]\nlayout = \"seed\"\nreservation = \"100M\"\nsecret = \"file:/etc/zfleet/alpha.key\"\n{topology}disks = [{}]\n{extra}",
        list.join(", ")
    )
}

/// A plan as a person reads it: disks, numbered steps with reasons,
/// refusals, notes.
fn render(p: &Plan) -> String {
    let mut out = String::new();
    out.push_str("disks:\n");
    for d in &p.disks {
        out.push_str(&format!(
            "  {} {} ({}): {} — {}\n",
            d.pool,
            d.disk,
            d.device.as_deref().unwrap_or("-"),
            d.state,
            d.detail
        ));
    }
    out.push_str(&format!("steps: {}\n", p.changes()));
    for (i, s) in p.steps.iter().enumerate() {
        out.push_str(&format!(
            "  {}. {}\n     why: {}\n",
            i + 1,
            s.action.summary(),
            s.reason
        ));
    }
    if !p.refusals.is_empty() {
        out.push_str("refused:\n");
        for r in &p.refusals {
            out.push_str(&format!("  {}: {}\n", r.subject, r.problem));
            if let Some(h) = &r.hint {
                out.push_str(&format!("     hint: {h}\n"));
            }
        }
    }
    if !p.notes.is_empty() {
        out.push_str("notes:\n");
        for n in &p.notes {
            out.push_str(&format!("  {}: {}\n", n.subject, n.message));
        }
    }
    if !p.rescan.is_empty() {
        out.push_str(&format!("then observed again: {}\n", p.rescan.join(", ")));
    }
    out
}

fn opts(wipe: &[&str], reinstall: bool) -> Options {
    Options {
        wipe: wipe.iter().map(|s| s.to_string()).collect(),
        reinstall,
        force_import: Vec::new(),
    }
}

#[rstest]
#[case::seed_on_one_empty_disk("empty", seed(&[D4], ""), opts(&[], false))]
#[case::seed_mirror_on_two_empty_disks("empty", seed(&[D4, D5], ""), opts(&[], false))]
#[case::laid_out_disk_needs_nothing("seed-one-disk", seed(&[D4], ""), opts(&[], false))]
#[case::a_second_disk_is_attached_as_a_mirror("seed-one-disk", seed(&[D4, D5], ""), opts(&[], false))]
#[case::the_mirror_needs_nothing("seed-mirror", seed(&[D4, D5], ""), opts(&[], false))]
#[case::closed_containers_are_opened_then_observed_again("seed-closed", seed(&[D4, D5], ""), opts(&[], false))]
#[case::reinstall_recreates_the_root_pool("seed-mirror", seed(&[D4, D5], ""), opts(&[], true))]
#[case::a_potentially_active_pool_is_refused_by_name("other-system", seed(&[D6], ""), opts(&[], false))]
#[case::a_foreign_file_system_is_refused("foreign", seed(&[D6], ""), opts(&[], false))]
#[case::a_foreign_mbr_disk_is_refused("foreign", seed(&[D7], ""), opts(&[], false))]
#[case::wipe_lets_a_foreign_disk_go("foreign", seed(&[D6], ""), opts(&[D6], false))]
#[case::wipe_names_only_the_layouts_disks("empty", seed(&[D4], ""), opts(&[D6], false))]
#[case::a_kernel_name_works_like_an_id("empty", seed(&["/dev/vde"], ""), opts(&[], false))]
#[case::a_disk_that_is_not_there("empty", seed(&["/dev/sdb"], ""), opts(&[], false))]
#[case::a_partition_is_not_a_disk("seed-one-disk", seed(&["/dev/disk/by-id/virtio-zfleet-disk4-part2"], ""), opts(&[], false))]
#[case::properties_that_differ_are_set_or_reported(
    "seed-one-disk",
    seed(&[D4], "root_options = { compression = \"lz4\", normalization = \"none\" }\npool_options = { ashift = \"9\", autotrim = \"off\" }\n[hosts.alpha.pools.zroot.datasets.nix]\noptions = { atime = \"on\" }\n[hosts.alpha.pools.zroot.datasets.home]\nmountpoint = \"/home\"\noptions = { mountpoint = \"legacy\" }\n"),
    opts(&[], false)
)]
#[case::another_disk_of_the_pool_is_refused("seed-one-disk", "[hosts.alpha]\n[hosts.alpha.pools.tank]\nlayout = \"storage\"\nencryption = \"none\"\nreservation = \"0\"\ndisks = [\"/dev/disk/by-id/virtio-zfleet-disk4\"]\n".to_string(), opts(&[D4], false))]
fn plans(#[case] state: &str, #[case] fleet: String, #[case] o: Options) {
    let obs = assemble(&captured(state)).unwrap();
    let p = plan("alpha", &layout(&fleet), &obs, &o);
    let name = std::thread::current()
        .name()
        .unwrap_or("plan")
        .rsplit("::")
        .next()
        .unwrap_or("plan")
        .to_string();
    insta::assert_snapshot!(name, render(&p));
}

/// The import scan of a pool another system left active, as `zpool import`
/// prints it for a whole copy of the disk (ONLINE) rather than the capture's
/// label-only copy (FAULTED).
fn other_system_online() -> Captured {
    let mut c = captured("other-system");
    c.import = vec![fixture("other-system", "zpool-import-online.txt")];
    c
}

const STORAGE_ON_D6: &str = "[hosts.alpha.pools.zstorage]\nlayout = \"storage\"\nencryption = \"none\"\nreservation = \"0\"\ndisks = [\"/dev/disk/by-id/virtio-zfleet-disk6\"]\n";

#[test]
fn a_pool_another_system_used_is_imported_only_when_fleet_toml_says_whose() {
    let obs = assemble(&other_system_online()).unwrap();
    // No host_id: zfleet cannot tell the installed system from a stranger.
    let p = plan(
        "alpha",
        &layout(&format!("[hosts.alpha]\n{STORAGE_ON_D6}")),
        &obs,
        &opts(&[], false),
    );
    assert_eq!(p.steps.len(), 0);
    assert_eq!(p.refusals.len(), 1, "{}", render(&p));
    assert!(
        p.refusals[0].problem.contains("potentially active pool"),
        "{}",
        render(&p)
    );
    // host_id says this is the host whose pool it is, and the installer runs
    // under another hostid (11111111): imported with -f, then observed again.
    let p = plan(
        "alpha",
        &layout(&format!(
            "[hosts.alpha]\nhost_id = \"5a464c54\"\n{STORAGE_ON_D6}"
        )),
        &obs,
        &opts(&[], false),
    );
    insta::assert_snapshot!("other_system_adopted_with_host_id", render(&p));
    // Or the user says so.
    let mut o = opts(&[], false);
    o.force_import = vec!["zstorage".into()];
    let p = plan(
        "alpha",
        &layout(&format!("[hosts.alpha]\n{STORAGE_ON_D6}")),
        &obs,
        &o,
    );
    assert!(
        matches!(
            p.steps.as_slice(),
            [Step {
                action: Action::ImportPool { force: true, .. },
                ..
            }]
        ),
        "{}",
        render(&p)
    );
    // The capture's own scan says the pool is damaged: never imported.
    let obs = assemble(&captured("other-system")).unwrap();
    let p = plan(
        "alpha",
        &layout(&format!(
            "[hosts.alpha]\nhost_id = \"5a464c54\"\n{STORAGE_ON_D6}"
        )),
        &obs,
        &opts(&[], false),
    );
    assert!(p.steps.is_empty());
    assert!(p.refusals[0].problem.contains("FAULTED"), "{}", render(&p));
}

#[test]
fn a_swapped_or_unheld_blank_is_reported_and_held_again() {
    let mut c = captured("seed-one-disk");
    // root@empty replaced by another snapshot of the same name.
    c.blanks = c
        .blanks
        .replace(&guid_of(&c.blanks, "zroot/root@empty"), "1234567890");
    // The hold on nix@empty was released.
    c.holds = c.holds.map(|h| {
        h.lines()
            .filter(|l| !l.starts_with("zroot/nix@empty"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let obs = assemble(&c).unwrap();
    let p = plan("alpha", &layout(&seed(&[D4], "")), &obs, &opts(&[], false));
    insta::assert_snapshot!("swapped_and_unheld_blanks", render(&p));
}

fn guid_of(blanks: &str, snap: &str) -> String {
    blanks
        .lines()
        .find(|l| l.starts_with(snap) && l.contains("\tguid\t"))
        .and_then(|l| l.split('\t').nth(2))
        .unwrap()
        .to_string()
}

#[test]
fn a_scsi_disk_gets_sd_partition_names() {
    // The blank-disk capture as a machine with a SCSI disk would show it.
    let mut c = captured("empty");
    for t in [&mut c.lsblk, &mut c.links, &mut c.wipefs] {
        *t = t.replace("vde", "sdb");
    }
    let obs = assemble(&c).unwrap();
    let p = plan(
        "alpha",
        &layout(&seed(&["/dev/sdb"], "")),
        &obs,
        &opts(&[], false),
    );
    let devices: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::FormatEsp { device } | Action::LuksFormat { device, .. } => {
                Some(device.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(devices, ["/dev/sdb1", "/dev/sdb2"], "{}", render(&p));
}

#[test]
fn partition_paths_follow_udev() {
    assert_eq!(
        partition_path("/dev/disk/by-id/nvme-X", 2),
        "/dev/disk/by-id/nvme-X-part2"
    );
    assert_eq!(partition_path("/dev/nvme0n1", 1), "/dev/nvme0n1p1");
    assert_eq!(partition_path("/dev/sda", 3), "/dev/sda3");
    assert_eq!(partition_path("/dev/mmcblk0", 1), "/dev/mmcblk0p1");
}

#[test]
fn a_new_pool_under_another_hostid_sets_the_hosts() {
    let mut c = captured("empty");
    c.hostid = "11111111\n".into();
    let obs = assemble(&c).unwrap();
    let p = plan("alpha", &layout(&seed(&[D4], "")), &obs, &opts(&[], false));
    assert!(
        matches!(&p.steps[0].action, Action::SetHostId { id } if id == "5a464c54"),
        "{}",
        render(&p)
    );
}

/// Every process a plan runs, as the host sees it: argv and what goes to
/// stdin (a secret only by its reference).
fn render_commands(p: &Plan, modern: bool) -> String {
    let mut out = String::new();
    for s in &p.steps {
        for c in crate::layout::exec::commands(&s.action, modern) {
            let stdin = match &c.stdin {
                crate::layout::exec::Stdin::None => String::new(),
                crate::layout::exec::Stdin::SecretRaw(r) => format!("  < secret {r}"),
                crate::layout::exec::Stdin::SecretLine(r) => format!("  < secret {r} + newline"),
                crate::layout::exec::Stdin::Text(t) => format!("  < {t:?}"),
            };
            out.push_str(&format!(
                "{}{}{}\n",
                crate::exec::quote::display_line(c.argv.iter().map(String::as_str)),
                if c.required { "" } else { "  (may fail)" },
                stdin
            ));
        }
    }
    out
}

#[test]
fn the_commands_of_the_seed_mirror() {
    let obs = assemble(&captured("empty")).unwrap();
    let p = plan(
        "alpha",
        &layout(&seed(&[D4, D5], "")),
        &obs,
        &opts(&[], false),
    );
    let text = render_commands(&p, true);
    assert!(!text.contains("passphrase"), "{text}");
    insta::assert_snapshot!("seed_mirror_commands", text);
}

#[test]
fn mount_after_a_reboot_opens_then_mounts_and_writes_the_facts() {
    use crate::layout::mount::{plan_mount, InitrdPin};
    let l = layout(&seed(&[D4, D5], ""));
    let pin = InitrdPin {
        file: "/etc/zfleet/initrd_known_hosts/alpha".into(),
        endpoint: crate::config::SshEndpoint {
            address: "alpha-initrd".into(),
            user: Some("root".into()),
            port: 22,
            identity: None,
            known_hosts: None,
            connect_timeout: std::time::Duration::from_secs(10),
        },
        pinned: Default::default(),
    };
    // Closed containers: opened, then observed again.
    let obs = assemble(&captured("seed-closed")).unwrap();
    let p = plan_mount("alpha", &l, &obs, "/mnt", Some(&pin), &[]);
    insta::assert_snapshot!("mount_closed", render(&p));
    // Open and imported: mounts in path order, facts, the initrd key.
    let obs = assemble(&captured("seed-mirror")).unwrap();
    let p = plan_mount("alpha", &l, &obs, "/mnt", Some(&pin), &[]);
    insta::assert_snapshot!("mount_open", render(&p));
}

#[test]
fn facts_and_disko_for_a_mirror_with_swap_and_a_storage_pool() {
    let l = layout(&format!(
        "{}\n[hosts.alpha.pools.zstorage]\nlayout = \"storage\"\nsecret = \"file:/k\"\ndisks = [\"{D6}\", \"{D7}\"]\ntopology = \"mirror\"\n",
        seed(&[D4, D5], "swap_size = \"1G\"\n")
    ));
    let facts = crate::layout::facts::files("alpha", &l, true);
    let text: String = facts.iter().map(|(p, c)| format!("==> {p}\n{c}")).collect();
    insta::assert_snapshot!("facts_mirror_swap_storage", text);
    insta::assert_snapshot!(
        "disko_mirror_swap_storage",
        crate::layout::disko::expression("alpha", &l)
    );
}
