//! zfleet on real OpenZFS 2.x (the qemu guest): encrypted datasets replicated
//! raw, resume from a receive token, bookmarks as bases, holds that move only
//! after a confirmed step, and `zfs allow` delegation under `zfleet serve`.
//! The guest's client and server are network namespaces with their own sshd.

use std::time::Duration;

use zfleet_lab::guest::{guest_or_skip, Guest, Scenario};

use crate::support::{self, backup, install, snapshot_names, T};

const PASSPHRASE: &str = "correct-horse-battery";

fn scenario<'g>(guest: &'g Guest, fleet_extra: &str, datasets: &str) -> Scenario<'g> {
    support::scenario(guest, fleet_extra, datasets, "")
}

fn holds(s: &Scenario<'_>, snap: &str) -> String {
    s.run(&format!("zfs holds -H {snap} | cut -f2"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn encrypted_raw_backups_with_moving_holds_and_a_bookmark_base() {
    let Some(guest) = guest_or_skip("encrypted_raw_backups_with_moving_holds_and_a_bookmark_base")
    else {
        return;
    };
    let s = scenario(guest, "", "\"zroot/secret\"");
    s.run_with_stdin(
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt zroot/secret",
        PASSPHRASE.as_bytes(),
    )
    .unwrap();
    s.run("head -c 3M /dev/urandom > /zroot/secret/blob && zfs snapshot zroot/secret@s1")
        .unwrap();
    let r = backup(&s, "");
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    let target = format!("{T}/secret");
    // Raw: the server stores ciphertext and never had the key.
    assert_eq!(
        s.run(&format!(
            "zfs get -H -o value keystatus,encryption {target}"
        ))
        .unwrap(),
        "unavailable\naes-256-gcm\n"
    );
    assert_eq!(holds(&s, "zroot/secret@s1"), "zfleet:base:zfleet-server");
    assert_eq!(
        holds(&s, &format!("{target}@s1")),
        "zfleet:base:zfleet-server"
    );
    assert!(s
        .run("zfs list -H -o name -t bookmark zroot/secret")
        .unwrap()
        .contains("zroot/secret#zfleet_zfleet-server:s1"));

    // Incremental; the holds and the bookmark move to the new base.
    s.run("echo more >> /zroot/secret/blob && zfs snapshot zroot/secret@s2")
        .unwrap();
    let r = backup(&s, "");
    assert_eq!(r["clients"][0]["jobs"][0]["snapshots"], 1);
    assert_eq!(holds(&s, "zroot/secret@s1"), "");
    assert_eq!(holds(&s, "zroot/secret@s2"), "zfleet:base:zfleet-server");
    assert_eq!(
        holds(&s, &format!("{target}@s2")),
        "zfleet:base:zfleet-server"
    );
    assert_eq!(
        s.run("zfs list -H -o name -t bookmark zroot/secret")
            .unwrap()
            .trim(),
        "zroot/secret#zfleet_zfleet-server:s2"
    );

    // Someone destroys the common snapshot on the client (releasing zfleet's
    // hold first): the next run continues from the bookmark.
    s.run("zfs release zfleet:base:zfleet-server zroot/secret@s2 && zfs destroy zroot/secret@s2")
        .unwrap();
    s.run("echo again >> /zroot/secret/blob && zfs snapshot zroot/secret@s3")
        .unwrap();
    let r = backup(&s, "");
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "sent", "{r}");
    assert_eq!(
        job["steps"][0], "incremental #zfleet_zfleet-server:s2 → @s3",
        "{r}"
    );
    assert_eq!(snapshot_names(&s, &target), "s1\ns2\ns3\n");

    // The data is intact: load the key on the server (for this check only).
    s.run_with_stdin(&format!("zfs load-key {target}"), PASSPHRASE.as_bytes())
        .unwrap();
    s.run(&format!("zfs mount {target}")).unwrap();
    let want = s.run("sha256sum < /zroot/secret/blob").unwrap();
    let got = s
        .run(&format!(
            "sha256sum < \"$(zfs get -H -o value mountpoint {target})/blob\""
        ))
        .unwrap();
    assert_eq!(got, want);
}

#[test]
fn an_interrupted_backup_resumes_from_the_receive_token() {
    let Some(guest) = guest_or_skip("an_interrupted_backup_resumes_from_the_receive_token") else {
        return;
    };
    let s = scenario(guest, "", "\"zroot/big\"");
    s.run("zfs create -o compression=off zroot/big && head -c 24M /dev/urandom > /zroot/big/blob && zfs snapshot zroot/big@s1").unwrap();
    // A slow backup in the background, its sender killed part-way.
    interrupt_backup(&s);
    let target = format!("{T}/big");
    let token = s
        .run(&format!(
            "zfs get -H -p -o value receive_resume_token {target} 2>/dev/null || true"
        ))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        token.len() > 20,
        "no resume token after the kill: {token:?}; {}",
        s.run("cat /tmp/zfleet-slow.out").unwrap()
    );
    let r = backup(&s, "");
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["steps"][0], "resume the interrupted receive", "{r}");
    assert!(
        job["bytes"].as_u64().unwrap() < 24 << 20,
        "resumed, not restarted: {job}"
    );
    assert_eq!(
        s.run(&format!(
            "zfs get -H -p -o value receive_resume_token {target}"
        ))
        .unwrap()
        .trim(),
        "-"
    );
    let want = s.run("sha256sum < /zroot/big/blob").unwrap();
    // Setting the mountpoint mounts it (2.3), or not (2.1).
    s.run(&format!(
        "zfs set mountpoint=/mnt/big {target}; zfs mount {target} 2>/dev/null; true"
    ))
    .unwrap();
    assert_eq!(s.run("sha256sum < /mnt/big/blob").unwrap(), want);

    // A token whose snapshot the source no longer has is discarded, and the
    // run sends from the last common snapshot instead.
    s.run("head -c 16M /dev/urandom > /zroot/big/second && zfs snapshot zroot/big@s2")
        .unwrap();
    interrupt_backup(&s);
    let stale = s
        .run(&format!(
            "zfs get -H -p -o value receive_resume_token {target}"
        ))
        .unwrap();
    assert!(
        stale.trim().len() > 20,
        "no token for the second interruption: {stale}"
    );
    s.run("zfs destroy zroot/big@s2 && echo three > /zroot/big/third && zfs snapshot zroot/big@s3")
        .unwrap();
    let r = backup(&s, "");
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "sent", "{r}");
    assert_eq!(
        job["steps"][0], "incremental @s1 → @s3 with every snapshot in between",
        "{r}"
    );
    assert_eq!(
        s.run(&format!(
            "zfs get -H -p -o value receive_resume_token {target}"
        ))
        .unwrap()
        .trim(),
        "-"
    );
    assert_eq!(snapshot_names(&s, &target), "s1\ns3\n");
}

