//! The replication planner, case by case: two histories and the options; the
//! plan with its steps, counts and base moves, snapshot-tested.
//!
//! Histories are written compactly, oldest first: `@a:1` is snapshot `a`
//! with guid 1, `#b:2` a bookmark, a `*` after it marks the snapshot as this
//! server's base (`zfleet:base:vault`), `-` is a side that does not exist,
//! `~token` a partial receive on the target.

use rstest::rstest;

use super::*;
use crate::replicate::base_moves::MoveContext;

/// A side from its history.
fn side(h: &str) -> Dataset {
    if h == "-" {
        return Dataset::default();
    }
    let mut d = Dataset {
        exists: true,
        ..Dataset::default()
    };
    for (i, w) in h.split_whitespace().enumerate() {
        let txg = (i as u64 + 1) * 10;
        let marked = w.ends_with('*');
        let w = w.trim_end_matches('*');
        if let Some(rest) = w.strip_prefix("written=") {
            d.written = Some(rest.parse().unwrap());
            continue;
        }
        let (kind, rest) = w.split_at(1);
        let (name, guid) = rest.rsplit_once(':').unwrap();
        let p = Point {
            name: name.into(),
            guid: guid.parse().unwrap(),
            createtxg: txg,
            creation: txg as i64 * 3600,
        };
        match kind {
            "@" => {
                if marked {
                    d.marked.push(p.name.clone());
                }
                d.snapshots.push(p);
            }
            "#" => d.bookmarks.push(p),
            _ => panic!("{w}"),
        }
    }
    d
}

/// A resume token the sender read: it continues `to` (guid) from `from`.
fn token(to_name: &str, to_guid: u64, from_guid: Option<u64>) -> ResumeState {
    ResumeState {
        token: format!("1-abc-{to_guid}"),
        contents: Ok(TokenContents {
            to_name: to_name.into(),
            to_guid,
            from_guid,
            size: Some(7 << 20),
        }),
    }
}

fn refused_token(why: &str) -> ResumeState {
    ResumeState {
        token: "1-stale".into(),
        contents: Err(why.into()),
    }
}

fn opts() -> Options {
    Options {
        rollback: false,
        bookmarks: true,
        raw: false,
        moves: MoveContext {
            marker: "zfleet:base:vault".into(),
            source_bookmarks: true,
            source_served: true,
            ..MoveContext::default()
        },
        ..Options::default()
    }
}

fn adhoc() -> Options {
    Options {
        moves: MoveContext {
            marker: "zfleet:base:sync".into(),
            source_bookmarks: false,
            no_holds: true,
            sync: Some(crate::protocol::SyncNaming::syncoid(None, "alpha")),
            ..MoveContext::default()
        },
        ..opts()
    }
}

fn rollback() -> Options {
    Options {
        rollback: true,
        ..opts()
    }
}

fn no_bookmarks() -> Options {
    Options {
        bookmarks: false,
        moves: MoveContext {
            source_bookmarks: false,
            ..opts().moves
        },
        ..opts()
    }
}

struct Case {
    source: &'static str,
    target: &'static str,
    resume: Option<ResumeState>,
    opts: Options,
}

fn case(source: &'static str, target: &'static str, opts: Options) -> Case {
    Case {
        source,
        target,
        resume: None,
        opts,
    }
}

fn resuming(source: &'static str, target: &'static str, r: ResumeState) -> Case {
    Case {
        resume: Some(r),
        ..case(source, target, opts())
    }
}

