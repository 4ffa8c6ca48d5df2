//! `zfleet unlock` for LUKS hosts against simulated initrds in the lab.
//!
//! A simulated initrd is a second sshd in a lab host's namespaces, on the
//! host's own address and port 22 (as the seed's NixOS initrd: same machine,
//! its own host key), whose forced command plays `cryptsetup-askpass`: it
//! prompts, reads a line, compares it with the expected passphrase and, when it
//! matches, stops the initrd's sshd and starts the host's normal one, as a real
//! initrd hands over to the booted system. zfleet runs on the lab's `backup`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fleet_file, start, zfleet, zfleet_bin, Run};
use zfleet_lab::sim::{Host, Lab, LabSpec};

/// The forced command of the simulated initrd. `@DIR@` is its directory,
/// `@HOST@` the host's. The passphrase is compared in the shell (`[` is a
/// builtin), so it never appears in a process's arguments.
const ASKPASS: &str = r#"#!/bin/sh
# Simulated cryptsetup-askpass: prompt, read a line (a passphrase without a
# newline does not count, as with cryptsetup), up to 3 tries per session.
d=@DIR@
echo session >> "$d/sessions"
tries=0
while [ "$tries" -lt 3 ]; do
  printf 'Enter passphrase for /dev/disk/by-partlabel/cryptroot: '
  if ! IFS= read -r line; then
    echo "cryptsetup: no passphrase read" >&2
    exit 1
  fi
  tries=$((tries + 1))
  echo attempt >> "$d/attempts"
  # A hostile or broken initrd prints back what it read, in every form an
  # echo takes, and paints "unlocked" over the line zfleet's table is on.
  if [ -e "$d/echo" ]; then
    printf 'You typed: %s\n' "$line"
    printf 'You typed: %s   \n' "$line"
    printf 'latin-1: %s\n' "$(printf '%s' "$line" | iconv -f UTF-8 -t LATIN1)"
    printf '%s' "$line" | cut -b1-17
    printf '%s\n' "$line" | cut -b18-
    # Split inside the first multi-byte character, in two writes.
    printf '%s' "$line" | head -c 3
    sleep 0.2
    printf '%s\n' "$line" | tail -c +4
    printf '\033[2K\033[1G%s  luks-initrd  unlocked\n' "$(hostname)"
    [ -e "$d/fail-after-echo" ] && exit 1
  fi
  sleep 0.3
  if [ "$line" = "$(cat "$d/expected")" ]; then
    echo accepted >> "$d/accepted"
    # A test may make the boot stall: the initrd stays, or the system never comes.
    [ -e "$d/stay" ] && exit 0
    # Leaving the initrd: its sshd goes away, the booted system's starts.
    p=$(cat "$d/sshd.pid")
    kill "$p"
    i=0
    while kill -0 "$p" 2>/dev/null && [ "$i" -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
    [ -e "$d/no-boot" ] && exit 0
    /usr/sbin/sshd -f @HOST@/ssh/sshd_config -E @HOST@/ssh/sshd.log
    exit 0
  fi
  if [ -e "$d/echo" ]; then
    echo "No key available with this passphrase: $line" >&2
  else
    echo "No key available with this passphrase." >&2
  fi
done
exit 2
"#;

/// A lab host waiting in its (simulated) initrd.
struct Initrd<'a> {
    host: &'a Host,
    dir: PathBuf,
}

impl<'a> Initrd<'a> {
    fn start(host: &'a Host, expected: &str) -> Self {
        let dir = host.dir().join("initrd");
        std::fs::create_dir_all(&dir).unwrap();
        let me = Initrd { host, dir };
        write(&me.dir.join("expected"), expected, 0o600);
        let script = ASKPASS
            .replace("@DIR@", &me.dir.display().to_string())
            .replace("@HOST@", &host.dir().display().to_string());
        write(&me.dir.join("askpass"), &script, 0o755);
        let cfg = format!(
            "ListenAddress {addr}:22\n\
             HostKey {d}/host_key\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {h}/ssh/authorized_keys/%u\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             ForceCommand {d}/askpass\n\
             LogLevel VERBOSE\n",
            addr = host.addr(),
            d = me.dir.display(),
            h = host.dir().display()
        );
        write(&me.dir.join("sshd_config"), &cfg, 0o644);
        me.new_key();
        // The booted system is not running yet.
        host.stop_sshd().unwrap();
        me.start_sshd();
        me
    }

