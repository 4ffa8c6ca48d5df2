//! Running the real `zfleet` binary inside lab hosts.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Output;

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

/// Runs `zfleet --config FLEET --host HOST ARGS…` on lab host `host`.
pub fn zfleet(host: &Host, fleet: &std::path::Path, args: &[&str]) -> Run {
    let out: Output = host
        .command(zfleet_bin())
        .arg("--config")
        .arg(fleet)
        .arg("--host")
        .arg(host.name())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
