//! docs/cli.md is the `--help` of every command. This test fails when they
//! differ, so an interface change always shows up in the docs (and in review).
//! `ZFLEET_UPDATE_DOCS=1 cargo test -p zfleet --test cli_reference` rewrites it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_zfleet"))
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .env_remove("ZFLEET_CONFIG")
        .env_remove("ZFLEET_HOST")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Subcommand names from the top-level help's "Commands:" section.
fn subcommands(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        // Continuation lines of a long description are indented further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn docs_cli_md_is_the_help_of_every_command() {
    let top = help(&[]);
    let mut doc = String::from(
        "# zfleet command reference\n\nGenerated from `zfleet --help` by `crates/zfleet/tests/cli_reference.rs`; do not edit by hand.\n\n```text\n",
    );
    doc.push_str(&top);
    doc.push_str("```\n");
    for cmd in subcommands(&top) {
        let h = help(&[&cmd]);
        doc.push_str(&format!("\n## zfleet {cmd}\n\n```text\n{h}```\n"));
        // Commands with commands of their own (`export systemd`): each one too.
        for sub in subcommands(&h) {
            doc.push_str(&format!(
                "\n### zfleet {cmd} {sub}\n\n```text\n{}```\n",
                help(&[&cmd, &sub])
            ));
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    if std::env::var_os("ZFLEET_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(current == doc, "docs/cli.md is out of date: run `ZFLEET_UPDATE_DOCS=1 cargo test -p zfleet --test cli_reference`");
}
