//! A server's verification run: each job `zfleet check` lists for it (or
//! only the clients named), clients in parallel, each job's outcome recorded
//! in the state database. One client that cannot be reached never stops
//! the others.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use super::compare::Comparison;
use super::content::{compare_copies, Copy};
use super::quick::{self, Check};
use super::sample::Sample;
use super::walk::WalkOptions;
use crate::config::Job;
use crate::host::Host;
use crate::progress::Progress;
use crate::runtime::Runtime;
use crate::state::{State, VerificationRecord};
use crate::{parallel, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Quick,
    Content,
    Drill,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Quick => "quick",
            Level::Content => "content",
            Level::Drill => "drill",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "quick" => Ok(Level::Quick),
            "content" => Ok(Level::Content),
            "drill" => Ok(Level::Drill),
            _ => Err(format!("`{s}` is not a level (quick, content, drill)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub level: Level,
    /// `--sample PERCENT`: content checks read this share of files per run.
    pub sample: Option<u8>,
    /// Bytes per second each host's walk reads at most.
    pub rate: Option<u64>,
    /// How old the backup pool's last scrub may be.
    pub scrub_max_age_days: u32,
    /// Where a drill restores to (default: this server).
    pub drill_to: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            level: Level::Quick,
            sample: None,
            rate: None,
            scrub_max_age_days: 35,
            drill_to: None,
        }
    }
}

/// A drill's restore: where, how long, how much.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    pub host: String,
    pub dataset: String,
    pub snapshot: String,
    pub seconds: f64,
    pub bytes: u64,
    pub bytes_per_second: f64,
    /// The scratch dataset is gone again.
    pub removed: bool,
    /// An encrypted raw backup whose key is not on the server: received
    /// whole, files not compared.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keyless: bool,
    /// The restored copy against the backup snapshot it came from.
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobVerify {
    pub client: String,
    pub server: String,
    /// `client1:zroot/persistSave`.
    pub source: String,
    /// `backup:zstorage/backups/client1/zroot/persistSave`.
    pub target: String,
    pub level: Level,
    pub ok: bool,
    pub checks: Vec<Check>,
    /// The snapshot whose files were compared (content and drill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<Drill>,
    pub seconds: f64,
}

impl JobVerify {
    fn finish(&mut self) {
        self.ok = self.checks.iter().all(|c| c.ok)
            && self.content.as_ref().map_or(true, Comparison::ok)
            && self.drill.as_ref().map_or(true, |d| {
                (d.keyless || d.comparison.as_ref().is_some_and(Comparison::ok)) && d.removed
            });
    }