fn render(c: &Case) -> String {
    let mut target = side(c.target);
    target.resume = c.resume.clone();
    let obs = Observed {
        source: side(c.source),
        target,
    };
    let p = plan(&obs, &c.opts);
    let mut out = format!("source  {}\ntarget  {}\n", c.source, c.target);
    if let Some(r) = &c.resume {
        out.push_str(&format!(
            "resume  {}\n",
            match &r.contents {
                Ok(t) => format!("to @{}:{} from {:?}", t.to_name, t.to_guid, t.from_guid),
                Err(e) => format!("refused by the sender: {e}"),
            }
        ));
    }
    let moves = |out: &mut String, m: &BaseMoves| {
        for (who, list) in [("source", &m.source), ("target", &m.target)] {
            if !list.is_empty() {
                let words: Vec<String> = list.iter().map(|m| m.describe()).collect();
                out.push_str(&format!("moves on the {who}: {}\n", words.join("; ")));
            }
        }
    };
    match &p {
        Plan::Discard { steps } => {
            for s in steps {
                out.push_str(&format!("step: {}\n", s.describe()));
            }
            out.push_str("then nothing to send\n");
        }
        Plan::UpToDate { base, base_moves } => {
            out.push_str(&format!("up to date at @{} ({})\n", base.name, base.guid));
            moves(&mut out, base_moves);
        }
        Plan::Refused { refusal } => {
            out.push_str(&format!(
                "refused: {}\nhint: {}\n",
                refusal.message("client1:zroot/data", "backup:zstorage/client1/zroot/data"),
                refusal.hint()
            ));
        }
        Plan::Send {
            base,
            steps,
            new_base,
            base_moves,
        } => {
            out.push_str(&format!(
                "base: {}\n",
                base.as_ref()
                    .map_or("none".to_string(), |b| format!("{b:?}"))
            ));
            for s in steps {
                let raw = match s {
                    Step::Full { raw: true, .. } | Step::Incremental { raw: true, .. } => ", raw",
                    _ => "",
                };
                out.push_str(&format!(
                    "step: {} [{}{raw}{}]\n",
                    s.describe(),
                    plural(s.snapshots() as usize, "snapshot"),
                    s.estimated_bytes()
                        .map(|b| format!(", about {b} bytes"))
                        .unwrap_or_default()
                ));
            }
            out.push_str(&format!(
                "then the base is @{} ({})\n",
                new_base.name, new_base.guid
            ));
            moves(&mut out, base_moves);
        }
    }
    out
}

