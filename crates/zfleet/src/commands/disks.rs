use std::io::Write;

use clap::{Args, Subcommand};
use zfleet_core::config::{HostConfig, UnlockMethod};
use zfleet_core::layout::exec::{self, Progress, Secrets};
use zfleet_core::layout::mount::InitrdPin;
use zfleet_core::layout::plan::{Options, Plan, Step};
use zfleet_core::layout::run::{self, Mode, Outcome};
use zfleet_core::unlock::{Providers, SecretCache};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use zfleet_core::runtime::Runtime;

use crate::context;
use crate::render;

/// Remote text (labels, paths, messages) made safe for the terminal.
fn p(s: &str) -> String {
    zfleet_core::text::printable(s).into_owned()
}

/// Lay out a host's disks, pools and datasets from fleet.toml, like disko but
/// incremental.
///
/// From `[hosts.NAME.pools.POOL]`: what exists and matches is kept, what is
/// missing is made, and nothing outside the plan is touched. See
/// docs/disks.md.
#[derive(Debug, Args)]
pub struct DisksArgs {
    #[command(subcommand)]
    what: DisksCommand,
}

#[derive(Debug, Subcommand)]
enum DisksCommand {
    Plan(PlanArgs),
    Apply(ApplyArgs),
    Mount(MountArgs),
}

/// Show what `disks apply` would do on HOST, with a reason per step.
///
/// Observes the host over ssh (lsblk, wipefs, the `zpool import` scan, its
/// pools and datasets) and prints the plan: partitions, ESP, LUKS, pools,
/// datasets, properties, `@empty` snapshots and their holds. A disk that holds
/// a pool, file system, partition table or LUKS header the layout does not
/// expect is refused by name. Changes nothing; fetches no secret.
#[derive(Debug, Args)]
struct PlanArgs {
    /// The host whose pools to lay out.
    host: String,
    #[command(flatten)]
    layout: LayoutArgs,
    #[command(flatten)]
    out: OutputArgs,
}

/// Lay out HOST's disks as `disks plan` shows, typically from an installer
/// or rescue system.
///
/// Runs the plan step by step and stops at the first failure, saying what was
/// done; run it again to continue. LUKS passphrases and ZFS keys come from the
/// pool's `secret` (or the host's `[unlock]` secret) and reach cryptsetup and
/// zfs on stdin only. A second run makes 0 changes. Exit status: 0 done, 4 a
/// step failed, 5 refused (nothing was done).
#[derive(Debug, Args)]
struct ApplyArgs {
    /// The host whose pools to lay out.
    host: String,
    #[command(flatten)]
    layout: LayoutArgs,
    /// Print the plan and stop (the same as `disks plan`).
    #[arg(long)]
    dry_run: bool,
    /// After laying out, mount everything below DIR and write the facts for
    /// the installed system (as `disks mount --root DIR`).
    #[arg(long, value_name = "DIR")]
    root: Option<String>,
    #[command(flatten)]
    out: OutputArgs,
}

