//! Least privilege on real sshd: `zfleet grant --apply` sets up the backup
//! account, backups run through `zfleet serve`, and a stolen backup key can do
//! nothing else — each attempt refused, logged, and the pool unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{served_fleet_file, start, zfleet, zfleet_bin};
use zfleet_lab::sim::{Host, HostSpec, Lab, LabSpec};

const PS: &str = "zroot/persistSave";

fn setup(lab: &Lab) -> (PathBuf, PathBuf) {
    served_fleet_file(lab, "", "")
}

/// Everything about the client's pool that a refused request must not change.
fn pool_state(h: &Host) -> String {
    h.sh("zfs get -H -p -r -o name,property,value type,guid,mountpoint,compression,userrefs,zfleet:base:backup zroot").unwrap()
}

/// `ssh -i KEY zfleet@client1 REQUEST` from the backup host: (exit, stderr).
fn as_backup_key(backup: &Host, c1: &Host, lab: &Lab, key: &Path, request: &str) -> (i32, String) {
    let mut cmd = backup.ssh_as(c1, "zfleet", key);
    if !request.is_empty() {
        cmd.arg(request);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let _ = lab;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn grant_apply_then_backups_through_serve_and_nothing_else() {
    let lab = start(
        &LabSpec::new("serve")
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(false),
    );
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let (fleet, key) = setup(&lab);
    let bin = zfleet_bin();
    let bin_s = bin.display().to_string();
    let fleet_s = fleet.display().to_string();

    // What grant would do, then doing it.
    let shown = zfleet(
        backup,
        &fleet,
        &[
            "grant",
            "client1",
            "--zfleet-path",
            &bin_s,
            "--config-path",
            &fleet_s,
        ],
    )
    .ok();
    assert!(shown.stdout.contains(&format!("restrict,command=\"sudo -n {bin_s} serve --config {fleet_s} --host client1 --server backup\" ssh-ed25519 ")), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("zfleet ALL=(root) NOPASSWD:"),
        "zfs-fuse has no delegation: {}",
        shown.stdout
    );
    let applied = zfleet(
        backup,
        &fleet,
        &[
            "grant",
            "client1",
            "--apply",
            "--zfleet-path",
            &bin_s,
            "--config-path",
            &fleet_s,
        ],
    )
    .ok();
    assert!(
        applied
            .stdout
            .contains("client1: created the system user zfleet"),
        "{}",
        applied.stdout
    );
    assert!(c1.sh("getent passwd zfleet").unwrap().contains("/bin/sh"));

    // Backups go through serve: full, then incremental.
    c1.sh(&format!("zfs snapshot {PS}@s1")).unwrap();
    let r = zfleet(backup, &fleet, &["backup", "--json"]).ok().json();
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    c1.sh(&format!(
        "echo x > \"$(zfs get -H -o value mountpoint {PS})/f\" && zfs snapshot {PS}@s2"
    ))
    .unwrap();
    let r = zfleet(backup, &fleet, &["backup", "--json"]).ok().json();
    assert_eq!(r["clients"][0]["jobs"][0]["snapshots"], 1);
    let log = c1.sh("cat /var/log/zfleet/serve.log").unwrap();
    assert!(log.contains("allowed request=\"zfs send"), "{log}");
    let sshd = std::fs::read_to_string(c1.sshd_log()).unwrap();
    assert!(
        sshd.contains("Accepted publickey for zfleet"),
        "the backup ran as the backup account"
    );

    // With zstd on the wire, serve compresses the send itself: one checked
    // command, no shell pipeline, no zstd program needed on the client.
    let text = std::fs::read_to_string(&fleet).unwrap();
    std::fs::write(
        &fleet,
        text.replace(
            "target_root = \"zstorage/backups\"\n",
            "target_root = \"zstorage/backups\"\ncompress = \"zstd\"\n",
        ),
    )
    .unwrap();
    c1.sh(&format!(
        "seq 1 200000 > \"$(zfs get -H -o value mountpoint {PS})/g\" && zfs snapshot {PS}@s2z"
    ))
    .unwrap();
    let r = zfleet(backup, &fleet, &["backup", "--json"]).ok().json();
    assert_eq!(r["clients"][0]["jobs"][0]["snapshots"], 1, "{r}");
    let log = c1.sh("cat /var/log/zfleet/serve.log").unwrap();
    assert!(
        log.contains("allowed request=\"zfleet-zstd zfs send"),
        "{log}"
    );
    let sum = |h: &Host, ds: &str| {
        h.sh(&format!(
            "sha256sum \"$(zfs get -H -o value mountpoint {ds})/g\" | cut -d' ' -f1"
        ))
        .unwrap()
    };
    let on_client = sum(c1, PS);
    assert_eq!(on_client.trim().len(), 64, "{on_client}");
    assert_eq!(
        sum(backup, "zstorage/backups/client1/zroot/persistSave"),
        on_client
    );
    c1.sh(&format!(
        "zfs snapshot {PS}@s3 && zfs snapshot zroot/persist@other"
    ))
    .unwrap();

    let before = pool_state(c1);
    let attempts: &[(&str, &str)] = &[
        ("zfs destroy zroot/persistSave@s1", "refused"),
        (
            "zfs destroy -r zroot/persistSave",
            "`zfs destroy` is not something",
        ),
        (
            "zfs rollback -r zroot/persistSave@s1",
            "`zfs rollback` is not something",
        ),
        ("zfs receive -F zroot/persistSave", "may not receive"),
        (
            "zfs send zroot/persist@other",
            "not of a dataset backup server `backup` may use",
        ),
        (
            "zfs set mountpoint=/tmp/x zroot/persistSave",
            "setting `mountpoint`",
        ),
        (
            "zfs inherit compression zroot/persistSave",
            "invalid snapshot name",
        ),
        ("id", "`id` is not a command zfleet serve runs"),
        ("sh -c 'zfs destroy -r zroot'", "`sh` is not a command"),
        ("zfs list; id", "`zfs list;` is not something"),
        ("zfs version && id", "`id` is not a command"),
        ("zfs version && zfs destroy zroot/persistSave@s1", "refused"),
        ("zfs send 'zroot/persistSave@$(id)'", "`$` at position"),
        (
            "zfs send 'zroot/persistSave@`id`'",
            "a backtick at position",
        ),
        (
            "zfs send zroot/persistSave/../persist@other",
            "component `..` is not allowed",
        ),
        (
            "zfs send zroot/persistSave@s1@s2",
            "more than one `@` or `#`",
        ),
        ("zfs send zroot/persistSave#s1", "missing `@`"),
        ("zfs hold evil zroot/persistSave@s1", "hold tag `evil`"),
        (
            "zfleet-zstd zfs destroy zroot/persistSave@s1",
            "wraps only `zfs send`",
        ),
        (
            "zfleet-zstd zfs send zroot/persist@other",
            "not of a dataset backup server `backup` may use",
        ),
        (
            "zfs release zfleet:base:backup zroot/persist@other",
            "not of a dataset",
        ),
    ];
    for (req, why) in attempts {
        let (code, err) = as_backup_key(backup, c1, &lab, &key, req);
        assert_eq!(code, 126, "{req}: {err}");
        assert!(
            err.contains("zfleet serve: refused") && err.contains(why),
            "{req}: {err}"
        );
    }
    // A newline inside the request, an over-long one, and no command at all.
    for (req, why) in [
        ("zfs version\nid", "control character"),
        (
            &*format!("zfs list {}", "a".repeat(5000)),
            "longer than 4096",
        ),
        ("", "interactive sessions are refused"),
    ] {
        let (code, err) = as_backup_key(backup, c1, &lab, &key, req);
        assert_eq!(code, 126, "{req:?}: {err}");
        assert!(err.contains(why), "{req:?}: {err}");
    }
    assert_eq!(pool_state(c1), before, "refused requests change nothing");
    let log = c1.sh("cat /var/log/zfleet/serve.log").unwrap();
    assert!(
        log.matches("refused (").count() >= attempts.len() + 3,
        "{log}"
    );
    assert!(!c1.ns_path("/tmp/zfleet-serve-pwned").exists());

    // The backup key cannot log in anywhere else: root on the client refuses it.
    let out = format!(
        "{:#}",
        backup
            .run(
                backup
                    .ssh_as(c1, "root", &key)
                    .arg("true")
                    .stdin(Stdio::null())
            )
            .unwrap_err()
    );
    assert!(out.contains("Permission denied"), "{out}");
}

#[test]
fn export_tailscale_acl_is_json_naming_every_host() {
    let out = std::process::Command::new(zfleet_bin())
        .args([
            "--config",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../examples/two-servers.toml"
            ),
            "export",
            "tailscale-acl",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for h in [
        "home-nas",
        "offsite",
        "workstation",
        "travel-laptop",
        "old-server",
    ] {
        assert!(
            v["tagOwners"].get(format!("tag:zfleet-{h}")).is_some(),
            "{h}"
        );
    }
    // The offsite server reaches the clients it backs up, not the excluded laptop.
    let offsite = v["acls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["src"][0] == "tag:zfleet-offsite")
        .unwrap();
    let dst: Vec<&str> = offsite["dst"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        dst.contains(&"tag:zfleet-home-nas:22") && !dst.iter().any(|d| d.contains("travel-laptop")),
        "{dst:?}"
    );
}

/// `ssh -i KEY zfleet@client1 REQUEST`: (exit, stdout, stderr).
fn as_key_out(backup: &Host, c1: &Host, key: &Path, request: &str) -> (i32, String, String) {
    let out = backup
        .ssh_as(c1, "zfleet", key)
        .arg(request)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The properties a backup was given (local or received), by name, without
/// the base marker (a time).
fn explicit_properties(h: &Host, ds: &str) -> std::collections::BTreeMap<String, String> {
    h.sh(&format!("zfs get -H -o property,value,source all {ds}"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (p, v, src) = (f.next()?, f.next()?, f.next()?);
            let explicit = src == "local" || src.starts_with("received");
            (explicit && !p.starts_with("zfleet:base:")).then(|| (p.to_string(), v.to_string()))
        })
        .collect()
}

/// The same client dataset backed up through `zfleet serve` and as root
/// arrives with the same properties; the backup key lists only what it backs
/// up; a property that cannot be recorded makes the run degraded (exit 4);
/// and the account owns neither its keys nor its log. (zfs-fuse has no
/// holds; the bound on them is tested on the OpenZFS guest.)
#[test]
fn a_backup_through_serve_has_every_property_a_root_backup_has() {
    let lab = start(
        &LabSpec::new("parity")
            .host(HostSpec::seed_client("client1"))
            .host(HostSpec::seed_backup("backup"))
            .faketime(false),
    );
    let (c1, backup) = (lab.host("client1").unwrap(), lab.host("backup").unwrap());
    let (fleet, key) = setup(&lab);
    let bin_s = zfleet_bin().display().to_string();
    let fleet_s = fleet.display().to_string();
    for set in [
        "recordsize=16K",
        "compression=gzip",
        "com.example:note=hello world",
    ] {
        c1.sh(&format!("zfs set '{set}' {PS}")).unwrap();
    }
    // A child the server does not back up, with a snapshot of its own.
    c1.sh(&format!(
        "zfs create {PS}/private && zfs snapshot {PS}/private@secret && zfs snapshot {PS}@s1"
    ))
    .unwrap();

    let applied = zfleet(
        backup,
        &fleet,
        &[
            "grant",
            "client1",
            "--apply",
            "--zfleet-path",
            &bin_s,
            "--config-path",
            &fleet_s,
        ],
    )
    .ok();
    // Root owns the account's keys and log; the account may only append.
    let owners = c1
        .sh("stat -c '%U:%G %a %n' ~zfleet ~zfleet/.ssh ~zfleet/.ssh/authorized_keys /var/log/zfleet /var/log/zfleet/serve.log")
        .unwrap();
    let group = c1.sh("id -gn zfleet").unwrap();
    let want = format!(
        "root:root 755 /home/zfleet\nroot:root 755 /home/zfleet/.ssh\nroot:root 644 /home/zfleet/.ssh/authorized_keys\nroot:root 755 /var/log/zfleet\nroot:{} 620 /var/log/zfleet/serve.log\n",
        group.trim()
    );
    assert_eq!(owners, want, "{}", applied.stdout);
    for attempt in [
        "echo 'ssh-ed25519 AAAA evil' >> ~/.ssh/authorized_keys",
        "mv ~/.ssh ~/.ssh-old",
        "touch /var/log/zfleet/other.log",
    ] {
        let r = c1.sh(&format!("su -s /bin/sh zfleet -c \"{attempt}\""));
        assert!(r.is_err(), "the account could: {attempt}");
    }
    if applied.stdout.contains("is root's and append-only") {
        assert!(c1
            .sh("su -s /bin/sh zfleet -c ': > /var/log/zfleet/serve.log'")
            .is_err());
    } else {
        assert!(
            applied
                .stdout
                .contains("has no append-only attribute, so the account could truncate it"),
            "{}",
            applied.stdout
        );
    }

    // Through serve, then as root into a second tree.
    let r = zfleet(backup, &fleet, &["backup", "--json"]).ok().json();
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    assert!(r["clients"][0]["jobs"][0].get("warnings").is_none(), "{r}");
    let root_fleet = lab.dir().join("root-fleet.toml");
    let text = std::fs::read_to_string(&fleet).unwrap();
    std::fs::write(
        &root_fleet,
        text.lines()
            .filter(|l| !l.starts_with("backup_user") && !l.starts_with("backup_identity"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace(
                "target_root = \"zstorage/backups\"",
                "target_root = \"zstorage/asroot\"",
            ),
    )
    .unwrap();
    backup
        .sh("zfs create -o canmount=off zstorage/asroot")
        .unwrap();
    let r = zfleet(backup, &root_fleet, &["backup", "--json"])
        .ok()
        .json();
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
    let served = explicit_properties(backup, "zstorage/backups/client1/zroot/persistSave");
    let as_root = explicit_properties(backup, "zstorage/asroot/client1/zroot/persistSave");
    assert_eq!(served, as_root, "through serve versus as root");
    for (p, v) in [
        ("recordsize", "16K"),
        ("compression", "gzip"),
        ("zfleet:src:mountpoint", "/persist/save"),
        ("zfleet:src:canmount", "on"),
        ("zfleet:src:com.example:note", "hello world"),
    ] {
        assert_eq!(
            served.get(p).map(String::as_str),
            Some(v),
            "{p}: {served:?}"
        );
    }

    // The listing the engine made through serve, asked again with the key,
    // shows the backed-up dataset and its snapshots, not the child.
    let log = c1.sh("cat /var/log/zfleet/serve.log").unwrap();
    let listing = log
        .lines()
        .filter_map(|l| {
            l.split_once("allowed request=\"")
                .map(|(_, r)| r.trim_end_matches('"'))
        })
        .find(|r| r.starts_with("zfs get -H -p -d 1 ") || r.starts_with("zfs list -H -p -d 1 "))
        .unwrap_or_else(|| panic!("no listing in the serve log:\n{log}"))
        .to_string();
    let (code, out, err) = as_key_out(backup, c1, &key, &listing);
    assert_eq!(code, 0, "{listing}: {err}");
    let names: std::collections::BTreeSet<&str> =
        out.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [PS, "zroot/persistSave@s1"],
        "{listing}"
    );
    assert!(c1
        .sh(&format!("zfs list -H -o name -r {PS}"))
        .unwrap()
        .contains("private"));
    let guid_of_child = format!("zfs get -H -p -d 1 -o name,property,value guid {PS}/private");
    for (req, why) in [
        (listing.replace(" -d 1 ", " -r "), "is not a"),
        (
            guid_of_child,
            "dataset `zroot/persistSave/private` is not one backup server `backup` may use",
        ),
        (
            "zfs get -H -p -o name,property,value,source all zroot/persistSave/private".to_string(),
            "is not one backup server",
        ),
        (
            "zpool list -H -o altroot zstorage".to_string(),
            "pool `zstorage` holds no dataset",
        ),
    ] {
        let (code, out, err) = as_key_out(backup, c1, &key, &req);
        assert_eq!(code, 126, "{req}: {out}{err}");
        assert!(err.contains(why) && out.is_empty(), "{req}: {err}");
    }
    // A property read shows what a backup records, not the rest.
    let (_, out, _) = as_key_out(
        backup,
        c1,
        &key,
        "zfs get -H -p -o name,property,value,source all zroot/persistSave",
    );
    let props: Vec<&str> = out.lines().filter_map(|l| l.split('\t').nth(1)).collect();
    assert!(
        props.contains(&"recordsize") && props.contains(&"com.example:note"),
        "{out}"
    );
    assert!(
        !props.contains(&"used") && !props.contains(&"origin"),
        "{out}"
    );

    // A user property whose recorded name (`zfleet:src:` + its name) is
    // longer than ZFS allows: the backup is sent, but degraded, exit 4.
    let long = format!("com.example:{}", "x".repeat(236));
    c1.sh(&format!("zfs set {long}=1 {PS} && zfs snapshot {PS}@s2"))
        .unwrap();
    let run = zfleet(backup, &fleet, &["backup"]);
    assert_eq!(run.code, 4, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("DEGRADED"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("sent, but the properties were not copied")
            && run.stderr.contains(&format!("zfleet:src:{long}")),
        "{}",
        run.stderr
    );
    c1.sh(&format!("zfs inherit {long} {PS} && zfs snapshot {PS}@s3"))
        .unwrap();
    let r = zfleet(backup, &fleet, &["backup", "--json"]).ok().json();
    assert_eq!(r["clients"][0]["jobs"][0]["outcome"], "sent", "{r}");
}
