//! syncoid jobs as the seed's backup server ran them, and every flag a
//! pull backup can or cannot carry over.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::import::import;
use super::sources::{from_text, from_unit, Job};

/// The unit NixOS's syncoid module writes for
/// `services.syncoid.commands."alphaSave"` on the seed's backup server
/// (`commonArgs = ["--no-sync-snap"]`, `recvOptions = "c"`, the key from
/// `services.syncoid.sshKey`), and its timer (`interval = "daily"`).
const SEED_SERVICE: &str = r#"[Unit]
After=zfs.target
Description=Syncoid ZFS synchronization from syncoid@alpha:zroot/persistSave to zstorage/backups/alpha

[Service]
ExecStart=/nix/store/9x3-sanoid-2.2.0/bin/syncoid --no-sync-snap --sshkey /var/lib/syncoid/.ssh/id_ed25519 --sendoptions '' --recvoptions c --no-privilege-elevation syncoid@alpha:zroot/persistSave zstorage/backups/alpha
Group=syncoid
PrivateTmp=true
User=syncoid
"#;

const SEED_TIMER: &str = "[Timer]\nOnCalendar=daily\n";

/// The server's own job (`"${thisHost}Save"`), local to local.
const SEED_LOCAL: &str = "[Service]\nUser=syncoid\nExecStart=/nix/store/9x3-sanoid-2.2.0/bin/syncoid --no-sync-snap --sendoptions '' --recvoptions c --no-privilege-elevation zroot/persistSave zstorage/backups/vault\n";

fn seed_jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for host in ["alpha", "bravo"] {
        let service = SEED_SERVICE.replace("alpha", host);
        let f = from_unit(
            &format!("/etc/systemd/system/syncoid-{host}Save.service"),
            &service,
            Some(SEED_TIMER),
        );
        assert!(f.notes.is_empty(), "{:?}", f.notes);
        jobs.extend(f.jobs);
    }
    jobs.extend(
        from_unit(
            "/etc/systemd/system/syncoid-vaultSave.service",
            SEED_LOCAL,
            None,
        )
        .jobs,
    );
    jobs
}

#[test]
fn the_seeds_backup_server() {
    let r = import("vault", &seed_jobs(), &["zroot".into(), "zstorage".into()]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // A fleet file zfleet accepts, with the two clients and the server.
    let fleet = crate::config::parse(&r.toml, std::path::Path::new("imported.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", r.toml));
    let plan = fleet.server_plan("vault").unwrap();
    let jobs: Vec<String> = plan.jobs.iter().map(|j| j.describe()).collect();
    assert_eq!(
        jobs,
        [
            "alpha:zroot/persistSave → zstorage/backups/alpha/zroot/persistSave",
            "bravo:zroot/persistSave → zstorage/backups/bravo/zroot/persistSave"
        ]
    );
    assert_eq!(plan.jobs[0].ssh.user.as_deref(), Some("syncoid"));
    assert_eq!(
        plan.jobs[0].ssh.identity.as_deref(),
        Some(std::path::Path::new("/var/lib/syncoid/.ssh/id_ed25519"))
    );
    assert!(!plan.jobs[0].sync_snapshot, "--no-sync-snap");
    // The seed's `c`, refused by name, and the rest of the job imported.
    let c: Vec<&String> = r
        .notes
        .iter()
        .filter(|n| n.contains("--recvoptions=c"))
        .collect();
    assert_eq!(c.len(), 3, "{:#?}", r.notes);
    assert!(c[0].contains("corrective (healing) receive") && c[0].contains("not carried over"));
    // The local job is listed, with what to run instead.
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("syncoid-vaultSave.service")
                && n.contains("zfleet sync zroot/persistSave zstorage/backups/vault")),
        "{:#?}",
        r.notes
    );
    // syncoid's backups are at zstorage/backups/alpha: how to move them.
    assert_eq!(r.migrations.len(), 2, "{:#?}", r.migrations);
    assert!(r.migrations[0].contains(
        "    zfs rename zstorage/backups/alpha zstorage/backups/alpha.syncoid\n    zfs create -p -o canmount=off zstorage/backups/alpha/zroot\n    zfs rename zstorage/backups/alpha.syncoid zstorage/backups/alpha/zroot/persistSave"
    ), "{}", r.migrations[0]);
    // Every line that sets something says where it came from.
    for line in r
        .toml
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "]")
    {
        assert!(
            line.contains("  # /etc/systemd/system/syncoid-"),
            "no origin: {line}"
        );
    }
    insta::assert_snapshot!("seed_server_toml", r.toml);
    insta::assert_snapshot!("seed_server_notes", r.notes.join("\n"));
}

