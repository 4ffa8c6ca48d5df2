//! One booted guest: qemu under TCG, reachable over ssh on a loopback port.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::image::Image;
use super::supervise::{ChildId, Reaper, Supervisor};

/// The host name [`Guest::ssh_config_path`] defines.
pub const SSH_CONFIG_HOST: &str = "zfleet-guest";

/// Overrides where run directories go (default `/var/tmp/zfleet-lab-guest`).
pub const RUN_DIR_ENV: &str = "ZFLEET_LAB_RUN_DIR";

/// How to boot a guest.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    pub memory_mib: u32,
    pub cpus: u32,
    /// Fresh sparse raw disks for pools: `/dev/vdb`, `/dev/vdc`, … in the guest,
    /// also `/dev/disk/by-id/virtio-zfleet-disk<N>` (N from 1).
    pub pool_disks: usize,
    pub pool_disk_size_mib: u64,
    /// From qemu start to the first successful ssh command. Under TCG a boot
    /// takes ≈40 s on an idle machine; the margin covers a busy one.
    pub boot_timeout: Duration,
    /// Default limit for one ssh command.
    pub command_timeout: Duration,
    /// Return as soon as qemu runs, without waiting for ssh. Only for tests
    /// of the teardown itself: such a guest may not answer yet.
    pub wait_for_ssh: bool,
}

impl Default for GuestConfig {
    fn default() -> Self {
        GuestConfig {
            memory_mib: 3072,
            cpus: 2,
            // Disks 1-3 hold the scenarios' pools; 4-7 are laid out from
            // nothing by the `zfleet disks` tests (a root pool with a 2 GiB
            // ESP, its mirror, a storage pool, a foreign disk).
            pool_disks: 7,
            // Sparse: only what is written costs space.
            pool_disk_size_mib: 4096,
            boot_timeout: Duration::from_secs(240),
            command_timeout: Duration::from_secs(300),
            wait_for_ssh: true,
        }
    }
}

/// A running guest. Dropping it kills qemu and removes its run directory; if
/// the process dies instead, the kernel and the reaper do the same (see
/// [`super::supervise`]).
pub struct Guest {
    image: Image,
    config: GuestConfig,
    port: u16,
    run_dir: PathBuf,
    known_hosts_line: String,
    boot_time: Duration,
    // Field order is drop order: the supervisor kills qemu before the reaper
    // removes the files qemu writes.
    supervisor: Supervisor,
    qemu: ChildId,
    reaper: Reaper,
    scenario_lock: Mutex<()>,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("port", &self.port)
            .field("run_dir", &self.run_dir)
            .field("image", &self.image.dir())
            .finish_non_exhaustive()
    }
}

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

fn run_base() -> PathBuf {
    match std::env::var_os(RUN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/var/tmp/zfleet-lab-guest"),
    }
}

