//! The pure planner: (configured policies, observation, now, time zone) →
//! snapshots to take and to destroy, each with the rule that decided it.
//!
//! Taking follows sanoid's `take_snapshots` (see `due`), pruning its
//! `prune_snapshots`: per period, oldest first, a snapshot goes when it is older
//! than `count × period` *and* more than `count` of that period are left. On
//! top of sanoid, a destroy is vetoed when the snapshot is held, is a
//! replication base (`zfleet:base:<server>`), or is newer than the base of a
//! server that replicates the dataset (not yet copied there). A veto only ever
//! keeps more: everything sanoid would keep is kept.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::Serialize;

use super::due::{last_preferred, period_seconds, Now};
use super::index::{base_property, Index, Snap};
use super::localtime::localtime;
use super::naming::AutoName;
use super::targets::{targets, TakeMode, Target};
use crate::config::{ExpandedPolicy, Fleet, Hooks, Period, Policy};
use crate::zfs::DatasetName;

/// What the planner needs from the fleet file for one host.
#[derive(Debug, Clone, Serialize)]
pub struct PlanInput {
    pub host: String,
    pub entries: Vec<ExpandedPolicy>,
    /// Datasets of this host that backup servers replicate.
    pub wants: Vec<Want>,
    /// Every backup server of the fleet: their base marks are observed.
    pub servers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Want {
    pub dataset: DatasetName,
    pub server: String,
}

impl PlanInput {
    pub fn from_fleet(fleet: &Fleet, host: &str) -> Self {
        let wants = fleet
            .jobs()
            .into_iter()
            .filter(|j| j.client == host && !j.extra)
            .map(|j| Want {
                dataset: j.source,
                server: j.server,
            })
            .collect();
        PlanInput {
            host: host.to_string(),
            entries: fleet.policies(host),
            wants,
            servers: fleet.servers().map(|s| s.name.clone()).collect(),
        }
    }

