//! Nagios-style checks, as sanoid's `--monitor-snapshots`, `--monitor-health`
//! and `--monitor-capacity` print them: one line, exit 0 OK, 1 WARNING, 2
//! CRITICAL (3 UNKNOWN when the check itself could not run).

use serde::Serialize;

use super::index::Index;
use super::plan::PlanInput;
use super::targets::{targets, Target};
use crate::config::{Period, Policy};
use crate::zfs::{parse::rows, ParseError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Level {
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Unknown => 3,
        }
    }
}

/// One period of one dataset.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotCheck {
    pub dataset: String,
    pub period: Period,
    /// The newest snapshot of the period, if any.
    pub newest: Option<String>,
    /// Its age in seconds.
    pub age: Option<i64>,
    pub warn: u64,
    pub crit: u64,
    pub level: Level,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult<T> {
    pub level: Level,
    /// The line sanoid would print.
    pub message: String,
    pub checks: Vec<T>,
}

impl<T> CheckResult<T> {
    /// The check could not run: Nagios' UNKNOWN, with the reason.
    pub fn unknown(reason: impl std::fmt::Display) -> Self {
        CheckResult {
            level: Level::Unknown,
            message: format!("UNKNOWN: {reason}"),
            checks: Vec::new(),
        }
    }
}

/// sanoid's `displaytime`: `1d 2h 3m 4s`, `5m 0s`, `42s`.
pub fn display_time(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = Vec::new();
    if d > 0 {
        out.push(format!("{d}d"));
    }
    if h > 0 || d > 0 {
        out.push(format!("{h}h"));
    }
    if m > 0 || h > 0 || d > 0 {
        out.push(format!("{m}m"));
    }
    out.push(format!("{sec}s"));
    out.join(" ")
}

fn sort_ci(v: &mut [String]) {
    v.sort_by_key(|s| s.to_lowercase());
}

/// Freshness of every monitored dataset's newest snapshot of each period.
pub fn check_snapshots(input: &PlanInput, index: &Index, now: i64) -> CheckResult<SnapshotCheck> {
    let mut missing = Vec::new();
    let ts: Vec<Target> = targets(&input.entries, index, &mut missing);
    let mut level = Level::Ok;
    let mut msgs = Vec::new();
    let mut paths = Vec::new();
    let mut checks = Vec::new();
    for m in missing {
        // sanoid lists configured datasets regardless; with no snapshots they
        // are critical wherever a limit is set.
        if let Some(e) = input.entries.iter().find(|e| e.dataset == m) {
            if e.policy.monitor.enabled && !e.process_children_only {
                paths.push(m.to_string());
                check_one(
                    m.as_str(),
                    &e.policy,
                    &[],
                    now,
                    &mut level,
                    &mut msgs,
                    &mut checks,
                );
            }
        }
    }
    for t in &ts {
        if !t.policy.monitor.enabled {
            continue;
        }
        paths.push(t.dataset.to_string());
        let snaps: Vec<(Period, &str, i64)> = index
            .snapshots(&t.dataset)
            .iter()
            .filter_map(|s| s.auto.map(|a| (a.period, s.name.as_str(), s.creation)))
            .collect();
        check_one(
            t.dataset.as_str(),
            &t.policy,
            &snaps,
            now,
            &mut level,
            &mut msgs,
            &mut checks,
        );
    }
    sort_ci(&mut msgs);
    sort_ci(&mut paths);
    let message = if msgs.is_empty() {
        format!(
            "OK: all monitored datasets ({}) have fresh snapshots",
            paths.join(", ")
        )
    } else {
        msgs.join(", ")
    };
    CheckResult {
        level,
        message,
        checks,
    }
}

