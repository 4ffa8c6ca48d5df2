//! The engine's layering, checked on its source: which module names which
//! (every `crate::a::b` and `super::x` outside test code). The low layers
//! (zfs, exec, host and the small shared modules) never name the commands
//! built on them, and the modules of `replicate/` name each other without a
//! cycle. `cargo test -p zfleet-core --test import_graph` prints the graph
//! with `-- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`replicate::plan`) for every source file, test files left out.
fn modules(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "snapshots") {
                    stack.push(p);
                }
                continue;
            }
            let Some(rel) = p.strip_prefix(root).ok().and_then(|r| r.to_str()) else {
                continue;
            };
            let Some(rel) = rel.strip_suffix(".rs") else {
                continue;
            };
            let file = rel.rsplit('/').next().unwrap_or(rel);
            if file == "tests" || file.ends_with("_tests") || file.ends_with("_scenarios") {
                continue;
            }
            let module = rel
                .trim_end_matches("/mod")
                .trim_end_matches("lib")
                .replace('/', "::");
            if !module.is_empty() {
                out.push((module, p));
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without its `#[cfg(test)]` module and its comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.split("#[cfg(test)]").next().unwrap_or("");
    body.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `module` names (the longest module prefix of each path).
fn references(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let parent: Vec<&str> = module.split("::").collect();
    let parent = &parent[..parent.len().saturating_sub(1)];
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.to_vec())] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            // `crate::{a::b, c}` names each of its items.
            let items: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end]
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect()
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                vec![rest[..end].to_string()]
            };
            for item in items {
                let mut path: Vec<String> = base.iter().map(|s| s.to_string()).collect();
                path.extend(
                    item.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
                // The longest prefix that is a module.
                while !path.is_empty() && !known.contains(&path.join("::")) {
                    path.pop();
                }
                if !path.is_empty() {
                    let target = path.join("::");
                    if target != module {
                        out.insert(target);
                    }
                }
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&root);
    let known: BTreeSet<String> = mods.iter().map(|(m, _)| m.clone()).collect();
    mods.iter()
        .map(|(m, p)| (m.clone(), references(m, &code(p), &known)))
        .collect()
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

/// The engine's foundation: what every command is built from.
const LOW: &[&str] = &[
    "zfs", "exec", "host", "protocol", "failure", "clock", "progress", "parallel", "error",
];
/// The commands and services built on it.
const HIGH: &[&str] = &[
    "serve",
    "replicate",
    "restore",
    "snapshot",
    "unlock",
    "grant",
    "export",
];

#[test]
fn the_low_layers_name_nothing_built_on_them() {
    let g = graph();
    let mut wrong = Vec::new();
    for (from, tos) in &g {
        if !LOW.contains(&top(from)) {
            continue;
        }
        for to in tos {
            if HIGH.contains(&top(to)) {
                wrong.push(format!("{from} → {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "low layers import upwards: {wrong:#?}");
    // The check sees the graph at all.
    assert!(
        g.get("host").is_some_and(|t| t.contains("zfs")),
        "{:?}",
        g.get("host")
    );
}

#[test]
fn the_modules_of_replicate_form_no_cycle() {
    let g = graph();
    let inside: BTreeMap<&str, Vec<&str>> = g
        .iter()
        .filter(|(m, _)| m.starts_with("replicate::"))
        .map(|(m, tos)| {
            (
                m.as_str(),
                tos.iter()
                    .map(String::as_str)
                    .filter(|t| t.starts_with("replicate::"))
                    .collect(),
            )
        })
        .collect();
    assert!(inside.len() >= 8, "{inside:?}");
    // Depth-first search for a back edge.
    fn visit<'a>(
        m: &'a str,
        g: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m);
            return Some(cycle);
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for to in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(to, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in inside.keys() {
        let mut path = Vec::new();
        if let Some(c) = visit(m, &inside, &mut path, &mut done) {
            panic!("an import cycle in replicate/: {}", c.join(" → "));
        }
    }
    for (m, tos) in &inside {
        println!("{m} → {}", tos.join(", "));
    }
}

/// A cycle is caught: the check itself works.
#[test]
fn references_are_read_from_crate_and_super_paths() {
    let known: BTreeSet<String> = [
        "replicate",
        "replicate::job",
        "replicate::plan",
        "zfs",
        "exec",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let refs = references(
        "replicate::job",
        "use super::plan::{Plan, Step};\nuse crate::{exec::Argv, zfs};\nlet x = crate::zfs::cmd::zfs();",
        &known,
    );
    let want: BTreeSet<String> = ["replicate::plan", "exec", "zfs"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(refs, want);
}
