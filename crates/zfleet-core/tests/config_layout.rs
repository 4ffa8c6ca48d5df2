#![allow(clippy::unwrap_used, clippy::panic)]

//! Disk layouts in the fleet file: the seed's four lines, the built-ins
//! property for property, templates and host changes, and each mistake with
//! its place in the file.

use std::path::Path;

use zfleet_core::config::{self, Encryption, Fleet, LayoutKind, Topology};

fn parse(src: &str) -> Result<Fleet, String> {
    config::parse(src, Path::new("fleet.toml")).map_err(|e| e.to_string())
}

fn err(src: &str) -> String {
    match parse(src) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e,
    }
}

const SEED_HOST: &str = r#"
[hosts.alpha]
host_id = "8425e349"
[hosts.alpha.pools.zroot]
layout = "seed"
disks = ["/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456"]
secret = "op://nix/alpha/encryption"
"#;

#[test]
fn four_lines_give_the_seed_root_pool() {
    let fleet = parse(SEED_HOST).unwrap();
    assert!(fleet.warnings.is_empty(), "{:?}", fleet.warnings);
    let layout = &fleet.host("alpha").unwrap().layout;
    assert_eq!(layout.host_id.as_deref(), Some("8425e349"));
    let p = layout.root_pool().unwrap();
    assert_eq!(p.pool, "zroot");
    assert_eq!(p.kind, LayoutKind::Root);
    assert_eq!(p.encryption, Encryption::Luks);
    assert_eq!(p.topology, Topology::Single);
    assert_eq!(p.esp_size, 2048 << 20);
    assert_eq!(p.luks_mapping(0), "crypted1");
    assert!(p.luks_discards);
    let names: Vec<&str> = p.datasets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "reserved",
            "etcssh",
            "persist",
            "persistSave",
            "nix",
            "root"
        ]
    );
    let reserved = p.dataset("reserved").unwrap();
    assert_eq!(reserved.options["reservation"], (20u64 << 30).to_string());
    assert_eq!(reserved.options["canmount"], "off");
    assert_eq!(reserved.options["mountpoint"], "none");
    assert!(!reserved.blank);
    let root = p.ephemeral().unwrap();
    assert_eq!(root.name, "root");
    assert_eq!(root.mountpoint.as_deref(), Some("/"));
    assert!(root.legacy() && root.blank);
    let nix = p.dataset("nix").unwrap();
    assert_eq!(nix.options["atime"], "off");
    assert_eq!(nix.options["canmount"], "on");
    for d in p.datasets.iter().filter(|d| d.name != "reserved") {
        assert_eq!(d.options["com.sun:auto-snapshot"], "false", "{}", d.name);
        assert!(d.blank, "{} has @empty in the seed", d.name);
    }
    let pool: Vec<(&str, &str)> = p
        .pool_options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(pool, [("ashift", "12"), ("autotrim", "on")]);
    let rootfs: Vec<(&str, &str)> = p
        .root_options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        rootfs,
        [
            ("canmount", "off"),
            ("checksum", "edonr"),
            ("compression", "zstd"),
            ("dnodesize", "auto"),
            ("mountpoint", "none"),
            ("normalization", "formD"),
            ("relatime", "on"),
            ("com.sun:auto-snapshot", "false"),
        ]
    );
    insta::assert_json_snapshot!("seed_root_pool", p);
}