    /// `zfleet:base:<server>` for every server, observed as extra columns.
    pub fn base_properties(&self) -> Vec<String> {
        let mut v: Vec<String> = self.servers.iter().map(|s| base_property(s)).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The configured datasets with no configured ancestor: observing these
    /// recursively sees everything the plan can touch.
    pub fn roots(&self) -> Vec<DatasetName> {
        let mut all: Vec<&DatasetName> = self.entries.iter().map(|e| &e.dataset).collect();
        all.sort();
        all.dedup();
        all.iter()
            .filter(|d| !all.iter().any(|a| a != *d && d.is_within(a)))
            .map(|d| (*d).clone())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Steps {
    pub take: bool,
    pub prune: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub host: String,
    /// Unix seconds the plan was made for.
    pub now: i64,
    pub time_zone: String,
    pub actions: Vec<Action>,
    /// zfleet's snapshots that stay, with the rule that keeps each.
    pub kept: Vec<Kept>,
    pub warnings: Vec<String>,
    /// Hooks of the datasets that have any, for the executor.
    #[serde(skip)]
    pub hooks: BTreeMap<DatasetName, Hooks>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Snapshot(Take),
    Destroy(Destroy),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Take {
    pub dataset: DatasetName,
    /// The part after `@`.
    pub name: String,
    pub period: Period,
    /// `zfs snapshot -r`: the dataset and everything below it, atomically.
    pub recursive: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destroy {
    pub dataset: DatasetName,
    pub name: String,
    pub period: Period,
    pub creation: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub dataset: DatasetName,
    pub name: String,
    pub period: Period,
    pub creation: i64,
    pub rule: KeepRule,
    pub reason: String,
}

/// Why a snapshot of zfleet's stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeepRule {
    /// Younger than `count × period`.
    Retained,
    /// Older, but no more than `count` of its period are left.
    MinimumCount,
    /// Created after `now`: the clock went back.
    Future,
    /// Would expire, but has holds.
    Held { holds: u64 },
    /// Would expire, but is the newest snapshot a server shares with this host.
    ReplicationBase { servers: Vec<String> },
    /// Would expire, but is newer than a server's base: not copied there yet.
    NotReplicated { server: String },
}

impl KeepRule {
    pub fn is_protection(&self) -> bool {
        matches!(
            self,
            KeepRule::Held { .. }
                | KeepRule::ReplicationBase { .. }
                | KeepRule::NotReplicated { .. }
        )
    }
}

/// Plans taking and/or pruning for one host.
pub fn plan(input: &PlanInput, index: &Index, now: i64, tz: &TimeZone, steps: Steps) -> Plan {
    let mut out = Plan {
        host: input.host.clone(),
        now,
        time_zone: tz.iana_name().unwrap_or("local").to_string(),
        actions: Vec::new(),
        kept: Vec::new(),
        warnings: Vec::new(),
        hooks: BTreeMap::new(),
    };
    let mut missing = Vec::new();
    let ts = targets(&input.entries, index, &mut missing);
    for t in &ts {
        if !t.policy.hooks.is_default() {
            out.hooks.insert(t.dataset.clone(), t.policy.hooks.clone());
        }
    }
    for m in missing {
        out.warnings.push(format!(
            "`{m}` is configured for {} but does not exist there; skipped",
            input.host
        ));
    }
    if steps.take {
        plan_takes(&ts, index, now, tz, &mut out);
    }
    if steps.prune {
        // sanoid's --cron prunes from the list it read before taking (its
        // per-type index is built once at start-up), so a snapshot taken in
        // this run does not count yet; in steady state that keeps one more
        // than `count`. zfleet decides the same.
        plan_prunes(input, &ts, index, now, &mut out);
    }
    out
}

/// Adds snapshots taken (or about to be) to an index, `-r` ones on every
/// dataset of the tree.
pub fn apply_takes(index: &mut Index, takes: &[&Take], now: i64) {
    for t in takes {
        let datasets: Vec<DatasetName> = if t.recursive {
            index.subtree(&t.dataset).cloned().collect()
        } else {
            vec![t.dataset.clone()]
        };
        for d in datasets {
            index.add_taken(&d, &t.name, now);
        }
    }
}

fn plan_takes(ts: &[Target], index: &Index, now: i64, tz: &TimeZone, out: &mut Plan) {
    let n = Now::new(now, tz);
    let tm = n.tm;
    let local = jiff::civil::date(
        i16::try_from(tm.year).unwrap_or(9999),
        i8::try_from(tm.mon).unwrap_or(1),
        i8::try_from(tm.mday).unwrap_or(1),
    )
    .at(
        i8::try_from(tm.hour).unwrap_or(0),
        i8::try_from(tm.min).unwrap_or(0),
        i8::try_from(tm.sec).unwrap_or(0),
        0,
    );
    for t in ts.iter().filter(|t| t.takes()) {
        let snaps = index.snapshots(&t.dataset);
        let recursive = t.take == TakeMode::Tree;
        // The newest of each period, in one pass (histories are long).
        let mut newest_of: [Option<&Snap>; 6] = [None; 6];
        for s in snaps {
            if let Some(a) = s.auto {
                let slot = &mut newest_of[a.period as usize];
                match slot {
                    Some(n) if (n.creation, n.createtxg) >= (s.creation, s.createtxg) => {}
                    _ => *slot = Some(s),
                }
            }
        }
        for period in Period::LONGEST_FIRST {
            if t.policy.count(period) == 0 {
                continue;
            }
            let newest = newest_of[period as usize];
            let (lp, _dst) = last_preferred(&t.policy, period, &n, tz);
            let reason = match newest {
                None => format!("no {} snapshot yet", period.as_str()),
                Some(s) if s.creation < lp => format!(
                    "{} due since {} (newest {} old)",
                    period.as_str(),
                    local_minute(tz, lp),
                    age(now - s.creation)
                ),
                Some(s) => {
                    if s.creation > now {
                        out.warnings.push(format!(
                            "the newest {} snapshot of `{}` ({}) was created {} in the future; none is taken until the clock passes it (did the clock go back?)",
                            period.as_str(),
                            t.dataset,
                            s.name,
                            age(s.creation - now)
                        ));
                    }
                    continue;
                }
            };
            let plain = AutoName {
                local,
                dst: false,
                period,
            }
            .format();
            let exists = |name: &str| -> bool {
                if recursive {
                    index
                        .subtree(&t.dataset)
                        .any(|d| index.has_snapshot(d, name))
                } else {
                    index.has_snapshot(&t.dataset, name)
                }
            };
            let (name, reason) = if !exists(&plain) {
                (plain, reason)
            } else {
                let dst = AutoName {
                    local,
                    dst: true,
                    period,
                }
                .format();
                if exists(&dst) {
                    out.warnings.push(format!(
                        "{} of `{}` is due but `{plain}` and `{dst}` both exist already; not taken",
                        period.as_str(),
                        t.dataset
                    ));
                    continue;
                }
                let why = format!("{reason}; `{plain}` exists (the hour repeated after DST ended)");
                (dst, why)
            };
            out.actions.push(Action::Snapshot(Take {
                dataset: t.dataset.clone(),
                name,
                period,
                recursive,
                reason,
            }));
        }
    }
}

fn plan_prunes(input: &PlanInput, ts: &[Target], index: &Index, now: i64, out: &mut Plan) {
    for t in ts.iter().filter(|t| t.prunes()) {
        let snaps = index.snapshots(&t.dataset);
        let wanting: Vec<String> = input
            .wants
            .iter()
            .filter(|w| w.dataset == t.dataset)
            .map(|w| w.server.to_lowercase())
            .collect();
        prune_dataset(&t.dataset, &t.policy, snaps, &wanting, now, out);
    }
}

/// sanoid's pruning of one dataset, then the vetoes.
fn prune_dataset(
    ds: &DatasetName,
    policy: &Policy,
    snaps: &[Snap],
    wanting: &[String],
    now: i64,
    out: &mut Plan,
) {
    let mut destroyed_any = false;
    // The base of each wanting server: the newest snapshot it marked.
    let bases: Vec<(&String, Option<&Snap>)> = wanting
        .iter()
        .map(|w| {
            let base = snaps
                .iter()
                .filter(|s| s.bases.iter().any(|b| b == w))
                .max_by_key(|s| s.createtxg);
            (w, base)
        })
        .collect();
    for period in Period::ALL {
        let mut of_period: Vec<&Snap> = snaps
            .iter()
            .filter(|s| s.auto.is_some_and(|a| a.period == period))
            .collect();
        if of_period.is_empty() {
            continue;
        }
        of_period.sort_by_key(|s| (s.creation, s.createtxg));
        let count = policy.count(period);
        let secs = period_seconds(policy, period);
        let max_age = now - i64::from(count) * secs;
        let mut left = of_period.len();
        let p = period.as_str();
        let rule_text = format!("{count} × {}", span(secs));
        for s in of_period {
            let kept = |rule: KeepRule, reason: String| Kept {
                dataset: ds.clone(),
                name: s.name.clone(),
                period,
                creation: s.creation,
                rule,
                reason,
            };
            if s.creation > now {
                out.kept.push(kept(
                    KeepRule::Future,
                    format!(
                        "{p}, created {} in the future (did the clock go back?)",
                        age(s.creation - now)
                    ),
                ));
                continue;
            }
            // Every snapshot gets a reason, so with 100,000 of them these
            // strings are most of planning's time: each is built in one
            // allocation, without the formatting machinery.
            let mut reason = String::with_capacity(p.len() * 2 + rule_text.len() + 48);
            reason.push_str(p);
            reason.push_str(", ");
            push_age(&mut reason, now - s.creation);
            reason.push_str(" old: ");
            if s.creation >= max_age {
                reason.push_str("within ");
                reason.push_str(&rule_text);
                out.kept.push(kept(KeepRule::Retained, reason));
                continue;
            }
            if left <= count as usize {
                reason.push_str(&format!(
                    "older than {rule_text}, but only {left} {p} left (keeps {count})"
                ));
                out.kept.push(kept(KeepRule::MinimumCount, reason));
                continue;
            }
            left -= 1;
            let expired = if count == 0 {
                reason.push_str(&format!("`{p} = 0` keeps none"));
                reason
            } else {
                let mut n = itoa::Buffer::new();
                for part in [
                    "older than ",
                    rule_text.as_str(),
                    " and more than ",
                    n.format(count),
                    " ",
                    p,
                ] {
                    reason.push_str(part);
                }
                reason
            };
            if !s.bases.is_empty() {
                out.kept.push(kept(
                    KeepRule::ReplicationBase {
                        servers: s.bases.clone(),
                    },
                    format!("replication base for {}; {expired}", s.bases.join(", ")),
                ));
                continue;
            }
            if s.userrefs > 0 {
                out.kept.push(kept(
                    KeepRule::Held { holds: s.userrefs },
                    format!(
                        "held ({} hold{}); {expired}",
                        s.userrefs,
                        if s.userrefs == 1 { "" } else { "s" }
                    ),
                ));
                continue;
            }
            if let Some((server, base)) = bases
                .iter()
                .find_map(|(w, b)| b.filter(|b| s.createtxg > b.createtxg).map(|b| (*w, b)))
            {
                out.kept.push(kept(
                    KeepRule::NotReplicated {
                        server: server.clone(),
                    },
                    format!(
                        "not yet replicated to {server} (newer than its base `{}`); {expired}",
                        base.name
                    ),
                ));
                continue;
            }
            destroyed_any = true;
            out.actions.push(Action::Destroy(Destroy {
                dataset: ds.clone(),
                name: s.name.clone(),
                period,
                creation: s.creation,
                reason: expired,
            }));
        }
    }
    if destroyed_any {
        for (server, base) in &bases {
            if base.is_none() {
                out.warnings.push(format!(
                    "{server} backs up `{ds}` but has no replication base there yet; pruning is not held back for it"
                ));
            }
        }
    }
}

/// `2017-01-01 01:00` in `tz`.
fn local_minute(tz: &TimeZone, t: i64) -> String {
    let tm = localtime(tz, t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.year, tm.mon, tm.mday, tm.hour, tm.min
    )
}

/// A period length for reasons: `1h`, `1d`, `31d`, `365.25d`, `15m`.
fn span(secs: i64) -> String {
    match secs {
        31_557_600 => "365.25d".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{}m", s / 60),
    }
}

/// An age for reasons: `45m`, `5h`, `1h 30m`, `3d 2h`.
pub fn age(secs: i64) -> String {
    let mut out = String::new();
    push_age(&mut out, secs);
    out
}

/// [`age`] appended to `out`.
fn push_age(out: &mut String, secs: i64) {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let mut n = itoa::Buffer::new();
    let mut push = |v: i64, unit: &str| {
        out.push_str(n.format(v));
        out.push_str(unit);
    };
    match (d, h, m) {
        (0, 0, 0) => push(s, "s"),
        (0, 0, m) => push(m, "m"),
        (0, h, 0) => push(h, "h"),
        (0, h, m) => {
            push(h, "h ");
            push(m, "m");
        }
        (d, 0, _) => push(d, "d"),
        (d, h, _) => {
            push(d, "d ");
            push(h, "h");
        }
    }
}
