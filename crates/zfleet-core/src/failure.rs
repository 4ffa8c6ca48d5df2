//! Why a job failed, as a value: a kind that a program can act on (the CLI's
//! exit code, the daemon's retry and metrics, a skipped client), next to the
//! message a person reads, the side and host that failed, and how far it got.
//! Nothing decides by reading the message.

use std::fmt;

use serde::Serialize;

use crate::exec::ExecError;
use crate::zfs::{ZfsError, ZfsErrorKind};
use crate::Error;

/// Which end of a transfer: the sender's or the receiver's host, or this
/// process in between (the pump).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Target,
    /// zfleet itself, between the two.
    Here,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
            Side::Here => "zfleet",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureKind {
    /// The host did not answer, or stopped answering (a link down, a host gone).
    Unreachable,
    /// ssh could not log in.
    Auth,
    /// The host presented a key that is not the one on file.
    HostKey,
    /// A zfs (or other) command ran and failed; `zfs` says why.
    Zfs {
        zfs: ZfsErrorKind,
    },
    /// The target changed in a way zfleet will not follow (written to, or
    /// given snapshots) between planning and receiving.
    Diverged,
    NoSpace,
    /// A command did not finish in time.
    Stalled,
    /// A process of the transfer was killed or ended without a status.
    Interrupted,
    /// zfleet itself went wrong: a bug, or output it did not expect.
    Internal,
}

impl FailureKind {
    /// The kind of an `Error` that a step returned.
    pub fn of(e: &Error) -> Self {
        match e {
            Error::Exec(x) => Self::of_exec(x),
            Error::Zfs(z) => Self::of_zfs(z),
            Error::Config(_)
            | Error::Name(_)
            | Error::UnknownHost { .. }
            | Error::Usage(_)
            | Error::File { .. }
            | Error::Parse { .. }
            | Error::Internal(_) => FailureKind::Internal,
            Error::Failed(f) => f.kind.clone(),
        }
    }

    pub fn of_zfs(z: &ZfsError) -> Self {
        match &*z.exec {
            ExecError::Failed { .. } => Self::of_zfs_kind(&z.kind),
            other => Self::of_exec(other),
        }
    }

    pub fn of_zfs_kind(k: &ZfsErrorKind) -> Self {
        match k {
            ZfsErrorKind::NoSpace => FailureKind::NoSpace,
            ZfsErrorKind::DestinationModified | ZfsErrorKind::DestinationExists => {
                FailureKind::Diverged
            }
            ZfsErrorKind::IncompleteStream => FailureKind::Interrupted,
            k => FailureKind::Zfs { zfs: k.clone() },
        }
    }

    pub fn of_exec(e: &ExecError) -> Self {
        match e {
            ExecError::Unreachable { .. } | ExecError::Connection { .. } => {
                FailureKind::Unreachable
            }
            ExecError::HostKey { .. } => FailureKind::HostKey,
            ExecError::Auth { .. } => FailureKind::Auth,
            ExecError::Timeout { .. } => FailureKind::Stalled,
            ExecError::Failed { stderr, .. } => Self::of_zfs_kind(&ZfsErrorKind::classify(stderr)),
            ExecError::Spawn { .. } | ExecError::Refused { .. } => FailureKind::Zfs {
                zfs: ZfsErrorKind::Other,
            },
        }
    }

    /// The host could not be talked to at all: the rest of its jobs would
    /// fail the same way, each after a full timeout.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable | FailureKind::Auth | FailureKind::HostKey
        )
    }

    /// A failure that says the world is not what the plan was made from.
    pub fn means_changed_state(&self) -> bool {
        match self {
            FailureKind::Zfs { zfs } => zfs.means_changed_state(),
            FailureKind::Diverged => true,
            _ => false,
        }
    }
}

/// A failed job or step: what kind, what happened, where, and how much got
/// across before it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    #[serde(flatten)]
    pub kind: FailureKind,
    pub message: String,
    /// The side that failed, where one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// The fleet host that failed (for [`Side::Here`], this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Bytes of the failed stream that reached the receiver.
    pub bytes: u64,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            side: None,
            host: None,
            bytes: 0,
        }
    }

    /// An error of a command run on `host`, the `side` of a transfer.
    pub fn on(side: Side, host: &str, e: &Error) -> Self {
        if let Error::Failed(f) = e {
            return f.clone();
        }
        Self {
            kind: FailureKind::of(e),
            message: e.to_string(),
            side: Some(side),
            host: Some(host.to_string()),
            bytes: 0,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Internal, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str) -> Error {
        Error::Zfs(ZfsError::from(ExecError::Failed {
            host: "backup".into(),
            cmdline: "zfs receive -s z/b".into(),
            status: "exit status 1".into(),
            stderr: stderr.into(),
        }))
    }

    #[test]
    fn kinds_of_errors() {
        let k = |e: &Error| FailureKind::of(e);
        assert_eq!(
            k(&failed("cannot receive new filesystem stream: destination zstorage/small/data space quota exceeded.")),
            FailureKind::NoSpace
        );
        assert_eq!(
            k(&failed("cannot receive incremental stream: destination z/b has been modified\nsince most recent snapshot")),
            FailureKind::Diverged
        );
        assert_eq!(
            k(&failed("cannot open 'z/b': dataset does not exist")),
            FailureKind::Zfs {
                zfs: ZfsErrorKind::DoesNotExist {
                    name: Some("z/b".into())
                }
            }
        );
        let unreachable = Error::Exec(ExecError::Unreachable {
            host: "client1".into(),
            address: "10.0.0.1:22".into(),
            after: std::time::Duration::from_secs(15),
            detail: "no answer".into(),
        });
        assert_eq!(k(&unreachable), FailureKind::Unreachable);
        assert!(k(&unreachable).is_connection());
        let timeout = Error::Exec(ExecError::Timeout {
            host: "client1".into(),
            cmdline: "zfs list".into(),
            after: std::time::Duration::from_secs(120),
            stderr: String::new(),
        });
        assert_eq!(k(&timeout), FailureKind::Stalled);
        assert_eq!(k(&Error::Internal("bug".into())), FailureKind::Internal);
    }

    #[test]
    fn serialised_flat() {
        let f = Failure {
            side: Some(Side::Source),
            host: Some("client1".into()),
            bytes: 12 << 20,
            ..Failure::new(FailureKind::Unreachable, "client1 stopped answering")
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({
                "kind": "unreachable",
                "message": "client1 stopped answering",
                "side": "source",
                "host": "client1",
                "bytes": 12582912
            })
        );
    }
}
