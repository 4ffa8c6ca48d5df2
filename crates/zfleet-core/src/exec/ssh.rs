//! OpenSSH with one multiplexed connection per host per run.
//!
//! The first command for a host starts a master connection (`ControlMaster=yes`)
//! that zfleet owns as a child process; every later command for that host rides
//! on it, so a run over 50 hosts authenticates 50 times, not once per `zfs` call.
//! The master is stopped when the target is dropped, and ends by itself soon
//! after its last session if zfleet dies. Host keys are always checked
//! and nothing ever prompts (`BatchMode=yes`): a prompt would hang behind a
//! progress bar or in a timer unit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{quote, Argv, ChildGuard, ExecError, Output};

/// How long a master connection outlives its last session when zfleet did not
/// stop it (zfleet was killed).
const MASTER_LINGER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SshOptions {
    pub program: String,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Keepalive probes: a cut cable is noticed after interval × 3.
    pub alive_interval: Duration,
    /// Trust host keys from `known_hosts` and nowhere else, and read no ssh
    /// configuration at all. For pinned keys (an initrd's), where a key
    /// accepted from anywhere else — the system-wide file, DNS, a
    /// `KnownHostsCommand` in some `ssh_config` — would defeat the pin. See
    /// [`pinned_options`].
    pub pinned: bool,
}

/// The name a pinned key is filed under in its `known_hosts`: `addr`, or
/// `[addr]:port`, as ssh itself writes it.
pub fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// Everything a pinned connection gets on top of the common options, so that
/// the pin file is the only thing that decides which host key is accepted.
///
/// `-F none` reads neither `~/.ssh/config` nor `/etc/ssh/ssh_config` (and so no
/// `ssh_config.d`): options given with `-o` win over a config file, but a
/// config file can still *add* what the command line leaves unset — a
/// `KnownHostsCommand` that vouches for any key, a `ProxyCommand`, a
/// `Match exec`. The options after it are what `-F none` leaves as defaults
/// anyway, spelled out so a change of ssh's defaults cannot loosen them.
pub fn pinned_options(known_hosts: &Path, address: &str, port: u16) -> Vec<String> {
    let mut v = vec!["-F".to_string(), "none".to_string()];
    for opt in [
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "GlobalKnownHostsFile=none".to_string(),
        "KnownHostsCommand=none".to_string(),
        "StrictHostKeyChecking=yes".to_string(),
        // Look the key up under the name the pin was written for, whatever
        // name or address ssh ends up connecting to.
        format!("HostKeyAlias={}", known_hosts_name(address, port)),
        // The pin is a key, not an address (an initrd often shares the booted
        // system's address, and DHCP moves it); with `yes` ssh would also
        // write addresses into the pin file.
        "CheckHostIP=no".to_string(),
        "VerifyHostKeyDNS=no".to_string(),
        "UpdateHostKeys=no".to_string(),
        "CanonicalizeHostname=no".to_string(),
    ] {
        v.push("-o".into());
        v.push(opt);
    }
    v
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            program: "ssh".into(),
            identity: None,
            known_hosts: None,
            connect_timeout: Duration::from_secs(10),
            alive_interval: Duration::from_secs(5),
            pinned: false,
        }
    }
}

/// The private directory for this run's control sockets (mode 0700, a fresh
/// random name: pids repeat across containers and namespaces). Shared by all
/// targets; removed when the last one is gone.
#[derive(Debug)]
pub struct SshSessions {
    dir: tempfile::TempDir,
}

