//! Planning over 100,000 snapshots in 1,000 datasets: CPU time of parsing a
//! zfs-fuse-style observation, indexing it, and planning take + prune.
//!
//! `cargo bench -p zfleet-core --bench plan` (a plain program, not a timed
//! test: it prints figures). CPU time is this thread's, from
//! /proc/thread-self/schedstat.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use zfleet_core::config::{ExpandedPolicy, Policy, Recursive};
use zfleet_core::snapshot::{plan, Index, PlanInput, Steps};
use zfleet_core::zfs::{DatasetName, Listing};

const DATASETS: usize = 1000;
const PER_DATASET: usize = 100;

/// Nanoseconds this thread has run on a CPU.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// The same objects twice: `zfs get -H -p -r -o name,property,value` output,
/// as zfs-fuse prints it, and `zfs list -H -p -o <LIST_PROPERTIES>,…` output,
/// as OpenZFS does: 1,000 datasets under `tank/data`, each with 100 snapshots
/// (48 hourly, 30 daily, 6 monthly, 10 frequently, 6 foreign), one with a
/// base mark.
fn observation(now: i64) -> (String, String) {
    let mut s = String::new();
    let mut list = String::new();
    let mut txg = 1u64;
    let mut obj = |s: &mut String, name: &str, kind: &str, creation: i64, extra: &str| {
        txg += 1;
        let refs = if kind == "snapshot" { "0" } else { "-" };
        let _ = write!(
            s,
            "{name}\ttype\t{kind}\n{name}\tguid\t{}\n{name}\tcreatetxg\t{txg}\n{name}\tcreation\t{creation}\n\
             {name}\tused\t0\n{name}\treferenced\t114688\n{name}\tuserrefs\t{refs}\n{name}\tzfleet:base:vault\t{extra}\n",
            txg * 7919,
        );
        let _ = writeln!(
            list,
            "{name}\t{kind}\t{}\t{txg}\t{creation}\t0\t114688\t{refs}\t{extra}",
            txg * 7919
        );
    };
    obj(&mut s, "tank/data", "filesystem", now - 10_000_000, "-");
    for d in 0..DATASETS {
        let ds = format!("tank/data/d{d:04}");
        obj(&mut s, &ds, "filesystem", now - 10_000_000, "-");
        let mut snaps: Vec<(i64, String)> = Vec::new();
        let ts = |t: i64| {
            let dt = jiff::Timestamp::from_second(t)
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::UTC);
            dt.strftime("%Y-%m-%d_%H:%M:%S").to_string()
        };
        for i in 0..48 {
            let t = now - 3600 * (i + 1);
            snaps.push((t, format!("autosnap_{}_hourly", ts(t))));
        }
        for i in 0..30 {
            let t = now - 86_400 * (i + 1) - 60;
            snaps.push((t, format!("autosnap_{}_daily", ts(t))));
        }
        for i in 0..6 {
            let t = now - 31 * 86_400 * (i + 1);
            snaps.push((t, format!("autosnap_{}_monthly", ts(t))));
        }
        for i in 0..10 {
            let t = now - 900 * (i + 1);
            snaps.push((t, format!("autosnap_{}_frequently", ts(t))));
        }
        for i in 0..(PER_DATASET - 94) {
            snaps.push((now - 500_000 - i as i64, format!("manual-{i}")));
        }
        snaps.sort();
        for (i, (t, n)) in snaps.iter().enumerate() {
            let mark = if i == 50 { "1700000000" } else { "-" };
            obj(&mut s, &format!("{ds}@{n}"), "snapshot", *t, mark);
        }
    }
    (s, list)
}

fn main() {
    let now = 1_700_000_000;
    let (text, list) = observation(now);
    let props = vec!["zfleet:base:vault".to_string()];
    let input = PlanInput {
        host: "bench".into(),
        entries: vec![ExpandedPolicy {
            dataset: DatasetName::parse("tank/data").unwrap(),
            source: "bench".into(),
            // Counts below what exists, so every dataset has destroys to plan.
            policy: Policy {
                frequently: 4,
                hourly: 24,
                daily: 7,
                monthly: 3,
                ..Policy::default()
            },
            recursive: Recursive::Yes,
            process_children_only: true,
        }],
        wants: Vec::new(),
        servers: vec!["vault".into()],
    };
    let tz = jiff::tz::TimeZone::get("Europe/Vienna").unwrap();
    let mut best = [u64::MAX; 3];
    let mut best_list = u64::MAX;
    let mut actions = 0;
    let rounds = 7;
    let wall = Instant::now();
    for _ in 0..rounds {
        let c0 = cpu_ns();
        let listing = Listing::from_get(black_box(&text), &props).unwrap();
        let c1 = cpu_ns();
        let index = Index::new(&listing);
        let c2 = cpu_ns();
        let p = plan(
            &input,
            &index,
            now,
            &tz,
            Steps {
                take: true,
                prune: true,
            },
        );
        let c3 = cpu_ns();
        actions = p.actions.len() + p.kept.len();
        black_box(&p);
        for (b, v) in best.iter_mut().zip([c1 - c0, c2 - c1, c3 - c2]) {
            *b = (*b).min(v);
        }
    }
    let wall_ms = wall.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    for _ in 0..rounds {
        let c0 = cpu_ns();
        let listing = Listing::from_list(black_box(&list), &props).unwrap();
        best_list = best_list.min(cpu_ns() - c0);
        assert_eq!(listing.objects.len(), DATASETS * (PER_DATASET + 1) + 1);
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    println!(
        "planning {} snapshots in {DATASETS} datasets ({actions} decisions), best of {rounds}:",
        DATASETS * PER_DATASET
    );
    println!("  parse zfs get output  {:8.1} ms CPU", ms(best[0]));
    println!("  index                 {:8.1} ms CPU", ms(best[1]));
    println!("  plan take + prune     {:8.1} ms CPU", ms(best[2]));
    println!(
        "  total                 {:8.1} ms CPU ({:.1} ms wall per round)",
        ms(best.iter().sum()),
        wall_ms
    );
    println!(
        "  budget: well under 1 s; ratio {:.0}× under",
        1000.0 / ms(best.iter().sum())
    );
    println!(
        "  (the same objects as OpenZFS's `zfs list -p` output parse in {:.1} ms CPU)",
        ms(best_list)
    );
}
