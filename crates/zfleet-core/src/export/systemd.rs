//! systemd units for one host: either `zfleet.service`, the daemon, or for
//! those who prefer timers, a oneshot service and a timer for `zfleet run`
//! and one for `zfleet backup` (on a server, or a client that pushes).
//!
//! The daemon's hardening keeps what ZFS and ssh need: root (zfs ioctls),
//! `/dev/zfs`, the network, the state directory writable. Backups are
//! received with `canmount=off`, so the private mount namespace that
//! `ProtectSystem=` brings never hides a mount from the host.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::config::{Fleet, Period};
use crate::daemon::cadence::shortest_period;
use crate::daemon::{Schedule, Timing};

/// What the units run.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// The zfleet binary on the host.
    pub bin: PathBuf,
    /// The fleet file on the host.
    pub config: PathBuf,
}

impl Default for UnitOptions {
    fn default() -> Self {
        Self {
            bin: PathBuf::from("/usr/local/bin/zfleet"),
            config: PathBuf::from(crate::config::DEFAULT_PATH),
        }
    }
}

/// One unit file: its name (`zfleet.service`) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    pub text: String,
}

fn check_host(fleet: &Fleet, host: &str) -> Result<(), crate::Error> {
    if fleet.host(host).is_none() {
        return Err(crate::Error::UnknownHost {
            name: host.to_string(),
            known: fleet.hosts.keys().cloned().collect(),
        });
    }
    Ok(())
}

/// `--config … --host …`, the same in every unit; without a host, the
/// daemon takes this machine's name (or `ZFLEET_HOST`).
fn base_command(o: &UnitOptions, host: Option<&str>) -> String {
    let mut cmd = format!("{} --config {}", quote(&o.bin), quote(&o.config));
    if let Some(host) = host {
        let _ = write!(cmd, " --host {host}");
    }
    cmd
}

/// Paths in unit files are written bare unless they need quoting; systemd
/// accepts C-style quotes.
fn quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

const HARDENING: &str = "\
# Hardening that still lets zfs and ssh work: zfleet runs as root for the
# zfs ioctls, reaches /dev/zfs and the network, and writes only its state.
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
DevicePolicy=closed
DeviceAllow=/dev/zfs rw
UMask=0077
";

/// `zfleet.service`: the daemon for `host`.
pub fn daemon_units(fleet: &Fleet, host: &str, o: &UnitOptions) -> Result<Vec<Unit>, crate::Error> {
    check_host(fleet, host)?;
    Ok(vec![daemon_unit(
        Some(host),
        &fleet.state_dir,
        fleet.daemon.shutdown_timeout,
        o,
    )])
}

/// `zfleet.service` as a package ships it, written before any fleet file
/// exists: no `--host` (the daemon runs as the host named like the machine,
/// or `ZFLEET_HOST` from `/etc/default/zfleet`), the default state directory
/// and shutdown timeout.
pub fn package_daemon_unit(o: &UnitOptions) -> Unit {
    daemon_unit(
        None,
        Path::new(crate::config::DEFAULT_STATE_DIR),
        crate::config::DEFAULT_SHUTDOWN_TIMEOUT,
        o,
    )
}

