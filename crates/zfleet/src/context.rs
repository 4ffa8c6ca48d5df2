//! The runtime every command gets from the global options: the fleet, which
//! host this machine is, and this run's ssh sessions, clock and time zone.

use zfleet_core::config;
use zfleet_core::runtime::Runtime;
use zfleet_core::Error;

use crate::cli::GlobalArgs;

pub fn load(g: &GlobalArgs) -> Result<Runtime, Error> {
    let fleet = config::load(&g.config)?;
    let this_host = match &g.this_host {
        Some(h) => h.clone(),
        None => hostname(),
    };
    Runtime::new(fleet, this_host)
}

/// The short hostname, which is what fleet files use for host names.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = raw.trim();
    name.split('.').next().unwrap_or(name).to_string()
}
