use clap::Args;
use zfleet_core::clock::SystemClock;
use zfleet_core::config::{SshEndpoint, DEFAULT_CONNECT_TIMEOUT};
use zfleet_core::exec::SshSessions;
use zfleet_core::host::Host;
use zfleet_core::replicate::adhoc::{self, Settings};
use zfleet_core::replicate::{JobReport, Options, Outcome};
use zfleet_core::syncoid::{self, Invocation, Operand, SyncoidArgs};
use zfleet_core::Error;

use crate::cli::{parse_size, GlobalArgs};
use crate::context::hostname;
use crate::progress::CliProgress;
use crate::render;

/// Copy datasets' snapshots to another dataset, locally or over ssh, with
/// syncoid's command line: `zfleet sync [FLAGS] SOURCE TARGET`.
///
/// Each side is a local dataset or `[user@]host:dataset`. A host in the fleet
/// file is reached with its settings there; others with `[ssh]`'s defaults
/// (`--sshkey`, `--sshport` override them). Every syncoid 2.3 flag is taken with
/// syncoid's meaning, in both `--flag=value` and `--flag value` forms (docs/sync.md
/// has the table, flag by flag). The defaults are syncoid's for an ad-hoc copy:
/// a sync snapshot `syncoid_[ID_]HOST_TIME` (older ones of the same name are
/// destroyed after the copy), no holds unless --use-hold, what is received is
/// mounted, `-r` copies the tree (--exclude: a regex on dataset names).
///
/// Where zfleet is safer than syncoid:
///   * a diverged target is refused, not rolled back (syncoid receives with -F):
///     --rollback allows it, --no-rollback is zfleet's default;
///   * --sendoptions/--recvoptions letters syncoid would drop are refused by name;
///   * --force-delete and --delete-target-snapshots never destroy what is newer
///     than the common snapshot without --rollback.
///
/// zfleet's own flags, anywhere before `--`: --dry-run (show the plan, change
/// nothing), --json, --rollback, --no-bookmarks, --raw=false (default: send
/// raw), --rate-limit RATE (as --source-bwlimit), --buffer SIZE (as
/// --mbuffer-size, default 32M).
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// syncoid's flags and SOURCE TARGET, with zfleet's own flags among them.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FLAGS… SOURCE TARGET",
        required = true
    )]
    args: Vec<String>,
}

/// zfleet's flags of `zfleet sync`, taken out before syncoid's parser sees
/// the rest.
#[derive(Debug, Default, PartialEq, Eq)]
struct Own {
    dry_run: bool,
    json: bool,
    rollback: bool,
    no_bookmarks: bool,
    raw: Option<bool>,
    rate_limit: Option<String>,
    buffer: Option<String>,
}

fn take_own(args: &[String]) -> Result<(Own, Vec<String>), Error> {
    let mut own = Own::default();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a.clone());
            rest.extend(it.cloned());
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |flag: &str| -> Result<String, Error> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Error::Usage(format!("`{flag}` needs a value")))
        };
        match name {
            "--dry-run" => own.dry_run = true,
            "--json" => own.json = true,
            "--rollback" => own.rollback = true,
            "--no-bookmarks" => own.no_bookmarks = true,
            "--no-raw" => own.raw = Some(false),
            "--raw" => {
                own.raw = Some(match inline.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => {
                        return Err(Error::Usage(format!(
                            "`--raw={}`: true or false",
                            zfleet_core::text::printable(v)
                        )))
                    }
                })
            }
            "--rate-limit" => own.rate_limit = Some(value("--rate-limit")?),
            "--buffer" => own.buffer = Some(value("--buffer")?),
            _ => rest.push(a.clone()),
        }
    }
    Ok((own, rest))
}

/// syncoid's ssh flags zfleet has no place for: refused, not ignored, since
/// the copy would not go the way they say.
fn refuse_unsupported(a: &SyncoidArgs) -> Result<(), Error> {
    let refuse = |flag: &str, why: &str| Err(Error::Usage(format!("`{flag}`: {why}")));
    if a.ssh.config.is_some() {
        return refuse("--sshconfig", "zfleet sync does not take an ssh_config file; give the host's address, user, port and key in fleet.toml");
    }
    if a.ssh.cipher.is_some() {
        return refuse(
            "--sshcipher",
            "zfleet leaves the cipher to ssh's own choice",
        );
    }
    if !a.ssh.options.is_empty() {
        return refuse(
            "--sshoption",
            "zfleet sync passes no raw ssh options; give the host's settings in fleet.toml",
        );
    }
    if a.insecure_direct_connection.is_some() {
        return refuse(
            "--insecure-direct-connection",
            "zfleet always sends through ssh",
        );
    }
    Ok(())
}