fn check_one(
    path: &str,
    policy: &Policy,
    snaps: &[(Period, &str, i64)],
    now: i64,
    level: &mut Level,
    msgs: &mut Vec<String>,
    checks: &mut Vec<SnapshotCheck>,
) {
    let m = &policy.monitor;
    for period in Period::LONGEST_FIRST {
        if policy.count(period) == 0 {
            continue;
        }
        let warn = m.warn[period as usize];
        let crit = m.crit[period as usize];
        let newest = snaps
            .iter()
            .filter(|(p, _, _)| *p == period)
            .max_by_key(|(_, _, c)| *c);
        let age = newest.map(|(_, _, c)| now - c);
        let p = period.as_str();
        let mut this = Level::Ok;
        let over = |limit: u64| age.is_some_and(|a| a > i64::try_from(limit).unwrap_or(i64::MAX));
        if age.is_none() || over(crit) {
            if crit > 0 {
                this = Level::Critical;
                if !m.dont_crit {
                    *level = (*level).max(Level::Critical);
                }
                msgs.push(match age {
                    None => format!("CRIT: {path} has no {p} snapshots at all!"),
                    Some(a) => format!(
                        "CRIT: {path} newest {p} snapshot is {} old (should be < {})",
                        display_time(a),
                        display_time(i64::try_from(crit).unwrap_or(i64::MAX))
                    ),
                });
            }
        } else if over(warn) && warn > 0 {
            this = Level::Warning;
            if !m.dont_warn {
                *level = (*level).max(Level::Warning);
            }
            msgs.push(format!(
                "WARN: {path} newest {p} snapshot is {} old (should be < {})",
                display_time(age.unwrap_or(0)),
                display_time(i64::try_from(warn).unwrap_or(i64::MAX))
            ));
        }
        checks.push(SnapshotCheck {
            dataset: path.to_string(),
            period,
            newest: newest.map(|(_, n, _)| n.to_string()),
            age,
            warn,
            crit,
            level: this,
        });
    }
}

/// One pool from `zpool list -H -o name,size,allocated,free,capacity,health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub size: String,
    pub allocated: String,
    pub free: String,
    /// Percent.
    pub capacity: Option<u32>,
    pub health: String,
}

pub fn parse_pool_list(text: &str) -> Result<Vec<PoolRow>, ParseError> {
    rows(text, 6)?
        .into_iter()
        .map(|(_, f)| {
            Ok(PoolRow {
                name: f[0].to_string(),
                size: f[1].to_string(),
                allocated: f[2].to_string(),
                free: f[3].to_string(),
                capacity: f[4].trim_end_matches('%').parse().ok(),
                health: f[5].to_string(),
            })
        })
        .collect()
}

/// A device line of `zpool status` that is not well: not ONLINE/AVAIL, or with
/// read, write or checksum errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceProblem {
    pub pool: String,
    pub device: String,
    pub state: String,
    pub errors: Vec<String>,
}

