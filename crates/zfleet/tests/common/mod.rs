//! Running the real `zfleet` binary inside lab hosts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub mod browser;
pub mod daemon;

use zfleet_lab::sim::{Host, Lab, LabSpec};

pub fn zfleet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zfleet"))
}

/// Starts a lab or fails the test with what the machine lacks (never skips).
pub fn start(spec: &LabSpec) -> Lab {
    if let Err(e) = zfleet_lab::sim::check_prerequisites(spec.hosts.iter().any(|h| h.faketime)) {
        panic!("these tests need a machine that can run the simulated-host lab: {e:#}");
    }
    Lab::start(spec).unwrap_or_else(|e| panic!("lab did not start: {e:?}"))
}

/// Writes the lab's fleet file (plus `extra`) into the lab directory.
pub fn fleet_file(lab: &Lab, extra: &str) -> PathBuf {
    let path = lab.dir().join("fleet.toml");
    std::fs::write(&path, zfleet_lab::fleet::seed_fleet_toml(lab, extra)).unwrap();
    path
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "zfleet failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `zfleet --config FLEET --host HOST ARGS…` on lab host `host`.
pub fn zfleet(host: &Host, fleet: &Path, args: &[&str]) -> Run {
    zfleet_in_tz(host, fleet, None, args)
}

/// [`zfleet`] with `TZ` set, where snapshot names (local time) matter.
pub fn zfleet_in_tz(host: &Host, fleet: &Path, tz: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = host.command(zfleet_bin());
    if let Some(tz) = tz {
        cmd.env("TZ", tz);
    }
    cmd.arg("--config")
        .arg(fleet)
        .arg("--host")
        .arg(host.name())
        .args(args)
        .output()
        .unwrap()
        .into()
}

/// A fleet file with the lab's ssh settings followed by `body`.
pub fn ssh_fleet(lab: &Lab, body: &str) -> PathBuf {
    let path = lab.dir().join("fleet.toml");
    let head = format!(
        "[ssh]\nuser = \"root\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n\n",
        lab.user_key().display(),
        lab.known_hosts().display()
    );
    std::fs::write(&path, format!("{head}{body}")).unwrap();
    path
}

/// `[hosts.NAME]` with the lab address of `h`.
pub fn host_line(h: &Host) -> String {
    format!("[hosts.{}]\naddress = \"{}\"\n", h.name(), h.addr())
}

pub fn mountpoint(h: &Host, ds: &str) -> String {
    h.sh(&format!("zfs get -H -o value mountpoint {ds}"))
        .unwrap()
        .trim()
        .to_string()
}

/// Short names of the snapshots of `ds` itself, oldest first.
pub fn snapshots(h: &Host, ds: &str) -> Vec<String> {
    h.sh(&format!(
        "zfs list -H -o name -t snapshot -s createtxg -r {ds} 2>/dev/null || true"
    ))
    .unwrap()
    .lines()
    .filter(|l| l.starts_with(&format!("{ds}@")))
    .map(|l| l.rsplit('@').next().unwrap().to_string())
    .collect()
}

/// A fleet whose server `backup` reaches `client1` through the serve account
/// that `grant` sets up: a new backup key in the lab's directory, the admin's
/// ssh as root. `fleet_extra` is added to `[fleet]`, `client_backup` to
/// `[hosts.client1.backup]`. Returns the fleet file and the backup key.
pub fn served_fleet_file(lab: &Lab, fleet_extra: &str, client_backup: &str) -> (PathBuf, PathBuf) {
    let key = lab.dir().join("backup_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "zfleet@backup", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let fleet = lab.dir().join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[fleet]\nbackup_user = \"zfleet\"\nbackup_identity = \"{}\"\n{fleet_extra}\
             [ssh]\nuser = \"root\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n\
             [hosts.client1]\naddress = \"{}\"\n[hosts.client1.backup]\n{client_backup}\
             [hosts.backup]\naddress = \"{}\"\n[hosts.backup.server]\ntarget_root = \"zstorage/backups\"\npublic_key = \"{}\"\n",
            key.display(),
            lab.user_key().display(),
            lab.known_hosts().display(),
            c1.addr(),
            backup.addr(),
            public.trim()
        ),
    )
    .unwrap();
    (fleet, key)
}
