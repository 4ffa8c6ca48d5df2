//! Reading a host's disks: one `lsblk`, one look at the /dev/disk links, one
//! `wipefs --no-act` for every device the layout names (with their partitions
//! and LUKS mappings), `zpool status`, the `zpool import` scan, and for the
//! layout's imported pools one `zpool get` and one `zfs get`. Nothing here
//! changes the host. The texts are read by `parse::assemble`, which the
//! planner's tests feed with output captured on real systems.

use std::collections::BTreeSet;

use super::model::Observed;
use super::parse::{self, Captured};
use super::plan::BLANK_SNAPSHOT;
use crate::config::HostLayout;
use crate::exec::{Argv, Output, RunOptions};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::zfs::{cmd, Dialect};
use crate::Error;

fn run(host: &Host, argv: &Argv) -> Result<Output, Error> {
    Ok(host
        .endpoint()
        .run(argv, &RunOptions::timeout(QUERY_TIMEOUT))?)
}

/// For commands whose exit status says "nothing found" as often as "failed"
/// (`zpool import` with nothing to import, `zfs get` of a snapshot that is
/// not there): the output is what counts. A missing program is still an error.
fn run_lenient(host: &Host, argv: &Argv) -> Result<Output, Error> {
    Ok(host
        .endpoint()
        .run_unchecked(argv, &RunOptions::timeout(QUERY_TIMEOUT))?)
}

fn parse_err(host: &Host, what: &str, message: String) -> Error {
    Error::Parse {
        host: host.name.clone(),
        cmdline: what.to_string(),
        source: crate::zfs::ParseError {
            line: 1,
            message,
            text: String::new(),
        },
    }
}

/// Everything the layout planners read. `facts` names files on the host to
/// read as well (what `disks mount` would write).
pub fn observe(host: &Host, layout: &HostLayout, facts: &[String]) -> Result<Observed, Error> {
    let caps = host.caps()?.clone();
    let mut c = Captured {
        modern: matches!(caps.dialect, Dialect::OpenZfs { .. }),
        ..Captured::default()
    };

    let argv = Argv::new("lsblk").args([
        "--json",
        "--bytes",
        "--paths",
        "--output",
        parse::LSBLK_COLUMNS,
    ]);
    c.lsblk = run(host, &argv)?.stdout_text();
    // /dev/disk exists wherever udev runs; without it there are no links.
    let argv = Argv::new("find").args([
        "/dev/disk",
        "/dev/mapper",
        "-type",
        "l",
        "-printf",
        "%p\\t%l\\n",
    ]);
    c.links = run_lenient(host, &argv)?.stdout_text();

    // Which devices to probe needs the tree and the links.
    let first = parse::assemble(&c).map_err(|m| parse_err(host, "lsblk", m))?;
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut files: Vec<String> = Vec::new();
    for pool in &layout.pools {
        for d in &pool.disks {
            if d.is_file() {
                files.push(d.path.clone());
                continue;
            }
            let Some(dev) = first.device(&d.path) else {
                continue;
            };
            let disk = dev.path.clone();
            nodes.insert(first.resolve(&disk));
            for ch in first.children(&disk) {
                nodes.insert(first.resolve(&ch.path));
                for g in first.children(&ch.path) {
                    nodes.insert(first.resolve(&g.path));
                }
            }
        }
    }
    if !nodes.is_empty() {
        let argv = Argv::new("wipefs")
            .args(["--no-act", "--json"])
            .args(nodes.iter().cloned());
        c.wipefs = run_lenient(host, &argv)?.stdout_text();
    }
    for f in &files {
        let argv = Argv::new("stat").args(["-L", "-c", "%s", f.as_str()]);
        let out = run_lenient(host, &argv)?;
        if !out.status.success() {
            continue;
        }
        let size = out.stdout_text().trim().parse().unwrap_or(0);
        let argv = Argv::new("wipefs").args(["--no-act", "--json", f.as_str()]);
        let sigs = run_lenient(host, &argv)?.stdout_text();
        c.files.push((f.clone(), size, sigs));
    }

    let argv = cmd::zpool().args(if c.modern {
        vec!["status", "-P"]
    } else {
        vec!["status"]
    });
    c.status = run_lenient(host, &argv)?.stdout_text();
    c.import
        .push(run_lenient(host, &cmd::zpool().arg("import"))?.stdout_text());
    let dirs: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    if !dirs.is_empty() {
        let mut argv = cmd::zpool().arg("import");
        for d in &dirs {
            argv = argv.args(["-d", d.as_str()]);
        }
        c.import.push(run_lenient(host, &argv)?.stdout_text());
    }

    // Properties of the layout's imported pools and their datasets.
    let imported = parse::parse_status(&c.status);
    let planned: Vec<&str> = layout
        .pools
        .iter()
        .map(|p| p.pool.as_str())
        .filter(|p| imported.iter().any(|i| i.name == *p))
        .collect();
    if !planned.is_empty() {
        // zfs-fuse's `zpool get` has neither -H nor -o: its table is read
        // by columns instead.
        let argv = if c.modern {
            cmd::zpool().args(["get", "-H", "-p", "-o", "name,property,value,source", "all"])
        } else {
            cmd::zpool().args(["get", "all"])
        };
        let out = run(host, &argv.args(planned.iter().copied()))?.stdout_text();
        c.pool_get = if c.modern {
            out
        } else {
            parse::legacy_pool_get(&out)
        };

        let mut argv = cmd::zfs().args(["get", "-H", "-p", "-r"]);
        if c.modern {
            argv = argv.args(["-t", "filesystem,volume"]);
        }
        let argv = argv
            .args(["-o", "name,property,value,source", "all"])
            .args(planned.iter().copied());
        c.zfs_get = run(host, &argv)?.stdout_text();
        let datasets = parse::parse_get(&c.zfs_get);

        let snaps: Vec<String> = layout
            .pools
            .iter()
            .filter(|p| planned.contains(&p.pool.as_str()))
            .flat_map(|p| {
                p.datasets
                    .iter()
                    .filter(|d| d.blank)
                    .map(|d| p.full_name(&d.name))
                    .collect::<Vec<_>>()
            })
            .filter(|ds| datasets.contains_key(ds))
            .map(|ds| format!("{ds}@{BLANK_SNAPSHOT}"))
            .collect();
        if !snaps.is_empty() {
            let argv = cmd::zfs()
                .args([
                    "get",
                    "-H",
                    "-p",
                    "-o",
                    "name,property,value",
                    "guid,userrefs",
                ])
                .args(snaps.iter().cloned());
            c.blanks = run_lenient(host, &argv)?.stdout_text();
            if c.modern {
                let argv = cmd::zfs().args(["holds", "-H"]).args(snaps.iter().cloned());
                c.holds = Some(run_lenient(host, &argv)?.stdout_text());
            }
        }
    }

    let argv = Argv::new("findmnt").args(["--json", "--list", "--output", "SOURCE,TARGET,FSTYPE"]);
    let out = run_lenient(host, &argv)?;
    if out.status.success() {
        c.findmnt = Some(out.stdout_text());
    }
    c.hostid = run_lenient(host, &Argv::new("hostid"))?.stdout_text();
    for f in facts {
        let out = run_lenient(host, &Argv::new("cat").arg(f.as_str()))?;
        if out.status.success() {
            c.facts.insert(f.clone(), out.stdout_text());
        }
    }
    parse::assemble(&c).map_err(|m| parse_err(host, "lsblk/wipefs/findmnt", m))
}
