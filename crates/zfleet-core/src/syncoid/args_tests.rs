//! syncoid's command line, flag by flag, in both of Getopt::Long's forms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rstest::rstest;

use super::args::{parse, Amount, Compress, DirectConnection, Flag, Invocation, SyncoidArgs};
use super::zfs_options::{RecvOption, SendContext, SendOption};
use crate::zfs::DatasetName;

fn sync(words: &[&str]) -> SyncoidArgs {
    match parse(words) {
        Ok(Invocation::Sync(a)) => *a,
        other => panic!("{words:?}: {other:?}"),
    }
}

fn error(words: &[&str]) -> String {
    match parse(words) {
        Err(e) => e.to_string(),
        Ok(other) => panic!("{words:?} was accepted: {other:?}"),
    }
}

/// `words` with the two operands appended.
fn with_operands(words: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
    v.push("tank/src".into());
    v.push("backup/dst".into());
    v
}

fn sync_owned(words: Vec<String>) -> SyncoidArgs {
    match parse(&words) {
        Ok(Invocation::Sync(a)) => *a,
        other => panic!("{words:?}: {other:?}"),
    }
}

/// The two forms of a flag with a value give the same result, and the
/// operands stay where they were.
#[rstest]
#[case("--compress", "zstd-fast")]
#[case("--identifier", "nightly")]
#[case("--exclude", "^tank/src/tmp")]
#[case("--exclude-datasets", "cache$")]
#[case("--include-snaps", "^autosnap_")]
#[case("--exclude-snaps", "_frequently$")]
#[case("--source-bwlimit", "10M")]
#[case("--target-bwlimit", "512k")]
#[case("--mbuffer-size", "128M")]
#[case("--pv-options", "-p -t")]
#[case("--sendoptions", "Lc e")]
#[case("--recvoptions", "ux recordsize o compression=lz4")]
#[case("--sshconfig", "/etc/syncoid/ssh_config")]
#[case("--sshkey", "/var/lib/syncoid/.ssh/id_ed25519")]
#[case("--sshport", "2222")]
#[case("--sshcipher", "aes128-gcm@openssh.com")]
#[case("--sshoption", "StrictHostKeyChecking=yes")]
#[case("--insecure-direct-connection", "10.0.0.2:9000")]
fn values_in_both_forms(#[case] flag: &str, #[case] value: &str) {
    let joined = sync_owned(with_operands(&[&format!("{flag}={value}")]));
    let separate = sync_owned(with_operands(&[flag, value]));
    assert_eq!(joined, separate, "{flag}");
    assert_eq!(joined.source.dataset.as_str(), "tank/src");
    assert_eq!(joined.target.dataset.as_str(), "backup/dst");
    assert_eq!(joined.given.len(), 1);
    assert_eq!(joined.given[0].value.as_deref(), Some(value));
    assert_eq!(format!("{}", joined.given[0].flag), flag);
}

