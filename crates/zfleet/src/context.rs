//! What a command needs from the global options: the fleet, which host this
//! machine is, and the ssh sessions of this run.

use std::sync::Arc;

use zfleet_core::config::{self, Fleet};
use zfleet_core::exec::SshSessions;
use zfleet_core::host::Host;
use zfleet_core::Error;

use crate::cli::GlobalArgs;

pub struct Context {
    pub fleet: Fleet,
    pub this_host: String,
    sessions: Arc<SshSessions>,
}

impl Context {
    pub fn load(g: &GlobalArgs) -> Result<Self, Error> {
        let fleet = config::load(&g.config)?;
        let this_host = match &g.this_host {
            Some(h) => h.clone(),
            None => hostname(),
        };
        let sessions = SshSessions::new().map_err(|e| {
            Error::Internal(format!("cannot create the ssh control directory: {e}"))
        })?;
        Ok(Self {
            fleet,
            this_host,
            sessions,
        })
    }

    /// The ssh sessions of this run, for engines that build their own targets.
    pub fn sessions(&self) -> &Arc<SshSessions> {
        &self.sessions
    }

    /// The fleet host `name`: local when it is this machine, over ssh otherwise.
    pub fn host(&self, name: &str) -> Result<Host, Error> {
        Host::from_fleet(&self.fleet, name, &self.this_host, &self.sessions)
    }
}

/// The short hostname, which is what fleet files use for host names.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = raw.trim();
    name.split('.').next().unwrap_or(name).to_string()
}
