//! syncoid's flags as engine settings, one row per flag and both value forms.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rstest::rstest;

use super::{Settings, Summary};
use crate::syncoid::{parse, Invocation};

fn settings(words: &[&str]) -> Result<Settings, String> {
    let mut v: Vec<&str> = words.to_vec();
    v.extend(["tank/src", "backup/dst"]);
    match parse(&v) {
        Ok(Invocation::Sync(a)) => Settings::from_syncoid(&a, "alpha").map_err(|e| e.to_string()),
        Ok(other) => panic!("{words:?}: {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

fn summary(words: &[&str]) -> Summary {
    settings(words)
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
        .summary()
}

/// No flags: syncoid's defaults for an ad-hoc copy.
#[test]
fn defaults_are_syncoids() {
    insta::assert_json_snapshot!(summary(&[]));
}

/// Each flag changes what it should and nothing else: the row names the
/// fields that differ from the defaults, with their new values.
#[rstest]
#[case::no_sync_snap(&["--no-sync-snap"], r#"{"sync_snapshot":null}"#)]
#[case::identifier_eq(&["--identifier=nightly"], r#"{"sync_snapshot":"syncoid_nightly_alpha_2026-11-25_23:00:00-GMT00:00"}"#)]
#[case::identifier_sp(&["--identifier", "nightly"], r#"{"sync_snapshot":"syncoid_nightly_alpha_2026-11-25_23:00:00-GMT00:00"}"#)]
#[case::keep_sync_snap(&["--keep-sync-snap"], r#"{"keep_sync_snapshots":true}"#)]
#[case::use_hold(&["--use-hold"], r#"{"holds":true}"#)]
#[case::create_bookmark(&["--create-bookmark"], r#"{"create_bookmark":true}"#)]
#[case::no_resume(&["--no-resume"], r#"{"no_resume":true,"resumable":false}"#)]
#[case::compress_none_eq(&["--compress=none"], r#"{"compress":false}"#)]
#[case::compress_none_sp(&["--compress", "none"], r#"{"compress":false}"#)]
#[case::compress_zstd(&["--compress=zstd-fast"], r#"{}"#)]
#[case::preserve_recordsize(&["--preserve-recordsize"], r#"{"preserve":["recordsize"]}"#)]
#[case::preserve_properties(&["--preserve-properties"], r#"{"preserve_local":true}"#)]
#[case::include_snaps_eq(&["--include-snaps=hourly"], r#"{"one_by_one":true,"snapshot_filter":[["hourly"],[]]}"#)]
#[case::exclude_snaps_sp(&["--exclude-snaps", "hourly"], r#"{"one_by_one":true,"snapshot_filter":[[],["hourly"]]}"#)]
#[case::include_snaps_sp(&["--include-snaps", "hourly"], r#"{"one_by_one":true,"snapshot_filter":[["hourly"],[]]}"#)]
#[case::exclude_snaps_eq(&["--exclude-snaps=hourly"], r#"{"one_by_one":true,"snapshot_filter":[[],["hourly"]]}"#)]
#[case::mbuffer_size_sp(&["--mbuffer-size", "64M"], r#"{"buffer":67108864}"#)]
#[case::recvoptions_sp(&["--recvoptions", "u"], r#"{"recv_options":["-u"]}"#)]
#[case::compress_lzo_is_zstd(&["--compress", "lzo"], r#"{}"#)]
#[case::no_stream(&["--no-stream"], r#"{"no_stream":true}"#)]
#[case::force_delete(&["--force-delete"], r#"{"force_delete":true}"#)]
#[case::delete_target_snapshots(&["--delete-target-snapshots"], r#"{"delete_target_snapshots":true}"#)]
#[case::recursive_short(&["-r"], r#"{"recursive":true}"#)]
#[case::recursive_long(&["--recursive"], r#"{"recursive":true}"#)]
#[case::skip_parent(&["-r", "--skip-parent"], r#"{"recursive":true,"skip_parent":true}"#)]
#[case::exclude_eq(&["-r", "--exclude=tmp$"], r#"{"exclude":["tmp$"],"recursive":true}"#)]
#[case::exclude_datasets_sp(&["-r", "--exclude-datasets", "tmp$"], r#"{"exclude":["tmp$"],"recursive":true}"#)]
#[case::source_bwlimit_eq(&["--source-bwlimit=2m"], r#"{"rate_limit":2097152}"#)]
#[case::source_bwlimit_sp(&["--source-bwlimit", "2m"], r#"{"rate_limit":2097152}"#)]
#[case::both_bwlimits(&["--source-bwlimit=2m", "--target-bwlimit=1m"], r#"{"rate_limit":1048576}"#)]
#[case::mbuffer_size(&["--mbuffer-size=64M"], r#"{"buffer":67108864}"#)]
#[case::sendoptions_eq(&["--sendoptions=Lec"], r#"{"send_options":["-L","-e","-c"]}"#)]
#[case::sendoptions_sp(&["--sendoptions", "pw"], r#"{"send_options":["-p","-w"]}"#)]
#[case::recvoptions(&["--recvoptions=u o compression=lz4"], r#"{"recv_options":["-u","-o","compression=lz4"]}"#)]
// Accepted, and what zfleet does anyway: it never elevates, never clones,
// never rolls back unless asked, checks no commands; output flags are the CLI's.
#[case::no_privilege_elevation(&["--no-privilege-elevation"], r#"{}"#)]
#[case::no_clone_handling(&["--no-clone-handling"], r#"{}"#)]
#[case::no_rollback(&["--no-rollback"], r#"{}"#)]
#[case::no_command_checks(&["--no-command-checks"], r#"{}"#)]
#[case::quiet(&["--quiet"], r#"{}"#)]
#[case::debug(&["--debug"], r#"{}"#)]
#[case::dumpsnaps(&["--dumpsnaps"], r#"{}"#)]
#[case::sshkey(&["--sshkey=/root/.ssh/k"], r#"{}"#)]
#[case::sshport(&["--sshport", "2222"], r#"{}"#)]
fn one_flag(#[case] words: &[&str], #[case] changed: &str) {
    let base = serde_json::to_value(summary(&[])).unwrap();
    let got = serde_json::to_value(summary(words)).unwrap();
    let mut diff = serde_json::Map::new();
    for (k, v) in got.as_object().unwrap() {
        if base[k] != *v {
            diff.insert(k.clone(), v.clone());
        }
    }
    assert_eq!(
        serde_json::Value::Object(diff).to_string(),
        changed,
        "{words:?}"
    );
}

#[rstest]
#[case::seed_recv_c(&["--recvoptions=c"], "`c`")]
#[case::unknown_send_letter(&["--sendoptions=Q"], "`Q`")]
#[case::bad_snapshot_regex(&["--exclude-snaps=("], "--exclude-snaps")]
#[case::bad_dataset_regex(&["-r", "--exclude=("], "--exclude")]
#[case::mbuffer_percent(&["--mbuffer-size=10%"], "not a share of memory")]
fn refused(#[case] words: &[&str], #[case] says: &str) {
    match settings(words) {
        Err(e) => assert!(e.contains(says), "{words:?}: {e}"),
        Ok(s) => panic!("{words:?} accepted: {:?}", s.summary()),
    }
}