fn daemon_unit(
    host: Option<&str>,
    state_dir: &Path,
    shutdown_timeout: std::time::Duration,
    o: &UnitOptions,
) -> Unit {
    let stop = shutdown_timeout.as_secs() + 30;
    let (what, install) = match host {
        Some(h) => (
            h.to_string(),
            "# Install as /etc/systemd/system/zfleet.service, then\n#   systemctl daemon-reload && systemctl enable --now zfleet",
        ),
        None => (
            "this machine".to_string(),
            "# It runs as the fleet host named like this machine, or as ZFLEET_HOST=\n# in /etc/default/zfleet. Enable it with\n#   systemctl enable --now zfleet",
        ),
    };
    let env_file = if host.is_none() {
        "EnvironmentFile=-/etc/default/zfleet\n"
    } else {
        ""
    };
    let mut t = String::new();
    let _ = write!(
        t,
        "# zfleet daemon for {what}: snapshots, backups, metrics and notifications
# from {config}.
{install}
[Unit]
Description=zfleet daemon ({what}): scheduled snapshots and backups
Documentation=man:zfs(8)
Wants=network-online.target
After=network-online.target zfs.target zfs-import.target

[Service]
Type=simple
{env_file}ExecStart={cmd} daemon
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=30s
# SIGTERM lets a running transfer stop where the next run can continue;
# the daemon exits within shutdown_timeout, systemd waits a little longer.
KillMode=mixed
TimeoutStopSec={stop}s
ReadWritePaths={state}
{HARDENING}
[Install]
WantedBy=multi-user.target
",
        config = o.config.display(),
        cmd = base_command(o, host),
        state = quote(state_dir),
    );
    Unit {
        name: "zfleet.service".into(),
        text: t,
    }
}

/// The timer pairs for `host`: `zfleet-run` where it has snapshot policies,
/// `zfleet-backup` where it backs up (a server) or pushes.
pub fn timer_units(fleet: &Fleet, host: &str, o: &UnitOptions) -> Result<Vec<Unit>, crate::Error> {
    check_host(fleet, host)?;
    let mut units = Vec::new();
    let cmd = base_command(o, Some(host));
    let policies = fleet.policies(host);
    if let Some(period) = shortest_period(&policies) {
        let p = &policies
            .iter()
            .map(|e| &e.policy)
            .min_by_key(|p| p.frequent_period)
            .cloned()
            .unwrap_or_default();
        let cal = match period {
            Period::Frequently => {
                let m = p.frequent_period.clamp(1, 60);
                format!("*-*-* *:00/{m}:00")
            }
            // sanoid is run every few minutes from cron; a quarter hour keeps
            // each period's snapshot within minutes of its preferred time.
            _ => "*-*-* *:00/15:00".to_string(),
        };
        units.extend(pair(
            "zfleet-run",
            &format!("zfleet run ({host}): take and prune policy snapshots"),
            &format!("{cmd} run --wait 5m"),
            &cal,
            0,
            fleet,
        ));
    }
    let server = fleet.host(host).and_then(|h| h.server.as_ref());
    let push = fleet
        .host(host)
        .and_then(|h| h.client.as_ref())
        .filter(|c| c.push && c.enabled);
    let timing: Option<&Timing> = match (server, push) {
        (Some(s), _) => Some(&s.schedule),
        (None, Some(c)) => Some(&c.schedule),
        (None, None) => None,
    };
    if let Some(timing) = timing {
        let cal = match timing.schedule {
            Schedule::Manual => None,
            s => Some(s.on_calendar().ok_or_else(|| {
                crate::Error::Usage(format!(
                    "the schedule `{s}` of {host} has no systemd calendar form; use `zfleet daemon`, or a schedule like \"every 15m\" or \"daily 02:00\""
                ))
            })?),
        };
        if let Some(cal) = cal {
            units.extend(pair(
                "zfleet-backup",
                &format!("zfleet backup ({host}): replicate to or from the backup servers"),
                &format!("{cmd} backup"),
                &cal,
                timing.jitter,
                fleet,
            ));
        }
    }
    Ok(units)
}