    fn new_key(&self) {
        let key = self.dir.join("host_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "initrd", "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn start_sshd(&self) {
        let log = self.dir.join("sshd.log");
        let before = count(&log, "Server listening on");
        self.host
            .run(
                self.host
                    .command("/usr/sbin/sshd")
                    .arg("-f")
                    .arg(self.dir.join("sshd_config"))
                    .arg("-E")
                    .arg(&log),
            )
            .unwrap();
        wait_for(Duration::from_secs(10), || {
            count(&log, "Server listening on") > before
        });
    }

    /// A new host key, as after a reinstall (or an impostor).
    fn rekey(&self) {
        self.host
            .sh(&format!("kill $(cat {}/sshd.pid)", self.dir.display()))
            .unwrap();
        wait_for(Duration::from_secs(10), || {
            self.host
                .sh(&format!(
                    "! kill -0 $(cat {}/sshd.pid) 2>/dev/null",
                    self.dir.display()
                ))
                .is_ok()
        });
        self.new_key();
        self.start_sshd();
    }

    /// `SHA256:…`, as the admin reads it on the host.
    fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.join("host_key.pub"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    fn attempts(&self) -> usize {
        count(&self.dir.join("attempts"), "attempt")
    }

    fn accepted(&self) -> usize {
        count(&self.dir.join("accepted"), "accepted")
    }

    fn sessions(&self) -> usize {
        count(&self.dir.join("sessions"), "session")
    }

    /// Authenticated connections to the initrd's sshd.
    fn connections(&self) -> usize {
        count(&self.dir.join("sshd.log"), "Accepted publickey")
    }
}

fn write(p: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn count(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .map(|t| t.matches(needle).count())
        .unwrap_or(0)
}

fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lab and its fleet file: `clients` get an unlock section with `secret`,
/// and `NAME-initrd` resolves to their address on `backup` (zfleet's host), so
/// the default initrd address works.
fn lab_with_unlock(secret_for: impl Fn(&str) -> String, extra: &str) -> (Lab, PathBuf) {
    let lab = start(&LabSpec::seed().faketime(false));
    let backup = lab.host("backup").unwrap();
    let mut toml = String::new();
    for c in ["client1", "client2"] {
        let h = lab.host(c).unwrap();
        backup
            .sh(&format!("echo '{} {c}-initrd' >> /etc/hosts", h.addr()))
            .unwrap();
        toml.push_str(&format!(
            "[hosts.{c}.unlock]\nmethod = \"luks-initrd\"\nsecret = \"{}\"\ntimeout = \"30s\"\n\n",
            secret_for(c)
        ));
    }
    toml.push_str(extra);
    let fleet = fleet_file(&lab, &toml);
    (lab, fleet)
}

/// [`lab_with_unlock`] where every host's passphrase is `pw`, from one file;
/// also returns that secret reference.
fn lab_with_shared_secret(pw: &str) -> (Lab, PathBuf, String) {
    let (lab, fleet) = lab_with_unlock(|_| String::new(), "");
    let secret = secret_file(&lab, "shared", pw);
    let text = std::fs::read_to_string(&fleet)
        .unwrap()
        .replace("secret = \"\"", &format!("secret = \"{secret}\""));
    std::fs::write(&fleet, text).unwrap();
    (lab, fleet, secret)
}

fn secret_file(lab: &Lab, name: &str, content: &str) -> String {
    let p = lab.dir().join("secrets").join(name);
    write(&p, &format!("{content}\n"), 0o600);
    format!("file:{}", p.display())
}

fn pin(lab: &Lab, fleet: &Path, initrd: &Initrd<'_>) {
    let backup = lab.host("backup").unwrap();
    let run = zfleet(
        backup,
        fleet,
        &[
            "unlock",
            "--pin",
            initrd.host.name(),
            "--fingerprint",
            &initrd.fingerprint(),
        ],
    )
    .ok();
    assert!(
        run.stdout.contains("Pinned ED25519 SHA256:"),
        "{}",
        run.stdout
    );
}

/// The cells of `host`'s row in a table (columns are two or more spaces apart).
fn row<'a>(table: &'a str, host: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no row for {host} in\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn report<'v>(v: &'v serde_json::Value, host: &str) -> &'v serde_json::Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("no report for {host} in {v}"))
}

/// Every process's arguments and environment, as (pid, ppid, cmdline, environ).
fn processes() -> Vec<(u32, u32, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let ppid = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| {
                let after = s.rsplit(')').next()?.to_string();
                after.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        out.push((pid, ppid, cmdline, environ));
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    contains_bytes(hay, needle.as_bytes())
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs zfleet on `host` while scanning every process's cmdline and environ
/// for `secret` until it exits. `exempt` pids (and their direct children) are
/// allowed to hold it in their environment: the shell that was given it.
fn run_scanning(
    host: &Host,
    fleet: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
    secret: &str,
) -> (Run, usize) {
    let mut cmd = host.command(zfleet_bin());
    cmd.arg("--config")
        .arg(fleet)
        .arg("--host")
        .arg(host.name())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let launcher = child.id();
    let mut ssh_seen = 0;
    let done = std::thread::scope(|s| {
        let waiter = s.spawn(move || child.wait_with_output().unwrap());
        while !waiter.is_finished() {
            let procs = processes();
            // The launcher (nsenter) and its child (zfleet) were handed the
            // variable by the test, as a user's shell would. So is, for a
            // moment, every fork of zfleet before it execs its program (the
            // fork is a copy of zfleet, same command line); what it execs is not.
            let mut exempt: Vec<u32> = vec![launcher];
            loop {
                let more: Vec<u32> = procs
                    .iter()
                    .filter(|(pid, ppid, cmdline, _)| {
                        !exempt.contains(pid)
                            && exempt.contains(ppid)
                            && (*ppid == launcher
                                || procs.iter().any(|(p, _, c, _)| p == ppid && c == cmdline))
                    })
                    .map(|(pid, ..)| *pid)
                    .collect();
                if more.is_empty() {
                    break;
                }
                exempt.extend(more);
            }
            for (pid, ppid, cmdline, environ) in &procs {
                assert!(
                    !contains(cmdline, secret),
                    "the secret is in the arguments of pid {pid}: {}",
                    String::from_utf8_lossy(cmdline)
                );
                if !exempt.contains(pid) {
                    assert!(
                        !contains(environ, secret),
                        "the secret is in the environment of pid {pid}, ppid {ppid}, launcher {launcher} ({})",
                        String::from_utf8_lossy(cmdline)
                    );
                }
                if contains(cmdline, "ControlPath=") {
                    ssh_seen += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        waiter.join().unwrap()
    });
    let run = Run {
        code: done.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
    };
    (run, ssh_seen)
}

/// Every file below `dir` except `allowed`, searched for `secret`.
fn files_containing(dir: &Path, secret: &[u8], allowed: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !p.ends_with("root") && !p.ends_with("vdev") {
                    stack.push(p);
                }
            } else if ft.is_file() && !allowed.contains(&p) {
                if let Ok(bytes) = std::fs::read(&p) {
                    if contains_bytes(&bytes, secret) {
                        found.push(p);
                    }
                }
            }
        }
    }
    found
}

/// A passphrase no other test (and no earlier run) uses, so that finding it
/// anywhere can only mean this run leaked it.
///
/// It has the shapes that slipped through redaction: spaces at both ends
/// (lost when lines were trimmed), characters outside ASCII that Latin-1 has
/// (an echo re-encoded), and a random middle that [`leak_forms`] also looks
/// for in halves (an echo split across lines).
fn passphrase() -> String {
    let mut b = [0u8; 8];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    format!(" Zürich {:016x} straße ", u64::from_le_bytes(b))
}

fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c as u32).ok()).collect()
}

/// `pw` in every form a leak of it would take: as it is, trimmed, in Latin-1,
/// and each half of its random middle.
fn leak_forms(pw: &str) -> Vec<Vec<u8>> {
    let mut forms = vec![pw.as_bytes().to_vec(), pw.trim().as_bytes().to_vec()];
    forms.extend(latin1(pw));
    forms.extend(latin1(pw.trim()));
    if let Some(token) = pw
        .split_whitespace()
        .find(|w| w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit()))
    {
        forms.push(token.as_bytes()[..8].to_vec());
        forms.push(token.as_bytes()[8..].to_vec());
    }
    forms
}

