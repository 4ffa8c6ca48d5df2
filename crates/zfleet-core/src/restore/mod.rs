//! Restores: a host's backed-up datasets (or single files) brought back from a
//! backup server, onto the host itself or another one.
//!
//! Observe ([`observe`]: one listing per server and per destination pool) →
//! plan ([`plan`]: pure; which server and snapshot, what happens at the
//! destination, with reasons) → execute ([`exec`], [`files`]). The server's
//! backups are only ever read. The destination is never left half-replaced:
//! streams arrive under a temporary name and are renamed into place.

pub mod exec;
pub mod files;
pub mod observe;
pub mod plan;
pub mod time;

use std::time::Instant;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::runtime::Runtime;

pub use observe::{Hosts, Source};
pub use plan::{RefusalKind, RestorePlan, Selector};

use crate::config::Fleet;
use crate::failure::{Failure, FailureKind};
use crate::progress::Progress;
use crate::transfer::PumpOptions;
use crate::zfs::DatasetName;
use crate::Error;

/// `--to HOST[:DATASET]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub host: String,
    pub dataset: Option<DatasetName>,
}

impl Target {
    /// `client2` or `client2:zroot/restored`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.split_once(':') {
            Some((h, d)) => Ok(Self {
                host: h.to_string(),
                dataset: Some(DatasetName::parse(d)?),
            }),
            None => Ok(Self {
                host: s.to_string(),
                dataset: None,
            }),
        }
    }
}

/// What to restore, from the command line.
#[derive(Debug, Clone)]
pub struct Request {
    /// Whose backups.
    pub host: String,
    /// Only these of its backed-up datasets (all when empty).
    pub datasets: Vec<DatasetName>,
    pub selector: Selector,
    pub from: Option<String>,
    pub to: Option<Target>,
    pub force: bool,
    pub dry_run: bool,
    pub pump: PumpOptions,
}

/// Serialised like a backup's: `"restored"`, or `{"refused": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Restored,
    /// The destination already holds the chosen snapshot as its newest.
    AlreadyThere,
    /// `--dry-run`.
    Planned,
    Refused {
        kind: RefusalKind,
        message: String,
        hint: String,
    },
    Failed(Failure),
}

