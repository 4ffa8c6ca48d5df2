use jiff::tz::TimeZone;
use rstest::rstest;

use super::*;
use crate::zfs::{PropertyRow, PropertySource};

fn ds(s: &str) -> DatasetName {
    DatasetName::parse(s).unwrap()
}

fn snap(name: &str, guid: u64, txg: u64, creation: i64) -> BackupSnapshot {
    BackupSnapshot {
        name: name.into(),
        guid,
        createtxg: txg,
        creation,
        referenced: Some(5 << 20),
        used: Some(1 << 20),
    }
}

fn copy(server: &str, snaps: Vec<BackupSnapshot>) -> ServerView {
    ServerView::Copy(BackupCopy {
        server: server.into(),
        backup: ds("zstorage/backups/client1/zroot/persistSave"),
        snapshots: snaps,
        encrypted: false,
        key_loaded: false,
        recorded_mountpoint: Some("/persist/save".into()),
        mounted_at: None,
    })
}

fn no_copy(server: &str) -> ServerView {
    ServerView::NoCopy {
        server: server.into(),
        backup: ds("zstorage/backups/client1/zroot/persistSave"),
    }
}

fn failed(server: &str) -> ServerView {
    ServerView::Failed {
        server: server.into(),
        error: "host `x` did not answer".into(),
    }
}

/// Two servers: `vault` is a day behind `attic`.
fn two_servers() -> Vec<ServerView> {
    vec![
        copy(
            "vault",
            vec![snap("d1", 1, 10, 1000), snap("d2", 2, 20, 2000)],
        ),
        copy(
            "attic",
            vec![
                snap("d1", 1, 11, 1000),
                snap("d2", 2, 21, 2000),
                snap("d3", 3, 31, 3000),
            ],
        ),
    ]
}

#[rstest]
#[case::newest_is_on_the_server_with_the_newest_copy(Selector::Newest, None, "attic", "d3")]
#[case::from_limits_the_choice(Selector::Newest, Some("vault"), "vault", "d2")]
#[case::named_on_both_first_in_fleet_order(Selector::Named("d2".into()), None, "vault", "d2")]
#[case::named_only_on_one(Selector::Named("d3".into()), None, "attic", "d3")]
#[case::at_picks_the_newest_at_or_before(Selector::At(2999), None, "vault", "d2")]
#[case::at_exactly(Selector::At(3000), None, "attic", "d3")]
#[case::at_between(Selector::At(1500), None, "vault", "d1")]
fn choosing(
    #[case] sel: Selector,
    #[case] from: Option<&str>,
    #[case] server: &str,
    #[case] snapshot: &str,
) {
    let c = choose(&two_servers(), &sel, from, &TimeZone::UTC).unwrap();
    assert_eq!(
        (c.server.as_str(), c.snapshot.name.as_str()),
        (server, snapshot)
    );
}

#[test]
fn a_choice_knows_what_is_newer_and_where_else_it_is() {
    let c = choose(
        &two_servers(),
        &Selector::Named("d2".into()),
        Some("attic"),
        &TimeZone::UTC,
    )
    .unwrap();
    assert_eq!(c.newer, ["d3"]);
    assert_eq!(c.anchors.len(), 1);
    assert_eq!(
        (c.anchors[0].server.as_str(), c.anchors[0].snapshot.as_str()),
        ("vault", "d2")
    );
    assert!(c.diverging.is_empty());
    assert_eq!(c.base(), "d2");
    // The newest: vault lags a day, so its newest (d2) comes back too and
    // the full send starts there.
    let c = choose(&two_servers(), &Selector::Newest, None, &TimeZone::UTC).unwrap();
    assert_eq!(c.anchors[0].snapshot, "d2");
    assert_eq!(
        c.reason,
        "the newest snapshot on attic, the server whose candidate is newest"
    );
    assert_eq!(c.base(), "d2");
    // An older one: vault's d2 is not in what d1 brings back.
    let c = choose(
        &two_servers(),
        &Selector::Named("d1".into()),
        Some("attic"),
        &TimeZone::UTC,
    )
    .unwrap();
    assert_eq!(c.base(), "d1");
    assert_eq!(
        c.diverging,
        [(
            "vault".to_string(),
            "its newest snapshot @d2 is not in what is restored".to_string()
        )]
    );
}