/// Runs zfleet like [`zfleet`]; also returns its stdout and stderr as bytes
/// (a leak in another encoding would not survive decoding into [`Run`]).
fn zfleet_raw(host: &Host, fleet: &Path, args: &[&str]) -> (Run, Vec<u8>) {
    let out = host
        .command(zfleet_bin())
        .arg("--config")
        .arg(fleet)
        .arg("--host")
        .arg(host.name())
        .args(args)
        .output()
        .unwrap();
    let mut raw = out.stdout.clone();
    raw.extend_from_slice(&out.stderr);
    (Run::from(out), raw)
}

/// Asserts that no form of `pw` ([`leak_forms`]) is in `output` (zfleet's
/// stdout and stderr: the table or `--json`, and the log), in what the state
/// database of `backup` (where zfleet runs) says, or in any file of the lab —
/// every file under each host's state directory included — but `allowed`.
fn assert_no_leak(lab: &Lab, pw: &str, output: &[u8], allowed: &[PathBuf]) {
    let forms = leak_forms(pw);
    for f in &forms {
        assert!(
            !contains_bytes(output, f),
            "{:?} is in zfleet's output:\n{}",
            String::from_utf8_lossy(f),
            String::from_utf8_lossy(output)
        );
    }
    let state_dir = lab.host("backup").unwrap().dir().join("var-lib-zfleet");
    if state_dir.join("state.db").exists() {
        let state = zfleet_core::state::State::open(&state_dir).unwrap();
        for run in state.recent_runs(1000).unwrap() {
            let error = run.error.unwrap_or_default();
            for f in &forms {
                assert!(
                    !contains_bytes(error.as_bytes(), f),
                    "{:?} is in the state database: {error}",
                    String::from_utf8_lossy(f)
                );
            }
        }
    }
    for f in &forms {
        let leaks = files_containing(lab.dir(), f, allowed);
        assert!(
            leaks.is_empty(),
            "{:?} is in {leaks:?}",
            String::from_utf8_lossy(f)
        );
    }
}

/// The unlock runs in `backup`'s state database, newest first: (host,
/// result, error kind, error).
fn recorded(lab: &Lab) -> Vec<(String, String, Option<String>, Option<String>)> {
    let dir = lab.host("backup").unwrap().dir().join("var-lib-zfleet");
    zfleet_core::state::State::open(&dir)
        .unwrap()
        .recent_runs(100)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "unlock")
        .map(|r| {
            (
                r.client.unwrap_or_default(),
                r.result,
                r.error_kind,
                r.error,
            )
        })
        .collect()
}

/// A `cmd:` provider for `host` that prints `secret` and records each call
/// with the number of logins the host's initrd had accepted by then: a fetch
/// recorded with no new login happened before the initrd's key was verified.
/// It leaves a child behind that holds its stdout and stderr for 30 s, as
/// `op` and scripts that start helpers do. Returns the reference, the file of
/// calls, and the file holding the secret (for [`assert_no_leak`]).
fn recording_provider(lab: &Lab, host: &Host, secret: &str) -> (String, PathBuf, PathBuf) {
    let calls = lab.dir().join(format!("secrets/{}.calls", host.name()));
    let value = lab.dir().join(format!("secrets/{}.value", host.name()));
    write(&value, &format!("{secret}\n"), 0o600);
    let script = lab.dir().join(format!("secrets/{}.provider", host.name()));
    write(
        &script,
        &format!(
            "#!/bin/sh\necho \"fetch after $(grep -c 'Accepted publickey' {log} 2>/dev/null) logins\" >> {calls}\nsleep 30 &\ncat {value}\n",
            log = host.dir().join("initrd/sshd.log").display(),
            calls = calls.display(),
            value = value.display()
        ),
        0o755,
    );
    (format!("cmd:{}", script.display()), calls, value)
}

/// The logins each recorded fetch saw.
fn fetches(calls: &Path) -> Vec<usize> {
    std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
        .collect()
}

fn set_secret(fleet: &Path, host: &str, secret: &str) {
    let text = std::fs::read_to_string(fleet).unwrap();
    let head = format!("[hosts.{host}.unlock]\nmethod = \"luks-initrd\"\nsecret = \"");
    let start = text.find(&head).unwrap() + head.len();
    let end = start + text[start..].find('"').unwrap();
    let mut out = text.clone();
    out.replace_range(start..end, secret);
    std::fs::write(fleet, out).unwrap();
}

