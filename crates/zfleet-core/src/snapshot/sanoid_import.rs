//! `zfleet import sanoid`: a `sanoid.conf` turned into the equivalent
//! fleet.toml sections, with a note for everything that could not be carried
//! over. Keys keep sanoid's names; values become TOML types (`yes` → `true`,
//! `use_template = a,b` → `["a", "b"]`, `recursive = zfs` → `"zfs"`).

use std::collections::HashMap;
use std::fmt::Write as _;

/// The result: fleet.toml text and what did not make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub notes: Vec<String>,
    /// Sections whose values sanoid takes from a recursive parent, written
    /// out so that zfleet keeps the same (one line each).
    pub layered: Vec<String>,
    /// Per dataset, every snapshot count zfleet would keep differently from
    /// sanoid even so: `zfleet import sanoid` refuses unless told to accept.
    pub differences: Vec<String>,
}

/// sanoid's keys that map one to one, with their kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    /// An integer, or a string with a unit.
    Age,
    Text,
}

fn kind(key: &str) -> Option<Kind> {
    Some(match key {
        "autosnap"
        | "autoprune"
        | "monitor"
        | "monitor_dont_warn"
        | "monitor_dont_crit"
        | "no_inconsistent_snapshot"
        | "force_post_snapshot_script" => Kind::Bool,
        "frequently" | "frequent_period" | "hourly" | "daily" | "weekly" | "monthly" | "yearly"
        | "hourly_min" | "daily_hour" | "daily_min" | "weekly_wday" | "weekly_hour"
        | "weekly_min" | "monthly_mday" | "monthly_hour" | "monthly_min" | "yearly_mon"
        | "yearly_mday" | "yearly_hour" | "yearly_min" | "script_timeout" | "capacity_warn"
        | "capacity_crit" => Kind::Int,
        k if k.ends_with("_warn") || k.ends_with("_crit") => Kind::Age,
        "pre_snapshot_script"
        | "post_snapshot_script"
        | "pre_pruning_script"
        | "pruning_script" => Kind::Text,
        _ => return None,
    })
}

const TRUE: &[&str] = &[
    "1", "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON",
];
const FALSE: &[&str] = &[
    "0", "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF",
];

/// A key that is part of a snapshot policy (what layering carries over).
pub(super) fn is_policy_key(key: &str) -> bool {
    kind(key).is_some()
}

pub(super) fn toggle(v: &str) -> Option<bool> {
    if TRUE.contains(&v) {
        Some(true)
    } else if FALSE.contains(&v) {
        Some(false)
    } else {
        None
    }
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) struct Section {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) keys: Vec<(String, String, usize)>,
}

/// Config::IniFiles as sanoid uses it: `[section]`, `key = value`, `#`/`;`
/// comments, values trimmed.
fn parse_ini(text: &str, notes: &mut Vec<String>) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.split(']').next().unwrap_or(rest).trim().to_string();
            out.push(Section {
                name,
                line: n,
                keys: Vec::new(),
            });
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            notes.push(format!(
                "line {n}: `{line}` is neither a section nor `key = value`; ignored"
            ));
            continue;
        };
        let Some(sec) = out.last_mut() else {
            notes.push(format!(
                "line {n}: `{line}` is outside any section; ignored"
            ));
            continue;
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        if sec.keys.iter().any(|(key, _, _)| *key == k) {
            notes.push(format!(
                "line {n}: `{k}` is set twice in [{}]; the first value is used, as sanoid does",
                sec.name
            ));
            continue;
        }
        sec.keys.push((k, v, n));
    }
    out
}

/// Converts a `sanoid.conf`. Dataset sections go under `[snapshots."DATASET"]`
/// (every host), or under `[hosts.HOST.snapshots."DATASET"]` with `host`.
pub fn import(text: &str, host: Option<&str>) -> Imported {
    import_annotated(text, host, None)
}