#[test]
fn failed_servers_are_passed_over_but_all_failed_is_its_own_refusal() {
    let views = vec![failed("vault"), two_servers().remove(1)];
    assert_eq!(
        choose(&views, &Selector::Newest, None, &TimeZone::UTC)
            .unwrap()
            .server,
        "attic"
    );
    let r = choose(
        &[failed("vault"), failed("attic")],
        &Selector::Newest,
        None,
        &TimeZone::UTC,
    )
    .unwrap_err();
    assert_eq!(r.kind(), RefusalKind::Remote);
    assert!(matches!(r, Refusal::Unreachable { .. }));
}

#[test]
fn refusals_say_what_is_there() {
    let r = choose(
        &[no_copy("vault"), failed("attic")],
        &Selector::Newest,
        None,
        &TimeZone::UTC,
    )
    .unwrap_err();
    assert_eq!(r.kind(), RefusalKind::NotFound);
    assert_eq!(
        r.message("client1:zroot/persistSave", &TimeZone::UTC),
        "no backup of client1:zroot/persistSave to restore: vault has no zstorage/backups/client1/zroot/persistSave; attic could not be asked (host `x` did not answer)"
    );
    // --from a server without a copy, even though the other has one.
    let views = vec![no_copy("vault"), two_servers().remove(1)];
    let r = choose(&views, &Selector::Newest, Some("vault"), &TimeZone::UTC).unwrap_err();
    assert!(matches!(r, Refusal::NoCopy { .. }), "{r:?}");

    let r = choose(
        &two_servers(),
        &Selector::Named("nope".into()),
        None,
        &TimeZone::UTC,
    )
    .unwrap_err();
    assert_eq!(
        r.message("client1:zroot/persistSave", &TimeZone::UTC),
        "no backup of client1:zroot/persistSave has a snapshot @nope (looked on vault, attic)"
    );
    assert_eq!(
        r.hint(),
        "snapshots there, newest first: vault: @d2 @d1; attic: @d3 @d2 @d1 (all of them: --list)"
    );
    let r = choose(&two_servers(), &Selector::At(999), None, &TimeZone::UTC).unwrap_err();
    assert_eq!(
        r,
        Refusal::NothingAtOrBefore {
            at: 999,
            oldest: Some(("vault".into(), "d1".into(), 1000))
        }
    );
}

fn existing() -> Existing {
    Existing {
        snapshots: vec![DestSnapshot {
            name: "empty".into(),
            guid: 99,
            creation: 500,
            referenced: Some(112 << 10),
        }],
        referenced: Some(112 << 10),
        written: None,
        children: Vec::new(),
        mounted: false,
        mountpoint: Some("/persist/save".into()),
        canmount: Some("on".into()),
        root_entries: None,
        local_properties: vec![("mountpoint".into(), "/persist/save".into())],
    }
}

