use clap::Args;
use zfleet_core::config::Monitor;
use zfleet_core::snapshot::monitor::{check_pools, parse_pool_list, parse_status};
use zfleet_core::snapshot::PlanInput;
use zfleet_core::zfs::cmd;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// Check pool health and capacity (Nagios plugin).
///
/// Like sanoid's `--monitor-health` and `--monitor-capacity`, for the pools
/// that hold this host's configured datasets (every imported pool when it has
/// none). Capacity limits are `capacity_warn`/`capacity_crit` of the entry for
/// the pool's root dataset, else of the first entry in the pool (default 80 and
/// 95). Exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
#[derive(Debug, Args)]
pub struct CheckPoolsArgs {
    /// Only pool health (state and device errors).
    #[arg(long, conflicts_with = "capacity")]
    health: bool,
    /// Only capacity.
    #[arg(long)]
    capacity: bool,
    #[command(flatten)]
    out: OutputArgs,
}

pub fn cmd_check_pools(g: &GlobalArgs, a: &CheckPoolsArgs) -> Result<u8, Error> {
    let (health, capacity) = match (a.health, a.capacity) {
        (false, false) => (true, true),
        other => other,
    };
    let run = || -> Result<_, Error> {
        let cx = context::load(g)?;
        let host = cx.host(&cx.this_host)?;
        let input = PlanInput::from_fleet(&cx.fleet, &cx.this_host);
        let mut pools: Vec<(String, u32, u32)> = Vec::new();
        for e in &input.entries {
            let pool = e.dataset.pool().to_string();
            let m = &e.policy.monitor;
            match pools.iter_mut().find(|p| p.0 == pool) {
                // The pool's own entry wins over the first entry in it.
                Some(p) if e.dataset.is_pool_root() => {
                    *p = (pool, m.capacity_warn, m.capacity_crit)
                }
                Some(_) => {}
                None => pools.push((pool, m.capacity_warn, m.capacity_crit)),
            }
        }
        if pools.is_empty() {
            let d = Monitor::default();
            pools = host
                .pools()?
                .into_iter()
                .map(|p| (p.to_string(), d.capacity_warn, d.capacity_crit))
                .collect();
        }
        // Human sizes, as sanoid prints them; capacity is a percentage either way.
        let argv = cmd::zpool().args([
            "list",
            "-H",
            "-o",
            "name,size,allocated,free,capacity,health",
        ]);
        let list = host.query(&argv)?.stdout_text();
        let list = parse_pool_list(&list).map_err(|source| Error::Parse {
            host: host.name.clone(),
            cmdline: argv.to_string(),
            source,
        })?;
        let problems = if health {
            parse_status(&host.query(&cmd::zpool().arg("status"))?.stdout_text())
        } else {
            Vec::new()
        };
        Ok(check_pools(&pools, &list, &problems, health, capacity))
    };
    Ok(render::nagios(run(), a.out.json))
}