fn checked(op: &Operand) -> Result<(), Error> {
    let Some(r) = &op.remote else { return Ok(()) };
    let shown = zfleet_core::text::printable(&op.raw);
    if let Some(Err(m)) = r.user.as_deref().map(zfleet_core::config::valid_user) {
        return Err(Error::Usage(format!(
            "`{shown}`: {}",
            zfleet_core::text::printable(&m)
        )));
    }
    // Checked here, before ssh sees them: a host that starts with `-` would
    // be an ssh option, and `;` or a space means nothing good.
    if let Err(m) = zfleet_core::config::valid_address(&r.host) {
        return Err(Error::Usage(format!(
            "`{shown}`: `{}` is not a host name or address: {}",
            zfleet_core::text::printable(&r.host),
            zfleet_core::text::printable(&m)
        )));
    }
    Ok(())
}

/// The arguments as given: clap drops a `--` that comes before all of them,
/// and syncoid's parser needs it (`zfleet sync -- -odd:pool/ds …` is an
/// operand, not a flag).
fn as_given(args: &[String]) -> Vec<String> {
    let raw: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let n = args.len();
    if raw.len() > n && raw[raw.len() - n..] == *args && raw[raw.len() - n - 1] == "--" {
        let mut v = vec!["--".to_string()];
        v.extend(args.iter().cloned());
        return v;
    }
    args.to_vec()
}

pub fn cmd_sync(g: &GlobalArgs, a: &SyncArgs) -> Result<u8, Error> {
    let (own, rest) = take_own(&as_given(&a.args))?;
    let mut s = match syncoid::parse(&rest).map_err(|e| Error::Usage(e.to_string()))? {
        Invocation::Sync(s) => *s,
        Invocation::Help => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            if let Some(sub) = cmd.find_subcommand_mut("sync") {
                let _ = sub.print_long_help();
            }
            return Ok(crate::exit::OK);
        }
        Invocation::Version => {
            outln!(
                "zfleet {} (zfleet sync: syncoid 2.3's command line)",
                env!("CARGO_PKG_VERSION")
            );
            return Ok(crate::exit::OK);
        }
    };
    refuse_unsupported(&s)?;
    checked(&s.source)?;
    checked(&s.target)?;
    let this = g.this_host.clone().unwrap_or_else(hostname);
    let local = Host::local(this.clone());
    if [&s.source, &s.target]
        .iter()
        .any(|o| o.remote.as_ref().is_some_and(|r| r.could_be_pool))
    {
        let pools: Vec<String> = local.pools()?.iter().map(|p| p.to_string()).collect();
        s.source.resolve_local_pools(&pools);
        s.target.resolve_local_pools(&pools);
    }
    let settings = Settings::from_syncoid(&s, &this).map_err(|e| Error::Usage(e.to_string()))?;
    // The fleet file is optional here: ad-hoc copies work without one.
    let fleet = if g.config.exists() {
        Some(zfleet_core::config::load(&g.config)?)
    } else {
        None
    };
    let sessions = SshSessions::new()
        .map_err(|e| Error::Internal(format!("cannot create the ssh control directory: {e}")))?;
    let host_for = |op: &Operand| -> Host {
        let Some(r) = &op.remote else {
            return Host::local(this.clone());
        };
        let mut ep = fleet
            .as_ref()
            .and_then(|f| f.host(&r.host))
            .map(|h| h.ssh.clone())
            .unwrap_or_else(|| SshEndpoint {
                address: r.host.clone(),
                user: None,
                port: 22,
                identity: None,
                known_hosts: None,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            });
        if r.user.is_some() {
            ep.user = r.user.clone();
        }
        if let Some(p) = s.ssh.port {
            ep.port = p;
        }
        if let Some(k) = &s.ssh.key {
            ep.identity = Some(k.into());
        }
        Host::ssh(r.host.clone(), &ep, sessions.clone())
    };
    let (s_host, d_host) = (host_for(&s.source), host_for(&s.target));

    let mut settings = settings;
    settings.job.client = s_host.name.clone();
    if let Some(raw) = own.raw {
        settings.job.raw = raw;
    }
    settings.plan.rollback = own.rollback;
    settings.plan.bookmarks = !own.no_bookmarks;
    let mut pump = zfleet_core::transfer::PumpOptions::default();
    if let Some(b) = own.buffer.as_deref().map(parse_size).transpose()? {
        pump.buffer = b as usize;
    } else if let Some(b) = settings.buffer {
        pump.buffer = b as usize;
    }
    pump.rate_limit = match own.rate_limit.as_deref().map(parse_size).transpose()? {
        Some(r) => Some(r),
        None => settings.rate_limit,
    };
    let opts = Options {
        plan: settings.plan.clone(),
        pump,
        dry_run: own.dry_run,
    };
    let quiet = g.quiet || s.quiet;
    if s.dumpsnaps && !own.json {
        dump_snapshots(&s_host, &d_host, &settings)?;
    }
    let progress = CliProgress::new(quiet, own.json);
    let reports = adhoc::sync(&s_host, &d_host, &settings, &opts, &SystemClock, &progress);
    if own.json {
        // One dataset is one report, as before `-r`; a tree is a list.
        match reports.as_slice() {
            [one] if !settings.recursive => render::json(one),
            all => render::json(&all),
        }
        return Ok(super::backup::exit_code(&reports));
    }
    let mut refused = false;
    for report in &reports {
        if s.debug {
            print_steps(report);
        }
        refused |= print(report, quiet);
    }
    let code = super::backup::exit_code(&reports);
    Ok(if refused && code == crate::exit::OK {
        crate::exit::REFUSED
    } else {
        code
    })
}

