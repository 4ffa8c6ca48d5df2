use clap::{Args, Subcommand};
use zfleet_core::host::Host;
use zfleet_core::root::{self, rollback};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// File names and remote text made safe for the terminal.
fn p(s: &str) -> String {
    zfleet_core::text::printable(s).into_owned()
}

/// The ephemeral root: what the next rollback deletes, and the rollback at
/// boot.
///
/// impermanence's "erase your darlings": the root dataset goes back to its
/// blank snapshot at every boot. See docs/disks.md.
#[derive(Debug, Args)]
pub struct RootArgs {
    #[command(subcommand)]
    what: RootCommand,
}

#[derive(Debug, Subcommand)]
enum RootCommand {
    Diff(DiffArgs),
    Rollback(RollbackArgs),
}

/// Show what the next rollback of the ephemeral root would delete.
///
/// `zfs diff` of the root dataset against its blank snapshot, in the running
/// system's paths, without what lives in other datasets (/nix, /persist, …)
/// or in persisted paths, grouped by directory with sizes. Hints name what
/// looks like state that should be persisted (/var/lib/NAME, /etc/NAME,
/// home directories). With --persisted: the paths in persisted datasets
/// that fleet.toml no longer declares.
#[derive(Debug, Args)]
struct DiffArgs {
    /// The host (default: this machine).
    host: Option<String>,
    /// List what the persisted datasets hold beyond their declared paths.
    #[arg(long)]
    persisted: bool,
    /// List every entry, not only the groups.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// Roll the ephemeral root back to its blank snapshot; the boot-time command
/// (`zfleet export initrd-rollback` prints the unit that runs it).
///
/// Refuses, leaving the root as it is, unless the snapshot exists, is held by
/// zfleet, and has the guid recorded when the disks were laid out
/// (`zfleet:blank`): a snapshot of the same name made later is not the
/// blank one. Also refuses when later snapshots would be destroyed, or when
/// the dataset is the running system's `/`. Runs on this machine. Without
/// --dataset the fleet file names the root (`ephemeral = true`); in an
/// initrd, where there is no fleet file, pass --dataset. Exit status: 0
/// rolled back (or would, with --dry-run), 5 refused.
#[derive(Debug, Args)]
struct RollbackArgs {
    /// The root dataset (default: the ephemeral dataset of this host's root pool).
    #[arg(long, value_name = "DATASET")]
    dataset: Option<String>,
    /// The blank snapshot's name.
    #[arg(long, default_value = "empty", value_name = "NAME")]
    snapshot: String,
    /// Check, and say what would be done.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    out: OutputArgs,
}

pub fn cmd_root(g: &GlobalArgs, a: &RootArgs) -> Result<u8, Error> {
    match &a.what {
        RootCommand::Diff(d) => diff(g, d),
        RootCommand::Rollback(r) => rollback_cmd(g, r),
    }
}

fn diff(g: &GlobalArgs, a: &DiffArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    let name = a.host.clone().unwrap_or_else(|| cx.this_host.clone());
    let host = cx.host(&name)?;
    let hc = cx.fleet.host(&name).ok_or_else(|| Error::UnknownHost {
        name: name.clone(),
        known: cx.fleet.hosts.keys().cloned().collect(),
    })?;
    if a.persisted {
        let rep = root::persisted(&host, &hc.layout)?;
        if a.out.json {
            render::json(&rep);
            return Ok(crate::exit::OK);
        }
        for d in &rep.datasets {
            match &d.skipped {
                Some(why) => outln!("{}: not checked: {why}", d.dataset),
                None if d.orphans.is_empty() => outln!(
                    "{}: holds nothing beyond its {} declared path{}",
                    d.dataset,
                    d.declared.len(),
                    if d.declared.len() == 1 { "" } else { "s" }
                ),
                None => {
                    outln!(
                        "{}: {} path(s) fleet.toml no longer declares:",
                        d.dataset,
                        d.orphans.len()
                    );
                    for o in &d.orphans {
                        outln!(
                            "  {}{}",
                            p(&o.path),
                            o.size
                                .map(|s| format!("  ({})", human(s)))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
        return Ok(crate::exit::OK);
    }
    let rep = root::diff(&host, &hc.layout)?;
    if a.out.json {
        render::json(&rep);
        return Ok(crate::exit::OK);
    }
    if rep.entries.is_empty() {
        outln!(
            "{}: nothing to lose: {} is as blank as {}",
            rep.host,
            rep.dataset,
            rep.snapshot
        );
        return Ok(crate::exit::OK);
    }
    outln!(
        "{}: the next rollback of {} to {} deletes {} entr{} ({}):",
        rep.host,
        rep.dataset,
        rep.snapshot,
        rep.entries.len(),
        if rep.entries.len() == 1 { "y" } else { "ies" },
        human(rep.bytes)
    );
    let mut t = render::table(["directory", "entries", "size"]);
    for gr in &rep.groups {
        t.add_row(vec![
            p(&gr.directory),
            gr.entries.to_string(),
            human(gr.bytes),
        ]);
    }
    render::print_table(&t, "  ");
    if a.all {
        outln!();
        for e in &rep.entries {
            outln!(
                "  {} {}{}",
                e.change,
                p(&e.path),
                e.size
                    .map(|s| format!("  ({})", human(s)))
                    .unwrap_or_default()
            );
        }
    }
    if !rep.hints.is_empty() {
        outln!();
        for h in &rep.hints {
            outln!(
                "hint: {}: {}; to keep it, add \"{}\" to a dataset's `persist`",
                p(&h.path),
                h.why,
                p(&h.path)
            );
        }
    }
    Ok(crate::exit::OK)
}

fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn rollback_cmd(g: &GlobalArgs, a: &RollbackArgs) -> Result<u8, Error> {
    // At boot there is no fleet file: --dataset needs none.
    let dataset = match &a.dataset {
        Some(d) => {
            zfleet_core::zfs::DatasetName::parse(d)?;
            d.clone()
        }
        None => {
            let cx = context::load(g)?;
            let hc = cx.fleet.host(&cx.this_host).ok_or_else(|| {
                Error::Usage(format!(
                    "this machine is `{}`, which is not a host in the fleet file; pass --host NAME or --dataset DATASET",
                    cx.this_host
                ))
            })?;
            root::ephemeral(&hc.layout).map(|(_, d)| d).ok_or_else(|| {
                Error::Usage(format!(
                    "host `{}` has no ephemeral root in the fleet file; pass --dataset DATASET",
                    hc.name
                ))
            })?
        }
    };
    let host = Host::local("local");
    let check = rollback::inspect(&host, &dataset, &a.snapshot)?;
    let problems = check.problems();
    let refused = !problems.is_empty();
    if !refused && !a.dry_run {
        rollback::rollback(&host, &check)?;
    }
    if a.out.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            check: &'a rollback::Check,
            problems: &'a [String],
            rolled_back: bool,
        }
        render::json(&Out {
            check: &check,
            problems: &problems,
            rolled_back: !refused && !a.dry_run,
        });
    }
    if refused {
        // Loud, on stderr and so on the console of a booting machine.
        eprintln!("zfleet: REFUSED to roll back {dataset}; the root is left as it is:");
        for p in &problems {
            eprintln!("zfleet:   {p}");
        }
        return Ok(crate::exit::REFUSED);
    }
    if !a.out.json {
        if a.dry_run {
            outln!(
                "would roll {dataset} back to {} (guid {})",
                check.snapshot,
                check.guid.as_deref().unwrap_or("?")
            );
        } else {
            outln!(
                "rolled {dataset} back to {} (guid {})",
                check.snapshot,
                check.guid.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(crate::exit::OK)
}
