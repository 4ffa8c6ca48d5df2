use std::path::{Path, PathBuf};

use clap::Args;
use zfleet_core::init::{compose, parse_datasets, Found};
use zfleet_core::syncoid::sources;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};

/// Write a starting fleet.toml from what this machine already has: its pools
/// and datasets, /etc/sanoid/sanoid.conf (as `zfleet import sanoid` reads it)
/// and its syncoid jobs — systemd units with their timers, crontabs and cron
/// scripts that run syncoid (as `zfleet import syncoid` reads them).
///
/// Every line written says where it came from. Nothing else on the machine is
/// changed: only `zfs list`/`zpool list` run, and the file is written to
/// --config's path (never over an existing one without --force), or printed
/// with --stdout or --json. The result passes `zfleet check`; add the other
/// hosts and deploy it with `zfleet deploy`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Print the file on stdout instead of writing it.
    #[arg(long)]
    stdout: bool,
    /// Write over an existing fleet file.
    #[arg(long)]
    force: bool,
    /// Read sanoid.conf, units and crontabs below this directory instead of
    /// `/` (a mounted system, say); pools still come from this machine.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    #[command(flatten)]
    out: OutputArgs,
}

/// Where systemd keeps units, most local first: a unit in /etc hides one of
/// the same name below.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

const CRON_FILES: &[&str] = &["etc/crontab"];
const CRON_DIRS: &[&str] = &[
    "etc/cron.d",
    "var/spool/cron/crontabs",
    "var/spool/cron",
    "etc/cron.hourly",
    "etc/cron.daily",
    "etc/cron.weekly",
    "etc/cron.monthly",
];

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A readable text file that mentions syncoid; others are skipped quietly.
fn read_if_syncoid(p: &Path) -> Option<String> {
    let meta = std::fs::metadata(p).ok()?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    let text = std::fs::read_to_string(p).ok()?;
    text.contains("syncoid").then_some(text)
}

/// The label of `p` as on the machine (without --root's prefix).
fn label(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

fn find_jobs(root: &Path, found: &mut Found) {
    let mut seen_units = std::collections::HashSet::new();
    for dir in UNIT_DIRS {
        for p in files_in(&root.join(dir)) {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !name.ends_with(".service") || !seen_units.insert(name.clone()) {
                continue;
            }
            let Some(text) = read_if_syncoid(&p) else {
                continue;
            };
            let timer = UNIT_DIRS.iter().find_map(|d| {
                std::fs::read_to_string(root.join(d).join(name.replace(".service", ".timer"))).ok()
            });
            let l = label(root, &p);
            let f = sources::from_unit(&l, &text, timer.as_deref());
            found.job_files.push(l);
            found.syncoid_jobs.extend(f.jobs);
            found.syncoid_notes.extend(f.notes);
        }
    }
    let mut cron: Vec<PathBuf> = CRON_FILES.iter().map(|f| root.join(f)).collect();
    for d in CRON_DIRS {
        cron.extend(files_in(&root.join(d)));
    }
    for p in cron {
        let Some(text) = read_if_syncoid(&p) else {
            continue;
        };
        let l = label(root, &p);
        let mut f = sources::from_text(&l, &text);
        // A script in cron.daily and the like runs on that directory's schedule.
        if let Some(period) = l
            .strip_prefix("/etc/cron.")
            .and_then(|r| r.split('/').next())
        {
            if ["hourly", "daily", "weekly", "monthly"].contains(&period) {
                for j in &mut f.jobs {
                    j.schedule
                        .get_or_insert_with(|| format!("@{period} (/etc/cron.{period})"));
                    j.run_as.get_or_insert_with(|| "root".into());
                }
            }
        }
        // A user's crontab runs as that user.
        if let Some(user) = l
            .strip_prefix("/var/spool/cron/crontabs/")
            .or_else(|| l.strip_prefix("/var/spool/cron/"))
        {
            for j in &mut f.jobs {
                j.run_as.get_or_insert_with(|| user.to_string());
            }
        }
        found.job_files.push(l);
        found.syncoid_jobs.extend(f.jobs);
        found.syncoid_notes.extend(f.notes);
    }
}

pub fn cmd_init(g: &GlobalArgs, a: &InitArgs) -> Result<u8, Error> {
    let host = g.this_host.clone().unwrap_or_else(crate::context::hostname);
    zfleet_core::config::valid_host_name(&host).map_err(|m| {
        Error::Usage(format!(
            "this machine's name cannot be a fleet host name: {m}; pass --host NAME"
        ))
    })?;
    let local = zfleet_core::host::Host::local(host.clone());
    let mut found = Found {
        host: host.clone(),
        ..Found::default()
    };
    // A machine without ZFS gets a file without pools, not an error.
    match local.pools() {
        Ok(p) => found.pools = p.iter().map(|p| p.as_str().to_string()).collect(),
        Err(e) => eprintln!("warning: no pools read: {e}"),
    }
    if !found.pools.is_empty() {
        let argv = zfleet_core::zfs::cmd::zfs().args([
            "list",
            "-H",
            "-o",
            "name,type,used",
            "-t",
            "filesystem,volume",
        ]);
        match local.query(&argv) {
            Ok(out) => found.datasets = parse_datasets(&out.stdout_text()),
            Err(e) => eprintln!("warning: no datasets read: {e}"),
        }
    }
    let sanoid = a.root.join("etc/sanoid/sanoid.conf");
    if let Ok(text) = std::fs::read_to_string(&sanoid) {
        found.sanoid_conf = Some((label(&a.root, &sanoid), text));
    }
    find_jobs(&a.root, &mut found);
    let init = compose(&found);
    let check = zfleet_core::config::parse(&init.toml, &g.config);
    if a.out.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            found: &'a Found,
            #[serde(flatten)]
            init: &'a zfleet_core::init::Init,
            valid: bool,
        }
        crate::render::json(&Report {
            found: &found,
            init: &init,
            valid: check.is_ok(),
        });
    } else if a.stdout {
        outln!("{}", init.toml.trim_end());
    }
    for n in &init.notes {
        eprintln!("note: {n}");
    }
    for m in &init.migrations {
        eprintln!("to go on from syncoid's backup: {m}");
    }
    for e in &init.errors {
        eprintln!("error: {e}");
    }
    if let Err(e) = check {
        eprintln!(
            "error: the generated file does not pass `zfleet check` (a bug in zfleet init):\n{e}"
        );
        return Ok(crate::exit::INTERNAL);
    }
    if !(a.out.json || a.stdout) {
        let path = &g.config;
        if path.exists() && !a.force {
            return Err(Error::Usage(format!(
                "{} exists; zfleet init does not write over it (--stdout prints the result, --force replaces the file)",
                path.display()
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::File {
                path: dir.to_path_buf(),
                action: "create",
                source,
            })?;
        }
        std::fs::write(path, &init.toml).map_err(|source| Error::File {
            path: path.clone(),
            action: "write",
            source,
        })?;
        eprintln!(
            "wrote {} ({} pools, {} datasets, {}, {} syncoid jobs); next: edit it, then `zfleet check`",
            path.display(),
            found.pools.len(),
            found.datasets.len(),
            if found.sanoid_conf.is_some() { "sanoid.conf imported" } else { "no sanoid.conf" },
            found.syncoid_jobs.len()
        );
    }
    Ok(if init.errors.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::USAGE
    })
}
