//! The commands `deploy` runs on a host: POSIX sh with fixed scripts whose
//! paths and checksums come as positional arguments (each one quoted by the
//! endpoint), so nothing from the fleet file is ever part of a script.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Observed;
use crate::exec::{Argv, Endpoint, RunOptions, SpawnIo};
use crate::progress::Transfer;
use crate::Error;

/// The daemon's unit, as `zfleet export systemd` writes it.
pub const DAEMON_UNIT: &str = "zfleet.service";

const PROBE: &str = r#"echo "arch=$(uname -m)"
if [ -f "$1" ]; then
    v=$("$1" --version 2>/dev/null | head -n 1) && echo "version=$v"
    echo "sha256=$(sha256sum "$1" | cut -d ' ' -f 1)"
fi
[ -f "$2" ] && echo "fleet=$(sha256sum "$2" | cut -d ' ' -f 1)"
if [ -d /run/systemd/system ]; then
    echo systemd=1
    systemctl is-active --quiet "$3" && echo daemon=active
fi
units=$4
shift 4
if [ -d "$units" ]; then
    echo unitdir=1
    for u in "$@"; do
        [ -f "$units/$u" ] && echo "unit=$u $(sha256sum "$units/$u" | cut -d ' ' -f 1)"
    done
fi
exit 0
"#;

/// What the host has at `zfleet_path` and `fleet_path`, and of `units` in
/// `unit_dir`, in one command.
pub fn observe(
    ep: &Endpoint,
    zfleet_path: &str,
    fleet_path: &str,
    unit_dir: &str,
    units: &[&str],
) -> Result<Observed, Error> {
    let argv = Argv::new("sh")
        .arg("-c")
        .arg(PROBE)
        .arg("sh")
        .args([zfleet_path, fleet_path, DAEMON_UNIT, unit_dir])
        .args(units.iter().copied());
    let out = ep.run(&argv, &RunOptions::timeout(Duration::from_secs(60)))?;
    Ok(parse_probe(&out.stdout_text()))
}

