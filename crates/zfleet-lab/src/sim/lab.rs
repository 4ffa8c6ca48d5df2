//! A running lab: its directory, its switch and its hosts, and their teardown.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

use super::host::{self, Host, Shared, SharedFiles};
use super::prereq;
use super::process::{start_time, wait_within};
use super::spec::{host_addr, LabSpec, DEFAULT_ROOT};
use super::tree::NsTree;

/// The switch: a network namespace with one bridge that every host's veth peer
/// joins. It has no address and no route anywhere, so lab traffic stays between
/// the lab's hosts.
const SWITCH_INIT: &str = r#"set -eu
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null || true
ip link add name br0 type bridge
ip link set dev br0 up
touch "$ZL_DIR/ready"
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running lab of simulated hosts.
///
/// **A Lab belongs to the thread that started it.** Its namespace trees are tied
/// to that thread with `PR_SET_PDEATHSIG`, which fires when the spawning *thread*
/// exits, not the process; so a `Lab` is `!Send`, and must not be started from a
/// short-lived thread (or a `static` shared by tests, which each run on their own
/// thread). Dropping the lab, or [`Lab::teardown`], kills everything in it and
/// removes its directory; if the whole process dies instead, the kernel kills the
/// namespaces' processes and the next lab started removes the directory.
pub struct Lab {
    name: String,
    dir: PathBuf,
    shared: Arc<Shared>,
    hosts: Vec<Host>,
    switch: NsTree,
    torn_down: bool,
    /// `!Send`: see the type's documentation.
    _owner_thread: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

impl Lab {
    /// Creates the lab's directory, switch and hosts, starts zfs-fuse with the
    /// spec's pools and sshd on every host, and returns once all of them answer.
    pub fn start(spec: &LabSpec) -> Result<Lab> {
        spec.validate()?;
        let tools = prereq::check(spec.hosts.iter().any(|h| h.faketime))?;
        let root = spec
            .root
            .clone()
            .or_else(|| std::env::var_os("ZFLEET_LAB_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        check_root_path(&root)?;
        fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
        remove_stale_labs(&root);

        let name = format!(
            "{}-{}-{}",
            spec.name,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = root.join(&name);
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Declared first so it is dropped last, after any trees started below.
        let guard = DirGuard(Some(dir.clone()));
        let me = std::process::id();
        let owner = format!(
            "{me} {}\n",
            start_time(me).context("cannot read our own start time")?
        );
        host::write(&dir.join("owner"), &owner)?;

        // Keys: one user key for the lab, one host key per host, made in parallel.
        let user_key = dir.join("id_ed25519");
        let mut keygens = vec![keygen(&user_key, &format!("zfleet-lab@{name}"))?];
        for h in &spec.hosts {
            let ssh_dir = dir.join(&h.name).join("ssh");
            fs::create_dir_all(&ssh_dir)
                .with_context(|| format!("cannot create {}", ssh_dir.display()))?;
            keygens.push(keygen(&ssh_dir.join("ssh_host_ed25519_key"), &h.name)?);
        }
        for child in keygens {
            finish(child, "ssh-keygen")?;
        }

        let mut known_hosts = String::new();
        let mut etc_hosts = String::from("127.0.0.1\tlocalhost\n");
        for (i, h) in spec.hosts.iter().enumerate() {
            let addr = host_addr(i);
            let pubkey = read(&dir.join(&h.name).join("ssh/ssh_host_ed25519_key.pub"))?;
            let key: Vec<&str> = pubkey.split_whitespace().take(2).collect();
            let _ = writeln!(known_hosts, "{},{addr} {}", h.name, key.join(" "));
            let _ = writeln!(etc_hosts, "{addr}\t{}", h.name);
        }
        let known_hosts_path = dir.join("known_hosts");
        host::write(&known_hosts_path, &known_hosts)?;
        host::write(&dir.join("hosts"), &etc_hosts)?;
        let user_pub = read(&host::with_ext(&user_key, "pub"))?;
        let files = SharedFiles {
            user_key: &user_key,
            user_pub: &user_pub,
            known_hosts: &known_hosts_path,
        };
        for (i, h) in spec.hosts.iter().enumerate() {
            Host::prepare(h, host_addr(i), &dir.join(&h.name), &files, &tools)?;
        }

        let switch_dir = dir.join("switch");
        fs::create_dir(&switch_dir)
            .with_context(|| format!("cannot create {}", switch_dir.display()))?;
        let switch = NsTree::spawn(
            "the lab switch",
            &["--net"],
            SWITCH_INIT,
            &[
                ("ZL_DIR", switch_dir.as_os_str()),
                ("PATH", OsStr::new(&tools.path)),
            ],
            &switch_dir,
        )?;
        let shared = Arc::new(Shared {
            user_key,
            known_hosts: known_hosts_path,
            switch_pid: switch.init_pid(),
            tools,
        });

        let mut hosts = Vec::with_capacity(spec.hosts.len());
        for (i, h) in spec.hosts.iter().enumerate() {
            hosts.push(Host::spawn(h, i, host_addr(i), &dir, shared.clone())?);
        }
        wire(&switch, &hosts, &shared.tools.path)?;
        for h in &hosts {
            h.configure_network()?;
            h.spawn_zfs()?;
        }
        for h in &hosts {
            h.wait_zfs()?;
            h.create_pools()?;
            h.start_sshd()?;
        }

        let lab = Lab {
            name,
            dir,
            shared,
            hosts,
            switch,
            torn_down: false,
            _owner_thread: PhantomData,
        };
        guard.disarm();
        Ok(lab)
    }

    /// The lab's unique name: the spec's name, our pid and a counter.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lab's directory, removed at teardown.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn host_names(&self) -> Vec<&str> {
        self.hosts.iter().map(Host::name).collect()
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host> {
        match self.hosts.iter().find(|h| h.name() == name) {
            Some(h) => Ok(h),
            None => bail!(
                "lab {} has no host `{name}`; it has {:?}",
                self.name,
                self.host_names()
            ),
        }
    }

    /// The private key authorized for root on every host (also each host's
    /// `/root/.ssh/id_ed25519`, so plain `ssh client1` works inside the lab).
    pub fn user_key(&self) -> &Path {
        &self.shared.user_key
    }

    /// Every host's key under its name and its address (also each host's
    /// `/root/.ssh/known_hosts`).
    pub fn known_hosts(&self) -> &Path {
        &self.shared.known_hosts
    }

    /// The ssh options the lab's own ssh commands use (known_hosts, strict host
    /// key checking, batch mode, connect timeout), for configuring zfleet alike.
    pub fn ssh_options(&self) -> Vec<String> {
        host::ssh_options(&self.shared.known_hosts)
    }

    /// The host-side pid of the switch's pid 1 (its network namespace holds the
    /// bridge `br0` and each host's port).
    pub fn switch_pid(&self) -> u32 {
        self.switch.init_pid()
    }

    /// Kills every process of the lab, waits until they are gone and removes the
    /// lab's directory. Dropping the lab does the same but can only log errors.
    pub fn teardown(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Ok(());
        }
        for h in &self.hosts {
            h.tree.kill();
        }
        self.switch.kill();
        let mut errors = Vec::new();
        for h in &mut self.hosts {
            if let Err(e) = h.tree.wait() {
                errors.push(format!("{e:#} (log: {})", h.tree.log().display()));
            }
        }
        if let Err(e) = self.switch.wait() {
            errors.push(format!("{e:#}"));
        }
        if let Err(e) = remove_lab_dir(&self.dir) {
            errors.push(format!("cannot remove {}: {e}", self.dir.display()));
        }
        if !errors.is_empty() {
            bail!("teardown of lab {}: {}", self.name, errors.join("; "));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("{e:#}");
        }
    }
}

/// Removes a lab directory whose start failed half-way.
struct DirGuard(Option<PathBuf>);

impl DirGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = remove_lab_dir(&dir);
        }
    }
}

