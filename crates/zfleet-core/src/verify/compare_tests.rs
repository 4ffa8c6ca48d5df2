use rstest::rstest;

use super::*;

fn file(path: &str, content: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: Kind::File,
        size: content.len() as u64,
        mode: 0o644,
        uid: 1000,
        gid: 100,
        mtime: 1_700_000_000,
        mtime_ns: 5,
        target: None,
        link: None,
        blake3: Some(blake3::hash(content.as_bytes()).to_hex().to_string()),
        error: None,
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        kind: Kind::Dir,
        size: 3,
        mode: 0o755,
        blake3: None,
        ..file(path, "")
    }
}

fn link(path: &str, to: &str) -> Entry {
    Entry {
        kind: Kind::Symlink,
        size: to.len() as u64,
        mode: 0o777,
        target: Some(to.into()),
        blake3: None,
        ..file(path, "")
    }
}

fn tree() -> Vec<Entry> {
    vec![
        dir(""),
        dir("etc"),
        file("etc/hosts", "127.0.0.1 localhost\n"),
        file("etc/passwd", "root:x:0:0\n"),
        link("etc/localtime", "/usr/share/zoneinfo/UTC"),
        file("home.txt", "hello"),
    ]
}

fn run(original: Vec<Entry>, copy: Vec<Entry>) -> Comparison {
    compare::<()>(original.into_iter().map(Ok), copy.into_iter().map(Ok)).unwrap()
}

fn with(mut t: Vec<Entry>, path: &str, f: impl Fn(&mut Entry)) -> Vec<Entry> {
    for e in &mut t {
        if e.path == path {
            f(e);
        }
    }
    t
}

fn sorted(mut t: Vec<Entry>) -> Vec<Entry> {
    t.sort_by(|a, b| path_cmp(&a.path, &b.path));
    t
}

#[test]
fn identical_listings_have_no_differences() {
    let c = run(sorted(tree()), sorted(tree()));
    assert!(c.ok(), "{c:?}");
    assert_eq!((c.entries, c.checksummed, c.bytes_checksummed), (6, 3, 36));
}

#[rstest]
#[case::content(
    with(tree(), "etc/hosts", |e| e.blake3 = Some("00".into())),
    vec![("/etc/hosts", "contents differ (BLAKE3)")]
)]
#[case::size_and_content(
    with(tree(), "home.txt", |e| { e.size = 6; e.blake3 = Some("11".into()); }),
    vec![("/home.txt", "size 5 vs 6"), ("/home.txt", "contents differ (BLAKE3)")]
)]
#[case::mode(with(tree(), "etc/passwd", |e| e.mode = 0o600), vec![("/etc/passwd", "mode 644 vs 600")])]
#[case::owner(with(tree(), "etc", |e| e.uid = 0), vec![("/etc", "owner 1000:100 vs 0:100")])]
#[case::mtime(
    with(tree(), "home.txt", |e| e.mtime_ns = 6),
    vec![("/home.txt", "mtime 1700000000.000000005 vs 1700000000.000000006")]
)]
#[case::symlink_target(
    with(tree(), "etc/localtime", |e| e.target = Some("/etc/other".into())),
    vec![("/etc/localtime", "symlink target \"/usr/share/zoneinfo/UTC\" vs \"/etc/other\"")]
)]
#[case::kind(
    with(tree(), "home.txt", |e| { e.kind = Kind::Dir; }),
    vec![("/home.txt", "type File vs Dir")]
)]
#[case::hard_links(
    with(tree(), "etc/passwd", |e| e.link = Some("etc/hosts".into())),
    vec![("/etc/passwd", "hard links: first or only link vs /etc/hosts")]
)]
#[case::damage_on_the_copy(
    with(tree(), "etc/hosts", |e| { e.blake3 = None; e.error = Some("Input/output error (os error 5)".into()); }),
    vec![("/etc/hosts", "unreadable on the copy: Input/output error (os error 5)")]
)]
#[case::missing_in_the_copy(
    tree().into_iter().filter(|e| e.path != "etc/hosts").collect(),
    vec![("/etc/hosts", "missing in the copy")]
)]
#[case::only_in_the_copy(
    sorted([tree(), vec![file("etc/new", "x")]].concat()),
    vec![("/etc/new", "only in the copy")]
)]
fn one_difference_is_named_by_path_and_what(
    #[case] copy: Vec<Entry>,
    #[case] expected: Vec<(&str, &str)>,
) {
    let c = run(sorted(tree()), sorted(copy));
    let got: Vec<(String, String)> = c
        .differences
        .iter()
        .map(|d| (d.path.clone(), d.what.describe()))
        .collect();
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(p, w)| (p.to_string(), w.to_string()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(c.differing, 1, "one path differs");
    assert!(!c.ok());
}

#[test]
fn a_file_not_sampled_on_one_side_is_compared_by_metadata_only() {
    let copy = with(tree(), "etc/hosts", |e| e.blake3 = None);
    let c = run(sorted(tree()), sorted(copy));
    assert!(c.ok());
    assert_eq!(c.checksummed, 2);
}

#[test]
fn damage_is_counted_and_every_other_file_still_compared() {
    let copy = with(tree(), "etc/hosts", |e| {
        e.blake3 = None;
        e.error = Some("Input/output error (os error 5)".into());
    });
    let copy = with(copy, "home.txt", |e| e.blake3 = Some("ff".into()));
    let c = run(sorted(tree()), sorted(copy));
    assert_eq!((c.differing, c.damaged, c.entries), (2, 1, 6));
    assert_eq!(c.differences[1].path, "/home.txt");
    assert!(c.differences[0].what.is_damage());
}

#[test]
fn a_listing_that_breaks_off_is_an_error_not_missing_files() {
    let broken = sorted(tree())
        .into_iter()
        .take(2)
        .map(Ok)
        .chain([Err("connection lost")]);
    let r = compare(sorted(tree()).into_iter().map(Ok), broken);
    assert_eq!(r, Err("connection lost"));
}

#[test]
fn differences_beyond_the_listed_ones_are_counted() {
    let original: Vec<Entry> = (0..LISTED + 5)
        .map(|i| file(&format!("f{i:05}"), "a"))
        .collect();
    let copy: Vec<Entry> = original
        .iter()
        .map(|e| Entry {
            mode: 0o600,
            ..e.clone()
        })
        .collect();
    let c = run(original, copy);
    assert_eq!(c.differing, (LISTED + 5) as u64);
    assert_eq!(c.differences.len(), LISTED);
}
