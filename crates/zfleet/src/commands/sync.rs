use clap::Args;
use zfleet_core::clock::SystemClock;
use zfleet_core::config::{SshEndpoint, DEFAULT_CONNECT_TIMEOUT};
use zfleet_core::exec::SshSessions;
use zfleet_core::host::Host;
use zfleet_core::replicate::{replicate, JobSpec, Options, Outcome};
use zfleet_core::zfs::DatasetName;
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs, TransferArgs};
use crate::context::hostname;
use crate::progress::CliProgress;
use crate::render;

/// Copy one dataset's snapshots to another, locally or over ssh (syncoid's
/// interface): `zfleet sync tank/data root@nas:backup/data`.
///
/// Each side is a local dataset or `[user@]host:dataset`. A host that is in the
/// fleet file is reached with its settings there; others with `[ssh]`'s defaults.
/// Incremental from the newest common snapshot (by guid), every snapshot in
/// between included; a diverged target is refused unless --rollback.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source: `dataset` or `[user@]host:dataset`.
    source: String,
    /// Target: `dataset` or `[user@]host:dataset`.
    target: String,
    /// Show what would be sent, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Compress the stream with zstd on the wire (a remote side needs `zstd`).
    #[arg(long)]
    compress: bool,
    /// Send encrypted datasets raw (the target never needs the key). On by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    raw: bool,
    #[command(flatten)]
    transfer: TransferArgs,
    #[command(flatten)]
    out: OutputArgs,
}

struct Spec {
    host: Option<(Option<String>, String)>,
    dataset: DatasetName,
}

fn parse_side(s: &str) -> Result<Spec, Error> {
    match s.split_once(':') {
        // A dataset name may contain `:` too; only a `host:` before the first `/` counts.
        Some((h, ds)) if !h.contains('/') && !h.is_empty() => {
            let (user, host) = match h.split_once('@') {
                Some((u, h)) => (Some(u.to_string()), h.to_string()),
                None => (None, h.to_string()),
            };
            // Checked here, before ssh sees them: a host that starts with `-`
            // would be an ssh option, and `;` or a space means nothing good.
            let shown = zfleet_core::text::printable(s);
            if let Some(Err(m)) = user.as_deref().map(zfleet_core::config::valid_user) {
                return Err(Error::Usage(format!(
                    "`{shown}`: {}",
                    zfleet_core::text::printable(&m)
                )));
            }
            if let Err(m) = zfleet_core::config::valid_address(&host) {
                return Err(Error::Usage(format!(
                    "`{shown}`: `{}` is not a host name or address: {}",
                    zfleet_core::text::printable(&host),
                    zfleet_core::text::printable(&m)
                )));
            }
            Ok(Spec {
                host: Some((user, host)),
                dataset: DatasetName::parse(ds)?,
            })
        }
        _ => Ok(Spec {
            host: None,
            dataset: DatasetName::parse(s)?,
        }),
    }
}

pub fn cmd_sync(g: &GlobalArgs, a: &SyncArgs) -> Result<u8, Error> {
    let src = parse_side(&a.source)?;
    let dst = parse_side(&a.target)?;
    // The fleet file is optional here: ad-hoc copies work without one.
    let fleet = if g.config.exists() {
        Some(zfleet_core::config::load(&g.config)?)
    } else {
        None
    };
    let sessions = SshSessions::new()
        .map_err(|e| Error::Internal(format!("cannot create the ssh control directory: {e}")))?;
    let this = g.this_host.clone().unwrap_or_else(hostname);
    let host_for = |spec: &Spec| -> Host {
        match &spec.host {
            None => Host::local(this.clone()),
            Some((user, name)) => {
                let mut ep = fleet
                    .as_ref()
                    .and_then(|f| f.host(name))
                    .map(|h| h.ssh.clone())
                    .unwrap_or_else(|| SshEndpoint {
                        address: name.clone(),
                        user: None,
                        port: 22,
                        identity: None,
                        known_hosts: None,
                        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                    });
                if user.is_some() {
                    ep.user = user.clone();
                }
                Host::ssh(name.clone(), &ep, sessions.clone())
            }
        }
    };
    let (s_host, d_host) = (host_for(&src), host_for(&dst));
    let job = JobSpec {
        raw: a.raw,
        compress: a.compress,
        ..JobSpec::new(
            s_host.name.clone(),
            src.dataset.clone(),
            dst.dataset.clone(),
            "sync",
        )
    };
    let opts = Options {
        plan: a.transfer.plan_options(),
        pump: a.transfer.pump_options()?,
        dry_run: a.dry_run,
    };
    let progress = CliProgress::new(g.quiet, a.out.json);
    let report = replicate(&s_host, &d_host, &job, &opts, &SystemClock, &progress);
    if a.out.json {
        render::json(&report);
    } else {
        match &report.outcome {
            Outcome::UpToDate => outln!(
                "{} is up to date with {} (@{})",
                report.target,
                report.source,
                report.base.as_ref().map_or("?", |b| b.name.as_str())
            ),
            Outcome::Sent => outln!(
                "{} → {}: {} snapshot(s), {} in {:.1}s; common snapshot now @{}",
                report.source,
                report.target,
                report.snapshots,
                render::bytes(report.bytes),
                report.seconds,
                report.base.as_ref().map_or("?", |b| b.name.as_str())
            ),
            Outcome::Planned => {
                outln!("would run:");
                for s in &report.steps {
                    outln!("  {}", s.describe());
                }
            }
            Outcome::NothingToSend { message } => outln!("nothing to send: {message}"),
            Outcome::Refused { message, hint, .. } => {
                eprintln!("refused: {message}\n  hint: {hint}");
                return Ok(crate::exit::REFUSED);
            }
            Outcome::Failed(f) => eprintln!("error: {}", f.message),
            Outcome::Degraded { message } => {
                eprintln!("error: {} → {}: {message}", report.source, report.target)
            }
        }
    }
    Ok(super::backup::exit_code([&report]))
}