/// Creates each host's eth0 directly in its namespace, from inside the switch,
/// so no interface ever exists in the machine's own namespace.
fn wire(switch: &NsTree, hosts: &[Host], path: &str) -> Result<()> {
    let mut script = String::from("set -eu\n");
    for h in hosts {
        let port = h.port_name();
        let _ = writeln!(
            script,
            "ip link add name eth0 netns {} type veth peer name {port}\nip link set dev {port} master br0 up",
            h.pid()
        );
    }
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--target={}", switch.init_pid()))
        .args(["--net", "--", "/bin/sh", "-c", &script])
        .env("PATH", path);
    super::process::run_within(&mut cmd, host::DEFAULT_TIMEOUT).context("wiring the lab switch")?;
    Ok(())
}

fn keygen(path: &Path, comment: &str) -> Result<Child> {
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run ssh-keygen")
}

fn finish(mut child: Child, what: &str) -> Result<()> {
    match wait_within(&mut child, Duration::from_secs(30)) {
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!("{what} failed: {status}"),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within 30 s")
        }
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Paths end up in mount options, sshd_config and shell words; keep them plain.
fn check_root_path(root: &Path) -> Result<()> {
    let s = root.to_string_lossy();
    if !root.is_absolute()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
    {
        bail!(
            "lab root `{}` must be an absolute path of letters, digits and `/-_.`",
            root.display()
        );
    }
    Ok(())
}

/// Removes a lab's directory. `zfleet grant` makes a client's serve log
/// append-only (`chattr +a`), which even root cannot unlink, so a first
/// refusal clears that attribute under the directory and tries again.
fn remove_lab_dir(dir: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // chattr complains about sockets and fifos it cannot open; what
            // counts is whether the second removal succeeds.
            let _ = Command::new("chattr")
                .args(["-R", "-a"])
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            fs::remove_dir_all(dir).map_err(|_| e)
        }
        other => other,
    }
}

