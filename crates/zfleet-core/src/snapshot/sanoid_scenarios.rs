//! sanoid's own regression tests (`tests/1_one_year`, `tests/2_dst_handling`),
//! replayed through the planner against an in-memory pool. Each run takes what
//! the plan says, with the run's time as creation time. The result is compared
//! the way sanoid's `run.sh` compares it: counts per period, and the SHA-256 of
//! the sorted `zfs list` names with seconds zeroed, which must equal the
//! checksum in sanoid's repository. The same scenarios run against real ZFS in
//! the lab tests.

use jiff::tz::TimeZone;
use sha2::{Digest, Sha256};

use super::*;
use crate::config::{ExpandedPolicy, Period, Policy, Recursive};
use crate::zfs::{DatasetName, Listing};

fn production(pool: &str) -> ExpandedPolicy {
    ExpandedPolicy {
        dataset: DatasetName::parse(pool).unwrap(),
        source: "template production".into(),
        policy: Policy {
            hourly: 36,
            daily: 30,
            monthly: 3,
            yearly: 0,
            autosnap: true,
            autoprune: false,
            ..Policy::default()
        },
        recursive: Recursive::No,
        process_children_only: false,
    }
}

/// Runs `zfleet run` every `step` seconds from `start` to `end` (inclusive).
pub(crate) fn replay(
    entries: Vec<ExpandedPolicy>,
    pool: &str,
    start: i64,
    end: i64,
    step: i64,
    tz: &TimeZone,
) -> Index {
    let listing = Listing::from_list(
        &format!("{pool}\tfilesystem\t1\t1\t{start}\t1\t1\t-\n"),
        &[],
    )
    .unwrap();
    let mut index = Index::new(&listing);
    let input = PlanInput {
        host: "test".into(),
        entries,
        wants: Vec::new(),
        servers: Vec::new(),
    };
    let steps = Steps {
        take: true,
        prune: true,
    };
    let mut t = start;
    while t <= end {
        let p = plan(&input, &index, t, tz, steps);
        for a in &p.actions {
            match a {
                Action::Snapshot(take) => plan::apply_takes(&mut index, &[take], t),
                Action::Destroy(d) => index.remove(&d.dataset, &d.name),
            }
        }
        t += step;
    }
    index
}

/// `zfs list -t snapshot -o name -Hr POOL | sort`, seconds zeroed, as sanoid's
/// `saveSnapshotList` writes it.
fn snapshot_list(index: &Index, pool: &str) -> Vec<String> {
    let ds = DatasetName::parse(pool).unwrap();
    let mut names: Vec<String> = index
        .snapshots(&ds)
        .iter()
        .map(|s| {
            let mut n = format!("{pool}@{}", s.name);
            // autosnap_YYYY-MM-DD_HH:MM:SS: the seconds are bytes 26..28 of the name.
            let at = pool.len() + 1 + "autosnap_YYYY-MM-DD_HH:MM:".len();
            n.replace_range(at..at + 2, "00");
            n
        })
        .collect();
    names.sort();
    names
}

fn verify(index: &Index, pool: &str) -> (usize, usize, usize, String) {
    let list = snapshot_list(index, pool);
    let count = |p: &str| {
        list.iter()
            .filter(|n| n.contains("autosnap_") && n.ends_with(&format!("_{p}")))
            .count()
    };
    let mut text = list.join("\n");
    text.push('\n');
    let sum = Sha256::digest(text.as_bytes());
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    (count("hourly"), count("daily"), count("monthly"), hex)
}

/// sanoid `tests/1_one_year`: hourly runs through 2017 in Europe/Vienna.
#[test]
fn sanoid_one_year() {
    let tz = TimeZone::get("Europe/Vienna").unwrap();
    let pool = "sanoid-test-1";
    let index = replay(
        vec![production(pool)],
        pool,
        1_483_225_200,
        1_514_761_199,
        3600,
        &tz,
    );
    assert_eq!(
        verify(&index, pool),
        (
            8760,
            365,
            12,
            "92f2c7afba94b59e8a6f6681705f0aa3f1c61e4aededaa38281e0b7653856935".to_string()
        )
    );
}

/// sanoid `tests/2_dst_handling`: every 15 minutes across the end of DST 2017.
#[test]
fn sanoid_dst_handling() {
    let tz = TimeZone::get("Europe/Vienna").unwrap();
    let pool = "sanoid-test-2";
    let index = replay(
        vec![production(pool)],
        pool,
        1_509_141_600,
        1_509_400_800,
        900,
        &tz,
    );
    let names = snapshot_list(&index, pool);
    assert!(
        names.contains(&"sanoid-test-2@autosnap_2017-10-29_02:00:00dst_hourly".to_string()),
        "{names:#?}"
    );
    assert_eq!(
        verify(&index, pool),
        (
            73,
            3,
            1,
            "846372ef238f2182b382c77a73ecddf99aa82f28cc9995bcc95592cc78305463".to_string()
        )
    );
    let _ = Period::Hourly;
}

/// sanoid --cron prunes from what it listed before taking, so hourly runs
/// with `hourly = 3` settle at four hourlies after each run (three kept plus
/// the one just taken), as sanoid's do.
#[test]
fn steady_state_with_autoprune_is_sanoids() {
    let tz = TimeZone::get("Europe/Vienna").unwrap();
    let mut e = production("tank");
    e.policy = Policy {
        hourly: 3,
        daily: 0,
        monthly: 0,
        yearly: 0,
        ..Policy::default()
    };
    let index = replay(
        vec![e],
        "tank",
        1_700_000_000,
        1_700_000_000 + 48 * 3600,
        3600,
        &tz,
    );
    let ds = DatasetName::parse("tank").unwrap();
    assert_eq!(index.snapshots(&ds).len(), 4);
}
