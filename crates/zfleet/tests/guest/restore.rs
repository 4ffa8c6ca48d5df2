//! Restores on real OpenZFS 2.x (the qemu guest): an encrypted dataset comes
//! back from its raw backup still encrypted with its own key, locked until
//! the key is loaded, and the next backup is incremental.

use zfleet_lab::guest::{guest_or_skip, shell_quote, Guest, Scenario};

use crate::support::{self, backup, json, snapshot_names, T};

const PASSPHRASE: &str = "correct-horse-battery";
const NEW_PASSPHRASE: &str = "the-reinstall-has-another";

fn scenario<'g>(guest: &'g Guest, datasets: &str) -> Scenario<'g> {
    support::scenario(
        guest,
        "",
        datasets,
        "[hosts.zfleet-client.unlock]\nmethod = \"zfs\"\nsecret = \"file:/root/zfleet-client.key\"\nencryption_roots = [\"zroot/secret\"]\n",
    )
}

/// A command on the client as zfleet's ssh sessions run it: in the mount
/// namespace of the client's sshd. (The guest's hosts share one kernel, and
/// `ip netns exec` gives every command a mount namespace of its own, so a
/// mount made by a restore is only seen from there.)
fn client(s: &Scenario<'_>, command: &str) -> String {
    client_with_stdin(s, command, b"")
}

fn client_with_stdin(s: &Scenario<'_>, command: &str, stdin: &[u8]) -> String {
    s.run_with_stdin(
        &format!(
            "ip netns exec zfleet-server ssh -o BatchMode=yes root@zfleet-client {}",
            shell_quote(command)
        ),
        stdin,
    )
    .unwrap()
}

fn manifest(s: &Scenario<'_>, dir: &str) -> String {
    client(
        s,
        &format!(
            "cd {dir} && find . -printf '%y\\t%p\\t%m %U %G %T@ %s %n %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
        ),
    )
}

#[test]
fn an_encrypted_dataset_comes_back_raw_with_its_own_key_and_backups_continue() {
    let Some(guest) =
        guest_or_skip("an_encrypted_dataset_comes_back_raw_with_its_own_key_and_backups_continue")
    else {
        return;
    };
    let s = scenario(guest, "\"zroot/secret\"");
    client_with_stdin(
        &s,
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt zroot/secret",
        PASSPHRASE.as_bytes(),
    );
    client(
        &s,
        "cd /zroot/secret && head -c 3M /dev/urandom > blob && echo s > small && chmod 600 small \
         && chown 1234:5678 small && ln -s small link && ln blob hard && mkdir d && echo x > d/f \
         && touch -d '2022-01-02 03:04:05' blob small d/f d && zfs snapshot zroot/secret@s1",
    );
    let r = backup(&s, "");
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    let before = manifest(&s, "/zroot/secret");

    // Reinstalled: the dataset is new, encrypted with the new install's
    // passphrase, empty but for an @empty snapshot.
    client(
        &s,
        "zfs release zfleet:base:zfleet-server zroot/secret@s1 && zfs destroy -r zroot/secret",
    );
    client_with_stdin(
        &s,
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt zroot/secret && zfs snapshot zroot/secret@empty",
        NEW_PASSPHRASE.as_bytes(),
    );

    // Files cannot be read from a backup whose key the server does not have.
    let out = s
        .output_on(
            "zfleet-server",
            "zfleet --host zfleet-server restore zfleet-client --path /zroot/secret/small",
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("is encrypted and its key is not on the server"));

    let r = json(
        &s.on_server("zfleet --host zfleet-server restore zfleet-client --json")
            .unwrap(),
    );
    let d = &r["datasets"][0];
    assert_eq!(d["outcome"], "restored", "{r}");
    assert!(d.get("warnings").is_none(), "{r}");
    assert!(
        d["plan"]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("sent raw and arrives locked")),
        "{r}"
    );
    assert!(d["plan"]["steps"][0]["raw"].as_bool().unwrap(), "{r}");
    // Its own encryption root with the key it was backed up with, locked.
    assert_eq!(
        client(
            &s,
            "zfs get -H -o value encryptionroot,keystatus,mounted zroot/secret"
        ),
        "zroot/secret\nunavailable\nno\n"
    );
    // `zfleet unlock` loads it with the passphrase it had, and mounts it.
    s.run_with_stdin(
        "umask 077 && cat > /root/zfleet-client.key",
        PASSPHRASE.as_bytes(),
    )
    .unwrap();
    s.on_server("zfleet --host zfleet-server unlock zfleet-client")
        .unwrap();
    assert_eq!(
        client(&s, "zfs get -H -o value keystatus,mounted zroot/secret"),
        "available\nyes\n"
    );
    assert_eq!(manifest(&s, "/zroot/secret"), before);
    assert_eq!(
        client(&s, "zfs get -H -o value readonly zroot/secret"),
        "off\n"
    );
    assert_eq!(
        client(&s, "zfs list -H -o name -r zroot | grep -c zfleet || true").trim(),
        "0",
        "no temporary or set-aside dataset is left"
    );
    assert!(s
        .run("zfs list -H -o name -t bookmark zroot/secret")
        .unwrap()
        .contains("zroot/secret#zfleet_zfleet-server:s1"));

    // The next backup continues, raw and incremental.
    client(
        &s,
        "echo more > /zroot/secret/more && zfs snapshot zroot/secret@s2",
    );
    let r = backup(&s, "");
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "sent", "{r}");
    assert!(job["bytes"].as_u64().unwrap() < 200_000, "{job}");
    assert_eq!(snapshot_names(&s, &format!("{T}/secret")), "s1\ns2\n");
}

