use clap::Args;
use serde::Serialize;
use zfleet_core::zfs::Listing;
use zfleet_core::{parallel, Error};

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// List the datasets (and with --snapshots, the snapshots) of fleet hosts.
///
/// Each host is asked over one ssh connection (or locally, for this machine):
/// its ZFS dialect, its pools, and one listing per pool.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Hosts to list (default: every host in the fleet file).
    hosts: Vec<String>,
    /// Show every snapshot, not only counts and the newest.
    #[arg(long)]
    snapshots: bool,
    /// Hosts asked at the same time.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Serialize)]
struct HostListing {
    host: String,
    zfs: Option<String>,
    pools: Vec<Listing>,
    error: Option<String>,
}

pub fn cmd_list(g: &GlobalArgs, a: &ListArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    let names: Vec<String> = if a.hosts.is_empty() {
        cx.fleet.hosts.keys().cloned().collect()
    } else {
        a.hosts.clone()
    };
    let hosts = names
        .iter()
        .map(|n| cx.host(n))
        .collect::<Result<Vec<_>, _>>()?;
    let results = parallel::map(&hosts, a.parallel, |h| {
        let mut out = HostListing {
            host: h.name.clone(),
            zfs: None,
            pools: Vec::new(),
            error: None,
        };
        let mut run = || -> Result<(), Error> {
            out.zfs = Some(h.caps()?.describe());
            for pool in h.pools()? {
                out.pools.push(h.observe(&pool.dataset())?);
            }
            Ok(())
        };
        if let Err(e) = run() {
            out.error = Some(e.to_string());
        }
        out
    });
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if a.out.json {
        render::json(&results);
    } else {
        print_human(&results, a.snapshots, cx.now());
    }
    Ok(if failed > 0 {
        crate::exit::REMOTE
    } else {
        crate::exit::OK
    })
}

fn print_human(results: &[HostListing], all_snapshots: bool, now: i64) {
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            outln!();
        }
        match (&r.error, &r.zfs) {
            (Some(e), _) => {
                outln!("{}: FAILED", r.host);
                outln!("  {e}");
                continue;
            }
            (None, Some(z)) => outln!("{} ({z})", r.host),
            (None, None) => outln!("{}", r.host),
        }
        let mut t = render::table(["dataset", "used", "snapshots", "newest snapshot", "age"]);
        for l in &r.pools {
            for d in l.datasets() {
                let ds = d.name.dataset();
                let snaps = l.snapshots_of(ds);
                let newest = snaps.last();
                t.add_row(vec![
                    ds.to_string(),
                    d.used.map(render::bytes).unwrap_or_default(),
                    snaps.len().to_string(),
                    newest
                        .map(|s| {
                            s.name
                                .to_string()
                                .rsplit('@')
                                .next()
                                .unwrap_or_default()
                                .to_string()
                        })
                        .unwrap_or_default(),
                    newest
                        .map(|s| render::age(now, s.creation))
                        .unwrap_or_default(),
                ]);
                if all_snapshots {
                    for s in &snaps {
                        t.add_row(vec![
                            format!(
                                "  @{}",
                                s.name.to_string().rsplit('@').next().unwrap_or_default()
                            ),
                            s.used.map(render::bytes).unwrap_or_default(),
                            String::new(),
                            render::local_time(s.creation),
                            render::age(now, s.creation),
                        ]);
                    }
                }
            }
            for u in &l.unsupported {
                t.add_row(vec![format!("{} (ignored: {})", u.name, u.reason)]);
            }
        }
        render::print_table(&t, "  ");
    }
}
