use clap::Args;
use zfleet_core::Error;

use crate::cli::GlobalArgs;

/// Run this host's jobs on their schedules, and serve status and metrics.
///
/// One long-running process per host, usually started by systemd (`zfleet
/// export systemd`). It takes and prunes snapshots at the times the host's
/// policies need, runs a server's backups on its `schedule` (a push client's
/// pushes on its own), retries failures with backoff, aborts a transfer that
/// makes no progress for `stall_timeout`, and sends notifications. Jobs take
/// the same per-host locks as `zfleet run` and `zfleet backup`.
///
/// With `[daemon] listen` (or --listen) it serves the status page at `/`,
/// Prometheus metrics at `/metrics` and the status as JSON at
/// `/status.json`, read-only. SIGHUP, or a change of the fleet file, reloads
/// it (an invalid file is reported and the old one stays in force); SIGTERM
/// stops it: no new jobs, running transfers end so that the next run
/// continues, exit within `shutdown_timeout`. Logs one line per event on
/// stderr.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Serve status and metrics here instead of `[daemon] listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
}

pub fn cmd_daemon(g: &GlobalArgs, a: &DaemonArgs) -> Result<u8, Error> {
    let this_host = g.this_host.clone().unwrap_or_else(crate::context::hostname);
    crate::daemon::run(crate::daemon::Start {
        config: g.config.clone(),
        this_host,
        listen: a.listen,
    })
}
