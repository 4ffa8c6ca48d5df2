//! `zfleet export disko` and `zfleet export initrd-rollback`: made from the
//! fleet file alone, and valid Nix (`nix-instantiate --parse`, from Debian's
//! nix-bin, which `scripts/test` installs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

const D4: &str = "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456";
const D5: &str = "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M654321";
const D6: &str = "/dev/disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K0000000";

fn zfleet_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_zfleet"))
}

#[test]
fn the_exports_are_valid_nix_and_name_the_layout() {
    // Needs no guest: the exports are made from the fleet file alone.
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[hosts.alpha]\nhost_id = \"8425e349\"\n[hosts.alpha.unlock]\nmethod = \"luks-initrd\"\nsecret = \"op://nix/alpha/encryption\"\n\
             [hosts.alpha.pools.zroot]\nlayout = \"seed\"\ntopology = \"mirror\"\nswap_size = \"1G\"\ndisks = [\"{D4}\", \"{D5}\"]\n\
             [hosts.alpha.pools.zstorage]\nlayout = \"storage\"\nencryption = \"zfs\"\ndisks = [\"{D6}\"]\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(zfleet_bin())
            .arg("--config")
            .arg(&fleet)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let disko = run(&["export", "disko", "alpha"]);
    for want in [
        "device = \"/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456\";",
        "mode = \"mirror\";",
        "name = \"crypted2\";",
        "allowDiscards = true;",
        "checksum = \"edonr\";",
        "\"com.sun:auto-snapshot\" = \"false\";",
        "reservation = \"20G\";",
        "postCreateHook = \"zfs snapshot zroot/root@empty && zfs hold zfleet-blank zroot/root@empty",
        "keylocation = \"file:///tmp/secret.key\";",
        "randomEncryption = true;",
    ] {
        assert!(disko.contains(want), "{want} not in:\n{disko}");
    }
    nix_parses(dir.path(), "disko.nix", &disko);
    for format in ["nixos", "postdevice"] {
        let text = run(&["export", "initrd-rollback", "alpha", "--format", format]);
        assert!(
            text.contains("root rollback --dataset zroot/root --snapshot empty"),
            "{text}"
        );
        nix_parses(dir.path(), &format!("{format}.nix"), &text);
    }
    let unit = run(&["export", "initrd-rollback", "alpha"]);
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/zfleet root rollback --dataset zroot/root --snapshot empty"
        ),
        "{unit}"
    );
    assert!(
        unit.contains("Before=sysroot.mount") && unit.contains("WantedBy=initrd.target"),
        "{unit}"
    );
}

/// `nix-instantiate --parse` (Debian's nix-bin) accepts it.
fn nix_parses(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    match Command::new("nix-instantiate")
        .arg("--parse")
        .arg(&p)
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "nix-instantiate is not installed: `apt-get install nix-bin` (scripts/test does)"
            )
        }
        Err(e) => panic!("nix-instantiate: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "{name} does not parse:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