#[rstest]
#[case::first_full_send(case("@a:1", "-", opts()))]
#[case::first_full_send_then_every_later_snapshot(case("@a:1 @b:2 @c:3", "-", opts()))]
#[case::incremental_with_intermediates(case("@a:1* @b:2 @c:3 @d:4", "@a:1*", opts()))]
#[case::up_to_date(case("@a:1 @b:2*", "@a:1 @b:2*", opts()))]
#[case::up_to_date_marks_a_base_that_lost_its_mark(case("@a:1* @b:2", "@a:1* @b:2", opts()))]
#[case::common_snapshot_found_by_guid_after_a_rename_on_the_target(case(
    "@a:1 @b:2* @c:3",
    "@a:1 @renamed:2*",
    opts()
))]
#[case::common_snapshot_found_by_guid_after_a_rename_on_the_source(case(
    "@a:1 @renamed:2* @c:3",
    "@a:1 @b:2*",
    opts()
))]
#[case::same_name_other_guid_is_not_the_common_snapshot(case(
    "@a:1 @b:2 @c:3",
    "@a:1 @b:99",
    opts()
))]
#[case::bookmark_as_base_after_the_source_pruned_the_snapshot(case(
    "#zfleet_vault:b:2 @c:3 @d:4 @e:5",
    "@a:1 @b:2*",
    opts()
))]
#[case::bookmark_base_with_one_snapshot_after_it(case("#b:2 @c:3", "@b:2*", opts()))]
#[case::bookmarks_unused_where_the_dialect_has_none(case("#b:2 @c:3", "@b:2*", no_bookmarks()))]
#[case::valid_resume_token_of_the_newest_snapshot(resuming(
    "@a:1* @b:2",
    "@a:1*",
    token("b", 2, Some(1))
))]
#[case::valid_resume_token_then_the_remaining_incrementals(resuming(
    "@a:1* @b:2 @c:3 @d:4",
    "@a:1*",
    token("b", 2, Some(1))
))]
#[case::valid_resume_token_of_a_first_full_send(resuming("@a:1 @b:2", "", token("a", 1, None)))]
#[case::stale_resume_token_the_sender_refused(resuming(
    "@a:1* @c:3",
    "@a:1*",
    refused_token("cannot resume send: 'zroot/data@b' used in the initial send no longer exists")
))]
#[case::stale_resume_token_whose_snapshot_is_gone(resuming(
    "@a:1* @c:3",
    "@a:1*",
    token("b", 2, Some(1))
))]
#[case::stale_resume_token_whose_start_is_gone(resuming(
    "@a:1 @b:2* @d:4",
    "@a:1 @b:2*",
    token("d", 4, Some(3))
))]
#[case::stale_resume_token_of_a_first_full_send(resuming("@c:3 @d:4", "", token("b", 2, None)))]
#[case::stale_resume_token_on_an_up_to_date_target(resuming(
    "@a:1*",
    "@a:1*",
    token("x", 9, Some(1))
))]
#[case::diverged_target_is_refused(case("@a:1 @b:2* @c:3", "@a:1 @b:2* @local:7", opts()))]
#[case::diverged_target_rolled_back_with_rollback(case(
    "@a:1 @b:2* @c:3",
    "@a:1 @b:2* @local:7*",
    rollback()
))]
#[case::source_rolled_back_is_divergence_not_followed(case("@a:1 @d:4", "@a:1 @b:2 @c:3", opts()))]
#[case::target_written_since_its_snapshot_is_refused(case(
    "@a:1* @b:2",
    "@a:1* written=4096",
    opts()
))]
#[case::target_written_since_its_snapshot_rolled_back(case(
    "@a:1* @b:2",
    "@a:1* written=4096",
    rollback()
))]
#[case::target_written_but_up_to_date_rolled_back(case("@a:1*", "@a:1* written=4096", rollback()))]
#[case::no_common_snapshot_is_refused_even_with_rollback(case("@x:7", "@a:1", rollback()))]
#[case::target_without_snapshots_is_not_overwritten(case("@x:7", "", opts()))]
#[case::empty_source_has_nothing_to_send(case("", "@a:1", opts()))]
#[case::empty_source_and_no_target(case("", "-", opts()))]
#[case::sync_snapshots_of_another_server_travel_and_stay(case(
    "@a:1* @zfleet_sync_other_2026-01-01_00:00:00:2 @b:3",
    "@a:1*",
    Options { moves: MoveContext { sync: Some(crate::protocol::SyncNaming::Server("vault".into())), ..opts().moves }, ..opts() }
))]
#[case::own_older_sync_snapshots_are_destroyed_on_both_sides(case(
    "@zfleet_sync_vault_2026-01-01_00:00:00:1* @zfleet_sync_vault_2026-01-02_00:00:00:2 @zfleet_sync_vault_2026-01-03_00:00:00:3",
    "@zfleet_sync_vault_2026-01-01_00:00:00:1*",
    Options { moves: MoveContext { sync: Some(crate::protocol::SyncNaming::Server("vault".into())), ..opts().moves }, ..opts() }
))]
#[case::raw_send_of_an_encrypted_source(case("@a:1 @b:2", "-", Options { raw: true, ..opts() }))]
#[case::raw_incremental(case("@a:1* @b:2", "@a:1*", Options { raw: true, ..opts() }))]
#[case::push_from_a_local_client_destroys_superseded_bookmarks(case(
    "@a:1* #zfleet_vault:a:1 #mine:1 @b:2",
    "@a:1*",
    Options { moves: MoveContext { source_served: false, ..opts().moves }, ..opts() }
))]
#[case::pull_through_serve_keeps_superseded_bookmarks(case(
    "@a:1* #zfleet_vault:a:1 @b:2",
    "@a:1*",
    opts()
))]
// zfleet sync's own: syncoid's flags, and the fixes found by trying it.
#[case::stale_resume_token_goes_even_when_the_source_has_no_snapshot(resuming(
    "",
    "@a:1*",
    refused_token("cannot resume send: 'zroot/data@b' used in the initial send no longer exists")
))]
#[case::no_resume_discards_a_valid_token(Case {
    opts: Options { no_resume: true, ..opts() },
    ..resuming("@a:1* @b:2", "@a:1*", token("b", 2, Some(1)))
})]
#[case::no_stream_sends_only_the_newest(case(
    "@a:1* @b:2 @c:3 @d:4",
    "@a:1*",
    Options { no_stream: true, ..adhoc() }
))]
#[case::no_stream_first_send_is_the_newest_whole(case(
    "@a:1 @b:2 @c:3",
    "-",
    Options { no_stream: true, ..adhoc() }
))]
#[case::one_by_one_first_send(case("@a:1 @b:2 @c:3", "-", Options { one_by_one: true, ..adhoc() }))]
#[case::one_by_one_from_a_bookmark(case(
    "#a:1 @b:2 @c:3",
    "@a:1",
    Options { one_by_one: true, ..adhoc() }
))]
#[case::adhoc_without_holds_cleans_up_its_sync_snapshots(case(
    "@syncoid_alpha_2026-01-01_00:00:00-GMT00:00:1* @syncoid_beta_2026-01-01_00:00:00-GMT00:00:2 @syncoid_alpha_2026-01-02_00:00:00-GMT00:00:3",
    "@syncoid_alpha_2026-01-01_00:00:00-GMT00:00:1*",
    adhoc()
))]
#[case::no_common_snapshot_is_destroyed_with_force_delete(case(
    "@test:7 @s:8",
    "@a:1 @b:2",
    Options { force_delete: true, ..adhoc() }
))]
#[case::target_without_snapshots_is_replaced_with_force_delete(case(
    "@x:7",
    "",
    Options { force_delete: true, ..adhoc() }
))]
#[case::a_name_taken_on_the_target_is_refused(case(
    "@s1:2* @duplicate:5 @s2:3",
    "@duplicate:1 @s1:2*",
    adhoc()
))]
#[case::a_name_taken_on_the_target_goes_with_force_delete(case(
    "@s1:2* @duplicate:5 @s2:3",
    "@duplicate:1 @s1:2*",
    Options { force_delete: true, ..adhoc() }
))]
#[case::delete_target_snapshots_the_source_pruned(case(
    "@b:2* @c:3",
    "@a:1 @b:2*",
    Options { moves: MoveContext { delete_target_snapshots: true, ..adhoc().moves }, ..adhoc() }
))]
#[case::delete_target_snapshots_still_refuses_divergence(case(
    "@a:1* @c:3",
    "@a:1* @b:2",
    Options { moves: MoveContext { delete_target_snapshots: true, ..adhoc().moves }, ..adhoc() }
))]
#[case::create_bookmark_under_the_snapshots_name(case(
    "@a:1* @b:2",
    "@a:1*",
    Options { moves: MoveContext { create_bookmark: true, ..adhoc().moves }, ..adhoc() }
))]
#[case::create_bookmark_falls_back_to_the_name_and_guid(case(
    "@a:1* #b:1 @b:234567890",
    "@a:1*",
    Options { moves: MoveContext { create_bookmark: true, ..adhoc().moves }, ..adhoc() }
))]
#[case::create_bookmark_refused_when_both_names_are_taken(case(
    "@a:1* #b:1 #b234567:1 @b:234567890",
    "@a:1*",
    Options { moves: MoveContext { create_bookmark: true, ..adhoc().moves }, ..adhoc() }
))]
fn planner(#[case] c: Case) {
    let name = std::thread::current()
        .name()
        .unwrap_or("planner")
        .rsplit("::")
        .next()
        .unwrap_or("x")
        .to_string();
    insta::assert_snapshot!(name, render(&c));
}

