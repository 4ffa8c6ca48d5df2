//! `zfleet unlock` for ZFS native encryption on real OpenZFS 2.x (the lab's
//! qemu guest): encrypted datasets are locked after an export/import, zfleet
//! on the "server" unlocks the "client" over ssh with the key from a provider,
//! mounts what it unlocked and starts a service; a wrong key is reported and
//! nothing is mounted.
//!
//! When the machine cannot run the guest the test prints `SKIPPED: …` and
//! passes (`ZFLEET_LAB_GUEST=require` makes that a failure).

use std::path::Path;

use zfleet_lab::guest::{guest_or_skip, Scenario, ScenarioOptions, CLIENT_HOST, SERVER_HOST};

use crate::support::json;

const KEY: &str = "native encryption passphrase 8";

fn zfleet(s: &Scenario<'_>, args: &str) -> (i32, String, String) {
    let out = s
        .output_on(
            SERVER_HOST,
            &format!("zfleet --config /root/unlock-fleet.toml --host {SERVER_HOST} {args}"),
        )
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn prop(s: &Scenario<'_>, prop: &str, ds: &str) -> String {
    s.run(&format!("zfs get -H -o value {prop} {ds}"))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs `command` as zfleet's ssh sessions on the client do. In the scenario
/// the client's sshd runs under `ip netns exec`, which gives it a mount
/// namespace of its own: what zfleet mounts over ssh is visible to that
/// sshd's sessions, not to the guest's root namespace (on a real host sshd
/// and systemd share one).
fn on_client_over_ssh(s: &Scenario<'_>, command: &str) -> String {
    s.on_server(&format!(
        "ssh -o BatchMode=yes root@{CLIENT_HOST} {}",
        zfleet_lab::guest::shell_quote(command)
    ))
    .unwrap()
}

#[test]
fn zfs_native_encryption_is_unlocked_from_a_provider() {
    let Some(guest) = guest_or_skip("zfs_native_encryption_is_unlocked_from_a_provider") else {
        return;
    };
    let s = guest
        .scenario_with(&ScenarioOptions {
            hosts_in_netns: true,
        })
        .unwrap();
    s.install(
        Path::new(env!("CARGO_BIN_EXE_zfleet")),
        "/usr/local/bin/zfleet",
    )
    .unwrap();

    // An encryption root with a child, a file in the child, and an unencrypted
    // sibling that must be left alone.
    s.run_with_stdin(
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt zroot/secure",
        format!("{KEY}\n").as_bytes(),
    )
    .unwrap();
    s.run("zfs create zroot/secure/db && echo rows > /zroot/secure/db/table && zfs create zroot/plain")
        .unwrap();
    // A service for after the unlock; it notes that it was started.
    s.run(
        "printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/sh -c \"echo started > /run/zfleet-unlock-service\"\\n' \
         > /run/systemd/system/zfleet-unlock-test.service && systemctl daemon-reload && rm -f /run/zfleet-unlock-service",
    )
    .unwrap();

    // Locked, as after a reboot: export and import forget the keys.
    s.run("zpool export zroot && zpool import zroot").unwrap();
    assert_eq!(prop(&s, "keystatus", "zroot/secure"), "unavailable");
    assert_eq!(prop(&s, "mounted", "zroot/secure/db"), "no");

    let fleet = format!(
        r#"
[ssh]
user = "root"
identity = "/root/.ssh/id_ed25519"
known_hosts = "/root/.ssh/known_hosts"
connect_timeout = "10s"

[hosts.{SERVER_HOST}]

[hosts.{CLIENT_HOST}]

[hosts.{CLIENT_HOST}.unlock]
method = "zfs"
secret = "file:/root/unlock.key"
encryption_roots = ["zroot/secure"]
services = ["zfleet-unlock-test.service"]
timeout = "2m"
"#
    );
    s.run_with_stdin("cat > /root/unlock-fleet.toml", fleet.as_bytes())
        .unwrap();
    let set_key = |k: &str| {
        s.run_with_stdin(
            "umask 077 && cat > /root/unlock.key",
            format!("{k}\n").as_bytes(),
        )
        .unwrap();
    };

    let (code, out, err) = zfleet(&s, "unlock --status --json");
    assert_eq!(code, 4, "{out}{err}");
    let st = json(&out);
    assert_eq!(st[0]["state"], "locked", "{st}");
    assert_eq!(
        st[0]["locked"],
        serde_json::json!(["zroot/secure", "zroot/secure/db"])
    );

    // A wrong key: reported, nothing loaded, nothing mounted, no service.
    set_key("not the key at all");
    let (code, out, err) = zfleet(&s, "unlock --json");
    assert_eq!(code, 4, "{out}{err}");
    let r = &json(&out)[0];
    assert_eq!(r["outcome"], "rejected", "{r}");
    assert_eq!(r["step"], "load-key");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("Incorrect key provided for 'zroot/secure'"),
        "{r}"
    );
    assert_eq!(
        r["still_locked"],
        serde_json::json!(["zroot/secure", "zroot/secure/db"])
    );
    assert_eq!(prop(&s, "keystatus", "zroot/secure"), "unavailable");
    assert_eq!(
        on_client_over_ssh(
            &s,
            "zfs get -H -o value mounted zroot/secure zroot/secure/db"
        ),
        "no\nno\n"
    );
    assert!(
        s.output("test -e /run/zfleet-unlock-service")
            .unwrap()
            .status
            .code()
            != Some(0)
    );

    // The right key: loaded, mounted, service started.
    set_key(KEY);
    let (code, out, err) = zfleet(&s, "-vv unlock --json");
    assert_eq!(code, 0, "{out}{err}");
    let r = &json(&out)[0];
    assert_eq!(r["outcome"], "unlocked", "{r}");
    assert_eq!(r["loaded"], serde_json::json!(["zroot/secure"]));
    assert_eq!(
        r["mounted"],
        serde_json::json!(["zroot/secure", "zroot/secure/db"])
    );
    assert_eq!(
        r["services"],
        serde_json::json!(["zfleet-unlock-test.service"])
    );
    assert!(
        !out.contains(KEY) && !err.contains(KEY),
        "the key was printed"
    );
    assert_eq!(prop(&s, "keystatus", "zroot/secure"), "available");
    assert_eq!(
        on_client_over_ssh(&s, "cat /zroot/secure/db/table"),
        "rows\n"
    );
    assert_eq!(
        s.run("cat /run/zfleet-unlock-service").unwrap(),
        "started\n"
    );
    // The unencrypted sibling was not touched.
    assert_eq!(prop(&s, "keystatus", "zroot/plain"), "-");

    let (code, out, _) = zfleet(&s, "unlock --status");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "{CLIENT_HOST}  zfs     up     1 encryption root unlocked and mounted"
        )),
        "{out}"
    );
    s.run("systemctl stop zfleet-unlock-test.service; rm -f /run/systemd/system/zfleet-unlock-test.service /run/zfleet-unlock-service /root/unlock.key; systemctl daemon-reload")
        .unwrap();
}
