//! syncoid's command line, read the way syncoid reads it, into plain typed
//! values: what `zfleet sync` accepts as a drop-in, and what `zfleet import
//! syncoid` and `zfleet init` turn into fleet.toml.
//!
//! - [`args`]: every flag of syncoid 2.3 (Getopt::Long's rules: `--flag=value`
//!   and `--flag value`, `-flag`, unique abbreviations, any case, options after
//!   the operands, `--`), checked as syncoid checks them and, where syncoid
//!   would carry on with a warning or silently ignore something, refused.
//! - [`zfs_options`]: `--sendoptions`/`--recvoptions` parsed into the `zfs
//!   send`/`zfs receive` options they stand for; a letter that syncoid would
//!   drop without a word (the seed's `recvOptions = "c"`) is an error here.
//! - [`operand`]: `[user@]host:dataset` as syncoid's `getssh` splits it.
//! - [`command_line`]: finding syncoid's arguments in a cron line, a systemd
//!   unit or a shell line.
//!
//! Nothing here runs a process or reads a file.

pub mod args;
pub mod command_line;
pub mod import;
pub mod operand;
pub mod sources;
pub mod zfs_options;

#[cfg(test)]
mod args_tests;
#[cfg(test)]
mod import_tests;

pub use args::{parse, Flag, Invocation, SyncoidArgs};
pub use operand::{Operand, Remote};
pub use zfs_options::{RecvOption, RecvOptions, SendContext, SendOption, SendOptions};

/// Why a syncoid command line was not accepted: the word it is about (as
/// given) and what is wrong with it, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ArgsError {
    /// The argument the error is about, as written (`--sshport=x`), if any.
    pub arg: Option<String>,
    pub message: String,
    /// The words of the flag this is about, when it is one flag's value.
    pub words: Option<std::ops::Range<usize>>,
}

impl ArgsError {
    pub(crate) fn new(arg: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            arg: Some(arg.into()),
            message: message.into(),
            words: None,
        }
    }

    pub(crate) fn general(message: impl Into<String>) -> Self {
        Self {
            arg: None,
            message: message.into(),
            words: None,
        }
    }

    fn render(&self) -> String {
        match &self.arg {
            Some(a) => format!("`{}`: {}", crate::text::printable(a), self.message),
            None => self.message.clone(),
        }
    }
}
