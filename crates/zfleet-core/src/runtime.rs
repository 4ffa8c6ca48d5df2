//! What every command runs with: the fleet, which of its hosts this machine
//! is, the ssh sessions of this run, the clock and the time zone. The CLI
//! makes one per command; the daemon makes one and hands it to every job.
//! Nothing below reads the clock, makes ssh sessions or decides which host is
//! local on its own.

use std::sync::Arc;

use jiff::tz::TimeZone;

use crate::clock::{Clock, SystemClock};
use crate::config::{Fleet, SshEndpoint};
use crate::exec::SshSessions;
use crate::host::Host;
use crate::Error;

pub struct Runtime {
    pub fleet: Fleet,
    /// The fleet host this machine is.
    pub this_host: String,
    sessions: Arc<SshSessions>,
    clock: Arc<dyn Clock>,
    /// This host's zone: snapshot names, `--at` times, times in messages.
    pub tz: TimeZone,
}

impl Runtime {
    /// A runtime on the system's clock and zone, with fresh ssh sessions.
    pub fn new(fleet: Fleet, this_host: impl Into<String>) -> Result<Self, Error> {
        let sessions = SshSessions::new().map_err(|e| {
            Error::Internal(format!("cannot create the ssh control directory: {e}"))
        })?;
        Ok(Self {
            fleet,
            this_host: this_host.into(),
            sessions,
            clock: Arc::new(SystemClock),
            tz: TimeZone::system(),
        })
    }

    /// The same runtime on another clock and zone (tests, replays).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>, tz: TimeZone) -> Self {
        self.clock = clock;
        self.tz = tz;
        self
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The ssh sessions of this run, for connections that are not to a
    /// fleet host's admin account (an initrd, the backup account).
    pub fn sessions(&self) -> &Arc<SshSessions> {
        &self.sessions
    }

    /// The fleet host `name`: local when it is this machine, over ssh otherwise.
    pub fn host(&self, name: &str) -> Result<Host, Error> {
        Host::from_fleet(&self.fleet, name, &self.this_host, &self.sessions)
    }

    /// This machine.
    pub fn local(&self) -> Host {
        Host::local(self.this_host.clone())
    }

    /// A host reached at `ssh` (an extra client, a backup account), over
    /// this run's sessions.
    pub fn ssh_host(&self, name: &str, ssh: &SshEndpoint) -> Host {
        Host::ssh(name, ssh, self.sessions.clone())
    }
}
