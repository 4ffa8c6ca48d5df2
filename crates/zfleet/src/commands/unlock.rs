use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use zfleet_core::unlock::{self, HostStatus, Options, Outcome, PinPlan, Providers, Report, State};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// Unlock encrypted hosts with passphrases from a password manager.
///
/// LUKS hosts waiting in their initrd get the passphrase over ssh, but only
/// after the initrd proved it holds the host key pinned for that host; zfleet
/// then waits until the initrd is gone and the booted system answers. ZFS
/// hosts get `zfs load-key` with the key on stdin, then their datasets are
/// mounted and configured services started. Hosts are worked on in parallel,
/// each within its timeout; each secret is fetched once. The exit status is 4
/// when any host stayed locked.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Hosts to unlock (default: every host with a [hosts.NAME.unlock] section).
    hosts: Vec<String>,

    /// Only show each host's state: up, waiting in its initrd, locked, or
    /// unreachable. Fetches no secret and sends nothing. Exits 4 unless every
    /// host is up.
    #[arg(long, conflicts_with_all = ["pin", "dry_run", "timeout", "retries"])]
    status: bool,

    /// Only fetch each host's secret (each reference once) and say whether it
    /// could be had, without contacting any host: a check before a reboot.
    #[arg(long, conflicts_with_all = ["status", "pin", "dry_run", "timeout", "retries"])]
    check_secrets: bool,

    /// Pin the initrd host key of HOST: show the key its initrd presents and,
    /// once confirmed, write it to the host's `initrd_known_hosts` file.
    #[arg(long, value_name = "HOST", conflicts_with_all = ["hosts", "dry_run", "timeout", "retries"])]
    pin: Option<String>,

    /// With --pin: pin the presented key with this fingerprint
    /// (`SHA256:…`, as `ssh-keygen -lf` prints it on the host), without asking.
    #[arg(long, requires = "pin", value_name = "SHA256:…")]
    fingerprint: Option<String>,

    /// With --pin: pin whatever the initrd presents without asking (trust on
    /// first use; only on a network you trust).
    #[arg(long, requires = "pin", conflicts_with = "fingerprint")]
    yes: bool,

    /// Time allowed per host, overriding each host's `timeout` ("90s", "5m").
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,

    /// How many more times to send a passphrase the initrd rejects, overriding
    /// each host's `retries`.
    #[arg(long, value_name = "N")]
    retries: Option<u32>,

    /// Time allowed for fetching each secret: the whole provider, children
    /// included, is stopped after it ("30s", "5m").
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "2m")]
    secret_timeout: Duration,

    /// Show what would be done; fetches no secret and sends nothing.
    #[arg(long)]
    dry_run: bool,

    /// Hosts worked on at the same time.
    #[arg(long, default_value_t = 8, value_name = "N")]
    parallel: usize,

    #[command(flatten)]
    out: OutputArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write it like \"90s\" or \"5m\""))?;
    if d.is_negative() || d.is_zero() {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Duration::try_from(d).map_err(|e| e.to_string())
}

pub fn cmd_unlock(g: &GlobalArgs, a: &UnlockArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    if let Some(host) = &a.pin {
        return pin(&cx, host, a);
    }
    let targets = unlock::targets(&cx, &a.hosts)?;
    if a.check_secrets {
        let checks = unlock::check_secrets(&targets, &providers(a));
        if a.out.json {
            render::json(&checks);
        } else {
            let mut t = render::table(["host", "secret", "result"]);
            for c in &checks {
                t.add_row(vec![
                    c.host.clone(),
                    one_line(&c.secret),
                    one_line(c.error.as_deref().unwrap_or("ok")),
                ]);
            }
            render::print_table(&t, "");
            print_hints(checks.iter().map(|c| (&c.host, &c.hint)));
        }
        return Ok(if checks.iter().all(|c| c.ok) {
            crate::exit::OK
        } else {
            crate::exit::REMOTE
        });
    }
    if a.status {
        let st = unlock::status(&targets, a.parallel);
        if a.out.json {
            render::json(&st);
        } else {
            print_status(&st);
        }
        let all_up = st.iter().all(|s| s.state == State::Up);
        return Ok(if all_up {
            crate::exit::OK
        } else {
            crate::exit::REMOTE
        });
    }
    let opts = Options {
        timeout: a.timeout,
        retries: a.retries,
        parallel: a.parallel,
        dry_run: a.dry_run,
    };
    let reports = unlock::unlock(&targets, &providers(a), &opts);
    if !a.dry_run {
        // History is worth keeping, but not worth failing an unlock over (an
        // admin's laptop may have no writable state directory).
        let recorded = zfleet_core::state::State::open(&cx.fleet.state_dir)
            .and_then(|s| unlock::record(&s, &reports, cx.now()));
        if let Err(e) = recorded {
            tracing::warn!("unlock results not recorded: {e}");
        }
    }
    if a.out.json {
        render::json(&reports);
    } else {
        print_reports(&reports);
    }
    Ok(if reports.iter().all(Report::is_ok) {
        crate::exit::OK
    } else {
        crate::exit::REMOTE
    })
}

/// One line per host (ssh's messages may span several), with every control
/// character shown, not obeyed: the detail may quote what an initrd printed.
/// zfleet-core has escaped it already; escaping again changes nothing and
/// keeps the table safe whatever a future message carries.
fn one_line(s: &str) -> String {
    zfleet_core::text::one_line(s)
}