/// Each flag with a value lands in its own field, with syncoid's meaning.
#[test]
fn each_value_flag_means_what_syncoid_means() {
    let a = sync_owned(with_operands(&[
        "--compress=zstd-fast",
        "--identifier=nightly",
        "--exclude=^tank/src/tmp",
        "--exclude-datasets=cache$",
        "--include-snaps=^autosnap_",
        "--exclude-snaps=_frequently$",
        "--source-bwlimit=10M",
        "--target-bwlimit=1.5k",
        "--mbuffer-size=10%",
        "--pv-options=-p -t",
        "--sendoptions=Lc e",
        "--recvoptions=ux recordsize o compression=lz4",
        "--sshconfig=/etc/syncoid/ssh_config",
        "--sshkey=/k",
        "--sshport=2222",
        "--sshcipher=aes128-ctr",
        "--sshoption=Compression=no",
        "-o",
        "ServerAliveInterval=10",
        "--insecure-direct-connection=10.0.0.1:9000,10.0.0.2:9001,30,mbuffer",
    ]));
    assert_eq!(a.compress, Some(Compress::ZstdFast));
    assert_eq!(a.identifier.as_deref(), Some("nightly"));
    assert_eq!(a.exclude, ["^tank/src/tmp"]);
    assert_eq!(a.exclude_datasets, ["cache$"]);
    // --exclude-datasets wins over the deprecated --exclude, as in syncoid.
    assert_eq!(a.dataset_excludes(), ["cache$"]);
    assert_eq!(a.include_snaps, ["^autosnap_"]);
    assert_eq!(a.exclude_snaps, ["_frequently$"]);
    assert_eq!(a.source_bwlimit, Some(Amount::Bytes(10 << 20)));
    assert_eq!(a.target_bwlimit, Some(Amount::Bytes(1536)));
    assert_eq!(a.mbuffer_size, Some(Amount::PercentOfMemory(10.0)));
    assert_eq!(a.pv_options.as_deref(), Some("-p -t"));
    assert_eq!(
        a.send_options.0,
        [
            SendOption::LargeBlocks,
            SendOption::Compressed,
            SendOption::Embedded
        ]
    );
    assert_eq!(
        a.recv_options.0,
        [
            RecvOption::NoMount,
            RecvOption::ExcludeProperty("recordsize".into()),
            RecvOption::SetProperty {
                name: "compression".into(),
                value: "lz4".into()
            },
        ]
    );
    assert_eq!(
        a.recv_options.argv(),
        ["-u", "-x", "recordsize", "-o", "compression=lz4"]
    );
    assert_eq!(a.ssh.config.as_deref(), Some("/etc/syncoid/ssh_config"));
    assert_eq!(a.ssh.key.as_deref(), Some("/k"));
    assert_eq!(a.ssh.port, Some(2222));
    assert_eq!(a.ssh.cipher.as_deref(), Some("aes128-ctr"));
    assert_eq!(a.ssh.options, ["Compression=no", "ServerAliveInterval=10"]);
    assert_eq!(
        a.insecure_direct_connection,
        Some(DirectConnection {
            connect: "10.0.0.1:9000".into(),
            listen: "10.0.0.2:9001".into(),
            timeout_secs: 30,
            mbuffer: true,
        })
    );
}

/// Every switch, in its long form, its single-dash form and in capitals
/// (Getopt::Long ignores case), sets its own field and no other.
#[rstest]
#[case("--recursive", |a: &SyncoidArgs| a.recursive)]
#[case("--skip-parent", |a: &SyncoidArgs| a.skip_parent)]
#[case("--no-stream", |a: &SyncoidArgs| a.no_stream)]
#[case("--no-sync-snap", |a: &SyncoidArgs| a.no_sync_snap)]
#[case("--keep-sync-snap", |a: &SyncoidArgs| a.keep_sync_snap)]
#[case("--create-bookmark", |a: &SyncoidArgs| a.create_bookmark)]
#[case("--use-hold", |a: &SyncoidArgs| a.use_hold)]
#[case("--no-resume", |a: &SyncoidArgs| a.no_resume)]
#[case("--no-rollback", |a: &SyncoidArgs| a.no_rollback)]
#[case("--force-delete", |a: &SyncoidArgs| a.force_delete)]
#[case("--delete-target-snapshots", |a: &SyncoidArgs| a.delete_target_snapshots)]
#[case("--no-clone-handling", |a: &SyncoidArgs| a.no_clone_handling)]
#[case("--no-privilege-elevation", |a: &SyncoidArgs| a.no_privilege_elevation)]
#[case("--no-command-checks", |a: &SyncoidArgs| a.no_command_checks)]
#[case("--preserve-properties", |a: &SyncoidArgs| a.preserve_properties)]
#[case("--preserve-recordsize", |a: &SyncoidArgs| a.preserve_recordsize)]
#[case("--debug", |a: &SyncoidArgs| a.debug)]
#[case("--quiet", |a: &SyncoidArgs| a.quiet)]
#[case("--dumpsnaps", |a: &SyncoidArgs| a.dumpsnaps)]
#[case("--monitor-version", |a: &SyncoidArgs| a.monitor_version)]
fn switches(#[case] flag: &str, #[case] field: fn(&SyncoidArgs) -> bool) {
    let none = sync_owned(with_operands(&[]));
    assert!(!field(&none), "{flag} is off by default");
    let single_dash = &flag[1..];
    let upper = flag.to_ascii_uppercase();
    for form in [flag, single_dash, upper.as_str()] {
        let a = sync_owned(with_operands(&[form]));
        assert!(field(&a), "{form}");
        assert_eq!(a.given.len(), 1);
        // No other field moved.
        let (on, off) = (
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&none).unwrap(),
        );
        let moved: Vec<&String> = on
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| *k != "given" && off.get(k.as_str()) != Some(v))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(moved.len(), 1, "{form} moved {moved:?}");
    }
    let err = error(&[&format!("{flag}=1"), "a/b", "c/d"]);
    assert!(err.contains("does not take a value"), "{err}");
}