/// Removes lab directories whose owner process is gone (killed before it could
/// tear down; the kernel already killed the lab's processes).
fn remove_stale_labs(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if is_stale(&dir) {
            tracing::info!("removing stale lab directory {}", dir.display());
            let _ = remove_lab_dir(&dir);
        }
    }
}

fn is_stale(dir: &Path) -> bool {
    match fs::read_to_string(dir.join("owner")) {
        Ok(text) => {
            let mut words = text.split_whitespace().map(str::parse::<u64>);
            match (words.next(), words.next()) {
                (Some(Ok(pid)), Some(Ok(started))) => u32::try_from(pid)
                    .map(|pid| start_time(pid) != Some(started))
                    .unwrap_or(true),
                _ => true,
            }
        }
        // A lab being created has no owner file for a moment; only old ones are
        // abandoned.
        Err(_) => fs::metadata(dir)
            .and_then(|m| m.modified())
            .map(|t| {
                SystemTime::now()
                    .duration_since(t)
                    .is_ok_and(|age| age > Duration::from_secs(600))
            })
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_directory_with_an_append_only_log_is_removed() {
        let root = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let dir = root.path().join("lab");
        fs::create_dir_all(dir.join("client1/var-log/zfleet")).unwrap();
        let log = dir.join("client1/var-log/zfleet/serve.log");
        fs::write(&log, "x\n").unwrap();
        let set = Command::new("chattr").arg("+a").arg(&log).status();
        if !set.is_ok_and(|s| s.success()) {
            eprintln!("skipped: chattr +a is not possible here (not root, or no such attribute)");
            return;
        }
        assert!(fs::remove_dir_all(&dir).is_err(), "append-only must refuse");
        remove_lab_dir(&dir).unwrap();
        assert!(!dir.exists());
    }
}
