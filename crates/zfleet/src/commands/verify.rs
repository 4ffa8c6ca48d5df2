use clap::Args;
use zfleet_core::state::State;
use zfleet_core::verify::{self, Level, Options, VerifyReport};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::progress::CliProgress;
use crate::render;

/// Prove that backups can be restored: check this server's backups of every
/// client (or only the HOSTs named), at a level.
///
/// quick: the newest backup snapshot has the source's guid, the server can
/// send it (`zfs send -nvP`; on zfs-fuse the stream is read in full), the
/// backup pool's last scrub is recent and found nothing, and the recorded
/// base is on both sides. content: also every file of the newest common
/// snapshot, walked on each host (via `.zfs/snapshot` or a temporary
/// read-only clone), compared by BLAKE3, size, mode, owner, mtime, symlink
/// target and hard links; only checksums cross the network. drill: also a
/// real restore into `<pool>/zfleet-drill/…` (through `zfleet restore`'s
/// code), compared with the backup, timed and removed.
///
/// Results go into the state database (`zfleet status` shows them).
/// docs/verify.md says what each level proves and what it does not.
///
/// Exits 0 when everything verified, 6 when a backup failed verification
/// (a difference, damage, a failed check), 2 on a bad command line.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Clients whose backups to verify (default: all of this server's).
    hosts: Vec<String>,
    /// quick, content or drill; each includes the ones before it.
    #[arg(long, default_value = "quick", value_parser = parse_level)]
    level: Level,
    /// Content: read this share of files per run (1–100), a different
    /// share each run, so every file is read within 100/PERCENT runs.
    /// Metadata of every file is compared on every run.
    #[arg(long, value_name = "PERCENT")]
    sample: Option<u8>,
    /// Content: read at most this many bytes per second on each host
    /// (`50M`, `1G`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    rate: Option<u64>,
    /// Quick: the backup pool's last scrub may be at most this many days old.
    #[arg(long, value_name = "DAYS", default_value_t = 35)]
    scrub_age: u32,
    /// Drill: restore onto this host (its first pool, or `HOST:POOL`)
    /// instead of this server.
    #[arg(long, value_name = "HOST[:POOL]")]
    to: Option<String>,
    #[command(flatten)]
    out: OutputArgs,
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s)
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| format!("`{s}` is not a rate (bytes per second, like 50M)"))
}

pub fn cmd_verify(g: &GlobalArgs, a: &VerifyArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    let state = State::open(&cx.fleet.state_dir).map_err(|e| Error::Internal(e.to_string()))?;
    let opts = Options {
        level: a.level,
        sample: a.sample,
        rate: a.rate,
        scrub_max_age_days: a.scrub_age,
        drill_to: a.to.clone(),
    };
    let progress = CliProgress::new(g.quiet, a.out.json);
    let report = verify::run(&cx, &a.hosts, &opts, &progress, Some(&state))?;
    if a.out.json {
        render::json(&report);
    } else {
        print(&report);
    }
    Ok(if report.ok() {
        crate::exit::OK
    } else {
        crate::exit::VERIFY_FAILED
    })
}

fn print(r: &VerifyReport) {
    for j in &r.jobs {
        outln!(
            "{} → {} ({}): {}",
            j.source,
            j.target,
            j.level.word(),
            if j.ok { "verified" } else { "FAILED" }
        );
        for c in &j.checks {
            outln!(
                "  {} {:<7} {}",
                match (c.ok, c.warning) {
                    (true, false) => "ok  ",
                    (true, true) => "WARN",
                    (false, _) => "FAIL",
                },
                c.check,
                c.detail
            );
        }
        let comparisons = j.content.iter().map(|c| ("content", c)).chain(
            j.drill
                .iter()
                .filter_map(|d| d.comparison.as_ref().map(|c| ("drill", c))),
        );
        for (what, c) in comparisons {
            for d in &c.differences {
                outln!("    {what}: {}: {}", d.path, d.what.describe());
            }
            let more = c.differing.saturating_sub(c.differences.len() as u64);
            if more > 0 {
                outln!("    {what}: … and {more} more paths");
            }
        }
    }
    if r.jobs.is_empty() {
        outln!("no backups to verify on {}", r.host);
    }
}