/// Open, import and mount HOST's layout below DIR for an installer, and write
/// what the installed system needs to know.
///
/// Opens the LUKS containers, imports the pools (without mounting), loads ZFS
/// keys, mounts every dataset and the ESP below DIR in path order, and writes
/// `DIR/etc/zfleet/{nixos-disks.nix,fstab,crypttab,layout.json}`. For hosts
/// that unlock LUKS over ssh, generates the initrd's own host key in
/// `DIR/etc/ssh/` and pins it in the host's `initrd_known_hosts` file here.
/// A second run makes 0 changes.
#[derive(Debug, Args)]
struct MountArgs {
    /// The host whose pools to mount.
    host: String,
    /// Where the installed system's root goes.
    #[arg(long, value_name = "DIR")]
    root: String,
    /// Import these pools with `-f` although another system used them last.
    #[arg(long = "force-import", value_name = "POOL")]
    force_import: Vec<String>,
    /// Print the plan and stop.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Args, Clone)]
struct LayoutArgs {
    /// Allow destroying what is on DISK (as named in fleet.toml) when it is
    /// not what the layout expects. Repeatable.
    #[arg(long, value_name = "DISK")]
    wipe: Vec<String>,
    /// Recreate the root pool (and its disks) from nothing; every other pool
    /// is kept, imported and adopted.
    #[arg(long)]
    reinstall: bool,
    /// Import these pools with `-f` although another system used them last.
    #[arg(long = "force-import", value_name = "POOL")]
    force_import: Vec<String>,
}

impl LayoutArgs {
    fn options(&self) -> Options {
        Options {
            wipe: self.wipe.clone(),
            reinstall: self.reinstall,
            force_import: self.force_import.clone(),
        }
    }
}

pub fn cmd_disks(g: &GlobalArgs, a: &DisksArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    match &a.what {
        DisksCommand::Plan(p) => {
            let (hc, host) = target(&cx, &p.host)?;
            let opts = p.layout.options();
            let plan = run::plan_only(&host, &hc.layout, &Mode::Apply(&opts))?;
            show_plan(&plan, p.out.json);
            Ok(plan_code(&plan))
        }
        DisksCommand::Apply(p) => {
            let (hc, host) = target(&cx, &p.host)?;
            let opts = p.layout.options();
            if p.dry_run {
                let plan = run::plan_only(&host, &hc.layout, &Mode::Apply(&opts))?;
                show_plan(&plan, p.out.json);
                return Ok(plan_code(&plan));
            }
            let providers = Providers::default();
            let mut cache = SecretCache::new();
            let progress = Lines {
                quiet: p.out.json || g.quiet,
            };
            zfleet_core::unlock::secret::protect_process();
            let mut secrets = Secrets {
                providers: &providers,
                cache: &mut cache,
            };
            let outcome = run::run(
                &host,
                &hc.layout,
                &Mode::Apply(&opts),
                &mut secrets,
                cx.clock(),
                &progress,
            )?;
            let mut outcomes = vec![outcome];
            if let Some(root) = &p.root {
                if !outcomes[0].refused() && !outcomes[0].failed() {
                    let pin = initrd_pin(hc);
                    let mode = Mode::Mount {
                        root,
                        initrd: pin.as_ref(),
                        force_import: &opts.force_import,
                    };
                    outcomes.push(run::run(
                        &host,
                        &hc.layout,
                        &mode,
                        &mut secrets,
                        cx.clock(),
                        &progress,
                    )?);
                }
            }
            show_outcomes(&outcomes, p.out.json);
            Ok(outcome_code(&outcomes))
        }
        DisksCommand::Mount(m) => {
            let (hc, host) = target(&cx, &m.host)?;
            let pin = initrd_pin(hc);
            let mode = Mode::Mount {
                root: &m.root,
                initrd: pin.as_ref(),
                force_import: &m.force_import,
            };
            if m.dry_run {
                let plan = run::plan_only(&host, &hc.layout, &mode)?;
                show_plan(&plan, m.out.json);
                return Ok(plan_code(&plan));
            }
            let providers = Providers::default();
            let mut cache = SecretCache::new();
            zfleet_core::unlock::secret::protect_process();
            let mut secrets = Secrets {
                providers: &providers,
                cache: &mut cache,
            };
            let progress = Lines {
                quiet: m.out.json || g.quiet,
            };
            let outcome = run::run(
                &host,
                &hc.layout,
                &mode,
                &mut secrets,
                cx.clock(),
                &progress,
            )?;
            let outcomes = vec![outcome];
            show_outcomes(&outcomes, m.out.json);
            Ok(outcome_code(&outcomes))
        }
    }
}

fn target<'c>(
    cx: &'c Runtime,
    name: &str,
) -> Result<(&'c HostConfig, zfleet_core::host::Host), Error> {
    let host = cx.host(name)?;
    let hc = cx.fleet.host(name).ok_or_else(|| Error::UnknownHost {
        name: name.to_string(),
        known: cx.fleet.hosts.keys().cloned().collect(),
    })?;
    if hc.layout.is_empty() {
        return Err(Error::Usage(format!(
            "host `{name}` has no pools in {}; add a [hosts.{name}.pools.POOL] table (see docs/disks.md)",
            cx.fleet.file.display()
        )));
    }
    for w in &cx.fleet.warnings {
        tracing::warn!("{w}");
    }
    Ok((hc, host))
}