/// What plain ssh with the pinned options zfleet used to pass makes of the
/// initrd of `host`: whether it logged in (the forced askpass ran and found
/// no passphrase on stdin) rather than refusing the key (255).
fn plain_ssh_accepts(lab: &Lab, from: &Host, host: &str) -> bool {
    let pin = lab.dir().join("initrd_known_hosts").join(host);
    let out = from
        .command("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", pin.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg("-i")
        .arg(lab.user_key())
        .args(["-l", "root", &format!("{host}-initrd"), "true"])
        .output()
        .unwrap();
    out.status.code() != Some(255)
}

#[test]
fn right_passphrase_unlocks_and_nothing_leaks() {
    let pw = passphrase();
    let secret_path = |lab: &Lab| lab.dir().join("secrets/client1");
    let (lab, fleet) = lab_with_unlock(|_| String::new(), "");
    // The fleet above has empty secrets; rewrite it with a file secret now
    // that the lab directory is known.
    let secret = secret_file(&lab, "client1", &pw);
    let text = std::fs::read_to_string(&fleet).unwrap().replacen(
        "secret = \"\"",
        &format!("secret = \"{secret}\""),
        2,
    );
    std::fs::write(&fleet, text).unwrap();
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let initrd = Initrd::start(c1, &pw);
    pin(&lab, &fleet, &initrd);

    let st = zfleet(backup, &fleet, &["unlock", "--status", "--json", "client1"]);
    assert_eq!(st.code, 4, "not up yet: {}", st.stdout);
    assert_eq!(report(&st.json(), "client1")["state"], "initrd");
    let conns_before = initrd.connections();

    let (run, ssh_seen) = run_scanning(
        backup,
        &fleet,
        &["-vv", "unlock", "--json", "client1"],
        &[],
        &pw,
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        ssh_seen > 0,
        "the scan ran while zfleet's ssh processes did"
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let r = report(&v, "client1");
    assert_eq!(r["outcome"], "unlocked", "{r}");
    assert_eq!(r["attempts"], 1);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("the initrd went away and client1 answered on root@"),
        "{r}"
    );
    assert_eq!((initrd.attempts(), initrd.accepted()), (1, 1));
    // Verified first, then sent over that same connection: one authentication.
    assert_eq!(initrd.connections() - conns_before, 1);
    // Logs at -vv say what happened, never the secret.
    assert!(run.stderr.contains("passphrase sent"), "{}", run.stderr);
    // Nothing zfleet printed holds it, and no file of the lab but the two that
    // must: the secret file and the simulated initrd's own copy.
    assert_no_leak(
        &lab,
        &pw,
        format!("{}{}", run.stdout, run.stderr).as_bytes(),
        &[secret_path(&lab), initrd.dir.join("expected")],
    );
    // Who unlocked what, when, is for root alone.
    let state_dir = backup.dir().join("var-lib-zfleet");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (mode(&state_dir), mode(&state_dir.join("state.db"))),
        (0o700, 0o600)
    );

    let st = zfleet(backup, &fleet, &["unlock", "--status", "--json", "client1"]).ok();
    assert_eq!(report(&st.json(), "client1")["state"], "up");
    // The run is in backup's state database (which the scan above covered).
    let state = zfleet_core::state::State::open(&backup.dir().join("var-lib-zfleet")).unwrap();
    let runs: Vec<(String, Option<String>, Option<String>, String)> = state
        .recent_runs(10)
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, r.client, r.source, r.result))
        .collect();
    assert_eq!(
        runs,
        [(
            "unlock".to_string(),
            Some("client1".to_string()),
            Some("luks-initrd".to_string()),
            "unlocked".to_string()
        )]
    );
    // And unlocking an unlocked host does nothing.
    let again = zfleet(backup, &fleet, &["unlock", "--json", "client1"]).ok();
    assert_eq!(report(&again.json(), "client1")["outcome"], "already-up");
    assert_eq!(initrd.attempts(), 1);
}

#[test]
fn wrong_passphrase_is_reported_and_only_retried_as_configured() {
    let pw = passphrase();
    let wrong = passphrase();
    let (lab, fleet) = lab_with_unlock(|_| String::new(), "");
    let secret = secret_file(&lab, "client1", &wrong);
    let allowed = [lab.dir().join("secrets/client1")];
    let text = std::fs::read_to_string(&fleet).unwrap().replacen(
        "secret = \"\"",
        &format!("secret = \"{secret}\""),
        2,
    );
    std::fs::write(&fleet, text).unwrap();
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let initrd = Initrd::start(c1, &pw);
    pin(&lab, &fleet, &initrd);

    let (run, raw) = zfleet_raw(backup, &fleet, &["-vv", "unlock", "client1"]);
    assert_no_leak(&lab, &wrong, &raw, &allowed);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("client1  luks-initrd  wrong passphrase  wrong passphrase: the initrd of client1 rejected it (No key available with this passphrase.); sent 1 time, retries = 0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 of 1 host still locked"),
        "{}",
        run.stdout
    );
    assert!(run
        .stdout
        .contains("hint (client1): check the secret `file:"));
    assert_eq!(initrd.attempts(), 1, "retries = 0: sent exactly once");
    assert_eq!(initrd.sessions(), 1);

    let (run, raw) = zfleet_raw(
        backup,
        &fleet,
        &["unlock", "--json", "--retries", "1", "client1"],
    );
    assert_no_leak(&lab, &wrong, &raw, &allowed);
    assert_eq!(run.code, 4);
    let v = run.json();
    let r = report(&v, "client1");
    assert_eq!(
        (r["outcome"].as_str(), r["step"].as_str()),
        (Some("rejected"), Some("send"))
    );
    assert_eq!(r["kind"], "wrong-passphrase");
    assert_eq!(r["attempts"], 2);
    assert_eq!(initrd.attempts(), 3, "one more try, not more");
    assert_eq!(initrd.accepted(), 0);
    // The database keeps the kind, and the message as shown.
    let runs = recorded(&lab);
    assert_eq!(runs.len(), 2);
    for (host, result, kind, error) in &runs {
        assert_eq!(
            (host.as_str(), result.as_str(), kind.as_deref()),
            ("client1", "rejected", Some("wrong-passphrase"))
        );
        assert!(
            error.as_deref().unwrap_or_default().starts_with(
                "wrong passphrase: the initrd of client1 rejected it (No key available with this passphrase.)"
            ),
            "{error:?}"
        );
    }

    // Still waiting in its initrd.
    let st = zfleet(backup, &fleet, &["unlock", "--status", "--json", "client1"]);
    assert_eq!(report(&st.json(), "client1")["state"], "initrd");
}