#[test]
fn seed_command_lines_from_a_file() {
    // The same invocations typed one per line, plus the seed's restore.
    let text = "\
syncoid --no-sync-snap --sendoptions '' --recvoptions c --no-privilege-elevation syncoid@alpha:zroot/persistSave zstorage/backups/alpha
syncoid admin@backupserver:zstorage/backups/client admin@client:zpool/persistSave
";
    let f = from_text("jobs.txt", text);
    let r = import("vault", &f.jobs, &[]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(
        r.toml.contains("[hosts.alpha.backup]  # jobs.txt:1"),
        "{}",
        r.toml
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("jobs.txt:2:") && n.contains("zfleet restore")),
        "{:#?}",
        r.notes
    );
    assert!(
        !r.toml.contains("backupserver"),
        "the restore makes no host: {}",
        r.toml
    );
}

fn one(line: &str) -> super::import::Imported {
    let f = from_text("jobs.txt", line);
    assert_eq!(f.jobs.len(), 1, "{line}");
    import("srv", &f.jobs, &[])
}

/// Flags that mean something for a pull backup become keys of the file.
#[test]
fn carried_over_flags() {
    let r = one("syncoid --sshport=2222 --sshkey /k --compress=zstd-fast -o UserKnownHostsFile=/kh root@c.example.org:tank/a bk/c/tank/a");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let fleet = crate::config::parse(&r.toml, std::path::Path::new("x.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", r.toml));
    let c = fleet.host("c").unwrap();
    assert_eq!(c.ssh.address, "c.example.org");
    assert_eq!(c.ssh.port, 2222);
    assert_eq!(
        c.ssh.known_hosts.as_deref(),
        Some(std::path::Path::new("/kh"))
    );
    let plan = fleet.server_plan("srv").unwrap();
    // `bk/c/tank/a` is exactly zfleet's layout under `bk`: nothing to move.
    assert_eq!(plan.target_root.as_str(), "bk");
    assert!(r.migrations.is_empty(), "{:?}", r.migrations);
    let job = &plan.jobs[0];
    assert_eq!(job.ssh.user.as_deref(), Some("root"));
    assert_eq!(
        job.ssh.identity.as_deref(),
        Some(std::path::Path::new("/k"))
    );
    assert!(
        job.sync_snapshot,
        "no --no-sync-snap: syncoid took sync snapshots"
    );
    assert_eq!(job.compress, crate::config::Compression::Zstd);
    // Nothing about these four in the notes but the -F default.
    assert_eq!(r.notes.len(), 1, "{:#?}", r.notes);
    assert!(r.notes[0].contains("-F"), "{:?}", r.notes);
}

#[test]
fn a_push_job() {
    let r = one("syncoid --no-sync-snap tank/home backup@nas:pool/backups/srv/tank/home");
    let fleet = crate::config::parse(&r.toml, std::path::Path::new("x.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", r.toml));
    let client = fleet.host("srv").unwrap().client.clone().unwrap();
    assert!(client.push);
    assert_eq!(client.datasets[0].as_str(), "tank/home");
    assert_eq!(
        fleet.host("nas").unwrap().ssh.user.as_deref(),
        Some("backup")
    );
    let jobs = fleet.plan().servers[0].jobs.clone();
    assert_eq!(jobs[0].target.as_str(), "pool/backups/srv/tank/home");
}

