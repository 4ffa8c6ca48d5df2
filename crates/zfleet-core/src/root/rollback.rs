//! The boot-time rollback of the ephemeral root, which refuses rather than
//! roll back to a snapshot it cannot trust: the blank snapshot must exist, be
//! held by zfleet, and have the guid recorded when the layout was made
//! (`zfleet:blank`). A snapshot of the same name made later (a "swapped"
//! blank) has another guid. Refusing leaves the root as it is: the system
//! boots with yesterday's files rather than with the wrong ones.

use serde::Serialize;

use crate::exec::RunOptions;
use crate::host::{Host, QUERY_TIMEOUT};
use crate::layout::parse::parse_findmnt;
use crate::layout::plan::{BLANK_HOLD, BLANK_PROPERTY};
use crate::zfs::cmd;
use crate::Error;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub dataset: String,
    pub snapshot: String,
    pub guid: Option<String>,
    pub recorded: Option<String>,
    /// Held by zfleet's tag (or, where holds cannot be listed, by anyone).
    pub held: bool,
    /// Snapshots taken after it, which `zfs rollback` would need `-r` for.
    pub later: Vec<String>,
    /// The dataset is `/` of the system this runs on.
    pub mounted_as_root: bool,
}

impl Check {
    /// Why a rollback to this snapshot is refused; empty when it may go ahead.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(guid) = &self.guid else {
            out.push(format!("{} does not exist", self.snapshot));
            return out;
        };
        match &self.recorded {
            None => out.push(format!(
                "{} records no blank snapshot ({BLANK_PROPERTY} is not set); `zfleet disks apply` records it",
                self.dataset
            )),
            Some(r) if r != guid => out.push(format!(
                "{} has guid {guid}, not {r} as recorded in {BLANK_PROPERTY} when the layout was made: it was replaced",
                self.snapshot
            )),
            Some(_) => {}
        }
        if !self.held {
            out.push(format!(
                "{} is not held ({BLANK_HOLD}); `zfleet disks apply` holds it again",
                self.snapshot
            ));
        }
        if !self.later.is_empty() {
            out.push(format!(
                "later snapshots of {} would be destroyed: {}",
                self.dataset,
                self.later.join(", ")
            ));
        }
        if self.mounted_as_root {
            out.push(format!(
                "{} is the root of the running system; the rollback runs from the initrd, before it is mounted",
                self.dataset
            ));
        }
        out
    }
}

/// Reads what the checks need, in four commands.
pub fn inspect(host: &Host, dataset: &str, snap: &str) -> Result<Check, Error> {
    let snapshot = format!("{dataset}@{snap}");
    let run = |argv: crate::exec::Argv| {
        host.endpoint()
            .run_unchecked(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
    };
    let caps = host.caps()?.clone();
    let out = run(cmd::zfs()
        .args([
            "get",
            "-H",
            "-p",
            "-o",
            "name,property,value",
            "guid,userrefs",
        ])
        .arg(&snapshot))?;
    let mut guid = None;
    let mut userrefs = 0u64;
    for line in out.stdout_text().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let [_, prop, value] = f.as_slice() {
            match *prop {
                "guid" => guid = Some(value.to_string()),
                "userrefs" => userrefs = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let out = run(cmd::zfs()
        .args(["get", "-H", "-o", "value"])
        .arg(BLANK_PROPERTY)
        .arg(dataset))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "{dataset} does not exist on {}: {}",
            host.name,
            out.stderr_text()
        )));
    }
    let recorded = Some(out.stdout_text().trim().to_string()).filter(|v| !v.is_empty() && v != "-");
    let held = if caps.holds_listing && guid.is_some() {
        let out = run(cmd::zfs().args(["holds", "-H"]).arg(&snapshot))?;
        out.stdout_text()
            .lines()
            .any(|l| l.split('\t').nth(1).map(str::trim) == Some(BLANK_HOLD))
    } else {
        userrefs > 0
    };
    let out = run(cmd::zfs()
        .args([
            "list",
            "-H",
            "-o",
            "name",
            "-t",
            "snapshot",
            "-s",
            "createtxg",
            "-d",
            "1",
        ])
        .arg(dataset))?;
    let names: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    let later = match names.iter().position(|n| *n == snapshot) {
        Some(i) => names[i + 1..].to_vec(),
        None => Vec::new(),
    };
    let argv = crate::exec::Argv::new("findmnt").args([
        "--json",
        "--list",
        "--output",
        "SOURCE,TARGET,FSTYPE",
    ]);
    let mounted_as_root = run(argv)
        .ok()
        .and_then(|o| parse_findmnt(&o.stdout_text()).ok())
        .is_some_and(|m| m.iter().any(|m| m.target == "/" && m.source == dataset));
    Ok(Check {
        dataset: dataset.to_string(),
        snapshot,
        guid,
        recorded,
        held,
        later,
        mounted_as_root,
    })
}

/// `zfs rollback` to the checked snapshot; only call when `problems()` is empty.
pub fn rollback(host: &Host, check: &Check) -> Result<(), Error> {
    let argv = cmd::zfs().arg("rollback").arg(&check.snapshot);
    host.endpoint()
        .run(&argv, &RunOptions::timeout(QUERY_TIMEOUT))
        .map_err(crate::zfs::ZfsError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Check {
        Check {
            dataset: "zroot/root".into(),
            snapshot: "zroot/root@empty".into(),
            guid: Some("42".into()),
            recorded: Some("42".into()),
            held: true,
            later: Vec::new(),
            mounted_as_root: false,
        }
    }

    #[test]
    fn only_the_recorded_held_blank_is_trusted() {
        assert!(ok().problems().is_empty());
        let swapped = Check {
            guid: Some("43".into()),
            ..ok()
        };
        assert_eq!(
            swapped.problems(),
            ["zroot/root@empty has guid 43, not 42 as recorded in zfleet:blank when the layout was made: it was replaced"]
        );
        let gone = Check { guid: None, ..ok() };
        assert_eq!(gone.problems(), ["zroot/root@empty does not exist"]);
        let loose = Check {
            held: false,
            recorded: None,
            ..ok()
        };
        assert_eq!(loose.problems().len(), 2);
        let later = Check {
            later: vec!["zroot/root@x".into()],
            mounted_as_root: true,
            ..ok()
        };
        assert_eq!(later.problems().len(), 2);
    }
}
