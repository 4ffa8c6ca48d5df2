//! `zfleet-lab guest …`: build, boot and use the OpenZFS guest by hand.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::{fixtures, Guest, GuestConfig, Image, Recipe, ZfsSuite};

/// The OpenZFS qemu guest: build its image, boot it, capture fixtures.
#[derive(Debug, Args)]
pub struct GuestArgs {
    /// Debian suite for kernel and OpenZFS: `bookworm-backports` (2.3.x) or
    /// `bookworm` (2.1.11). Default: $ZFLEET_LAB_ZFS_SUITE or bookworm-backports.
    #[arg(long, global = true)]
    suite: Option<ZfsSuite>,

    #[command(subcommand)]
    command: GuestCommand,
}

#[derive(Debug, Subcommand)]
enum GuestCommand {
    /// Build the guest image unless the cache has it. Installs the host
    /// packages it needs (qemu, debootstrap). Needs root.
    Build,
    /// Print the image directory for the recipe, if built.
    Path,
    /// Remove cached images of recipes this zfleet-lab no longer builds.
    Prune,
    /// Boot a guest, print how to reach it, wait for Enter (or EOF), tear down.
    Up {
        /// Run this shell command in the guest instead of waiting, then tear down.
        #[arg(long)]
        exec: Option<String>,
        /// Number of pool disks.
        #[arg(long, default_value_t = 7)]
        disks: usize,
        /// Print the qemu pid and run dir as soon as qemu runs, then wait
        /// for Enter without waiting for ssh (for teardown tests).
        #[arg(long, hide = true)]
        no_wait: bool,
    },
    /// Capture real zfs/zpool output into OUT/openzfs-<version>/.
    Fixtures {
        /// Default: crates/zfleet-core/tests/fixtures of this checkout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: GuestArgs) -> Result<()> {
    let recipe = match args.suite {
        Some(suite) => Recipe::new(suite),
        None => Recipe::from_env()?,
    };
    match args.command {
        GuestCommand::Build => {
            let started = Instant::now();
            let image = Image::build(&recipe)?;
            println!("image {}", image.dir().display());
            println!("zfs {}", image.zfs_package_version());
            println!("kernel {}", image.manifest("kernel").unwrap_or("unknown"));
            if let Some(built) = image.build_time() {
                println!("image build took {}s", built.as_secs());
            }
            println!("this command took {:.1}s", started.elapsed().as_secs_f64());
        }
        GuestCommand::Path => match Image::cached(&recipe)? {
            Some(image) => println!("{}", image.dir().display()),
            None => anyhow::bail!("not built: {}", recipe.dir().display()),
        },
        GuestCommand::Prune => {
            for dir in super::prune_cache()? {
                println!("removed {}", dir.display());
            }
        }
        GuestCommand::Up {
            exec,
            disks,
            no_wait,
        } => {
            let image = Image::build(&recipe)?;
            let config = GuestConfig {
                pool_disks: disks,
                wait_for_ssh: !no_wait,
                ..GuestConfig::default()
            };
            let guest = Guest::boot(&image, config)?;
            println!("booted in {:.1}s", guest.boot_time().as_secs_f64());
            println!("qemu_pid {}", guest.qemu_pid().unwrap_or(0));
            println!("run_dir {}", guest.run_dir().display());
            println!("ssh_port {}", guest.ssh_port());
            println!(
                "ssh {} root@127.0.0.1",
                guest
                    .ssh_options("root")
                    .iter()
                    .map(|o| super::shell_quote(o))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            match exec {
                Some(command) => {
                    let out = guest.ssh_output(&command)?;
                    std::io::Write::write_all(&mut std::io::stdout(), &out.stdout)?;
                    std::io::Write::write_all(&mut std::io::stderr(), &out.stderr)?;
                    guest.shutdown();
                    if !out.status.success() {
                        anyhow::bail!("command failed in the guest ({})", out.status);
                    }
                }
                None => {
                    println!("press Enter to stop");
                    // Tests read the lines above through a pipe.
                    std::io::Write::flush(&mut std::io::stdout())?;
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    guest.shutdown();
                }
            }
        }
        GuestCommand::Fixtures { out } => {
            let out = out.unwrap_or_else(fixtures::default_out_dir);
            let image = Image::build(&recipe)?;
            let guest = Guest::boot(&image, GuestConfig::default())?;
            let dir = fixtures::capture(&guest, &out).context("capturing fixtures")?;
            guest.shutdown();
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            println!("fixtures in {}", dir.display());
        }
    }
    Ok(())
}
