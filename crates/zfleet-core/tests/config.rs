#![allow(clippy::unwrap_used)]

//! The fleet file: every example parses, the expansion is what the seed needs,
//! and each kind of mistake gets its exact message.

use std::path::{Path, PathBuf};

use zfleet_core::config::{self, Fleet};

fn parse(src: &str) -> Result<Fleet, String> {
    config::parse(src, Path::new("fleet.toml")).map_err(|e| e.to_string())
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(v.len() >= 3, "examples/ should hold the example fleets");
    v
}

#[test]
fn every_example_parses() {
    for p in examples() {
        let fleet = config::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!fleet.hosts.is_empty(), "{}", p.display());
    }
}

#[test]
fn seed_fleet_expands_to_three_jobs() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-fleet.toml"),
    )
    .unwrap();
    let fleet = config::parse(&src, Path::new("examples/seed-fleet.toml")).unwrap();
    let jobs: Vec<String> = fleet
        .jobs()
        .iter()
        .map(|j| format!("{} {}", j.server, j.describe()))
        .collect();
    assert_eq!(
        jobs,
        [
            "vault alpha:zroot/persistSave → zstorage/backups/alpha/zroot/persistSave",
            "vault bravo:zroot/persistSave → zstorage/backups/bravo/zroot/persistSave",
            "vault laptop:zroot/persistSave → zstorage/backups/laptop/zroot/persistSave",
        ]
    );
    let j = &fleet.jobs()[0];
    assert_eq!(
        j.ssh.user.as_deref(),
        Some("zfleet"),
        "servers log in as fleet.backup_user"
    );
    assert_eq!(j.ssh.address, "alpha.tail1234.ts.net");
    let alpha: Vec<String> = fleet
        .policies("alpha")
        .iter()
        .map(|p| format!("{} {}", p.dataset, p.policy.summary()))
        .collect();
    assert_eq!(
        alpha,
        [
            "zroot/persist hourly 8, daily 1, monthly 1, yearly 1 (snapshot and prune)",
            "zroot/persistSave hourly 8, daily 1, monthly 1, yearly 1 (snapshot and prune)",
        ]
    );
    let vault: Vec<String> = fleet
        .policies("vault")
        .iter()
        .map(|p| format!("{} {}", p.dataset, p.policy.summary()))
        .collect();
    assert!(
        vault.contains(
            &"zstorage/backups/alpha daily 14, monthly 6, yearly 1 (prune only)".to_string()
        ),
        "{vault:?}"
    );
    let laptop = fleet.host("laptop").unwrap().unlock.as_ref().unwrap();
    assert_eq!(laptop.initrd.as_ref().unwrap().address, "laptop-initrd");
    insta::assert_json_snapshot!("seed_plan", fleet.plan());
}

#[test]
fn only_enabled_clients_not_excluded_plus_extras() {
    let fleet = parse(
        r#"
[hosts.on.backup]
[hosts.off.backup]
enabled = false
[hosts.away.backup]
[hosts.noclient]
[hosts.srv.server]
target_root = "tank/b"
exclude = ["away"]
[[hosts.srv.server.extra_clients]]
name = "router"
address = "192.0.2.1"
datasets = ["rpool/etc"]
"#,
    )
    .unwrap();
    let plan = fleet.server_plan("srv").unwrap();
    let jobs: Vec<String> = plan.jobs.iter().map(|j| j.describe()).collect();
    assert_eq!(
        jobs,
        [
            "on:zroot/persistSave → tank/b/on/zroot/persistSave",
            "router:rpool/etc → tank/b/router/rpool/etc"
        ]
    );
    assert!(plan.jobs[1].extra);
    let skipped: Vec<String> = plan
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.client, s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            "off: backup disabled (`enabled = false`)",
            "away: excluded by this server"
        ]
    );
}

#[test]
fn a_server_that_is_also_a_client_is_backed_up_by_the_other_server_only() {
    let fleet = parse(
        r#"
[hosts.a.backup]
[hosts.a.server]
target_root = "tank/b"
[hosts.b.backup]
[hosts.b.server]
target_root = "tank/b"
"#,
    )
    .unwrap();
    let jobs: Vec<String> = fleet
        .jobs()
        .iter()
        .map(|j| format!("{}: {}", j.server, j.describe()))
        .collect();
    assert_eq!(
        jobs,
        [
            "a: b:zroot/persistSave → tank/b/b/zroot/persistSave",
            "b: a:zroot/persistSave → tank/b/a/zroot/persistSave"
        ]
    );
    assert_eq!(
        fleet.server_plan("a").unwrap().skipped[0].reason,
        "the server itself"
    );
}