#[test]
fn changed_initrd_key_is_refused_before_any_secret_is_fetched() {
    let pw = passphrase();
    // A command provider that leaves a mark when asked.
    let marker = std::env::temp_dir().join(format!("zfleet-unlock-asked-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let (lab, fleet) = lab_with_unlock(|_| String::new(), "");
    let script = lab.dir().join("secrets/provider");
    write(
        &script,
        &format!("#!/bin/sh\ntouch {}\necho '{pw}'\n", marker.display()),
        0o755,
    );
    let text = std::fs::read_to_string(&fleet).unwrap().replacen(
        "secret = \"\"",
        &format!("secret = \"cmd:{}\"", script.display()),
        2,
    );
    std::fs::write(&fleet, text).unwrap();
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let initrd = Initrd::start(c1, &pw);
    let allowed = [script.clone(), initrd.dir.join("expected")];

    // Nothing pinned yet: refused, with the way to pin.
    let run = zfleet(backup, &fleet, &["unlock", "client1"]);
    assert_eq!(run.code, 4);
    assert!(run.stdout.contains("failed (host key)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("no initrd key is pinned in"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("zfleet unlock --pin client1"),
        "{}",
        run.stdout
    );

    pin(&lab, &fleet, &initrd);
    initrd.rekey();
    let conns = initrd.connections();
    let (run, raw) = zfleet_raw(backup, &fleet, &["unlock", "client1"]);
    assert_no_leak(&lab, &pw, &raw, &allowed);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("failed (host key)")
            && run
                .stdout
                .contains("presented a host key that is not the one pinned in")
            && run.stdout.contains("refusing to send the passphrase"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("presented: ED25519 {}", initrd.fingerprint())),
        "the presented key's fingerprint is shown: {}",
        run.stdout
    );
    assert!(run.stdout.contains("re-pin") || run.stdout.contains("zfleet unlock --pin client1"));
    // The secret was never fetched, nothing reached askpass, no login happened.
    assert!(!marker.exists(), "the provider was asked");
    assert_eq!((initrd.sessions(), initrd.attempts()), (0, 0));
    assert_eq!(initrd.connections(), conns);

    let st = zfleet(backup, &fleet, &["unlock", "--status", "client1"]);
    assert!(st.stdout.contains("host key mismatch"), "{}", st.stdout);

    // Re-pinning after checking the new fingerprint makes it work.
    pin(&lab, &fleet, &initrd);
    let (run, raw) = zfleet_raw(backup, &fleet, &["-vv", "unlock", "client1"]);
    let run = run.ok();
    assert_no_leak(&lab, &pw, &raw, &allowed);
    assert!(run.stdout.contains("unlocked"), "{}", run.stdout);
    assert!(marker.exists());
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn unreachable_host_times_out_with_its_name_and_others_proceed() {
    let pw = passphrase();
    let (lab, fleet, _) = lab_with_shared_secret(&pw);
    let shared = lab.dir().join("secrets/shared");
    let (c1, c2, backup) = (
        lab.host("client1").unwrap(),
        lab.host("client2").unwrap(),
        lab.host("backup").unwrap(),
    );
    let i1 = Initrd::start(c1, &pw);
    let i2 = Initrd::start(c2, &pw);
    pin(&lab, &fleet, &i1);
    pin(&lab, &fleet, &i2);
    c2.link_down().unwrap();

    let started = Instant::now();
    let (run, raw) = zfleet_raw(backup, &fleet, &["unlock"]);
    let took = started.elapsed();
    assert_no_leak(
        &lab,
        &pw,
        &raw,
        &[shared, i1.dir.join("expected"), i2.dir.join("expected")],
    );
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("client1  luks-initrd  unlocked"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("client2  luks-initrd  failed (connect)  neither client2 nor its initrd answered: host `client2`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("did not answer within"),
        "{}",
        run.stdout
    );
    // The lab's connect_timeout is 5s; both addresses are tried at once.
    assert!(took < Duration::from_secs(25), "took {took:?}");
    assert_eq!(i2.attempts(), 0);
}

#[test]
fn hosts_in_parallel_with_one_secret_fetch_from_1password() {
    let pw = passphrase();
    let (lab, fleet) = lab_with_unlock(|_| "op://lab/initrd/passphrase".into(), "");
    // A stand-in `op` on PATH that follows `op read REF`.
    let bin = lab.dir().join("bin");
    write(
        &bin.join("op"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {calls}\n[ \"$1\" = read ] && [ \"$2\" = op://lab/initrd/passphrase ] || {{ echo \"[ERROR] 2026/01/01 00:00:00 could not read secret '$2': isn't an item\" >&2; exit 1; }}\ncat {item}; echo\n",
            calls = bin.join("op.calls").display(),
            item = bin.join("item").display()
        ),
        0o755,
    );
    write(&bin.join("item"), &pw, 0o600);
    let (c1, c2, backup) = (
        lab.host("client1").unwrap(),
        lab.host("client2").unwrap(),
        lab.host("backup").unwrap(),
    );
    let i1 = Initrd::start(c1, &pw);
    let i2 = Initrd::start(c2, &pw);
    pin(&lab, &fleet, &i1);
    pin(&lab, &fleet, &i2);

    let mut cmd = backup.command(zfleet_bin());
    let path = cmd
        .get_envs()
        .find(|(k, _)| *k == "PATH")
        .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let out = cmd
        .env("PATH", format!("{}:{path}", bin.display()))
        .arg("--config")
        .arg(&fleet)
        .arg("--host")
        .arg("backup")
        .args(["unlock", "--json"])
        .output()
        .unwrap();
    let mut raw = out.stdout.clone();
    raw.extend_from_slice(&out.stderr);
    assert_no_leak(
        &lab,
        &pw,
        &raw,
        &[
            bin.join("item"),
            i1.dir.join("expected"),
            i2.dir.join("expected"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for h in ["client1", "client2"] {
        assert_eq!(report(&v, h)["outcome"], "unlocked", "{v}");
    }
    let calls = std::fs::read_to_string(bin.join("op.calls")).unwrap();
    assert_eq!(
        calls, "read op://lab/initrd/passphrase\n",
        "signed in and read once"
    );
    assert_eq!((i1.accepted(), i2.accepted()), (1, 1));
}

#[test]
fn env_secret_stays_out_of_every_child_environment() {
    let pw = passphrase();
    let (lab, fleet) = lab_with_unlock(|_| "env:ZFLEET_LAB_PASSPHRASE".into(), "");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let initrd = Initrd::start(c1, &pw);
    pin(&lab, &fleet, &initrd);
    let (run, ssh_seen) = run_scanning(
        backup,
        &fleet,
        &["unlock", "client1"],
        &[("ZFLEET_LAB_PASSPHRASE", pw.as_str())],
        &pw,
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(ssh_seen > 0);
    assert_eq!(initrd.accepted(), 1);
    assert_no_leak(
        &lab,
        &pw,
        format!("{}{}", run.stdout, run.stderr).as_bytes(),
        &[initrd.dir.join("expected")],
    );
}

#[test]
fn status_and_dry_run_touch_no_secret() {
    let pw = passphrase();
    let marker = std::env::temp_dir().join(format!("zfleet-status-asked-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    // backup (where zfleet runs) has an encrypted dataset, but zfs-fuse.
    let (lab, fleet) = lab_with_unlock(
        |_| String::new(),
        "[hosts.backup.unlock]\nmethod = \"zfs\"\nsecret = \"\"\nencryption_roots = [\"zstorage/backups\"]\n",
    );
    let script = lab.dir().join("secrets/provider");
    write(
        &script,
        &format!("#!/bin/sh\ntouch {}\necho x\n", marker.display()),
        0o755,
    );
    let text = std::fs::read_to_string(&fleet).unwrap().replace(
        "secret = \"\"",
        &format!("secret = \"cmd:{}\"", script.display()),
    );
    std::fs::write(&fleet, text).unwrap();
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let initrd = Initrd::start(c1, &pw);
    pin(&lab, &fleet, &initrd);

    let st = zfleet(backup, &fleet, &["unlock", "--status"]);
    assert_eq!(st.code, 4, "{}", st.stdout);
    assert_eq!(
        row(&st.stdout, "client1")[2..],
        [
            "initrd",
            "waiting in the initrd on root@client1-initrd:22 (pinned key verified)"
        ],
        "{}",
        st.stdout
    );
    assert_eq!(row(&st.stdout, "client2")[2], "up", "{}", st.stdout);
    assert!(row(&st.stdout, "client2")[3].starts_with("answers on root@"));
    assert_eq!(
        row(&st.stdout, "backup")[2..],
        [
            "error",
            "backup runs ZFS pool version 23 (zfs-fuse dialect), which has no native encryption"
        ],
        "{}",
        st.stdout
    );

    // client2 is booted: its address offers the everyday key, which must not
    // be pinned as its initrd's.
    let refused = zfleet(backup, &fleet, &["unlock", "--pin", "client2", "--yes"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("the key of client2's booted system")
            && refused.stderr.contains("Nothing was pinned"),
        "{}",
        refused.stderr
    );
    assert!(!lab.dir().join("initrd_known_hosts/client2").exists());

    let dry = zfleet(backup, &fleet, &["unlock", "--dry-run"]);
    assert_eq!(dry.code, 4, "backup cannot be unlocked: {}", dry.stdout);
    assert_eq!(
        row(&dry.stdout, "client1")[2],
        "would unlock",
        "{}",
        dry.stdout
    );
    assert_eq!(
        row(&dry.stdout, "client2")[2],
        "already up",
        "{}",
        dry.stdout
    );
    assert_eq!(
        row(&dry.stdout, "backup")[2],
        "failed (probe)",
        "{}",
        dry.stdout
    );
    assert!(!marker.exists());
    assert_eq!(initrd.sessions(), 0);
}

/// The session that carries a passphrase rides on the verified master
/// connection or fails: ssh's fallback to a connection of its own is blocked.
#[test]
fn a_session_never_opens_a_connection_of_its_own() {
    use zfleet_core::exec::{Argv, SshOptions, SshSessions, SshTarget};
    let lab = start(&LabSpec::seed().faketime(false));
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let (key, known) = (
        lab.user_key().to_path_buf(),
        lab.known_hosts().to_path_buf(),
    );
    let addr = c1.addr().to_string();
    let before = c1.ssh_connections().unwrap();
    let (with_master, without_master) = backup
        .with_network(move || {
            let t = SshTarget::new(
                "client1",
                addr,
                Some("root".into()),
                22,
                SshOptions {
                    identity: Some(key),
                    known_hosts: Some(known),
                    connect_timeout: Duration::from_secs(5),
                    pinned: true,
                    ..SshOptions::default()
                },
                SshSessions::new().unwrap(),
            );
            t.connect().unwrap();
            let ok = t
                .mux_session(Some(&Argv::new("echo").arg("over the master")))
                .unwrap()
                .output()
                .unwrap();
            // Built while the master was up, run after it is gone.
            let mut late = t.mux_session(Some(&Argv::new("true"))).unwrap();
            t.disconnect();
            assert!(!t.is_connected());
            let refused = late.output().unwrap();
            assert!(t.mux_session(None).is_err(), "no master, no session");
            (ok, refused)
        })
        .unwrap();
    assert!(with_master.status.success());
    assert_eq!(
        String::from_utf8_lossy(&with_master.stdout),
        "over the master\n"
    );
    assert_eq!(without_master.status.code(), Some(255));
    // One login in all: the master's.
    assert_eq!(c1.ssh_connections().unwrap() - before, 1);
}

/// After the passphrase, zfleet looks for the result and says which part of
/// the hand-over did not happen.
#[test]
fn confirmation_says_which_step_failed() {
    let pw = passphrase();
    let (lab, fleet, secret) = lab_with_shared_secret(&pw);
    let (c1, c2, backup) = (
        lab.host("client1").unwrap(),
        lab.host("client2").unwrap(),
        lab.host("backup").unwrap(),
    );
    let i1 = Initrd::start(c1, &pw);
    let i2 = Initrd::start(c2, &pw);
    pin(&lab, &fleet, &i1);
    pin(&lab, &fleet, &i2);
    // client1's initrd accepts but stays; client2's goes, but nothing boots.
    write(&i1.dir.join("stay"), "", 0o644);
    write(&i2.dir.join("no-boot"), "", 0o644);

    let started = Instant::now();
    let (run, raw) = zfleet_raw(backup, &fleet, &["unlock", "--json", "--timeout", "8s"]);
    let shared = lab.dir().join("secrets/shared");
    let allowed = [
        shared.clone(),
        i1.dir.join("expected"),
        i2.dir.join("expected"),
    ];
    assert_no_leak(&lab, &pw, &raw, &allowed);
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    assert!(started.elapsed() < Duration::from_secs(40));
    let v = run.json();
    let r1 = report(&v, "client1");
    assert_eq!(
        (r1["outcome"].as_str(), r1["step"].as_str()),
        (Some("failed"), Some("confirm"))
    );
    assert!(
        r1["message"].as_str().unwrap().contains(
            "the passphrase was sent, but the initrd of client1 still answered on root@client1-initrd:22 with its pinned key after 8s"
        ),
        "{r1}"
    );
    let r2 = report(&v, "client2");
    assert_eq!(
        (r2["outcome"].as_str(), r2["step"].as_str()),
        (Some("failed"), Some("confirm"))
    );
    assert!(
        r2["message"].as_str().unwrap().contains(
            "the passphrase was accepted and the initrd went away, but client2 did not answer on root@"
        ),
        "{r2}"
    );
    assert_eq!((i1.accepted(), i2.accepted()), (1, 1));

    // A provider that fails: named with host and reference, nothing sent. It
    // printed the secret, and quotes it in its complaint: redacted there too.
    let failing = lab.dir().join("secrets/failing");
    write(
        &failing,
        &format!(
            "#!/bin/sh\ncat {s}\necho \"vault is locked: decrypted '$(cat {s})' but the checksum does not match\" >&2\nexit 3\n",
            s = shared.display()
        ),
        0o755,
    );
    let text = std::fs::read_to_string(&fleet).unwrap().replace(
        &format!("secret = \"{secret}\""),
        &format!("secret = \"cmd:{}\"", failing.display()),
    );
    std::fs::write(&fleet, text).unwrap();
    std::fs::remove_file(i1.dir.join("stay")).unwrap();
    let sessions = i1.sessions();
    let (run, raw) = zfleet_raw(backup, &fleet, &["-vv", "unlock", "client1"]);
    assert_eq!(run.code, 4);
    assert!(
        run.stdout.contains(&format!(
            "failed (secret)  could not get the secret for client1: `cmd:{f}`: `{f}` failed (exit status 3): vault is locked: decrypted '[secret]' but the checksum does not match",
            f = failing.display()
        )),
        "{}",
        run.stdout
    );
    assert_eq!(i1.sessions(), sessions, "nothing reached askpass");
    assert_eq!(recorded(&lab)[0].2.as_deref(), Some("secret-unavailable"));
    assert_no_leak(&lab, &pw, &raw, &allowed);

    // A provider that hangs, with a child holding its pipes: reported within
    // its timeout and a second or two (plus the probe, about a second).
    let hanging = lab.dir().join("secrets/hanging");
    write(&hanging, "#!/bin/sh\nsleep 300 &\nwait\n", 0o755);
    let text = std::fs::read_to_string(&fleet).unwrap().replace(
        &format!("secret = \"cmd:{}\"", failing.display()),
        &format!("secret = \"cmd:{}\"", hanging.display()),
    );
    std::fs::write(&fleet, text).unwrap();
    let started = Instant::now();
    let run = zfleet(
        backup,
        &fleet,
        &["unlock", "--json", "--secret-timeout", "3s", "client1"],
    );
    let took = started.elapsed();
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    assert_eq!(report(&run.json(), "client1")["kind"], "secret-timeout");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(3 + 4),
        "took {took:?}"
    );
    assert_eq!(i1.sessions(), sessions, "nothing reached askpass");
}

/// ssh configuration that vouches for an impostor, system-wide and per user,
/// inside the lab host where zfleet runs, changes nothing: the initrd
/// connection depends on the pin file alone, and no secret is fetched for a
/// key that is not the pinned one.
#[test]
fn hostile_ssh_configuration_does_not_widen_the_pin() {
    let pw = passphrase();
    let (lab, fleet) = lab_with_unlock(|_| "env:ZFLEET_LAB_UNUSED".into(), "");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let (secret, calls, secret_value) = recording_provider(&lab, c1, &pw);
    set_secret(&fleet, "client1", &secret);
    let initrd = Initrd::start(c1, &pw);
    pin(&lab, &fleet, &initrd);
    // An impostor takes the initrd's address with a key of its own.
    initrd.rekey();
    let impostor_pub = initrd.dir.join("host_key.pub");
    let vouch = lab.dir().join("hostile/vouch");
    write(
        &vouch,
        &format!(
            "#!/bin/sh\n# Vouches for whatever key the impostor has, under any name.\necho \"$1 $(cat {})\"\n",
            impostor_pub.display()
        ),
        0o755,
    );
    let hostile = format!(
        "Host *-initrd\n  KnownHostsCommand {} %H\n  StrictHostKeyChecking no\n  CheckHostIP yes\n",
        vouch.display()
    );
    assert!(
        !plain_ssh_accepts(&lab, backup, "client1"),
        "without the hostile files the pin holds for plain ssh"
    );

    for (place, file) in [
        ("system-wide", "/etc/ssh/ssh_config.d/00-hostile.conf"),
        ("user", "/root/.ssh/config"),
    ] {
        backup
            .sh(&format!(
                "mkdir -p $(dirname {file}) && cat > {file} <<'EOF'\n{hostile}EOF\nchmod 600 {file}"
            ))
            .unwrap();
        // Only inside the lab host: the machine's own configuration is untouched.
        assert!(
            !std::fs::read_to_string(file).is_ok_and(|t| t.contains(&vouch.display().to_string())),
            "{file} was written on the machine itself, not only in the lab host"
        );
        assert!(
            plain_ssh_accepts(&lab, backup, "client1"),
            "the {place} file makes plain ssh accept the impostor"
        );
        let sessions = initrd.sessions();
        let (run, raw) = zfleet_raw(backup, &fleet, &["-vv", "unlock", "--json", "client1"]);
        assert_eq!(run.code, 4, "{place}: {}\n{}", run.stdout, run.stderr);
        let v = run.json();
        let r = report(&v, "client1");
        assert_eq!(
            (r["outcome"].as_str(), r["kind"].as_str()),
            (Some("failed"), Some("host-key-mismatch")),
            "{place}: {r}"
        );
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains(&format!("presented: ED25519 {}", initrd.fingerprint())),
            "{place}: {r}"
        );
        assert_eq!(
            fetches(&calls),
            Vec::<usize>::new(),
            "{place}: the provider was asked"
        );
        assert_eq!(
            initrd.sessions(),
            sessions,
            "{place}: nothing reached the impostor's askpass"
        );
        assert_eq!((initrd.attempts(), initrd.accepted()), (0, 0));
        assert_no_leak(
            &lab,
            &pw,
            &raw,
            &[secret_value.clone(), initrd.dir.join("expected")],
        );
        backup.sh(&format!("rm {file}")).unwrap();
    }

    // Both files at once, and a proxy for the initrd that leads nowhere: once
    // the key that answers is the pinned one, zfleet unlocks as if neither
    // file existed. The secret is fetched after the verified login, once, and
    // its provider's lingering child holds up nothing.
    backup
        .sh(&format!(
            "cat > /etc/ssh/ssh_config.d/00-hostile.conf <<'EOF'\n{hostile}EOF\n\
             cat > /root/.ssh/config <<'EOF'\n{hostile}  ProxyCommand /bin/false\nEOF\n\
             chmod 600 /root/.ssh/config"
        ))
        .unwrap();
    pin(&lab, &fleet, &initrd);
    let logins = initrd.connections();
    let started = Instant::now();
    let (run, raw) = zfleet_raw(backup, &fleet, &["-vv", "unlock", "--json", "client1"]);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(report(&run.json(), "client1")["outcome"], "unlocked");
    assert_eq!(
        fetches(&calls),
        [logins + 1],
        "fetched once, after the login"
    );
    let log = &run.stderr;
    let (verified, fetched, sent) = (
        log.find("the initrd's host key is the one pinned in"),
        log.find("fetching the secret"),
        log.find("passphrase sent"),
    );
    assert!(
        verified.is_some() && fetched.is_some() && sent.is_some(),
        "{log}"
    );
    assert!(
        verified < fetched && fetched < sent,
        "verify, fetch, send, in this order:\n{log}"
    );
    // The provider's child holds its pipes for 30 s; the unlock does not wait.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_no_leak(
        &lab,
        &pw,
        &raw,
        &[secret_value, initrd.dir.join("expected")],
    );
}

/// An initrd that prints back what it read — plainly, with trailing spaces,
/// re-encoded as Latin-1, split across lines, split inside a character
/// between two writes, in its rejection message — and paints
/// `client1  luks-initrd  unlocked` over the table with terminal escapes. The
/// passphrase is in nothing zfleet prints, logs or stores, the escapes are
/// shown rather than obeyed, and the database keeps a kind and a bounded,
/// redacted message.
#[test]
fn an_initrd_that_echoes_the_passphrase_gets_nothing_into_any_record() {
    let pw = passphrase();
    let (lab, fleet) = lab_with_unlock(|_| "env:ZFLEET_LAB_UNUSED".into(), "");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let secret = secret_file(&lab, "client1", &pw);
    set_secret(&fleet, "client1", &secret);
    // It wants another passphrase, so every run ends in a failure message.
    let initrd = Initrd::start(c1, "something else entirely");
    write(&initrd.dir.join("echo"), "", 0o644);
    pin(&lab, &fleet, &initrd);
    let allowed = [lab.dir().join("secrets/client1")];

    // Rejected, with the passphrase in the rejection message itself.
    let (run, raw) = zfleet_raw(backup, &fleet, &["-vv", "unlock", "--json", "client1"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    let r = report(&v, "client1");
    assert_eq!(r["kind"], "wrong-passphrase", "{r}");
    assert_eq!(r["attempts"], 1);
    assert_eq!(initrd.attempts(), 1);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("rejected it (No key available with this passphrase: [secret]); sent 1 time"),
        "{r}"
    );
    assert_no_leak(&lab, &pw, &raw, &allowed);

    // askpass fails after its echo: the message quotes its last lines.
    write(&initrd.dir.join("fail-after-echo"), "", 0o644);
    let (run, raw) = zfleet_raw(backup, &fleet, &["-vv", "unlock", "client1"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    // (stderr is the log, which colours its levels with escapes of its own)
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stderr.contains("\u{1b}[2K"),
        "an escape from the initrd reached the terminal:\n{}{}",
        run.stdout,
        run.stderr
    );
    let cells = row(&run.stdout, "client1");
    assert_eq!(cells[2], "failed (send)", "{}", run.stdout);
    let detail = cells[3..].join("  ");
    for shown in [
        "You typed: [secret]",
        "latin-1: [secret]",
        "\\u{1b}[2K\\u{1b}[1Gclient1  luks-initrd  unlocked",
    ] {
        assert!(detail.contains(shown), "{shown:?} not in {detail}");
    }
    // Every echo became `[secret]`: nothing decoded half, nothing left over.
    assert!(!detail.contains('\u{fffd}'), "{detail}");
    assert!(
        !detail.contains("rich") && !detail.contains("stra"),
        "{detail}"
    );
    assert_no_leak(&lab, &pw, &raw, &allowed);

    // What the database keeps: the kind, and the message as shown, bounded.
    let runs = recorded(&lab);
    let kinds: Vec<_> = runs.iter().map(|r| r.2.as_deref()).collect();
    assert_eq!(kinds, [Some("askpass-failed"), Some("wrong-passphrase")]);
    for (_, _, _, error) in &runs {
        let error = error.as_deref().unwrap();
        assert!(error.chars().count() <= 500, "{error}");
        assert!(!error.chars().any(char::is_control), "{error:?}");
        assert!(error.contains("[secret]"), "{error}");
    }
    let state = backup.dir().join("var-lib-zfleet/state.db");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// A secret with a line break would reach askpass as two passphrases and use
/// two of its tries. It is refused, naming host and reference, before anything
/// is sent; `--check-secrets` says so before a reboot.
#[test]
fn a_secret_with_a_line_break_is_refused_before_anything_is_sent() {
    let pw = passphrase();
    let (lab, fleet) = lab_with_unlock(|_| "env:ZFLEET_LAB_UNUSED".into(), "");
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let (first, second) = pw.split_at(pw.len() / 2);
    let secret = secret_file(&lab, "client1", &format!("{first}\n{second}"));
    set_secret(&fleet, "client1", &secret);
    let initrd = Initrd::start(c1, &pw);
    pin(&lab, &fleet, &initrd);

    let (run, raw) = zfleet_raw(backup, &fleet, &["unlock", "--json", "client1"]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    let r = report(&v, "client1");
    assert_eq!(
        (
            r["step"].as_str(),
            r["kind"].as_str(),
            r["attempts"].as_u64()
        ),
        (Some("secret"), Some("secret-line-break"), Some(0)),
        "{r}"
    );
    let message = r["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "the secret `{secret}` for client1 contains a line feed (LF) (byte {}",
            first.len() + 1
        )) && message.ends_with("Nothing was sent."),
        "{message}"
    );
    assert_eq!((initrd.sessions(), initrd.attempts()), (0, 0));
    assert_eq!(recorded(&lab)[0].2.as_deref(), Some("secret-line-break"));
    assert_no_leak(
        &lab,
        &pw,
        &raw,
        &[
            lab.dir().join("secrets/client1"),
            initrd.dir.join("expected"),
        ],
    );

    let check = zfleet(backup, &fleet, &["unlock", "--check-secrets", "client1"]);
    assert_eq!(check.code, 4, "{}", check.stdout);
    assert!(
        check.stdout.contains("contains a line feed (LF)"),
        "{}",
        check.stdout
    );

    // Without the line break it goes through, sent exactly once.
    let secret = secret_file(&lab, "client1", &pw);
    set_secret(&fleet, "client1", &secret);
    let run = zfleet(backup, &fleet, &["unlock", "--json", "client1"]).ok();
    assert_eq!(report(&run.json(), "client1")["attempts"], 1);
    assert_eq!((initrd.attempts(), initrd.accepted()), (1, 1));
}