#[test]
fn an_unencrypted_dataset_is_received_unmounted_then_mounted_in_place() {
    let Some(guest) =
        guest_or_skip("an_unencrypted_dataset_is_received_unmounted_then_mounted_in_place")
    else {
        return;
    };
    let s = scenario(guest, "\"zroot/plain\"");
    client(
        &s,
        "zfs create -o atime=off zroot/plain && cd /zroot/plain && head -c 1M /dev/urandom > blob \
         && ln -s blob link && mkdir d && echo x > d/f && chown -R 1234:5678 d \
         && touch -d '2022-01-02 03:04:05' blob d/f d && zfs snapshot zroot/plain@s1",
    );
    s.on_server("zfleet --host zfleet-server backup").unwrap();
    let before = manifest(&s, "/zroot/plain");
    // Reinstalled with the same layout; someone looked into the empty
    // directory (on OpenZFS that can count as written: the root directory
    // being empty is what decides).
    client(
        &s,
        "zfs release zfleet:base:zfleet-server zroot/plain@s1 && zfs destroy -r zroot/plain \
         && zfs create -o atime=off zroot/plain && zfs snapshot zroot/plain@empty && ls -la /zroot/plain",
    );
    // From the server this time, as an admin would from anywhere.
    let r = json(
        &s.on_server("zfleet --host zfleet-server restore zfleet-client --json")
            .unwrap(),
    );
    let d = &r["datasets"][0];
    assert_eq!(d["outcome"], "restored", "{r}");
    assert_eq!(d["plan"]["disposition"], "replace_fresh", "{r}");
    assert!(d.get("warnings").is_none(), "{r}");
    assert_eq!(
        client(&s, "zfs get -H -o value mounted,readonly,atime zroot/plain"),
        "yes\noff\noff\n",
        "mounted, writable, and the layout's atime=off kept"
    );
    assert_eq!(manifest(&s, "/zroot/plain"), before);
    assert_eq!(
        client(&s, "zfs list -H -o name -r zroot | grep -c zfleet || true").trim(),
        "0"
    );
    // A single file read through the backup's .zfs directory. The guest's
    // hosts are namespaces of one kernel, which mounts .zfs snapshots in the
    // initial mount namespace: primed from there, the server sees it.
    let snapdir = format!("/{T}/plain/.zfs/snapshot/s1");
    s.run(&format!("zfs mount {T}/plain && ls {snapdir}/d >/dev/null"))
        .unwrap();
    let restore_f = |first: &str, into: &str| {
        let out = s
            .output_on(
                "zfleet-server",
                &format!("{first} zfleet -v --host zfleet-server restore zfleet-client --path /zroot/plain/d/f --into {into} --json"),
            )
            .unwrap();
        let r = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(r["outcome"], "restored", "{r}");
        assert_eq!(r["plan"]["reader"]["kind"], "snapdir", "{r}");
        assert_eq!(
            client(
                &s,
                &format!("stat -c '%a %u %g %Y' {into}/f && cat {into}/f")
            ),
            format!(
                "644 1234 5678 {}\nx\n",
                client(&s, "stat -c %Y /zroot/plain/d/f").trim()
            )
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let log = restore_f("", "/tmp/zfleet-restored-1");
    assert!(!log.contains("reading a temporary clone"), "{log}");
    // The backup mounted only in zfleet's own mount namespace (a container, a
    // hardened service): the kernel's snapshot mount cannot land there, the
    // directory shows nothing, and a temporary clone is read instead.
    s.run(&format!("umount {snapdir}; zfs unmount {T}/plain"))
        .unwrap();
    let log = restore_f(&format!("zfs mount {T}/plain &&"), "/tmp/zfleet-restored-2");
    assert!(log.contains("reading a temporary clone instead"), "{log}");
    assert!(!s
        .run("zfs list -H -o name -r zstorage")
        .unwrap()
        .contains("zfleet-files"));
    client(
        &s,
        "echo more > /zroot/plain/more && zfs snapshot zroot/plain@s2",
    );
    let r = backup(&s, "");
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "sent", "{r}");
    assert!(job["bytes"].as_u64().unwrap() < 200_000, "{job}");
}
