//! One file per subcommand: its arguments (whose doc comments are the help
//! text) and one function that runs it.

mod backup;
mod check;
mod export;
mod grant;
mod list;
mod serve;
mod sync;
mod unlock;

use clap::Subcommand;
use zfleet_core::Error;

use crate::cli::Cli;

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(check::CheckArgs),
    Backup(backup::BackupArgs),
    Sync(sync::SyncArgs),
    Grant(grant::GrantArgs),
    Serve(serve::ServeArgs),
    Export(export::ExportArgs),
    List(list::ListArgs),
    Unlock(unlock::UnlockArgs),
}

/// Runs the command; `Ok` carries the exit code for outcomes that are not errors
/// of zfleet itself (a host that failed among several that worked).
pub fn run(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Check(a) => check::cmd_check(&cli.global, &a),
        Command::Backup(a) => backup::cmd_backup(&cli.global, &a),
        Command::Sync(a) => sync::cmd_sync(&cli.global, &a),
        Command::Grant(a) => grant::cmd_grant(&cli.global, &a),
        Command::Serve(a) => serve::cmd_serve(&cli.global, &a),
        Command::Export(a) => export::cmd_export(&cli.global, &a),
        Command::List(a) => list::cmd_list(&cli.global, &a),
        Command::Unlock(a) => unlock::cmd_unlock(&cli.global, &a),
    }
}
