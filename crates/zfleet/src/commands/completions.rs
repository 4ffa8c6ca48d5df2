use clap::{Args, CommandFactory};
use clap_complete::Shell;
use zfleet_core::Error;

use crate::cli::{Cli, GlobalArgs};

/// Print the shell completion script for SHELL on stdout.
///
/// The Debian package installs them; after `cargo install`, for example:
/// `zfleet completions bash > /etc/bash_completion.d/zfleet`,
/// `zfleet completions zsh > /usr/local/share/zsh/site-functions/_zfleet`,
/// `zfleet completions fish > ~/.config/fish/completions/zfleet.fish`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

pub fn cmd_completions(_g: &GlobalArgs, a: &CompletionsArgs) -> Result<u8, Error> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "zfleet", &mut out);
    crate::render::write_stdout(&out);
    Ok(crate::exit::OK)
}
