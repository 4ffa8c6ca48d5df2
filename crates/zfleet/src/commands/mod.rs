//! One file per subcommand: its arguments (whose doc comments are the help
//! text) and one function that runs it.

mod backup;
mod check;
mod check_backups;
mod check_pools;
mod check_snapshots;
mod checksum;
mod completions;
mod daemon;
mod deploy;
mod disks;
mod export;
mod grant;
mod import;
mod init;
mod list;
mod man;
mod prune;
mod restore;
mod root;
mod run;
mod serve;
mod snapshot;
mod state;
mod status;
mod sync;
mod unlock;
mod verify;

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
    Snapshot(snapshot::SnapshotArgs),
    Prune(prune::PruneArgs),
    Run(run::RunArgs),
    CheckSnapshots(check_snapshots::CheckSnapshotsArgs),
    CheckPools(check_pools::CheckPoolsArgs),
    CheckBackups(check_backups::CheckBackupsArgs),
    Status(status::StatusArgs),
    State(state::StateArgs),
    Import(import::ImportArgs),
    Unlock(unlock::UnlockArgs),
    Restore(restore::RestoreArgs),
    Verify(verify::VerifyArgs),
    Checksum(checksum::ChecksumArgs),
    Daemon(daemon::DaemonArgs),
    Disks(disks::DisksArgs),
    Root(root::RootArgs),
    Completions(completions::CompletionsArgs),
    Man(man::ManArgs),
    Init(init::InitArgs),
    Deploy(deploy::DeployArgs),
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
        Command::Snapshot(a) => snapshot::cmd_snapshot(&cli.global, &a),
        Command::Prune(a) => prune::cmd_prune(&cli.global, &a),
        Command::Run(a) => run::cmd_run(&cli.global, &a),
        Command::CheckSnapshots(a) => check_snapshots::cmd_check_snapshots(&cli.global, &a),
        Command::CheckPools(a) => check_pools::cmd_check_pools(&cli.global, &a),
        Command::CheckBackups(a) => check_backups::cmd_check_backups(&cli.global, &a),
        Command::Status(a) => status::cmd_status(&cli.global, &a),
        Command::State(a) => state::cmd_state(&cli.global, &a),
        Command::Import(a) => import::cmd_import(&cli.global, &a),
        Command::Unlock(a) => unlock::cmd_unlock(&cli.global, &a),
        Command::Restore(a) => restore::cmd_restore(&cli.global, &a),
        Command::Verify(a) => verify::cmd_verify(&cli.global, &a),
        Command::Checksum(a) => checksum::cmd_checksum(&cli.global, &a),
        Command::Daemon(a) => daemon::cmd_daemon(&cli.global, &a),
        Command::Disks(a) => disks::cmd_disks(&cli.global, &a),
        Command::Root(a) => root::cmd_root(&cli.global, &a),
        Command::Completions(a) => completions::cmd_completions(&cli.global, &a),
        Command::Man(a) => man::cmd_man(&cli.global, &a),
        Command::Init(a) => init::cmd_init(&cli.global, &a),
        Command::Deploy(a) => deploy::cmd_deploy(&cli.global, &a),
    }
}
