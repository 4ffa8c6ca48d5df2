//! `zfleet verify` of an encrypted raw backup on real OpenZFS 2.x (the qemu
//! guest): the server does not hold the key, so content is the quick checks
//! plus a full receive of the raw stream into a scratch dataset that is
//! destroyed afterwards; damaged blocks under the stream fail it.

use zfleet_lab::guest::{guest_or_skip, shell_quote, Scenario};

use crate::support::{self, backup, json, T};

/// On the client, in its sshd's mount namespace (as zfleet's sessions are).
fn client(s: &Scenario<'_>, command: &str, stdin: &[u8]) -> String {
    s.run_with_stdin(
        &format!(
            "ip netns exec zfleet-server ssh -o BatchMode=yes root@zfleet-client {}",
            shell_quote(command)
        ),
        stdin,
    )
    .unwrap()
}

fn verify(s: &Scenario<'_>) -> (i32, serde_json::Value) {
    let out = s
        .output_on(
            "zfleet-server",
            "zfleet --host zfleet-server verify --level content --json",
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), json(&text))
}

fn check<'a>(job: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    job["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {job}"))
}

/// Overwrites 64 KiB of zstorage's disk where a piece of `snap`'s raw
/// stream lies (a raw stream carries the blocks as stored: encrypted,
/// here incompressible), with the pool exported so nothing is cached.
const DAMAGE: &str = r#"
import subprocess, sys
snap, dev = sys.argv[1], sys.argv[2]
stream = subprocess.run(["zfs", "send", "-w", snap], check=True, capture_output=True).stdout
at = len(stream) * 2 // 5
needle = stream[at:at + 64]
subprocess.run(["zpool", "export", "zstorage"], check=True)
with open(dev, "r+b") as d:
    off, tail, found = 0, b"", None
    while found is None:
        chunk = d.read(1 << 20)
        if not chunk:
            break
        buf = tail + chunk
        i = buf.find(needle)
        if i >= 0:
            found = off - len(tail) + i
        tail = buf[-63:]
        off += len(chunk)
    if found is None:
        sys.exit("the stream's piece is not on " + dev)
    d.seek(found // 512 * 512)
    d.write(b"\x5a" * (64 << 10))
    d.flush()
subprocess.run(["zpool", "import", "zstorage"], check=True)
print(found)
"#;

#[test]
fn an_encrypted_raw_backup_without_its_key_is_received_whole_and_damage_under_it_fails() {
    let Some(guest) = guest_or_skip(
        "an_encrypted_raw_backup_without_its_key_is_received_whole_and_damage_under_it_fails",
    ) else {
        return;
    };
    let s = support::scenario(guest, "", "\"zroot/secret\"", "");
    client(
        &s,
        "zfs create -o encryption=on -o keyformat=passphrase -o keylocation=prompt zroot/secret",
        b"correct-horse-battery",
    );
    client(
        &s,
        "head -c 3M /dev/urandom > /zroot/secret/blob && echo s > /zroot/secret/small && zfs snapshot zroot/secret@s1",
        b"",
    );
    let r = backup(&s, "");
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    let target = format!("{T}/secret");
    assert_eq!(
        s.run(&format!(
            "zfs get -H -o value encryption,keystatus {target}"
        ))
        .unwrap(),
        "aes-256-gcm\nunavailable\n",
        "the server has no key"
    );
    let before = s.run("zfs list -H -o name -r zstorage").unwrap();

    let (code, v) = verify(&s);
    let job = &v["jobs"][0];
    assert_eq!(code, 0, "{v}");
    for c in ["guid", "send", "scrub", "base", "receive"] {
        assert_eq!(check(job, c)["ok"], true, "{c}: {job}");
    }
    // A pool never scrubbed (OpenZFS prints no `scan:` line) but new: a warning.
    let scrub = check(job, "scrub");
    assert_eq!(scrub["warning"], true, "{scrub}");
    assert!(
        scrub["detail"]
            .as_str()
            .unwrap()
            .starts_with("pool zstorage has not been scrubbed yet (created 0 days ago"),
        "{scrub}"
    );
    let detail = check(job, "receive")["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("the key is not on zfleet-server: the raw stream of @s1 was received whole into zfleet-server:zstorage/zfleet-drill/zfleet-client/secret (")
            && detail.ends_with(", and removed; files not compared"),
        "{detail}"
    );
    assert!(job.get("content").is_none(), "{job}");
    assert_eq!(
        s.run("zfs list -H -o name -r zstorage").unwrap(),
        before,
        "the scratch dataset is gone"
    );
    assert_eq!(
        s.run(&format!("zfs get -H -o value keystatus {target}"))
            .unwrap(),
        "unavailable\n",
        "the key was never needed"
    );

    // Damaged blocks under the stream: the receive fails, nothing is left.
    let dev = s
        .run("zpool status -P zstorage | awk '$1 ~ /^\\/dev\\// {print $1}'")
        .unwrap();
    let dev = dev.trim();
    assert!(dev.starts_with("/dev/"), "{dev}");
    s.run_with_stdin(
        &format!("python3 - {}@s1 {dev}", shell_quote(&target)),
        DAMAGE.as_bytes(),
    )
    .unwrap();
    let (code, v) = verify(&s);
    let job = &v["jobs"][0];
    assert_eq!(code, 6, "{v}");
    let receive = check(job, "receive");
    eprintln!("after the damage: {receive}");
    assert_eq!(receive["ok"], false, "{job}");
    assert!(
        receive["detail"]
            .as_str()
            .unwrap()
            .starts_with("the key is not on zfleet-server: receiving the raw stream of @s1 into a scratch dataset failed: "),
        "{receive}"
    );
    assert!(
        !s.run("zfs list -H -o name -r zstorage")
            .unwrap()
            .contains("zfleet-drill"),
        "the drill container is gone"
    );
}
