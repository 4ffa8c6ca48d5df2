//! Pinned initrd host keys: one `known_hosts` file per host, written by
//! `zfleet unlock --pin HOST` after the user compared the fingerprint.
//!
//! Keys are fetched with `ssh-keyscan`, which only reads the key the server
//! offers: it neither authenticates nor sends anything else, so scanning an
//! impostor costs nothing. Fingerprints come from `ssh-keygen -l`, in the form
//! the user sees on the host (`SHA256:…`).

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::SshEndpoint;
use crate::exec::{Argv, Endpoint, ExecError, RunOptions};

/// A host key as `known_hosts` and `ssh-keyscan` write it: type and base64 blob.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HostKey {
    pub key_type: String,
    pub blob: String,
}

/// A key with its fingerprint, for people to compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScannedKey {
    pub key: HostKey,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// `ED25519`, `RSA`, `ECDSA`.
    pub algorithm: String,
}

impl fmt::Display for ScannedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm, self.fingerprint)
    }
}

/// The name ssh looks a host up by in `known_hosts`: `addr`, or `[addr]:port`.
/// The pinned connection looks keys up under this name too (`HostKeyAlias`).
pub fn known_hosts_name(ep: &SshEndpoint) -> String {
    crate::exec::ssh::known_hosts_name(&ep.address, ep.port)
}

/// Parses `known_hosts`/`ssh-keyscan` lines into keys, skipping comments and
/// `@revoked` lines (a revoked key is the opposite of a pinned one).
pub fn parse_keys(text: &str) -> BTreeSet<HostKey> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mut first = f.next()?;
            if first.starts_with('@') {
                if first == "@revoked" {
                    return None;
                }
                first = f.next()?;
            }
            let _hosts = first;
            let key_type = f.next()?.to_string();
            let blob = f.next()?.to_string();
            Some(HostKey { key_type, blob })
        })
        .collect()
}

/// The keys pinned in `file`; empty when it does not exist.
pub fn pinned_keys(file: &Path) -> std::io::Result<BTreeSet<HostKey>> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(parse_keys(&t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e),
    }
}

/// Whether `file` has an entry for `ep` (hashed or not), as ssh would look it up.
pub fn has_entry(file: &Path, ep: &SshEndpoint) -> bool {
    if !file.exists() {
        return false;
    }
    let argv = Argv::new("ssh-keygen")
        .arg("-F")
        .arg(known_hosts_name(ep))
        .arg("-f")
        .arg(file.display().to_string());
    Endpoint::Local
        .run(&argv, &RunOptions::timeout(Duration::from_secs(10)))
        .is_ok()
}

/// The keys `file` holds for `ep` (hashed entries included), as ssh would
/// find them. Empty when the file or the entry does not exist.
pub fn known_keys(file: &Path, ep: &SshEndpoint) -> BTreeSet<HostKey> {
    if !file.exists() {
        return BTreeSet::new();
    }
    let argv = Argv::new("ssh-keygen")
        .arg("-F")
        .arg(known_hosts_name(ep))
        .arg("-f")
        .arg(file.display().to_string());
    match Endpoint::Local.run(&argv, &RunOptions::timeout(Duration::from_secs(10))) {
        Ok(out) => parse_keys(&out.stdout_text()),
        Err(_) => BTreeSet::new(),
    }
}

/// The keys `ep` offers, with fingerprints. Empty when nothing answered.
pub fn scan(host: &str, ep: &SshEndpoint, timeout: Duration) -> Result<Vec<ScannedKey>, ExecError> {
    let keys = scan_keys(host, ep, timeout)?;
    fingerprints(host, &keys)
}

/// The keys `ep` offers. Empty when nothing answered within `timeout`.
pub fn scan_keys(
    host: &str,
    ep: &SshEndpoint,
    timeout: Duration,
) -> Result<BTreeSet<HostKey>, ExecError> {
    let secs = timeout.as_secs().max(1);
    let argv = Argv::new("ssh-keyscan")
        .arg("-T")
        .arg(secs.to_string())
        .arg("-p")
        .arg(ep.port.to_string())
        .arg("--")
        .arg(&ep.address);
    let opts = RunOptions::timeout(timeout + Duration::from_secs(5));
    // ssh-keyscan exits 0 whether or not the host answered; no keys says it all.
    let out = Endpoint::Local
        .run(&argv, &opts)
        .map_err(|e| relabel(e, host))?;
    Ok(parse_keys(&out.stdout_text()))
}