/// Every flag: what the note says about it (or that it became a key).
#[rstest::rstest]
#[case("-r", "list each child")]
#[case("--skip-parent", "not the parent")]
#[case("--exclude=tmp", "leave the excluded children out")]
#[case("--exclude-datasets=tmp", "leave the excluded children out")]
#[case("--include-snaps=^auto", "not carried over")]
#[case("--exclude-snaps=frequent", "not carried over")]
#[case("--no-stream", "snapshots in between")]
#[case("--keep-sync-snap", "own older sync snapshots")]
#[case("--identifier=x", "server's name")]
#[case("--create-bookmark", "bookmark")]
#[case("--use-hold", "holds the common snapshot")]
#[case("--no-resume", "resumes")]
#[case("--no-rollback", "never rolled back unless")]
#[case("--force-delete", "never destroys")]
#[case("--delete-target-snapshots", "never destroys")]
#[case("--no-clone-handling", "full datasets")]
#[case("--no-privilege-elevation", "zfs allow")]
#[case("--preserve-properties", "preserve_properties")]
#[case("--preserve-recordsize", "recordsize by default")]
#[case("--source-bwlimit=1M", "--rate-limit")]
#[case("--target-bwlimit=1M", "--rate-limit")]
#[case("--mbuffer-size=64M", "--buffer")]
#[case("--sshconfig=/etc/x", "does not read another ssh_config")]
#[case("--sshcipher=aes128-ctr", "cipher")]
#[case("-o Compression=yes", "no other ssh options")]
#[case("-o StrictHostKeyChecking=no", "always runs ssh with BatchMode=yes")]
#[case("--insecure-direct-connection=1.2.3.4:5", "always sends over ssh")]
#[case("--pv-options=-p", "means nothing for a zfleet backup")]
#[case("--no-command-checks", "means nothing for a zfleet backup")]
#[case("--debug", "means nothing for a zfleet backup")]
#[case("--quiet", "means nothing for a zfleet backup")]
#[case("--dumpsnaps", "means nothing for a zfleet backup")]
#[case("--monitor-version", "means nothing for a zfleet backup")]
#[case("--sendoptions=w", "raw by default")]
#[case("--sendoptions=Lce", "-L -e -c already")]
#[case("--sendoptions=p", "records the source's properties")]
#[case("--sendoptions=R", "replication stream")]
#[case("--recvoptions=u", "-u already")]
#[case(
    "--recvoptions='o compression=lz4'",
    "zfs set compression=lz4 TARGET_ROOT"
)]
#[case("--recvoptions='x mountpoint'", "`x mountpoint`: not carried over")]
#[case("--recvoptions=c", "corrective (healing) receive")]
#[case("--sendoptions=q", "`q` is not an option of zfs send")]
#[case("--compress=lz4", "zfleet compresses with zstd")]
fn every_flag_is_carried_over_or_listed(#[case] flag: &str, #[case] expected: &str) {
    let r = one(&format!("syncoid {flag} root@c:tank/a bk/c/tank/a"));
    assert!(r.errors.is_empty(), "{flag}: {:?}", r.errors);
    let first = flag.split(['=', ' ']).next().unwrap();
    let long = match first {
        "-r" => "--recursive",
        "-o" => "--sshoption",
        f => f,
    };
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains(long) && n.contains(expected)),
        "{flag}: {:#?}",
        r.notes
    );
    // The job is still imported.
    assert!(r.toml.contains("[hosts.c.backup]"), "{flag}: {}", r.toml);
    crate::config::parse(&r.toml, std::path::Path::new("x.toml"))
        .unwrap_or_else(|e| panic!("{flag}: {e}\n{}", r.toml));
}

#[test]
fn jobs_that_cannot_be_imported_are_errors_with_their_origin() {
    let f = from_text(
        "jobs.txt",
        "syncoid only-one-operand\nsyncoid --frobnicate c:a/b d/e\n",
    );
    let r = import("srv", &f.jobs, &[]);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].starts_with("jobs.txt:1: only one dataset"),
        "{:?}",
        r.errors
    );
    // An unknown flag is left out, listed, and the job imported.
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("jobs.txt:2: `--frobnicate`: not a syncoid flag")),
        "{:#?}",
        r.notes
    );
    assert!(r.toml.contains("[hosts.c.backup]"));
}

#[test]
fn host_names_from_addresses() {
    use super::import::host_name;
    assert_eq!(host_name("alpha.tail1234.ts.net"), "alpha");
    assert_eq!(host_name("10.0.0.2"), "10-0-0-2");
    assert_eq!(host_name("[fd00::1]"), "fd00--1");
    assert_eq!(host_name("nas"), "nas");
}
