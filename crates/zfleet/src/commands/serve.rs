use clap::Args;
use zfleet_core::serve::{serve, Mode, ServeLog};
use zfleet_core::zfs::DatasetName;
use zfleet_core::Error;

use crate::cli::GlobalArgs;

/// The forced command of the backup account (set up by `zfleet grant`).
///
/// Reads the request from SSH_ORIGINAL_COMMAND and runs it only if it is one
/// of the zfs commands the peer needs for this host's datasets; everything
/// else is refused with the reason, logged, and exits 126. Never runs a shell.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The peer is this backup server, pulling this host's datasets.
    #[arg(long, group = "peer")]
    server: Option<String>,
    /// The peer is this push client, sending into this server's backups of it.
    #[arg(long, group = "peer", value_name = "CLIENT")]
    receive_from: Option<String>,
    /// The peer is this server, restoring into the --dataset datasets.
    #[arg(long, group = "peer", value_name = "SERVER", requires = "dataset")]
    restore_from: Option<String>,
    /// Datasets a restore grant may receive into.
    #[arg(long)]
    dataset: Vec<DatasetName>,
    /// Where requests and verdicts are logged.
    #[arg(long, default_value = "/var/log/zfleet/serve.log")]
    log: std::path::PathBuf,
}

pub fn cmd_serve(g: &GlobalArgs, a: &ServeArgs) -> Result<u8, Error> {
    let fleet = zfleet_core::config::load(&g.config)?;
    let this = g.this_host.clone().unwrap_or_else(crate::context::hostname);
    let (mode, peer) = if let Some(server) = &a.server {
        let jobs: Vec<_> = fleet
            .jobs()
            .into_iter()
            .filter(|j| &j.server == server && j.client == this && !j.push)
            .collect();
        let sync = fleet
            .host(server)
            .and_then(|h| h.server.as_ref())
            .is_some_and(|r| r.sync_snapshot);
        let m = Mode::Send {
            server: server.clone(),
            datasets: jobs.into_iter().map(|j| j.source).collect(),
            sync_snapshots: sync,
        };
        (m, server.clone())
    } else if let Some(client) = &a.receive_from {
        let role = fleet
            .host(&this)
            .and_then(|h| h.server.as_ref())
            .ok_or_else(|| Error::Usage(fleet.not_a_server(&this)))?;
        let is_push = fleet
            .jobs()
            .iter()
            .any(|j| j.server == this && &j.client == client && j.push);
        if !is_push {
            return Err(Error::Usage(format!(
                "`{client}` does not push to `{this}`"
            )));
        }
        let m = Mode::Receive {
            client: client.clone(),
            server: this.clone(),
            tree: role.target_root.join(client)?,
        };
        (m, client.clone())
    } else if let Some(server) = &a.restore_from {
        let m = Mode::Restore {
            server: server.clone(),
            datasets: a.dataset.clone(),
        };
        (m, server.clone())
    } else {
        return Err(Error::Usage(
            "say who the peer is: --server, --receive-from or --restore-from".into(),
        ));
    };
    let log = ServeLog {
        path: Some(a.log.clone()),
        host: this,
        peer,
    };
    let request = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    let code = serve(&mode, request.as_deref(), &log);
    Ok(u8::try_from(code).unwrap_or(1))
}
