//! One file per subcommand: its arguments (whose doc comments are the help
//! text) and one function that runs it.

mod check;
mod list;

use clap::Subcommand;
use zfleet_core::Error;

use crate::cli::Cli;

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(check::CheckArgs),
    List(list::ListArgs),
}

/// Runs the command; `Ok` carries the exit code for outcomes that are not errors
/// of zfleet itself (a host that failed among several that worked).
pub fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Check(a) => check::cmd_check(&cli.global, &a),
        Command::List(a) => list::cmd_list(&cli.global, &a),
    }
}
