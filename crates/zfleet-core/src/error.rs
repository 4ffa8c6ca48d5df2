//! The engine's error type. Each variant belongs to one kind, and the CLI maps
//! kinds to exit codes, so scripts can tell a typo from a dead host.

use crate::config::ConfigErrors;
use crate::exec::ExecError;
use crate::failure::{Failure, FailureKind};
use crate::zfs::{NameError, ParseError, ZfsError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line was wrong.
    Usage,
    /// The fleet file was wrong.
    Config,
    /// A host, ssh or ZFS failed.
    Remote,
    /// A bug in zfleet, or something it did not expect from a tool.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("`{name}` is not a host in the fleet file (hosts: {})", known.join(", "))]
    UnknownHost { name: String, known: Vec<String> },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Zfs(#[from] ZfsError),
    #[error("on {host}: could not read the output of `{cmdline}`: {source}")]
    Parse {
        host: String,
        cmdline: String,
        #[source]
        source: ParseError,
    },
    /// A file the fleet file points at (a pinned key file, say) could not be
    /// read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A step that failed on one side, typed ([`Failure`]).
    #[error("{0}")]
    Failed(Failure),
    #[error("{0}")]
    Internal(String),
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::Failed(f)
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::File { .. } => ErrorKind::Config,
            Error::Name(_) | Error::UnknownHost { .. } | Error::Usage(_) => ErrorKind::Usage,
            Error::Exec(_) | Error::Zfs(_) => ErrorKind::Remote,
            Error::Failed(f) if f.kind == FailureKind::Internal => ErrorKind::Internal,
            Error::Failed(_) => ErrorKind::Remote,
            Error::Parse { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }
}