/// The typed plan, as `zfleet backup --dry-run --json` prints it.
#[test]
fn the_plan_as_json() {
    let mut target = side("@a:1*");
    target.resume = Some(token("b", 2, Some(1)));
    let obs = Observed {
        source: side("@a:1* @b:2 @c:3"),
        target,
    };
    insta::assert_json_snapshot!(plan(&obs, &opts()));
    let refused = plan(
        &Observed {
            source: side("@a:1 @c:3"),
            target: side("@a:1 @b:2"),
        },
        &opts(),
    );
    insta::assert_json_snapshot!(refused);
}

/// syncoid's 012: a `-R` stream cut halfway into a dataset of the same pool.
/// The target's `@empty` has a later txg than the source's `@something` the
/// token continues; once resumed, `@something` is still the target's newest,
/// not a common snapshot with `@empty` after it.
#[test]
fn a_resumed_snapshot_is_the_targets_newest_whatever_its_source_txg() {
    let mut target = side("@empty:1");
    target.snapshots[0].createtxg = 500;
    target.resume = Some(token("something", 2, Some(1)));
    let p = plan(
        &Observed {
            source: side("@empty:1 @something:2 @syncoid_h_1:3"),
            target,
        },
        &adhoc(),
    );
    let steps: Vec<String> = p.steps().iter().map(Step::describe).collect();
    assert_eq!(
        steps,
        [
            "resume the interrupted receive",
            "incremental @something → @syncoid_h_1 with every snapshot in between"
        ],
        "{p:?}"
    );
}

