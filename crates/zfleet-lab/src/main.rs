//! `zfleet-lab`: bring the test lab up and down by hand, for demos and debugging.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "zfleet-lab", about = "zfleet's test lab")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Guest(zfleet_lab::guest::cli::GuestArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Guest(args) => zfleet_lab::guest::cli::run(args),
    }
}
