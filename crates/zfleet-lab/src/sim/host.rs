//! One simulated host: its namespaces, its zfs-fuse and its sshd.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use super::prereq::Tools;
use super::process::{output_within, run_within, shell_quote, tail, wait_until};
use super::spec::{HostSpec, PoolSpec, PREFIX_LEN};
use super::tree::NsTree;

/// Default bound for [`Host::sh`] and the lab's own commands.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const DAEMON_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything a host needs to know about its lab.
pub(crate) struct Shared {
    pub user_key: PathBuf,
    pub known_hosts: PathBuf,
    pub tools: Tools,
    /// pid 1 of the switch namespace, where each host's veth peer lives.
    pub switch_pid: u32,
}

/// A simulated host of a running [`Lab`](super::Lab).
///
/// Commands "on" the host run through `nsenter` into its mount, network, uts and
/// pid namespaces: they see its own `/etc` (an overlay: `useradd` stays here),
/// `/run`, `/home`, `/root/.ssh`, `/var/lib/zfs`, its zfs-fuse and its network,
/// and nothing else of the lab's network. Paths outside those stay the machine's.
pub struct Host {
    name: String,
    index: usize,
    addr: Ipv4Addr,
    dir: PathBuf,
    faketime: bool,
    max_arc_mib: Option<u32>,
    pools: Vec<PoolSpec>,
    shared: Arc<Shared>,
    pub(crate) tree: NsTree,
}

/// Set up by each host's pid 1 before anything else runs there.
///
/// /run is a private tmpfs (so /run/zfs, /run/lock/zfs and /run/sshd are the
/// host's own); /etc is an overlay over the machine's, because tools like useradd
/// replace /etc/passwd by rename, which fails on a file bind mount.
const HOST_INIT: &str = r#"set -eu
mount -t tmpfs -o mode=0755 zfleet-run /run
mkdir -p /run/zfs /run/lock/zfs /run/sshd
# libfaketime leaves semaphores named after (namespace) pids in /dev/shm.
mount -t tmpfs -o mode=1777 zfleet-shm /dev/shm
mount -t overlay zfleet-etc -o "lowerdir=/etc,upperdir=$ZL_DIR/etc/upper,workdir=$ZL_DIR/etc/work" /etc
mkdir -p /var/lib/zfs /var/lib/zfleet /root/.ssh
mount --bind "$ZL_DIR/var-lib-zfs" /var/lib/zfs
# zfleet's state and locks, per host as on real machines.
mount --bind "$ZL_DIR/var-lib-zfleet" /var/lib/zfleet
# Logs (zfleet serve's among them) stay with the host, not on the machine.
mount --bind "$ZL_DIR/var-log" /var/log
mount --bind "$ZL_DIR/home" /home
mount --bind "$ZL_DIR/dot-ssh" /root/.ssh
# bash sources ~/.bashrc for every command sshd runs; the machine's (pyenv
# init and the like) would cost each ssh session of a test ~0.1 s that no
# fleet host pays, and would skew every benchmark against the raw pipe.
if [ -e /root/.bashrc ]; then
  : > "$ZL_DIR/bashrc"
  mount --bind "$ZL_DIR/bashrc" /root/.bashrc
fi
cp "$ZL_LAB/hosts" /etc/hosts
echo "$ZL_NAME" > /etc/hostname
hostname "$ZL_NAME"
# Only the lab's IPv4 addresses: no router solicitations or SLAAC chatter.
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null || true
ip link set lo up
touch "$ZL_DIR/ready"
"#;