#[test]
fn the_storage_layout_gets_backups_only_on_a_server() {
    let src = r#"
[hosts.nas]
[hosts.nas.pools.zstorage]
layout = "storage"
disks = ["/dev/disk/by-id/ata-A", "/dev/disk/by-id/ata-B"]
topology = "mirror"
secret = "file:/etc/zfleet/nas.key"

[hosts.vault]
[hosts.vault.server]
target_root = "zstorage/backups"
[hosts.vault.pools.zstorage]
layout = "storage"
disks = ["/dev/disk/by-id/ata-C"]
secret = "file:/etc/zfleet/vault.key"
"#;
    let fleet = parse(src).unwrap();
    let names = |h: &str| -> Vec<String> {
        fleet.host(h).unwrap().layout.pools[0]
            .datasets
            .iter()
            .map(|d| d.name.clone())
            .collect()
    };
    assert_eq!(names("nas"), ["reserved", "storage", "persistSave"]);
    assert_eq!(
        names("vault"),
        ["reserved", "storage", "persistSave", "backups"]
    );
    let nas = &fleet.host("nas").unwrap().layout.pools[0];
    assert_eq!(nas.topology, Topology::Mirror);
    assert_eq!(nas.luks_mapping(1), "stg2");
    assert_eq!(nas.kind, LayoutKind::Data);
    assert_eq!(nas.esp_size, 0);
    let storage = nas.dataset("storage").unwrap();
    // Mounted by ZFS at its mountpoint, as disko does without `legacy`.
    assert_eq!(storage.options["mountpoint"], "/storage");
    assert_eq!(storage.options["atime"], "off");
    assert!(!storage.blank);
}

#[test]
fn templates_and_host_changes_layer() {
    let src = r#"
[layouts.lab]
from = "seed"
encryption = "none"
esp_size = "0"
reservation = "16M"
pool_options = { ashift = "inherit", autotrim = "inherit" }
root_options = { checksum = "sha256", compression = "gzip", dnodesize = "inherit", relatime = "inherit" }

[layouts.lab.datasets.home]
mountpoint = "/home"
options = { mountpoint = "legacy" }

[hosts.a]
[hosts.a.pools.zroot]
layout = "lab"
disks = ["/var/lib/lab/a.img"]
reservation = "32M"
root_options = { compression = "lzjb" }
persist = { persist = ["/var/lib/postgresql"] }
[hosts.a.pools.zroot.datasets.nix]
options = { atime = "on" }
"#;
    let fleet = parse(src).unwrap();
    let p = &fleet.host("a").unwrap().layout.pools[0];
    assert_eq!(p.template, "lab");
    assert_eq!(p.encryption, Encryption::None);
    assert_eq!(p.esp_size, 0);
    assert_eq!(p.reservation, 32 << 20);
    assert!(p.pool_options.is_empty());
    assert_eq!(p.root_options["compression"], "lzjb");
    assert_eq!(p.root_options["checksum"], "sha256");
    assert!(!p.root_options.contains_key("dnodesize"));
    assert_eq!(p.dataset("nix").unwrap().options["atime"], "on");
    assert_eq!(p.dataset("nix").unwrap().options["canmount"], "on");
    assert_eq!(
        p.dataset("home").unwrap().mountpoint.as_deref(),
        Some("/home")
    );
    let persist = &p.dataset("persist").unwrap().persist;
    assert!(persist.contains(&"/var/lib/nixos".to_string()));
    assert!(persist.contains(&"/var/lib/postgresql".to_string()));
    assert!(p.secret.is_none());
}

#[test]
fn the_unlock_secret_is_the_default_and_zfs_roots_follow_the_layout() {
    let src = r#"
[hosts.a]
[hosts.a.unlock]
method = "zfs"
secret = "pass:hosts/a"
[hosts.a.pools.tank]
layout = "storage"
encryption = "zfs"
disks = ["/dev/disk/by-id/ata-A"]
"#;
    let fleet = parse(src).unwrap();
    let h = fleet.host("a").unwrap();
    let p = &h.layout.pools[0];
    assert_eq!(p.secret.as_ref().unwrap().to_string(), "pass:hosts/a");
    assert_eq!(p.root_options["encryption"], "aes-256-gcm");
    assert_eq!(p.root_options["keyformat"], "passphrase");
    assert_eq!(p.root_options["keylocation"], "prompt");
    let roots: Vec<String> = h
        .unlock
        .as_ref()
        .unwrap()
        .encryption_roots
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(roots, ["tank"]);
}