#[test]
fn templates_layer_like_sanoid() {
    let fleet = parse(
        r#"
[templates.default]
hourly = 8
[templates.more]
daily = 30
[hosts.h.snapshots."zroot/a"]
use_template = ["more"]
monthly = 2
[hosts.h.snapshots."zroot/b"]
"#,
    )
    .unwrap();
    let p = fleet.policies("h");
    // sanoid defaults ← [templates.default] ← use_template ← the dataset's keys
    assert_eq!(
        (
            p[0].policy.hourly,
            p[0].policy.daily,
            p[0].policy.monthly,
            p[0].policy.yearly
        ),
        (8, 30, 2, 0)
    );
    assert_eq!(
        (p[1].policy.hourly, p[1].policy.daily, p[1].policy.monthly),
        (8, 90, 6)
    );
}

/// Each rule has its exact message: file, line, column, key, what is wrong.
#[test]
fn errors_name_file_line_key() {
    let cases: &[(&str, &str)] = &[
        // unknown key, with a suggestion
        (
            "[hosts.alpha]\nadress = \"x\"\n",
            "fleet.toml:2:1: hosts.alpha.adress: unknown key; expected one of `address`, `user`, `port`, `identity`, `known_hosts`, `connect_timeout`, `backup`, `server`, `snapshots`, `unlock`\n  hint: did you mean `address`?",
        ),
        ("[fleet]\nbackup_usr = \"z\"\n", "fleet.toml:2:1: fleet.backup_usr: unknown key; expected one of `backup_user`, `backup_identity`, `state_dir`, `zfleet_path`\n  hint: did you mean `backup_user`?"),
        ("[templates.t]\nhorly = 3\n", "fleet.toml:2:1: templates.t.horly: unknown key; expected one of `use_template`, `recursive`, `process_children_only`, `autosnap`, `autoprune`, `frequently`, `frequent_period`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`, `hourly_min`, `daily_hour`, `daily_min`, `weekly_wday`, `weekly_hour`, `weekly_min`, `monthly_mday`, `monthly_hour`, `monthly_min`, `yearly_mon`, `yearly_mday`, `yearly_hour`, `yearly_min`, `pre_snapshot_script`, `post_snapshot_script`, `pre_pruning_script`, `pruning_script`, `script_timeout`, `no_inconsistent_snapshot`, `force_post_snapshot_script`, `monitor`, `monitor_dont_warn`, `monitor_dont_crit`, `frequently_warn`, `frequently_crit`, `hourly_warn`, `hourly_crit`, `daily_warn`, `daily_crit`, `weekly_warn`, `weekly_crit`, `monthly_warn`, `monthly_crit`, `yearly_warn`, `yearly_crit`, `capacity_warn`, `capacity_crit`\n  hint: did you mean `hourly`?"),
        // duplicate host
        (
            "[hosts.alpha]\n[hosts.beta]\n[hosts.alpha]\n",
            "fleet.toml:3:8: hosts.alpha: is defined twice; each host, template and table may appear only once",
        ),
        // two hosts, one machine
        (
            "[hosts.a]\naddress = \"10.0.0.1\"\n[hosts.b]\naddress = \"10.0.0.1\"\n",
            "fleet.toml:3:8: hosts.b: has the same address `10.0.0.1:22` as host `a`\n  hint: each host is one machine; remove one of them or give it its own address",
        ),
        // dataset names
        (
            "[hosts.alpha.backup]\ndatasets = [\"zroot/ok\", \"zroot/my data\"]\n",
            "fleet.toml:2:25: hosts.alpha.backup.datasets[1]: invalid dataset name `zroot/my data`: a space at position 9 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)",
        ),
        (
            "[hosts.alpha.server]\ntarget_root = \"zroot/a;b\"\n",
            "fleet.toml:2:15: hosts.alpha.server.target_root: invalid dataset name `zroot/a;b`: `;` at position 8 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)",
        ),
        (
            "[snapshots.\"zroot/it's\"]\n",
            "fleet.toml:1:12: snapshots.\"zroot/it's\": invalid dataset name `zroot/it's`: `'` at position 9 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)",
        ),
        // template that does not exist
        (
            "[templates.default]\nhourly = 1\n\n[snapshots.\"zroot/persist\"]\nuse_template = [\"default\", \"hourlyish\"]\n",
            "fleet.toml:5:28: snapshots.\"zroot/persist\".use_template[1]: template `hourlyish` does not exist\n  hint: defined templates: `default`",
        ),
        (
            "[hosts.s.server]\ntarget_root = \"tank/b\"\nretention = \"keep\"\n",
            "fleet.toml:3:13: hosts.s.server.retention: template `keep` does not exist\n  hint: define it under [templates.NAME]",
        ),
        // a server backing itself up
        (
            "[hosts.vault.server]\ntarget_root = \"zstorage/backups\"\nextra_clients = [{ name = \"vault\", datasets = [\"zroot/x\"] }]\n",
            "fleet.toml:3:27: hosts.vault.server.extra_clients[0].name: server `vault` lists itself as an extra client; a server does not back itself up\n  hint: to keep a second local copy, use `zfleet sync` between two local datasets",
        ),
        (
            "[hosts.vault.backup]\ndatasets = [\"zstorage\"]\n[hosts.vault.server]\ntarget_root = \"zstorage/backups\"\n[hosts.other.server]\ntarget_root = \"tank/b\"\n",
            "fleet.toml:2:13: hosts.vault.backup.datasets[0]: `zstorage` overlaps this server's own target root `zstorage/backups`; the server would back up its backups",
        ),
        // references between hosts
        (
            "[hosts.vault.server]\ntarget_root = \"zstorage/backups\"\nexclude = [\"laptpo\"]\n[hosts.laptop.backup]\n",
            "fleet.toml:3:12: hosts.vault.server.exclude[0]: `laptpo` is not a host in this fleet\n  hint: did you mean `laptop`?",
        ),
        (
            "[hosts.a]\n[hosts.s.server]\ntarget_root = \"t/b\"\nextra_clients = [{ name = \"a\" }]\n",
            "fleet.toml:4:27: hosts.s.server.extra_clients[0].name: `a` is already a host in this fleet\n  hint: enable its backup role with [hosts.a.backup] instead of listing it here",
        ),
        // types, ranges, missing keys
        ("[hosts.alpha]\nport = \"22\"\n", "fleet.toml:2:8: hosts.alpha.port: invalid type: string \"22\", expected u16"),
        ("[hosts.alpha.server]\n", "fleet.toml:1:1: hosts.alpha.server.target_root: required key is missing"),
        ("[templates.t]\ndaily_hour = 24\n", "fleet.toml:2:14: templates.t.daily_hour: 24 is out of range; expected 0 to 23"),
        ("[templates.t]\nrecursive = true\n", "fleet.toml:2:1: templates.t.recursive: belongs to a dataset entry, not to a template\n  hint: set `recursive` where the dataset uses this template"),
        ("[ssh]\nconnect_timeout = \"soon\"\n[hosts.a]\n", "fleet.toml:2:19: ssh.connect_timeout: `soon` is not a duration; write it like \"10s\", \"2m\" or \"1m 30s\""),
        ("[hosts.\"my host\"]\n", "fleet.toml:1:8: hosts.\"my host\": invalid host name `my host`: ` ` is not allowed in a host name (use letters, digits, `-`, `_`, `.`)"),
        ("[hosts.a]\naddress = \"-oProxyCommand=x\"\n", "fleet.toml:2:11: hosts.a.address: an address may not start with `-`"),
        ("[hosts.a.unlock]\nmethod = \"luks-initrd\"\nsecret = \"hunter2\"\n", "fleet.toml:3:10: hosts.a.unlock.secret: `hunter2` is not a secret reference; expected `op://vault/item/field`, `pass:NAME`, `file:/PATH`, `env:NAME` or `cmd:PROGRAM ARGS`"),
        ("[hosts.a.unlock]\nmethod = \"zfs\"\nsecret = \"env:K\"\n", "fleet.toml:1:1: hosts.a.unlock.encryption_roots: method \"zfs\" needs the encryption roots to unlock\n  hint: for example encryption_roots = [\"zroot/secure\"]"),
        // unlock: keys of the other method, bad values, shared pins
        ("[hosts.a.unlock]\nmethod = \"zfs\"\nsecret = \"env:K\"\nencryption_roots = [\"zroot/s\"]\nretries = 2\n", "fleet.toml:5:1: hosts.a.unlock.retries: only applies to method \"luks-initrd\""),
        ("[hosts.a.unlock]\nmethod = \"luks-initrd\"\nsecret = \"env:K\"\nservices = [\"x.service\"]\n", "fleet.toml:4:1: hosts.a.unlock.services: only applies to method \"zfs\""),
        ("[hosts.a.unlock]\nmethod = \"zfs\"\nsecret = \"env:K\"\nencryption_roots = [\"zroot/s\"]\nservices = [\"--now\"]\n", "fleet.toml:5:13: hosts.a.unlock.services[0]: `--now` is not a systemd unit name"),
        ("[hosts.a.unlock]\nmethod = \"zfs\"\nsecret = \"env:K\"\nencryption_roots = [\"zroot/s\", \"zroot/s\"]\n", "fleet.toml:4:32: hosts.a.unlock.encryption_roots[1]: `zroot/s` is listed twice"),
        ("[hosts.a.unlock]\nmethod = \"luks-initrd\"\nsecret = \"env:K\"\ntimeout = \"0s\"\n", "fleet.toml:4:11: hosts.a.unlock.timeout: `0s` must be a positive duration"),
        ("[hosts.a.unlock]\nmethod = \"luks-initrd\"\nsecret = \"env:K\"\ninitrd_command = \"'open\"\n", "fleet.toml:4:18: hosts.a.unlock.initrd_command: `\\'open` is not a command: empty or unbalanced quotes\n  hint: for example initrd_command = \"cryptroot-unlock\""),
        ("[hosts.a.unlock]\nmethod = \"luks-initrd\"\nsecret = \"env:K\"\ninitrd_address = \"-oProxyCommand=x\"\n", "fleet.toml:4:18: hosts.a.unlock.initrd_address: an address may not start with `-`"),
        ("[hosts.a.unlock]\nmethod = \"luks-initrd\"\nsecret = \"env:K\"\ninitrd_known_hosts = \"/etc/zfleet/initrd\"\n[hosts.b.unlock]\nmethod = \"luks-initrd\"\nsecret = \"env:K\"\ninitrd_known_hosts = \"/etc/zfleet/initrd\"\n", "fleet.toml:8:22: hosts.b.unlock.initrd_known_hosts: `/etc/zfleet/initrd` already pins the initrd key of host `a`\n  hint: each host's initrd key is pinned in a file of its own"),
        // syntax
        ("[hosts.a\n", "fleet.toml:1:9: unclosed table, expected `]`"),
    ];
    for (src, want) in cases {
        let got = parse(src).map(|_| ()).unwrap_err();
        assert_eq!(&got, want, "for input:\n{src}");
    }
}

