//! `zfleet deploy`: this zfleet binary and the fleet file onto fleet hosts,
//! over the admin ssh access.
//!
//! observe (one remote command per host: architecture, the installed
//! binary's version and checksum, the fleet file's and the units' checksums,
//! whether systemd runs zfleet's daemon) → [`plan`] (pure) → [`remote`]
//! (copy, check, rename; `daemon-reload`, `try-restart`).
//! The binary is written beside its final path, checked there (size,
//! SHA-256, that it runs and reports the expected version), flushed and then
//! renamed over the old one: a `zfleet serve` or daemon that is running keeps
//! its old file, and a copy that breaks off leaves the old binary in place.

pub mod remote;

use std::collections::BTreeMap;

use serde::Serialize;

/// The binary being deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Build {
    /// `zfleet X.Y.Z` as `--version` prints it.
    pub version: String,
    pub sha256: String,
    pub size: u64,
    /// `uname -m` names it runs on (`x86_64`).
    pub arch: &'static str,
}

/// What a host has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// `uname -m`.
    pub arch: String,
    /// First line of the installed binary's `--version`; `None`: not installed.
    pub version: Option<String>,
    pub sha256: Option<String>,
    /// SHA-256 of the host's fleet file; `None`: it has none.
    pub fleet_sha256: Option<String>,
    /// systemd runs here.
    pub systemd: bool,
    /// zfleet's daemon unit is active.
    pub daemon_active: bool,
    /// The unit directory (`/etc/systemd/system`) exists: a host with systemd
    /// installed, running or not (a chroot, an image being prepared).
    pub unit_dir: bool,
    /// SHA-256 of zfleet's units there, by file name.
    pub units: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryStep {
    /// No zfleet at the path.
    Install,
    /// Another version.
    Upgrade,
    /// The same version string, another build (a different checksum).
    Replace,
    /// The same build.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStep {
    Install,
    Update,
    Keep,
}

/// What to do on one host, decided from what it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub old_version: Option<String>,
    pub binary: BinaryStep,
    pub fleet: FileStep,
    /// Each unit to write and what becomes of it; empty where the host has
    /// no unit directory.
    pub units: Vec<(String, FileStep)>,
    /// `systemctl daemon-reload` after writing units (systemd runs).
    pub reload_systemd: bool,
    /// Restart the daemon after the binary or its unit changed.
    pub restart_daemon: bool,
    /// Why nothing can be done on this host (another architecture).
    pub refused: Option<String>,
}

/// `std::env::consts::ARCH` as `uname -m` spells it.
pub fn uname_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86" => "i686",
        "arm" => "armv7l",
        "powerpc64" => "ppc64",
        a => a,
    }
}

fn same_arch(build: &str, host: &str) -> bool {
    build == host
        || matches!(
            (build, host),
            ("i686", "i386" | "i486" | "i586")
                | ("armv7l", "armv6l" | "armv8l")
                | ("aarch64", "arm64")
        )
}

/// What `deploy` does on `host`, given what it has: `units` are the unit
/// files it should have, as (file name, SHA-256).
pub fn plan(
    host: &str,
    build: &Build,
    seen: &Observed,
    fleet_sha256: &str,
    units: &[(&str, &str)],
) -> HostPlan {
    let refused = (!same_arch(build.arch, &seen.arch)).then(|| {
        format!(
            "{host} is {} and this zfleet is built for {}; deploy a build for {} (`cargo build --release --target …`) from a machine of that kind",
            seen.arch, build.arch, seen.arch
        )
    });
    let binary = match (&seen.version, &seen.sha256) {
        _ if refused.is_some() => BinaryStep::Keep,
        (None, _) | (_, None) => BinaryStep::Install,
        (Some(_), Some(sha)) if *sha == build.sha256 => BinaryStep::Keep,
        (Some(v), _) if *v == build.version => BinaryStep::Replace,
        (Some(_), _) => BinaryStep::Upgrade,
    };
    let fleet = match &seen.fleet_sha256 {
        _ if refused.is_some() => FileStep::Keep,
        None => FileStep::Install,
        Some(s) if s == fleet_sha256 => FileStep::Keep,
        Some(_) => FileStep::Update,
    };
    let units: Vec<(String, FileStep)> = if refused.is_some() || !seen.unit_dir {
        Vec::new()
    } else {
        units
            .iter()
            .map(|(name, sha)| {
                let step = match seen.units.get(*name) {
                    None => FileStep::Install,
                    Some(s) if s == sha => FileStep::Keep,
                    Some(_) => FileStep::Update,
                };
                (name.to_string(), step)
            })
            .collect()
    };
    let changed = |name: &str| {
        units
            .iter()
            .any(|(n, step)| n == name && *step != FileStep::Keep)
    };
    let daemon_unit_changed = changed(remote::DAEMON_UNIT);
    HostPlan {
        host: host.to_string(),
        old_version: seen.version.clone(),
        binary,
        fleet,
        reload_systemd: seen.systemd && units.iter().any(|(_, s)| *s != FileStep::Keep),
        restart_daemon: seen.daemon_active && (binary != BinaryStep::Keep || daemon_unit_changed),
        units,
        refused,
    }
}