#[test]
fn a_kernel_name_is_a_warning_with_its_place() {
    let fleet = parse(
        "[hosts.a]\nhost_id = \"00000001\"\n[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ndisks = [\"/dev/sda\"]\n",
    )
    .unwrap();
    let w: Vec<String> = fleet.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        ["fleet.toml:6:10: hosts.a.pools.zroot.disks[0]: `/dev/sda` is a kernel name, which can change between boots and installs\n  hint: name the disk by id: `ls -l /dev/disk/by-id/` shows which id points at it"]
    );
}

#[test]
fn mistakes_name_file_line_key() {
    let cases: &[(&str, &str)] = &[
        // The seed's bug: two disks became a stripe.
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ndisks = [\"/dev/disk/by-id/a\", \"/dev/disk/by-id/b\"]\n",
            "fleet.toml:4:9: hosts.a.pools.zroot.disks: 2 disks but no `topology`; zfleet does not guess (disko made two disks a stripe)\n  hint: set `topology = \"mirror\"` (or \"raidz1\", … or \"stripe\" if you mean it)",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ntopology = \"single\"\ndisks = [\"/dev/disk/by-id/a\", \"/dev/disk/by-id/b\"]\n",
            "fleet.toml:4:12: hosts.a.pools.zroot.topology: \"single\" takes one disk, not 2\n  hint: for two disks that hold the same data, `topology = \"mirror\"`",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ntopology = \"raidz2\"\ndisks = [\"/dev/disk/by-id/a\", \"/dev/disk/by-id/b\"]\n",
            "fleet.toml:4:12: hosts.a.pools.zroot.topology: \"raidz2\" needs at least 3 disks, not 2",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ntopology = \"mirorr\"\ndisks = [\"/dev/disk/by-id/a\"]\n",
            "fleet.toml:4:12: hosts.a.pools.zroot.topology: `mirorr` is not a topology; expected \"single\", \"mirror\", \"raidz1\", \"raidz2\", \"raidz3\" or \"stripe\"",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"sead\"\ndisks = [\"/dev/disk/by-id/a\"]\n",
            "fleet.toml:2:10: hosts.a.pools.zroot.layout: layout `sead` does not exist\n  hint: did you mean `seed`?",
        ),
        (
            "[hosts.a.pools.zroot]\ndisks = [\"/dev/disk/by-id/a\"]\n",
            "fleet.toml:1:1: hosts.a.pools.zroot.layout: required key is missing\n  hint: name the layout, for example `layout = \"seed\"` (layouts: seed, storage)",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\ndisks = [\"/dev/disk/by-id/a\"]\n",
            "fleet.toml:1:16: hosts.a.pools.zroot: is encrypted (luks) but names no secret\n  hint: set `secret = \"op://vault/item/field\"` here, or the host's [unlock] secret",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ndisks = [\"/tmp/a.img\"]\n",
            "fleet.toml:4:10: hosts.a.pools.zroot.disks[0]: `/tmp/a.img` is a file, which cannot hold LUKS; only block devices under /dev are partitioned\n  hint: for a pool on files set `encryption = \"none\"`, `esp_size = \"0\"` and `swap_size = \"0\"`",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\nesp_size = \"2 parsecs\"\ndisks = [\"/dev/disk/by-id/a\"]\n",
            "fleet.toml:4:12: hosts.a.pools.zroot.esp_size: `2 parsecs` is not a size; write it like \"2GiB\", \"512M\" or \"0\"",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ndisks = [\"/dev/disk/by-id/a\", \"/dev/disk/by-id/a\"]\ntopology = \"mirror\"\n",
            "fleet.toml:4:31: hosts.a.pools.zroot.disks[1]: `/dev/disk/by-id/a` is listed twice",
        ),
        (
            "[hosts.a]\nhost_id = \"xyz\"\n",
            "fleet.toml:2:11: hosts.a.host_id: `xyz` is not a host id: 8 hex digits, as `head -c4 /dev/urandom | od -A none -t x4` prints",
        ),
        (
            "[layouts.seed]\nkind = \"root\"\n",
            "fleet.toml:1:10: layouts.seed: `seed` is a built-in layout and cannot be redefined\n  hint: give yours another name and start it with `from = \"seed\"`",
        ),
        (
            "[layouts.a]\nfrom = \"b\"\n[layouts.b]\nfrom = \"a\"\n",
            "fleet.toml:4:8: layouts.b.from: layouts refer to each other in a circle: a → b → a",
        ),
        (
            "[layouts.a]\nroot_options = { \"bad key\" = \"x\" }\n",
            "fleet.toml:2:18: layouts.a.root_options.\"bad key\": `bad key` is not a ZFS property name",
        ),
        (
            "[layouts.a]\n[layouts.a.datasets.x]\nmountpoint = \"data\"\n",
            "fleet.toml:3:14: layouts.a.datasets.x.mountpoint: `data` is not an absolute, normalised path",
        ),
        (
            "[layouts.a]\nesp_size = \"1G\"\n",
            "fleet.toml:2:12: layouts.a.esp_size: only a layout of kind \"root\" has an ESP\n  hint: set `kind = \"root\"`, or `esp_size = \"0\"`",
        ),
        (
            "[layouts.a]\nreservation = \"1G\"\n[layouts.a.datasets.reserved]\n",
            "fleet.toml:3:21: layouts.a.datasets.reserved: `reserved` is made from the layout's `reservation`\n  hint: set `reservation = \"20GiB\"` (or \"0\" for none) instead",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ndisks = [\"/dev/disk/by-id/a\"]\n[hosts.a.pools.tank]\nlayout = \"storage\"\nsecret = \"env:K\"\ndisks = [\"/dev/disk/by-id/a\"]\n",
            "fleet.toml:8:10: hosts.a.pools.tank.disks[0]: `/dev/disk/by-id/a` is already a disk of pool `zroot`",
        ),
        (
            "[hosts.a.pools.zroot]\nlayot = \"seed\"\n",
            "fleet.toml:2:1: hosts.a.pools.zroot.layot: unknown key; expected one of `layout`, `disks`, `topology`, `encryption`, `esp_size`, `swap_size`, `reservation`, `secret`, `pool_options`, `root_options`, `datasets`, `persist`\n  hint: did you mean `layout`?",
        ),
    ];
    for (src, want) in cases {
        let got = err(src);
        // The host_id warning is not an error; only errors are compared.
        assert_eq!(&got, want, "for:\n{src}");
    }
}

/// Names a layout, a pool or a `persist` table gets from the file reach the
/// terminal escaped, like every other value of the fleet file.
#[test]
fn names_from_the_file_are_escaped_in_messages() {
    let cases: &[(&str, &str)] = &[
        (
            "[hosts.a.pools.zroot]\nlayout = \"se\\u001b[2Jed\"\ndisks = [\"/dev/disk/by-id/a\"]\n",
            "fleet.toml:2:10: hosts.a.pools.zroot.layout: layout `se\\u{1b}[2Jed` does not exist\n  hint: layouts: seed, storage",
        ),
        (
            "[layouts.mine]\nfrom = \"x\\u0007\"\n",
            "fleet.toml:2:8: layouts.mine.from: layout `x\\u{7}` does not exist\n  hint: layouts: seed, storage, mine",
        ),
        (
            "[hosts.a.pools.zroot]\nlayout = \"seed\"\nsecret = \"env:K\"\ndisks = [\"/dev/disk/by-id/a\"]\n[hosts.a.pools.zroot.persist]\n\"persist\\u001b]0;x\" = [\"/etc/ssh\"]\n",
            "fleet.toml:6:1: hosts.a.pools.zroot.persist.\"persist\\u{1b}]0;x\": `persist\\u{1b}]0;x` is not a dataset of layout `seed`\n  hint: datasets: etcssh, persist, persistSave, nix, root",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(&err(src), want, "for:\n{src}");
        // The message itself, which `zfleet check --json` also carries, is
        // escaped, not only its rendering.
        let Err(errors) = config::parse(src, Path::new("fleet.toml")) else {
            panic!("expected an error for:\n{src}");
        };
        for e in &errors.0 {
            assert!(
                !e.message.contains(['\u{1b}', '\u{7}']),
                "a raw control character in {:?}",
                e.message
            );
        }
    }
}