    /// What passed with a warning, in words.
    pub fn warnings(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.ok && c.warning)
            .map(|c| format!("{}: {}", c.check, c.detail))
            .collect()
    }

    /// Paths damaged or differing, for a notification (bounded).
    pub fn named_files(&self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let comparisons = self
            .content
            .iter()
            .chain(self.drill.iter().filter_map(|d| d.comparison.as_ref()));
        for c in comparisons {
            for d in &c.differences {
                let line = format!("{}: {}", d.path, d.what.describe());
                if out.len() < max && !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub host: String,
    pub level: Level,
    pub jobs: Vec<JobVerify>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.jobs.iter().all(|j| j.ok)
    }

    pub fn damaged(&self) -> u64 {
        self.jobs
            .iter()
            .flat_map(|j| {
                j.content
                    .iter()
                    .chain(j.drill.iter().filter_map(|d| d.comparison.as_ref()))
            })
            .map(|c| c.damaged)
            .sum()
    }
}

/// Verifies this server's backups of `only` (all clients when empty).
pub fn run(
    rt: &Runtime,
    only: &[String],
    opts: &Options,
    progress: &dyn Progress,
    state: Option<&State>,
) -> Result<VerifyReport, Error> {
    let (fleet, server) = (&rt.fleet, rt.this_host.as_str());
    let plan = fleet
        .server_plan(server)
        .ok_or_else(|| Error::Usage(fleet.not_a_server(server)))?;
    for name in only {
        if !plan.jobs.iter().any(|j| &j.client == name) {
            return Err(Error::Usage(format!(
                "`{server}` does not back up `{name}`, so it has no backups of it to verify"
            )));
        }
    }
    if let Some(p) = opts.sample {
        Sample::rotation(p, 0).map_err(Error::Usage)?;
    }
    // A push client is often not reachable from its server (that is why it
    // pushes); its backups are verified where it can be reached, not here.
    let mut clients: Vec<String> = Vec::new();
    for j in plan.jobs.iter().filter(|j| !j.push) {
        if (only.is_empty() || only.contains(&j.client)) && !clients.contains(&j.client) {
            clients.push(j.client.clone());
        }
    }
    let target = rt.local();
    // One scrub check per pool per run.
    let scrubs: Mutex<BTreeMap<String, Check>> = Mutex::new(BTreeMap::new());
    let limit = fleet
        .host(server)
        .and_then(|h| h.server.as_ref())
        .map_or(4, |r| r.parallel as usize);
    let per_client = parallel::map(&clients, limit, |client| {
        let jobs: Vec<&Job> = plan
            .jobs
            .iter()
            .filter(|j| &j.client == client && !j.push)
            .collect();
        let Some(first) = jobs.first() else {
            return Vec::new();
        };
        let source = rt.ssh_host(client, &first.ssh);
        jobs.iter()
            .map(|job| {
                let started = rt.now();
                let report = one(rt, job, &source, &target, opts, progress, state, &scrubs);
                if let Some(s) = state {
                    record(s, job, &report, started, rt.now());
                }
                report
            })
            .collect()
    });
    Ok(VerifyReport {
        host: server.to_string(),
        level: opts.level,
        jobs: per_client.into_iter().flatten().collect(),
    })
}

#[allow(clippy::too_many_arguments)]
fn one(
    rt: &Runtime,
    job: &Job,
    source: &Host,
    target: &Host,
    opts: &Options,
    progress: &dyn Progress,
    state: Option<&State>,
    scrubs: &Mutex<BTreeMap<String, Check>>,
) -> JobVerify {
    let started = Instant::now();
    let mut r = JobVerify {
        client: job.client.clone(),
        server: job.server.clone(),
        source: format!("{}:{}", job.client, job.source),
        target: format!("{}:{}", target.name, job.target),
        level: opts.level,
        ok: false,
        checks: Vec::new(),
        snapshot: None,
        sample: None,
        content: None,
        drill: None,
        seconds: 0.0,
    };
    body(
        rt, job, source, target, opts, progress, state, scrubs, &mut r,
    );
    r.seconds = started.elapsed().as_secs_f64();
    r.finish();
    r
}

#[allow(clippy::too_many_arguments)]
fn body(
    rt: &Runtime,
    job: &Job,
    source: &Host,
    target: &Host,
    opts: &Options,
    progress: &dyn Progress,
    state: Option<&State>,
    scrubs: &Mutex<BTreeMap<String, Check>>,
    r: &mut JobVerify,
) {
    let src = match source.observe_own(&[&job.source], &[]) {
        Ok(l) => l,
        Err(e) => {
            r.checks
                .push(Check::new("source", false, format!("{}: {e}", source.name)));
            return;
        }
    };
    let tgt = match target.observe_own_if_exists(&job.target, &[]) {
        Ok(Some(l)) => l,
        Ok(None) => {
            r.checks.push(Check::new(
                "target",
                false,
                format!("{} has no backup {} yet", target.name, job.target),
            ));
            return;
        }
        Err(e) => {
            r.checks.push(Check::new("target", false, e.to_string()));
            return;
        }
    };
    r.checks
        .push(quick::newest(&src, &job.source, &tgt, &job.target));
    if let Some(newest) = tgt.snapshots_of(&job.target).last() {
        if let crate::zfs::ObjectName::Snapshot(s) = &newest.name {
            r.checks.push(quick::send(target, s));
        }
    }
    let pool = job.target.pool().as_str().to_string();
    let scrub = {
        let mut cache = scrubs.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(pool.clone())
            .or_insert_with(|| {
                quick::scrub(target, &pool, rt.now(), &rt.tz, opts.scrub_max_age_days)
            })
            .clone()
    };
    r.checks.push(scrub);
    let recorded = state.and_then(|s| {
        s.base(&job.server, &job.client, job.source.as_str())
            .map_err(|e| tracing::warn!("{e}"))
            .ok()
            .flatten()
    });
    r.checks.push(quick::base(
        recorded.as_ref(),
        &src,
        &job.source,
        &tgt,
        &job.target,
    ));
    if opts.level == Level::Quick {
        return;
    }
    if quick::locked(target, &job.target) {
        keyless(rt, job, target, &tgt, opts, progress, r);
        return;
    }
    let Some((src_name, tgt_name)) = quick::common(&src, &job.source, &tgt, &job.target) else {
        r.checks.push(Check::new(
            "content",
            false,
            "source and backup share no snapshot whose files could be compared",
        ));
        return;
    };
    let sample = match opts.sample {
        None => Sample::ALL,
        Some(p) => {
            let run = state
                .and_then(|s| {
                    s.next_rotation(&job.server, &job.client, job.source.as_str())
                        .map_err(|e| tracing::warn!("{e}"))
                        .ok()
                })
                .unwrap_or(0);
            Sample::rotation(p, run).unwrap_or(Sample::ALL)
        }
    };
    r.sample = (!sample.is_all()).then_some(sample);
    r.snapshot = Some(tgt_name.clone());
    let (Ok(src_snap), Ok(tgt_snap)) = (
        job.source.snapshot(&src_name),
        job.target.snapshot(&tgt_name),
    ) else {
        return;
    };
    let walk = WalkOptions {
        sample,
        rate: opts.rate,
    };
    let total = tgt
        .snapshots_of(&job.target)
        .iter()
        .find(|o| matches!(&o.name, crate::zfs::ObjectName::Snapshot(s) if s.name == tgt_name))
        .and_then(|o| o.referenced)
        .map(|b| b / u64::from(sample.buckets.max(1)));
    match compare_copies(
        &Copy {
            host: source,
            snapshot: &src_snap,
        },
        &Copy {
            host: target,
            snapshot: &tgt_snap,
        },
        &rt.fleet.zfleet_path,
        walk,
        progress,
        total,
    ) {
        Ok(c) => {
            r.checks.push(Check::new(
                "content",
                c.ok(),
                format!(
                    "@{tgt_name}: {} paths, {} files read on both hosts ({}), {} differing, {} damaged",
                    c.entries,
                    c.checksummed,
                    crate::words::human_bytes(c.bytes_checksummed),
                    c.differing,
                    c.damaged
                ),
            ));
            r.content = Some(c);
        }
        Err(e) => r.checks.push(Check::new("content", false, e.to_string())),
    }
    if opts.level == Level::Drill {
        match super::drill::run(rt, job, target, &tgt_snap, opts, progress, false) {
            Ok(d) => {
                r.checks.push(Check::new(
                    "drill",
                    d.comparison.as_ref().is_some_and(Comparison::ok) && d.removed,
                    format!(
                        "restored @{} into {}:{} in {:.1} s ({}/s){}",
                        d.snapshot,
                        d.host,
                        d.dataset,
                        d.seconds,
                        crate::words::human_bytes(d.bytes_per_second as u64),
                        if d.removed {
                            ""
                        } else {
                            "; the scratch dataset could not be removed"
                        }
                    ),
                ));
                r.drill = Some(d);
            }
            Err(e) => r.checks.push(Check::new("drill", false, e.to_string())),
        }
    }
}

/// content and drill of an encrypted raw backup whose key is not on the
/// server: its files cannot be read, so the newest backup snapshot's raw
/// stream is received whole into a scratch dataset (ZFS checks every block's
/// checksum as the sender reads it and the stream's as it arrives), which is
/// then destroyed. A drill's time is that receive's.
fn keyless(
    rt: &Runtime,
    job: &Job,
    target: &Host,
    tgt: &crate::zfs::Listing,
    opts: &Options,
    progress: &dyn Progress,
    r: &mut JobVerify,
) {
    let newest = tgt
        .snapshots_of(&job.target)
        .last()
        .and_then(|o| match &o.name {
            crate::zfs::ObjectName::Snapshot(s) => Some(s.clone()),
            _ => None,
        });
    let Some(snap) = newest else {
        r.checks.push(Check::new(
            "receive",
            false,
            format!("{} has no snapshot to receive", job.target),
        ));
        return;
    };
    r.snapshot = Some(snap.name.clone());
    match super::drill::run(rt, job, target, &snap, opts, progress, true) {
        Ok(d) => {
            r.checks.push(Check::new(
                "receive",
                d.removed,
                format!(
                    "the key is not on {}: the raw stream of @{} was received whole into {}:{} ({}, every block's checksum checked) in {:.1} s{}; files not compared",
                    target.name,
                    d.snapshot,
                    d.host,
                    d.dataset,
                    crate::words::human_bytes(d.bytes),
                    d.seconds,
                    if d.removed {
                        ", and removed"
                    } else {
                        "; the scratch dataset could not be removed"
                    }
                ),
            ));
            if opts.level == Level::Drill {
                r.drill = Some(d);
            }
        }
        Err(e) => r.checks.push(Check::new(
            "receive",
            false,
            format!(
                "the key is not on {}: receiving the raw stream of @{} into a scratch dataset failed: {e}",
                target.name, snap.name
            ),
        )),
    }
}

fn record(s: &State, job: &Job, r: &JobVerify, started: i64, finished: i64) {
    let failed: Vec<String> = r
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.check, c.detail))
        .chain(r.named_files(10))
        .collect();
    let comparisons: Vec<&Comparison> = r
        .content
        .iter()
        .chain(r.drill.iter().filter_map(|d| d.comparison.as_ref()))
        .collect();
    let v = VerificationRecord {
        server: job.server.clone(),
        client: job.client.clone(),
        source: job.source.to_string(),
        level: r.level.word().to_string(),
        started,
        finished,
        ok: r.ok,
        snapshot: r.snapshot.clone(),
        checked: r.content.as_ref().map_or(0, |c| c.checksummed),
        differing: comparisons.iter().map(|c| c.differing).max().unwrap_or(0),
        damaged: comparisons.iter().map(|c| c.damaged).max().unwrap_or(0),
        drill_seconds: r.drill.as_ref().map(|d| d.seconds),
        drill_bytes: r.drill.as_ref().map(|d| d.bytes),
        error: (!failed.is_empty())
            .then(|| crate::text::bounded(&failed.join("; "), 2000).into_owned()),
        warning: {
            let w = r.warnings();
            (!w.is_empty()).then(|| crate::text::bounded(&w.join("; "), 2000).into_owned())
        },
    };
    if let Err(e) = s.record_verification(&v) {
        tracing::warn!("{e}");
    }
}
