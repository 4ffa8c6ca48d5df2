//! The planner, case by case: a history, a policy, a moment; the plan with
//! every reason, snapshot-tested. Times are written as Vienna wall-clock
//! times so that the DST cases read naturally.

use jiff::tz::TimeZone;
use rstest::rstest;

use super::localtime::timelocal;
use super::*;
use crate::config::{ExpandedPolicy, Policy, Recursive};
use crate::zfs::{DatasetName, Listing};

fn tz() -> TimeZone {
    TimeZone::get("Europe/Vienna").unwrap()
}

/// `2017-03-26 03:00[:SS]` in Vienna; `!` after the time picks the later of a
/// repeated hour (`2017-10-29 02:00!`).
fn at(s: &str) -> i64 {
    let later = s.ends_with('!');
    let s = s.trim_end_matches('!');
    let (d, t) = s.split_once(' ').unwrap();
    let d: Vec<u32> = d.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<u32> = t.split(':').map(|x| x.parse().unwrap()).collect();
    let sec = t.get(2).copied().unwrap_or(0);
    let v = timelocal(&tz(), d[0] as i32, d[1], d[2], t[0], t[1], sec).unwrap();
    if later {
        v + 3600
    } else {
        v
    }
}

/// A snapshot in a test history.
#[derive(Clone)]
struct S {
    ds: &'static str,
    name: String,
    creation: i64,
    holds: u64,
    base: bool,
}

fn snap(ds: &'static str, name: &str, creation: &str) -> S {
    S {
        ds,
        name: name.to_string(),
        creation: at(creation),
        holds: 0,
        base: false,
    }
}

/// An autosnap named after its creation time.
fn auto(ds: &'static str, when: &str, period: &str) -> S {
    let t = at(when);
    let tm = super::localtime::localtime(&tz(), t);
    let name = format!(
        "autosnap_{:04}-{:02}-{:02}_{:02}:{:02}:{:02}_{period}",
        tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec
    );
    S {
        ds,
        name,
        creation: t,
        holds: 0,
        base: false,
    }
}

/// Hourlies every hour from `from` for `n` hours.
fn hourlies(ds: &'static str, from: &str, n: i64) -> Vec<S> {
    (0..n)
        .map(|i| {
            let t = at(from) + i * 3600;
            let tm = super::localtime::localtime(&tz(), t);
            S {
                ds,
                name: format!(
                    "autosnap_{:04}-{:02}-{:02}_{:02}:{:02}:00_hourly",
                    tm.year, tm.mon, tm.mday, tm.hour, tm.min
                ),
                creation: t,
                holds: 0,
                base: false,
            }
        })
        .collect()
}

fn entry(ds: &str, policy: Policy) -> ExpandedPolicy {
    ExpandedPolicy {
        dataset: DatasetName::parse(ds).unwrap(),
        source: "test".into(),
        policy,
        recursive: Recursive::No,
        process_children_only: false,
    }
}

fn only(hourly: u32, daily: u32, monthly: u32) -> Policy {
    Policy {
        hourly,
        daily,
        monthly,
        yearly: 0,
        ..Policy::default()
    }
}

struct Case {
    datasets: Vec<&'static str>,
    entries: Vec<ExpandedPolicy>,
    snaps: Vec<S>,
    wants: Vec<(&'static str, &'static str)>,
    now: &'static str,
}

