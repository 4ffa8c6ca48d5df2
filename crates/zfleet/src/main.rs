//! The `zfleet` command: flags, rendering and exit codes over `zfleet-core`.

#[macro_use]
mod render;
mod cli;
mod commands;
mod context;
mod daemon;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// Exit codes by kind of failure, so a timer unit or a script can tell a typo in
/// the fleet file from a host that is down. 2 is clap's own code for usage errors.
pub mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 2;
    pub const CONFIG: u8 = 3;
    pub const REMOTE: u8 = 4;
    /// zfleet refused to act to protect data (a diverged target, a restore onto data).
    pub const REFUSED: u8 = 5;
    pub const INTERNAL: u8 = 70;
    /// Another zfleet run holds this host's lock (EX_TEMPFAIL).
    pub const BUSY: u8 = 75;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(
        &cli.global,
        matches!(cli.command, commands::Command::Daemon(_)),
    );
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = match e.kind() {
                zfleet_core::ErrorKind::Usage => exit::USAGE,
                zfleet_core::ErrorKind::Config => exit::CONFIG,
                zfleet_core::ErrorKind::Remote => exit::REMOTE,
                zfleet_core::ErrorKind::Internal => exit::INTERNAL,
            };
            render::error(&e);
            ExitCode::from(code)
        }
    }
}
