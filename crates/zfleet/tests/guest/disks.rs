//! `zfleet disks`, `zfleet root` and the exports on real OpenZFS and dm-crypt
//! (the lab's qemu guest, disks 4-7: blank 4 GiB virtio disks). zfleet runs
//! on this machine as the admin would, and reaches the guest over ssh; the
//! LUKS passphrase comes from a `file:` provider here.
//!
//! - the seed's encrypted root pool on one empty disk: planned, applied,
//!   compared property by property with the seed's disko module, `@empty`
//!   held and recorded, 0 changes on the second run; a second disk attached
//!   turns it into a mirror; the passphrase opens LUKS after a "reboot"
//!   (`disks mount`); `root diff` lists exactly what was written into the
//!   root; `root rollback` restores the blank state and refuses a swapped
//!   snapshot;
//! - a mirror on two empty disks with a storage pool, then `--reinstall`:
//!   the storage pool is kept byte for byte;
//! - disks holding a foreign file system or pool are refused and not
//!   written to (their first and last MiB compared).
//!
//! When the machine cannot run the guest the tests print `SKIPPED: …` and pass
//! (`ZFLEET_LAB_GUEST=require` makes that a failure).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zfleet_lab::guest::{guest_or_skip, Guest, Scenario};

use crate::support::{install, json};

const D4: &str = "/dev/disk/by-id/virtio-zfleet-disk4";
const D5: &str = "/dev/disk/by-id/virtio-zfleet-disk5";
const D6: &str = "/dev/disk/by-id/virtio-zfleet-disk6";
const D7: &str = "/dev/disk/by-id/virtio-zfleet-disk7";
const PASSPHRASE: &str = "seed layout passphrase 31";

/// The admin's side: a fleet file with host `alpha` (the guest, over ssh),
/// the passphrase file, and the pinned initrd key files.
struct Admin {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    fleet: PathBuf,
    base: String,
}

impl Admin {
    fn new(guest: &Guest) -> Admin {
        Admin::with_unlock(guest, "luks-initrd")
    }

    /// With `[hosts.alpha.unlock] method = METHOD` and the same secret.
    fn with_unlock(guest: &Guest, method: &str) -> Admin {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let key = dir.join("alpha.key");
        std::fs::write(&key, format!("{PASSPHRASE}\n")).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let base = format!(
            "[ssh]\nuser = \"root\"\nport = {}\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"30s\"\n\n\
             [hosts.alpha]\naddress = \"127.0.0.1\"\nhost_id = \"5a464c54\"\n\n\
             [hosts.alpha.unlock]\nmethod = \"{method}\"\nsecret = \"file:{}\"\n{}\n",
            guest.ssh_port(),
            guest.key_path().display(),
            guest.known_hosts_path().display(),
            key.display(),
            if method == "luks-initrd" { "initrd_address = \"alpha-initrd\"\n" } else { "" }
        );
        let fleet = dir.join("fleet.toml");
        Admin {
            _dir: tmp,
            dir,
            fleet,
            base,
        }
    }

    /// Writes the fleet file with these pools.
    fn pools(&self, pools: &str) {
        std::fs::write(&self.fleet, format!("{}{pools}", self.base)).unwrap();
    }

