use clap::{Args, ValueEnum};
use zfleet_core::grant::{self, Delegation, GrantOptions};
use zfleet_core::Error;

use crate::cli::{GlobalArgs, OutputArgs};
use crate::context;
use crate::render;

/// Set up HOST's backup account so backup keys can do their job and nothing more.
///
/// Prints (or with --apply performs over admin ssh): the system user
/// `[fleet] backup_user`, its authorized_keys with one line per peer key whose
/// forced command is `zfleet serve` (servers' `public_key` to pull; push
/// clients' to receive; with --restore, a separate restore line), and the
/// permission for serve to run zfs: `zfs allow` where the pool supports
/// delegation, else one sudo rule for exactly `zfleet serve`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    host: String,
    /// Perform the setup on HOST (over the admin ssh access), not just print it.
    #[arg(long)]
    apply: bool,
    /// Where zfleet is installed on HOST.
    #[arg(long, default_value = "/usr/local/bin/zfleet")]
    zfleet_path: String,
    /// The fleet file as HOST sees it.
    #[arg(long, default_value = zfleet_core::config::DEFAULT_PATH)]
    config_path: String,
    /// How serve gets to run zfs (default: zfs-allow where HOST's ZFS supports it).
    #[arg(long, value_enum, default_value_t = DelegationArg::Auto)]
    delegation: DelegationArg,
    /// Also allow servers to restore into HOST's backed-up datasets (off by default).
    #[arg(long)]
    restore: bool,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DelegationArg {
    Auto,
    ZfsAllow,
    Sudo,
}

pub fn cmd_grant(g: &GlobalArgs, a: &GrantArgs) -> Result<u8, Error> {
    let cx = context::load(g)?;
    let host = cx.host(&a.host)?;
    let delegation = match a.delegation {
        DelegationArg::ZfsAllow => Delegation::ZfsAllow,
        DelegationArg::Sudo => Delegation::Sudo,
        DelegationArg::Auto => match host.caps() {
            Ok(c) if c.allow => Delegation::ZfsAllow,
            Ok(_) => Delegation::Sudo,
            Err(e) if a.apply => return Err(e.into()),
            Err(e) => {
                eprintln!("note: {} could not be asked which delegation it supports ({e}); showing zfs allow", a.host);
                Delegation::ZfsAllow
            }
        },
    };
    let opts = GrantOptions {
        zfleet_path: a.zfleet_path.clone(),
        config_path: a.config_path.clone(),
        delegation,
        restore: a.restore,
    };
    let plan = grant::plan(&cx.fleet, &a.host, &opts)?;
    for m in &plan.missing {
        eprintln!("warning: {m}");
    }
    if plan.keys.is_empty() {
        return Err(Error::Usage(format!("nothing to grant on `{}`: no server pulls from it and no client pushes to it with a known key", a.host)));
    }
    if a.apply {
        let done = grant::apply(&plan, &host)?;
        if a.out.json {
            render::json(&serde_json::json!({ "plan": plan, "done": done }));
        } else {
            for d in done {
                outln!("{}: {d}", a.host);
            }
        }
    } else if a.out.json {
        render::json(&plan);
    } else {
        outln!("{}", plan.script());
    }
    Ok(crate::exit::OK)
}