pub fn parse_probe(text: &str) -> Observed {
    let mut o = Observed::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k {
            "arch" => o.arch = v,
            "version" if !v.is_empty() => o.version = Some(v),
            "sha256" if v.len() == 64 => o.sha256 = Some(v),
            "fleet" if v.len() == 64 => o.fleet_sha256 = Some(v),
            "systemd" => o.systemd = true,
            "daemon" => o.daemon_active = v == "active",
            "unitdir" => o.unit_dir = true,
            "unit" => {
                if let Some((name, sha)) = v.split_once(' ') {
                    if sha.len() == 64 {
                        o.units.insert(name.to_string(), sha.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    o
}

/// Writes stdin to `$1` the safe way: into a file beside it, which must have
/// `$3` bytes and SHA-256 `$2`; with `$5` = `run`, the file must also run and
/// print `$6` as the first line of its `--version`. Then flushed, renamed over
/// `$1` and the directory flushed. Anything short of that removes the partial
/// file and leaves `$1` as it was (also when the connection breaks: stdin ends
/// early and the size is wrong, or the shell gets SIGHUP).
const INSTALL: &str = r#"set -u
dir=$(dirname "$1")
tmp="$dir/.$(basename "$1").zfleet-deploy"
mkdir -p "$dir" || exit 3
rm -f "$tmp"
trap 'rm -f "$tmp"' EXIT
trap 'rm -f "$tmp"; exit 129' HUP INT TERM PIPE
cat > "$tmp" || { echo "cannot write $tmp" >&2; exit 3; }
got=$(wc -c < "$tmp")
[ "$got" -eq "$3" ] || { echo "the copy has $got of $3 bytes" >&2; exit 3; }
sum=$(sha256sum "$tmp" | cut -d ' ' -f 1)
[ "$sum" = "$2" ] || { echo "the copy's SHA-256 is $sum, not $2" >&2; exit 3; }
chmod "$4" "$tmp" || exit 3
if [ "$5" = run ]; then
    v=$("$tmp" --version 2>&1 | head -n 1)
    [ "$v" = "$6" ] || { echo "the copy does not run here (it printed: $v)" >&2; exit 3; }
fi
sync "$tmp" 2>/dev/null || sync
if [ "$5" = keep-previous ] && [ -f "$1" ]; then cp -p "$1" "$1.previous"; fi
mv -f "$tmp" "$1" || exit 3
trap - EXIT
sync "$dir" 2>/dev/null || sync
"#;

/// What to check on the copy before it replaces the old file.
pub enum Check<'a> {
    /// An executable: it must run and print this version.
    Runs(&'a str),
    /// A data file; the old one is kept as `PATH.previous`.
    KeepPrevious,
    /// A file whose old version is of no use (a unit: systemd would read a
    /// `.previous` beside it as a unit of another name).
    Plain,
}

/// Sends `source` (its `size` bytes with SHA-256 `sha256`) to `path` on the
/// host, rate-limited, with the checks of [`INSTALL`].
#[allow(clippy::too_many_arguments)]
pub fn install(
    ep: &Endpoint,
    path: &str,
    source: impl Read + Send,
    size: u64,
    sha256: &str,
    mode: &str,
    check: Check<'_>,
    rate_limit: Option<u64>,
    progress: &dyn Transfer,
) -> Result<(), Error> {
    let (how, expect) = match check {
        Check::Runs(v) => ("run", v),
        Check::KeepPrevious => ("keep-previous", ""),
        Check::Plain => ("plain", ""),
    };
    let argv = Argv::new("sh").arg("-c").arg(INSTALL).arg("sh").args([
        path,
        sha256,
        &size.to_string(),
        mode,
        how,
        expect,
    ]);
    let mut child = ep.spawn(
        &argv,
        SpawnIo {
            stdin: true,
            stdout: false,
        },
    )?;
    let stderr = child.stderr_reader();
    let sent = match child.take_stdin() {
        Some(mut stdin) => {
            let opts = crate::transfer::pump::PumpOptions {
                buffer: 4 << 20,
                chunk: 256 << 10,
                rate_limit,
            };
            let r = crate::transfer::pump::pump(source, &mut stdin, opts, progress);
            drop(stdin);
            r.map_err(|e| e.to_string())
        }
        None => Err("no stdin".to_string()),
    };
    let status = child
        .wait_timeout(Some(Duration::from_secs(600)))
        .map_err(|e| Error::Internal(format!("waiting for the copy to {}: {e}", ep.label())))?;
    let err = stderr
        .and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    match (status, sent) {
        (Some(s), Ok(_)) if s.success() => Ok(()),
        (s, sent) => Err(Error::Exec(crate::exec::ExecError::Failed {
            host: ep.label().to_string(),
            cmdline: format!("the copy to {path} (the file there is unchanged)"),
            status: s.map_or("timed out".to_string(), crate::exec::describe_status),
            stderr: match sent {
                Err(e) => format!("{err}\nsending: {e}").trim().to_string(),
                Ok(_) => err,
            },
        })),
    }
}

/// `systemctl daemon-reload`, after units were written.
pub fn reload_systemd(ep: &Endpoint) -> Result<(), Error> {
    let argv = Argv::new("systemctl").arg("daemon-reload");
    ep.run(&argv, &RunOptions::timeout(Duration::from_secs(120)))?;
    Ok(())
}

/// `systemctl try-restart` of the daemon: restarted only where it runs.
pub fn restart_daemon(ep: &Endpoint) -> Result<(), Error> {
    let argv = Argv::new("systemctl").args(["try-restart", DAEMON_UNIT]);
    ep.run(&argv, &RunOptions::timeout(Duration::from_secs(120)))?;
    Ok(())
}

/// SHA-256 (hex) and size of a local file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex(&h.finalize()), n))
}

pub fn sha256_bytes(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output() {
        let sum = "a".repeat(64);
        let o = parse_probe(&format!(
            "arch=x86_64\nversion=zfleet 0.1.0\nsha256={sum}\nfleet={sum}\nsystemd=1\ndaemon=active\nunitdir=1\nunit=zfleet.service {sum}\nunit=broken\n"
        ));
        assert!(o.unit_dir);
        assert_eq!(
            o.units.into_iter().collect::<Vec<_>>(),
            [("zfleet.service".to_string(), sum.clone())]
        );
        assert_eq!(o.arch, "x86_64");
        assert_eq!(o.version.as_deref(), Some("zfleet 0.1.0"));
        assert_eq!(o.sha256.as_deref(), Some(sum.as_str()));
        assert!(o.systemd && o.daemon_active);
        let bare = parse_probe("arch=aarch64\n");
        assert_eq!(bare.version, None);
        assert!(!bare.systemd && !bare.unit_dir);
    }
}
