//! Command-line input that must be refused by zfleet itself, with exit 2 and a
//! message that names the bad part, before any ssh or zfs runs: a fake `ssh`
//! and `zfs` first on PATH record any call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn trap_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zfleet-cli-input-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for prog in ["ssh", "zfs", "zpool", "sudo"] {
        let p = dir.join(prog);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{prog} $*\" >> {}/called\nexit 0\n",
                dir.display()
            ),
        )
        .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&p).unwrap().permissions(),
            0o755,
        );
        Command::new("chmod").arg("755").arg(&p).status().unwrap();
    }
    dir
}

fn zfleet(dir: &Path, config: &Path, args: &[&str]) -> (i32, String) {
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_zfleet"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("PATH", path)
        .env_remove("ZFLEET_HOST")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_hosts_users_and_snapshot_names_are_refused_before_anything_runs() {
    let dir = trap_dir("names");
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        "[hosts.client1]\naddress = \"127.0.0.1\"\n[hosts.client1.backup]\n",
    )
    .unwrap();
    let no_fleet = dir.join("absent.toml");
    let cases: &[(&Path, &[&str], &str)] = &[
        (&no_fleet, &["sync", "client1;id:zroot/ds", "zroot/copy"],
         "error: `client1;id:zroot/ds`: `client1;id` is not a host name or address: `;` is not allowed in an address"),
        (&no_fleet, &["sync", "root;id@client1:zroot/ds", "zroot/copy"],
         "error: `root;id@client1:zroot/ds`: `root;id` is not a valid user name (lowercase letters, digits, `_`, `-`; at most 32)"),
        (&no_fleet, &["sync", "--", "-oProxyCommand=id:zroot/ds", "zroot/copy"],
         "error: `-oProxyCommand=id:zroot/ds`: `-oProxyCommand=id` is not a host name or address: an address may not start with `-`"),
        (&no_fleet, &["sync", "zroot/ds", "backup@nas\u{a0}1:zroot/copy"],
         "error: `backup@nas\u{a0}1:zroot/copy`: `nas\u{a0}1` is not a host name or address: U+00A0 (`\u{a0}`) is not allowed in an address"),
        (&no_fleet, &["sync", "zroot/ds", "nas:zroot/co\u{1b}[2Jpy"],
         "error: `nas:zroot/co\\u{1b}[2Jpy`: invalid dataset name `zroot/co\\u{1b}[2Jpy`: control character 0x1b at position 9 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)"),
        (&fleet, &["restore", "client1", "--snapshot", "a;id"],
         "error: --snapshot: invalid snapshot name `a;id`: `;` at position 2 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)"),
        (&fleet, &["restore", "client1", "--snapshot", "daily\u{a0}1"],
         "error: --snapshot: invalid snapshot name `daily\u{a0}1`: U+00A0 (`\u{a0}`) at position 6 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)"),
    ];
    for (config, args, want) in cases {
        let (code, err) = zfleet(&dir, config, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim_end(), *want, "{args:?}");
    }
    let called = std::fs::read_to_string(dir.join("called")).unwrap_or_default();
    assert_eq!(called, "", "nothing may run for refused input");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `zfleet import sanoid` never changes what is kept without saying so: a
/// child of a recursive section is laid over its parent as sanoid does, and
/// what cannot be made equal is refused unless accepted.
#[test]
fn sanoid_import_keeps_what_sanoid_keeps_or_refuses() {
    let dir = trap_dir("sanoid");
    let layered = dir.join("layered.conf");
    std::fs::write(
        &layered,
        "[tank/parent]\n\tuse_template = production\n\trecursive = yes\n\n[tank/parent/child]\n\tuse_template = demo\n\n[template_demo]\n\tdaily = 60\n\n[template_production]\n\thourly = 36\n\tdaily = 30\n\tweekly = 4\n\tmonthly = 3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zfleet"))
        .args(["import", "sanoid"])
        .arg(&layered)
        .output()
        .unwrap();
    assert!(out.status.success());
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(
        toml.contains("use_template = [\"demo\"]\nhourly = 36\nmonthly = 3\nweekly = 4\n"),
        "{toml}"
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("[tank/parent/child] is laid over [tank/parent] as sanoid does: hourly = 36, monthly = 3, weekly = 4 written out"));

    let skipped = dir.join("skipped.conf");
    std::fs::write(
        &skipped,
        "[tank/child]\n\thourly = 5\n\n[tank]\n\tskip_children = yes\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_zfleet"))
            .args(["import", "sanoid"])
            .arg(&skipped)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(5));
    assert!(refused.stdout.is_empty());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("differs from sanoid: tank/child: sanoid leaves it alone (`skip_children` of [tank]); zfleet would take and prune its snapshots"), "{err}");
    let accepted = run(&["--accept-differences"]);
    assert!(accepted.status.success());
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("[snapshots.\"tank/child\"]"));
    let _ = std::fs::remove_dir_all(&dir);
}