/// [`import`], with `# ORIGIN:LINE` after every header and key it writes
/// (`zfleet init` says where each line of the file it writes came from).
pub fn import_annotated(text: &str, host: Option<&str>, origin: Option<&str>) -> Imported {
    let mut notes = Vec::new();
    let sections = parse_ini(text, &mut notes);
    let mut templates = String::new();
    let mut datasets = String::new();
    // Templates first, `default` at the top: fleet.toml needs them before use
    // only for reading, but people read top-down.
    let mut order: Vec<&Section> = sections
        .iter()
        .filter(|s| s.name.starts_with("template_"))
        .collect();
    order.sort_by_key(|s| s.name != "template_default");
    order.extend(sections.iter().filter(|s| !s.name.starts_with("template_")));
    let sanoid = super::sanoid_layering::sanoid_rule(&sections);
    let mut layered = Vec::new();
    let mut unreproduced: Vec<String> = Vec::new();
    for s in order {
        let is_template = s.name.starts_with("template_");
        let mut body = String::new();
        let mut dataset = s.name.clone();
        // sanoid's values from a recursive parent, written into this
        // section (replacing its own where sanoid replaced them too).
        let mut keys = s.keys.clone();
        let diffs = super::sanoid_layering::differing(s, &sections, &sanoid);
        if !diffs.is_empty() {
            let from = sanoid
                .get(&s.name)
                .and_then(|e| e.from.clone())
                .unwrap_or_default();
            let mut written = Vec::new();
            for (k, v) in &diffs {
                let Some(v) = v.clone().or_else(|| sanoid_default(k)) else {
                    unreproduced.push(format!(
                        "[{}] `{k}`: sanoid uses its default, which zfleet cannot write",
                        s.name
                    ));
                    continue;
                };
                written.push(format!("{k} = {v}"));
                match keys.iter_mut().find(|(key, _, _)| key == k) {
                    Some(own) => own.1 = v,
                    None => keys.push((k.clone(), v, s.line)),
                }
            }
            let _ = writeln!(
                body,
                "# sanoid lays this section over [{from}] (recursive): {}",
                written.join(", ")
            );
            layered.push(format!(
                "[{}] is laid over [{from}] as sanoid does: {} written out",
                s.name,
                written.join(", ")
            ));
        }
        for (k, v, n) in &keys {
            let before = body.len();
            let at = format!("line {n}: [{}] `{k}`", s.name);
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "use_template" if is_template => {
                    notes.push(format!("{at}: sanoid ignores templates used by a template; left out"));
                }
                "use_template" => {
                    let list: Vec<String> = v
                        .split(',')
                        .map(|t| t.trim())
                        .filter(|t| !t.is_empty())
                        .map(quote)
                        .collect();
                    let _ = writeln!(body, "use_template = [{}]", list.join(", "));
                }
                "recursive" | "process_children_only" if is_template => {
                    notes.push(format!("{at}: sanoid ignores it in a template; left out"));
                }
                "recursive" => match (v.to_ascii_lowercase().as_str(), toggle(v)) {
                    ("zfs", _) => body.push_str("recursive = \"zfs\"\n"),
                    (_, Some(b)) => {
                        let _ = writeln!(body, "recursive = {b}");
                    }
                    _ => notes.push(format!("{at}: `{v}` is not understood; left out")),
                },
                "process_children_only" => match toggle(v) {
                    Some(b) => {
                        let _ = writeln!(body, "process_children_only = {b}");
                    }
                    None => notes.push(format!("{at}: `{v}` is not a yes/no value; left out")),
                },
                "path" if !is_template => dataset = v.clone(),
                "skip_children" if toggle(v) == Some(false) => {}
                "prune_defer" if v == "0" => {}
                "skip_children" => notes.push(format!(
                    "{at}: not supported; the dataset is snapshotted alone (not recursive), and entries for its children are not skipped"
                )),
                "prune_defer" => notes.push(format!(
                    "{at}: not supported; zfleet prunes regardless of pool capacity (`zfleet check-pools` watches capacity)"
                )),
                _ => match kind(k) {
                    Some(Kind::Bool) => match toggle(v) {
                        Some(b) => {
                            let _ = writeln!(body, "{k} = {b}");
                        }
                        None => notes.push(format!("{at}: `{v}` is not a yes/no value; left out")),
                    },
                    Some(Kind::Int) => match v.parse::<u64>() {
                        Ok(i) => {
                            let _ = writeln!(body, "{k} = {i}");
                        }
                        Err(_) => notes.push(format!("{at}: `{v}` is not a whole number; left out")),
                    },
                    Some(Kind::Age) => match v.parse::<u64>() {
                        Ok(i) => {
                            let _ = writeln!(body, "{k} = {i}");
                        }
                        Err(_) => {
                            let _ = writeln!(body, "{k} = {}", quote(v));
                        }
                    },
                    Some(Kind::Text) => {
                        let _ = writeln!(body, "{k} = {}", quote(v));
                    }
                    None => notes.push(format!("{at}: not a sanoid setting zfleet knows; left out")),
                },
            }
            if let Some(o) = origin {
                // Each arm writes one line or none.
                if body.len() > before && body.ends_with('\n') {
                    body.pop();
                    let _ = writeln!(body, "  # {o}:{n}");
                }
            }
        }
        let skip_children = s
            .keys
            .iter()
            .any(|(k, v, _)| k == "skip_children" && toggle(v) == Some(true));
        if skip_children {
            body = body
                .lines()
                .filter(|l| {
                    !l.starts_with("recursive =") && !l.starts_with("process_children_only =")
                })
                .map(|l| format!("{l}\n"))
                .collect();
        }
        if let Some(t) = s.name.strip_prefix("template_") {
            let _ = writeln!(
                templates,
                "[templates.{}]{}\n{body}",
                quote_key(t),
                header_origin(origin, s)
            );
        } else {
            let header = match host {
                Some(h) => format!("[hosts.{}.snapshots.{}]", quote_key(h), quote(&dataset)),
                None => format!("[snapshots.{}]", quote(&dataset)),
            };
            if dataset != s.name {
                let _ = writeln!(datasets, "# sanoid section [{}] (line {})", s.name, s.line);
            }
            let _ = writeln!(datasets, "{header}{}\n{body}", header_origin(origin, s));
        }
    }
    let mut toml = String::from("# Imported from sanoid.conf by `zfleet import sanoid`.\n\n");
    toml.push_str(&templates);
    toml.push_str(&datasets);
    let toml = toml.trim_end().to_string() + "\n";
    let mut differences = compare_counts(&toml, host, &sections, &sanoid);
    differences.extend(unreproduced);
    Imported {
        toml,
        notes,
        layered,
        differences,
    }
}