#[test]
fn unlock_defaults_and_keys() {
    let fleet = config::parse(
        r#"
[ssh]
identity = "/etc/zfleet/id_ed25519"
connect_timeout = "5s"

[hosts.alpha.unlock]
method = "luks-initrd"
secret = "op://nix/alpha/encryption"

[hosts.bravo.unlock]
method = "luks-initrd"
secret = "pass:hosts/bravo"
initrd_address = "10.0.0.2"
initrd_port = 2222
initrd_user = "unlock"
initrd_known_hosts = "pins/bravo"
initrd_command = "cryptroot-unlock"
retries = 1
timeout = "5m"

[hosts.vault.unlock]
method = "zfs"
secret = "file:/etc/zfleet/vault.key"
encryption_roots = ["zstorage/secure", "zroot/home"]
services = ["postgresql.service", "nfs-server"]
"#,
        Path::new("/etc/zfleet/fleet.toml"),
    )
    .unwrap();
    let alpha = fleet.host("alpha").unwrap().unlock.as_ref().unwrap();
    let initrd = alpha.initrd.as_ref().unwrap();
    assert_eq!(initrd.address, "alpha-initrd");
    assert_eq!(initrd.port, 22);
    assert_eq!(initrd.user.as_deref(), Some("root"));
    assert_eq!(
        initrd.identity.as_deref(),
        Some(Path::new("/etc/zfleet/id_ed25519")),
        "the initrd is reached with the host's identity"
    );
    assert_eq!(initrd.connect_timeout, std::time::Duration::from_secs(5));
    assert_eq!(
        initrd.known_hosts.as_deref(),
        Some(Path::new("/etc/zfleet/initrd_known_hosts/alpha")),
        "pinned next to the fleet file, one file per host"
    );
    assert_eq!(alpha.initrd_command, None);
    assert_eq!(alpha.retries, 0);
    assert_eq!(alpha.timeout, std::time::Duration::from_secs(180));

    let bravo = fleet.host("bravo").unwrap().unlock.as_ref().unwrap();
    let initrd = bravo.initrd.as_ref().unwrap();
    assert_eq!(
        (initrd.address.as_str(), initrd.port, initrd.user.as_deref()),
        ("10.0.0.2", 2222, Some("unlock"))
    );
    assert_eq!(
        initrd.known_hosts.as_deref(),
        Some(Path::new("/etc/zfleet/pins/bravo")),
        "relative to the fleet file"
    );
    assert_eq!(
        bravo.initrd_command.as_deref(),
        Some(&["cryptroot-unlock".to_string()][..])
    );
    assert_eq!(bravo.retries, 1);
    assert_eq!(bravo.timeout, std::time::Duration::from_secs(300));

    let vault = fleet.host("vault").unwrap().unlock.as_ref().unwrap();
    assert!(vault.initrd.is_none());
    assert_eq!(
        vault
            .encryption_roots
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>(),
        ["zstorage/secure", "zroot/home"]
    );
    assert_eq!(vault.services, ["postgresql.service", "nfs-server"]);
}

