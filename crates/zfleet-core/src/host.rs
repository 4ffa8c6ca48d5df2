//! A fleet host as the engine talks to it: where its commands run, and what its
//! ZFS can do (probed once, then cached for the run).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::{Fleet, SshEndpoint};
use crate::exec::{Argv, Endpoint, Output, RunOptions, SshOptions, SshSessions, SshTarget};
use crate::zfs::{
    caps, cmd, Caps, DatasetName, Listing, PoolName, PropertyRow, ZfsError, ZfsErrorKind,
};
use crate::Error;

/// Limit for commands that only read state. Transfers have their own.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct Host {
    pub name: String,
    endpoint: Endpoint,
    caps: OnceLock<Caps>,
    /// The host answers through `zfleet serve` (a forced command): it takes
    /// single zfs commands, not shell lines.
    /// `None`: plain ssh; `Some(features)`: `zfleet serve` and what it announced.
    served: OnceLock<Option<crate::protocol::Banner>>,
}

impl Host {
    pub fn local(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            endpoint: Endpoint::Local,
            caps: OnceLock::new(),
            served: OnceLock::new(),
        }
    }

    pub fn ssh(name: impl Into<String>, ssh: &SshEndpoint, sessions: Arc<SshSessions>) -> Self {
        let name = name.into();
        let options = SshOptions {
            identity: ssh.identity.clone(),
            known_hosts: ssh.known_hosts.clone(),
            connect_timeout: ssh.connect_timeout,
            ..SshOptions::default()
        };
        let target = SshTarget::new(
            name.clone(),
            ssh.address.clone(),
            ssh.user.clone(),
            ssh.port,
            options,
            sessions,
        );
        Self {
            name,
            endpoint: Endpoint::Ssh(Arc::new(target)),
            caps: OnceLock::new(),
            served: OnceLock::new(),
        }
    }

    /// The fleet host `name`, local when it is the machine zfleet runs on.
    pub fn from_fleet(
        fleet: &Fleet,
        name: &str,
        this_host: &str,
        sessions: &Arc<SshSessions>,
    ) -> Result<Self, Error> {
        let hc = fleet.host(name).ok_or_else(|| Error::UnknownHost {
            name: name.to_string(),
            known: fleet.hosts.keys().cloned().collect(),
        })?;
        Ok(if name == this_host {
            Self::local(name)
        } else {
            Self::ssh(name, &hc.ssh, sessions.clone())
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Runs a zfs/zpool command that reads state; failures are classified.
    pub fn query(&self, argv: &Argv) -> Result<Output, ZfsError> {
        Ok(self
            .endpoint
            .run(argv, &RunOptions::timeout(QUERY_TIMEOUT))?)
    }

    /// The host's ZFS dialect, probed on first use.
    pub fn caps(&self) -> Result<&Caps, ZfsError> {
        if let Some(c) = self.caps.get() {
            return Ok(c);
        }
        let out = self.query(&caps::probe())?;
        let text = out.stdout_text();
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let (served, text) = match crate::protocol::Banner::parse(first) {
            Some(b) => (Some(b), rest.to_string()),
            None => (None, text.clone()),
        };
        let _ = self.served.set(served);
        let probed = caps::from_probe_output(&text);
        Ok(self.caps.get_or_init(|| probed))
    }

    /// Uses `caps` instead of probing (from a cache the caller trusts); no-op
    /// once the host was probed.
    pub fn preset_caps(&self, caps: Caps) {
        let _ = self.caps.set(caps);
    }

    /// Whether the host answers through `zfleet serve` (known after the probe).
    pub fn is_served(&self) -> bool {
        self.served.get().is_some_and(Option::is_some)
    }

    /// Whether its `zfleet serve` compresses sends itself (`zfleet-zstd`).
    pub fn serve_compresses(&self) -> bool {
        self.served
            .get()
            .and_then(Option::as_ref)
            .is_some_and(|b| b.features.iter().any(|w| w == "zstd"))
    }

    /// The zfleet version of the host's `zfleet serve`, when it says (known
    /// after the probe).
    pub fn serve_version(&self) -> Option<&str> {
        self.served.get()?.as_ref()?.version.as_deref()
    }

    /// Every property of `ds` with its source, in one command.
    pub fn properties(&self, ds: &DatasetName) -> Result<Vec<PropertyRow>, Error> {
        let argv = cmd::get_properties(&[], &[ds]);
        let out = self.query(&argv)?;
        crate::zfs::parse::properties(&out.stdout_text()).map_err(|source| Error::Parse {
            host: self.name.clone(),
            cmdline: argv.to_string(),
            source,
        })
    }

    /// Imported pools.
    pub fn pools(&self) -> Result<Vec<PoolName>, Error> {
        let argv = cmd::zpool().args(["list", "-H", "-o", "name"]);
        let out = self.query(&argv)?;
        out.stdout_text()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| PoolName::parse(l).map_err(Error::from))
            .collect()
    }

    /// Everything below `root` in one command.
    pub fn observe(&self, root: &DatasetName) -> Result<Listing, Error> {
        self.observe_with(root, &[])
    }

    /// Like [`observe`](Self::observe), with extra properties per object.
    pub fn observe_with(&self, root: &DatasetName, extra: &[String]) -> Result<Listing, Error> {
        let caps = self.caps()?;
        self.list_into_listing(caps, &cmd::observe(caps, root, extra), extra)
    }

    /// Several trees in one command (one round trip for all of a client's
    /// datasets). Fails if any root is missing.
    pub fn observe_many(&self, roots: &[&DatasetName], extra: &[String]) -> Result<Listing, Error> {
        let caps = self.caps()?;
        self.list_into_listing(caps, &cmd::observe_roots(caps, roots, extra), extra)
    }

    /// The datasets themselves with their snapshots and bookmarks, in one
    /// command (`-d 1`): what a replication observes, and what `zfleet serve`
    /// allows. Fails if any is missing.
    pub fn observe_own(&self, roots: &[&DatasetName], extra: &[String]) -> Result<Listing, Error> {
        let caps = self.caps()?;
        self.list_into_listing(caps, &cmd::observe_own(caps, roots, extra), extra)
    }

    /// Like [`observe_own`](Self::observe_own) of one dataset; `None` when it is missing.
    pub fn observe_own_if_exists(
        &self,
        ds: &DatasetName,
        extra: &[String],
    ) -> Result<Option<Listing>, Error> {
        match self.observe_own(&[ds], extra) {
            Ok(l) => Ok(Some(l)),
            Err(Error::Zfs(ZfsError {
                kind: ZfsErrorKind::DoesNotExist { .. },
                ..
            })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list_into_listing(
        &self,
        caps: &Caps,
        argv: &Argv,
        extra: &[String],
    ) -> Result<Listing, Error> {
        let text = self.query(argv)?.stdout_text();
        let parsed = if caps.list_parsable {
            Listing::from_list(&text, extra)
        } else {
            Listing::from_get(&text, extra)
        };
        parsed.map_err(|source| Error::Parse {
            host: self.name.clone(),
            cmdline: argv.to_string(),
            source,
        })
    }

    /// Like [`observe_with`](Self::observe_with), but a missing root is `None`.
    pub fn observe_if_exists(
        &self,
        root: &DatasetName,
        extra: &[String],
    ) -> Result<Option<Listing>, Error> {
        match self.observe_with(root, extra) {
            Ok(l) => Ok(Some(l)),
            Err(Error::Zfs(ZfsError {
                kind: ZfsErrorKind::DoesNotExist { .. },
                ..
            })) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