#[rstest]
#[case::legacy_empty_snapshot_nothing_more(|_e: &mut Existing| {}, true, "fresh: only the empty snapshot @empty and nothing written since")]
#[case::legacy_one_small_file(|e: &mut Existing| e.referenced = Some((112 << 10) + 4096), false, "116.0 KiB referenced, more than @empty holds")]
#[case::openzfs_nothing_written(|e: &mut Existing| e.written = Some(0), true, "fresh: only the empty snapshot @empty and nothing written since")]
#[case::openzfs_written_since(|e: &mut Existing| e.written = Some(12 << 10), false, "12.0 KiB written since @empty (zfleet cannot tell access-time updates from a small file)")]
#[case::mounted_and_empty_despite_written(|e: &mut Existing| { e.mounted = true; e.written = Some(12 << 10); e.root_entries = Some(vec![]); }, true, "fresh: only the empty snapshot @empty and nothing written since")]
#[case::mounted_with_files(|e: &mut Existing| { e.mounted = true; e.root_entries = Some(vec!["home".into(), ".ssh".into()]); }, false, "files such as home, .ssh")]
#[case::no_snapshot_empty(|e: &mut Existing| e.snapshots.clear(), true, "fresh by its size (112.0 KiB referenced, no snapshots, not mounted)")]
#[case::no_snapshot_mounted_and_empty(|e: &mut Existing| { e.snapshots.clear(); e.mounted = true; e.root_entries = Some(vec![]); }, true, "fresh: empty and without snapshots")]
#[case::no_snapshot_data(|e: &mut Existing| { e.snapshots.clear(); e.referenced = Some(3 << 20); }, false, "3.0 MiB referenced")]
#[case::a_snapshot_with_data(|e: &mut Existing| e.snapshots[0].referenced = Some(2 << 20), false, "1 snapshot that is not empty, newest @empty")]
#[case::two_snapshots(|e: &mut Existing| { let mut s = e.snapshots[0].clone(); s.name = "later".into(); s.referenced = Some(1 << 20); e.snapshots.push(s); }, false, "2 snapshots, newest @later")]
#[case::a_timer_took_empty_snapshots(|e: &mut Existing| { let mut s = e.snapshots[0].clone(); s.name = "autosnap".into(); e.snapshots.push(s); }, true, "fresh: 2 empty snapshots (as a snapshot timer takes on a new install) and nothing written since @autosnap")]
#[case::children(|e: &mut Existing| e.children = vec![DatasetName::parse("zroot/persistSave/x").unwrap()], false, "1 child dataset (zroot/persistSave/x)")]
fn freshness_rule(#[case] change: fn(&mut Existing), #[case] fresh: bool, #[case] why: &str) {
    let mut e = existing();
    change(&mut e);
    let f = freshness(&e);
    assert_eq!((f.fresh, f.why.as_str()), (fresh, why));
}

fn dest(existing: Option<Existing>) -> DestinationView {
    DestinationView {
        host: "client1".into(),
        dataset: ds("zroot/persistSave"),
        original: true,
        pool_exists: true,
        altroot: None,
        existing,
        missing_parents: Vec::new(),
        inherited_mountpoint: Some("none".into()),
        mounts: vec![(ds("zroot/persist"), "/persist".into())],
        leftover: None,
    }
}

fn opts(force: bool) -> PlanOptions {
    PlanOptions {
        force,
        stamp: "20261125T130000Z".into(),
        raw: false,
    }
}

fn recorded() -> Vec<(String, String)> {
    vec![
        ("mountpoint".into(), "/persist/save".into()),
        ("canmount".into(), "on".into()),
        ("com.example:note".into(), "keep-me".into()),
    ]
}

fn newest() -> Choice {
    choose(
        &two_servers(),
        &Selector::Newest,
        Some("attic"),
        &TimeZone::UTC,
    )
    .unwrap()
}

fn plan_of(choice: &Choice, d: &DestinationView, force: bool) -> Result<RestorePlan, Refusal> {
    plan_dataset(
        "client1:zroot/persistSave",
        choice,
        &recorded(),
        d,
        &opts(force),
    )
}

#[test]
fn a_missing_destination_is_created_below_new_parents() {
    let mut d = dest(None);
    d.dataset = ds("zroot/safe/persistSave");
    d.missing_parents = vec![ds("zroot/safe")];
    d.original = false;
    insta::assert_json_snapshot!(plan_of(&newest(), &d, false).unwrap());
}

#[test]
fn a_fresh_destination_is_replaced_and_backups_continue() {
    let mut e = existing();
    e.local_properties.push(("atime".into(), "off".into()));
    e.local_properties.push(("readonly".into(), "on".into()));
    insta::assert_json_snapshot!(plan_of(&newest(), &dest(Some(e)), false).unwrap());
}

