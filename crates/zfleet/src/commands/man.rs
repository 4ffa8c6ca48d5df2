use std::path::PathBuf;

use clap::{Args, CommandFactory};
use zfleet_core::Error;

use crate::cli::{Cli, GlobalArgs};

/// Print zfleet's manual page (roff) on stdout, or with --dir write the pages
/// of zfleet and every subcommand (`zfleet.1`, `zfleet-backup.1`, …).
///
/// `zfleet man | man -l -` reads it; `zfleet man backup` is the page of
/// `zfleet backup`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (`backup`, `import sanoid`).
    command: Vec<String>,
    /// Write every page into this directory instead, one file per command.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    dir: Option<PathBuf>,
}

/// The command tree with every subcommand's display name (`zfleet-backup`)
/// set, as man pages and their SEE ALSO sections name them.
fn built() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn page(cmd: clap::Command) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .manual("zfleet manual")
        .source(concat!("zfleet ", env!("CARGO_PKG_VERSION")))
        // An empty date would shift the fields of `.TH` (clap_mangen does
        // not quote it), and a build date would make builds differ.
        .date(concat!("version ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|e| Error::Internal(format!("cannot render a man page: {e}")))?;
    Ok(out)
}

/// Every command, depth first: `zfleet`, `zfleet-backup`, `zfleet-import`,
/// `zfleet-import-sanoid`, …
fn all(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
    out.push(cmd.clone());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        all(sub, out);
    }
}

pub fn cmd_man(_g: &GlobalArgs, a: &ManArgs) -> Result<u8, Error> {
    let root = built();
    if let Some(dir) = &a.dir {
        std::fs::create_dir_all(dir).map_err(|source| Error::File {
            path: dir.clone(),
            action: "create",
            source,
        })?;
        let mut cmds = Vec::new();
        all(&root, &mut cmds);
        for cmd in cmds {
            let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
            let path = dir.join(format!("{name}.1"));
            std::fs::write(&path, page(cmd)?).map_err(|source| Error::File {
                path: path.clone(),
                action: "write",
                source,
            })?;
            outln!("{}", path.display());
        }
        return Ok(crate::exit::OK);
    }
    let mut cmd = root;
    for word in &a.command {
        let Some(sub) = cmd.find_subcommand(word).cloned() else {
            let known: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
            return Err(Error::Usage(format!(
                "`{}` has no subcommand `{}` (it has: {})",
                cmd.get_display_name().unwrap_or(cmd.get_name()),
                zfleet_core::text::printable(word),
                known.join(", ")
            )));
        };
        cmd = sub;
    }
    crate::render::write_stdout(&page(cmd)?);
    Ok(crate::exit::OK)
}
