//! A lab leaves nothing behind: after teardown, after a panic, and after its
//! owner is killed with SIGKILL. Needs root; fails (does not skip) without it.
//!
//! The tests here compare machine-wide inventories (network namespaces, the
//! machine's interfaces), so they take turns.

// A test crate: its helpers fail the test loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use zfleet_lab::sim::{HostSpec, Lab, LabSpec};

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const GONE_WITHIN: Duration = Duration::from_secs(5);

/// The namespaces of every host and of the switch.
fn lab_namespaces(lab: &Lab) -> BTreeSet<String> {
    let mut ns = common::namespaces_of(lab.switch_pid());
    for h in lab.hosts() {
        ns.extend(common::namespaces_of(h.pid()));
    }
    ns
}

/// Checks that the inventory sees a running lab, so "nothing left" means something.
fn assert_lab_visible(before: &common::Before, dir: &std::path::Path, ns: &BTreeSet<String>) {
    let r = common::residue(before, dir, ns);
    assert!(!r.processes.is_empty(), "no lab process found: {r:#?}");
    assert!(!r.in_namespaces.is_empty(), "{r:#?}");
    assert!(
        r.mounts.iter().any(|m| m.contains("fuse.zfs")),
        "no zfs-fuse mount found: {r:#?}"
    );
    assert!(!r.new_net_namespaces.is_empty(), "{r:#?}");
    assert!(r.processes.iter().any(|p| p.contains("zfs-fuse")), "{r:#?}");
    assert!(r.processes.iter().any(|p| p.contains("sshd")), "{r:#?}");
}

#[test]
fn teardown_leaves_nothing_behind() {
    common::require_lab();
    let _turn = turn();
    let before = common::before();
    let lab = Lab::start(&LabSpec::seed()).unwrap();
    let dir = lab.dir().to_owned();
    let ns = lab_namespaces(&lab);
    assert_lab_visible(&before, &dir, &ns);
    // Something started by a test inside a host goes too.
    lab.host("client1")
        .unwrap()
        .sh("setsid sleep 600 </dev/null >/dev/null 2>&1 &")
        .unwrap();

    let t = Instant::now();
    lab.teardown().unwrap();
    eprintln!(
        "teardown of the seed lab took {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // teardown waits for every process itself: nothing may be left right away.
    common::assert_nothing_left(&before, &dir, &ns, Duration::ZERO);
}

#[test]
fn a_panicking_test_still_tears_its_lab_down() {
    common::require_lab();
    let _turn = turn();
    let before = common::before();
    let seen = Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::start(&LabSpec::new("panic").host(HostSpec::seed_client("h"))).unwrap();
        *seen.lock().unwrap() = Some((lab.dir().to_owned(), lab_namespaces(&lab)));
        panic!("deliberate panic inside a lab (expected in this test's output)");
    });
    assert!(result.is_err());
    let (dir, ns) = seen.into_inner().unwrap().expect("the lab started");
    common::assert_nothing_left(&before, &dir, &ns, Duration::ZERO);
}

#[test]
fn a_lab_dies_with_its_thread_even_when_never_dropped() {
    common::require_lab();
    let _turn = turn();
    let before = common::before();
    // PR_SET_PDEATHSIG fires when the spawning thread exits: no Drop needed.
    let (dir, ns) = std::thread::spawn(|| {
        let lab = Lab::start(&LabSpec::new("forgotten").host(HostSpec::seed_client("h"))).unwrap();
        let seen = (lab.dir().to_owned(), lab_namespaces(&lab));
        std::mem::forget(lab);
        seen
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let r = common::residue(&before, &dir, &ns);
        let gone = r.processes.is_empty()
            && r.in_namespaces.is_empty()
            && r.mounts.is_empty()
            && r.new_net_namespaces.is_empty();
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after the thread exited: {r:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its owner (this process) lives on, so no later lab would remove it.
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What `zfleet-lab sim up` printed before `ready`.
struct Printed {
    dir: PathBuf,
    pids: Vec<u32>,
}

fn read_until_ready(out: impl std::io::Read) -> Printed {
    let mut dir = None;
    let mut pids = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some(d) = line.strip_prefix("dir ") {
            dir = Some(PathBuf::from(d));
        }
        if let Some(pid) = line.split_whitespace().find_map(|w| w.strip_prefix("pid=")) {
            pids.push(pid.parse().unwrap());
        }
        if line.starts_with("ready") {
            return Printed {
                dir: dir.expect("`dir` line before `ready`"),
                pids,
            };
        }
    }
    panic!("zfleet-lab sim up ended before `ready`");
}

#[test]
fn killing_the_owner_with_sigkill_kills_the_lab() {
    common::require_lab();
    let _turn = turn();
    let before = common::before();
    // A lab root of its own: any lab started elsewhere meanwhile (another test
    // run on the machine) removes dead owners' directories under its root,
    // which would make the directory check below fail for the wrong reason.
    let root = std::path::PathBuf::from(format!("/tmp/zfleet-lab-killed-{}", std::process::id()));
    let mut up = Command::new(env!("CARGO_BIN_EXE_zfleet-lab"))
        .args(["sim", "up", "--name", "killed"])
        .env("ZFLEET_LAB_ROOT", &root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = up.stdout.take().unwrap();
    let up = Arc::new(Mutex::new(up));
    // Bounded: if `up` never gets ready, kill it so the read below ends.
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let watchdog = {
        let up = up.clone();
        std::thread::spawn(move || {
            if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
                let _ = up.lock().unwrap().kill();
            }
        })
    };
    let printed = read_until_ready(stdout);
    ready_tx.send(()).unwrap();
    watchdog.join().unwrap();
    assert_eq!(printed.pids.len(), 4, "switch and three hosts");
    let ns: BTreeSet<String> = printed
        .pids
        .iter()
        .flat_map(|&p| common::namespaces_of(p))
        .collect();
    assert_lab_visible(&before, &printed.dir, &ns);

    let mut up = up.lock().unwrap();
    let killed = Instant::now();
    up.kill().unwrap(); // SIGKILL: no handler, no Drop, no teardown
    up.wait().unwrap();

    // The kernel does the killing; only the directory stays, for the next lab.
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let r = common::residue(&before, &printed.dir, &ns);
        assert!(
            r.dir_exists,
            "the owner could not have removed its directory"
        );
        let gone = r.processes.is_empty()
            && r.in_namespaces.is_empty()
            && r.mounts.is_empty()
            && r.new_net_namespaces.is_empty()
            && r.new_root_links.is_empty();
        if gone {
            eprintln!("all gone {:?} after SIGKILL to the owner", killed.elapsed());
            break;
        }
        assert!(Instant::now() < deadline, "left after SIGKILL: {r:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The next lab removes the dead one's directory.
    let next = Lab::start(&LabSpec::new("next").root(&root).host(HostSpec::new("h"))).unwrap();
    assert!(
        !printed.dir.exists(),
        "stale {} not removed",
        printed.dir.display()
    );
    next.teardown().unwrap();
    let _ = std::fs::remove_dir(&root);
}
