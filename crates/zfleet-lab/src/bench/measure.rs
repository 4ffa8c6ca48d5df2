//! What the fleet benchmarks count on a lab host: `zfs`/`zpool` processes
//! (through a counting wrapper), ssh connections and sessions (from sshd's
//! log), bytes on the wire (the host's interface counters) and the peak memory
//! of the processes a run starts on a host.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::sim::Host;

const WRAPPER: &str = include_str!("count-zfs.sh");

/// Where the wrapper logs inside a host (`/var/log` is the host's own).
const CALLS_LOG: &str = "/var/log/zfs-calls.log";

/// Puts the counting wrapper over `/usr/sbin/zfs` and `/usr/sbin/zpool` in
/// the host's mount namespace only; the real binaries stay reachable through
/// bind mounts in the host's directory.
pub fn install_counters(h: &Host) -> Result<()> {
    let dir = h.dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut script = String::from("set -e\n");
    for tool in ["zfs", "zpool"] {
        let real = dir.join(format!("real-{tool}"));
        let wrapper = dir.join(format!("count-{tool}"));
        std::fs::write(&real, "").with_context(|| format!("cannot create {}", real.display()))?;
        let text = WRAPPER
            .replace("@TOOL@", tool)
            .replace("@REAL@", &real.display().to_string())
            .replace("@LOG@", CALLS_LOG);
        std::fs::write(&wrapper, text)
            .with_context(|| format!("cannot write {}", wrapper.display()))?;
        script.push_str(&format!(
            "chmod 755 {w}\nmount --bind /usr/sbin/{tool} {r}\nmount --bind {w} /usr/sbin/{tool}\n",
            w = wrapper.display(),
            r = real.display()
        ));
    }
    h.sh(&script).map(drop)
}

/// Counters of one host at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub zfs_calls: usize,
    pub ssh_connections: usize,
    pub ssh_sessions: usize,
    /// Received plus sent on the host's lab interface.
    pub wire_bytes: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            zfs_calls: self.zfs_calls.saturating_sub(o.zfs_calls),
            ssh_connections: self.ssh_connections.saturating_sub(o.ssh_connections),
            ssh_sessions: self.ssh_sessions.saturating_sub(o.ssh_sessions),
            wire_bytes: self.wire_bytes.saturating_sub(o.wire_bytes),
        }
    }
}

impl std::ops::Add for Counters {
    type Output = Counters;
    fn add(self, o: Counters) -> Counters {
        Counters {
            zfs_calls: self.zfs_calls + o.zfs_calls,
            ssh_connections: self.ssh_connections + o.ssh_connections,
            ssh_sessions: self.ssh_sessions + o.ssh_sessions,
            wire_bytes: self.wire_bytes + o.wire_bytes,
        }
    }
}

/// Reads the host's counters; `with_wire` also reads its interface (one
/// process on the host, so only where the bytes are wanted).
pub fn counters(h: &Host, with_wire: bool) -> Result<Counters> {
    let calls = h.dir().join("var-log").join("zfs-calls.log");
    let zfs_calls = match std::fs::read(&calls) {
        Ok(b) => b.iter().filter(|&&c| c == b'\n').count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", calls.display())),
    };
    let wire_bytes = if with_wire {
        // The host's pid 1 lives in its network namespace.
        let dev = format!("/proc/{}/net/dev", h.pid());
        wire_bytes(&std::fs::read_to_string(&dev).with_context(|| format!("cannot read {dev}"))?)
    } else {
        0
    };
    Ok(Counters {
        zfs_calls,
        ssh_connections: h.ssh_connections()?,
        ssh_sessions: h.ssh_sessions()?,
        wire_bytes,
    })
}

/// Bytes received and sent on every interface but `lo`, from `/proc/net/dev`.
fn wire_bytes(dev: &str) -> u64 {
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .map(|(_, rest)| {
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            // receive bytes is field 0, transmit bytes field 8.
            f.first().copied().unwrap_or(0) + f.get(8).copied().unwrap_or(0)
        })
        .sum()
}

/// One measured run: wall time, what it cost on the clients and the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub wall: f64,
    /// Summed over the clients.
    pub clients: Counters,
    pub server: Counters,
    /// Peak resident memory of what the run started on the server, bytes.
    pub rss: u64,
}

/// Runs `script` on `server` and measures it against `clients`.
pub fn measured(server: &Host, clients: &[&Host], script: &str) -> Result<Run> {
    let before_c = sum_counters(clients)?;
    let before_s = counters(server, true)?;
    let rss = PeakRss::start(server);
    let start = Instant::now();
    let out = server.sh_within(script, Duration::from_secs(4 * 3600));
    let wall = start.elapsed().as_secs_f64();
    let rss = rss.finish();
    out?;
    let after_c = sum_counters(clients)?;
    let after_s = counters(server, true)?;
    Ok(Run {
        wall,
        clients: after_c - before_c,
        server: after_s - before_s,
        rss,
    })
}

/// The `zfs`/`zpool` calls on `h` after the first `from` (a count from
/// [`counters`]), as the wrapper logged them.
pub fn calls_since(h: &Host, from: usize) -> Vec<String> {
    std::fs::read_to_string(h.dir().join("var-log").join("zfs-calls.log"))
        .unwrap_or_default()
        .lines()
        .skip(from)
        .map(str::to_string)
        .collect()
}

pub fn sum_counters(hosts: &[&Host]) -> Result<Counters> {
    hosts
        .iter()
        .try_fold(Counters::default(), |acc, h| Ok(acc + counters(h, false)?))
}

/// The run of median wall time.
pub fn median_run(runs: &[Run]) -> Run {
    let mut v = runs.to_vec();
    v.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    v.get(v.len() / 2).copied().unwrap_or_default()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Samples, every 20 ms, the summed resident memory of the processes in a
/// host's pid namespace that were not there when it started (zfs-fuse and
/// sshd were), and keeps the peak: the memory a run's process tree needs
/// there (zfleet with its ssh, or syncoid's perl, ssh, mbuffer, lzop and pv).
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

impl PeakRss {
    pub fn start(h: &Host) -> PeakRss {
        let proc_dir = h.ns_path("/proc");
        let baseline: HashSet<u32> = pids(&proc_dir).into_iter().collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            loop {
                let done = flag.load(Ordering::Relaxed);
                let sum: u64 = pids(&proc_dir)
                    .into_iter()
                    .filter(|p| !baseline.contains(p))
                    .map(|p| resident_bytes(&proc_dir, p))
                    .sum();
                peak = peak.max(sum);
                if done {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PeakRss {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops sampling; the peak in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or(0)
    }
}

fn pids(proc_dir: &Path) -> Vec<u32> {
    std::fs::read_dir(proc_dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn resident_bytes(proc_dir: &Path, pid: u32) -> u64 {
    let path: PathBuf = proc_dir.join(pid.to_string()).join("statm");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wire_bytes_skip_loopback() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
eth0:    5000      10    0    0    0     0          0         0     7000      12    0    0    0     0       0          0\n";
        assert_eq!(super::wire_bytes(dev), 12_000);
    }
}
