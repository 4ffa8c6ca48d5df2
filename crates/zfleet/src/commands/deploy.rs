use clap::{Args, ValueEnum};
use serde::Serialize;
use zfleet_core::deploy::remote::{self, Check};
use zfleet_core::deploy::{self, BinaryStep, Build, FileStep, HostPlan};
use zfleet_core::export::systemd::{daemon_units, timer_units, Unit, UnitOptions};
use zfleet_core::Error;

use crate::cli::{parse_size, GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// Install or upgrade zfleet on fleet hosts over the admin ssh access: this
/// very binary, and the fleet file.
///
/// For each HOST (default: every host in the fleet file but this one), one
/// command reads the architecture, the installed zfleet's version and SHA-256
/// and the fleet file's SHA-256. Where the binary differs it is copied beside
/// --zfleet-path, checked there (size, SHA-256, that it runs and prints the
/// expected version), flushed and renamed over the old one, so a running
/// `zfleet serve` or daemon never sees a half-written file and a copy that
/// breaks off leaves the old binary working. The fleet file is installed or
/// replaced the same way where its hash differs (the old one kept as
/// `.previous`), and so are the host's systemd units (`zfleet export systemd
/// HOST` with these paths) where --unit-dir exists; systemd is reloaded after
/// a unit changed. A daemon that systemd runs is restarted (`systemctl
/// try-restart`) after the binary or its unit changed; one that is not
/// running is not started, and no unit is enabled. Prints host, old version,
/// new version and what was done; warns when the fleet runs mixed versions
/// afterwards.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Hosts to deploy to (default: all but this one).
    hosts: Vec<String>,
    /// Show what would be done, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where zfleet goes on each host (`zfleet grant --zfleet-path` puts the
    /// same path in the backup account's forced command).
    #[arg(long, value_name = "PATH", default_value = "/usr/local/bin/zfleet")]
    zfleet_path: String,
    /// Where the fleet file goes on each host.
    #[arg(long, value_name = "PATH", default_value = zfleet_core::config::DEFAULT_PATH)]
    config_path: String,
    /// The systemd units to install: the daemon's `zfleet.service`, the
    /// service and timer pairs of `export systemd --timers`, or none.
    #[arg(long, value_enum, default_value_t = Units::Daemon)]
    units: Units,
    /// Where the units go; a host without this directory gets none.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    unit_dir: String,
    /// Limit each copy to this many bytes per second (`10M`, `500K`).
    #[arg(long, value_name = "RATE")]
    rate_limit: Option<String>,
    /// Hosts deployed to at the same time.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Units {
    /// `zfleet.service`, the daemon.
    Daemon,
    /// `zfleet-run` and `zfleet-backup` services and timers.
    Timers,
    /// No units.
    None,
}

#[derive(Debug, Serialize)]
struct Row {
    host: String,
    old_version: Option<String>,
    /// The version installed afterwards (or that would be, with --dry-run).
    new_version: Option<String>,
    plan: Option<HostPlan>,
    /// `installed`, `upgraded`, `replaced`, `up to date`, `would …`, `failed`, `refused`.
    result: String,
    fleet: String,
    /// `installed`, `updated`, `same`, `no unit dir`, `-` (--units none).
    units: String,
    daemon: String,
    error: Option<String>,
}

fn step_words(p: &HostPlan, dry: bool) -> (&'static str, &'static str) {
    let bin = match (p.binary, dry) {
        (BinaryStep::Install, false) => "installed",
        (BinaryStep::Upgrade, false) => "upgraded",
        (BinaryStep::Replace, false) => "replaced",
        (BinaryStep::Install, true) => "would install",
        (BinaryStep::Upgrade, true) => "would upgrade",
        (BinaryStep::Replace, true) => "would replace",
        (BinaryStep::Keep, _) => "up to date",
    };
    let fleet = match (p.fleet, dry) {
        (FileStep::Install, false) => "installed",
        (FileStep::Update, false) => "updated",
        (FileStep::Install, true) => "would install",
        (FileStep::Update, true) => "would update",
        (FileStep::Keep, _) => "same",
    };
    (bin, fleet)
}