/// `  # ORIGIN:LINE [section]` after a header, when annotating.
fn header_origin(origin: Option<&str>, s: &Section) -> String {
    match origin {
        Some(o) => format!("  # {o}:{} [{}]", s.line, s.name),
        None => String::new(),
    }
}

/// sanoid's default for a policy key, as the import writes it.
pub(super) fn sanoid_default(key: &str) -> Option<String> {
    use crate::config::{Period, Policy};
    let d = Policy::default();
    let n = match key {
        "autosnap" => return Some(d.autosnap.to_string()),
        "autoprune" => return Some(d.autoprune.to_string()),
        "frequent_period" => d.frequent_period,
        "hourly_min" => d.hourly_min,
        "daily_hour" => d.daily_hour,
        "daily_min" => d.daily_min,
        "weekly_wday" => d.weekly_wday,
        "weekly_hour" => d.weekly_hour,
        "weekly_min" => d.weekly_min,
        "monthly_mday" => d.monthly_mday,
        "monthly_hour" => d.monthly_hour,
        "monthly_min" => d.monthly_min,
        "yearly_mon" => d.yearly_mon,
        "yearly_mday" => d.yearly_mday,
        "yearly_hour" => d.yearly_hour,
        "yearly_min" => d.yearly_min,
        k => d.count(Period::ALL.into_iter().find(|p| p.as_str() == k)?),
    };
    Some(n.to_string())
}

