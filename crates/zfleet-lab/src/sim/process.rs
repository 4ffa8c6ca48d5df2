//! Child processes for the lab: tied to their owner's life, bounded in time, and
//! described in full when they fail.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::process::{getpid, getppid, set_parent_process_death_signal, Signal};

/// Spawns `cmd` so that the kernel sends it SIGKILL when the spawning *thread* exits.
///
/// This is the first link of the lab's death chain: whatever kills the test (panic
/// with abort, `kill -9`, Ctrl-C) also kills the `unshare` processes holding the
/// namespaces, and those take everything inside with them.
#[allow(unsafe_code)]
pub(crate) fn spawn_tied_to_thread(cmd: &mut Command) -> io::Result<Child> {
    let owner = getpid();
    // SAFETY: `pre_exec` runs the closure in the forked child, where a multi-threaded
    // parent leaves only async-signal-safe operations allowed. The closure makes two
    // raw system calls through rustix (prctl, getppid) and builds an `io::Error` from
    // an errno, which does not allocate; it takes no locks and touches no shared state.
    unsafe {
        cmd.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // If the owner died between fork and prctl no signal will ever come, so
            // give up rather than outlive it.
            if getppid() != Some(owner) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Renders a command line the way a person would type it, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = String::new();
    for word in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&shell_quote(&word.to_string_lossy()));
    }
    line
}

/// Quotes one word for a POSIX shell; words that need no quoting stay readable.
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` to completion with stdin closed, killing it after `timeout`.
///
/// A timeout is an error, whatever the command printed until then; so is output
/// that stays open past the deadline after the command exited (a background
/// process that inherited stdout or stderr).
pub(crate) fn output_within(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let line = describe(cmd);
    let deadline = Instant::now() + timeout;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let Some(status) = wait_within(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("`{line}` did not finish within {timeout:?} and was killed")
    };
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>, name: &str| -> Result<Vec<u8>> {
        let Some(rx) = rx else { return Ok(Vec::new()) };
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left.max(Duration::from_millis(500)))
            .map_err(|_| {
                anyhow::anyhow!(
                    "`{line}` exited ({}) but its {name} stayed open: a background process it started must redirect its output",
                    status_text(status)
                )
            })
    };
    Ok(Output {
        status,
        stdout: collect(stdout, "stdout")?,
        stderr: collect(stderr, "stderr")?,
    })
}

/// Like [`output_within`], but a non-zero exit is an error that shows the command
/// line, the status and both output streams. Returns stdout.
pub(crate) fn run_within(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let out = output_within(cmd, timeout)?;
    if !out.status.success() {
        bail!("{}", failure_report(&describe(cmd), &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn failure_report(what: &str, out: &Output) -> String {
    let mut msg = format!("`{what}` failed: {}", status_text(out.status));
    for (name, bytes) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end();
        if !text.is_empty() {
            let _ = write!(msg, "\n--- {name} ---\n{text}");
        }
    }
    msg
}

fn status_text(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Reads a pipe to its end on a thread of its own; the result arrives on the
/// channel, so a pipe that never closes cannot block the caller forever.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Waits for `child` for at most `timeout`; `None` if it is still running.
pub(crate) fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    // Most lab commands take milliseconds: poll fast first, then back off.
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// Polls `ready` until it returns true, failing with `what` after `timeout`.
pub(crate) fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// The pids of `pid`'s children, from every thread's `children` file.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return kids;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            kids.extend(
                text.split_whitespace()
                    .filter_map(|w| w.parse::<u32>().ok()),
            );
        }
    }
    kids
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`),
/// which together with the pid names a process even after the pid is reused.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the
    // last ')'. Field 3 is the first after it, so field 22 is the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The last `max` bytes of a log file, for error messages.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_protects_the_rest() {
        assert_eq!(shell_quote("zroot/persist@a"), "zroot/persist@a");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn failures_show_command_status_and_streams() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let err = run_within(&mut cmd, Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`sh -c 'echo out; echo err >&2; exit 3'`"),
            "{err}"
        );
        assert!(err.contains("exit status 3"), "{err}");
        assert!(err.contains("--- stderr ---\nerr"), "{err}");
        assert!(err.contains("--- stdout ---\nout"), "{err}");
    }

    #[test]
    fn a_hung_command_is_killed_at_the_timeout() {
        let started = Instant::now();
        let err =
            run_within(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_held_open_by_a_background_process_is_an_error_not_a_hang() {
        let started = Instant::now();
        let err = run_within(
            Command::new("sh").args(["-c", "sleep 5 & echo started"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(err.to_string().contains("stayed open"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn start_time_parses_our_own_stat() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
