//! "Run this scenario on OpenZFS": a client and a backup server in one guest.
//!
//! ZFS pools are global to a kernel, so the two "hosts" differ by pool name:
//! the client's pool is `zroot` (as on the seed's machines) on the first pool
//! disk, the server's is `zstorage` on the second. With
//! [`ScenarioOptions::hosts_in_netns`] each host also gets a network namespace
//! with its own address, sshd and host key, so zfleet on the server can pull
//! from `root@zfleet-client` over real ssh, as it would in a fleet. The
//! namespaces separate the network only: both see both pools.
//!
//! A scenario holds the guest's scenario lock, so tests sharing one guest run
//! their scenarios one after another; it starts from empty disks and destroys
//! its pools when dropped.

use std::path::Path;
use std::process::Output;
use std::sync::MutexGuard;

use anyhow::{Context, Result};

use super::vm::{shell_quote, Guest};

pub const CLIENT_POOL: &str = "zroot";
pub const SERVER_POOL: &str = "zstorage";
/// Names the client and server have in the guest's /etc/hosts, their known_hosts
/// entries and (with namespaces) their network namespaces.
pub const CLIENT_HOST: &str = "zfleet-client";
pub const SERVER_HOST: &str = "zfleet-server";
const CLIENT_ADDR: &str = "192.168.77.1";
const SERVER_ADDR: &str = "192.168.77.2";

#[derive(Debug, Clone, Default)]
pub struct ScenarioOptions {
    /// Give client and server their own network namespace, address and sshd.
    pub hosts_in_netns: bool,
}

/// Pools (and optionally namespaced hosts) for one test; see the module docs.
pub struct Scenario<'g> {
    guest: &'g Guest,
    netns: bool,
    _lock: MutexGuard<'g, ()>,
}

impl Guest {
    /// A scenario with the pools only.
    pub fn scenario(&self) -> Result<Scenario<'_>> {
        self.scenario_with(&ScenarioOptions::default())
    }

    pub fn scenario_with(&self, options: &ScenarioOptions) -> Result<Scenario<'_>> {
        let lock = self.lock_scenario();
        let scenario = Scenario {
            guest: self,
            netns: options.hosts_in_netns,
            _lock: lock,
        };
        // A scenario that panicked half-way may have left things behind.
        scenario.clean()?;
        let disks = self.pool_disks();
        if disks.len() < 2 {
            anyhow::bail!(
                "a scenario needs two pool disks; the guest has {}",
                disks.len()
            );
        }
        for (pool, disk) in [(CLIENT_POOL, &disks[0]), (SERVER_POOL, &disks[1])] {
            self.ssh(&format!(
                "zpool create -f -o ashift=12 -O atime=off {pool} {}",
                shell_quote(disk)
            ))
            .with_context(|| format!("creating pool {pool}"))?;
        }
        if scenario.netns {
            self.ssh(NETNS_UP)
                .context("setting up the client and server namespaces")?;
        }
        Ok(scenario)
    }
}

impl Guest {
    /// A scenario without pools: the guest's disks all blank, for tests that
    /// lay out disks themselves (`zfleet disks`). Cleaned up the same way.
    pub fn bare_scenario(&self) -> Result<Scenario<'_>> {
        let lock = self.lock_scenario();
        let scenario = Scenario {
            guest: self,
            netns: false,
            _lock: lock,
        };
        scenario.clean()?;
        Ok(scenario)
    }
}

impl<'g> Scenario<'g> {
    pub fn guest(&self) -> &'g Guest {
        self.guest
    }
    pub fn client_pool(&self) -> &'static str {
        CLIENT_POOL
    }
    pub fn server_pool(&self) -> &'static str {
        SERVER_POOL
    }
    /// The client's address in its namespace, if the scenario has them.
    pub fn client_addr(&self) -> Option<&'static str> {
        self.netns.then_some(CLIENT_ADDR)
    }
    pub fn server_addr(&self) -> Option<&'static str> {
        self.netns.then_some(SERVER_ADDR)
    }

    /// Runs a shell command as root in the guest (outside any namespace).
    pub fn run(&self, command: &str) -> Result<String> {
        self.guest.ssh(command)
    }
    pub fn run_with_stdin(&self, command: &str, stdin: &[u8]) -> Result<String> {
        self.guest.ssh_with_stdin(command, stdin)
    }
    /// Output whatever the exit status.
    pub fn output(&self, command: &str) -> Result<Output> {
        self.guest.ssh_output(command)
    }

    /// Runs a command as the client host: in its namespace if it has one.
    pub fn on_client(&self, command: &str) -> Result<String> {
        self.guest.ssh(&self.in_host(CLIENT_HOST, command))
    }
    /// Runs a command as the server host: in its namespace if it has one.
    pub fn on_server(&self, command: &str) -> Result<String> {
        self.guest.ssh(&self.in_host(SERVER_HOST, command))
    }
    /// [`Scenario::on_client`] / [`Scenario::on_server`] without the status check.
    pub fn output_on(&self, host: &str, command: &str) -> Result<Output> {
        self.guest.ssh_output(&self.in_host(host, command))
    }

    fn in_host(&self, host: &str, command: &str) -> String {
        if self.netns {
            format!("ip netns exec {host} sh -c {}", shell_quote(command))
        } else {
            command.to_owned()
        }
    }

    /// Copies a host file (e.g. the zfleet binary) into the guest.
    pub fn install(&self, local: &Path, remote: &str) -> Result<()> {
        self.guest.copy_in(local, remote, true)
    }

    fn clean(&self) -> Result<()> {
        self.guest
            .ssh(&format!("{NETNS_DOWN}\n{POOLS_DOWN}"))
            .context("cleaning up before a scenario")?;
        Ok(())
    }
}