#[test]
fn every_flag_is_in_the_tables_above() {
    // Keeps the two tables of this file in step with the flag list.
    let covered = [
        "compress",
        "identifier",
        "exclude",
        "exclude-datasets",
        "include-snaps",
        "exclude-snaps",
        "source-bwlimit",
        "target-bwlimit",
        "mbuffer-size",
        "pv-options",
        "sendoptions",
        "recvoptions",
        "sshconfig",
        "sshkey",
        "sshport",
        "sshcipher",
        "sshoption",
        "insecure-direct-connection",
        "recursive",
        "skip-parent",
        "no-stream",
        "no-sync-snap",
        "keep-sync-snap",
        "create-bookmark",
        "use-hold",
        "no-resume",
        "no-rollback",
        "force-delete",
        "delete-target-snapshots",
        "no-clone-handling",
        "no-privilege-elevation",
        "no-command-checks",
        "preserve-properties",
        "preserve-recordsize",
        "debug",
        "quiet",
        "dumpsnaps",
        "monitor-version",
        "help",
        "version",
    ];
    let all: Vec<&str> = Flag::all().map(Flag::name).collect();
    for name in &all {
        assert!(covered.contains(name), "--{name} has no test");
    }
    assert_eq!(all.len(), covered.len());
}

#[rstest]
#[case::short_r(&["-r", "a/b", "c/d"])]
#[case::double_dash_r(&["--r", "a/b", "c/d"])]
#[case::abbreviation(&["--recurs", "a/b", "c/d"])]
#[case::after_operands(&["a/b", "c/d", "--recursive"])]
#[case::between_operands(&["a/b", "-R", "c/d"])]
fn getopt_long_forms(#[case] words: &[&str]) {
    let a = sync(words);
    assert!(a.recursive);
    assert_eq!(a.source.dataset.as_str(), "a/b");
    assert_eq!(a.target.dataset.as_str(), "c/d");
}

#[test]
fn short_aliases_of_cipher_and_option() {
    let a = sync(&["-c", "aes256-ctr", "-o", "A=1", "-o=B=2", "a/b", "c/d"]);
    assert_eq!(a.ssh.cipher.as_deref(), Some("aes256-ctr"));
    assert_eq!(a.ssh.options, ["A=1", "B=2"]);
}

#[test]
fn a_value_is_the_next_word_whatever_it_looks_like() {
    let a = sync(&["--pv-options", "-q", "a/b", "c/d"]);
    assert_eq!(a.pv_options.as_deref(), Some("-q"));
}

#[test]
fn double_dash_ends_the_flags() {
    let a = sync(&["--quiet", "--", "a/b", "c/d"]);
    assert!(a.quiet);
    let err = error(&["--", "--quiet", "a/b", "c/d"]);
    assert!(
        err.contains("syncoid copies one SOURCE to one TARGET"),
        "{err}"
    );
}