fn pair(
    name: &str,
    what: &str,
    exec: &str,
    calendar: &str,
    jitter: u32,
    fleet: &Fleet,
) -> [Unit; 2] {
    let service = format!(
        "[Unit]
Description={what}
Wants=network-online.target
After=network-online.target zfs.target zfs-import.target

[Service]
Type=oneshot
ExecStart={exec}
ReadWritePaths={state}
{HARDENING}",
        state = quote(&fleet.state_dir),
    );
    let mut timer = format!(
        "[Unit]
Description=Timer for {name}.service

[Timer]
OnCalendar={calendar}
# A run missed while the machine was off happens once at boot.
Persistent=true
"
    );
    if jitter > 0 {
        // The same delay every time, so runs stay a schedule apart.
        let _ = write!(
            timer,
            "RandomizedDelaySec={jitter}s\nFixedRandomDelay=true\n"
        );
    }
    timer.push_str("\n[Install]\nWantedBy=timers.target\n");
    [
        Unit {
            name: format!("{name}.service"),
            text: service,
        },
        Unit {
            name: format!("{name}.timer"),
            text: timer,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        crate::config::parse(
            r#"
[fleet]
state_dir = "/var/lib/zfleet"
[snapshots."zroot/data"]
frequently = 4
hourly = 24
[hosts.alpha]
[hosts.alpha.backup]
[hosts.vault]
[hosts.vault.server]
target_root = "tank/b"
schedule = "daily 02:30"
jitter = "10m"
"#,
            Path::new("fleet.toml"),
        )
        .unwrap()
    }

    #[test]
    fn the_daemon_unit() {
        let u = daemon_units(&fleet(), "vault", &UnitOptions::default()).unwrap();
        assert_eq!(u.len(), 1);
        let t = &u[0].text;
        assert!(t.contains(
            "ExecStart=/usr/local/bin/zfleet --config /etc/zfleet/fleet.toml --host vault daemon"
        ));
        for line in [
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "ReadWritePaths=/var/lib/zfleet",
            "DeviceAllow=/dev/zfs rw",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "TimeoutStopSec=60s",
        ] {
            assert!(t.lines().any(|l| l == line), "{line}\n{t}");
        }
    }

    #[test]
    fn timers_for_a_server_and_a_client() {
        let names = |h| {
            timer_units(&fleet(), h, &UnitOptions::default())
                .unwrap()
                .into_iter()
                .map(|u| u.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("vault"),
            [
                "zfleet-run.service",
                "zfleet-run.timer",
                "zfleet-backup.service",
                "zfleet-backup.timer"
            ]
        );
        assert_eq!(names("alpha"), ["zfleet-run.service", "zfleet-run.timer"]);
        let u = timer_units(&fleet(), "vault", &UnitOptions::default()).unwrap();
        assert!(u[1].text.contains("OnCalendar=*-*-* *:00/15:00"));
        assert!(u[3].text.contains("OnCalendar=*-*-* 02:30:00"));
        assert!(u[3].text.contains("RandomizedDelaySec=600s"));
        assert!(u[2].text.contains("--host vault backup"));
    }

    #[test]
    fn the_package_unit_names_no_host() {
        let o = UnitOptions {
            bin: PathBuf::from("/usr/bin/zfleet"),
            ..UnitOptions::default()
        };
        let t = package_daemon_unit(&o).text;
        for line in [
            "ExecStart=/usr/bin/zfleet --config /etc/zfleet/fleet.toml daemon",
            "EnvironmentFile=-/etc/default/zfleet",
            "ReadWritePaths=/var/lib/zfleet",
            "TimeoutStopSec=60s",
            "WantedBy=multi-user.target",
        ] {
            assert!(t.lines().any(|l| l == line), "{line}\n{t}");
        }
        assert!(!t.contains("--host"), "{t}");
        // The same unit as a host's but for the host: one code, one hardening.
        let hosts = daemon_units(&fleet(), "vault", &o).unwrap().remove(0).text;
        let body = |t: &str| {
            t.replace(" --host vault", "")
                .lines()
                .filter(|l| {
                    !(l.starts_with('#')
                        || l.starts_with("Description=")
                        || l.starts_with("EnvironmentFile="))
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(body(&t), body(&hosts));
    }

    #[test]
    fn unknown_host() {
        let e = daemon_units(&fleet(), "nope", &UnitOptions::default()).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn paths_with_spaces_are_quoted() {
        assert_eq!(
            quote(Path::new("/opt/my zfleet/bin")),
            "\"/opt/my zfleet/bin\""
        );
        assert_eq!(
            quote(Path::new("/usr/local/bin/zfleet")),
            "/usr/local/bin/zfleet"
        );
    }
}
