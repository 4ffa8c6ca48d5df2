//! The guest test group: real OpenZFS 2.x in a qemu guest.
//!
//! All tests share one guest per test binary (booted on first use, torn down
//! when the binary exits) and take turns through its scenario lock. When the
//! machine cannot run the guest each test prints `SKIPPED: …` and passes;
//! `ZFLEET_LAB_GUEST=require` turns that into a failure, `=skip` forces it.

// Helpers outside #[test] functions are test code too: a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zfleet_lab::guest::{self, guest_or_skip, Availability, ScenarioOptions};

const PASSPHRASE: &str = "correct-horse-battery";

fn note(line: &str) {
    // Past libtest's capture, so it shows for passing tests too.
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn guest_availability_is_reported() {
    match guest::availability() {
        Availability::Ready(image) => note(&format!(
            "guest: image {} (zfs {}, kernel {})",
            image.dir().display(),
            image.zfs_package_version(),
            image.manifest("kernel").unwrap_or("?")
        )),
        Availability::NeedsBuild(recipe) => note(&format!(
            "guest: image {} not built yet; the first guest test builds it",
            recipe.dir().display()
        )),
        Availability::No(reason) => note(&format!("SKIPPED: all guest tests: {reason}")),
    }
}

#[test]
fn zfs_2x_is_present() {
    let Some(guest) = guest_or_skip("zfs_2x_is_present") else {
        return;
    };
    note(&format!(
        "guest: booted in {:.1}s",
        guest.boot_time().as_secs_f64()
    ));
    let version = guest.ssh("zfs version").unwrap();
    assert!(version.starts_with("zfs-2."), "{version}");
    assert!(
        version.contains("zfs-kmod-2."),
        "kernel module not loaded: {version}"
    );
}

fn sha256(scenario: &guest::Scenario<'_>, path: &str) -> String {
    let out = scenario.run(&format!("sha256sum {path}")).unwrap();
    out.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn encrypted_raw_send_resumes_after_interruption() {
    let Some(guest) = guest_or_skip("encrypted_raw_send_resumes_after_interruption") else {
        return;
    };
    let s = guest.scenario().unwrap();
    s.run_with_stdin(
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt \
         -o compression=off zroot/secret",
        PASSPHRASE.as_bytes(),
    )
    .unwrap();
    s.run("head -c 4M /dev/urandom > /zroot/secret/blob && zfs snapshot zroot/secret@s1")
        .unwrap();
    let want = sha256(&s, "/zroot/secret/blob");

    // The raw stream crosses ssh to the host, as zfleet's pump will carry
    // it, and is cut off half-way: the pipe dies mid-stream.
    let stream = guest
        .command("zfs send -w zroot/secret@s1")
        .output()
        .unwrap();
    assert!(stream.status.success(), "{stream:?}");
    assert!(
        stream.stdout.len() > 4_000_000,
        "stream only {} bytes",
        stream.stdout.len()
    );
    let cut = &stream.stdout[..stream.stdout.len() / 2];
    let partial = s
        .guest()
        .command("zfs recv -s -u zstorage/secret")
        .stdin(cut)
        .output()
        .unwrap();
    assert!(!partial.status.success());
    let stderr = String::from_utf8_lossy(&partial.stderr);
    assert!(
        stderr.contains("Partially received snapshot is saved"),
        "{stderr}"
    );

    let token = s
        .run("zfs get -H -p -o value receive_resume_token zstorage/secret")
        .unwrap();
    let token = token.trim();
    assert!(
        token.len() > 20 && token != "-",
        "no resume token: {token:?}"
    );
    let estimate = s.run(&format!("zfs send -nvP -t {token}")).unwrap();
    assert!(estimate.contains("toname = zroot/secret@s1"), "{estimate}");

    s.run(&format!(
        "zfs send -t {token} | zfs recv -s -u zstorage/secret"
    ))
    .unwrap();
    // The server held only ciphertext the whole time.
    assert_eq!(
        s.run("zfs get -H -o value keystatus zstorage/secret")
            .unwrap()
            .trim(),
        "unavailable"
    );
    assert_eq!(
        s.run("zfs get -H -o value receive_resume_token zstorage/secret")
            .unwrap()
            .trim(),
        "-"
    );

    s.run_with_stdin("zfs load-key zstorage/secret", PASSPHRASE.as_bytes())
        .unwrap();
    // 2.3 mounts on `set mountpoint` once the key is loaded; 2.1 does not.
    s.run(
        "zfs set mountpoint=/srv/secret zstorage/secret \
         && { [ \"$(zfs get -H -o value mounted zstorage/secret)\" = yes ] \
              || zfs mount zstorage/secret; }",
    )
    .unwrap();
    assert_eq!(sha256(&s, "/srv/secret/blob"), want);
}

#[test]
fn holds_block_destroy() {
    let Some(guest) = guest_or_skip("holds_block_destroy") else {
        return;
    };
    let s = guest.scenario().unwrap();
    s.run(
        "zfs create zroot/data && zfs snapshot zroot/data@base && zfs hold zfleet zroot/data@base",
    )
    .unwrap();
    assert_eq!(
        s.run("zfs holds -H zroot/data@base")
            .unwrap()
            .split('\t')
            .nth(1),
        Some("zfleet")
    );
    let refused = s.output("zfs destroy zroot/data@base").unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    // 2.3 names the hold; 2.1 only says "dataset is busy".
    assert!(
        stderr.contains("it's being held") || stderr.contains("dataset is busy"),
        "{stderr}"
    );
    assert_eq!(
        s.run("zfs list -H -o name zroot/data@base").unwrap(),
        "zroot/data@base\n"
    );
    s.run("zfs release zfleet zroot/data@base && zfs destroy zroot/data@base")
        .unwrap();
    assert_eq!(
        s.run("zfs list -H -t snapshot -o name -r zroot").unwrap(),
        ""
    );
}

#[test]
fn bookmark_incremental_after_source_snapshot_destroyed() {
    let Some(guest) = guest_or_skip("bookmark_incremental_after_source_snapshot_destroyed") else {
        return;
    };
    let s = guest.scenario().unwrap();
    s.run(
        "zfs create -o compression=off zroot/data && head -c 1M /dev/urandom > /zroot/data/a \
         && zfs snapshot zroot/data@a \
         && zfs send zroot/data@a | zfs recv -u zstorage/data \
         && zfs bookmark zroot/data@a zroot/data#a \
         && zfs destroy zroot/data@a \
         && head -c 1M /dev/urandom > /zroot/data/b && zfs snapshot zroot/data@b",
    )
    .unwrap();
    let mut listed: Vec<String> = s
        .run("zfs list -H -t snapshot,bookmark -o name -r zroot/data")
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(listed, ["zroot/data#a", "zroot/data@b"]);
    s.run("zfs send -i zroot/data#a zroot/data@b | zfs recv -u zstorage/data")
        .unwrap();
    s.run("zfs mount zstorage/data").unwrap();
    assert_eq!(sha256(&s, "/zstorage/data/b"), sha256(&s, "/zroot/data/b"));
    // Both sides agree on the snapshot's identity.
    let guid = |name: &str| {
        s.run(&format!("zfs get -H -p -o value guid {name}"))
            .unwrap()
    };
    assert_eq!(guid("zroot/data@b"), guid("zstorage/data@b"));
}

#[test]
fn delegated_user_may_send_but_not_destroy() {
    let Some(guest) = guest_or_skip("delegated_user_may_send_but_not_destroy") else {
        return;
    };
    let s = guest.scenario().unwrap();
    s.run(
        "zfs create zroot/data && zfs snapshot zroot/data@s \
         && zfs allow -u zbackup send,snapshot,hold zroot/data",
    )
    .unwrap();
    let as_zbackup = |cmd: &str| guest.command(cmd).user("zbackup").output().unwrap();
    let send = as_zbackup("zfs send -nvP zroot/data@s && zfs snapshot zroot/data@by-zbackup");
    assert!(send.status.success(), "{send:?}");
    let destroy = as_zbackup("zfs destroy zroot/data@s");
    assert!(!destroy.status.success());
    assert!(String::from_utf8_lossy(&destroy.stderr).contains("permission denied"));
}

#[test]
fn hosts_in_namespaces_replicate_over_ssh() {
    let Some(guest) = guest_or_skip("hosts_in_namespaces_replicate_over_ssh") else {
        return;
    };
    let s = guest
        .scenario_with(&ScenarioOptions {
            hosts_in_netns: true,
        })
        .unwrap();
    assert_eq!(s.client_addr(), Some("192.168.77.1"));
    s.on_client("zfs create zroot/data && echo hello > /zroot/data/f && zfs snapshot zroot/data@s")
        .unwrap();
    // The server pulls, as a backup server in a fleet would.
    s.on_server(
        "ssh -o BatchMode=yes root@zfleet-client zfs send zroot/data@s | zfs recv -u zstorage/data",
    )
    .unwrap();
    assert_eq!(
        s.run("zfs list -H -o name -t snapshot zstorage/data")
            .unwrap(),
        "zstorage/data@s\n"
    );
    // Separate networks: the client namespace has no route to the guest's
    // own uplink address.
    let out = s.output_on("zfleet-client", "ip -brief addr").unwrap();
    let addrs = String::from_utf8_lossy(&out.stdout);
    assert!(
        addrs.contains("192.168.77.1") && !addrs.contains("10.0.2.15"),
        "{addrs}"
    );
}

#[test]
fn ssh_config_reaches_the_guest_with_the_pinned_key() {
    let Some(guest) = guest_or_skip("ssh_config_reaches_the_guest_with_the_pinned_key") else {
        return;
    };
    let out = Command::new("ssh")
        .arg("-F")
        .arg(guest.ssh_config_path())
        .args([guest::SSH_CONFIG_HOST, "hostname"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "zfleet-guest\n");
    assert!(guest
        .known_hosts_line()
        .starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", guest.ssh_port())));
}

#[test]
fn copy_in_round_trips_a_binary() {
    let Some(guest) = guest_or_skip("copy_in_round_trips_a_binary") else {
        return;
    };
    let me = std::env::current_exe().unwrap();
    guest.copy_in(&me, "/usr/local/bin/copied", true).unwrap();
    let back = guest.read_file("/usr/local/bin/copied").unwrap();
    assert_eq!(back, std::fs::read(&me).unwrap());
    assert_eq!(
        guest
            .ssh("stat -c %a /usr/local/bin/copied")
            .unwrap()
            .trim(),
        "755"
    );
    guest.ssh("rm /usr/local/bin/copied").unwrap();
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

/// `zfleet-lab guest up` killed with SIGKILL, so no destructor runs: the
/// kernel must still kill its qemu and the reaper remove its run directory.
#[test]
fn killed_lab_process_leaves_no_qemu_and_no_run_dir() {
    // Only checks availability; boots its own (never-waited-for) qemu.
    if !matches!(guest::availability(), Availability::Ready(_))
        && guest_or_skip("killed_lab_process_leaves_no_qemu_and_no_run_dir").is_none()
    {
        return;
    }
    let mut lab = Command::new(env!("CARGO_BIN_EXE_zfleet-lab"))
        .args(["guest", "up", "--no-wait", "--disks", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(lab.stdout.take().unwrap());
    let (mut pid, mut dir) = (None, None);
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("qemu_pid ") {
            pid = p.parse::<u32>().ok();
        }
        if let Some(d) = line.strip_prefix("run_dir ") {
            dir = Some(d.to_owned());
        }
        if line.starts_with("press Enter") {
            break;
        }
    }
    let (pid, dir) = (pid.unwrap(), dir.unwrap());
    assert!(alive(pid), "qemu {pid} not running");
    assert!(Path::new(&dir).exists());
    lab.kill().unwrap();
    lab.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (alive(pid) || Path::new(&dir).exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "qemu {pid} survived its killed parent");
    assert!(!Path::new(&dir).exists(), "{dir} survived its killed owner");
}

#[test]
fn command_timeout_kills_a_hanging_command() {
    let Some(guest) = guest_or_skip("command_timeout_kills_a_hanging_command") else {
        return;
    };
    let started = Instant::now();
    let err = guest
        .command("sleep 60")
        .timeout(Duration::from_secs(2))
        .output()
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err:#}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The guest still answers afterwards.
    assert_eq!(guest.ssh("echo ok").unwrap(), "ok\n");
}