#[test]
fn the_last_of_a_repeated_value_wins_and_lists_add_up() {
    let a = sync(&[
        "--sshport=1",
        "--sshport=2",
        "--exclude=x",
        "--exclude=y",
        "a/b",
        "c/d",
    ]);
    assert_eq!(a.ssh.port, Some(2));
    assert_eq!(a.exclude, ["x", "y"]);
    // No --exclude-datasets: the deprecated --exclude applies.
    assert_eq!(a.dataset_excludes(), ["x", "y"]);
}

#[test]
fn help_and_version() {
    assert_eq!(parse(["--help"]).unwrap(), Invocation::Help);
    assert_eq!(parse(["-h"]).unwrap(), Invocation::Help);
    assert_eq!(parse(["-?"]).unwrap(), Invocation::Help);
    assert_eq!(parse(["--version"]).unwrap(), Invocation::Version);
}

#[test]
fn compression_defaults_and_aliases() {
    assert_eq!(sync(&["a/b", "c/d"]).compression(), Compress::Lzo);
    assert_eq!(
        sync(&["--compress=default", "a/b", "c/d"]).compress,
        Some(Compress::Lzo)
    );
    for (name, c) in [
        ("none", Compress::None),
        ("gzip", Compress::Gzip),
        ("pigz-fast", Compress::PigzFast),
        ("pigz-slow", Compress::PigzSlow),
        ("zstd-fast", Compress::ZstdFast),
        ("zstdmt-fast", Compress::ZstdmtFast),
        ("zstd-slow", Compress::ZstdSlow),
        ("zstdmt-slow", Compress::ZstdmtSlow),
        ("lz4", Compress::Lz4),
        ("xz", Compress::Xz),
        ("lzo", Compress::Lzo),
    ] {
        let a = sync(&["--compress", name, "a/b", "c/d"]);
        assert_eq!(a.compress, Some(c));
        assert_eq!(c.name(), name);
    }
}

#[rstest]
#[case::unknown_flag(&["--frobnicate", "a/b", "c/d"], "`--frobnicate`: not a syncoid flag")]
#[case::ambiguous(&["--no-s", "a/b", "c/d"], "ambiguous: it abbreviates --no-stream, --no-sync-snap")]
#[case::missing_value(&["a/b", "c/d", "--sshkey"], "--sshkey needs a value")]
#[case::port_not_a_number(&["--sshport=ssh", "a/b", "c/d"], "--sshport takes a number, not `ssh`")]
#[case::port_out_of_range(&["--sshport=70000", "a/b", "c/d"], "a port is a number from 1 to 65535")]
#[case::port_zero(&["--sshport", "0", "a/b", "c/d"], "a port is a number from 1 to 65535")]
#[case::unknown_compression(&["--compress=zstd", "a/b", "c/d"], "not a compression method")]
#[case::identifier_with_semicolon(&["--identifier=a;b", "a/b", "c/d"], "is not allowed in an identifier")]
#[case::bad_rate(&["--source-bwlimit=fast", "a/b", "c/d"], "not a rate")]
#[case::percent_rate(&["--target-bwlimit=5%", "a/b", "c/d"], "not a rate")]
#[case::bad_size(&["--mbuffer-size=12Q", "a/b", "c/d"], "not a size")]
#[case::bad_regex(&["--exclude-datasets=(", "a/b", "c/d"], "not a regular expression")]
#[case::lookahead(&["--exclude-snaps=^(?!auto)", "a/b", "c/d"], "not a regular expression")]
#[case::no_operands(&["--quiet"], "no SOURCE and TARGET")]
#[case::one_operand(&["a/b"], "only one dataset (`a/b`)")]
#[case::three_operands(&["a/b", "c/d", "e/f"], "3 operands")]
#[case::recursive_and_replicate(&["-r", "--sendoptions=R", "a/b", "c/d"], "do not go together")]
#[case::sshkey_option(&["--sshkey=-oProxyCommand=x", "a/b", "c/d"], "may not start with `-`")]
#[case::direct_two_remotes(&["--insecure-direct-connection=1.2.3.4:5", "h:a/b", "g:c/d"], "needs one side on this machine")]
#[case::direct_too_many(&["--insecure-direct-connection=a:1,b:2,3,mbuffer,x", "a/b", "c/d"], "at most four parts")]
#[case::direct_bad_timeout(&["--insecure-direct-connection=a:1,b:2,soon", "a/b", "c/d"], "timeout in seconds")]
#[case::direct_bad_fourth(&["--insecure-direct-connection=a:1,b:2,3,nc", "a/b", "c/d"], "can only be `mbuffer`")]
fn refused(#[case] words: &[&str], #[case] expected: &str) {
    let err = error(words);
    assert!(err.contains(expected), "{words:?}: {err}");
}