/// Renaming every snapshot consistently on both sides changes nothing but
/// the names: the decisions are by guid.
#[test]
fn names_do_not_decide() {
    let a = plan(
        &Observed {
            source: side("@a:1 @b:2 @c:3"),
            target: side("@a:1 @b:2"),
        },
        &opts(),
    );
    let b = plan(
        &Observed {
            source: side("@x:1 @y:2 @z:3"),
            target: side("@p:1 @q:2"),
        },
        &opts(),
    );
    let steps = |p: &Plan| -> Vec<(u64, u64)> {
        p.steps()
            .iter()
            .map(|s| match s {
                Step::Incremental {
                    from,
                    to,
                    snapshots,
                    ..
                } => {
                    assert_eq!(*snapshots, 1);
                    (from.guid(), to.guid)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(steps(&a), steps(&b));
}

// The guest's bookmark test failed when the server's pool had seen more
// transaction groups than the client's: the first snapshot after the
// bookmark was looked for with the target's txg. Transaction groups are per
// pool; the bookmark's own (the source's) orders it among the source's snapshots.
#[test]
fn bookmark_base_is_ordered_by_the_source_pools_txg() {
    let p = |name: &str, guid: u64, createtxg: u64| Point {
        name: name.into(),
        guid,
        createtxg,
        creation: 0,
    };
    let source = Dataset {
        exists: true,
        snapshots: vec![p("s1", 1, 10), p("s3", 3, 30)],
        bookmarks: vec![p("s2", 2, 20)],
        ..Dataset::default()
    };
    let target = Dataset {
        exists: true,
        snapshots: vec![p("s1", 1, 500), p("s2", 2, 900)],
        ..Dataset::default()
    };
    let got = plan(&Observed { source, target }, &opts());
    let Plan::Send { base, steps, .. } = &got else {
        panic!("{got:?}")
    };
    assert_eq!(base.as_ref().map(Base::name), Some("s2"));
    let d: Vec<String> = steps.iter().map(Step::describe).collect();
    assert_eq!(d, ["incremental #s2 → @s3"]);
}
