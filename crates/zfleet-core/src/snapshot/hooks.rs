//! Running sanoid-style hook scripts: sanoid's environment variables, a time
//! limit that kills the hook's whole process group, output captured for the
//! report. A hook line runs through `/bin/sh -c` only when it contains shell
//! syntax (as Perl's `system` does); a list of words never does.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use serde::Serialize;

use crate::config::HookCommand;
use crate::exec::{describe_status, ChildGuard};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HookOutcome {
    Ok,
    Failed { status: String, stderr: String },
    TimedOut { after_secs: f64 },
    NotStarted { error: String },
}

impl HookOutcome {
    pub fn ok(&self) -> bool {
        matches!(self, HookOutcome::Ok)
    }

    pub fn describe(&self) -> String {
        match self {
            HookOutcome::Ok => "ok".to_string(),
            HookOutcome::Failed { status, stderr } if stderr.is_empty() => {
                format!("failed ({status})")
            }
            HookOutcome::Failed { status, stderr } => format!("failed ({status}): {stderr}"),
            HookOutcome::TimedOut { after_secs } => {
                format!("did not finish within {after_secs}s and was killed")
            }
            HookOutcome::NotStarted { error } => format!("could not start: {error}"),
        }
    }
}

/// Runs one hook with `env` added to zfleet's own environment.
pub fn run_hook(
    hook: &HookCommand,
    env: &[(&str, String)],
    timeout: Option<Duration>,
) -> HookOutcome {
    let argv = hook.argv();
    let Some((program, args)) = argv.split_first() else {
        return HookOutcome::NotStarted {
            error: "the hook names no program".into(),
        };
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return HookOutcome::NotStarted {
                error: e.to_string(),
            }
        }
    };
    let pgid = child.id();
    let mut guard = ChildGuard::new(child);
    let out = guard.take_stdout().map(|mut o| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = o.read_to_end(&mut buf);
            buf
        })
    });
    let err = guard.stderr_reader();
    let status = guard.wait_timeout(timeout);
    if !matches!(status, Ok(Some(_))) {
        // Descendants may still hold the pipes open.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    for line in String::from_utf8_lossy(&stdout).lines() {
        tracing::info!("hook {}: {line}", hook.display());
    }
    let stderr = String::from_utf8_lossy(&stderr).trim_end().to_string();
    match status {
        Ok(Some(st)) if st.success() => HookOutcome::Ok,
        Ok(Some(st)) => HookOutcome::Failed {
            status: describe_status(st),
            stderr,
        },
        Ok(None) => HookOutcome::TimedOut {
            after_secs: timeout.map_or(0.0, |t| t.as_secs_f64()),
        },
        Err(e) => HookOutcome::NotStarted {
            error: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn environment_and_exit_status() {
        let h = HookCommand::Line("test \"$SANOID_TARGET\" = zroot/a".into());
        assert!(h.uses_shell());
        assert_eq!(
            run_hook(&h, &[("SANOID_TARGET", "zroot/a".into())], None),
            HookOutcome::Ok
        );
        let o = run_hook(&h, &[("SANOID_TARGET", "zroot/b".into())], None);
        assert_eq!(o.describe(), "failed (exit status 1)");
        let h = HookCommand::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo oops >&2; exit 3".into(),
        ]);
        assert_eq!(
            run_hook(&h, &[], None).describe(),
            "failed (exit status 3): oops"
        );
        let h = HookCommand::Line("/nonexistent/hook".into());
        assert!(matches!(
            run_hook(&h, &[], None),
            HookOutcome::NotStarted { .. }
        ));
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let start = Instant::now();
        // The shell starts a child that would keep stdout open for 30s.
        let h = HookCommand::Line("sleep 30 & sleep 30; wait".into());
        let o = run_hook(&h, &[], Some(Duration::from_millis(300)));
        assert_eq!(o, HookOutcome::TimedOut { after_secs: 0.3 });
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
