//! What the next rollback of an ephemeral root deletes: `zfs diff` of the root
//! dataset against its blank snapshot, in the running system's paths, without
//! what lives in other datasets or in persisted paths, grouped by directory.
//! And the other way round (`--persisted`): what a persisted dataset holds
//! that fleet.toml no longer declares. Pure; `observe` runs the commands.

use std::collections::BTreeMap;

use serde::Serialize;

/// One line of `zfs diff -H -F`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `+` added, `-` removed, `M` modified, `R` renamed.
    pub change: char,
    /// `F` file, `/` directory, `@` symlink, and the rest of zfs diff's types.
    pub kind: char,
    /// The path in the running system, with zfs diff's escapes (`\0040`)
    /// kept, so names with control characters print safely.
    pub path: String,
    /// For renames: the new path.
    pub to: Option<String>,
    /// Bytes, for regular files that exist now.
    pub size: Option<u64>,
    /// The path as zfs diff printed it (where the dataset is mounted now).
    #[serde(skip)]
    pub local: String,
}

/// `zfs diff -H -F SNAP DS` output. `mounted_at` is where the dataset is
/// mounted now (zfs diff prints paths below it); `mountpoint` is where the
/// installed system has it (`/` for the root).
pub fn parse_diff(text: &str, mounted_at: &str, mountpoint: &str) -> Vec<Change> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(c), Some(k), Some(p)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Some(change), Some(kind)) = (c.chars().next(), k.chars().next()) else {
            continue;
        };
        let to = f.next();
        out.push(Change {
            change,
            kind,
            path: system_path(p, mounted_at, mountpoint),
            to: to.map(|t| system_path(t, mounted_at, mountpoint)),
            size: None,
            // What exists now: the new name of a rename.
            local: to.unwrap_or(p).to_string(),
        });
    }
    out
}

/// `/mnt/var/x` (dataset mounted at /mnt, the system's `/`) → `/var/x`.
fn system_path(p: &str, mounted_at: &str, mountpoint: &str) -> String {
    let base = mounted_at.trim_end_matches('/');
    let rest = p.strip_prefix(base).unwrap_or(p);
    let rest = rest.trim_start_matches('/');
    let mp = mountpoint.trim_end_matches('/');
    if rest.is_empty() {
        if mp.is_empty() {
            "/".into()
        } else {
            mp.to_string()
        }
    } else {
        format!("{mp}/{rest}")
    }
}

/// zfs diff's escapes (`\0040` for a space, `\0011` for a tab) back to the
/// name on disk, for `stat`. `None` when the name is not UTF-8.
pub fn unescape(p: &str) -> Option<String> {
    let b = p.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 5 <= b.len()
            && b[i + 1..i + 5].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let s = std::str::from_utf8(&b[i + 1..i + 5]).ok()?;
            let v = u32::from_str_radix(s, 8).ok()?;
            out.push(u8::try_from(v).ok()?);
            i += 5;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Is `path` the same as `prefix` or below it?
pub fn within(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The changes a rollback loses: files and such, and directories that are
/// new and hold nothing else that is listed. Directory modifications (a
/// child was added) and everything under `exclude` are left out.
pub fn lost(changes: &[Change], exclude: &[String]) -> (Vec<Change>, usize) {
    let mut excluded = 0;
    let kept: Vec<&Change> = changes
        .iter()
        .filter(|c| {
            let out = exclude.iter().any(|e| within(&c.path, e));
            if out {
                excluded += 1;
            }
            !out
        })
        .filter(|c| !(c.kind == '/' && c.change == 'M'))
        .collect();
    // A new directory that holds something listed, or a mountpoint or a
    // persisted path, is not itself a loss worth listing.
    let result: Vec<Change> = kept
        .iter()
        .filter(|c| {
            c.kind != '/'
                || !(kept
                    .iter()
                    .any(|o| o.path != c.path && within(&o.path, &c.path))
                    || exclude.iter().any(|e| within(e, &c.path)))
        })
        .map(|c| (*c).clone())
        .collect();
    (result, excluded)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub directory: String,
    pub entries: usize,
    pub bytes: u64,
}

/// By directory, two levels deep (`/var/lib`, `/home/alice`, `/tmp`).
pub fn groups(changes: &[Change]) -> Vec<Group> {
    let mut map: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for c in changes {
        let parent = match c.path.rsplit_once('/') {
            Some(("", _)) | None => "/".to_string(),
            Some((p, _)) => p.to_string(),
        };
        let dir = if c.kind == '/' {
            c.path.clone()
        } else {
            parent
        };
        let key: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).take(2).collect();
        let key = format!("/{}", key.join("/"));
        let e = map.entry(key).or_default();
        e.0 += 1;
        e.1 += c.size.unwrap_or(0);
    }
    map.into_iter()
        .map(|(directory, (entries, bytes))| Group {
            directory,
            entries,
            bytes,
        })
        .collect()
}

/// A path that looks like state someone forgot to persist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hint {
    pub path: String,
    pub why: String,
}