/// The device problems in `zpool status` output (one or several pools).
pub fn parse_status(text: &str) -> Vec<DeviceProblem> {
    let mut out = Vec::new();
    let mut pool = String::new();
    let mut in_config = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(p) = t.strip_prefix("pool:") {
            pool = p.trim().to_string();
            in_config = false;
            continue;
        }
        if t.starts_with("NAME") && t.contains("STATE") && t.contains("CKSUM") {
            in_config = true;
            continue;
        }
        if t.is_empty() || t.starts_with("errors:") {
            in_config = false;
            continue;
        }
        if !in_config {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        if f.len() < 5 {
            // cache, logs, spares headings have no state columns.
            continue;
        }
        let (dev, state) = (f[0], f[1]);
        let mut errors = Vec::new();
        for (what, v) in [("read", f[2]), ("write", f[3]), ("cksum", f[4])] {
            if v != "0" {
                errors.push(what.to_string());
            }
        }
        if !matches!(state, "ONLINE" | "AVAIL") || !errors.is_empty() {
            out.push(DeviceProblem {
                pool: pool.clone(),
                device: dev.to_string(),
                state: state.to_string(),
                errors,
            });
        }
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolCheck {
    pub pool: String,
    pub health: String,
    pub capacity: Option<u32>,
    pub warn: u32,
    pub crit: u32,
    pub problems: Vec<DeviceProblem>,
    pub level: Level,
}

/// Health (sanoid's `check_zpool`) and capacity (`check_zpool_capacity`) of
/// the given pools, each with its capacity limits (0: not checked).
pub fn check_pools(
    pools: &[(String, u32, u32)],
    list: &[PoolRow],
    problems: &[DeviceProblem],
    health: bool,
    capacity: bool,
) -> CheckResult<PoolCheck> {
    let mut level = Level::Ok;
    let mut msgs = Vec::new();
    let mut checks = Vec::new();
    for (name, warn, crit) in pools {
        let Some(row) = list.iter().find(|r| &r.name == name) else {
            level = level.max(Level::Critical);
            msgs.push(format!(
                "CRITICAL ZPOOL {{{name}}} does not exist and/or is not responding!"
            ));
            checks.push(PoolCheck {
                pool: name.clone(),
                health: "MISSING".into(),
                capacity: None,
                warn: *warn,
                crit: *crit,
                problems: Vec::new(),
                level: Level::Critical,
            });
            continue;
        };
        let mine: Vec<DeviceProblem> = problems
            .iter()
            .filter(|p| &p.pool == name)
            .cloned()
            .collect();
        let mut this = Level::Ok;
        if health {
            this = match row.health.as_str() {
                "ONLINE" => Level::Ok,
                "DEGRADED" => Level::Warning,
                _ => Level::Critical,
            };
            if this == Level::Ok && !mine.is_empty() {
                this = Level::Warning;
            }
            let devs: Vec<String> = mine
                .iter()
                .map(|p| {
                    if p.errors.is_empty() {
                        format!("{}:{}", p.device, p.state)
                    } else {
                        format!("({}:{} errors)", p.device, p.errors.join(", "))
                    }
                })
                .collect();
            msgs.push(
                format!(
                    "{} ZPOOL {name} : {} {{Size:{} Free:{} Cap:{}}} {}",
                    word(this),
                    row.health,
                    row.size,
                    row.free,
                    row.capacity.map_or("-".into(), |c| format!("{c}%")),
                    devs.join(" ")
                )
                .trim_end()
                .to_string(),
            );
        }
        if capacity && (*warn > 0 || *crit > 0) {
            let cap = row.capacity.unwrap_or(0);
            let c = if *crit > 0 && cap >= *crit {
                Level::Critical
            } else if *warn > 0 && cap >= *warn {
                Level::Warning
            } else {
                Level::Ok
            };
            msgs.push(format!("{} ZPOOL {name} : {cap}%", word(c)));
            this = this.max(c);
        }
        level = level.max(this);
        checks.push(PoolCheck {
            pool: name.clone(),
            health: row.health.clone(),
            capacity: row.capacity,
            warn: *warn,
            crit: *crit,
            problems: mine,
            level: this,
        });
    }
    let prefix = match level {
        Level::Ok => "",
        Level::Warning => "*** WARNING *** ",
        Level::Critical | Level::Unknown => "*** CRITICAL *** ",
    };
    CheckResult {
        level,
        message: format!("{prefix}{}", msgs.join(", ")),
        checks,
    }
}

fn word(l: Level) -> &'static str {
    match l {
        Level::Ok => "OK",
        Level::Warning => "WARNING",
        Level::Critical => "CRITICAL",
        Level::Unknown => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExpandedPolicy, Recursive};
    use crate::zfs::{DatasetName, Listing};

    #[test]
    fn display_time_like_sanoid() {
        assert_eq!(display_time(42), "42s");
        assert_eq!(display_time(5400), "1h 30m 0s");
        assert_eq!(display_time(90_061), "1d 1h 1m 1s");
        assert_eq!(display_time(86_400), "1d 0h 0m 0s");
    }

    fn input(ds: &str, policy: Policy) -> PlanInput {
        PlanInput {
            host: "h".into(),
            entries: vec![ExpandedPolicy {
                dataset: DatasetName::parse(ds).unwrap(),
                source: "t".into(),
                policy,
                recursive: Recursive::No,
                process_children_only: false,
            }],
            wants: Vec::new(),
            servers: Vec::new(),
        }
    }

    #[test]
    fn snapshot_freshness() {
        let now = 1_700_000_000;
        let text = format!(
            "tank/a\tfilesystem\t1\t1\t1\t1\t1\t-\n\
             tank/a@autosnap_2023-11-14_21:00:00_hourly\tsnapshot\t2\t2\t{}\t1\t1\t0\n\
             tank/a@autosnap_2023-11-13_23:59:00_daily\tsnapshot\t3\t3\t{}\t1\t1\t0\n",
            now - 2 * 3600,
            now - 29 * 3600
        );
        let idx = Index::new(&Listing::from_list(&text, &[]).unwrap());
        let r = check_snapshots(&input("tank/a", Policy::default()), &idx, now);
        assert_eq!(r.level, Level::Critical);
        insta::assert_snapshot!(r.message, @"CRIT: tank/a has no monthly snapshots at all!, WARN: tank/a newest daily snapshot is 1d 5h 0m 0s old (should be < 1d 4h 0m 0s), WARN: tank/a newest hourly snapshot is 2h 0m 0s old (should be < 1h 30m 0s)");
        let quiet = Policy {
            monthly: 0,
            monitor: crate::config::Monitor {
                dont_warn: true,
                ..Default::default()
            },
            ..Policy::default()
        };
        let r = check_snapshots(&input("tank/a", quiet), &idx, now);
        assert_eq!(r.level, Level::Ok, "{}", r.message);
        let fresh = check_snapshots(
            &input(
                "tank/a",
                Policy {
                    monthly: 0,
                    ..Policy::default()
                },
            ),
            &idx,
            now - 2 * 3600 + 60,
        );
        assert_eq!(
            fresh.message,
            "OK: all monitored datasets (tank/a) have fresh snapshots"
        );
    }

    #[test]
    fn pools_health_and_capacity() {
        let list = parse_pool_list(include_str!(
            "../../tests/fixtures/zfs-fuse/zpool-list-H.txt"
        ))
        .unwrap();
        let problems = parse_status(include_str!(
            "../../tests/fixtures/zfs-fuse/zpool-status.txt"
        ));
        assert!(problems.is_empty());
        let r = check_pools(&[("zroot".into(), 80, 95)], &list, &problems, true, true);
        assert_eq!(r.level, Level::Ok);
        assert_eq!(
            r.message,
            "OK ZPOOL zroot : ONLINE {Size:123M Free:122M Cap:1%}, OK ZPOOL zroot : 1%"
        );
        let r = check_pools(
            &[("zroot".into(), 1, 95), ("tank".into(), 80, 95)],
            &list,
            &problems,
            true,
            true,
        );
        assert_eq!(r.level, Level::Critical);
        assert_eq!(r.message, "*** CRITICAL *** OK ZPOOL zroot : ONLINE {Size:123M Free:122M Cap:1%}, WARNING ZPOOL zroot : 1%, CRITICAL ZPOOL {tank} does not exist and/or is not responding!");
        let degraded = "  pool: tank\n state: DEGRADED\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\ttank        DEGRADED     0     0     0\n\t  mirror-0  DEGRADED     0     0     0\n\t    sda     ONLINE       0     0     3\n\t    sdb     UNAVAIL      0     0     0\n\nerrors: No known data errors\n";
        let p = parse_status(degraded);
        assert_eq!(p.len(), 4);
        assert_eq!(p[2].errors, ["cksum"]);
    }
}