/// Reads the imported text back as zfleet would and compares, per dataset,
/// each period's count with what sanoid keeps.
fn compare_counts(
    toml: &str,
    host: Option<&str>,
    sections: &[Section],
    sanoid: &HashMap<String, super::sanoid_layering::Effective>,
) -> Vec<String> {
    use crate::config::Period;
    let check_host = host.unwrap_or("import-check");
    let text = match host {
        Some(_) => toml.to_string(),
        None => format!("{toml}\n[hosts.{check_host}]\n"),
    };
    let Ok(fleet) = crate::config::parse(&text, std::path::Path::new("imported")) else {
        return Vec::new();
    };
    let Some(h) = fleet.host(check_host) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in sections.iter().filter(|s| !s.name.starts_with("template_")) {
        let Some(e) = sanoid.get(&s.name) else {
            continue;
        };
        let ds = s
            .keys
            .iter()
            .find(|(k, _, _)| k == "path")
            .map_or(s.name.as_str(), |(_, v, _)| v.as_str());
        let Some(ours) = h.snapshots.iter().find(|p| p.dataset.as_str() == ds) else {
            continue;
        };
        if let Some(by) = &e.skipped_by {
            out.push(format!(
                "{ds}: sanoid leaves it alone (`skip_children` of [{by}]); zfleet would take and prune its snapshots"
            ));
            continue;
        }
        let counts: Vec<String> = Period::ALL
            .into_iter()
            .filter_map(|p| {
                let theirs = e
                    .values
                    .get(p.as_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .or_else(|| sanoid_default(p.as_str()).and_then(|v| v.parse().ok()))?;
                let mine = ours.policy.count(p);
                (mine != theirs).then(|| format!("{} {mine} (sanoid: {theirs})", p.as_str()))
            })
            .collect();
        if !counts.is_empty() {
            out.push(format!("{ds}: zfleet would keep {}", counts.join(", ")));
        }
    }
    out
}

/// A bare TOML key where possible, else quoted.
fn quote_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "\
######################################
# This is a sample sanoid.conf file. #
######################################

[zpoolname/parent]
\tuse_template = production, ignore_me
\trecursive = yes
\tprocess_children_only = yes

[zpoolname/parent/child]
\tuse_template = backup
\thourly = 4

[vms]
\tpath = zroot/vms
\tuse_template = production
\trecursive = zfs
\tskip_children = yes

[template_default]
\thourly_warn = 90m
\tmonitor = no

[template_production]
\tfrequently = 0
\thourly = 36
\tdaily = 30
\tmonthly = 3
\tyearly = 0
\tautosnap = yes
\tautoprune = yes
\tdaily_crit = 48
\tpre_snapshot_script = /usr/local/bin/freeze \"$SANOID_TARGET\"
\tscript_timeout = 0
\tno_inconsistent_snapshot = yes
\tprune_defer = 60
\thourly = 48

[template_backup]
\tautoprune = yes
\tautosnap = no
\tuse_template = production
\tfrobnicate = 3

[template_ignore_me]
";

    #[test]
    fn sample_config() {
        let r = import(CONF, None);
        insta::assert_snapshot!(r.toml);
        insta::assert_debug_snapshot!(r.notes);
    }

    /// A recursive parent and a child section of its own, as in sanoid's
    /// example sanoid.conf with its child section uncommented (own text).
    const LAYERED: &str = "\
[tank/parent]
\tuse_template = production
\trecursive = yes
\tprocess_children_only = yes

[tank/parent/child]
\t# laid over the parent's values, as sanoid's example says
\tuse_template = demo

[template_demo]
\tdaily = 60

[template_production]
\tfrequently = 0
\thourly = 36
\tdaily = 30
\tweekly = 4
\tmonthly = 3
\tyearly = 0
\tautosnap = yes
\tautoprune = yes
";

    fn counts(r: &Imported, ds: &str) -> Vec<u32> {
        let text = format!("{}\n[hosts.h]\n", r.toml);
        let fleet = crate::config::parse(&text, std::path::Path::new("imported.toml")).unwrap();
        let p = fleet.hosts["h"]
            .snapshots
            .iter()
            .find(|p| p.dataset.as_str() == ds)
            .unwrap()
            .policy
            .clone();
        crate::config::Period::ALL
            .iter()
            .map(|x| p.count(*x))
            .collect()
    }

    /// sanoid keeps hourly 36, daily 60, weekly 4, monthly 3 for the child;
    /// zfleet's deepest-entry rule alone would give 48/60/0/6 (no weeklies).
    #[test]
    fn a_child_of_a_recursive_section_keeps_what_sanoid_keeps() {
        let r = import(LAYERED, None);
        assert_eq!(counts(&r, "tank/parent/child"), [0, 36, 60, 4, 3, 0]);
        assert_eq!(counts(&r, "tank/parent"), [0, 36, 30, 4, 3, 0]);
        assert_eq!(r.differences, Vec::<String>::new());
        assert_eq!(
            r.layered,
            ["[tank/parent/child] is laid over [tank/parent] as sanoid does: hourly = 36, monthly = 3, weekly = 4 written out"]
        );
        assert!(r.toml.contains("[snapshots.\"tank/parent/child\"]\n# sanoid lays this section over [tank/parent] (recursive): hourly = 36, monthly = 3, weekly = 4\nuse_template = [\"demo\"]\nhourly = 36\nmonthly = 3\nweekly = 4\n"), "{}", r.toml);
    }

    /// Read before its recursive parent, sanoid replaces the child's values
    /// with the parent's altogether: its own template is lost.
    #[test]
    fn a_child_read_before_its_parent_gets_the_parents_values() {
        let (parent, rest) = LAYERED.split_once("\n\n").unwrap();
        let (child, templates) = rest.split_once("\n\n").unwrap();
        let reordered = format!("{child}\n\n{parent}\n\n{templates}");
        let r = import(&reordered, None);
        assert_eq!(counts(&r, "tank/parent/child"), [0, 36, 30, 4, 3, 0]);
        assert!(r.differences.is_empty(), "{:?}", r.differences);
    }

    /// What the import cannot make equal is listed per dataset, and the CLI
    /// refuses it without --accept-differences.
    #[test]
    fn what_cannot_be_reproduced_is_listed() {
        let conf = "[tank/child]\n\thourly = 5\n\n[tank]\n\tskip_children = yes\n";
        let r = import(conf, None);
        assert_eq!(
            r.differences,
            ["tank/child: sanoid leaves it alone (`skip_children` of [tank]); zfleet would take and prune its snapshots"]
        );
    }

    #[test]
    fn imported_text_is_a_valid_fleet_file() {
        let r = import(CONF, Some("alpha"));
        let fleet = crate::config::parse(&r.toml, std::path::Path::new("imported.toml")).unwrap();
        let alpha = &fleet.hosts["alpha"];
        let parent = alpha
            .snapshots
            .iter()
            .find(|p| p.dataset.as_str() == "zpoolname/parent")
            .unwrap();
        assert_eq!(parent.policy.hourly, 36);
        assert!(parent.process_children_only);
        assert!(!parent.policy.monitor.enabled, "from template_default");
        let vms = alpha
            .snapshots
            .iter()
            .find(|p| p.dataset.as_str() == "zroot/vms")
            .unwrap();
        assert_eq!(vms.recursive, crate::config::Recursive::No, "skip_children");
        assert_eq!(vms.policy.hooks.timeout, None);
    }
}
