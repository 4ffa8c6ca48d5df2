#![allow(clippy::unwrap_used)]

//! The fleet file under mutation: thousands of damaged versions of the example
//! fleets (random bytes, control characters, broken quotes and brackets,
//! repeated and deleted lines, deep nesting). The parser must never panic,
//! every error must say where (`file:line:col`) or why it cannot, and no
//! message may carry a raw control character to the terminal.

use std::path::Path;

use proptest::prelude::*;
use zfleet_core::config;

const CASES: u32 = 10_000;

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<Vec<u8>> = [
        "minimal.toml",
        "seed-fleet.toml",
        "two-servers.toml",
        "unlock.toml",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect();
    v.push(b"[hosts.a]\naddress = \"10.0.0.1\"\n[hosts.a.backup]\ndatasets = [\"zroot/a\"]\n[hosts.s.server]\ntarget_root = \"t/b\"\n".to_vec());
    v
}

/// Pieces that tend to break parsers and messages.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'''".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]]".to_vec()),
        Just(b"{".to_vec()),
        Just(b" = ".to_vec()),
        Just(b".".to_vec()),
        Just(b"\x1b[2J".to_vec()),
        Just(b"\\u001b]0;x\\u0007".to_vec()),
        Just(b"\\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\x00".to_vec()),
        Just("\u{a0}".as_bytes().to_vec()),
        Just("\u{202e}".as_bytes().to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b"\xe2\x82".to_vec()),
        Just(b"port = 0\n".to_vec()),
        Just(b"[hosts.x]\n".to_vec()),
        Just(b"[hosts.x.server]\ntarget_root = \"a/b\"\n".to_vec()),
        Just(b"[[hosts.x.server.extra_clients]]\n".to_vec()),
        Just(b"use_template = [\"nope\"]\n".to_vec()),
        Just(b"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a = 1\n".to_vec()),
        Just([b"x = ".as_slice(), &[b'['; 90], &[b']'; 90]].concat()),
        proptest::collection::vec(any::<u8>(), 1..8),
        "[a-z_.\"=\\[\\] \n0-9]{1,12}".prop_map(String::into_bytes),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    DuplicateLine(usize),
    Replace(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), fragment()).prop_map(|(i, f)| Mutation::Insert(i, f)),
        2 => (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
    ]
}

fn apply(mut text: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = text.len().max(1);
        match m {
            Mutation::Insert(i, f) => {
                let at = i % (text.len() + 1);
                text.splice(at..at, f.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i % len;
                let end = (at + n).min(text.len());
                if at < end {
                    text.drain(at..end);
                }
            }
            Mutation::DuplicateLine(i) => {
                let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
                let line = lines[i % lines.len()].to_vec();
                let mut out = text.clone();
                out.extend_from_slice(b"\n");
                out.extend_from_slice(&line);
                text = out;
            }
            Mutation::Replace(i, b) => {
                if !text.is_empty() {
                    let at = i % text.len();
                    text[at] = *b;
                }
            }
        }
    }
    text
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Err(errors) = config::parse_bytes(bytes, Path::new("fuzz.toml")) else {
        return Ok(());
    };
    prop_assert!(!errors.0.is_empty());
    for e in &errors.0 {
        let shown = e.to_string();
        prop_assert!(
            e.position.is_some() || shown.contains("(no position: "),
            "no place and no reason: {shown}"
        );
        if let Some((line, col)) = e.position {
            prop_assert!(line >= 1 && col >= 1, "{shown}");
            prop_assert!(
                shown.starts_with(&format!("fuzz.toml:{line}:{col}: ")),
                "{shown}"
            );
        }
        // The one line break a message has is before its hint.
        for part in shown.split("\n  hint: ") {
            prop_assert!(
                !part
                    .chars()
                    .any(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}')),
                "raw control character in {part:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_fleet_files_fail_cleanly(seed in 0usize..5, muts in proptest::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        let text = apply(seeds[seed % seeds.len()].clone(), &muts);
        check(&text)?;
    }
}
