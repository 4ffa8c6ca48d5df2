//! `zfleet init` on a lab host that runs sanoid and syncoid the way the seed's
//! backup server did: its pools, a sanoid.conf and NixOS-style syncoid units
//! (and a crontab line) written by the test into the host's own /etc.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{start, zfleet};
use zfleet_lab::sim::{DatasetSpec, HostSpec, LabSpec, PoolSpec};

const SANOID_CONF: &str = "\
[template_default]
hourly = 8
daily = 1
monthly = 1
yearly = 1

[template_backup]
autosnap = no
autoprune = yes
hourly = 0
daily = 14
monthly = 6
yearly = 1

[zroot/persistSave]
use_template = default

[zstorage/backups/alpha]
use_template = backup
";

/// What NixOS's syncoid module writes for `commands.alphaSave` (trimmed of
/// its sandboxing lines), with `interval = \"daily\"`.
const SERVICE: &str = "\
[Unit]
Description=Syncoid ZFS synchronization from syncoid@alpha:zroot/persistSave to zstorage/backups/alpha
After=zfs.target

[Service]
ExecStart=/nix/store/9x3-sanoid-2.2.0/bin/syncoid --no-sync-snap --sshkey /var/lib/syncoid/.ssh/id_ed25519 --sendoptions '' --recvoptions c --no-privilege-elevation syncoid@alpha:zroot/persistSave zstorage/backups/alpha
User=syncoid
Group=syncoid
";

const TIMER: &str = "[Timer]\nOnCalendar=daily\nPersistent=true\n";

const CRON: &str = "# bravo is not on NixOS\n30 2 * * * root /usr/sbin/syncoid --no-sync-snap --compress=zstd-fast syncoid@bravo.example.org:zroot/persistSave zstorage/backups/bravo/zroot/persistSave >> /var/log/syncoid.log 2>&1\n";

fn write(host: &zfleet_lab::sim::Host, path: &str, text: &str) {
    let tmp = host.dir().join("upload");
    std::fs::write(&tmp, text).unwrap();
    host.sh(&format!(
        "mkdir -p \"$(dirname {path})\" && cp {} {path}",
        tmp.display()
    ))
    .unwrap();
}

#[test]
fn init_on_a_sanoid_and_syncoid_server_writes_a_file_that_passes_check() {
    let spec = LabSpec::new("init").host(
        HostSpec::new("vault")
            .pool(
                PoolSpec::new("zroot")
                    .dataset(DatasetSpec::new("zroot/persist"))
                    .dataset(DatasetSpec::new("zroot/persistSave")),
            )
            .pool(
                PoolSpec::new("zstorage")
                    .dataset(DatasetSpec::new("zstorage/backups/alpha"))
                    .dataset(DatasetSpec::new("zstorage/backups/bravo/zroot/persistSave")),
            ),
    );
    let lab = start(&spec);
    let vault = lab.host("vault").unwrap();
    write(vault, "/etc/sanoid/sanoid.conf", SANOID_CONF);
    write(
        vault,
        "/etc/systemd/system/syncoid-alphaSave.service",
        SERVICE,
    );
    write(vault, "/etc/systemd/system/syncoid-alphaSave.timer", TIMER);
    write(vault, "/etc/cron.d/syncoid", CRON);
    let state = || {
        vault
            .sh("zfs list -H -t all -o name,used,mountpoint; zfs get -H -o name,property,value all | sort | sha256sum; find /etc -newer /etc/hostname -type f | sort")
            .unwrap()
    };
    let before = state();
    let config = lab.dir().join("fleet.toml");
    let run = zfleet(vault, &config, &["init", "--stdout"]).ok();
    assert_eq!(state(), before, "init changed the machine");
    assert!(!config.exists(), "--stdout wrote the file");
    let toml = run.stdout.clone();

    // The result is a fleet file `zfleet check` accepts, with the jobs the
    // server ran under syncoid.
    let generated = lab.dir().join("generated.toml");
    std::fs::write(&generated, &toml).unwrap();
    let check = zfleet(vault, &generated, &["check", "--json"]).ok().json();
    let jobs: Vec<String> = check["servers"][0]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            format!(
                "{}:{} → {}",
                j["client"].as_str().unwrap(),
                j["source"].as_str().unwrap(),
                j["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [
            "alpha:zroot/persistSave → zstorage/backups/alpha/zroot/persistSave",
            "bravo:zroot/persistSave → zstorage/backups/bravo/zroot/persistSave",
        ]
    );
    let bravo = &check["servers"][0]["jobs"][1];
    assert_eq!(bravo["ssh"]["address"], "bravo.example.org");
    assert_eq!(bravo["compress"], "zstd");
    // What was not carried over is on stderr, with where it came from.
    assert!(
        run.stderr.contains("/etc/systemd/system/syncoid-alphaSave.service:6: `--recvoptions=c`: `c` is `zfs receive -c`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("zfs rename zstorage/backups/alpha zstorage/backups/alpha.syncoid"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "/etc/cron.d/syncoid:2: `>> /var/log/syncoid.log 2>&1` after syncoid's arguments"
        ),
        "{}",
        run.stderr
    );
    // sanoid pruned syncoid's target: in zfleet that is the server's retention.
    assert!(
        run.stderr.contains("/etc/sanoid/sanoid.conf:18: [zstorage/backups/alpha] prunes what syncoid received there; zfleet prunes received backups (zstorage/backups/alpha/zroot/persistSave) with the server's retention template: set `retention = \"backup\"` in [hosts.vault.server]"),
        "{}",
        run.stderr
    );
    // Every line that sets something names its origin.
    for line in toml.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l == "]" {
            continue;
        }
        assert!(l.contains("  # "), "no origin: {line}");
    }
    // Sizes from `zfs list` vary with zfs-fuse's accounting.
    let stable: String = toml
        .lines()
        .map(|l| match l.strip_prefix("#   ") {
            Some(d) => format!(
                "#   {}",
                d.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            ),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("init_vault", stable);

    // --json says the same and that it validates; without --stdout the file
    // is written once and not overwritten.
    let report = zfleet(vault, &config, &["init", "--json"]).ok().json();
    assert_eq!(report["valid"], true);
    assert_eq!(report["toml"].as_str().unwrap(), toml);
    assert_eq!(
        report["found"]["pools"],
        serde_json::json!(["zroot", "zstorage"])
    );
    zfleet(vault, &config, &["init"]).ok();
    assert_eq!(std::fs::read_to_string(&config).unwrap(), toml);
    let again = zfleet(vault, &config, &["init"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("does not write over it"),
        "{}",
        again.stderr
    );
}