impl Guest {
    /// Boots `image` and waits until root can log in over ssh.
    pub fn boot(image: &Image, config: GuestConfig) -> Result<Guest> {
        let started = Instant::now();
        let base = run_base();
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let run_dir = base.join(format!(
            "run-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        // From here on the directory goes away with the reaper, whatever happens.
        let reaper = Reaper::watch(&run_dir)?;
        let supervisor = Supervisor::start("guest")?;

        let overlay = run_dir.join("root.qcow2");
        let rootfs = std::path::absolute(image.rootfs())?;
        run_checked(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                .arg(&rootfs)
                .arg(&overlay),
        )?;
        let mut disks = Vec::new();
        for n in 1..=config.pool_disks {
            let path = run_dir.join(format!("disk{n}.raw"));
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.set_len(config.pool_disk_size_mib * 1024 * 1024)?;
            disks.push(path);
        }

        let host_key = std::fs::read_to_string(image.host_key_pub())
            .with_context(|| format!("reading {}", image.host_key_pub().display()))?;
        let host_key = host_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");

        // The port is free when we look and taken by qemu a moment later;
        // another process can slip in between, so retry on that failure.
        let mut attempt = 0;
        let (port, qemu) = loop {
            attempt += 1;
            let port = free_port()?;
            let command = qemu_command(image, &config, &run_dir, &overlay, &disks, port);
            let qemu = supervisor.spawn(command)?;
            thread::sleep(Duration::from_millis(300));
            match supervisor.exit_status(qemu) {
                Some(status) if attempt < 3 && serial_or_err_mentions_port(&run_dir) => {
                    tracing::warn!(port, %status, "qemu could not take the port; retrying");
                    continue;
                }
                _ => break (port, qemu),
            }
        };

        let known_hosts_line = format!("[127.0.0.1]:{port} {host_key}");
        std::fs::write(run_dir.join("known_hosts"), format!("{known_hosts_line}\n"))?;
        // For programs that take an ssh config rather than options, such as
        // zfleet itself: `ssh -F <this> zfleet-guest` reaches the guest's root.
        std::fs::write(
            run_dir.join("ssh_config"),
            format!(
                "Host {SSH_CONFIG_HOST}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  \
                 IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n  \
                 StrictHostKeyChecking yes\n  UserKnownHostsFile {kh}\n  \
                 GlobalKnownHostsFile /dev/null\n  ControlPath {mux}\n",
                key = image.client_key().display(),
                kh = run_dir.join("known_hosts").display(),
                mux = run_dir.join("mux-root").display(),
            ),
        )?;

        let mut guest = Guest {
            image: image.clone(),
            config,
            port,
            run_dir,
            known_hosts_line,
            boot_time: Duration::ZERO,
            supervisor,
            qemu,
            reaper,
            scenario_lock: Mutex::new(()),
        };
        if !guest.config.wait_for_ssh {
            return Ok(guest);
        }
        guest.wait_for_ssh(started)?;
        guest.boot_time = started.elapsed();
        guest.start_ssh_master()?;
        tracing::info!(port, boot = ?guest.boot_time, "guest up");
        Ok(guest)
    }

    fn wait_for_ssh(&self, started: Instant) -> Result<()> {
        let deadline = started + self.config.boot_timeout;
        let mut last_err = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.supervisor.exit_status(self.qemu) {
                bail!(
                    "qemu exited during boot ({status}).\n{}\nserial console, last lines:\n{}",
                    self.qemu_stderr(),
                    self.serial_tail(40)
                );
            }
            let attempt = self
                .command("true")
                .timeout(Duration::from_secs(20))
                .connect_timeout(5)
                .output();
            match attempt {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => last_err = String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                Err(err) => last_err = format!("{err:#}"),
            }
            thread::sleep(Duration::from_secs(1));
        }
        bail!(
            "guest did not answer ssh within {:?} (last error: {last_err}).\nserial console, last lines:\n{}",
            self.config.boot_timeout,
            self.serial_tail(40)
        )
    }

    /// One multiplexed connection for root's commands: a new ssh handshake
    /// costs noticeable time against an emulated CPU. Owned by the
    /// supervisor like qemu; commands fall back to their own connection when
    /// it is gone.
    fn start_ssh_master(&self) -> Result<()> {
        let mut command = Command::new("ssh");
        command
            .args(self.ssh_options("root"))
            .args(["-M", "-N", "-o", "ControlPersist=no"])
            .arg("root@127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.supervisor.spawn(command)?;
        let socket = self.control_path("root");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn control_path(&self, user: &str) -> PathBuf {
        self.run_dir.join(format!("mux-{user}"))
    }

    /// ssh options (everything before the destination) that reach this guest
    /// as `user` with the pinned host key and nothing from ~/.ssh.
    pub fn ssh_options(&self, user: &str) -> Vec<String> {
        let opt = |o: &str| ["-o".to_owned(), o.to_owned()];
        let mut args = vec![
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
            "-i".to_owned(),
            self.image.client_key().display().to_string(),
        ];
        for o in [
            "IdentitiesOnly=yes".to_owned(),
            // Never a prompt: a test must fail, not hang.
            "BatchMode=yes".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts_path().display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "ServerAliveInterval=5".to_owned(),
            "ServerAliveCountMax=6".to_owned(),
            "LogLevel=ERROR".to_owned(),
            // Fastest cipher against an emulated CPU (see the guest notes).
            "Ciphers=aes128-gcm@openssh.com".to_owned(),
            // Reuses the master connection when there is one; ssh connects
            // on its own when the socket is missing.
            format!("ControlPath={}", self.control_path(user).display()),
        ] {
            args.extend(opt(&o));
        }
        args
    }

    /// A command to run in the guest through the shell of `root`; set more
    /// with the builder methods, then [`GuestCommand::run`] or
    /// [`GuestCommand::output`].
    pub fn command<'g>(&'g self, shell_command: &str) -> GuestCommand<'g> {
        GuestCommand {
            guest: self,
            user: "root".to_owned(),
            command: shell_command.to_owned(),
            stdin: None,
            timeout: self.config.command_timeout,
            connect_timeout: 10,
        }
    }

    /// Runs a shell command as root; its stdout on exit status 0, an error
    /// with status and stderr otherwise.
    pub fn ssh(&self, shell_command: &str) -> Result<String> {
        self.command(shell_command).run()
    }

    /// [`Guest::ssh`] with `stdin` fed to the command.
    pub fn ssh_with_stdin(&self, shell_command: &str, stdin: &[u8]) -> Result<String> {
        self.command(shell_command).stdin(stdin).run()
    }

    /// Runs a shell command as root and returns its output whatever its exit
    /// status, for tests that expect failures.
    pub fn ssh_output(&self, shell_command: &str) -> Result<Output> {
        self.command(shell_command).output()
    }

    /// Copies a host file into the guest (mode 0755 for `executable`).
    pub fn copy_in(&self, local: &Path, remote: &str, executable: bool) -> Result<()> {
        let bytes = std::fs::read(local).with_context(|| format!("reading {}", local.display()))?;
        let q = shell_quote(remote);
        let mode = if executable { "0755" } else { "0644" };
        self.command(&format!(
            "cat > {q}.part && chmod {mode} {q}.part && mv -f {q}.part {q}"
        ))
        .stdin(&bytes)
        .run()
        .with_context(|| format!("copying {} to guest:{remote}", local.display()))?;
        Ok(())
    }

    /// Reads a file from the guest.
    pub fn read_file(&self, remote: &str) -> Result<Vec<u8>> {
        let out = self
            .command(&format!("cat {}", shell_quote(remote)))
            .output()?;
        check(&format!("cat {remote}"), &out)?;
        Ok(out.stdout)
    }

    pub fn ssh_port(&self) -> u16 {
        self.port
    }
    /// The client private key accepted for root and `zbackup`.
    pub fn key_path(&self) -> PathBuf {
        self.image.client_key()
    }
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…`: the guest's pinned host key.
    pub fn known_hosts_line(&self) -> &str {
        &self.known_hosts_line
    }
    /// A known_hosts file holding [`Guest::known_hosts_line`].
    pub fn known_hosts_path(&self) -> PathBuf {
        self.run_dir.join("known_hosts")
    }
    /// An ssh_config file with a `Host zfleet-guest` entry for root (key,
    /// port, pinned host key, shared connection).
    pub fn ssh_config_path(&self) -> PathBuf {
        self.run_dir.join("ssh_config")
    }
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }
    pub fn image(&self) -> &Image {
        &self.image
    }
    /// From qemu start to the first ssh answer.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }
    pub fn qemu_pid(&self) -> Option<u32> {
        self.supervisor.pid(self.qemu)
    }
    /// Pool disks as the guest names them by id, in order.
    pub fn pool_disks(&self) -> Vec<String> {
        (1..=self.config.pool_disks)
            .map(|n| format!("/dev/disk/by-id/virtio-zfleet-disk{n}"))
            .collect()
    }

    /// The last `lines` lines of the guest's serial console.
    pub fn serial_tail(&self, lines: usize) -> String {
        tail(&self.run_dir.join("serial.log"), lines)
    }

    fn qemu_stderr(&self) -> String {
        tail(&self.run_dir.join("qemu.stderr"), 20)
    }

    /// Serialises [`super::Scenario`]s on this guest: they share its disks.
    pub(crate) fn lock_scenario(&self) -> MutexGuard<'_, ()> {
        self.scenario_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Kills qemu and removes the run directory now.
    pub fn shutdown(mut self) {
        self.supervisor.stop();
        self.reaper.reap();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("({}: {err})", path.display()),
    }
}

fn serial_or_err_mentions_port(run_dir: &Path) -> bool {
    std::fs::read_to_string(run_dir.join("qemu.stderr"))
        .map(|s| s.contains("hostfwd") || s.contains("forwarding rule"))
        .unwrap_or(false)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn qemu_command(
    image: &Image,
    config: &GuestConfig,
    run_dir: &Path,
    overlay: &Path,
    disks: &[PathBuf],
    port: u16,
) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args([
            "-accel",
            "tcg,thread=multi",
            "-machine",
            "q35",
            "-cpu",
            "max",
        ])
        .args(["-smp", &config.cpus.to_string()])
        .args(["-m", &config.memory_mib.to_string()])
        // No default VGA, floppy, CD-ROM or monitor to emulate.
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-serial")
        .arg(format!("file:{}", run_dir.join("serial.log").display()))
        // A kernel panic ends qemu instead of rebooting in a loop.
        .arg("-no-reboot")
        .arg("-kernel")
        .arg(image.vmlinuz())
        .arg("-initrd")
        .arg(image.initrd())
        // mitigations=off: page-table isolation costs a lot under TCG and
        // protects nothing in a throwaway guest. The serial getty is masked
        // because nobody logs in there and it fights boot messages.
        .args([
            "-append",
            "root=LABEL=zfleetguest rw console=ttyS0 mitigations=off panic=1 \
             systemd.mask=serial-getty@ttyS0.service",
        ])
        // Explicit devices in a fixed order: `if=virtio` drives would be
        // placed after them on the PCI bus, and the root disk must be found
        // by label anyway, since probe order is not a promise.
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap",
            overlay.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=root,serial=zfleet-root"]);
    for (i, disk) in disks.iter().enumerate() {
        let n = i + 1;
        command
            .arg("-drive")
            .arg(format!(
                "file={},if=none,id=disk{n},format=raw,cache=unsafe,discard=unmap",
                disk.display()
            ))
            .arg("-device")
            .arg(format!(
                "virtio-blk-pci,drive=disk{n},serial=zfleet-disk{n}"
            ));
    }
    command
        // Loopback only: nothing outside this machine may reach the guest.
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"))
        // romfile= : no iPXE option ROM needed (direct kernel boot) nor installed.
        .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match std::fs::File::create(run_dir.join("qemu.stderr")) {
        Ok(file) => {
            command.stderr(file);
        }
        Err(_) => {
            command.stderr(Stdio::null());
        }
    }
    command
}

fn run_checked(command: &mut Command) -> Result<()> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            command,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Quotes one word for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A command to run in the guest over ssh; see [`Guest::command`].
pub struct GuestCommand<'g> {
    guest: &'g Guest,
    user: String,
    command: String,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    connect_timeout: u32,
}

impl GuestCommand<'_> {
    /// Log in as `user` instead of root (e.g. `zbackup`, the delegated account).
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_owned();
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// Kill ssh (and so the remote command's session) after this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn connect_timeout(mut self, seconds: u32) -> Self {
        self.connect_timeout = seconds;
        self
    }

    /// Output whatever the exit status; an error only when ssh could not be
    /// run or the timeout hit.
    pub fn output(self) -> Result<Output> {
        let mut command = Command::new("ssh");
        command
            .args(self.guest.ssh_options(&self.user))
            .args(["-o", &format!("ConnectTimeout={}", self.connect_timeout)])
            .arg(format!("{}@127.0.0.1", self.user))
            .arg("--")
            .arg(&self.command)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("spawning ssh")?;
        let stdin = child.stdin.take();
        let input = self.stdin;
        // Feed stdin, and drain stdout and stderr, on their own threads:
        // any one of the three pipes filling up would otherwise stall ssh.
        let writer = thread::spawn(move || {
            if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                // The remote side may exit early (e.g. a recv that fails);
                // its status tells, not this broken pipe.
                let _ = pipe.write_all(&bytes);
            }
        });
        let out_reader = child.stdout.take().map(reader_thread);
        let err_reader = child.stderr.take().map(reader_thread);

        let deadline = Instant::now() + self.timeout;
        let status: ExitStatus = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "guest command timed out after {:?}: {}",
                    self.timeout,
                    self.command
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let _ = writer.join();
        let stdout = join_reader(out_reader)?;
        let stderr = join_reader(err_reader)?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Stdout as text when the command exits 0; otherwise an error that
    /// carries the command, the status and stderr.
    pub fn run(self) -> Result<String> {
        let command = self.command.clone();
        let out = self.output()?;
        check(&command, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn reader_thread<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn join_reader(handle: Option<thread::JoinHandle<Vec<u8>>>) -> Result<Vec<u8>> {
    match handle {
        Some(h) => h.join().map_err(|_| anyhow!("output reader panicked")),
        None => Ok(Vec::new()),
    }
}

fn check(command: &str, out: &Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let mut msg = format!("guest command failed ({}): {command}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        let _ = write!(msg, "\nstderr: {}", stderr.trim());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        let _ = write!(msg, "\nstdout: {}", stdout.trim());
    }
    bail!(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("zroot/data@snap-1"), "zroot/data@snap-1");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn shell_quote_survives_a_real_shell() {
        for word in [
            "plain",
            "a b",
            "it's",
            "$HOME",
            "`x`",
            "\"q\"",
            "new\nline",
            "",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word);
        }
    }
}
