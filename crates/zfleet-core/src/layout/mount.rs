//! `zfleet disks mount HOST --root /mnt`: what an installer (nixos-anywhere,
//! nixos-install, debootstrap) needs after the disks are laid out. Opens the
//! LUKS containers, imports the pools, loads ZFS keys, mounts every file
//! system below the root in path order, writes the facts for the installed
//! system, and gives the initrd an ssh host key of its own, pinned on this
//! machine for `zfleet unlock`. Pure, like the layout planner: it only reads
//! the observation. Nothing is created here; a dataset that is missing is
//! `disks apply`'s to make.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::facts::{self, INITRD_HOST_KEY};
use super::model::Observed;
use super::plan::{data_partition, Action, Note, Plan, Refusal, Step};
use crate::config::{Encryption, HostLayout, SshEndpoint};
use crate::unlock::pin::HostKey;

/// The initrd of a host that unlocks LUKS over ssh: where its key is pinned.
#[derive(Debug, Clone)]
pub struct InitrdPin {
    pub file: PathBuf,
    pub endpoint: SshEndpoint,
    /// What the file pins now.
    pub pinned: BTreeSet<HostKey>,
}

/// The files below the root that the plan compares, for `observe`.
pub fn watched_files(root: &str, initrd: bool) -> Vec<String> {
    let mut v: Vec<String> = facts::files("", &HostLayout::default(), false)
        .into_iter()
        .map(|(p, _)| join(root, &p))
        .collect();
    if initrd {
        v.push(join(root, &format!("{INITRD_HOST_KEY}.pub")));
    }
    v
}

/// `root` + an absolute path inside it.
pub fn join(root: &str, path: &str) -> String {
    let root = root.trim_end_matches('/');
    if path == "/" {
        if root.is_empty() {
            "/".into()
        } else {
            root.to_string()
        }
    } else {
        format!("{root}{path}")
    }
}