    fn zfleet(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(crate::common::zfleet_bin())
            .arg("--config")
            .arg(&self.fleet)
            .args(["--host", "admin"])
            .args(args)
            .env_remove("ZFLEET_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.zfleet(args);
        assert_eq!(code, 0, "zfleet {args:?} failed:\n{out}\n{err}");
        assert!(
            !out.contains(PASSPHRASE) && !err.contains(PASSPHRASE),
            "the passphrase was printed"
        );
        out
    }
}

fn seed_root(disks: &[&str]) -> String {
    let list: Vec<String> = disks.iter().map(|d| format!("\"{d}\"")).collect();
    let topology = if disks.len() > 1 {
        "topology = \"mirror\"\n"
    } else {
        ""
    };
    // The guest's disks are 4 GiB: the seed's 20 GiB reservation would not fit.
    format!(
        "[hosts.alpha.pools.zroot]\nlayout = \"seed\"\nreservation = \"100M\"\n{topology}disks = [{}]\n",
        list.join(", ")
    )
}

/// The seed's disko module (yomaq/nix-config modules/hosts/zfs/disks/nixos.nix),
/// value for value: the pool options, the root file system options, and per
/// dataset its options.
const SEED_POOL: &[(&str, &str)] = &[("ashift", "12"), ("autotrim", "on")];
const SEED_ROOT_FS: &[(&str, &str)] = &[
    ("canmount", "off"),
    ("checksum", "edonr"),
    ("compression", "zstd"),
    ("dnodesize", "auto"),
    ("mountpoint", "none"),
    ("normalization", "formD"),
    ("relatime", "on"),
    ("com.sun:auto-snapshot", "false"),
];
const SEED_DATASETS: &[(&str, &[(&str, &str)])] = &[
    (
        "reserved",
        &[
            ("canmount", "off"),
            ("mountpoint", "none"),
            ("reservation", "104857600"),
        ],
    ),
    (
        "etcssh",
        &[("mountpoint", "legacy"), ("com.sun:auto-snapshot", "false")],
    ),
    (
        "persist",
        &[("mountpoint", "legacy"), ("com.sun:auto-snapshot", "false")],
    ),
    (
        "persistSave",
        &[("mountpoint", "legacy"), ("com.sun:auto-snapshot", "false")],
    ),
    (
        "nix",
        &[
            ("mountpoint", "legacy"),
            ("atime", "off"),
            ("canmount", "on"),
            ("com.sun:auto-snapshot", "false"),
        ],
    ),
    (
        "root",
        &[("mountpoint", "legacy"), ("com.sun:auto-snapshot", "false")],
    ),
];
/// Every seed dataset inherits the root file system's options it does not set.
const SEED_INHERITED: &[(&str, &str)] = &[
    ("checksum", "edonr"),
    ("compression", "zstd"),
    ("dnodesize", "auto"),
    ("normalization", "formD"),
    ("relatime", "on"),
];

fn get(s: &Scenario<'_>, what: &str, props: &str, target: &str) -> Vec<(String, String)> {
    s.run(&format!(
        "{what} get -H -p -o property,value {props} {target}"
    ))
    .unwrap()
    .lines()
    .map(|l| {
        let (k, v) = l.split_once('\t').unwrap();
        (k.to_string(), v.to_string())
    })
    .collect()
}

/// The pool and its datasets against the seed's module.
fn assert_seed_properties(s: &Scenario<'_>, pool: &str) {
    let keys = |t: &[(&str, &str)]| t.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(",");
    let want = |t: &[(&str, &str)]| {
        t.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        get(s, "zpool", &keys(SEED_POOL), pool),
        want(SEED_POOL),
        "pool options of {pool}"
    );
    assert_eq!(
        get(s, "zfs", &keys(SEED_ROOT_FS), pool),
        want(SEED_ROOT_FS),
        "root file system of {pool}"
    );
    for (ds, opts) in SEED_DATASETS {
        let name = format!("{pool}/{ds}");
        assert_eq!(get(s, "zfs", &keys(opts), &name), want(opts), "{name}");
        assert_eq!(
            get(s, "zfs", &keys(SEED_INHERITED), &name),
            want(SEED_INHERITED),
            "{name}"
        );
    }
    // @empty on each dataset but `reserved`, held, its guid recorded.
    for (ds, _) in &SEED_DATASETS[1..] {
        let name = format!("{pool}/{ds}");
        let holds = s.run(&format!("zfs holds -H {name}@empty")).unwrap();
        assert!(
            holds.contains("zfleet-blank"),
            "{name}@empty is not held: {holds}"
        );
        let guid = s
            .run(&format!("zfs get -H -p -o value guid {name}@empty"))
            .unwrap();
        let recorded = s
            .run(&format!("zfs get -H -o value zfleet:blank {name}"))
            .unwrap();
        assert_eq!(guid.trim(), recorded.trim(), "{name}");
        let destroy = s.output(&format!("zfs destroy {name}@empty")).unwrap();
        assert!(!destroy.status.success(), "{name}@empty could be destroyed");
    }
    let snaps = s
        .run(&format!("zfs list -H -o name -t snapshot {pool}/reserved"))
        .unwrap();
    assert!(
        snaps.trim().is_empty(),
        "the seed takes no @empty of reserved: {snaps}"
    );
}

fn changes(out: &str) -> usize {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with("alpha: "))
        .unwrap_or_else(|| panic!("no summary in:\n{out}"));
    line.trim_start_matches("alpha: ")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Mirror members of `pool` as `zpool status -P` lists them.
fn members(s: &Scenario<'_>, pool: &str) -> String {
    s.run(&format!(
        "zpool status -P {pool} | awk '$1 ~ /^(mirror|\\/dev)/ {{print $1}}'"
    ))
    .unwrap()
}

#[test]
fn the_seed_layout_on_an_empty_disk_then_a_mirror_then_an_ephemeral_root() {
    let Some(guest) =
        guest_or_skip("the_seed_layout_on_an_empty_disk_then_a_mirror_then_an_ephemeral_root")
    else {
        return;
    };
    install(guest);
    let s = guest.bare_scenario().unwrap();
    let admin = Admin::new(guest);
    admin.pools(&seed_root(&[D4]));

    // The plan, and nothing written by it.
    let plan = json(&admin.ok(&["disks", "plan", "alpha", "--json"]));
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &steps[..5],
        [
            "partition",
            "format_esp",
            "luks_format",
            "luks_open",
            "create_pool"
        ],
        "{plan}"
    );
    assert!(plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| !s["reason"].as_str().unwrap().is_empty()));
    assert!(
        s.run("lsblk -n -o NAME /dev/vde").unwrap().trim() == "vde",
        "plan wrote a partition"
    );

    let started = Instant::now();
    let out = admin.ok(&["disks", "apply", "alpha"]);
    let applied = started.elapsed();
    assert_eq!(changes(&out), 26, "{out}");
    assert_seed_properties(&s, "zroot");
    // GPT as the seed's: a 2 GiB ESP labelled EFI, FAT32; LUKS2 on the rest.
    let parts = s
        .run("lsblk -n -b -d -o PARTLABEL,SIZE,FSTYPE /dev/vde1 /dev/vde2 | tr -s ' '")
        .unwrap();
    assert_eq!(
        parts.lines().next().unwrap(),
        "EFI 2147483648 vfat",
        "{parts}"
    );
    assert!(
        parts.lines().nth(1).unwrap().starts_with("crypted1 ") && parts.contains("crypto_LUKS"),
        "{parts}"
    );
    assert!(s
        .run("cryptsetup luksDump /dev/vde2")
        .unwrap()
        .contains("Version:       \t2"));
    assert_eq!(
        admin.ok(&["disks", "apply", "alpha"]).trim(),
        "alpha: 0 changes"
    );

    // "Reboot" into an installer: the container closed, the pool exported.
    s.run("zpool export zroot && cryptsetup close crypted1")
        .unwrap();
    let mounted_started = Instant::now();
    let out = admin.ok(&["disks", "mount", "alpha", "--root", "/mnt"]);
    let mounted = mounted_started.elapsed();
    assert!(
        out.contains("open /dev/disk/by-id/virtio-zfleet-disk4-part2 as /dev/mapper/crypted1"),
        "{out}"
    );
    let mounts = s
        .run("findmnt -R -n -o TARGET,SOURCE /mnt | sed 's/^[^/]*//' | tr -s ' '")
        .unwrap();
    for (target, source) in [
        ("/mnt", "zroot/root"),
        ("/mnt/boot", "/dev/vde1"),
        ("/mnt/nix", "zroot/nix"),
        ("/mnt/persist", "zroot/persist"),
        ("/mnt/persist/save", "zroot/persistSave"),
        ("/mnt/etc/ssh", "zroot/etcssh"),
    ] {
        assert!(
            mounts.contains(&format!("{target} {source}")),
            "{target} {source} not in:\n{mounts}"
        );
    }
    // The facts, and the initrd's own key, pinned here.
    let nix = s.run("cat /mnt/etc/zfleet/nixos-disks.nix").unwrap();
    assert!(nix.contains("boot.initrd.luks.devices.\"crypted1\" = { device = \"/dev/disk/by-id/virtio-zfleet-disk4-part2\"; allowDiscards = true; };"), "{nix}");
    assert!(nix.contains("networking.hostId = \"5a464c54\";"), "{nix}");
    let pubkey = s
        .run("cat /mnt/etc/ssh/initrd_ssh_host_ed25519_key.pub")
        .unwrap();
    let pin = std::fs::read_to_string(admin.dir.join("initrd_known_hosts/alpha")).unwrap();
    let blob = pubkey.split_whitespace().nth(1).unwrap();
    assert!(
        pin.contains(&format!("alpha-initrd ssh-ed25519 {blob}")),
        "{pin}"
    );
    assert!(
        !pin.contains(guest.known_hosts_line().split_whitespace().nth(2).unwrap()),
        "the initrd pin is the host key"
    );
    assert_eq!(
        admin
            .ok(&["disks", "mount", "alpha", "--root", "/mnt"])
            .trim(),
        "alpha: 0 changes"
    );
    eprintln!(
        "TIMING empty disk → seed layout applied {:.1}s, opened and mounted for an installer {:.1}s",
        applied.as_secs_f64(),
        mounted.as_secs_f64()
    );

    // A second disk: the single disk becomes a mirror, not a second vdev.
    admin.pools(&seed_root(&[D4, D5]));
    let out = admin.ok(&["disks", "plan", "alpha"]);
    assert!(
        out.contains("attach /dev/mapper/crypted2 to /dev/mapper/crypted1 in zroot (mirror)"),
        "{out}"
    );
    assert!(!out.contains("create pool"), "{out}");
    admin.ok(&["disks", "apply", "alpha"]);
    s.run("zpool wait -t resilver zroot").unwrap();
    assert_eq!(
        members(&s, "zroot"),
        "mirror-0\n/dev/mapper/crypted1\n/dev/mapper/crypted2\n"
    );
    assert!(
        !s.run("lsblk -n -o PARTLABEL /dev/vdf")
            .unwrap()
            .contains("EFI"),
        "the second disk has no ESP, as in the seed"
    );
    assert_eq!(
        admin.ok(&["disks", "apply", "alpha"]).trim(),
        "alpha: 0 changes"
    );

    // What the next rollback deletes: exactly what was written into the root.
    s.run(
        "mkdir -p /mnt/var/lib/postgresql /mnt/home/alice /mnt/var/lib/nixos \
         && echo rows > /mnt/var/lib/postgresql/table \
         && head -c 300000 /dev/urandom > /mnt/home/alice/photo \
         && echo kept > /mnt/persist/kept \
         && echo key > /mnt/etc/ssh/extra \
         && echo uid > /mnt/var/lib/nixos/uid-map",
    )
    .unwrap();
    let diff = json(&admin.ok(&["root", "diff", "alpha", "--json"]));
    let paths: BTreeSet<String> = diff["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = [
        // `disks mount` wrote these for the installer: a rollback loses them too.
        "/etc/zfleet/crypttab",
        "/etc/zfleet/fstab",
        "/etc/zfleet/layout.json",
        "/etc/zfleet/nixos-disks.nix",
        "/home/alice/photo",
        "/var/lib/postgresql/table",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(paths, want, "{diff}");
    let photo = diff["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/home/alice/photo")
        .unwrap();
    assert_eq!(photo["size"], 300000);
    let hints: Vec<&str> = diff["hints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    assert_eq!(hints, ["/home/alice", "/var/lib/postgresql"], "{diff}");
    let persisted = json(&admin.ok(&["root", "diff", "alpha", "--persisted", "--json"]));
    let persist = persisted["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dataset"] == "zroot/persist")
        .unwrap();
    let orphans: Vec<&str> = persist["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(orphans, ["/kept"], "{persisted}");

    // The boot-time rollback: back to blank, and root only.
    let out = s.run("zfleet root rollback --dataset zroot/root").unwrap();
    assert!(
        out.starts_with("rolled zroot/root back to zroot/root@empty"),
        "{out}"
    );
    assert_eq!(
        s.run("zfs diff -H zroot/root@empty zroot/root").unwrap(),
        ""
    );
    assert_eq!(s.run("cat /mnt/persist/kept").unwrap(), "kept\n");
    // A swapped blank: same name, another guid. Refused; the root stays.
    s.run(
        "zfs release zfleet-blank zroot/root@empty && zfs destroy zroot/root@empty \
         && echo oops > /mnt/oops && zfs snapshot zroot/root@empty && zfs hold zfleet-blank zroot/root@empty \
         && echo after > /mnt/after",
    )
    .unwrap();
    let out = s
        .output("zfleet root rollback --dataset zroot/root")
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REFUSED to roll back zroot/root") && err.contains("it was replaced"),
        "{err}"
    );
    assert_eq!(s.run("cat /mnt/after").unwrap(), "after\n");
}