/// Versions in the fleet after a deploy, when they are not all the same:
/// `(version, hosts)` pairs, most hosts first.
pub fn mixed_versions(versions: &[(String, Option<String>)]) -> Vec<(String, Vec<String>)> {
    let mut by: Vec<(String, Vec<String>)> = Vec::new();
    for (host, v) in versions {
        let v = v.clone().unwrap_or_else(|| "none".into());
        match by.iter_mut().find(|(x, _)| *x == v) {
            Some((_, hosts)) => hosts.push(host.clone()),
            None => by.push((v, vec![host.clone()])),
        }
    }
    if by.len() < 2 {
        return Vec::new();
    }
    by.sort_by_key(|b| std::cmp::Reverse(b.1.len()));
    by
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn build() -> Build {
        Build {
            version: "zfleet 0.2.0".into(),
            sha256: "new".into(),
            size: 1,
            arch: "x86_64",
        }
    }

    fn seen(version: Option<&str>, sha: Option<&str>, fleet: Option<&str>) -> Observed {
        Observed {
            arch: "x86_64".into(),
            version: version.map(str::to_string),
            sha256: sha.map(str::to_string),
            fleet_sha256: fleet.map(str::to_string),
            systemd: true,
            daemon_active: true,
            unit_dir: true,
            units: BTreeMap::new(),
        }
    }

    #[rstest]
    #[case::nothing_there(seen(None, None, None), BinaryStep::Install, FileStep::Install, true)]
    #[case::older(
        seen(Some("zfleet 0.1.0"), Some("old"), Some("f")),
        BinaryStep::Upgrade,
        FileStep::Keep,
        true
    )]
    #[case::same_version_other_build(
        seen(Some("zfleet 0.2.0"), Some("old"), Some("g")),
        BinaryStep::Replace,
        FileStep::Update,
        true
    )]
    #[case::same_build(
        seen(Some("zfleet 0.2.0"), Some("new"), Some("f")),
        BinaryStep::Keep,
        FileStep::Keep,
        false
    )]
    #[case::broken_binary(
        seen(Some("zfleet 0.1.0"), None, None),
        BinaryStep::Install,
        FileStep::Install,
        true
    )]
    fn steps(
        #[case] seen: Observed,
        #[case] binary: BinaryStep,
        #[case] fleet: FileStep,
        #[case] restart: bool,
    ) {
        let p = plan("h", &build(), &seen, "f", &[]);
        assert_eq!(
            (p.binary, p.fleet, p.restart_daemon),
            (binary, fleet, restart)
        );
        assert_eq!(p.refused, None);
    }

    #[test]
    fn another_architecture_is_refused_and_nothing_planned() {
        let mut s = seen(Some("zfleet 0.1.0"), Some("old"), None);
        s.arch = "aarch64".into();
        let p = plan("pi", &build(), &s, "f", &[("zfleet.service", "u")]);
        assert!(p.units.is_empty());
        assert_eq!(
            (p.binary, p.fleet, p.restart_daemon),
            (BinaryStep::Keep, FileStep::Keep, false)
        );
        assert!(p
            .refused
            .unwrap()
            .starts_with("pi is aarch64 and this zfleet is built for x86_64"));
        assert!(same_arch(uname_arch("x86"), "i386"));
    }

    #[rstest]
    #[case::none_there(None, Some(FileStep::Install), true)]
    #[case::another(Some("old"), Some(FileStep::Update), true)]
    #[case::the_same(Some("u"), Some(FileStep::Keep), false)]
    fn units_and_the_restart_they_bring(
        #[case] there: Option<&str>,
        #[case] step: Option<FileStep>,
        #[case] restart: bool,
    ) {
        // The same binary: only the unit can call for a restart.
        let mut s = seen(Some("zfleet 0.2.0"), Some("new"), Some("f"));
        if let Some(sha) = there {
            s.units.insert("zfleet.service".into(), sha.into());
        }
        let p = plan("h", &build(), &s, "f", &[("zfleet.service", "u")]);
        assert_eq!(
            p.units,
            step.map(|s| ("zfleet.service".to_string(), s))
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert_eq!((p.restart_daemon, p.reload_systemd), (restart, restart));
        // Not running: reloaded, never started.
        s.daemon_active = false;
        let p = plan("h", &build(), &s, "f", &[("zfleet.service", "u")]);
        assert_eq!((p.restart_daemon, p.reload_systemd), (false, restart));
        // No systemd running, but its unit directory: written, nothing reloaded.
        s.systemd = false;
        let p = plan("h", &build(), &s, "f", &[("zfleet.service", "u")]);
        assert_eq!(p.units.len(), 1);
        assert!(!p.reload_systemd && !p.restart_daemon);
        // No unit directory: no units.
        s.unit_dir = false;
        let p = plan("h", &build(), &s, "f", &[("zfleet.service", "u")]);
        assert!(p.units.is_empty());
    }

    #[test]
    fn mixed_versions_are_reported_only_when_mixed() {
        let v = |h: &str, x: Option<&str>| (h.to_string(), x.map(str::to_string));
        assert!(mixed_versions(&[v("a", Some("1")), v("b", Some("1"))]).is_empty());
        assert_eq!(
            mixed_versions(&[
                v("a", Some("1")),
                v("b", Some("2")),
                v("c", Some("2")),
                v("d", None)
            ]),
            [
                ("2".to_string(), vec!["b".to_string(), "c".to_string()]),
                ("1".to_string(), vec!["a".to_string()]),
                ("none".to_string(), vec!["d".to_string()]),
            ]
        );
    }
}