#[test]
fn all_rule_violations_are_reported_at_once() {
    let e = parse(
        "[hosts.a.snapshots.\"x/a b\"]\n[hosts.b.snapshots.\"x/y\"]\nuse_template = [\"nope\"]\n",
    )
    .unwrap_err();
    assert_eq!(
        e.lines().filter(|l| l.starts_with("fleet.toml:")).count(),
        2,
        "{e}"
    );
}

/// What a careless user or a hostile file can put in front of the parser: each
/// is refused with its place in the file, and nothing from the file reaches
/// the terminal raw.
#[test]
fn hostile_input_is_located_and_escaped() {
    let deep_dotted = format!("[hosts.a]\n{} = 1\n", vec!["k"; 100].join("."));
    let deep_header = format!("[{}]\n", vec!["k"; 100].join("."));
    let nested = format!("[hosts.a]\n{} = 1\n", vec!["k"; 40].join("."));
    let cases: Vec<(String, &str)> = vec![
        (deep_dotted, "fleet.toml:2:1: a key of 100 dotted parts is nested too deep to read; no fleet.toml key has more than six"),
        (deep_header, "fleet.toml:1:1: a key of 100 dotted parts is nested too deep to read; no fleet.toml key has more than six"),
        (nested, "fleet.toml:2:29: hosts.a.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k: tables and arrays nest more than 16 levels deep here; no fleet.toml key is nested that deep"),
        // Control characters in values are escaped in the message.
        ("[hosts.a.backup]\ndatasets = [\"zroot/x\\u001b[2J\\nfake: ok\"]\n".into(),
         "fleet.toml:2:13: hosts.a.backup.datasets[0]: invalid dataset name `zroot/x\\u{1b}[2J\\nfake: ok`: control character 0x1b at position 8 is not allowed (use letters, digits, `-`, `_`, `.`, `:`)"),
        ("[hosts.a.server]\ntarget_root = \"t/b\"\ncompress = \"x\\u001b]0;pwned\\u0007\"\n".into(),
         "fleet.toml:3:12: hosts.a.server.compress: `x\\u{1b}]0;pwned\\u{7}` is not understood; expected \"zstd\" or \"none\""),
        // Ports and paths that cannot be right.
        ("[ssh]\nport = 0\n[hosts.a]\n".into(), "fleet.toml:2:8: ssh.port: port 0 is not a port ssh can connect to; ports are 1 to 65535"),
        ("[hosts.a]\nport = 0\n".into(), "fleet.toml:2:8: hosts.a.port: port 0 is not a port ssh can connect to; ports are 1 to 65535"),
        ("[hosts.a.unlock]\nmethod = \"luks-initrd\"\nsecret = \"env:K\"\ninitrd_port = 0\n".into(), "fleet.toml:4:15: hosts.a.unlock.initrd_port: port 0 is not a port ssh can connect to; ports are 1 to 65535"),
        ("[ssh]\nidentity = \"\"\n[hosts.a]\n".into(), "fleet.toml:2:12: ssh.identity: is empty; give a path, or remove the key for the default"),
        ("[hosts.a]\nknown_hosts = \"\\n\"\n".into(), "fleet.toml:2:15: hosts.a.known_hosts: is empty; give a path, or remove the key for the default"),
        ("[hosts.a]\nidentity = \"/root/.ssh/id\\nx\"\n".into(), "fleet.toml:2:12: hosts.a.identity: a newline is not allowed in a path"),
        ("[fleet]\nbackup_identity = \"\"\n".into(), "fleet.toml:2:19: fleet.backup_identity: is empty; give a path, or remove the key for the default"),
        (format!("[hosts.a]\naddress = \"{}\"\n", "a".repeat(300)), "fleet.toml:2:11: hosts.a.address: an address of 300 bytes is longer than any host name or IP address (253 at most)"),
        // Servers whose markers would be the same.
        ("[hosts.Backup.server]\ntarget_root = \"t/a\"\n[hosts.backup.server]\ntarget_root = \"t/b\"\n".into(),
         "fleet.toml:3:8: hosts.backup: backup servers `Backup` and `backup` differ only in case; they would share the base marker and hold tag `zfleet:base:backup` (ZFS user properties are lower case)\n  hint: give every backup server a name that differs from the others in more than case"),
        ("[hosts.sync.server]\ntarget_root = \"t/a\"\n".into(),
         "fleet.toml:1:8: hosts.sync: a backup server may not be called `sync`: its base marker `zfleet:base:sync` is the one `zfleet sync` uses\n  hint: rename the host"),
    ];
    for (src, want) in &cases {
        let got = parse(src).map(|_| ()).unwrap_err();
        assert_eq!(&got, want, "for input:\n{src}");
    }
    // `backup` and `backup_2` are different servers with names of their own.
    parse("[hosts.backup.server]\ntarget_root = \"t/a\"\n[hosts.backup_2.server]\ntarget_root = \"t/b\"\n").unwrap();
}