#[test]
fn data_is_refused_without_force_and_kept_with_it() {
    let mut e = existing();
    e.referenced = Some(40 << 20);
    let r = plan_of(&newest(), &dest(Some(e.clone())), false).unwrap_err();
    assert_eq!(r.kind(), RefusalKind::Protect);
    assert_eq!(
        r.message("client1:zroot/persistSave", &TimeZone::UTC),
        "client1:zroot/persistSave holds data: 40.0 MiB referenced, more than @empty holds"
    );
    assert_eq!(r.hint(), "--force keeps it as zroot/persistSave-zfleet-before-restore-20261125T130000Z (after a safety snapshot) and restores in its place; or restore next to it with --to HOST:DATASET");
    insta::assert_json_snapshot!(plan_of(&newest(), &dest(Some(e)), true).unwrap());
}

#[test]
fn a_destination_already_at_the_snapshot_needs_nothing() {
    let mut e = existing();
    e.snapshots.push(DestSnapshot {
        name: "d3".into(),
        guid: 3,
        creation: 3000,
        referenced: Some(5 << 20),
    });
    e.referenced = Some(5 << 20);
    let p = plan_of(&newest(), &dest(Some(e.clone())), false).unwrap();
    assert_eq!(p.disposition, Disposition::AlreadyThere);
    assert!(p.steps.is_empty());
    // --force means: replace it anyway (keeping it).
    let p = plan_of(&newest(), &dest(Some(e)), true).unwrap();
    assert_eq!(p.disposition, Disposition::ReplaceKeep);
}

#[test]
fn an_older_snapshot_says_the_next_backup_will_diverge() {
    let c = choose(
        &two_servers(),
        &Selector::Named("d1".into()),
        Some("attic"),
        &TimeZone::UTC,
    )
    .unwrap();
    let p = plan_of(&c, &dest(None), false).unwrap();
    insta::assert_json_snapshot!(p.notes);
}

#[test]
fn leftovers_are_reused_discarded_or_refused() {
    let mut d = dest(None);
    d.leftover = Some(Leftover {
        dataset: ds("zroot/persistSave-zfleet-restoring"),
        ours: true,
        guid: Some(3),
    });
    let p = plan_of(&newest(), &d, false).unwrap();
    assert!(matches!(p.steps[0], Step::ReuseLeftover { .. }));
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Receive { .. })));
    d.leftover.as_mut().unwrap().guid = Some(2);
    let p = plan_of(&newest(), &d, false).unwrap();
    assert!(matches!(p.steps[0], Step::DiscardLeftover { .. }));
    assert!(p.steps.iter().any(|s| matches!(s, Step::Receive { .. })));
    d.leftover.as_mut().unwrap().ours = false;
    let r = plan_of(&newest(), &d, false).unwrap_err();
    assert!(matches!(r, Refusal::TemporaryNameTaken { .. }));
    assert_eq!(r.kind(), RefusalKind::Protect);
}

#[test]
fn migration_does_not_take_a_mountpoint_in_use_and_marks_no_base() {
    let mut d = dest(None);
    d.host = "client2".into();
    d.dataset = ds("zroot/restored");
    d.original = false;
    d.mounts
        .push((ds("zroot/persistSave"), "/persist/save".into()));
    let mut c = newest();
    c.encrypted = true;
    let p = plan_dataset(
        "client1:zroot/persistSave",
        &c,
        &recorded(),
        &d,
        &PlanOptions {
            raw: true,
            ..opts(false)
        },
    )
    .unwrap();
    insta::assert_json_snapshot!(p);
}

#[test]
fn a_dataset_fresh_by_size_alone_is_kept_aside_not_destroyed() {
    let mut e = existing();
    e.snapshots.clear();
    let p = plan_of(&newest(), &dest(Some(e)), false).unwrap();
    assert_eq!(p.disposition, Disposition::ReplaceFresh);
    assert!(p
        .steps
        .iter()
        .any(|s| matches!(s, Step::SetAside { keep: true, .. })));
    assert!(!p
        .steps
        .iter()
        .any(|s| matches!(s, Step::DestroyFresh { .. })));
    assert!(
        p.notes.iter().any(|n| n.contains("by its size only")),
        "{:?}",
        p.notes
    );
    // Several empty snapshots (a timer ran on the new install): replaced
    // without --force, and kept aside as well.
    let mut e = existing();
    let mut s = e.snapshots[0].clone();
    s.name = "autosnap".into();
    e.snapshots.push(s);
    e.mounted = true;
    e.root_entries = Some(Vec::new());
    let p = plan_of(&newest(), &dest(Some(e)), false).unwrap();
    assert_eq!(p.disposition, Disposition::ReplaceFresh);
    assert!(!p
        .steps
        .iter()
        .any(|s| matches!(s, Step::DestroyFresh { .. })));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("cannot look inside them")),
        "{:?}",
        p.notes
    );
    // Mounted and looked at: destroyed once the restore is in place.
    let mut e = existing();
    e.snapshots.clear();
    e.mounted = true;
    e.root_entries = Some(Vec::new());
    let p = plan_of(&newest(), &dest(Some(e)), false).unwrap();
    assert!(p
        .steps
        .iter()
        .any(|s| matches!(s, Step::DestroyFresh { .. })));
}