/// Fingerprints of `keys`, in the order given.
pub fn fingerprints(host: &str, keys: &BTreeSet<HostKey>) -> Result<Vec<ScannedKey>, ExecError> {
    let mut out = Vec::new();
    for k in keys {
        let line = format!("{} {}\n", k.key_type, k.blob);
        let argv = Argv::new("ssh-keygen").args(["-l", "-f", "-"]);
        let res = Endpoint::Local
            .run(
                &argv,
                &RunOptions {
                    timeout: Some(Duration::from_secs(10)),
                    stdin: Some(line.into_bytes().into()),
                },
            )
            .map_err(|e| relabel(e, host))?;
        // `256 SHA256:abc… comment (ED25519)`
        let text = res.stdout_text();
        let mut words = text.split_whitespace();
        let fingerprint = words.nth(1).unwrap_or_default().to_string();
        let algorithm = text
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .trim_matches(|c| c == '(' || c == ')')
            .to_string();
        out.push(ScannedKey {
            key: k.clone(),
            fingerprint,
            algorithm,
        });
    }
    Ok(out)
}

fn relabel(e: ExecError, host: &str) -> ExecError {
    match e {
        ExecError::Spawn {
            cmdline, source, ..
        } => ExecError::Spawn {
            host: host.to_string(),
            cmdline,
            source,
        },
        other => other,
    }
}

/// Replaces the pin file with `keys` for `ep`, atomically. The file holds only
/// this host's initrd keys, so nothing else in it is kept.
pub fn write_pin(
    file: &Path,
    host: &str,
    ep: &SshEndpoint,
    keys: &[ScannedKey],
    now: &str,
) -> std::io::Result<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d)?;
    }
    let mut text = format!(
        "# The initrd host key of `{host}`, pinned by `zfleet unlock --pin {host}` on {now}.\n\
         # zfleet sends {host}'s passphrase only to an initrd that proves it holds this key.\n"
    );
    let name = known_hosts_name(ep);
    for k in keys {
        text.push_str(&format!(
            "# {}\n{name} {} {}\n",
            k, k.key.key_type, k.key.blob
        ));
    }
    let tmp = tmp_path(file);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)
}

fn tmp_path(file: &Path) -> PathBuf {
    let mut name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16) -> SshEndpoint {
        SshEndpoint {
            address: "alpha-initrd".into(),
            user: Some("root".into()),
            port,
            identity: None,
            known_hosts: None,
            connect_timeout: Duration::from_secs(5),
        }
    }

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDF1TFwXbqdC1UyG75q3HO1n7/L3yxpeRLIq2kQ9DalI";

    #[test]
    fn known_hosts_lines() {
        let text = format!(
            "# comment\n\nalpha-initrd ssh-ed25519 {KEY}\n@revoked * ssh-rsa AAAArevoked\n@cert-authority *.lan ssh-ed25519 AAAAca\n|1|salt|hash ssh-ed25519 AAAAhashed x@y\n"
        );
        let keys: Vec<String> = parse_keys(&text)
            .into_iter()
            .map(|k| format!("{} {}", k.key_type, k.blob))
            .collect();
        assert_eq!(
            keys,
            [
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDF1TFwXbqdC1UyG75q3HO1n7/L3yxpeRLIq2kQ9DalI",
                "ssh-ed25519 AAAAca",
                "ssh-ed25519 AAAAhashed"
            ]
        );
        assert_eq!(known_hosts_name(&ep(22)), "alpha-initrd");
        assert_eq!(known_hosts_name(&ep(2222)), "[alpha-initrd]:2222");
    }

    #[test]
    fn pin_file_round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pins/alpha");
        let keys: BTreeSet<HostKey> = [HostKey {
            key_type: "ssh-ed25519".into(),
            blob: KEY.into(),
        }]
        .into();
        let scanned = fingerprints("alpha", &keys).unwrap();
        assert_eq!(
            scanned[0].to_string(),
            "ED25519 SHA256:N7UyES9TsZz6d8XgxhGpv9OdRlfeQ6GhJhDItCvej/c"
        );
        assert!(!has_entry(&file, &ep(2222)));
        write_pin(&file, "alpha", &ep(2222), &scanned, "2026-01-01 00:00").unwrap();
        assert_eq!(pinned_keys(&file).unwrap(), keys);
        assert!(has_entry(&file, &ep(2222)));
        assert!(!has_entry(&file, &ep(22)));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("[alpha-initrd]:2222 ssh-ed25519 {KEY}\n")),
            "{text}"
        );
        assert!(pinned_keys(&dir.path().join("none")).unwrap().is_empty());
    }
}