/// Every process's arguments and environment on this machine.
fn local_processes() -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        out.push((pid, cmdline, environ));
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// `zfleet disks apply` while both this machine's and the guest's processes
/// are searched for the passphrase in their arguments and environments.
fn apply_scanning(s: &Scenario<'_>, admin: &Admin, args: &[&str]) -> (i32, String) {
    // In the guest, a loop that greps every process; the pattern comes from
    // a file so the scanner's own arguments do not hold it.
    s.run_with_stdin("cat > /root/leak-pattern", PASSPHRASE.as_bytes())
        .unwrap();
    s.run(
        "rm -f /root/leaks; nohup sh -c 'while [ ! -e /root/leak-stop ]; do \
         for p in /proc/[0-9]*; do grep -qaFf /root/leak-pattern $p/cmdline $p/environ 2>/dev/null && \
         { echo $p; tr \"\\0\" \" \" < $p/cmdline; echo; } >> /root/leaks; done; done' >/dev/null 2>&1 &",
    )
    .unwrap();
    let mut child = Command::new(crate::common::zfleet_bin())
        .arg("--config")
        .arg(&admin.fleet)
        .args(["--host", "admin"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let me = std::process::id();
    while child.try_wait().unwrap().is_none() {
        for (pid, cmdline, environ) in local_processes() {
            if pid == me {
                continue;
            }
            assert!(
                !contains(&cmdline, PASSPHRASE),
                "the passphrase is in the arguments of pid {pid}"
            );
            assert!(
                !contains(&environ, PASSPHRASE),
                "the passphrase is in the environment of pid {pid}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    s.run("touch /root/leak-stop; sleep 1; rm -f /root/leak-stop")
        .unwrap();
    let leaks = s.run("cat /root/leaks 2>/dev/null || true").unwrap();
    assert_eq!(
        leaks, "",
        "the passphrase was seen in the guest's processes"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(PASSPHRASE));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_mirror_and_a_storage_pool_from_empty_disks_and_a_reinstall_keeps_the_storage() {
    let Some(guest) = guest_or_skip(
        "a_mirror_and_a_storage_pool_from_empty_disks_and_a_reinstall_keeps_the_storage",
    ) else {
        return;
    };
    install(guest);
    let s = guest.bare_scenario().unwrap();
    let admin = Admin::new(guest);
    let pools = format!(
        "{}\n[hosts.alpha.pools.zstorage]\nlayout = \"storage\"\nreservation = \"100M\"\ndisks = [\"{D6}\"]\n",
        seed_root(&[D4, D5])
    );
    admin.pools(&pools);
    let started = Instant::now();
    let (code, out) = apply_scanning(&s, &admin, &["disks", "apply", "alpha"]);
    assert_eq!(code, 0, "{out}");
    let applied = started.elapsed();
    assert_seed_properties(&s, "zroot");
    assert_eq!(
        members(&s, "zroot"),
        "mirror-0\n/dev/mapper/crypted1\n/dev/mapper/crypted2\n"
    );
    // The storage pool as the seed's zstorage.
    assert_eq!(members(&s, "zstorage"), "/dev/mapper/stg1\n");
    let keys = |t: &[(&str, &str)]| t.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(",");
    let want = |t: &[(&str, &str)]| {
        t.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        get(&s, "zpool", &keys(SEED_POOL), "zstorage"),
        want(SEED_POOL)
    );
    assert_eq!(
        get(&s, "zfs", &keys(SEED_ROOT_FS), "zstorage"),
        want(SEED_ROOT_FS)
    );
    for (ds, mp) in [("storage", "/storage"), ("persistSave", "/storage/save")] {
        let opts = [
            ("mountpoint", mp),
            ("atime", "off"),
            ("canmount", "on"),
            ("com.sun:auto-snapshot", "false"),
        ];
        assert_eq!(
            get(&s, "zfs", &keys(&opts), &format!("zstorage/{ds}")),
            want(&opts),
            "zstorage/{ds}"
        );
    }
    let mounted = Instant::now();
    admin.ok(&["disks", "mount", "alpha", "--root", "/mnt"]);
    eprintln!(
        "TIMING empty disks → mirrored seed root + storage applied {:.1}s, mounted {:.1}s",
        applied.as_secs_f64(),
        mounted.elapsed().as_secs_f64()
    );

    // Data on the storage pool, and on the root pool.
    s.run(
        "mkdir -p /mnt/storage && head -c 3000000 /dev/urandom > /mnt/storage/archive \
         && head -c 1000000 /dev/urandom > /mnt/storage/save/db && echo gone > /mnt/persist/old",
    )
    .unwrap();
    let sums = |s: &Scenario<'_>| {
        s.run("cd /mnt/storage && sha256sum archive save/db")
            .unwrap()
    };
    let before = sums(&s);
    let guid =
        |s: &Scenario<'_>, p: &str| s.run(&format!("zpool get -H -o value guid {p}")).unwrap();
    let (storage_guid, root_guid) = (guid(&s, "zstorage"), guid(&s, "zroot"));

    // Reboot into an installer and reinstall: everything closed and exported.
    s.run("umount -R /mnt && zpool export zstorage && zpool export zroot && for m in crypted1 crypted2 stg1; do cryptsetup close $m; done").unwrap();
    let out = admin.ok(&["disks", "plan", "alpha", "--reinstall"]);
    assert!(
        out.contains("wipe /dev/disk/by-id/virtio-zfleet-disk4")
            && out.contains("wipe /dev/disk/by-id/virtio-zfleet-disk5"),
        "{out}"
    );
    assert!(
        !out.contains("wipe /dev/disk/by-id/virtio-zfleet-disk6"),
        "{out}"
    );
    assert!(
        out.contains("open /dev/disk/by-id/virtio-zfleet-disk6-part1 as /dev/mapper/stg1"),
        "{out}"
    );
    let (code, out) = apply_scanning(&s, &admin, &["disks", "apply", "alpha", "--reinstall"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("import pool zstorage"),
        "the storage pool is imported, not recreated:\n{out}"
    );
    assert_ne!(guid(&s, "zroot"), root_guid, "the root pool is new");
    assert_eq!(
        guid(&s, "zstorage"),
        storage_guid,
        "the storage pool is the same pool"
    );
    assert_seed_properties(&s, "zroot");
    admin.ok(&["disks", "mount", "alpha", "--root", "/mnt"]);
    assert_eq!(sums(&s), before, "the storage pool's files changed");
    assert_eq!(
        s.output("test -e /mnt/persist/old").unwrap().status.code(),
        Some(1),
        "the root pool was not recreated"
    );
    assert_eq!(
        admin.ok(&["disks", "apply", "alpha"]).trim(),
        "alpha: 0 changes"
    );
}

/// sha256 of the first and last MiB of a disk.
fn ends(s: &Scenario<'_>, dev: &str) -> String {
    s.run(&format!(
        "n=$(blockdev --getsz {dev}); dd if={dev} bs=512 count=2048 status=none | sha256sum; \
         dd if={dev} bs=512 skip=$((n - 2048)) count=2048 status=none | sha256sum"
    ))
    .unwrap()
}

#[test]
fn disks_with_a_foreign_file_system_or_pool_are_refused_and_not_written() {
    let Some(guest) =
        guest_or_skip("disks_with_a_foreign_file_system_or_pool_are_refused_and_not_written")
    else {
        return;
    };
    install(guest);
    let s = guest.bare_scenario().unwrap();
    let admin = Admin::new(guest);
    s.run("mkfs.ext4 -q -L photos /dev/vdh && zpool create tank /dev/vdg && zpool export tank")
        .unwrap();
    let before = (ends(&s, "/dev/vdh"), ends(&s, "/dev/vdg"));
    for (disk, what) in [
        (D7, "an ext4 file system labelled photos"),
        (D6, "a ZFS label of pool tank"),
    ] {
        admin.pools(&seed_root(&[disk]));
        let (code, out, err) = admin.zfleet(&["disks", "apply", "alpha"]);
        assert_eq!(code, 5, "{out}{err}");
        assert!(out.contains("REFUSED") && out.contains(what), "{out}");
        assert!(out.contains(&format!("--wipe {disk}")), "{out}");
    }
    assert_eq!(
        (ends(&s, "/dev/vdh"), ends(&s, "/dev/vdg")),
        before,
        "a refused disk was written to"
    );
    assert!(s.run("zpool import").unwrap().contains("pool: tank"));

    // Named by --wipe, the file system goes and the layout is made.
    admin.pools(&format!(
        "[hosts.alpha.pools.zroot]\nlayout = \"seed\"\nencryption = \"none\"\nesp_size = \"256M\"\nreservation = \"0\"\ndisks = [\"{D7}\"]\n"
    ));
    let out = admin.ok(&["disks", "apply", "alpha", "--wipe", D7]);
    assert!(
        out.contains("wipe /dev/disk/by-id/virtio-zfleet-disk7"),
        "{out}"
    );
    assert_eq!(
        s.run("blkid -p -o value -s TYPE /dev/vdh2").unwrap().trim(),
        "zfs_member"
    );
    assert_eq!(
        admin.ok(&["disks", "apply", "alpha"]).trim(),
        "alpha: 0 changes"
    );
    // The other disk was not named, and is as it was.
    assert_eq!(ends(&s, "/dev/vdg"), before.1);
}

#[test]
fn a_pool_with_zfs_encryption_is_unlocked_by_zfleet_unlock_with_no_more_setup() {
    let Some(guest) =
        guest_or_skip("a_pool_with_zfs_encryption_is_unlocked_by_zfleet_unlock_with_no_more_setup")
    else {
        return;
    };
    install(guest);
    let s = guest.bare_scenario().unwrap();
    // The unlock section names no encryption roots: the layout's pool is one.
    let admin = Admin::with_unlock(guest, "zfs");
    admin.pools(&format!(
        "[hosts.alpha.pools.tank]\nlayout = \"storage\"\nencryption = \"zfs\"\nreservation = \"0\"\ndisks = [\"{D7}\"]\n"
    ));
    let out = admin.ok(&["disks", "apply", "alpha"]);
    assert!(out.contains("create pool tank"), "{out}");
    let enc = get(&s, "zfs", "encryption,keyformat,keylocation", "tank");
    assert_eq!(
        enc,
        [
            ("encryption", "aes-256-gcm"),
            ("keyformat", "passphrase"),
            ("keylocation", "prompt")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(
        admin.ok(&["disks", "apply", "alpha"]).trim(),
        "alpha: 0 changes"
    );
    // As after a reboot: the key is not loaded.
    s.run("zpool export tank && zpool import tank").unwrap();
    assert_eq!(
        s.run("zfs get -H -o value keystatus tank").unwrap().trim(),
        "unavailable"
    );
    let out = admin.ok(&["unlock", "alpha", "--json"]);
    let report = json(&out);
    assert_eq!(report[0]["outcome"], "unlocked", "{report}");
    assert_eq!(
        s.run("zfs get -H -o value keystatus tank").unwrap().trim(),
        "available"
    );
    assert_eq!(
        s.run("zfs get -H -o value mounted tank/storage")
            .unwrap()
            .trim(),
        "yes"
    );
    // /storage/save is inside /storage: it was mounted after it, not hidden
    // under it (as name order, persistSave before storage, would do).
    assert_eq!(
        s.run("findmnt -n -o SOURCE --target /storage/save")
            .unwrap()
            .trim(),
        "tank/persistSave"
    );
}
