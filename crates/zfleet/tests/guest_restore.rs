//! Restores on real OpenZFS 2.x (the qemu guest): an encrypted dataset comes
//! back from its raw backup still encrypted with its own key, locked until
//! the key is loaded, and the next backup is incremental.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use zfleet_lab::guest::{guest_or_skip, Guest, Scenario, ScenarioOptions};

const PASSPHRASE: &str = "correct-horse-battery";
const NEW_PASSPHRASE: &str = "the-reinstall-has-another";
const T: &str = "zstorage/backups/zfleet-client/zroot";

fn install(guest: &Guest) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        guest
            .copy_in(&common::zfleet_bin(), "/usr/local/bin/zfleet", true)
            .unwrap();
    });
}

fn scenario<'g>(guest: &'g Guest, datasets: &str) -> Scenario<'g> {
    install(guest);
    let s = guest
        .scenario_with(&ScenarioOptions {
            hosts_in_netns: true,
        })
        .unwrap();
    let fleet = format!(
        "[ssh]\nuser = \"root\"\nconnect_timeout = \"20s\"\n\
         [hosts.zfleet-client]\naddress = \"192.168.77.1\"\n[hosts.zfleet-client.backup]\ndatasets = [{datasets}]\n\
         [hosts.zfleet-server]\naddress = \"192.168.77.2\"\n[hosts.zfleet-server.server]\ntarget_root = \"zstorage/backups\"\n"
    );
    s.run_with_stdin(
        "mkdir -p /etc/zfleet && cat > /etc/zfleet/fleet.toml && rm -rf /var/lib/zfleet",
        fleet.as_bytes(),
    )
    .unwrap();
    s.run("zfs create -o canmount=off zstorage/backups")
        .unwrap();
    s
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn manifest(s: &Scenario<'_>, dir: &str) -> String {
    s.run(&format!(
        "cd {dir} && find . -printf '%y\\t%p\\t%m %U %G %T@ %s %n %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
    ))
    .unwrap()
}

#[test]
fn an_encrypted_dataset_comes_back_raw_with_its_own_key_and_backups_continue() {
    let Some(guest) =
        guest_or_skip("an_encrypted_dataset_comes_back_raw_with_its_own_key_and_backups_continue")
    else {
        return;
    };
    let s = scenario(guest, "\"zroot/secret\"");
    s.run_with_stdin(
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt zroot/secret",
        PASSPHRASE.as_bytes(),
    )
    .unwrap();
    s.run(
        "cd /zroot/secret && head -c 3M /dev/urandom > blob && echo s > small && chmod 600 small \
         && chown 1234:5678 small && ln -s small link && ln blob hard && mkdir d && echo x > d/f \
         && touch -d '2022-01-02 03:04:05' blob small d/f d && zfs snapshot zroot/secret@s1",
    )
    .unwrap();
    let r = json(
        &s.on_server("zfleet --host zfleet-server backup --json")
            .unwrap(),
    );
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    let before = manifest(&s, "/zroot/secret");

    // Reinstalled: the dataset is new, encrypted with the new install's
    // passphrase, empty but for an @empty snapshot.
    s.run("zfs release zfleet:base:zfleet-server zroot/secret@s1 && zfs destroy -r zroot/secret")
        .unwrap();
    s.run_with_stdin(
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt zroot/secret && zfs snapshot zroot/secret@empty",
        NEW_PASSPHRASE.as_bytes(),
    )
    .unwrap();

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
        s.run("zfs get -H -o value encryptionroot,keystatus,mounted zroot/secret")
            .unwrap(),
        "zroot/secret\nunavailable\nno\n"
    );
    s.run_with_stdin("zfs load-key zroot/secret", PASSPHRASE.as_bytes())
        .unwrap();
    s.run("zfs mount zroot/secret").unwrap();
    assert_eq!(manifest(&s, "/zroot/secret"), before);
    assert_eq!(
        s.run("zfs get -H -o value readonly zroot/secret").unwrap(),
        "off\n"
    );
    assert!(s
        .run("zfs list -H -o name -t bookmark zroot/secret")
        .unwrap()
        .contains("zroot/secret#zfleet_zfleet-server_s1"));

    // The next backup continues, raw and incremental.
    s.run("echo more > /zroot/secret/more && zfs snapshot zroot/secret@s2")
        .unwrap();
    let r = json(
        &s.on_server("zfleet --host zfleet-server backup --json")
            .unwrap(),
    );
    let job = &r["clients"][0]["jobs"][0];
    assert_eq!(job["outcome"], "sent", "{r}");
    assert!(job["bytes"].as_u64().unwrap() < 200_000, "{job}");
    assert_eq!(
        s.run(&format!(
            "zfs list -H -o name -t snapshot -s createtxg {T}/secret | sed 's/.*@//'"
        ))
        .unwrap(),
        "s1\ns2\n"
    );
}