#[test]
fn child_datasets_are_refused_even_with_force() {
    let mut e = existing();
    e.children = vec![ds("zroot/persistSave/sub")];
    for force in [false, true] {
        let r = plan_of(&newest(), &dest(Some(e.clone())), force).unwrap_err();
        assert_eq!(r.kind(), RefusalKind::Protect);
        assert_eq!(
            r.message("x", &TimeZone::UTC),
            "client1:zroot/persistSave has child datasets (zroot/persistSave/sub), which a restore of it would have to move or destroy"
        );
    }
}

#[test]
fn pools_must_exist_and_roots_cannot_be_replaced() {
    let mut d = dest(None);
    d.pool_exists = false;
    let r = plan_of(&newest(), &d, false).unwrap_err();
    assert_eq!(
        r.message("x", &TimeZone::UTC),
        "pool `zroot` does not exist on client1"
    );
    let mut d = dest(None);
    d.dataset = ds("zroot");
    assert!(matches!(
        plan_of(&newest(), &d, false).unwrap_err(),
        Refusal::PoolRoot { .. }
    ));
}

// A name that leaves no room for the temporary one beside it was reported as
// "a pool's root dataset".
#[test]
fn a_name_too_long_for_the_temporary_one_is_said_to_be_too_long() {
    let mut d = dest(None);
    let long = format!("zroot/{}", "n".repeat(240));
    d.dataset = ds(&long);
    let r = plan_of(&newest(), &d, false).unwrap_err();
    assert!(matches!(r, Refusal::NameTooLong { .. }), "{r:?}");
    assert_eq!(r.kind(), RefusalKind::NotFound);
    let m = r.message("x", &TimeZone::UTC);
    assert!(
        m.starts_with(&format!(
            "client1:{long} is too long a name to restore into"
        )),
        "{m}"
    );
    assert!(!m.contains("root dataset"), "{m}");
    assert!(r.hint().contains("--to HOST:POOL/NAME"));
}