#[test]
fn only_a_regular_file_of_sane_size_is_read() {
    let dir = std::env::temp_dir().join(format!("zfleet-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let load = |p: &Path| config::load(p).map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        load(Path::new("/dev/zero")),
        "/dev/zero: cannot read the fleet file: it is a device, not a regular file\n  hint: point --config at the fleet.toml itself"
    );
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Returns at once instead of waiting for a writer.
    assert!(load(&fifo).ends_with("cannot read the fleet file: it is a FIFO, not a regular file\n  hint: point --config at the fleet.toml itself"));
    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; 5 << 20]).unwrap();
    assert!(load(&big)
        .ends_with("big.toml: the fleet file is larger than 4 MiB; that is not a fleet file"));
    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"[hosts.a]\naddress = \"caf\xe9\"\n").unwrap();
    assert!(load(&latin1).ends_with("latin1.toml:2:15: the file is not UTF-8 text: byte 0xe9 cannot start or continue a character\n  hint: save the fleet file as UTF-8"), "{}", load(&latin1));
    let _ = std::fs::remove_dir_all(&dir);
}

/// 20,000 hosts that share one address: one error each, found in linear time
/// (it took 3.6 s when every error searched the file from the top).
#[test]
fn many_errors_are_located_quickly() {
    let src: String = (0..20_000)
        .map(|i| format!("[hosts.h{i}]\naddress = \"same\"\n"))
        .collect();
    let start = std::time::Instant::now();
    let e = parse(&src).unwrap_err();
    let took = start.elapsed();
    assert_eq!(
        e.lines()
            .filter(|l| l.contains("has the same address"))
            .count(),
        19_999
    );
    assert!(
        e.contains("fleet.toml:39999:8: hosts.h19999: has the same address `same:22` as host `h0`"),
        "{}",
        &e[e.len() - 300..]
    );
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
}