#[test]
fn zfs_allow_and_serve_let_the_backup_account_do_its_job_and_nothing_else() {
    let Some(guest) =
        guest_or_skip("zfs_allow_and_serve_let_the_backup_account_do_its_job_and_nothing_else")
    else {
        return;
    };
    // The server's backup key, and the fleet naming it.
    install(guest);
    guest.ssh("rm -f /root/backup_key /root/backup_key.pub && ssh-keygen -q -t ed25519 -N '' -C zfleet@zfleet-server -f /root/backup_key").unwrap();
    let public = guest.ssh("cat /root/backup_key.pub").unwrap();
    let s = scenario(
        guest,
        "[fleet]\nbackup_user = \"zfleet\"\nbackup_identity = \"/root/backup_key\"\n",
        "\"zroot/data\"",
    );
    s.run_with_stdin(
        "cat >> /etc/zfleet/fleet.toml",
        format!("public_key = \"{}\"\n", public.trim()).as_bytes(),
    )
    .unwrap();
    s.run("zfs create zroot/data && echo hello > /zroot/data/f && zfs snapshot zroot/data@s1")
        .unwrap();
    // A child the server does not back up: the key must not even list it.
    s.run("zfs create zroot/data/private && zfs snapshot zroot/data/private@secret")
        .unwrap();
    let granted = s.on_server("zfleet --host zfleet-server grant zfleet-client --apply --zfleet-path /usr/local/bin/zfleet").unwrap();
    assert!(
        granted.contains("zfs allow -u zfleet send,hold,release,userprop,bookmark zroot/data"),
        "{granted}"
    );
    // Real delegation, not sudo.
    let allow = s.run("zfs allow zroot/data").unwrap();
    assert!(
        allow.contains("user zfleet") && allow.contains("send"),
        "{allow}"
    );
    assert!(!s.run("ls /etc/sudoers.d").unwrap().contains("zfleet"));

    // Backups run as the backup account through serve, with holds and bookmarks.
    let r = backup(&s, "");
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    s.run("echo more >> /zroot/data/f && zfs snapshot zroot/data@s2")
        .unwrap();
    let r = backup(&s, "");
    assert_eq!(r["clients"][0]["jobs"][0]["snapshots"], 1, "{r}");
    assert_eq!(holds(&s, "zroot/data@s2"), "zfleet:base:zfleet-server");
    assert!(s
        .run("zfs list -H -o name -t bookmark zroot/data")
        .unwrap()
        .contains("#zfleet_zfleet-server:s2"));
    let log = s.run("cat /var/log/zfleet/serve.log").unwrap();
    assert!(log.contains("allowed request=\"zfs send"), "{log}");

    // Resume works through serve too: the token is checked to name one of
    // this host's datasets before the send runs.
    s.run("head -c 16M /dev/urandom > /zroot/data/big && zfs snapshot zroot/data@s3")
        .unwrap();
    interrupt_backup(&s);
    // A real token, as serve decodes it: the snapshot and its guid.
    let token = s
        .run(&format!(
            "zfs get -H -p -o value receive_resume_token {T}/data"
        ))
        .unwrap();
    let t =
        zfleet_core::serve::token::decode(token.trim()).unwrap_or_else(|e| panic!("{e}: {token}"));
    assert_eq!(t.toname, "zroot/data@s3");
    assert_eq!(
        t.toguid.to_string(),
        s.run("zfs get -H -p -o value guid zroot/data@s3")
            .unwrap()
            .trim()
    );
    let r = backup(&s, "");
    assert_eq!(
        r["clients"][0]["jobs"][0]["steps"][0], "resume the interrupted receive",
        "{r}"
    );
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    assert!(s
        .run("cat /var/log/zfleet/serve.log")
        .unwrap()
        .contains("allowed request=\"zfs send -t "));

    // With the backup key: refused by serve…
    let key_ssh = "ssh -o BatchMode=yes -i /root/backup_key zfleet@zfleet-client";

    // The listing the engine made (OpenZFS: `zfs list -d 1`), asked again with
    // the key, shows zroot/data, its snapshots and bookmarks, not the child.
    let log = s.run("cat /var/log/zfleet/serve.log").unwrap();
    let listing = log
        .lines()
        .filter_map(|l| {
            l.split_once("allowed request=\"")
                .map(|(_, r)| r.trim_end_matches('"').to_string())
        })
        .find(|r| r.starts_with("zfs list -H -p -d 1 "))
        .unwrap_or_else(|| panic!("no listing in the serve log:\n{log}"));
    let out = s
        .output_on("zfleet-server", &format!("{key_ssh} '{listing}'"))
        .unwrap();
    assert!(out.status.success(), "{listing}: {out:?}");
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    assert!(names.iter().any(|n| n == "zroot/data@s1"), "{names:?}");
    assert!(
        names.iter().all(|n| n == "zroot/data"
            || n.starts_with("zroot/data@")
            || n.starts_with("zroot/data#")),
        "the key listed more than it backs up: {names:?}"
    );
    let recursive = s
        .output_on(
            "zfleet-server",
            &format!("{key_ssh} '{}'", listing.replace(" -d 1 ", " -r ")),
        )
        .unwrap();
    assert_eq!(recursive.status.code(), Some(126), "{recursive:?}");

    // Holds: the base (s3) and one more at most; a third is refused.
    assert_eq!(holds(&s, "zroot/data@s3"), "zfleet:base:zfleet-server");
    let hold = |snap: &str| {
        s.output_on(
            "zfleet-server",
            &format!("{key_ssh} 'zfs hold zfleet:base:zfleet-server zroot/data@{snap}'"),
        )
        .unwrap()
    };
    assert!(hold("s1").status.success());
    let third = hold("s2");
    assert_eq!(third.status.code(), Some(126), "{third:?}");
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("would hold 3 snapshots of `zroot/data`"),
        "{third:?}"
    );
    assert_eq!(holds(&s, "zroot/data@s2"), "");
    s.run("zfs release zfleet:base:zfleet-server zroot/data@s1")
        .unwrap();

    for req in [
        "zfs destroy zroot/data@s1",
        "zfs rollback -r zroot/data@s1",
        "zfs receive zroot/data/x",
    ] {
        let out = s
            .output_on("zfleet-server", &format!("{key_ssh} '{req}'"))
            .unwrap();
        assert_eq!(out.status.code(), Some(126), "{req}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("zfleet serve: refused"),
            "{req}"
        );
    }
    // …and by ZFS itself, for the account the key belongs to.
    for (stream, req) in [
        ("", "zfs destroy zroot/data@s1"),
        ("", "zfs rollback -r zroot/data@s1"),
        ("zfs send zroot/data@s1 | ", "zfs receive zroot/data/x"),
    ] {
        let out = s
            .output(&format!("{stream}su -s /bin/sh zfleet -c '{req}'"))
            .unwrap();
        assert!(!out.status.success(), "{req} must fail");
        let err = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        assert!(err.contains("permission denied"), "{req}: {err}");
    }
    assert_eq!(
        s.run("zfs list -H -o name -t snapshot zroot/data").unwrap(),
        "zroot/data@s1\nzroot/data@s2\nzroot/data@s3\n"
    );
}

/// Starts a slow backup and kills its sender part-way; returns when zfleet has exited.
fn interrupt_backup(s: &Scenario<'_>) {
    s.on_server("(zfleet --host zfleet-server backup --rate-limit 2M --buffer 1M > /tmp/zfleet-slow.out 2>&1 &)").unwrap();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(1));
        if s.output("pgrep -f '^zfs send'").unwrap().status.success() {
            // Killed once the receiver has taken 4 MiB, not after a fixed
            // time: on a loaded machine three seconds could pass before the
            // first byte arrived, and a receive that got nothing leaves no
            // resume token.
            for _ in 0..120 {
                let read = s
                    .run("for p in $(pgrep -f '^zfs (receive|recv)'); do awk '/^rchar/ {print $2}' /proc/$p/io; done 2>/dev/null | sort -n | tail -1")
                    .unwrap();
                if read.trim().parse::<u64>().unwrap_or(0) >= 4 << 20 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            s.run("pkill -9 -f '^zfs send' || true").unwrap();
            break;
        }
    }
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(1));
        if !s.output("pgrep -x zfleet").unwrap().status.success() {
            return;
        }
    }
    panic!("zfleet did not exit after its sender was killed");
}