impl Outcome {
    /// The failure of a step that returned `e`: typed where the step said
    /// which side failed, by the error's kind otherwise.
    pub fn failed(e: &Error) -> Self {
        Outcome::Failed(match e {
            Error::Failed(f) => f.clone(),
            e => Failure::new(FailureKind::of(e), e.to_string()),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    /// `client1:zroot/persistSave`.
    pub source: String,
    /// The backed-up dataset, as named on its host.
    pub dataset: DatasetName,
    /// `client1:zroot/persistSave` or the `--to` destination.
    pub destination: String,
    /// The host restored onto.
    pub destination_host: String,
    pub outcome: Outcome,
    /// The server and snapshot, once chosen (also when the destination then
    /// refuses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<plan::Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<RestorePlan>,
    pub bytes: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl DatasetReport {
    pub fn ok(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Restored | Outcome::AlreadyThere | Outcome::Planned
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub host: String,
    pub dry_run: bool,
    pub datasets: Vec<DatasetReport>,
}

/// Where each source goes: `--to`'s host and dataset, or its own.
fn destination_of(req: &Request, source: &Source) -> (String, DatasetName) {
    match &req.to {
        Some(t) => (
            t.host.clone(),
            t.dataset.clone().unwrap_or_else(|| source.dataset.clone()),
        ),
        None => (source.client.clone(), source.dataset.clone()),
    }
}

/// Checks the request against the fleet file before anything is contacted.
pub fn resolve(fleet: &Fleet, req: &Request) -> Result<Vec<Source>, Error> {
    let sources = observe::sources(fleet, &req.host, &req.datasets, req.from.as_deref())?;
    let dest_host = req
        .to
        .as_ref()
        .map_or(req.host.as_str(), |t| t.host.as_str());
    if fleet.host(dest_host).is_none() {
        return Err(match &req.to {
            Some(_) => Error::UnknownHost {
                name: dest_host.to_string(),
                known: fleet.hosts.keys().cloned().collect(),
            },
            None => Error::Usage(format!(
                "`{dest_host}` is not a host in the fleet file (a server's extra client), so zfleet cannot reach it as an admin; name the destination with --to HOST[:DATASET]"
            )),
        });
    }
    if req.to.as_ref().is_some_and(|t| t.dataset.is_some()) && sources.len() > 1 {
        return Err(Error::Usage(format!(
            "--to names one dataset, but {} has {} backed-up datasets ({}); choose one with --dataset",
            req.host,
            sources.len(),
            sources
                .iter()
                .map(|s| s.dataset.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(sources)
}

/// Restores each of the request's datasets in turn. A dataset that is
/// refused or fails does not stop the others; its report says why.
pub fn restore(
    rt: &Runtime,
    req: &Request,
    hosts: &Hosts,
    progress: &dyn Progress,
) -> Result<RestoreReport, Error> {
    let (fleet, now) = (&rt.fleet, rt.now());
    let sources = resolve(fleet, req)?;
    let views = observe::servers(fleet, &sources, hosts);
    let stamp = time::stamp(now);
    let mut reports = Vec::new();
    for (source, views) in sources.iter().zip(&views) {
        let started = Instant::now();
        let (dest_host, dest_ds) = destination_of(req, source);
        let mut report = DatasetReport {
            source: source.label(),
            dataset: source.dataset.clone(),
            destination_host: dest_host.clone(),
            destination: format!("{dest_host}:{dest_ds}"),
            outcome: Outcome::Planned,
            choice: None,
            plan: None,
            bytes: 0,
            seconds: 0.0,
            warnings: views
                .iter()
                .filter_map(|v| match v {
                    plan::ServerView::Failed { server, error } => {
                        Some(format!("{server} could not be asked: {error}"))
                    }
                    _ => None,
                })
                .collect(),
        };
        let result = one(
            source,
            views,
            req,
            hosts,
            &dest_host,
            &dest_ds,
            &stamp,
            now,
            &rt.tz,
            progress,
            &mut report,
        );
        if let Err(e) = result {
            report.outcome = Outcome::failed(&e);
        }
        report.seconds = started.elapsed().as_secs_f64();
        reports.push(report);
    }
    Ok(RestoreReport {
        host: req.host.clone(),
        dry_run: req.dry_run,
        datasets: reports,
    })
}

#[allow(clippy::too_many_arguments)]
fn one(
    source: &Source,
    views: &[plan::ServerView],
    req: &Request,
    hosts: &Hosts,
    dest_host: &str,
    dest_ds: &DatasetName,
    stamp: &str,
    now: i64,
    tz: &TimeZone,
    progress: &dyn Progress,
    report: &mut DatasetReport,
) -> Result<(), Error> {
    let refuse = |r: plan::Refusal, report: &mut DatasetReport| {
        report.outcome = Outcome::Refused {
            kind: r.kind(),
            message: r.message(&source.label(), tz),
            hint: r.hint(),
        };
    };
    let choice = match plan::choose(views, &req.selector, req.from.as_deref(), tz) {
        Ok(c) => c,
        Err(r) => {
            refuse(r, report);
            return Ok(());
        }
    };
    report.choice = Some(choice.clone());
    let server = hosts.get(&choice.server)?;
    let recorded = observe::recorded(&server, &choice.backup)?;
    let dest = hosts.get(dest_host)?;
    let original = dest_host == source.client && *dest_ds == source.dataset;
    let view = observe::destination(&dest, dest_ds, original)?;
    let opts = plan::PlanOptions {
        force: req.force,
        stamp: stamp.to_string(),
        raw: server.caps()?.raw_send,
    };
    let planned = match plan::plan_dataset(&source.label(), &choice, &recorded, &view, &opts) {
        Ok(p) => p,
        Err(r) => {
            refuse(r, report);
            return Ok(());
        }
    };
    let nothing_to_do = planned.disposition == plan::Disposition::AlreadyThere;
    report.plan = Some(planned.clone());
    if nothing_to_do {
        report.outcome = Outcome::AlreadyThere;
        return Ok(());
    }
    if req.dry_run {
        report.outcome = Outcome::Planned;
        return Ok(());
    }
    let done = exec::run(&planned, &server, &dest, req.pump, progress, now)?;
    report.bytes = done.bytes;
    report.warnings.extend(done.warnings);
    report.outcome = Outcome::Restored;
    Ok(())
}

/// `--list`: per dataset, what each server holds.
#[derive(Debug, Clone, Serialize)]
pub struct ListReport {
    pub host: String,
    pub datasets: Vec<ListedDataset>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListedDataset {
    /// `client1:zroot/persistSave`.
    pub source: String,
    pub servers: Vec<plan::ServerView>,
}

pub fn list(rt: &Runtime, req: &Request, hosts: &Hosts) -> Result<ListReport, Error> {
    let fleet = &rt.fleet;
    let sources = observe::sources(fleet, &req.host, &req.datasets, req.from.as_deref())?;
    let views = observe::servers(fleet, &sources, hosts);
    Ok(ListReport {
        host: req.host.clone(),
        datasets: sources
            .iter()
            .zip(views)
            .map(|(s, v)| ListedDataset {
                source: s.label(),
                servers: v,
            })
            .collect(),
    })
}