/// The pin file of a host whose initrd takes its LUKS passphrase over ssh.
fn initrd_pin(hc: &HostConfig) -> Option<InitrdPin> {
    let u = hc.unlock.as_ref()?;
    if u.method != UnlockMethod::LuksInitrd {
        return None;
    }
    let ep = u.initrd.clone()?;
    let file = ep.known_hosts.clone()?;
    let pinned = zfleet_core::unlock::pin::pinned_keys(&file).unwrap_or_default();
    Some(InitrdPin {
        file,
        endpoint: ep,
        pinned,
    })
}

fn plan_code(plan: &Plan) -> u8 {
    if plan.is_refused() {
        crate::exit::REFUSED
    } else {
        crate::exit::OK
    }
}

fn outcome_code(outcomes: &[Outcome]) -> u8 {
    if outcomes.iter().any(Outcome::failed) {
        crate::exit::REMOTE
    } else if outcomes.iter().any(Outcome::refused) {
        crate::exit::REFUSED
    } else {
        crate::exit::OK
    }
}

/// Prints each step as it runs.
struct Lines {
    quiet: bool,
}

impl Progress for Lines {
    fn started(&self, _: &Step) {}
    fn finished(&self, step: &Step, ok: bool) {
        if self.quiet {
            return;
        }
        outln!(
            "  {} {}",
            if ok { "done" } else { "FAILED" },
            p(&step.action.summary())
        );
        let _ = std::io::stdout().flush();
    }
}

pub(crate) fn show_plan(plan: &Plan, json: bool) {
    if json {
        render::json(plan);
        return;
    }
    print_plan(plan);
}

fn print_plan(plan: &Plan) {
    if !plan.disks.is_empty() {
        let mut t = render::table(["pool", "disk", "device", "size", "state", "detail"]);
        for d in &plan.disks {
            t.add_row(vec![
                p(&d.pool),
                p(&d.disk),
                p(d.device.as_deref().unwrap_or("-")),
                d.size
                    .map(zfleet_core::config::format_size)
                    .unwrap_or_else(|| "-".into()),
                p(&d.state),
                p(&d.detail),
            ]);
        }
        render::print_table(&t, "");
        outln!();
    }
    for r in &plan.refusals {
        outln!("REFUSED {}: {}", p(&r.subject), p(&r.problem));
        if let Some(h) = &r.hint {
            outln!("  hint: {}", p(h));
        }
    }
    if plan.is_refused() {
        outln!("nothing was done");
    } else if plan.steps.is_empty() {
        outln!("{}: 0 changes", plan.host);
    } else {
        outln!("{}: {} changes", plan.host, plan.steps.len());
        for (i, s) in plan.steps.iter().enumerate() {
            outln!("  {:>2}. {}", i + 1, p(&s.action.summary()));
            outln!("      why: {}", p(&s.reason));
        }
        let secrets = exec::needs_secrets(plan);
        if !secrets.is_empty() {
            outln!("  secrets: {}", secrets.join(", "));
        }
    }
    for n in &plan.notes {
        outln!("note: {}: {}", p(&n.subject), p(&n.message));
    }
    if !plan.rescan.is_empty() {
        outln!(
            "then: {} observed again and compared, in the same `apply`",
            plan.rescan.join(", ")
        );
    }
}

fn show_outcomes(outcomes: &[Outcome], json: bool) {
    if json {
        render::json(&outcomes);
        return;
    }
    for o in outcomes {
        for r in &o.rounds {
            if r.report.is_none() {
                // The last round: what is left to do (nothing, or refused).
                if r.plan.is_refused() || !r.plan.notes.is_empty() {
                    print_plan(&r.plan);
                }
            }
            if let Some(rep) = &r.report {
                if let Some(f) = &rep.failed {
                    outln!("FAILED {}: {}", p(&f.step.action.summary()), p(&f.message));
                    if let Some(h) = &f.hint {
                        outln!("  hint: {}", p(h));
                    }
                    outln!(
                        "{} steps done, {} not run; run again to continue",
                        rep.done.len(),
                        rep.remaining.len()
                    );
                }
            }
        }
        outln!("{}: {} changes", o.host, o.changes());
    }
}