pub fn plan_mount(
    host: &str,
    layout: &HostLayout,
    obs: &Observed,
    root: &str,
    initrd: Option<&InitrdPin>,
    force_import: &[String],
) -> Plan {
    let mut steps: Vec<Step> = Vec::new();
    let mut refusals: Vec<Refusal> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    let mut rescan: Vec<String> = Vec::new();
    let step = |steps: &mut Vec<Step>, action, reason: &str| {
        steps.push(Step {
            action,
            reason: reason.to_string(),
        })
    };
    let mut ready: Vec<&str> = Vec::new();
    for pool in &layout.pools {
        let name = pool.pool.as_str();
        let mut opened = false;
        if pool.encryption == Encryption::Luks {
            for i in 0..pool.disks.len() {
                let mapping = pool.luks_mapping(i);
                let open = obs.device(&format!("/dev/mapper/{mapping}")).is_some();
                if open {
                    continue;
                }
                let Some(secret) = pool.secret.clone() else {
                    continue;
                };
                step(
                    &mut steps,
                    Action::LuksOpen {
                        device: data_partition(pool, i),
                        mapping,
                        discards: pool.luks_discards,
                        secret,
                    },
                    "the pool is inside",
                );
                opened = true;
            }
        }
        if opened {
            rescan.push(name.to_string());
            continue;
        }
        if obs.imported(name).is_none() {
            let candidates = obs.importable(name);
            match candidates.as_slice() {
                [c] if matches!(c.state.as_str(), "ONLINE" | "DEGRADED") => {
                    let ours_by_id =
                        matches!((&layout.host_id, &obs.hostid), (Some(w), Some(h)) if w != h);
                    if c.other_system && !ours_by_id && !force_import.iter().any(|p| p == name) {
                        refusals.push(Refusal {
                            subject: name.to_string(),
                            problem: format!(
                                "pool {name} was last used by another system and not exported"
                            ),
                            hint: Some(format!(
                                "if no other system uses it, pass --force-import {name}"
                            )),
                        });
                        continue;
                    }
                    let dirs = pool.file_vdev_dirs();
                    step(
                        &mut steps,
                        Action::ImportPool {
                            pool: name.to_string(),
                            force: c.other_system,
                            dirs,
                        },
                        "its file systems are mounted from it",
                    );
                    rescan.push(name.to_string());
                }
                _ => refusals.push(Refusal {
                    subject: name.to_string(),
                    problem: format!(
                        "pool {name} is neither imported nor offered by `zpool import`"
                    ),
                    hint: Some(format!(
                        "`zfleet disks plan {host}` shows what its disks hold"
                    )),
                }),
            }
            continue;
        }
        if let (Encryption::Zfs, Some(secret)) = (pool.encryption, &pool.secret) {
            if obs
                .datasets
                .get(name)
                .and_then(|p| p.get("keystatus"))
                .map(|k| k.value.as_str())
                == Some("unavailable")
            {
                step(
                    &mut steps,
                    Action::LoadKey {
                        dataset: name.to_string(),
                        secret: secret.clone(),
                    },
                    "its datasets are encrypted and locked",
                );
            }
        }
        for d in &pool.datasets {
            if d.mountpoint.is_some() && !obs.datasets.contains_key(&pool.full_name(&d.name)) {
                refusals.push(Refusal {
                    subject: pool.full_name(&d.name),
                    problem: "does not exist".into(),
                    hint: Some(format!("`zfleet disks apply {host}` creates it")),
                });
            }
        }
        ready.push(name);
    }

    // Mounts, parents first; a pool still being opened waits for the next round.
    let all_mounts = facts::mounts(layout);
    for m in &all_mounts {
        let owner = layout.pools.iter().find(|p| {
            m.device.starts_with(&format!("{}/", p.pool))
                || p.disks
                    .first()
                    .is_some_and(|d| m.device.starts_with(&d.path))
        });
        if !owner.is_some_and(|p| ready.contains(&p.pool.as_str())) {
            continue;
        }
        let target = join(root, &m.mountpoint);
        match obs.mounted_at(&target) {
            Some(have)
                if have.source == m.device
                    || obs.resolve(&have.source) == obs.resolve(&m.device) => {}
            Some(have) => refusals.push(Refusal {
                subject: target.clone(),
                problem: format!("{} is mounted there, not {}", have.source, m.device),
                hint: Some(format!("unmount it (`umount {target}`)")),
            }),
            None => step(
                &mut steps,
                Action::Mount {
                    source: m.device.clone(),
                    target,
                    fstype: m.fstype.clone(),
                    options: m
                        .options
                        .iter()
                        .filter(|o| *o != "defaults")
                        .cloned()
                        .collect(),
                },
                if m.by_zfs {
                    "mounted by ZFS on the installed system; here below the root"
                } else {
                    "the installed system mounts it from fstab"
                },
            ),
        }
    }

    // Facts and the initrd key, once everything is there.
    if rescan.is_empty() && refusals.is_empty() {
        if layout.root_pool().is_none() {
            notes.push(Note {
                subject: host.to_string(),
                message: "no root pool: no facts for an installed system are written".into(),
            });
        } else {
            for (path, content) in facts::files(host, layout, initrd.is_some()) {
                let path = join(root, &path);
                if obs.facts.get(&path) != Some(&content) {
                    step(
                        &mut steps,
                        Action::WriteFile { path, content },
                        "for the installed system",
                    );
                }
            }
            if let Some(pin) = initrd {
                let key_path = join(root, INITRD_HOST_KEY);
                let pub_path = format!("{key_path}.pub");
                let existing = obs
                    .facts
                    .get(&pub_path)
                    .map(|t| crate::unlock::pin::parse_keys(&format!("x {}", t.trim())));
                if existing.is_none() {
                    if !all_mounts.iter().any(|m| m.mountpoint == "/etc/ssh")
                        && layout.root_pool().and_then(|p| p.ephemeral()).is_some()
                    {
                        notes.push(Note {
                            subject: INITRD_HOST_KEY.to_string(),
                            message: "/etc/ssh is on the ephemeral root: persist it, or the key is gone after the first boot".into(),
                        });
                    }
                    step(
                        &mut steps,
                        Action::GenerateHostKey {
                            path: key_path,
                            comment: format!("{host}-initrd"),
                        },
                        "each host's initrd has its own key, never a shared one",
                    );
                }
                let pinned = existing
                    .as_ref()
                    .is_some_and(|k| !k.is_empty() && k.is_subset(&pin.pinned));
                if !pinned {
                    step(
                        &mut steps,
                        Action::PinHostKey {
                            public_key: pub_path,
                            pin_file: pin.file.display().to_string(),
                            host: host.to_string(),
                            address: pin.endpoint.address.clone(),
                            port: pin.endpoint.port,
                        },
                        "`zfleet unlock` sends the passphrase only to the initrd holding this key",
                    );
                }
            }
        }
    }
    let refused = !refusals.is_empty();
    Plan {
        host: host.to_string(),
        disks: Vec::new(),
        steps: if refused { Vec::new() } else { steps },
        refusals,
        notes,
        rescan,
    }
}
