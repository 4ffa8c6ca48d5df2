//! What the guest tests share: zfleet installed once in the guest, a client
//! and a server in network namespaces with one fleet file, and readers for
//! zfleet's JSON and the pools.

use std::sync::OnceLock;

use zfleet_lab::guest::{Guest, Scenario, ScenarioOptions};

/// Where the server keeps the client's `zroot` datasets.
pub(crate) const T: &str = "zstorage/backups/zfleet-client/zroot";

/// The zfleet binary is copied into the guest once per test binary.
pub(crate) fn install(guest: &Guest) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        guest
            .copy_in(&crate::common::zfleet_bin(), "/usr/local/bin/zfleet", true)
            .unwrap();
    });
}

/// `zfleet-client` backing up `datasets` (TOML array items) to
/// `zfleet-server`; `ssh_extra` goes into `[ssh]`, `client_extra` after the
/// client's tables.
pub(crate) fn scenario<'g>(
    guest: &'g Guest,
    ssh_extra: &str,
    datasets: &str,
    client_extra: &str,
) -> Scenario<'g> {
    install(guest);
    let s = guest
        .scenario_with(&ScenarioOptions {
            hosts_in_netns: true,
        })
        .unwrap();
    let fleet = format!(
        "[ssh]\nuser = \"root\"\nconnect_timeout = \"20s\"\n{ssh_extra}\n\
         [hosts.zfleet-client]\naddress = \"192.168.77.1\"\n[hosts.zfleet-client.backup]\ndatasets = [{datasets}]\n\
         {client_extra}\
         [hosts.zfleet-server]\naddress = \"192.168.77.2\"\n[hosts.zfleet-server.server]\ntarget_root = \"zstorage/backups\"\n"
    );
    s.run_with_stdin(
        "mkdir -p /etc/zfleet && cat > /etc/zfleet/fleet.toml && rm -rf /var/lib/zfleet",
        fleet.as_bytes(),
    )
    .unwrap();
    s.run("zfs create -o canmount=off zstorage/backups")
        .unwrap();
    s
}

pub(crate) fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// `zfleet backup --json ARGS` on the server.
pub(crate) fn backup(s: &Scenario<'_>, args: &str) -> serde_json::Value {
    json(
        &s.on_server(&format!("zfleet --host zfleet-server backup --json {args}"))
            .unwrap(),
    )
}

/// Snapshot names of `ds`, oldest first, one per line.
pub(crate) fn snapshot_names(s: &Scenario<'_>, ds: &str) -> String {
    s.run(&format!(
        "zfs list -H -o name -t snapshot -s createtxg {ds} | sed 's/.*@//'"
    ))
    .unwrap()
}
