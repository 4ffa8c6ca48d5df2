//! `fleet.toml` files for labs: the seed's layout with the lab's addresses, key
//! and known_hosts, so zfleet runs against the lab exactly as against a real fleet.

use std::fmt::Write as _;

use crate::sim::Lab;

/// A fleet for a lab whose hosts named `backup*` are backup servers (pool
/// `zstorage`) and all others clients (pool `zroot`), as in `LabSpec::seed()`.
/// `extra` is appended verbatim (more hosts, templates, overrides).
pub fn seed_fleet_toml(lab: &Lab, extra: &str) -> String {
    let mut s = ssh_header(lab);
    s.push_str(
        "[templates.default]\nhourly = 8\ndaily = 1\nmonthly = 1\nyearly = 1\n\n\
         [templates.backup]\nautosnap = false\nhourly = 0\ndaily = 14\nmonthly = 6\nyearly = 1\n\n",
    );
    for h in lab.hosts() {
        let _ = writeln!(s, "[hosts.{}]\naddress = \"{}\"", h.name(), h.addr());
        if h.name().starts_with("backup") {
            let _ = writeln!(
                s,
                "[hosts.{}.server]\ntarget_root = \"zstorage/backups\"\nretention = \"backup\"",
                h.name()
            );
        } else {
            let _ = writeln!(s, "[hosts.{}.backup]", h.name());
            for ds in ["zroot/persist", "zroot/persistSave"] {
                let _ = writeln!(
                    s,
                    "[hosts.{}.snapshots.\"{ds}\"]\nuse_template = [\"default\"]",
                    h.name()
                );
            }
        }
        s.push('\n');
    }
    s.push_str(extra);
    s
}

/// The `[ssh]` table that reaches the lab's hosts: its key and known_hosts.
pub fn ssh_header(lab: &Lab) -> String {
    format!(
        "# Generated for lab `{}`.\n[ssh]\nuser = \"root\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n\n",
        lab.name(),
        lab.user_key().display(),
        lab.known_hosts().display()
    )
}
