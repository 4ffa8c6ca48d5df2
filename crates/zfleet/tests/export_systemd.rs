#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! `zfleet export systemd`: the daemon's unit and the timer pairs pass
//! `systemd-analyze verify` (systemd's own parser, which also checks that the
//! programs exist), for a server and for a client.

use std::path::{Path, PathBuf};
use std::process::Command;

fn zfleet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zfleet"))
}

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-fleet.toml")
}

fn export(dir: &Path, host: &str, timers: bool) -> Vec<PathBuf> {
    let mut c = Command::new(zfleet_bin());
    c.arg("--config")
        .arg(seed())
        .args(["export", "systemd", host]);
    if timers {
        c.arg("--timers");
    }
    let out = c
        .arg("--bin")
        .arg(zfleet_bin())
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn verify(units: &[PathBuf]) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .output()
        .expect("systemd-analyze (Debian's systemd package) runs the unit check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify exits 0 on some warnings; a warning about our units is a defect.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("zfleet")).collect();
    assert!(ours.is_empty(), "{}", ours.join("\n"));
}

#[test]
fn daemon_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let units = export(dir.path(), "vault", false);
    let names: Vec<String> = units
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["zfleet.service"]);
    let text = std::fs::read_to_string(&units[0]).unwrap();
    assert!(text.contains("ProtectSystem=strict"));
    assert!(text.contains(&format!(
        "ExecStart={} --config {} --host vault daemon",
        zfleet_bin().display(),
        seed().display()
    )));
    verify(&units);
}

#[test]
fn timer_units_verify() {
    for (host, want) in [
        (
            "vault",
            &[
                "zfleet-backup.service",
                "zfleet-backup.timer",
                "zfleet-run.service",
                "zfleet-run.timer",
            ][..],
        ),
        ("alpha", &["zfleet-run.service", "zfleet-run.timer"][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let units = export(dir.path(), host, true);
        let names: Vec<String> = units
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, want, "{host}");
        verify(&units);
        if host == "vault" {
            let timer = std::fs::read_to_string(dir.path().join("zfleet-backup.timer")).unwrap();
            // The seed's vault: daily 02:00 with 20 minutes of jitter.
            assert!(timer.contains("OnCalendar=*-*-* 02:00:00"), "{timer}");
            assert!(timer.contains("RandomizedDelaySec=1200s"), "{timer}");
        }
    }
}

#[test]
fn printed_units_are_headed_by_their_names() {
    let out = Command::new(zfleet_bin())
        .arg("--config")
        .arg(seed())
        .args(["export", "systemd", "alpha", "--timers"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("# zfleet-run.service\n[Unit]\n"), "{text}");
    assert!(text.contains("\n# zfleet-run.timer\n[Unit]\n"), "{text}");
}

/// The package's unit: written with no fleet file anywhere (`--config`
/// points nowhere), no host in it, and systemd accepts it.
#[test]
fn the_package_unit_needs_no_fleet_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(zfleet_bin())
        .arg("--config")
        .arg(dir.path().join("no-such-fleet.toml"))
        .args(["export", "systemd", "--package", "--bin"])
        .arg(zfleet_bin())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = dir.path().join("zfleet.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.lines().any(|l| l
            == format!(
                "ExecStart={} --config /etc/zfleet/fleet.toml daemon",
                zfleet_bin().display()
            )),
        "{text}"
    );
    assert!(!text.contains("--host"), "{text}");
    verify(&[unit]);
    // A host and --package do not go together.
    let both = Command::new(zfleet_bin())
        .args(["export", "systemd", "vault", "--package"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}
