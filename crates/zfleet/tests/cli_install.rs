//! What `cargo install` users get instead of the package's files: shell
//! completions and man pages printed by zfleet itself, checked with the
//! programs that read them (bash's `complete`, `man -l`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn zfleet(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_zfleet"))
        .args(args)
        .env_remove("ZFLEET_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn bash_completion_registers_zfleet_and_completes_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("zfleet.bash");
    std::fs::write(&script, zfleet(&["completions", "bash"]).stdout).unwrap();
    // Sourced as bash-completion would; then ask bash what it registered and
    // what it offers after `zfleet ba`.
    let probe = format!(
        "source {}; complete -p zfleet; COMP_WORDS=(zfleet ba); COMP_CWORD=1; COMP_LINE='zfleet ba'; COMP_POINT=9; _zfleet zfleet ba zfleet; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let registered = lines.next().unwrap_or_default();
    assert!(
        registered.starts_with("complete ") && registered.ends_with(" zfleet"),
        "{registered}"
    );
    let offered: Vec<&str> = lines.collect();
    assert_eq!(offered, ["backup"], "completions of `zfleet ba`");
}

#[test]
fn zsh_and_fish_scripts_name_zfleet() {
    let zsh = String::from_utf8(zfleet(&["completions", "zsh"]).stdout).unwrap();
    assert!(
        zsh.starts_with("#compdef zfleet"),
        "{}",
        &zsh[..40.min(zsh.len())]
    );
    assert!(zsh.contains("'backup:"), "zsh lists the subcommands");
    let fish = String::from_utf8(zfleet(&["completions", "fish"]).stdout).unwrap();
    assert!(fish.contains("complete -c zfleet"), "fish");
    assert!(fish.contains("-a \"backup\""), "fish lists the subcommands");
}

/// Subcommands from `zfleet --help`.
fn subcommands() -> Vec<String> {
    let top = String::from_utf8(zfleet(&["--help"]).stdout).unwrap();
    top.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn a_man_page_for_zfleet_and_every_subcommand_and_man_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let listed =
        String::from_utf8(zfleet(&["man", "--dir", dir.path().to_str().unwrap()]).stdout).unwrap();
    let mut expected = vec!["zfleet.1".to_string()];
    expected.extend(subcommands().iter().map(|c| format!("zfleet-{c}.1")));
    for page in &expected {
        let path = dir.path().join(page);
        assert!(path.is_file(), "{page} missing; written:\n{listed}");
    }
    // Nested subcommands have pages too.
    assert!(dir.path().join("zfleet-import-sanoid.1").is_file());
    // man renders one, with the subcommand's own help text in it.
    let out = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("zfleet-backup.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("zfleet-backup"), "{text}");
    assert!(text.contains("--dry-run"), "{text}");
    // `zfleet man backup` prints the same page.
    let printed = zfleet(&["man", "backup"]).stdout;
    assert_eq!(
        printed,
        std::fs::read(dir.path().join("zfleet-backup.1")).unwrap()
    );
}

#[test]
fn man_for_an_unknown_subcommand_names_the_known_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_zfleet"))
        .args(["man", "bakup"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no subcommand `bakup`") && err.contains("backup"),
        "{err}"
    );
}