/// One dataset's outcome; whether it was a refusal.
fn print(report: &JobReport, quiet: bool) -> bool {
    match &report.outcome {
        Outcome::UpToDate if !quiet => outln!(
            "{} is up to date with {} (@{})",
            report.target,
            report.source,
            report.base.as_ref().map_or("?", |b| b.name.as_str())
        ),
        Outcome::Sent if !quiet => outln!(
            "{} → {}: {} snapshot(s), {} in {:.1}s; common snapshot now @{}",
            report.source,
            report.target,
            report.snapshots,
            render::bytes(report.bytes),
            report.seconds,
            report.base.as_ref().map_or("?", |b| b.name.as_str())
        ),
        Outcome::Planned => {
            outln!("{} → {} would run:", report.source, report.target);
            for s in &report.steps {
                outln!("  {}", s.describe());
            }
        }
        Outcome::NothingToSend { message } if !quiet => outln!("nothing to send: {message}"),
        Outcome::Refused { message, hint, .. } => {
            eprintln!("refused: {message}\n  hint: {hint}");
            return true;
        }
        Outcome::Failed(f) => eprintln!("error: {}", f.message),
        Outcome::Degraded { message } => {
            eprintln!("error: {} → {}: {message}", report.source, report.target)
        }
        _ => {}
    }
    for w in &report.warnings {
        eprintln!("warning: {} → {}: {w}", report.source, report.target);
    }
    false
}

/// `--debug`: the steps that ran, a reset partial receive in syncoid's words.
fn print_steps(report: &JobReport) {
    for step in &report.steps {
        match step {
            zfleet_core::replicate::plan::Step::AbortResume { reason } => outln!(
                "reset partial receive state of {} ({reason})",
                report
                    .target
                    .split_once(':')
                    .map_or(report.target.as_str(), |(_, d)| d)
            ),
            s => outln!("{} → {}: {}", report.source, report.target, s.describe()),
        }
    }
}

/// `--dumpsnaps`: each dataset's snapshots on both sides before the copy.
fn dump_snapshots(src: &Host, dst: &Host, settings: &Settings) -> Result<(), Error> {
    // A listing that fails is reported by the copy that follows.
    let Ok(pairs) = adhoc::datasets(src, settings) else {
        return Ok(());
    };
    for (s, t) in pairs {
        for (host, ds) in [(src, &s), (dst, &t)] {
            let names = match host.observe_own_if_exists(ds, &[])? {
                Some(l) => l
                    .snapshots_of(ds)
                    .iter()
                    .map(|o| o.name.to_string())
                    .collect::<Vec<_>>(),
                None => Vec::new(),
            };
            outln!("{}:{ds}: {} snapshot(s)", host.name, names.len());
            for n in names {
                outln!("  {n}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(words: &[&str]) -> (Own, Vec<String>) {
        let v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        take_own(&v).unwrap()
    }

    #[test]
    fn zfleets_own_flags_come_out_anywhere_before_the_double_dash() {
        let (own, rest) = split(&[
            "-r",
            "--dry-run",
            "tank/a",
            "--rate-limit",
            "2M",
            "--buffer=64M",
            "backup/a",
            "--raw=false",
            "--json",
            "--rollback",
            "--",
            "--dry-run",
        ]);
        assert_eq!(
            own,
            Own {
                dry_run: true,
                json: true,
                rollback: true,
                no_bookmarks: false,
                raw: Some(false),
                rate_limit: Some("2M".into()),
                buffer: Some("64M".into()),
            }
        );
        assert_eq!(rest, ["-r", "tank/a", "backup/a", "--", "--dry-run"]);
    }

    #[test]
    fn a_missing_value_is_named() {
        let v = vec!["--buffer".to_string()];
        assert!(take_own(&v).unwrap_err().to_string().contains("--buffer"));
    }
}