impl Host {
    /// Creates the host's directory tree and files; nothing runs yet.
    pub(crate) fn prepare(
        spec: &HostSpec,
        addr: Ipv4Addr,
        dir: &Path,
        shared_files: &SharedFiles<'_>,
        tools: &Tools,
    ) -> Result<()> {
        for sub in [
            "etc/upper",
            "etc/work",
            "var-lib-zfs",
            "var-lib-zfleet",
            "var-log",
            "home",
            "dot-ssh",
            "root",
            "vdev",
            "ssh/authorized_keys",
        ] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
        }
        let dot_ssh = dir.join("dot-ssh");
        copy(shared_files.user_key, &dot_ssh.join("id_ed25519"))?;
        copy(
            &with_ext(shared_files.user_key, "pub"),
            &dot_ssh.join("id_ed25519.pub"),
        )?;
        copy(shared_files.known_hosts, &dot_ssh.join("known_hosts"))?;
        write(&dir.join("ssh/authorized_keys/root"), shared_files.user_pub)?;
        write(&dir.join("faketime"), "+0\n")?;
        let libfaketime = tools.libfaketime.as_deref().filter(|_| spec.faketime);
        write(
            &dir.join("ssh/sshd_config"),
            &sshd_config(&spec.name, addr, dir, libfaketime),
        )?;
        Ok(())
    }

    /// Starts the host's namespaces and waits until its pid 1 has set them up.
    pub(crate) fn spawn(
        spec: &HostSpec,
        index: usize,
        addr: Ipv4Addr,
        lab_dir: &Path,
        shared: Arc<Shared>,
    ) -> Result<Host> {
        let dir = lab_dir.join(&spec.name);
        let tree = NsTree::spawn(
            &format!("host {}", spec.name),
            &[
                "--mount-proc",
                "--mount",
                "--net",
                "--uts",
                "--propagation",
                "private",
            ],
            HOST_INIT,
            &[
                ("ZL_DIR", dir.as_os_str()),
                ("ZL_LAB", lab_dir.as_os_str()),
                ("ZL_NAME", OsStr::new(&spec.name)),
                ("PATH", OsStr::new(&shared.tools.path)),
            ],
            &dir,
        )?;
        let host = Host {
            name: spec.name.clone(),
            index,
            addr,
            dir,
            faketime: spec.faketime,
            max_arc_mib: spec.max_arc_mib,
            pools: spec.pools.clone(),
            shared,
            tree,
        };
        // For `zfleet-lab sim exec` and people entering the host by hand.
        write(&host.dir.join("init.pid"), &format!("{}\n", host.pid()))?;
        if host.faketime {
            let mut env = String::new();
            for (k, v) in host.faketime_env() {
                let _ = writeln!(env, "{k}={}", v.to_string_lossy());
            }
            write(&host.dir.join("faketime.env"), &env)?;
        }
        Ok(host)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on the lab's switch.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The host's directory on the machine: logs, vdevs, sshd config, faketime file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pools' altroot: datasets mount below it, and only inside the host's
    /// mount namespace (from outside, read them through [`Host::ns_path`]).
    pub fn altroot(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The host-side pid of the host's pid 1, the `--target` for nsenter.
    pub fn pid(&self) -> u32 {
        self.tree.init_pid()
    }

    /// Runs `f` on a thread that has joined this host's network namespace, so
    /// that processes it starts (ssh, for instance) talk from this host's
    /// address to the other lab hosts. Files are still the machine's.
    pub fn with_network<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/proc/{}/ns/net", self.pid());
        let ns = fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
        let inner_path = path.clone();
        std::thread::scope(|s| {
            s.spawn(move || -> Result<T> {
                let path = inner_path;
                // setns affects only this thread; it ends with the scope.
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .with_context(|| format!("cannot enter the network namespace {path}"))?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread in {path} panicked"))?
        })
    }

    /// Like [`Host::with_network`], but the thread runs on by itself: for a
    /// server inside the host (a test's HTTP receiver) that lives while the
    /// test goes on. Join the handle to get `f`'s result.
    pub fn spawn_in_network<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T>>> {
        let path = format!("/proc/{}/ns/net", self.pid());
        let ns = fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
        Ok(std::thread::spawn(move || -> Result<T> {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .with_context(|| format!("cannot enter the network namespace {path}"))?;
            Ok(f())
        }))
    }

    /// Whether the host runs under libfaketime.
    pub fn faketime(&self) -> bool {
        self.faketime
    }

    /// A path as the host sees it, reachable from the machine through
    /// `/proc/<pid>/root` (e.g. files in a mounted dataset).
    pub fn ns_path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        let rel = path.strip_prefix("/").unwrap_or(path);
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(rel)
    }

    /// A command that runs `program` on the host, with the host's faketime
    /// environment and stdin closed (override with `.stdin(...)`).
    ///
    /// It runs with `/` as working directory: `current_dir` has no effect,
    /// because entering the mount namespace resets it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns_command(program, self.faketime)
    }

    /// A shell command line to enter the host by hand.
    pub fn enter_command(&self) -> String {
        let mut line = format!(
            "nsenter --target {} --mount --net --uts --pid --",
            self.pid()
        );
        if self.faketime {
            line.push_str(" env");
            for (k, v) in self.faketime_env() {
                let _ = write!(line, " {k}={}", shell_quote(&v.to_string_lossy()));
            }
        }
        line.push_str(" /bin/bash");
        line
    }

    /// Runs `script` with `/bin/sh -c` on the host and returns its stdout. An error
    /// shows the script, the exit status, stderr and stdout. Bounded by
    /// [`DEFAULT_TIMEOUT`]. Background processes it starts must redirect their
    /// output, or the call waits for them.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.sh_within(script, DEFAULT_TIMEOUT)
    }

    /// [`Host::sh`] with its own bound; the script is killed inside the host
    /// (coreutils `timeout`) when it runs out.
    pub fn sh_within(&self, script: &str, timeout: Duration) -> Result<String> {
        let secs = format!("{:.3}", timeout.as_secs_f64());
        let mut cmd = self.command("timeout");
        cmd.args(["--kill-after=5", &secs, "/bin/sh", "-c", script]);
        let out = output_within(&mut cmd, timeout + Duration::from_secs(10))?;
        if out.status.code() == Some(124) {
            bail!(
                "on {}: script timed out after {timeout:?}:\n{script}\n{}",
                self.name,
                super::process::failure_report("sh -c", &out)
            );
        }
        if !out.status.success() {
            bail!(
                "on {}: script failed:\n{script}\n{}",
                self.name,
                super::process::failure_report("sh -c", &out)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `cmd` (usually from [`Host::command`]) and returns stdout; a non-zero
    /// exit is an error with the command line, status and output.
    pub fn run(&self, cmd: &mut Command) -> Result<String> {
        run_within(cmd, DEFAULT_TIMEOUT).with_context(|| format!("on {}", self.name))
    }

    /// Sets the host's clock (zfs-fuse's and that of every command run through the
    /// lab or over ssh) to `epoch` seconds; from then on it runs at normal speed.
    ///
    /// The faketime file holds an offset (`+N`/`-N` seconds), which libfaketime
    /// re-reads on every clock call (`FAKETIME_NO_CACHE`), so running daemons
    /// follow at once. (A `@epoch` "start at" line would only reach processes
    /// started afterwards.)
    pub fn set_time(&self, epoch: i64) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs();
        let now = i64::try_from(now).context("system clock out of range")?;
        self.write_faketime(&format!("{:+}", epoch - now))
    }

    /// Stops the host's clock at `epoch` (an absolute time, parsed with
    /// `FAKETIME_FMT=%s`) until the next `set_time`, `freeze_time` or
    /// `reset_time`. zfs-fuse copes (its transaction groups run on the monotonic
    /// clock, which the lab leaves real), but programs that wait for the wall
    /// clock to move will wait forever.
    pub fn freeze_time(&self, epoch: i64) -> Result<()> {
        self.write_faketime(&epoch.to_string())
    }

    /// Puts the host's clock back to the machine's.
    pub fn reset_time(&self) -> Result<()> {
        self.write_faketime("+0")
    }

    fn write_faketime(&self, line: &str) -> Result<()> {
        if !self.faketime {
            bail!(
                "host {} runs without faketime; enable it in its HostSpec",
                self.name
            );
        }
        // Replace the file in one step: libfaketime re-reads it on every clock call
        // and must never see it half written.
        let file = self.dir.join("faketime");
        let tmp = self.dir.join("faketime.tmp");
        write(&tmp, &format!("{line}\n"))?;
        fs::rename(&tmp, &file).with_context(|| format!("cannot replace {}", file.display()))
    }

    /// Pulls the host's cable: its switch port goes down, so its eth0 loses
    /// carrier and packets to and from it are dropped (connections time out rather
    /// than being refused).
    pub fn link_down(&self) -> Result<()> {
        self.switch_port("down")
    }

    /// Plugs the cable back in.
    pub fn link_up(&self) -> Result<()> {
        self.switch_port("up")
    }

    fn switch_port(&self, state: &str) -> Result<()> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.shared.switch_pid))
            .args([
                "--net",
                "--",
                "ip",
                "link",
                "set",
                "dev",
                &self.port_name(),
                state,
            ])
            .env("PATH", &self.shared.tools.path);
        self.run(&mut cmd).map(drop)
    }

    /// The host's veth peer in the switch namespace.
    pub(crate) fn port_name(&self) -> String {
        format!("port{}", self.index)
    }

    /// Kills the host's zfs-fuse with SIGKILL, as a crash would; its mounts are
    /// left dead ("Transport endpoint is not connected") until [`Host::start_zfs`].
    ///
    /// Like a crash it loses writes not yet in a synced transaction group, and
    /// zfs-fuse syncs only every ~30 s; fsync does not save them (measured), a
    /// `zfs snapshot` does, since it waits for its txg to sync.
    pub fn kill_zfs(&self) -> Result<()> {
        self.kill_pidfile(&self.zfs_pidfile(), "KILL")
    }

    /// Starts zfs-fuse again after [`Host::kill_zfs`]: clears the dead mounts,
    /// starts the daemon and re-imports the host's pools under the altroot.
    pub fn start_zfs(&self) -> Result<()> {
        // Parents first: a path below a dead FUSE mount cannot even be resolved
        // (ENOTCONN), and detaching a parent lazily takes its children along.
        self.sh(
            r#"for m in $(grep ' fuse.zfs ' /proc/mounts | cut -d' ' -f2 | sort); do
                 umount -l "$m" 2>/dev/null || true
               done
               ! grep ' fuse.zfs ' /proc/mounts"#,
        )
        .context("clearing zfs-fuse's dead mounts")?;
        self.spawn_zfs()?;
        self.wait_zfs()?;
        let imported = self.run(self.command("zpool").args(["list", "-H", "-o", "name"]))?;
        for pool in &self.pools {
            if imported.lines().any(|l| l == pool.name) {
                continue;
            }
            let mut cmd = self.command("zpool");
            cmd.arg("import")
                .arg("-d")
                .arg(self.dir.join("vdev"))
                .arg("-R")
                .arg(self.altroot())
                .arg(&pool.name);
            self.run(&mut cmd)?;
        }
        Ok(())
    }

    /// Stops the host's sshd (SIGTERM, as `systemctl stop` would); sessions that
    /// are already open stay open.
    pub fn stop_sshd(&self) -> Result<()> {
        self.kill_pidfile(&self.dir.join("ssh/sshd.pid"), "TERM")
    }

    /// Starts the host's sshd and waits until it listens.
    pub fn start_sshd(&self) -> Result<()> {
        let log = self.sshd_log();
        let before = count_lines(&log, "Server listening on ")?;
        let mut cmd = self.ns_command(&self.shared.tools.sshd, false);
        cmd.arg("-f")
            .arg(self.dir.join("ssh/sshd_config"))
            .arg("-E")
            .arg(&log);
        self.run(&mut cmd)?;
        wait_until(
            &format!("sshd on {} to listen", self.name),
            DAEMON_TIMEOUT,
            || Ok(count_lines(&log, "Server listening on ")? > before),
        )
        .map_err(|e| with_log(e, &log))
    }

    /// The sshd log (`LogLevel VERBOSE`).
    pub fn sshd_log(&self) -> PathBuf {
        self.dir.join("ssh/sshd.log")
    }

    /// zfs-fuse's output.
    pub fn zfs_log(&self) -> PathBuf {
        self.dir.join("zfs-fuse.log")
    }

    /// How many ssh connections sshd has accepted (authenticated) so far, from its
    /// log; multiplexed sessions over one connection count once.
    pub fn ssh_connections(&self) -> Result<usize> {
        count_lines(&self.sshd_log(), "Accepted publickey for ")
    }

    /// How many sessions (commands, shells, subsystems) sshd has started so far.
    pub fn ssh_sessions(&self) -> Result<usize> {
        count_lines(&self.sshd_log(), "Starting session: ")
    }

    /// Appends an `authorized_keys` line (options allowed, e.g.
    /// `command="...",restrict ssh-ed25519 AAAA...`) for `user` on this host.
    pub fn authorize_key(&self, user: &str, line: &str) -> Result<()> {
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            bail!("user name `{user}` is not a plain name");
        }
        if line.contains('\n') {
            bail!("an authorized_keys line cannot contain a newline");
        }
        use std::io::Write as _;
        let path = self.dir.join("ssh/authorized_keys").join(user);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(f, "{line}").with_context(|| format!("cannot write {}", path.display()))
    }

    /// Creates a local user with a home directory; it exists on this host only.
    /// Its password field is `*` (no password, not locked): with `UsePAM no`,
    /// sshd refuses even key logins to accounts useradd leaves locked (`!`).
    pub fn add_user(&self, user: &str) -> Result<()> {
        let mut cmd = self.command("useradd");
        cmd.args([
            "--create-home",
            "--shell",
            "/bin/sh",
            "--password",
            "*",
            "--",
            user,
        ]);
        self.run(&mut cmd).map(drop)
    }

    /// `ssh` from this host to `to` as root with the lab's key, checking host keys
    /// against the lab's `known_hosts`; append the remote command.
    pub fn ssh(&self, to: &Host) -> Command {
        self.ssh_as(to, "root", &self.shared.user_key)
    }

    /// `ssh` from this host to `to` as `user` with the private key `key`.
    pub fn ssh_as(&self, to: &Host, user: &str, key: &Path) -> Command {
        let mut cmd = self.command("ssh");
        cmd.arg("-i").arg(key);
        cmd.args(ssh_options(&self.shared.known_hosts));
        cmd.args(["-l", user, "--", to.name()]);
        cmd
    }

    fn ns_command(&self, program: impl AsRef<OsStr>, faketime: bool) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.pid()))
            .args(["--mount", "--net", "--uts", "--pid", "--"])
            .env("PATH", &self.shared.tools.path)
            .stdin(std::process::Stdio::null());
        if faketime {
            // Through env(1), so nsenter itself (outside the host) is not faked.
            cmd.arg("env");
            for (k, v) in self.faketime_env() {
                let mut kv = std::ffi::OsString::from(k);
                kv.push("=");
                kv.push(v);
                cmd.arg(kv);
            }
        }
        cmd.arg(program);
        cmd
    }

    fn faketime_env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let Some(lib) = &self.shared.tools.libfaketime else {
            return Vec::new();
        };
        vec![
            ("LD_PRELOAD", lib.clone().into_os_string()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                self.dir.join("faketime").into_os_string(),
            ),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_FMT", "%s".into()),
            // zfs-fuse times its transaction groups with the monotonic clock; left
            // real, setting the wall clock back cannot stall a txg sync.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
            // libfaketime 0.9.10 shares a semaphore named after the first faked
            // process with its children and removes it when that process exits; a
            // daemon started by a short-lived shell then dies in libfaketime's
            // constructor. With this each process keeps its own (or none).
            ("FAKETIME_FLSHM", "1".into()),
        ]
    }

    fn zfs_pidfile(&self) -> PathBuf {
        self.dir.join("zfs-fuse.pid")
    }

    /// Sends `signal` to the pid in `pidfile` (a pid of the host's namespace) and
    /// waits until the process has been reaped.
    fn kill_pidfile(&self, pidfile: &Path, signal: &str) -> Result<()> {
        let script = r#"p=$(cat "$1") || exit 1
kill -s "$2" "$p"
i=0
while kill -0 "$p" 2>/dev/null; do
  i=$((i + 1)); [ "$i" -lt 400 ] || { echo "pid $p still alive" >&2; exit 1; }
  sleep 0.025
done
rm -f "$1""#;
        let mut cmd = self.command("/bin/sh");
        cmd.args(["-c", script, "sh"]).arg(pidfile).arg(signal);
        self.run(&mut cmd).map(drop)
    }

    /// Brings up eth0 (already moved in by the switch) with the host's address.
    pub(crate) fn configure_network(&self) -> Result<()> {
        let cidr = format!("{}/{PREFIX_LEN}", self.addr);
        let mut cmd = self.ns_command("/bin/sh", false);
        cmd.args([
            "-c",
            r#"ip addr add "$1" dev eth0 && ip link set dev eth0 up"#,
            "sh",
            &cidr,
        ]);
        self.run(&mut cmd).map(drop)
    }

    /// Starts zfs-fuse in the background of the host (its parent becomes the
    /// host's pid 1). Does not wait for it.
    pub(crate) fn spawn_zfs(&self) -> Result<()> {
        // --no-kstat-mount: zfs-fuse would otherwise create /zfs-kstat on the
        // machine's root file system. With --no-daemon it does not write its -p
        // file, so the shell does; setsid(1) keeps the pid (it does not fork when
        // its caller leads no process group).
        let script = r#"rm -f /run/zfs/zfs_socket "$1"
pid=$1 log=$2
shift 2
setsid zfs-fuse --no-daemon --no-kstat-mount "$@" -p "$pid" </dev/null >>"$log" 2>&1 &
echo "$!" > "$pid""#;
        let mut cmd = self.command("/bin/sh");
        cmd.args(["-c", script, "sh"])
            .arg(self.zfs_pidfile())
            .arg(self.zfs_log());
        if let Some(mib) = self.max_arc_mib {
            cmd.arg("--max-arc-size").arg(mib.to_string());
        }
        self.run(&mut cmd).map(drop)
    }

    /// Waits until zfs-fuse accepts commands.
    pub(crate) fn wait_zfs(&self) -> Result<()> {
        let socket = self.ns_path("/run/zfs/zfs_socket");
        let pidfile = self.zfs_pidfile();
        wait_until(
            &format!("zfs-fuse on {}", self.name),
            DAEMON_TIMEOUT,
            || {
                if socket.exists() {
                    return Ok(true);
                }
                // The pid is one of the host's pid namespace; its /proc shows it.
                if let Ok(pid) = fs::read_to_string(&pidfile) {
                    if !self.ns_path(format!("/proc/{}", pid.trim())).exists() {
                        bail!("zfs-fuse on {} exited", self.name);
                    }
                }
                Ok(false)
            },
        )
        .map_err(|e| with_log(e, &self.zfs_log()))
    }

    /// Destroys pool `name` and creates it again from the host's spec on a
    /// fresh vdev, as a reinstall would: the same layout, nothing else.
    pub fn reinstall_pool(&self, name: &str) -> Result<()> {
        let Some(pool) = self.pools.iter().find(|p| p.name == name) else {
            bail!("host {} has no pool `{name}` in its spec", self.name);
        };
        // zfs-fuse keeps a just-written file system busy for a moment.
        let mut tries = 0;
        loop {
            match self.run(self.command("zpool").args(["destroy", name])) {
                Ok(_) => break,
                Err(e) if tries < 50 && format!("{e:#}").contains("busy") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.context(format!("destroying pool {name}"))),
            }
        }
        self.create_pool(pool)
    }

    /// Creates the spec's pools on fresh sparse vdevs, then datasets, then snapshots.
    pub(crate) fn create_pools(&self) -> Result<()> {
        for pool in &self.pools {
            self.create_pool(pool)?;
        }
        Ok(())
    }

    fn create_pool(&self, pool: &PoolSpec) -> Result<()> {
        {
            let vdev = self.dir.join("vdev").join(format!("{}.img", pool.name));
            let f = fs::File::create(&vdev)
                .with_context(|| format!("cannot create {}", vdev.display()))?;
            f.set_len(pool.vdev_size)
                .with_context(|| format!("cannot size {}", vdev.display()))?;
            drop(f);
            // The altroot keeps every mount below the host's directory, whatever
            // mountpoint a dataset has or receives. zfs-fuse gives the root dataset
            // mountpoint=/ when -R comes without -m, so -m is always passed.
            let mut cmd = self.command("zpool");
            cmd.arg("create")
                .arg("-R")
                .arg(self.altroot())
                .args(["-m", &pool.mountpoint()]);
            for (k, v) in pool.properties.iter().filter(|(k, _)| k != "mountpoint") {
                cmd.arg("-O").arg(format!("{k}={v}"));
            }
            cmd.arg(&pool.name).arg(&vdev);
            self.run(&mut cmd)?;
            for ds in &pool.datasets {
                let mut cmd = self.command("zfs");
                cmd.args(["create", "-p"]);
                for (k, v) in &ds.properties {
                    cmd.arg("-o").arg(format!("{k}={v}"));
                }
                cmd.arg(&ds.name);
                self.run(&mut cmd)?;
            }
            for ds in &pool.datasets {
                for snap in &ds.snapshots {
                    self.run(
                        self.command("zfs")
                            .args(["snapshot", &format!("{}@{snap}", ds.name)]),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Lab-wide files every host gets a copy of.
pub(crate) struct SharedFiles<'a> {
    pub user_key: &'a Path,
    pub user_pub: &'a str,
    pub known_hosts: &'a Path,
}

/// ssh options for talking to lab hosts: the lab's `known_hosts` only, no prompts,
/// and a short connect timeout so a pulled cable fails fast.
pub(crate) fn ssh_options(known_hosts: &Path) -> Vec<String> {
    vec![
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "ConnectTimeout=5".into(),
    ]
}

fn sshd_config(name: &str, addr: Ipv4Addr, dir: &Path, libfaketime: Option<&Path>) -> String {
    let d = dir.display();
    let mut cfg = format!(
        "# zfleet-lab: sshd of simulated host {name}, started with -f this file.
ListenAddress {addr}
HostKey {d}/ssh/ssh_host_ed25519_key
PidFile {d}/ssh/sshd.pid
AuthorizedKeysFile {d}/ssh/authorized_keys/%u .ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The lab's files live under /tmp, which StrictModes would reject.
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
# Tests multiplex many sessions and open many connections at once.
MaxSessions 256
MaxStartups 256
LogLevel VERBOSE
Subsystem sftp internal-sftp
"
    );
    if let Some(lib) = libfaketime {
        // Sessions get the host's fake clock like commands run through the lab.
        let _ = writeln!(
            cfg,
            "SetEnv LD_PRELOAD={} FAKETIME_TIMESTAMP_FILE={d}/faketime FAKETIME_NO_CACHE=1 FAKETIME_FMT=%s FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FLSHM=1",
            lib.display()
        );
    }
    cfg
}

/// An error with the end of the log that explains it.
fn with_log(e: anyhow::Error, log: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{e:#}\n--- end of {} ---\n{}",
        log.display(),
        tail(log, 2000).trim_end()
    )
}

fn count_lines(path: &Path, needle: &str) -> Result<usize> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter(|l| l.contains(needle)).count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

pub(crate) fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}