/// Service state (`/var/lib/NAME`), configuration written at run time
/// (`/etc/NAME`), home directories (`/home/USER`, `/root`): one hint per
/// such directory.
pub fn hints(changes: &[Change]) -> Vec<Hint> {
    let mut out: Vec<Hint> = Vec::new();
    for c in changes {
        let parts: Vec<&str> = c.path.split('/').filter(|s| !s.is_empty()).collect();
        let (path, why) = match parts.as_slice() {
            ["var", "lib", name, ..] => (
                format!("/var/lib/{name}"),
                "the state of a service; it is gone after the next boot",
            ),
            ["etc", "zfleet", ..] => continue,
            ["etc", name, ..] => (
                format!("/etc/{name}"),
                "configuration written on this machine, not by its system configuration",
            ),
            ["home", user, ..] => (format!("/home/{user}"), "a home directory"),
            ["root", ..] => ("/root".to_string(), "root's home directory"),
            _ => continue,
        };
        if !out.iter().any(|h| h.path == path) {
            out.push(Hint {
                path,
                why: why.to_string(),
            });
        }
    }
    out
}

/// What a persisted dataset holds outside the paths fleet.toml declares for
/// it (`persisted` in system paths: `/var/lib/nixos`, not `/persist/var/…`).
/// Directories leading to a declared path are not orphans.
pub fn orphans(changes: &[Change], persisted: &[String], exclude: &[String]) -> Vec<Change> {
    let candidates: Vec<Change> = changes
        .iter()
        .filter(|c| c.change != '-')
        .filter(|c| !exclude.iter().any(|e| within(&c.path, e)))
        .filter(|c| !(c.kind == '/' && c.change == 'M'))
        .filter(|c| {
            !persisted
                .iter()
                .any(|p| within(&c.path, p) || within(p, &c.path))
        })
        .filter(|c| !(c.kind == '/' && exclude.iter().any(|e| within(e, &c.path))))
        .cloned()
        .collect();
    // The topmost orphan stands for everything below it.
    candidates
        .iter()
        .filter(|c| {
            !candidates
                .iter()
                .any(|o| o.path != c.path && o.kind == '/' && within(&c.path, &o.path))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "+\t/\t/mnt/boot\n+\t/\t/mnt/nix\n+\t/\t/mnt/var\n+\t/\t/mnt/var/lib\n+\t/\t/mnt/var/lib/foo\n+\t/\t/mnt/home\n+\t/\t/mnt/home/alice\n+\tF\t/mnt/home/alice/big\nM\t/\t/mnt/\n+\t/\t/mnt/persist\n+\t/\t/mnt/etc\n+\t/\t/mnt/etc/ssh\n+\tF\t/mnt/var/lib/foo/state.db\n+\tF\t/mnt/tmp/we\\0040ird\\0011name\n+\t/\t/mnt/tmp\n+\t/\t/mnt/var/lib/bluetooth\n+\t/\t/mnt/empty-dir\n";

    #[test]
    fn a_rollback_loses_files_and_empty_new_directories() {
        let changes = parse_diff(DIFF, "/mnt", "/");
        assert_eq!(changes[0].path, "/boot");
        assert_eq!(changes[8].path, "/");
        let exclude: Vec<String> = [
            "/boot",
            "/nix",
            "/persist",
            "/etc/ssh",
            "/var/lib/bluetooth",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (lost, excluded) = lost(&changes, &exclude);
        let paths: Vec<&str> = lost.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/home/alice/big",
                "/var/lib/foo/state.db",
                "/tmp/we\\0040ird\\0011name",
                "/empty-dir"
            ]
        );
        assert_eq!(excluded, 5);
        assert_eq!(
            unescape("/tmp/we\\0040ird\\0011name").unwrap(),
            "/tmp/we ird\tname"
        );
        let g: Vec<(String, usize)> = groups(&lost)
            .into_iter()
            .map(|g| (g.directory, g.entries))
            .collect();
        assert_eq!(
            g,
            [
                ("/empty-dir".to_string(), 1),
                ("/home/alice".to_string(), 1),
                ("/tmp".to_string(), 1),
                ("/var/lib".to_string(), 1)
            ]
        );
        let h: Vec<String> = hints(&lost).into_iter().map(|h| h.path).collect();
        assert_eq!(h, ["/home/alice", "/var/lib/foo"]);
    }

    #[test]
    fn orphans_are_what_no_declared_path_covers() {
        let diff = "+\t/\t/persist/var\n+\t/\t/persist/var/lib\n+\t/\t/persist/var/lib/nixos\n+\tF\t/persist/var/lib/nixos/uid-map\n+\t/\t/persist/var/lib/old\n+\tF\t/persist/var/lib/old/db\n+\t/\t/persist/save\nM\t/\t/persist/\n";
        let changes = parse_diff(diff, "/persist", "/");
        let o = orphans(
            &changes,
            &["/var/lib/nixos".to_string()],
            &["/save".to_string()],
        );
        let paths: Vec<&str> = o.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/var/lib/old"]);
    }
}