/// The seed's `recvOptions = "c"`: syncoid passes only h, o, x, u and v to
/// `zfs receive` and dropped the `c` without a word for two years.
#[test]
fn the_seeds_recvoptions_c_is_refused_with_what_c_is() {
    let err = error(&["--recvoptions", "c", "a/b", "c/d"]);
    assert!(err.starts_with("`--recvoptions=c`: "), "{err}");
    assert!(err.contains("corrective (healing) receive"), "{err}");
    assert!(err.contains("syncoid drops it"), "{err}");
}

#[rstest]
#[case::unknown_send_letter("--sendoptions", "Lq", "`q` is not an option of zfs send")]
#[case::send_dry_run("--sendoptions", "n", "`n` is a dry run")]
#[case::send_receive_letter("--sendoptions", "x compression", "option of zfs receive")]
#[case::send_value_not_last("--sendoptions", "Xc tank/a", "must be the last letter")]
#[case::send_missing_value("--sendoptions", "X", "takes a value (the next word)")]
#[case::send_bad_dataset("--sendoptions", "R X tank/a;b", "`X tank/a;b`")]
#[case::recv_force("--recvoptions", "F", "`--no-rollback`")]
#[case::recv_resume("--recvoptions", "s", "`--no-resume`")]
#[case::recv_send_letter("--recvoptions", "w", "option of zfs send")]
#[case::recv_unknown("--recvoptions", "uq", "`q` is not an option of zfs receive")]
#[case::recv_property_without_value("--recvoptions", "o compression", "`o name=value`")]
#[case::recv_bad_property("--recvoptions", "o Comp=lz4", "not a property name")]
#[case::recv_empty_value("--recvoptions", "o compression=", "empty")]
fn zfs_options_refused(#[case] flag: &str, #[case] value: &str, #[case] expected: &str) {
    let err = error(&[flag, value, "a/b", "c/d"]);
    assert!(err.contains(expected), "{flag} {value:?}: {err}");
}

#[test]
fn send_options_are_filtered_per_kind_of_send_as_syncoid_does() {
    let a = sync(&["--sendoptions=-Lcw p X tank/x,tank/y", "a/b", "c/d"]);
    assert_eq!(
        a.send_options.argv(SendContext::Snapshot),
        ["-L", "-c", "-w", "-p", "-X", "tank/x,tank/y"]
    );
    assert_eq!(
        a.send_options.argv(SendContext::Bookmark),
        ["-L", "-c", "-w"]
    );
    assert!(a.send_options.argv(SendContext::Resume).is_empty());
    let v = sync(&["--sendoptions=Pv e", "a/b", "c/d"]);
    assert_eq!(v.send_options.argv(SendContext::Resume), ["-P", "-v", "-e"]);
    assert_eq!(v.send_options.argv(SendContext::ResumeEstimate), ["-e"]);
    assert_eq!(v.send_options.argv(SendContext::SnapshotEstimate), ["-e"]);
}

#[test]
fn empty_option_strings_are_no_options() {
    // NixOS always passes both, empty unless set.
    let a = sync(&["--sendoptions", "", "--recvoptions", "", "a/b", "c/d"]);
    assert!(a.send_options.is_empty() && a.recv_options.is_empty());
    assert_eq!(a.given.len(), 2);
}