#[rstest]
// The lab and installers import pools with an altroot; a mountpoint recorded
// with the client's altroot goes back without it.
#[case::altroot_recorded_and_inherited(
    Some("/mnt"),
    "/mnt/persist/save",
    Some("/mnt/persist/save"),
    None
)]
#[case::altroot_recorded_not_inherited(
    Some("/mnt"),
    "/mnt/persist/save",
    Some("none"),
    Some("/persist/save")
)]
#[case::plain(None, "/persist/save", Some("none"), Some("/persist/save"))]
#[case::plain_inherited(None, "/persist/save", Some("/persist/save"), None)]
#[case::other_altroot_kept(
    Some("/mnt"),
    "/lab/persist/save",
    Some("none"),
    Some("/lab/persist/save")
)]
#[case::none(None, "none", Some("none"), None)]
#[case::legacy(None, "legacy", Some("none"), Some("legacy"))]
fn mountpoints(
    #[case] altroot: Option<&str>,
    #[case] rec: &str,
    #[case] inherited: Option<&str>,
    #[case] set: Option<&str>,
) {
    let mut d = dest(None);
    d.altroot = altroot.map(str::to_string);
    d.inherited_mountpoint = inherited.map(str::to_string);
    let (props, notes) = properties(&[("mountpoint".into(), rec.into())], &d);
    let got = props
        .iter()
        .find(|p| p.property == "mountpoint")
        .map(|p| p.value.as_str());
    assert_eq!(got, set);
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn canmount_user_properties_and_the_layouts_own() {
    let mut e = existing();
    e.local_properties = vec![
        ("mountpoint".into(), "/elsewhere".into()),
        ("compression".into(), "zstd".into()),
        ("com.example:note".into(), "from-layout".into()),
        ("zfleet:src:mountpoint".into(), "/x".into()),
        ("keylocation".into(), "prompt".into()),
        ("readonly".into(), "on".into()),
    ];
    let rec = vec![
        ("mountpoint".to_string(), "/persist/save".to_string()),
        ("canmount".to_string(), "noauto".to_string()),
        ("com.example:note".to_string(), "from-backup".to_string()),
        ("zfleet:base:vault".to_string(), "1".to_string()),
    ];
    let (props, _) = properties(&rec, &dest(Some(e)));
    let got: Vec<String> = props
        .iter()
        .map(|p| format!("{}={}", p.property, p.value))
        .collect();
    assert_eq!(
        got,
        [
            "mountpoint=/persist/save",
            "canmount=noauto",
            "com.example:note=from-backup",
            "compression=zstd",
        ]
    );
}

#[test]
fn what_the_backup_side_set_never_reaches_the_client() {
    let row = |p: &str, src: PropertySource| PropertyRow {
        name: "zroot/x".into(),
        property: p.into(),
        value: "v".into(),
        source: src,
    };
    let rows = [
        row("readonly", PropertySource::Local),
        row("readonly", PropertySource::Inherited("zroot".into())),
        row("zfleet:src:mountpoint", PropertySource::Received),
        row("zfleet:base:vault", PropertySource::Local),
        row("compression", PropertySource::Local),
        row("com.example:note", PropertySource::Local),
    ];
    assert_eq!(
        backup_side_properties(&rows),
        ["readonly", "zfleet:src:mountpoint", "zfleet:base:vault"]
    );
}

#[test]
fn every_step_describes_itself() {
    let mut e = existing();
    e.referenced = Some(40 << 20);
    let mut d = dest(Some(e));
    d.missing_parents = vec![ds("zroot/a")];
    let p = plan_of(&newest(), &d, true).unwrap();
    let text: Vec<String> = p.steps.iter().map(Step::describe).collect();
    insta::assert_json_snapshot!(text);
}

#[test]
fn a_new_scratch_copy_receives_under_its_final_name_and_nothing_else_runs() {
    let mut d = dest(None);
    d.dataset = ds("zstorage/zfleet-drill/client1/persistSave");
    d.original = false;
    d.missing_parents = vec![ds("zstorage/zfleet-drill/client1")];
    let p = scratch(plan_of(&newest(), &d, false).unwrap());
    assert_eq!(p.steps.len(), 2, "{:#?}", p.steps);
    assert!(matches!(p.steps[0], Step::CreateParents { .. }));
    let Step::Receive { into, mark, .. } = &p.steps[1] else {
        panic!("{:#?}", p.steps[1]);
    };
    assert_eq!(into, &d.dataset);
    assert!(!mark, "the drill's container marks a scratch copy");
}

#[test]
fn a_scratch_copy_over_a_leftover_keeps_the_temporary_name_and_the_rename() {
    let mut d = dest(None);
    d.original = false;
    d.leftover = Some(Leftover {
        dataset: ds("zroot/persistSave-zfleet-restoring"),
        ours: true,
        guid: Some(2),
    });
    let p = scratch(plan_of(&newest(), &d, false).unwrap());
    let Some(Step::Receive { into, mark, .. }) =
        p.steps.iter().find(|s| matches!(s, Step::Receive { .. }))
    else {
        panic!("{:#?}", p.steps);
    };
    assert_eq!(into.as_str(), "zroot/persistSave-zfleet-restoring");
    assert!(mark);
    assert!(p
        .steps
        .iter()
        .any(|s| matches!(s, Step::RenameIntoPlace { .. })));
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Mount { .. })));
}
