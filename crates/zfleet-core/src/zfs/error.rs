//! Known `zfs`/`zpool` failures as typed kinds, with the raw text kept.
//!
//! The patterns are the messages of OpenZFS 2.x and zfs-fuse (see the fixtures);
//! anything else is `Other` and shown verbatim.

use std::fmt;

use serde::Serialize;

use crate::exec::ExecError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ZfsErrorKind {
    /// `cannot open 'x': dataset does not exist`
    DoesNotExist {
        name: Option<String>,
    },
    PermissionDenied,
    AlreadyExists,
    /// A hold with this tag is already on the snapshot.
    HoldExists,
    /// A release of a hold that is not there.
    NoSuchHold,
    /// An incremental receive onto a target written since its last snapshot.
    DestinationModified,
    /// A full receive onto an existing dataset, or one with snapshots.
    DestinationExists,
    /// An incremental whose start is not the target's newest snapshot.
    WrongBase,
    /// Destroy of a held or otherwise busy object.
    Busy,
    /// Destroy of a dataset that has children.
    HasChildren,
    NoSpace,
    KeyNotLoaded,
    KeyAlreadyLoaded,
    WrongKey,
    /// The stream ended early (sender killed, network cut).
    IncompleteStream,
    /// The source no longer has the snapshot an incremental starts from.
    MissingBase,
    /// The snapshot a resume token continues is gone or was replaced.
    StaleResumeToken,
    /// The command or option does not exist in this dialect.
    Unsupported,
    Other,
}

/// Which kind a message is: the first row whose every pattern occurs in it
/// (lowercased) wins, so the more specific rows come first. The messages are
/// those of OpenZFS 2.x and zfs-fuse as captured in `tests/fixtures/`; each
/// row is exercised there.
const TABLE: &[(&[&str], Kind)] = &[
    (&["unrecognized command"], Kind::Unsupported),
    (&["invalid option"], Kind::Unsupported),
    (&["pyzfs.py not found"], Kind::Unsupported),
    (&["permission denied"], Kind::PermissionDenied),
    (&["has been modified"], Kind::DestinationModified),
    (
        &["most recent snapshot", "match incremental source"],
        Kind::WrongBase,
    ),
    (&["destination", "exists"], Kind::DestinationExists),
    (&["destination", "has snapshots"], Kind::DestinationExists),
    (&["used in the initial send"], Kind::StaleResumeToken),
    (&["incremental source", "does not exist"], Kind::MissingBase),
    (
        &["incremental source", "no longer exists"],
        Kind::MissingBase,
    ),
    (&["dataset does not exist"], Kind::DoesNotExist),
    (&["no such pool"], Kind::DoesNotExist),
    (&["could not find any snapshots"], Kind::DoesNotExist),
    (&["no such tag"], Kind::NoSuchHold),
    (&["tag already exists"], Kind::HoldExists),
    (&["key already loaded"], Kind::KeyAlreadyLoaded),
    (&["already exists"], Kind::AlreadyExists),
    (&["has children"], Kind::HasChildren),
    (&["dataset is busy"], Kind::Busy),
    (&["pool or dataset is busy"], Kind::Busy),
    (&["device or resource busy"], Kind::Busy),
    (&["it has holds"], Kind::Busy),
    (&["being held"], Kind::Busy),
    (&["out of space"], Kind::NoSpace),
    (&["no space left"], Kind::NoSpace),
    (&["quota exceeded"], Kind::NoSpace),
    (&["incorrect key"], Kind::WrongKey),
    (&["key not loaded"], Kind::KeyNotLoaded),
    (&["keys are not loaded"], Kind::KeyNotLoaded),
    (&["key must be loaded"], Kind::KeyNotLoaded),
    (&["encryption key", "not loaded"], Kind::KeyNotLoaded),
    (&["incomplete stream"], Kind::IncompleteStream),
    (&["checksum mismatch"], Kind::IncompleteStream),
    (&["stream ended unexpectedly"], Kind::IncompleteStream),
];

/// The table's kinds without their data (the name is read from the message).
#[derive(Clone, Copy)]
enum Kind {
    DoesNotExist,
    PermissionDenied,
    AlreadyExists,
    HoldExists,
    NoSuchHold,
    DestinationModified,
    DestinationExists,
    WrongBase,
    Busy,
    HasChildren,
    NoSpace,
    KeyNotLoaded,
    KeyAlreadyLoaded,
    WrongKey,
    IncompleteStream,
    MissingBase,
    StaleResumeToken,
    Unsupported,
}

