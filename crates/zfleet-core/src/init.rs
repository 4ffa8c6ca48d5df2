//! `zfleet init`: a starting fleet.toml for a machine that has never seen
//! zfleet, put together from what is already there — its pools and datasets,
//! its sanoid.conf (through the sanoid import) and its syncoid jobs (through
//! the syncoid import). Pure: the CLI observes and reads the files; this
//! writes the text, with a comment on every line saying where it came from.

use std::fmt::Write as _;

use serde::Serialize;

use crate::syncoid::sources::Job;

/// A dataset as `zfs list` showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeenDataset {
    pub name: String,
    /// `filesystem` or `volume`.
    pub kind: String,
    /// As `zfs list` prints it (`1.2G`).
    pub used: String,
}

/// What was found on the machine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    pub host: String,
    pub pools: Vec<String>,
    pub datasets: Vec<SeenDataset>,
    /// `(path, text)` of the sanoid.conf, if there is one.
    pub sanoid_conf: Option<(String, String)>,
    pub syncoid_jobs: Vec<Job>,
    /// What reading the job files noticed (`$VAR`, trailing redirections).
    pub syncoid_notes: Vec<String>,
    /// Every file that was read for jobs.
    pub job_files: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Init {
    pub toml: String,
    /// What was not carried over, or differently: one line each.
    pub notes: Vec<String>,
    /// Commands to run once so zfleet goes on from syncoid's backups.
    pub migrations: Vec<String>,
    /// Jobs that could not be read at all.
    pub errors: Vec<String>,
}

/// The fleet file for `found`.
pub fn compose(found: &Found) -> Init {
    let mut init = Init::default();
    let h = &found.host;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# A starting fleet.toml written by `zfleet init` on {h}. Every line says where it came\n# from; nothing on {h} was changed. Add the other hosts, then run `zfleet check`.\n# Reference: docs/config.md; install and adopt: docs/install.md.\n"
    );
    let _ = writeln!(out, "[hosts.{h}]  # this machine (its hostname, or --host)");
    if found.pools.is_empty() {
        let _ = writeln!(out, "# zpool list: no pools imported here");
    } else {
        let _ = writeln!(out, "# zpool list: pools {}", found.pools.join(", "));
    }
    if !found.datasets.is_empty() {
        let _ = writeln!(
            out,
            "# zfs list: datasets here, to choose from for `datasets` in a [hosts.{h}.backup] table:"
        );
        for d in &found.datasets {
            let _ = writeln!(out, "#   {:<40} {} {}", d.name, d.kind, d.used);
        }
    }
    out.push('\n');
    if let Some((path, text)) = &found.sanoid_conf {
        let r = crate::snapshot::sanoid_import::import_annotated(text, Some(h), Some(path));
        for n in &r.notes {
            init.notes.push(format!("{path}: {n}"));
        }
        for d in &r.differences {
            init.notes.push(format!(
                "{path}: differs from sanoid: {d} (check the policy before zfleet prunes)"
            ));
        }
        let body = r.toml.replace(
            "# Imported from sanoid.conf by `zfleet import sanoid`.",
            &format!("# Snapshot policies from {path} (through `zfleet import sanoid`)."),
        );
        out.push_str(body.trim_end());
        out.push_str("\n\n");
    }
    if !found.syncoid_jobs.is_empty() {
        let r = crate::syncoid::import::import(h, &found.syncoid_jobs, &found.pools);
        if let Some((path, text)) = &found.sanoid_conf {
            init.notes.extend(retention_notes(path, text, &r.targets));
        }
        init.notes.extend(found.syncoid_notes.iter().cloned());
        init.notes.extend(r.notes);
        init.migrations = r.migrations;
        init.errors = r.errors;
        out.push_str(r.toml.trim_end());
        out.push('\n');
    }
    init.toml = out.trim_end().to_string() + "\n";
    init
}

/// A sanoid section for a dataset syncoid received into prunes backups;
/// in zfleet that is the server's `retention` template.
fn retention_notes(path: &str, sanoid: &str, targets: &[(String, String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut section: Option<(usize, String)> = None;
    let mut templates: Vec<(usize, String, String)> = Vec::new();
    for (i, line) in sanoid.lines().enumerate() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some((i + 1, name.trim().to_string()));
            templates.push((i + 1, name.trim().to_string(), String::new()));
        } else if let (Some((_, _)), Some((k, v))) = (&section, l.split_once('=')) {
            if k.trim() == "use_template" {
                if let Some(last) = templates.last_mut() {
                    last.2 = v.trim().to_string();
                }
            }
        }
    }
    for (n, name, template) in templates {
        for (server, old, new) in targets {
            if &name == old {
                let t = template.split(',').next().unwrap_or("").trim();
                let t = if t.is_empty() { "NAME" } else { t };
                out.push(format!(
                    "{path}:{n}: [{name}] prunes what syncoid received there; zfleet prunes received backups ({new}) with the server's retention template: set `retention = \"{t}\"` in [hosts.{server}.server]"
                ));
            }
        }
    }
    out
}

/// `zfs list -H -o name,type,used` lines.
pub fn parse_datasets(text: &str) -> Vec<SeenDataset> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(SeenDataset {
                name: f.next()?.to_string(),
                kind: f.next()?.to_string(),
                used: f.next().unwrap_or("-").to_string(),
            })
        })
        .collect()
}
