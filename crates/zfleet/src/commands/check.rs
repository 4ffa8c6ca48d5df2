use clap::Args;
use zfleet_core::config::{self, Fleet};
use zfleet_core::words::plural;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::render;

/// Validate the fleet file and print what it means: the backup jobs each
/// server runs and the snapshot policy of every host's datasets.
///
/// Nothing is contacted; this only reads the file. Errors name the file, line,
/// column and key.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    out: OutputArgs,
}

pub fn cmd_check(g: &GlobalArgs, a: &CheckArgs) -> Result<u8, Error> {
    let fleet = config::load(&g.config)?;
    let plan = fleet.plan();
    if a.out.json {
        render::json(&plan);
    } else {
        print_human(&fleet, &plan);
    }
    Ok(crate::exit::OK)
}

fn print_human(fleet: &Fleet, plan: &config::FleetPlan) {
    let clients = fleet
        .hosts
        .values()
        .filter(|h| h.client.as_ref().is_some_and(|c| c.enabled))
        .count();
    let servers = plan.servers.len();
    outln!(
        "{}: ok — {} hosts ({}, {}), {}",
        plan.file,
        fleet.hosts.len(),
        plural(clients, "backup client"),
        plural(servers, "backup server"),
        plural(fleet.templates.len(), "template"),
    );
    outln!();
    outln!("Backup jobs");
    if plan.servers.is_empty() {
        outln!("  none: no host has a [hosts.NAME.server] section");
    }
    for s in &plan.servers {
        let retention = match &s.retention {
            Some(r) => format!("retention `{}`: {}", r.template, r.policy.summary()),
            None => "no retention: keeps every snapshot it receives".to_string(),
        };
        outln!("  {} → {} ({retention})", s.server, s.target_root);
        if s.jobs.is_empty() {
            outln!("    no jobs");
        }
        for j in &s.jobs {
            let extra = if j.extra { "  (extra client)" } else { "" };
            outln!("    {}{extra}", j.describe());
        }
        for sk in &s.skipped {
            outln!("    skipped {}: {}", sk.client, sk.reason);
        }
    }
    outln!();
    outln!("Snapshot policies");
    for (host, policies) in &plan.policies {
        outln!("  {host}");
        if policies.is_empty() {
            outln!("    none");
            continue;
        }
        let mut t = render::table(["dataset", "from", "policy", "recursive"]);
        for p in policies {
            let rec = match (p.recursive, p.process_children_only) {
                (config::Recursive::No, _) => "no",
                (config::Recursive::Yes, false) => "yes",
                (config::Recursive::Yes, true) => "children only",
                (config::Recursive::Zfs, false) => "zfs (atomic)",
                (config::Recursive::Zfs, true) => "zfs, children only",
            };
            t.add_row(vec![
                p.dataset.to_string(),
                p.source.clone(),
                p.policy.summary(),
                rec.to_string(),
            ]);
        }
        render::print_table(&t, "    ");
    }
}