fn render(c: &Case) -> String {
    let mut text = String::new();
    let mut txg = 10;
    for d in &c.datasets {
        text.push_str(&format!("{d}\tfilesystem\t{txg}\t1\t1\t1\t1\t-\t-\n"));
    }
    let mut snaps = c.snaps.clone();
    snaps.sort_by_key(|s| s.creation);
    for s in &snaps {
        txg += 1;
        text.push_str(&format!(
            "{}@{}\tsnapshot\t{txg}\t{txg}\t{}\t0\t1\t{}\t{}\n",
            s.ds,
            s.name,
            s.creation,
            s.holds,
            if s.base { "1700000000" } else { "-" }
        ));
    }
    let props = vec!["zfleet:base:vault".to_string()];
    let listing = Listing::from_list(&text, &props).unwrap();
    let input = PlanInput {
        host: "alpha".into(),
        entries: c.entries.clone(),
        wants: c
            .wants
            .iter()
            .map(|(d, s)| Want {
                dataset: DatasetName::parse(d).unwrap(),
                server: s.to_string(),
            })
            .collect(),
        servers: vec!["vault".into()],
    };
    let p = plan(
        &input,
        &Index::new(&listing),
        at(c.now),
        &tz(),
        Steps {
            take: true,
            prune: true,
        },
    );
    let mut out = format!("now {} ({})\n", c.now, p.now);
    for a in &p.actions {
        match a {
            Action::Snapshot(t) => out.push_str(&format!(
                "take    {}@{}{}: {}\n",
                t.dataset,
                t.name,
                if t.recursive { " (-r)" } else { "" },
                t.reason
            )),
            Action::Destroy(d) => {
                out.push_str(&format!("destroy {}@{}: {}\n", d.dataset, d.name, d.reason))
            }
        }
    }
    for k in &p.kept {
        out.push_str(&format!("keep    {}@{}: {}\n", k.dataset, k.name, k.reason));
    }
    for w in &p.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

fn one(policy: Policy, snaps: Vec<S>, now: &'static str) -> Case {
    Case {
        datasets: vec!["zroot", "zroot/data"],
        entries: vec![entry("zroot/data", policy)],
        snaps,
        wants: Vec::new(),
        now,
    }
}

const D: &str = "zroot/data";

#[rstest]
#[case::fresh_dataset_takes_every_period(one(Policy::default(), vec![], "2024-02-29 12:34:56"))]
#[case::spring_forward_hourly_after_the_gap(one(
    only(3, 0, 0),
    hourlies(D, "2017-03-26 00:00", 2),
    "2017-03-26 03:00"
))]
#[case::spring_forward_daily(one(only(0, 3, 0), vec![auto(D, "2017-03-25 23:59", "daily")], "2017-03-26 23:59"))]
#[case::spring_forward_daily_not_yet(one(only(0, 3, 0), vec![auto(D, "2017-03-25 23:59", "daily")], "2017-03-26 23:00"))]
#[case::autumn_first_pass(one(
    only(3, 0, 0),
    hourlies(D, "2017-10-29 00:00", 2),
    "2017-10-29 02:00"
))]
#[case::autumn_repeated_hour_gets_a_dst_name(one(
    only(3, 0, 0),
    hourlies(D, "2017-10-29 00:00", 3),
    "2017-10-29 02:00!"
))]
#[case::autumn_repeated_hour_quarter_past(one(
    only(3, 0, 0),
    hourlies(D, "2017-10-29 00:00", 3),
    "2017-10-29 02:15!"
))]
#[case::autumn_daily(one(only(0, 3, 0), vec![auto(D, "2017-10-28 23:59", "daily")], "2017-10-29 23:59"))]
#[case::leap_day_daily(one(only(0, 3, 0), vec![auto(D, "2024-02-28 23:59", "daily")], "2024-02-29 23:59"))]
#[case::yearly_on_feb_29_in_a_common_year(one(Policy { yearly: 2, yearly_mon: 2, yearly_mday: 29, ..only(0, 0, 0) }, vec![auto(D, "2024-02-29 00:00", "yearly")], "2025-02-28 00:00"))]
#[case::yearly_on_feb_29_in_a_leap_year(one(Policy { yearly: 2, yearly_mon: 2, yearly_mday: 29, ..only(0, 0, 0) }, vec![auto(D, "2024-02-29 00:00", "yearly")], "2028-02-28 12:00"))]
#[case::monthly_on_the_31st_in_april(one(Policy { monthly_mday: 31, ..only(0, 0, 3) }, vec![auto(D, "2024-03-31 00:00", "monthly")], "2024-04-30 00:00"))]
#[case::monthly_on_the_31st_in_may(one(Policy { monthly_mday: 31, ..only(0, 0, 3) }, vec![auto(D, "2024-04-30 00:00", "monthly")], "2024-05-30 12:00"))]
#[case::month_end_rollover(one(only(0, 0, 3), vec![auto(D, "2024-01-01 00:00", "monthly")], "2024-02-01 00:00"))]
#[case::weekly_monday(one(Policy { weekly: 4, ..only(0, 0, 0) }, vec![auto(D, "2024-03-04 23:30", "weekly")], "2024-03-11 23:30"))]
#[case::weekly_sunday_before(one(Policy { weekly: 4, ..only(0, 0, 0) }, vec![auto(D, "2024-03-04 23:30", "weekly")], "2024-03-10 23:30"))]
#[case::frequently_every_15_minutes(one(Policy { frequently: 4, ..only(0, 0, 0) }, vec![auto(D, "2024-03-04 10:15", "frequently")], "2024-03-04 10:44"))]
#[case::frequently_due(one(Policy { frequently: 4, ..only(0, 0, 0) }, vec![auto(D, "2024-03-04 10:15", "frequently")], "2024-03-04 10:45"))]
#[case::clock_jumped_backwards(one(only(3, 1, 0), vec![auto(D, "2024-03-04 10:00", "hourly"), auto(D, "2024-03-04 00:00", "daily"), auto(D, "2024-03-04 09:00", "hourly")], "2024-03-04 07:30"))]
#[case::history_with_gaps(one(only(3, 2, 0), [hourlies(D, "2024-03-01 00:00", 5), vec![auto(D, "2024-02-28 23:59", "daily"), auto(D, "2024-02-29 23:59", "daily")]].concat(), "2024-03-11 10:00"))]
#[case::prune_counts_and_ages(one(Policy { autosnap: false, ..only(3, 0, 0) }, hourlies(D, "2024-03-04 00:00", 7), "2024-03-04 09:00"))]
#[case::period_set_to_zero_prunes_all(one(Policy { autosnap: false, ..only(0, 0, 0) }, hourlies(D, "2024-03-04 00:00", 2), "2024-03-04 09:00"))]
#[case::foreign_snapshots_are_never_touched(one(Policy { autosnap: false, ..only(1, 0, 0) }, [hourlies(D, "2024-03-04 00:00", 2), vec![snap(D, "autosnap_manual_hourly", "2024-03-01 00:00"), snap(D, "syncoid_vault_2024-03-01:00:00:00-GMT01:00", "2024-03-01 00:00"), snap(D, "before-upgrade", "2024-01-01 00:00"), snap(D, "autosnap_2024-03-01_00:00:00_hourly_x", "2024-03-01 00:00")]].concat(), "2024-03-04 09:00"))]
fn planner(#[case] case: Case) {
    let name = std::thread::current()
        .name()
        .unwrap_or("planner")
        .rsplit("::")
        .next()
        .unwrap_or("x")
        .to_string();
    insta::assert_snapshot!(name, render(&case));
}