impl SshSessions {
    pub fn new() -> std::io::Result<Arc<Self>> {
        // Unix socket paths are limited to 108 bytes, so keep this short and in
        // /tmp rather than under a possibly long $TMPDIR.
        let dir = tempfile::Builder::new()
            .prefix("zfleet-ssh-")
            .tempdir_in("/tmp")?;
        Ok(Arc::new(Self { dir }))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[derive(Debug)]
pub struct SshTarget {
    /// The fleet host name, used in every message.
    pub name: String,
    pub address: String,
    pub user: Option<String>,
    pub port: u16,
    pub options: SshOptions,
    sessions: Arc<SshSessions>,
    /// Whether this run started a master connection.
    master: Mutex<bool>,
}

impl SshTarget {
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        user: Option<String>,
        port: u16,
        options: SshOptions,
        sessions: Arc<SshSessions>,
    ) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            user,
            port,
            options,
            sessions,
            master: Mutex::new(false),
        }
    }

    fn control_path(&self) -> PathBuf {
        // Host names are validated to a safe character set, but keep the socket
        // name independent of them anyway.
        let idx = self
            .name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
        self.sessions.dir().join(format!("{idx:x}.sock"))
    }

    fn log_path(&self) -> PathBuf {
        self.control_path().with_extension("log")
    }

    fn shown_address(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}:{}", self.address, self.port),
            None => format!("{}:{}", self.address, self.port),
        }
    }

    /// Options every ssh invocation gets, master or not, so that a fallback
    /// connection is exactly as strict as the master.
    fn base_command(&self) -> Command {
        let o = &self.options;
        let mut c = Command::new(&o.program);
        if o.pinned {
            // First: `-F` and each option's first value win.
            c.args(self.pinned_args());
        }
        let secs = o.connect_timeout.as_secs().max(1);
        let alive = o.alive_interval.as_secs().max(1);
        for opt in [
            "BatchMode=yes".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            format!("ConnectTimeout={secs}"),
            format!("ServerAliveInterval={alive}"),
            "ServerAliveCountMax=3".to_string(),
            // Only our own errors on stderr, not banners or "added host" notes.
            "LogLevel=ERROR".to_string(),
            // A backup run has no use for forwarding of any kind.
            "ForwardAgent=no".to_string(),
            "ForwardX11=no".to_string(),
            "ClearAllForwardings=yes".to_string(),
            "PermitLocalCommand=no".to_string(),
        ] {
            c.arg("-o").arg(opt);
        }
        if let (Some(k), false) = (&o.known_hosts, o.pinned) {
            c.arg("-o")
                .arg(format!("UserKnownHostsFile={}", k.display()));
        }
        if let Some(id) = &o.identity {
            c.arg("-o").arg("IdentitiesOnly=yes").arg("-i").arg(id);
        }
        c.arg("-p").arg(self.port.to_string());
        if let Some(u) = &self.user {
            c.arg("-l").arg(u);
        }
        c.env("LC_ALL", "C");
        super::withhold_env(&mut c);
        c
    }

    /// [`pinned_options`] for this target. A pinned target without a pin
    /// file trusts nothing (`UserKnownHostsFile=none`).
    fn pinned_args(&self) -> Vec<String> {
        let none = PathBuf::from("none");
        let file = self.options.known_hosts.as_ref().unwrap_or(&none);
        pinned_options(file, &self.address, self.port)
    }

    /// Starts the master connection if it is not running. Errors name the host.
    ///
    /// The master runs in the background (`-f`) with `ControlPersist`, so that it
    /// ends by itself shortly after its last session even if zfleet is killed;
    /// normally zfleet stops it at once when the target is dropped.
    pub fn connect(&self) -> Result<(), ExecError> {
        let mut connected = self.master.lock().unwrap_or_else(|p| p.into_inner());
        let sock = self.control_path();
        if *connected && sock.exists() {
            return Ok(());
        }
        // Not started yet, or the master died (network cut, host rebooted):
        // ssh removes its socket when it exits.
        *connected = false;
        let _ = fs::remove_file(&sock);
        let spawn_err = |source| ExecError::Spawn {
            host: self.name.clone(),
            cmdline: format!("{} (master connection)", self.options.program),
            source,
        };
        let log = fs::File::create(self.log_path()).map_err(spawn_err)?;
        let mut cmd = self.base_command();
        if self.options.pinned {
            // No detour through a proxy the fleet file did not ask for.
            cmd.args(["-o", "ProxyCommand=none"]);
        }
        cmd.arg("-f")
            .arg("-N")
            .arg("-o")
            .arg("ControlMaster=yes")
            .arg("-o")
            .arg(format!("ControlPath={}", sock.display()))
            .arg("-o")
            .arg(format!("ControlPersist={}", MASTER_LINGER.as_secs()))
            .arg("--")
            .arg(&self.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().map_err(spawn_err)?;
        let mut starter = ChildGuard::new(child);
        // ssh's own ConnectTimeout covers the TCP connect; the margin covers key
        // exchange and authentication on a slow host.
        let limit = self.options.connect_timeout + Duration::from_secs(5);
        let status = starter.wait_timeout(Some(limit)).map_err(spawn_err)?;
        let detail = fs::read_to_string(self.log_path()).unwrap_or_default();
        let detail = detail.trim();
        match status {
            // `-f` returns once authenticated and the master is in the background.
            Some(st) if st.success() && sock.exists() => {
                *connected = true;
                Ok(())
            }
            Some(_) => Err(self.classify(detail, limit)),
            None => Err(ExecError::Unreachable {
                host: self.name.clone(),
                address: self.shown_address(),
                after: limit,
                detail: if detail.is_empty() {
                    "no answer".to_string()
                } else {
                    detail.to_string()
                },
            }),
        }
    }

    fn classify(&self, detail: &str, limit: Duration) -> ExecError {
        let host = self.name.clone();
        let address = self.shown_address();
        let lower = detail.to_ascii_lowercase();
        if lower.contains("host key verification failed")
            || lower.contains("remote host identification has changed")
            || lower.contains("host key is known")
        {
            return ExecError::HostKey {
                host,
                address,
                known_hosts: self.options.known_hosts.as_ref().map_or_else(
                    || "~/.ssh/known_hosts".to_string(),
                    |p| p.display().to_string(),
                ),
                detail: detail.to_string(),
            };
        }
        if lower.contains("permission denied") || lower.contains("too many authentication failures")
        {
            return ExecError::Auth {
                host,
                address,
                detail: detail.to_string(),
            };
        }
        if [
            "timed out",
            "no route to host",
            "connection refused",
            "network is unreachable",
            "could not resolve hostname",
            "name or service not known",
            "temporary failure in name resolution",
        ]
        .iter()
        .any(|p| lower.contains(p))
        {
            return ExecError::Unreachable {
                host,
                address,
                after: limit,
                detail: detail.to_string(),
            };
        }
        ExecError::Connection {
            host,
            address,
            detail: if detail.is_empty() {
                "ssh exited without a message".into()
            } else {
                detail.to_string()
            },
        }
    }

    /// A command running `argv` on the host through the master connection.
    pub fn command(&self, argv: &Argv) -> Result<Command, ExecError> {
        let line = quote::remote_command_line(argv.words()).map_err(|e| ExecError::Refused {
            host: self.name.clone(),
            reason: format!("`{argv}`: {e}"),
        })?;
        self.connect()?;
        let mut c = self.base_command();
        c.arg("-T")
            .arg("-o")
            .arg("ControlMaster=no")
            .arg("-o")
            .arg(format!("ControlPath={}", self.control_path().display()))
            .arg("--")
            .arg(&self.address)
            .arg(line);
        Ok(c)
    }

    /// A session over the master connection that is already up, and over nothing
    /// else: when the master is gone this fails instead of connecting anew.
    /// With `argv` it runs that command; without, it asks for the login shell
    /// (which is how an initrd's forced `cryptsetup-askpass` is reached).
    ///
    /// What is written to this session's stdin therefore only ever travels over
    /// the connection whose host key [`connect`](Self::connect) verified.
    pub fn mux_session(&self, argv: Option<&Argv>) -> Result<Command, ExecError> {
        let line = match argv {
            Some(a) => {
                Some(
                    quote::remote_command_line(a.words()).map_err(|e| ExecError::Refused {
                        host: self.name.clone(),
                        reason: format!("`{a}`: {e}"),
                    })?,
                )
            }
            None => None,
        };
        if !self.is_connected() {
            return Err(ExecError::Connection {
                host: self.name.clone(),
                address: self.shown_address(),
                detail: "the verified connection is gone".into(),
            });
        }
        let mut c = self.base_command();
        c.arg("-T")
            .arg("-o")
            .arg("ControlMaster=no")
            .arg("-o")
            .arg(format!("ControlPath={}", self.control_path().display()))
            // ssh falls back to a connection of its own when the control socket
            // does not answer; a proxy command that always fails turns that
            // fallback into an error. A multiplexed session never runs it.
            .arg("-o")
            .arg("ProxyCommand=/bin/false")
            .arg("--")
            .arg(&self.address);
        if let Some(line) = line {
            c.arg(line);
        }
        Ok(c)
    }

    /// Whether the master connection is up (without starting one): asked of
    /// the master itself, since a master killed hard leaves its socket behind.
    pub fn is_connected(&self) -> bool {
        let connected = *self.master.lock().unwrap_or_else(|p| p.into_inner());
        connected && self.control_path().exists() && self.control("check")
    }

    /// After a session ended with ssh's own failure (255): `Some(why)` when the
    /// master connection is gone too, so the host stopped answering (a link
    /// down, sshd gone), `None` when it is still up, so only that session's
    /// remote command died.
    pub fn lost_connection(&self) -> Option<String> {
        if self.is_connected() {
            return None;
        }
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let detail = log
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("the connection was lost")
            .to_string();
        Some(detail)
    }

    /// Ends the master connection, if this run started one.
    pub fn disconnect(&self) {
        let mut connected = self.master.lock().unwrap_or_else(|p| p.into_inner());
        if *connected {
            self.control("exit");
            *connected = false;
        }
        let _ = fs::remove_file(self.control_path());
    }

    /// `ssh -O COMMAND` to the master; whether it succeeded.
    fn control(&self, command: &str) -> bool {
        let mut c = Command::new(&self.options.program);
        super::withhold_env(&mut c);
        if self.options.pinned {
            c.args(["-F", "none"]);
        }
        c.arg("-o")
            .arg(format!("ControlPath={}", self.control_path().display()))
            .args(["-O", command])
            .arg(&self.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Turns an exit status of 255 (ssh's own failure) into a connection error.
    pub fn connection_error(&self, argv: &Argv, out: &Output) -> ExecError {
        let detail = out.stderr_text();
        match self.classify(&detail, self.options.connect_timeout) {
            // A refused login happens when connecting, not in a session
            // over a connection that is up: a command that says "permission
            // denied" and exits 255 is that command's failure.
            ExecError::Connection { detail, .. } | ExecError::Auth { detail, .. }
                if !detail.is_empty() =>
            {
                ExecError::Failed {
                    host: self.name.clone(),
                    cmdline: argv.to_string(),
                    status: "exit status 255".into(),
                    stderr: detail,
                }
            }
            other => other,
        }
    }
}

impl Drop for SshTarget {
    fn drop(&mut self) {
        let started = *self.master.get_mut().unwrap_or_else(|p| p.into_inner());
        if started {
            // Ends the background master now rather than after ControlPersist.
            self.control("exit");
        }
        let _ = fs::remove_file(self.control_path());
        let _ = fs::remove_file(self.log_path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pinned: bool) -> SshTarget {
        SshTarget::new(
            "alpha (initrd)",
            "alpha-initrd",
            Some("root".into()),
            2222,
            SshOptions {
                known_hosts: Some("/etc/zfleet/initrd_known_hosts/alpha".into()),
                pinned,
                ..SshOptions::default()
            },
            SshSessions::new().unwrap(),
        )
    }

    /// What OpenSSH itself makes of the options (`ssh -G` prints the
    /// configuration it would use): the pin file and nothing else, whatever
    /// ssh_config says — `-F none` reads none.
    #[test]
    fn pinned_connections_trust_the_pin_file_alone() {
        let t = target(true);
        let mut c = t.base_command();
        c.args(["-o", "ProxyCommand=none", "-G", "--", &t.address]);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let has = |line: &str| conf.lines().any(|l| l == line);
        for line in [
            "userknownhostsfile /etc/zfleet/initrd_known_hosts/alpha",
            "globalknownhostsfile none",
            "stricthostkeychecking true",
            "hostkeyalias [alpha-initrd]:2222",
            "checkhostip no",
            "verifyhostkeydns false",
            "updatehostkeys false",
            "batchmode yes",
        ] {
            assert!(has(line), "missing `{line}` in\n{conf}");
        }
        for key in ["knownhostscommand", "proxycommand", "proxyjump"] {
            assert!(
                !conf.lines().any(|l| l.starts_with(key)),
                "`{key}` is set:\n{conf}"
            );
        }
        let args: Vec<_> = t.base_command().get_args().map(|a| a.to_owned()).collect();
        assert_eq!(args[..2], ["-F", "none"]);

        // Normal connections keep reading the user's ssh configuration.
        let args: Vec<String> = target(false)
            .base_command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args
            .iter()
            .any(|a| a == "-F" || a.starts_with("HostKeyAlias")));
        assert!(
            args.contains(&"UserKnownHostsFile=/etc/zfleet/initrd_known_hosts/alpha".to_string())
        );
    }
}