#[rstest]
#[case::user_host(
    "syncoid@alpha:zroot/persistSave",
    Some("syncoid"),
    Some("alpha"),
    "zroot/persistSave"
)]
#[case::no_user("@alpha:zroot/a", None, Some("alpha"), "zroot/a")]
#[case::host_only(
    "backup.example.org:tank/b",
    None,
    Some("backup.example.org"),
    "tank/b"
)]
#[case::local("zstorage/backups/alpha", None, None, "zstorage/backups/alpha")]
#[case::colon_after_slash("tank/a:b", None, None, "tank/a:b")]
fn operands(
    #[case] raw: &str,
    #[case] user: Option<&str>,
    #[case] host: Option<&str>,
    #[case] dataset: &str,
) {
    let a = sync(&[raw, "x/y"]);
    assert_eq!(a.source.user(), user);
    assert_eq!(a.source.host(), host);
    assert_eq!(a.source.dataset.as_str(), dataset);
    assert_eq!(a.source.raw, raw);
}

#[test]
fn host_colon_dataset_is_local_when_such_a_pool_exists() {
    let mut a = sync(&["tank:x/data", "backup:y"]);
    assert_eq!(a.source.host(), Some("tank"));
    a.source.resolve_local_pools(&["tank:x", "rpool"]);
    assert!(!a.source.is_remote());
    assert_eq!(a.source.dataset, DatasetName::parse("tank:x/data").unwrap());
    // Only `host:` without a user can be a pool.
    let mut b = sync(&["root@tank:x/data", "y/z"]);
    b.source.resolve_local_pools(&["tank"]);
    assert_eq!(b.source.host(), Some("tank"));
}

#[rstest]
#[case::snapshot("tank/a@snap", "not single snapshots")]
#[case::no_colon("root@host", "`[user@]host:dataset`")]
#[case::bad_user("Root@host:tank/a", "not a valid user name")]
#[case::option_host("-oProxyCommand=x:tank/a", "may not start with `-`")]
#[case::bad_dataset("root@host:tank/a b", "invalid dataset name")]
fn bad_operands(#[case] raw: &str, #[case] expected: &str) {
    let err = error(&["--", raw, "x/y"]);
    assert!(err.contains(expected), "{raw}: {err}");
    assert!(err.starts_with(&format!("`{raw}`")), "{err}");
}

/// The seed's backup server, as NixOS's syncoid module writes its units
/// (`escapeShellArgs`: common args, then `--sendoptions`, `--recvoptions`,
/// `--no-privilege-elevation` always), and the restore it runs by hand.
#[test]
fn the_seeds_invocations() {
    let words = |line: &str| shlex::split(line).unwrap();
    // services.syncoid.commands."${hostName}Save" with recvOptions = "c":
    // refused, naming the flag and what `c` is.
    let pulled = words("--no-sync-snap --sendoptions '' --recvoptions c --no-privilege-elevation syncoid@alpha:zroot/persistSave zstorage/backups/alpha");
    let err = parse(&pulled).unwrap_err();
    assert_eq!(err.arg.as_deref(), Some("--recvoptions=c"));
    // The same job without it.
    let pulled = words("--no-sync-snap --sendoptions '' --recvoptions '' --no-privilege-elevation syncoid@alpha:zroot/persistSave zstorage/backups/alpha");
    let a = sync_owned(pulled);
    assert!(a.no_sync_snap && a.no_privilege_elevation);
    assert_eq!(a.source.user(), Some("syncoid"));
    assert_eq!(a.source.host(), Some("alpha"));
    assert_eq!(a.source.dataset.as_str(), "zroot/persistSave");
    assert!(!a.target.is_remote());
    assert_eq!(a.target.dataset.as_str(), "zstorage/backups/alpha");
    // The restore from the admin machine.
    let restore = sync_owned(words(
        "admin@backupserver:zstorage/backups/client admin@client:zpool/persistSave",
    ));
    assert_eq!(restore.source.host(), Some("backupserver"));
    assert_eq!(restore.target.user(), Some("admin"));
    assert_eq!(restore.target.dataset.as_str(), "zpool/persistSave");
    insta::assert_json_snapshot!("seed_restore", restore);
}