impl ZfsErrorKind {
    /// The one place where zfs's and zpool's messages are read. Everything
    /// that needs to know why a command failed asks this, never the text.
    pub fn classify(stderr: &str) -> Self {
        let s = stderr.to_ascii_lowercase();
        let Some((_, kind)) = TABLE
            .iter()
            .find(|(patterns, _)| patterns.iter().all(|p| s.contains(p)))
        else {
            return ZfsErrorKind::Other;
        };
        match kind {
            Kind::DoesNotExist => ZfsErrorKind::DoesNotExist {
                name: quoted_name(stderr),
            },
            Kind::PermissionDenied => ZfsErrorKind::PermissionDenied,
            Kind::AlreadyExists => ZfsErrorKind::AlreadyExists,
            Kind::HoldExists => ZfsErrorKind::HoldExists,
            Kind::NoSuchHold => ZfsErrorKind::NoSuchHold,
            Kind::DestinationModified => ZfsErrorKind::DestinationModified,
            Kind::DestinationExists => ZfsErrorKind::DestinationExists,
            Kind::WrongBase => ZfsErrorKind::WrongBase,
            Kind::Busy => ZfsErrorKind::Busy,
            Kind::HasChildren => ZfsErrorKind::HasChildren,
            Kind::NoSpace => ZfsErrorKind::NoSpace,
            Kind::KeyNotLoaded => ZfsErrorKind::KeyNotLoaded,
            Kind::KeyAlreadyLoaded => ZfsErrorKind::KeyAlreadyLoaded,
            Kind::WrongKey => ZfsErrorKind::WrongKey,
            Kind::IncompleteStream => ZfsErrorKind::IncompleteStream,
            Kind::MissingBase => ZfsErrorKind::MissingBase,
            Kind::StaleResumeToken => ZfsErrorKind::StaleResumeToken,
            Kind::Unsupported => ZfsErrorKind::Unsupported,
        }
    }

    /// A failure that says the world is not what the plan was made from (a
    /// snapshot pruned, the target written, a resume token gone stale): worth
    /// observing again and planning anew, not repeating.
    pub fn means_changed_state(&self) -> bool {
        matches!(
            self,
            ZfsErrorKind::DoesNotExist { .. }
                | ZfsErrorKind::DestinationModified
                | ZfsErrorKind::DestinationExists
                | ZfsErrorKind::WrongBase
                | ZfsErrorKind::MissingBase
                | ZfsErrorKind::StaleResumeToken
        )
    }
}

/// The first `'…'`-quoted word, which is how zfs names the object it failed on.
fn quoted_name(stderr: &str) -> Option<String> {
    let start = stderr.find('\'')? + 1;
    let len = stderr[start..].find('\'')?;
    Some(stderr[start..start + len].to_string())
}

/// A zfs/zpool command that ran and failed, or could not run.
#[derive(Debug, thiserror::Error)]
pub struct ZfsError {
    pub kind: ZfsErrorKind,
    #[source]
    pub exec: Box<ExecError>,
}

impl fmt::Display for ZfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.exec.fmt(f)
    }
}