pub fn cmd_deploy(g: &GlobalArgs, a: &DeployArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    let hosts: Vec<String> = if a.hosts.is_empty() {
        cx.fleet
            .hosts
            .keys()
            .filter(|h| **h != cx.this_host)
            .cloned()
            .collect()
    } else {
        for h in &a.hosts {
            cx.fleet.host(h).ok_or_else(|| Error::UnknownHost {
                name: h.clone(),
                known: cx.fleet.hosts.keys().cloned().collect(),
            })?;
        }
        a.hosts.clone()
    };
    let rate_limit = a.rate_limit.as_deref().map(parse_size).transpose()?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Internal(format!("cannot find the running zfleet binary: {e}")))?;
    let (sha256, size) = remote::sha256_file(&exe).map_err(|source| Error::File {
        path: exe.clone(),
        action: "read",
        source,
    })?;
    let build = Build {
        version: format!("zfleet {}", env!("CARGO_PKG_VERSION")),
        sha256,
        size,
        arch: deploy::uname_arch(std::env::consts::ARCH),
    };
    let fleet_bytes = std::fs::read(&g.config).map_err(|source| Error::File {
        path: g.config.clone(),
        action: "read",
        source,
    })?;
    let fleet_sha = remote::sha256_bytes(&fleet_bytes);
    let rows = zfleet_core::parallel::map(&hosts, a.parallel.max(1), |name| {
        deploy_one(
            &cx,
            name,
            a,
            &build,
            &exe,
            &fleet_bytes,
            &fleet_sha,
            rate_limit,
        )
    });
    let mut versions: Vec<(String, Option<String>)> =
        vec![(cx.this_host.clone(), Some(build.version.clone()))];
    versions.extend(rows.iter().map(|r| (r.host.clone(), r.new_version.clone())));
    let mixed = deploy::mixed_versions(&versions);
    if a.out.json {
        #[derive(Serialize)]
        struct Report<'a> {
            build: &'a Build,
            hosts: &'a [Row],
            mixed_versions: &'a [(String, Vec<String>)],
        }
        render::json(&Report {
            build: &build,
            hosts: &rows,
            mixed_versions: &mixed,
        });
    } else {
        let mut t = render::table([
            "HOST",
            "OLD",
            "NEW",
            "RESULT",
            "FLEET FILE",
            "UNITS",
            "DAEMON",
        ]);
        for r in &rows {
            t.add_row([
                r.host.clone(),
                r.old_version.clone().unwrap_or_else(|| "-".into()),
                r.new_version.clone().unwrap_or_else(|| "-".into()),
                r.result.clone(),
                r.fleet.clone(),
                r.units.clone(),
                r.daemon.clone(),
            ]);
        }
        render::print_table(&t, "");
        for r in &rows {
            if let Some(e) = &r.error {
                eprintln!(
                    "error: {}: {}",
                    r.host,
                    zfleet_core::text::printable_lines(e)
                );
            }
        }
    }
    if !mixed.is_empty() {
        eprintln!(
            "warning: the fleet runs mixed versions{}: {}",
            if a.dry_run {
                " (after this deploy)"
            } else {
                ""
            },
            mixed
                .iter()
                .map(|(v, h)| format!("{v} on {}", h.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(if rows.iter().any(|r| r.error.is_some()) {
        crate::exit::REMOTE
    } else {
        crate::exit::OK
    })
}

#[allow(clippy::too_many_arguments)]
fn deploy_one(
    cx: &zfleet_core::runtime::Runtime,
    name: &str,
    a: &DeployArgs,
    build: &Build,
    exe: &std::path::Path,
    fleet_bytes: &[u8],
    fleet_sha: &str,
    rate_limit: Option<u64>,
) -> Row {
    let mut row = Row {
        host: name.to_string(),
        old_version: None,
        new_version: None,
        plan: None,
        result: "failed".into(),
        fleet: "-".into(),
        units: "-".into(),
        daemon: "-".into(),
        error: None,
    };
    let host = match cx.host(name) {
        Ok(h) => h,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    let ep = host.endpoint();
    let units = match host_units(cx, name, a) {
        Ok(u) => u,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    let unit_names: Vec<&str> = units.iter().map(|(u, _)| u.name.as_str()).collect();
    let observe = || remote::observe(ep, &a.zfleet_path, &a.config_path, &a.unit_dir, &unit_names);
    let seen = match observe() {
        Ok(s) => s,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    let wanted: Vec<(&str, &str)> = units
        .iter()
        .map(|(u, sha)| (u.name.as_str(), sha.as_str()))
        .collect();
    let p = deploy::plan(name, build, &seen, fleet_sha, &wanted);
    row.old_version = p.old_version.clone();
    row.new_version = p.old_version.clone();
    row.daemon = match (seen.systemd, seen.daemon_active) {
        (true, true) => "running".into(),
        (true, false) => "not running".into(),
        (false, _) => "no systemd".into(),
    };
    if let Some(why) = &p.refused {
        row.result = "refused".into();
        row.error = Some(why.clone());
        row.plan = Some(p);
        return row;
    }
    let (bin_words, fleet_words) = step_words(&p, a.dry_run);
    row.units = unit_words(&p, a, seen.unit_dir);
    if a.dry_run {
        row.result = bin_words.into();
        row.fleet = fleet_words.into();
        row.new_version = Some(build.version.clone());
        if p.restart_daemon {
            row.daemon = "would restart".into();
        }
        row.plan = Some(p);
        return row;
    }
    let progress = zfleet_core::progress::Silent;
    if p.binary != BinaryStep::Keep {
        let file = match std::fs::File::open(exe) {
            Ok(f) => f,
            Err(e) => {
                row.error = Some(format!("cannot read {}: {e}", exe.display()));
                return row;
            }
        };
        if let Err(e) = remote::install(
            ep,
            &a.zfleet_path,
            file,
            build.size,
            &build.sha256,
            "0755",
            Check::Runs(&build.version),
            rate_limit,
            &progress,
        ) {
            row.error = Some(e.to_string());
            row.plan = Some(p);
            return row;
        }
        // Read back what is there now: the checksum after the rename.
        match observe() {
            Ok(after) if after.sha256.as_deref() == Some(build.sha256.as_str()) => {
                row.new_version = after.version;
            }
            Ok(after) => {
                row.error = Some(format!(
                    "after the copy, {} has SHA-256 {}, not {}",
                    a.zfleet_path,
                    after.sha256.as_deref().unwrap_or("none"),
                    build.sha256
                ));
                row.plan = Some(p);
                return row;
            }
            Err(e) => {
                row.error = Some(e.to_string());
                row.plan = Some(p);
                return row;
            }
        }
    } else {
        row.new_version = Some(build.version.clone());
    }
    row.result = bin_words.into();
    if p.fleet != FileStep::Keep {
        match remote::install(
            ep,
            &a.config_path,
            fleet_bytes,
            fleet_bytes.len() as u64,
            fleet_sha,
            "0644",
            Check::KeepPrevious,
            None,
            &progress,
        ) {
            Ok(()) => row.fleet = fleet_words.into(),
            Err(e) => {
                row.fleet = "failed".into();
                row.error = Some(e.to_string());
            }
        }
    } else {
        row.fleet = "same".into();
    }
    for (name, step) in &p.units {
        if *step == FileStep::Keep {
            continue;
        }
        let Some((unit, sha)) = units.iter().find(|(u, _)| u.name == *name) else {
            continue;
        };
        let path = format!("{}/{name}", a.unit_dir.trim_end_matches('/'));
        if let Err(e) = remote::install(
            ep,
            &path,
            unit.text.as_bytes(),
            unit.text.len() as u64,
            sha,
            "0644",
            Check::Plain,
            None,
            &progress,
        ) {
            row.units = "failed".into();
            row.error.get_or_insert(e.to_string());
            row.plan = Some(p);
            return row;
        }
    }
    if p.reload_systemd {
        if let Err(e) = remote::reload_systemd(ep) {
            row.units = "reload failed".into();
            row.error.get_or_insert(e.to_string());
            row.plan = Some(p);
            return row;
        }
    }
    if p.restart_daemon {
        match remote::restart_daemon(ep) {
            Ok(()) => row.daemon = "restarted".into(),
            Err(e) => {
                row.daemon = "restart failed".into();
                row.error.get_or_insert(e.to_string());
            }
        }
    }
    row.plan = Some(p);
    row
}

/// The units `host` gets, each with its SHA-256, as `export systemd` writes
/// them for the paths deploy installs to.
fn host_units(
    cx: &zfleet_core::runtime::Runtime,
    host: &str,
    a: &DeployArgs,
) -> Result<Vec<(Unit, String)>, Error> {
    let o = UnitOptions {
        bin: a.zfleet_path.clone().into(),
        config: a.config_path.clone().into(),
    };
    let units = match a.units {
        Units::Daemon => daemon_units(&cx.fleet, host, &o)?,
        Units::Timers => timer_units(&cx.fleet, host, &o)?,
        Units::None => Vec::new(),
    };
    Ok(units
        .into_iter()
        .map(|u| {
            let sha = remote::sha256_bytes(u.text.as_bytes());
            (u, sha)
        })
        .collect())
}

fn unit_words(p: &HostPlan, a: &DeployArgs, unit_dir: bool) -> String {
    if a.units == Units::None {
        return "-".into();
    }
    if !unit_dir {
        return "no unit dir".into();
    }
    let any = |step: FileStep| p.units.iter().any(|(_, s)| *s == step);
    let word = if any(FileStep::Update) {
        "update"
    } else if any(FileStep::Install) {
        "install"
    } else {
        return "same".into();
    };
    match (word, a.dry_run) {
        (w, true) => format!("would {w}"),
        ("update", false) => "updated".into(),
        _ => "installed".into(),
    }
}
