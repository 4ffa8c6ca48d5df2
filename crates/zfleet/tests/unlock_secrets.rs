//! Secret providers through the real binary: `op` and `pass` are small
//! stand-ins on PATH that follow the documented CLIs (`op read REF`, `pass show
//! NAME`) and their failure messages; file, env and command providers are real.
//! `zfleet unlock --check-secrets` fetches without contacting any host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const OP: &str = r#"#!/bin/sh
# Stand-in for the 1Password CLI: `op read REF` prints the field and a newline.
d=$(dirname "$0")
printf '%s\n' "$*" >> "$d/op.calls"
if [ "$1" != read ] || [ $# -ne 2 ]; then
  echo "[ERROR] 2026/01/01 00:00:00 unknown command \"$1\" for \"op\"" >&2; exit 1
fi
if [ ! -e "$d/op.signed-in" ]; then
  echo "[ERROR] 2026/01/01 00:00:00 You are not currently signed in. Please run \`op signin --help\` for instructions" >&2
  exit 1
fi
f="$d/op.items/$(printf '%s' "$2" | sed 's|^op://||; s|/|_|g')"
if [ ! -f "$f" ]; then
  vault=$(printf '%s' "$2" | cut -d/ -f3); item=$(printf '%s' "$2" | cut -d/ -f4)
  echo "[ERROR] 2026/01/01 00:00:00 could not read secret '$2': \"$item\" isn't an item in the \"$vault\" vault. Specify the item with its UUID, name, or domain." >&2
  exit 1
fi
cat "$f"; echo
"#;

const PASS: &str = r#"#!/bin/sh
# Stand-in for pass(1): `pass show NAME` prints the entry; line 1 is the password.
d=$(dirname "$0")
printf '%s\n' "$*" >> "$d/pass.calls"
[ "$1" = show ] && [ $# -eq 2 ] || { echo "Usage: pass show [--clip[=line-number]] pass-name" >&2; exit 1; }
if [ ! -f "$d/pass.store/$2" ]; then
  echo "Error: $2 is not in the password store." >&2; exit 1
fi
cat "$d/pass.store/$2"
"#;

struct Env {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    fleet: PathBuf,
}

fn write(p: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn setup() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    write(&dir.join("bin/op"), OP, 0o755);
    write(&dir.join("bin/pass"), PASS, 0o755);
    write(
        &dir.join("bin/op.items/nix_shared_encryption"),
        "op-pass-1",
        0o600,
    );
    write(
        &dir.join("bin/pass.store/hosts/charlie"),
        "pass-line-1\nurl: https://example.org\n",
        0o600,
    );
    write(&dir.join("bin/op.signed-in"), "", 0o600);
    write(&dir.join("delta.key"), "file-secret-4\n", 0o600);
    write(
        &dir.join("bin/show-secret"),
        "#!/bin/sh\n[ \"$1\" = foxtrot ] && echo cmd-secret-6\n",
        0o755,
    );
    let fleet = dir.join("fleet.toml");
    let toml = format!(
        r#"
[hosts.alpha.unlock]
method = "luks-initrd"
secret = "op://nix/shared/encryption"

[hosts.bravo.unlock]
method = "luks-initrd"
secret = "op://nix/shared/encryption"

[hosts.charlie.unlock]
method = "luks-initrd"
secret = "pass:hosts/charlie"

[hosts.delta.unlock]
method = "zfs"
secret = "file:{dir}/delta.key"
encryption_roots = ["tank/secure"]

[hosts.echo.unlock]
method = "zfs"
secret = "env:ZFLEET_TEST_ECHO_KEY"
encryption_roots = ["tank/secure"]

[hosts.foxtrot.unlock]
method = "luks-initrd"
secret = "cmd:{dir}/bin/show-secret foxtrot"
"#,
        dir = dir.display()
    );
    write(&fleet, &toml, 0o644);
    Env {
        _dir: tmp,
        dir,
        fleet,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn zfleet(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let path = format!(
        "{}:{}",
        env.dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zfleet"));
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", &env.dir)
        .arg("--config")
        .arg(&env.fleet)
        .arg("--host")
        .arg("nowhere")
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn calls(env: &Env, which: &str) -> Vec<String> {
    std::fs::read_to_string(env.dir.join("bin").join(which))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

const SECRETS: &[&str] = &[
    "op-pass-1",
    "pass-line-1",
    "file-secret-4",
    "env-secret-5",
    "cmd-secret-6",
];

fn assert_no_secret(run: &Run) {
    for s in SECRETS {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "secret {s} in the output:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn every_provider_is_fetched_once_and_never_shown() {
    let env = setup();
    let run = zfleet(
        &env,
        &["-vv", "unlock", "--check-secrets", "--json"],
        &[("ZFLEET_TEST_ECHO_KEY", "env-secret-5")],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rows: Vec<(String, bool)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"].map(|h| (h.to_string(), true))
    );
    // alpha and bravo share a reference: 1Password is asked once.
    assert_eq!(calls(&env, "op.calls"), ["read op://nix/shared/encryption"]);
    assert_eq!(calls(&env, "pass.calls"), ["show hosts/charlie"]);
    assert_no_secret(&run);
}

#[test]
fn provider_failures_name_host_and_reference() {
    let env = setup();
    std::fs::remove_file(env.dir.join("bin/op.signed-in")).unwrap();
    std::fs::remove_file(env.dir.join("bin/pass.store/hosts/charlie")).unwrap();
    let run = zfleet(
        &env,
        &[
            "unlock",
            "--check-secrets",
            "alpha",
            "bravo",
            "charlie",
            "echo",
        ],
        &[],
    );
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    for line in [
        "alpha    op://nix/shared/encryption  1Password is not signed in (You are not currently signed in. Please run `op signin --help` for instructions)",
        "bravo    op://nix/shared/encryption  1Password is not signed in",
        "charlie  pass:hosts/charlie          no such entry (Error: hosts/charlie is not in the password store.)",
        "echo     env:ZFLEET_TEST_ECHO_KEY    the environment variable `ZFLEET_TEST_ECHO_KEY` is not set",
        "hint (alpha): sign in first (`eval $(op signin)`",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // A failure is remembered: op was not asked again for bravo.
    assert_eq!(calls(&env, "op.calls").len(), 1);

    // Signed in, but no such item.
    write(&env.dir.join("bin/op.signed-in"), "", 0o600);
    std::fs::remove_file(env.dir.join("bin/op.items/nix_shared_encryption")).unwrap();
    let run = zfleet(&env, &["unlock", "--check-secrets", "alpha"], &[]);
    assert_eq!(run.code, 4);
    assert!(
        run.stdout.contains(
            "no such entry (could not read secret 'op://nix/shared/encryption': \"shared\" isn't an item in the \"nix\" vault."
        ),
        "{}",
        run.stdout
    );

    // Not installed at all.
    std::fs::remove_file(env.dir.join("bin/op")).unwrap();
    let mut run = zfleet(&env, &["unlock", "--check-secrets", "alpha", "--json"], &[]);
    if which("op") {
        // A real op on this machine would answer instead; nothing to check.
        run.code = 4;
    } else {
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(v[0]["error"], "`op` is not installed or not on PATH");
    }
    assert_eq!(run.code, 4);
    assert_no_secret(&run);
}

fn which(program: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(program).exists())
}

#[test]
fn a_failing_command_provider_shows_its_error_not_its_output() {
    let env = setup();
    write(
        &env.dir.join("bin/show-secret"),
        "#!/bin/sh\necho half-a-secret\necho 'vault locked' >&2\nexit 2\n",
        0o755,
    );
    let run = zfleet(&env, &["unlock", "--check-secrets", "foxtrot"], &[]);
    assert_eq!(run.code, 4);
    assert!(
        run.stdout.contains("failed (exit status 2): vault locked"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("half-a-secret"), "{}", run.stdout);
}

/// A provider that printed its secret and exited is done, even when a child
/// it started still holds its stdout and stderr (before, zfleet waited for
/// that child: 30 s here).
#[test]
fn a_provider_that_exited_is_not_waited_for_its_children() {
    let env = setup();
    write(
        &env.dir.join("bin/show-secret"),
        "#!/bin/sh\nsleep 30 &\necho cmd-secret-6\n",
        0o755,
    );
    let started = std::time::Instant::now();
    let run = zfleet(&env, &["unlock", "--check-secrets", "foxtrot"], &[]);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert_no_secret(&run);
}

/// A hanging provider is reported within its timeout and a second or two,
/// and the children it started are killed with it (before: 160 s for a
/// 120 s timeout, the children left running).
#[test]
fn a_hanging_provider_is_stopped_at_its_timeout_with_its_children() {
    let env = setup();
    let pid_file = env.dir.join("child.pid");
    write(
        &env.dir.join("bin/show-secret"),
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $! > {}\nwait\n",
            pid_file.display()
        ),
        0o755,
    );
    let started = std::time::Instant::now();
    let run = zfleet(
        &env,
        &[
            "unlock",
            "--check-secrets",
            "--secret-timeout",
            "3s",
            "foxtrot",
        ],
        &[],
    );
    let took = started.elapsed();
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("did not finish within 3s"),
        "{}",
        run.stdout
    );
    let bound = std::time::Duration::from_secs(3);
    assert!(
        took >= bound && took < bound + std::time::Duration::from_secs(2),
        "took {took:?} for a 3 s timeout"
    );
    let child = std::fs::read_to_string(&pid_file).unwrap();
    let alive = std::fs::read_to_string(format!("/proc/{}/stat", child.trim())).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    });
    assert!(!alive, "the provider's child {} still runs", child.trim());
}

/// A provider's complaint may quote a secret (its own, printed before it
/// failed, or another reference's fetched earlier in the run) and carry
/// terminal escapes: shown redacted and escaped.
#[test]
fn provider_errors_are_redacted_and_escaped() {
    let env = setup();
    write(
        &env.dir.join("bin/show-secret"),
        "#!/bin/sh\necho 'vault: decrypted op-pass-1 but the checksum does not match' >&2\nprintf 'then \\033[2K\\033[1Gfoxtrot ok\\n' >&2\nexit 1\n",
        0o755,
    );
    write(
        &env.dir.join("bin/pass.store/hosts/charlie"),
        "pass-line-1\n",
        0o600,
    );
    // charlie's provider prints its secret, then fails saying it again.
    write(
        &env.dir.join("bin/pass"),
        "#!/bin/sh\necho pass-line-1\necho \"gpg: pass-line-1 is not what was asked for\" >&2\nexit 2\n",
        0o755,
    );
    let run = zfleet(
        &env,
        &["unlock", "--check-secrets", "alpha", "charlie", "foxtrot"],
        &[],
    );
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    for shown in [
        "failed (exit status 1): vault: decrypted [secret] but the checksum does not match; then \\u{1b}[2K\\u{1b}[1Gfoxtrot ok",
        "failed (exit status 2): gpg: [secret] is not what was asked for",
    ] {
        assert!(run.stdout.contains(shown), "{shown:?} not in\n{}", run.stdout);
    }
    assert!(!run.stdout.contains('\u{1b}'));
    assert_no_secret(&run);
}
