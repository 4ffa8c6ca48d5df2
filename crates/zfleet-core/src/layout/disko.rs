//! `zfleet export disko HOST`: the host's layout as a disko expression, for
//! those who keep installing with nixos-anywhere. The same partitions, LUKS
//! containers, pool and dataset options, and `@empty` snapshots (held and
//! recorded, so `zfleet root rollback` trusts them) as `disks apply` makes.
//! Pure text; checked with `nix-instantiate --parse` in the tests.

use super::facts::nix_str;
use super::plan::{partitions, PartRole, BLANK_HOLD, BLANK_PROPERTY, BLANK_SNAPSHOT};
use crate::config::{format_size, Encryption, HostLayout, PoolLayout, Topology};

/// Where disko reads the passphrase from at install time (nixos-anywhere's
/// `--disk-encryption-keys /tmp/secret.key <(…)`), as in the seed.
pub const PASSWORD_FILE: &str = "/tmp/secret.key";

struct W {
    out: String,
    depth: usize,
}

/// An attribute name: bare when Nix allows it, quoted otherwise
/// (`"com.sun:auto-snapshot"`).
fn key(k: &str) -> String {
    let bare = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''))
        && !matches!(
            k,
            "if" | "then" | "else" | "assert" | "with" | "let" | "in" | "rec" | "inherit" | "or"
        );
    if bare {
        k.to_string()
    } else {
        nix_str(k)
    }
}

impl W {
    fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }
    fn open(&mut self, key: &str) {
        self.line(&format!("{} = {{", self::key(key)));
        self.depth += 1;
    }
    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.line("};");
    }
    fn kv(&mut self, key: &str, value: &str) {
        self.line(&format!("{} = {};", self::key(key), nix_str(value)));
    }
    fn raw(&mut self, key: &str, value: &str) {
        self.line(&format!("{} = {value};", self::key(key)));
    }
    fn map<'a>(&mut self, key: &str, entries: impl IntoIterator<Item = (&'a String, &'a String)>) {
        self.open(key);
        for (k, v) in entries {
            self.kv(k, v);
        }
        self.close();
    }
}

/// Disk names in the expression: `<pool>-<n>`.
fn disk_name(pool: &PoolLayout, index: usize) -> String {
    format!("{}-{}", pool.pool, index + 1)
}

pub fn expression(host: &str, layout: &HostLayout) -> String {
    let mut w = W {
        out: String::new(),
        depth: 0,
    };
    w.line(&format!(
        "# Printed by `zfleet export disko {host}` from fleet.toml: the disks of {host} for"
    ));
    w.line("# disko and nixos-anywhere. `zfleet disks plan` shows the same layout;");
    w.line("# unlike this, `zfleet disks apply` leaves what exists alone and grows it.");
    w.line("{");
    w.depth += 1;
    w.open("disko");
    w.open("devices");
    w.open("disk");
    for pool in &layout.pools {
        for (i, disk) in pool.disks.iter().enumerate() {
            w.open(&disk_name(pool, i));
            w.kv("type", "disk");
            w.kv("device", &disk.path);
            w.open("content");
            w.kv("type", "gpt");
            w.open("partitions");
            for p in partitions(pool, i) {
                match p.role {
                    PartRole::Esp => {
                        w.open("ESP");
                        w.kv("label", &p.name);
                        w.kv("name", "ESP");
                        w.kv("size", &format_size(p.size.unwrap_or(0)));
                        w.kv("type", "EF00");
                        w.open("content");
                        w.kv("type", "filesystem");
                        w.kv("format", "vfat");
                        w.kv("mountpoint", crate::config::ESP_MOUNTPOINT);
                        let opts: Vec<String> = crate::config::ESP_MOUNT_OPTIONS
                            .iter()
                            .map(|o| nix_str(o))
                            .collect();
                        w.raw("mountOptions", &format!("[ {} ]", opts.join(" ")));
                        w.close();
                        w.close();
                    }
                    PartRole::Swap => {
                        w.open("swap");
                        w.kv("label", &p.name);
                        w.kv("size", &format_size(p.size.unwrap_or(0)));
                        w.open("content");
                        w.kv("type", "swap");
                        if pool.encryption != Encryption::None {
                            w.raw("randomEncryption", "true");
                        }
                        w.close();
                        w.close();
                    }
                    PartRole::Data => {
                        let key = if pool.encryption == Encryption::Luks {
                            "luks"
                        } else {
                            "zfs"
                        };
                        w.open(key);
                        w.kv("label", &p.name);
                        w.kv("size", "100%");
                        w.open("content");
                        if pool.encryption == Encryption::Luks {
                            w.kv("type", "luks");
                            w.kv("name", &pool.luks_mapping(i));
                            w.kv("passwordFile", PASSWORD_FILE);
                            if pool.luks_discards {
                                w.open("settings");
                                w.raw("allowDiscards", "true");
                                w.close();
                            }
                            w.raw(
                                "extraFormatArgs",
                                &format!("[ \"--label\" {} ]", nix_str(&pool.luks_mapping(i))),
                            );
                            w.open("content");
                            w.kv("type", "zfs");
                            w.kv("pool", &pool.pool);
                            w.close();
                        } else {
                            w.kv("type", "zfs");
                            w.kv("pool", &pool.pool);
                        }
                        w.close();
                        w.close();
                    }
                }
            }
            w.close();
            w.close();
            w.close();
        }
    }
    w.close();
    w.open("zpool");
    for pool in &layout.pools {
        zpool(&mut w, pool);
    }
    w.close();
    w.close();
    w.close();
    w.depth -= 1;
    w.line("}");
    w.out
}

fn zpool(w: &mut W, pool: &PoolLayout) {
    w.open(&pool.pool);
    w.kv("type", "zpool");
    // disko's default mode "" is a stripe; it is always written out here.
    let mode = match pool.topology {
        Topology::Single | Topology::Stripe => "",
        t => t.vdev_word().unwrap_or(""),
    };
    w.kv("mode", mode);
    w.map("options", &pool.pool_options);
    let mut root = pool.root_options.clone();
    if pool.encryption == Encryption::Zfs {
        root.insert("keylocation".into(), format!("file://{PASSWORD_FILE}"));
    }
    w.map("rootFsOptions", &root);
    if pool.encryption == Encryption::Zfs {
        w.kv(
            "postCreateHook",
            &format!("zfs set keylocation=prompt {}", pool.pool),
        );
    }
    w.open("datasets");
    for d in &pool.datasets {
        w.open(&d.name);
        w.kv("type", "zfs_fs");
        if let Some(m) = &d.mountpoint {
            w.kv("mountpoint", m);
        }
        let mut options = d.options.clone();
        if let Some(r) = options.get_mut("reservation") {
            if let Ok(b) = r.parse::<u64>() {
                *r = format_size(b);
            }
        }
        w.map("options", &options);
        if d.mount_options != ["defaults"] {
            let o: Vec<String> = d.mount_options.iter().map(|o| nix_str(o)).collect();
            w.raw("mountOptions", &format!("[ {} ]", o.join(" ")));
        }
        if d.blank {
            let full = pool.full_name(&d.name);
            let snap = format!("{full}@{BLANK_SNAPSHOT}");
            w.kv(
                "postCreateHook",
                &format!(
                    "zfs snapshot {snap} && zfs hold {BLANK_HOLD} {snap} && zfs set {BLANK_PROPERTY}=$(zfs get -H -p -o value guid {snap}) {full}"
                ),
            );
        }
        w.close();
    }
    w.close();
    w.close();
}