impl From<ExecError> for ZfsError {
    fn from(exec: ExecError) -> Self {
        let kind = exec
            .stderr()
            .map_or(ZfsErrorKind::Other, ZfsErrorKind::classify);
        Self {
            kind,
            exec: Box::new(exec),
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn fixture(path: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn dne(name: &str) -> ZfsErrorKind {
        ZfsErrorKind::DoesNotExist {
            name: Some(name.into()),
        }
    }

    /// Every captured error message of both OpenZFS versions, by file name.
    #[rstest]
    #[case("err-dataset-does-not-exist.stderr", dne("zroot/nope"))]
    #[case("err-get-dataset-does-not-exist.stderr", dne("zroot/nope"))]
    #[case("err-snapshot-does-not-exist.stderr", ZfsErrorKind::DoesNotExist { name: None })]
    #[case("err-destroy-has-children.stderr", ZfsErrorKind::HasChildren)]
    #[case("err-destroy-held.stderr", ZfsErrorKind::Busy)]
    #[case("err-hold-tag-exists.stderr", ZfsErrorKind::HoldExists)]
    #[case("err-release-no-such-tag.stderr", ZfsErrorKind::NoSuchHold)]
    #[case("err-load-key-already-loaded.stderr", ZfsErrorKind::KeyAlreadyLoaded)]
    #[case("err-load-key-bad-passphrase.stderr", ZfsErrorKind::WrongKey)]
    #[case("err-mount-key-not-loaded.stderr", ZfsErrorKind::KeyNotLoaded)]
    #[case("err-send-key-not-loaded.stderr", ZfsErrorKind::KeyNotLoaded)]
    #[case("err-permission-denied-destroy.stderr", ZfsErrorKind::PermissionDenied)]
    #[case("err-permission-denied-rename.stderr", ZfsErrorKind::PermissionDenied)]
    #[case(
        "err-permission-denied-snapshot.stderr",
        ZfsErrorKind::PermissionDenied
    )]
    #[case("err-recv-destination-exists.stderr", ZfsErrorKind::DestinationExists)]
    #[case(
        "err-recv-destination-modified.stderr",
        ZfsErrorKind::DestinationModified
    )]
    #[case("err-recv-interrupted.stderr", ZfsErrorKind::IncompleteStream)]
    #[case("err-recv-out-of-space.stderr", ZfsErrorKind::NoSpace)]
    #[case("err-recv-wrong-base.stderr", ZfsErrorKind::WrongBase)]
    fn openzfs_captures(
        #[case] file: &str,
        #[case] kind: ZfsErrorKind,
        #[values("openzfs-2.1.11", "openzfs-2.3.2")] version: &str,
    ) {
        let text = fixture(&format!("{version}/{file}"));
        assert_eq!(
            ZfsErrorKind::classify(&text),
            kind,
            "{version}/{file}: {text}"
        );
    }

    #[rstest]
    #[case("err-no-such-dataset.stderr", dne("zroot/nope"))]
    #[case("err-no-such-snapshot.stderr", dne("zroot/persistSave@nope"))]
    #[case("err-exists.stderr", ZfsErrorKind::AlreadyExists)]
    #[case("err-holds-listing.stderr", ZfsErrorKind::Unsupported)]
    #[case("version.stderr", ZfsErrorKind::Unsupported)]
    #[case("err-destroy-held.stderr", ZfsErrorKind::Busy)]
    #[case("err-recv-modified.stderr", ZfsErrorKind::DestinationModified)]
    #[case("err-recv-exists.stderr", ZfsErrorKind::DestinationExists)]
    fn zfs_fuse_captures(#[case] file: &str, #[case] kind: ZfsErrorKind) {
        let text = fixture(&format!("zfs-fuse/{file}"));
        assert_eq!(
            ZfsErrorKind::classify(&text),
            kind,
            "zfs-fuse/{file}: {text}"
        );
    }

    /// Every `err-*` capture is in a table above: a new capture without a
    /// row fails here.
    #[test]
    fn every_capture_is_classified_above() {
        let src = include_str!("error.rs");
        for dir in ["openzfs-2.1.11", "openzfs-2.3.2", "zfs-fuse"] {
            let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(dir);
            for e in std::fs::read_dir(&d).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if name.starts_with("err-") {
                    assert!(
                        src.contains(&format!("\"{name}\"")),
                        "{dir}/{name} has no row in the classifier's tests"
                    );
                }
            }
        }
    }

    /// Messages no capture has yet, as OpenZFS's and zfs-fuse's sources print them.
    #[rstest]
    #[case("cannot receive new filesystem stream: destination has snapshots (eg. zstorage/b@s1)\nmust destroy them to overwrite it", ZfsErrorKind::DestinationExists)]
    #[case(
        "cannot receive incremental stream: out of space",
        ZfsErrorKind::NoSpace
    )]
    #[case(
        "cannot destroy snapshot zroot/a@s1: dataset is busy",
        ZfsErrorKind::Busy
    )]
    #[case(
        "cannot unmount '/persist': Device or resource busy",
        ZfsErrorKind::Busy
    )]
    #[case(
        "cannot receive incremental stream: incomplete stream",
        ZfsErrorKind::IncompleteStream
    )]
    #[case(
        "warning: cannot send 'zroot/a@s2': incremental source (zroot/a@s1) does not exist",
        ZfsErrorKind::MissingBase
    )]
    #[case(
        "cannot resume send: 'zroot/a@s2' used in the initial send no longer exists",
        ZfsErrorKind::StaleResumeToken
    )]
    #[case(
        "cannot resume send: 'zroot/a@s2' is no longer the same snapshot used in the initial send",
        ZfsErrorKind::StaleResumeToken
    )]
    #[case(
        "cannot resume send: incremental source 0x8f61de38d03aa9b0 no longer exists",
        ZfsErrorKind::MissingBase
    )]
    #[case("cannot open 'nopool': no such pool", dne("nopool"))]
    #[case(
        "cannot create bookmark 'z/a#b': bookmark exists\nalready exists",
        ZfsErrorKind::AlreadyExists
    )]
    #[case("something new", ZfsErrorKind::Other)]
    fn source_messages(#[case] text: &str, #[case] kind: ZfsErrorKind) {
        assert_eq!(ZfsErrorKind::classify(text), kind, "{text}");
    }
}