impl Drop for Scenario<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.clean() {
            tracing::warn!("cleaning up after a scenario: {err:#}");
        }
    }
}

// Pools, LUKS mappings and everything on the pool disks, down to blank
// disks (tests that lay out disks leave partitions, LUKS headers, an ESP).
const POOLS_DOWN: &str = r#"
findmnt /mnt >/dev/null 2>&1 && umount -R /mnt 2>/dev/null
# Every ZFS mount, the last one first: a mount hidden under a later one (a
# child mounted before its parent) is reachable once the one above is gone.
findmnt -rn -t zfs -o TARGET | tac | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
done
for pool in $(zpool list -H -o name); do zpool destroy -f "$pool"; done
for m in /dev/mapper/*; do
    case $m in */control) ;; *) [ -e "$m" ] && cryptsetup close "${m##*/}" 2>/dev/null ;; esac
done
for disk in /dev/disk/by-id/virtio-zfleet-disk*; do
    case $disk in *-part*) continue ;; esac
    [ -e "$disk" ] || continue
    for part in "$disk"-part*; do
        [ -e "$part" ] || continue
        zpool labelclear -f "$part" 2>/dev/null
        wipefs -a -q "$part" 2>/dev/null
    done
    zpool labelclear -f "$disk" 2>/dev/null
    wipefs -a -q "$disk" 2>/dev/null
done
udevadm settle 2>/dev/null
# Say so, rather than let the next scenario trip over what is left.
if [ -n "$(zpool list -H -o name)" ]; then
    echo "pools left after cleaning up:" >&2
    zpool list >&2
    findmnt -t zfs >&2
    exit 1
fi
true
"#;

const NETNS_DOWN: &str = r#"
for host in zfleet-client zfleet-server; do
    pidfile=/run/zfleet-lab/$host/sshd.pid
    [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    rm -f "$pidfile"
    ip netns del "$host" 2>/dev/null
done
true
"#;

// One veth pair between two namespaces; each end gets an sshd with its own
// host key. Root in the guest gets a key of its own that both hosts (root and
// zbackup) accept, and known_hosts entries for both, so `ssh zfleet-client`
// from the server namespace works non-interactively with strict checking.
const NETNS_UP: &str = r#"
set -eu
[ -e /root/.ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C zfleet-lab-guest-root -f /root/.ssh/id_ed25519
pub=$(cat /root/.ssh/id_ed25519.pub)
for home in /root /home/zbackup; do
    grep -qxF "$pub" "$home/.ssh/authorized_keys" || echo "$pub" >>"$home/.ssh/authorized_keys"
done
: >/root/.ssh/known_hosts
ip link add zfleet-c type veth peer name zfleet-s
for spec in zfleet-client:192.168.77.1:zfleet-c zfleet-server:192.168.77.2:zfleet-s; do
    IFS=: read -r host addr dev <<EOF
$spec
EOF
    ip netns add "$host"
    ip link set "$dev" netns "$host"
    ip -n "$host" link set lo up
    ip -n "$host" addr add "$addr/24" dev "$dev"
    ip -n "$host" link set "$dev" up
    dir=/run/zfleet-lab/$host
    mkdir -p "$dir"
    [ -e "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$host" -f "$dir/ssh_host_ed25519_key"
    grep -q " $host\$" /etc/hosts || echo "$addr $host" >>/etc/hosts
    echo "$host,$addr $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >>/root/.ssh/known_hosts
    ip netns exec "$host" /usr/sbin/sshd -o PidFile="$dir/sshd.pid" \
        -o HostKey="$dir/ssh_host_ed25519_key" -o ListenAddress="$addr"
done
# sshd has daemonised; wait until both answer.
for host in zfleet-client zfleet-server; do
    for _ in $(seq 100); do
        ip netns exec zfleet-server ssh -o BatchMode=yes -o ConnectTimeout=2 "root@$host" true 2>/dev/null && break
        sleep 0.2
    done
done
ip netns exec zfleet-server ssh -o BatchMode=yes root@zfleet-client true
ip netns exec zfleet-client ssh -o BatchMode=yes root@zfleet-server true
"#;