fn protected_history() -> Vec<S> {
    let mut h = hourlies(D, "2024-03-04 00:00", 8);
    h[0].holds = 2; // held
    h[2].base = true; // vault's base
    h
}

#[test]
fn protections_keep_held_bases_and_unreplicated() {
    let case = Case {
        wants: vec![(D, "vault")],
        ..one(
            Policy {
                autosnap: false,
                ..only(2, 0, 0)
            },
            protected_history(),
            "2024-03-04 12:00",
        )
    };
    insta::assert_snapshot!(render(&case));
}

#[test]
fn no_base_yet_warns_but_prunes() {
    let mut h = hourlies(D, "2024-03-04 00:00", 4);
    h[1].holds = 1;
    let case = Case {
        wants: vec![(D, "vault"), (D, "Offsite")],
        ..one(
            Policy {
                autosnap: false,
                ..only(1, 0, 0)
            },
            h,
            "2024-03-04 12:00",
        )
    };
    insta::assert_snapshot!(render(&case));
}

#[test]
fn recursive_trees_and_missing_datasets() {
    let mut e = entry("zroot/vm", only(2, 0, 0));
    e.recursive = Recursive::Zfs;
    let mut r = entry("zroot/home", only(2, 0, 0));
    r.recursive = Recursive::Yes;
    r.process_children_only = true;
    let case = Case {
        datasets: vec![
            "zroot",
            "zroot/vm",
            "zroot/vm/a",
            "zroot/vm/b",
            "zroot/home",
            "zroot/home/ann",
            "zroot/home/bob",
        ],
        entries: vec![e, r, entry("zroot/gone", only(1, 0, 0))],
        snaps: [
            hourlies("zroot/vm/a", "2024-03-04 06:00", 3),
            hourlies("zroot/home/bob", "2024-03-04 09:00", 1),
        ]
        .concat(),
        wants: Vec::new(),
        now: "2024-03-04 10:00",
    };
    insta::assert_snapshot!(render(&case));
}

/// A plan does not depend on when it is made, only on `now` and the history:
/// shifting both by whole weeks (no DST change in between) shifts the plan.
#[test]
fn moving_now_and_history_together_gives_the_same_decisions() {
    let base = one(
        only(3, 2, 0),
        hourlies(D, "2024-04-01 00:00", 30),
        "2024-04-02 09:30",
    );
    let shifted = one(
        only(3, 2, 0),
        hourlies(D, "2024-04-15 00:00", 30),
        "2024-04-16 09:30",
    );
    let strip = |s: String| -> Vec<String> {
        s.lines()
            .skip(1)
            .map(|l| {
                l.replace("2024-04-15", "D1")
                    .replace("2024-04-16", "D2")
                    .replace("2024-04-01", "D1")
                    .replace("2024-04-02", "D2")
            })
            .collect()
    };
    assert_eq!(strip(render(&base)), strip(render(&shifted)));
}

#[rstest]
#[case::seconds(59, "59s")]
#[case::none(-5, "0s")]
#[case::minutes(45 * 60 + 30, "45m")]
#[case::hours(5 * 3600, "5h")]
#[case::hours_and_minutes(3600 + 30 * 60, "1h 30m")]
#[case::days(3 * 86_400 + 59 * 60, "3d")]
#[case::days_and_hours(3 * 86_400 + 2 * 3600 + 59, "3d 2h")]
fn ages_in_reasons(#[case] secs: i64, #[case] want: &str) {
    assert_eq!(super::plan::age(secs), want);
}