fn providers(a: &UnlockArgs) -> Providers {
    Providers {
        timeout: a.secret_timeout,
        ..Providers::default()
    }
}

fn method(m: zfleet_core::config::UnlockMethod) -> &'static str {
    match m {
        zfleet_core::config::UnlockMethod::LuksInitrd => "luks-initrd",
        zfleet_core::config::UnlockMethod::Zfs => "zfs",
    }
}

fn print_status(st: &[HostStatus]) {
    let mut t = render::table(["host", "method", "state", "detail"]);
    for s in st {
        t.add_row(vec![
            s.host.clone(),
            method(s.method).to_string(),
            s.state.as_str().to_string(),
            one_line(&s.detail),
        ]);
    }
    render::print_table(&t, "");
    print_hints(st.iter().map(|s| (&s.host, &s.hint)));
}

fn result(r: &Report) -> String {
    match (r.outcome, r.step) {
        (Outcome::Unlocked, _) => "unlocked".into(),
        (Outcome::AlreadyUp, _) => "already up".into(),
        (Outcome::WouldUnlock, _) => "would unlock".into(),
        (Outcome::Rejected, _) => match r.method {
            zfleet_core::config::UnlockMethod::LuksInitrd => "wrong passphrase".into(),
            zfleet_core::config::UnlockMethod::Zfs => "wrong key".into(),
        },
        (Outcome::Failed, Some(step)) => format!("failed ({})", step.as_str()),
        (Outcome::Failed, None) => "failed".into(),
    }
}

fn print_reports(reports: &[Report]) {
    let mut t = render::table(["host", "method", "result", "detail"]);
    for r in reports {
        let mut detail = r.message.clone();
        if !r.still_locked.is_empty() && !detail.contains(&r.still_locked[0]) {
            detail.push_str(&format!(" (still locked: {})", r.still_locked.join(", ")));
        }
        t.add_row(vec![
            r.host.clone(),
            method(r.method).to_string(),
            result(r),
            one_line(&detail),
        ]);
    }
    render::print_table(&t, "");
    print_hints(reports.iter().map(|r| (&r.host, &r.hint)));
    let ok = reports.iter().filter(|r| r.is_ok()).count();
    let locked = reports.len() - ok;
    if locked > 0 {
        outln!();
        outln!(
            "{locked} of {} host{} still locked",
            reports.len(),
            if reports.len() == 1 { "" } else { "s" }
        );
    }
}

fn print_hints<'a>(hints: impl Iterator<Item = (&'a String, &'a Option<String>)>) {
    let hints: Vec<_> = hints
        .filter_map(|(h, x)| x.as_ref().map(|x| (h, x)))
        .collect();
    if !hints.is_empty() {
        outln!();
    }
    for (host, hint) in hints {
        outln!("hint ({host}): {}", one_line(hint));
    }
}

#[derive(Serialize)]
struct PinResult<'a> {
    #[serde(flatten)]
    plan: &'a PinPlan,
    /// What was written; empty when nothing was.
    written: Vec<unlock::pin::ScannedKey>,
}

fn pin(cx: &zfleet_core::runtime::Runtime, host: &str, a: &UnlockArgs) -> Result<u8, Error> {
    let plan = unlock::pin_plan(&cx.fleet, host)?;
    // The human view goes to stderr when stdout carries JSON.
    let say = |line: String| {
        if a.out.json {
            eprintln!("{line}");
        } else {
            outln!("{line}");
        }
    };
    say(format!(
        "The initrd of {} ({}) presents:",
        plan.host, plan.address
    ));
    for k in &plan.presented {
        say(format!("  {k}"));
    }
    if plan.pinned.is_empty() {
        say(format!("Nothing is pinned yet in {}.", plan.file.display()));
    } else if plan.unchanged() {
        say(format!(
            "These keys are already pinned in {}.",
            plan.file.display()
        ));
    } else {
        say(format!(
            "Pinned in {} now (would be replaced):",
            plan.file.display()
        ));
        for k in &plan.pinned {
            say(format!("  {k}"));
        }
    }
    if !plan.shared_with.is_empty() {
        eprintln!(
            "warning: the same key is pinned for the initrd of {}. An initrd key sits unencrypted in /boot; \
             whoever reads it on one host can impersonate every initrd that shares it. Give each host its own.",
            plan.shared_with.join(", ")
        );
    }
    let confirmed = if a.fingerprint.is_some() || a.yes {
        true
    } else if std::io::stdin().is_terminal() {
        eprint!(
            "Compare with the initrd key on {host} itself (`ssh-keygen -lf <initrd host key>` while it is booted, \
             or its console). Pin {}? [y/N] ",
            if plan.presented.len() == 1 { "it" } else { "them" }
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes")
    } else {
        return Err(Error::Usage(format!(
            "not pinned: confirm the fingerprint with --fingerprint SHA256:… (or --yes to trust what {host}'s initrd presents)"
        )));
    };
    if !confirmed {
        say("Nothing was pinned.".into());
        return Ok(crate::exit::USAGE);
    }
    let now = jiff::Timestamp::from_second(cx.now())
        .map(|t| {
            t.to_zoned(cx.tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_default();
    let written = unlock::pin_apply(&cx.fleet, &plan, a.fingerprint.as_deref(), &now)?;
    for k in &written {
        say(format!(
            "Pinned {k} for the initrd of {host} in {}.",
            plan.file.display()
        ));
    }
    if a.out.json {
        render::json(&PinResult {
            plan: &plan,
            written,
        });
    }
    Ok(crate::exit::OK)
}
