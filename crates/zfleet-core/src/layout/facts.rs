//! What an installed system needs to know about its disks, written by
//! `zfleet disks mount` into `<root>/etc/zfleet/`: a NixOS module
//! (`nixos-disks.nix`), fstab and crypttab lines for Debian, and
//! `layout.json` for tools. Pure: from the layout alone, naming partitions
//! by the same stable paths the pools were made on.

use serde::Serialize;

use super::plan::{data_partition, partition_path, partitions, PartRole};
use crate::config::{Encryption, HostLayout, LayoutKind, ESP_MOUNTPOINT, ESP_MOUNT_OPTIONS};

/// Where the facts go below the installer's root.
pub const FACTS_DIR: &str = "/etc/zfleet";
/// The initrd's own ssh host key, kept on the etcssh dataset (the seed's
/// `/etc/ssh/initrd`), generated per host and pinned by `disks mount`.
pub const INITRD_HOST_KEY: &str = "/etc/ssh/initrd_ssh_host_ed25519_key";

/// One mount of the installed system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountFact {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
    pub options: Vec<String>,
    pub needed_for_boot: bool,
    /// Mounted by ZFS itself (a non-legacy mountpoint), not by fstab.
    pub by_zfs: bool,
}

/// Every mount, shortest path first (`/` before `/boot` before `/persist/save`).
pub fn mounts(layout: &HostLayout) -> Vec<MountFact> {
    let mut out = Vec::new();
    for pool in &layout.pools {
        for d in &pool.datasets {
            let Some(mp) = &d.mountpoint else { continue };
            if d.options.get("canmount").map(String::as_str) == Some("off") {
                continue;
            }
            let legacy = d.legacy();
            let mut options = d.mount_options.clone();
            if !legacy && !options.iter().any(|o| o == "zfsutil") {
                options.push("zfsutil".into());
            }
            out.push(MountFact {
                mountpoint: mp.clone(),
                device: pool.full_name(&d.name),
                fstype: "zfs".into(),
                options,
                needed_for_boot: d.needed_for_boot,
                by_zfs: !legacy,
            });
        }
        if pool.kind == LayoutKind::Root && pool.esp_size > 0 {
            if let Some(disk) = pool.disks.first() {
                out.push(MountFact {
                    mountpoint: ESP_MOUNTPOINT.into(),
                    device: partition_path(&disk.path, 1),
                    fstype: "vfat".into(),
                    options: ESP_MOUNT_OPTIONS.iter().map(|s| s.to_string()).collect(),
                    needed_for_boot: false,
                    by_zfs: false,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        depth(&a.mountpoint)
            .cmp(&depth(&b.mountpoint))
            .then(a.mountpoint.cmp(&b.mountpoint))
    });
    out
}

fn depth(p: &str) -> usize {
    p.split('/').filter(|s| !s.is_empty()).count()
}

/// A LUKS container of the installed system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LuksFact {
    pub mapping: String,
    pub device: String,
    pub discards: bool,
    /// Opened by the initrd (the root pool), not after boot.
    pub initrd: bool,
}

pub fn luks(layout: &HostLayout) -> Vec<LuksFact> {
    let mut out = Vec::new();
    for pool in &layout.pools {
        if pool.encryption != Encryption::Luks {
            continue;
        }
        for i in 0..pool.disks.len() {
            out.push(LuksFact {
                mapping: pool.luks_mapping(i),
                device: data_partition(pool, i),
                discards: pool.luks_discards,
                initrd: pool.kind == LayoutKind::Root,
            });
        }
    }
    out
}

/// Swap partitions, and whether they get a random key at every boot.
pub fn swaps(layout: &HostLayout) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for pool in &layout.pools {
        for (i, disk) in pool.disks.iter().enumerate() {
            if disk.is_file() {
                continue;
            }
            for p in partitions(pool, i) {
                if p.role == PartRole::Swap {
                    out.push((
                        partition_path(&disk.path, p.number),
                        pool.encryption != Encryption::None,
                    ));
                }
            }
        }
    }
    out
}

/// A Nix string literal.
pub fn nix_str(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // `${` starts an interpolation in a Nix string.
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The NixOS module: host id, ZFS, LUKS devices, file systems, swap and the
/// initrd's ssh host key.
pub fn nixos(host: &str, layout: &HostLayout, initrd_ssh: bool) -> String {
    let mut s = format!(
        "# Written by `zfleet disks mount {host}` from fleet.toml: the disks of {host}\n\
         # for NixOS. Import it from configuration.nix; change the layout in\n\
         # fleet.toml, not here.\n{{ ... }}:\n{{\n"
    );
    if let Some(id) = &layout.host_id {
        s.push_str(&format!("  networking.hostId = {};\n", nix_str(id)));
    }
    s.push_str("  boot.supportedFilesystems = [ \"zfs\" ];\n");
    s.push_str("  boot.zfs.devNodes = \"/dev/disk/by-id\";\n");
    let extra: Vec<String> = layout
        .pools
        .iter()
        .filter(|p| p.kind == LayoutKind::Data)
        .map(|p| nix_str(&p.pool))
        .collect();
    if !extra.is_empty() {
        s.push_str(&format!(
            "  boot.zfs.extraPools = [ {} ];\n",
            extra.join(" ")
        ));
    }
    if layout.pools.iter().any(|p| p.encryption == Encryption::Zfs) {
        s.push_str("  boot.zfs.requestEncryptionCredentials = true;\n");
    }
    // As disko does: every container is opened by the initrd, the storage
    // pool's too (its passphrase is asked for with the root pool's).
    for l in luks(layout) {
        s.push_str(&format!(
            "  boot.initrd.luks.devices.{} = {{ device = {};{} }};\n",
            nix_str(&l.mapping),
            nix_str(&l.device),
            if l.discards {
                " allowDiscards = true;"
            } else {
                ""
            }
        ));
    }
    for m in mounts(layout) {
        let opts: Vec<String> = m.options.iter().map(|o| nix_str(o)).collect();
        s.push_str(&format!(
            "  fileSystems.{} = {{ device = {}; fsType = {}; options = [ {} ];{} }};\n",
            nix_str(&m.mountpoint),
            nix_str(&m.device),
            nix_str(&m.fstype),
            opts.join(" "),
            if m.needed_for_boot {
                " neededForBoot = true;"
            } else {
                ""
            }
        ));
    }
    let swaps = swaps(layout);
    if !swaps.is_empty() {
        let list: Vec<String> = swaps
            .iter()
            .map(|(d, random)| {
                format!(
                    "{{ device = {};{} }}",
                    nix_str(d),
                    if *random {
                        " randomEncryption.enable = true;"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        s.push_str(&format!("  swapDevices = [ {} ];\n", list.join(" ")));
    }
    if initrd_ssh {
        s.push_str(&format!(
            "  boot.initrd.network.ssh.hostKeys = [ {} ];\n",
            nix_str(INITRD_HOST_KEY)
        ));
    }
    s.push_str("}\n");
    s
}

/// Lines for Debian's /etc/fstab. Datasets ZFS mounts itself are listed as
/// comments only.
pub fn fstab(host: &str, layout: &HostLayout) -> String {
    let mut s = format!(
        "# Written by `zfleet disks mount {host}` from fleet.toml; append to /etc/fstab.\n"
    );
    for m in mounts(layout) {
        if m.by_zfs {
            s.push_str(&format!(
                "# {} is mounted by ZFS at {} (zfs-mount.service)\n",
                m.device, m.mountpoint
            ));
            continue;
        }
        let pass = if m.fstype == "vfat" { 2 } else { 0 };
        s.push_str(&format!(
            "{} {} {} {} 0 {pass}\n",
            m.device,
            m.mountpoint,
            m.fstype,
            m.options.join(",")
        ));
    }
    for (i, (dev, random)) in swaps(layout).iter().enumerate() {
        if *random {
            s.push_str(&format!("/dev/mapper/swap{} none swap sw 0 0\n", i + 1));
        } else {
            s.push_str(&format!("{dev} none swap sw 0 0\n"));
        }
    }
    s
}

/// Lines for Debian's /etc/crypttab: the root pool's containers opened by the
/// initramfs, swap with a random key.
pub fn crypttab(host: &str, layout: &HostLayout) -> String {
    let mut s = format!(
        "# Written by `zfleet disks mount {host}` from fleet.toml; append to /etc/crypttab.\n"
    );
    for l in luks(layout) {
        let mut opts = vec!["luks"];
        if l.discards {
            opts.push("discard");
        }
        if l.initrd {
            opts.push("initramfs");
        }
        s.push_str(&format!(
            "{} {} none {}\n",
            l.mapping,
            l.device,
            opts.join(",")
        ));
    }
    for (i, (dev, random)) in swaps(layout).iter().enumerate() {
        if *random {
            s.push_str(&format!(
                "swap{} {dev} /dev/urandom swap,cipher=aes-xts-plain64,size=512\n",
                i + 1
            ));
        }
    }
    s
}

#[derive(Serialize)]
struct LayoutJson<'a> {
    host: &'a str,
    host_id: Option<&'a str>,
    pools: Vec<PoolJson>,
    mounts: Vec<MountFact>,
    luks: Vec<LuksFact>,
}

#[derive(Serialize)]
struct PoolJson {
    pool: String,
    kind: LayoutKind,
    topology: String,
    vdevs: Vec<String>,
    ephemeral: Option<String>,
    blank: Vec<String>,
}

/// For tools: the same facts as JSON.
pub fn layout_json(host: &str, layout: &HostLayout) -> String {
    let j = LayoutJson {
        host,
        host_id: layout.host_id.as_deref(),
        pools: layout
            .pools
            .iter()
            .map(|p| PoolJson {
                pool: p.pool.clone(),
                kind: p.kind,
                topology: p.topology.to_string(),
                vdevs: (0..p.disks.len())
                    .map(|i| super::plan::vdev_path(p, i))
                    .collect(),
                ephemeral: p.ephemeral().map(|d| p.full_name(&d.name)),
                blank: p
                    .datasets
                    .iter()
                    .filter(|d| d.blank)
                    .map(|d| p.full_name(&d.name))
                    .collect(),
            })
            .collect(),
        mounts: mounts(layout),
        luks: luks(layout),
    };
    let mut s = serde_json::to_string_pretty(&j).unwrap_or_default();
    s.push('\n');
    s
}

/// The files `disks mount` writes: path below the root → content.
pub fn files(host: &str, layout: &HostLayout, initrd_ssh: bool) -> Vec<(String, String)> {
    vec![
        (
            format!("{FACTS_DIR}/layout.json"),
            layout_json(host, layout),
        ),
        (
            format!("{FACTS_DIR}/nixos-disks.nix"),
            nixos(host, layout, initrd_ssh),
        ),
        (format!("{FACTS_DIR}/fstab"), fstab(host, layout)),
        (format!("{FACTS_DIR}/crypttab"), crypttab(host, layout)),
    ]
}
