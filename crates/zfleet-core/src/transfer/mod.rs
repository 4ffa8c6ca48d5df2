//! One stream between two hosts: `send | zfleet | receive`, where the sender
//! and the receiver each run locally or over ssh, zfleet's pump in between
//! ([`pump`]: buffer, progress, rate limit) and zstd where a side is remote
//! ([`wire`]). Replication and restore both move their data through
//! [`transfer`].
//!
//! When a stream fails, both ends usually complain: a killed sender leaves the
//! receiver with an incomplete stream, a dead receiver leaves the sender with
//! a broken pipe. [`attribute`] names the end that failed first, from how the
//! pump stopped and how each process ended, and whether the host behind a
//! failed ssh session still answers.

pub mod pump;
mod wire;

use std::process::ExitStatus;

use crate::exec::{Argv, ChildGuard, Endpoint, SpawnIo};
use crate::failure::{Failure, FailureKind, Side};
use crate::host::Host;
use crate::progress::{human_bytes, Progress};
use crate::protocol::ZSTD_LEVEL;
use crate::zfs::ZfsErrorKind;

pub use pump::{pump, PumpError, PumpOptions};
use wire::{split_send_exit, Wire};

/// What to run on each end.
#[derive(Debug, Clone)]
pub struct Stream {
    pub send: Argv,
    pub receive: Argv,
    /// The sender's size estimate, for progress.
    pub estimate: Option<u64>,
    /// What progress and logs call it.
    pub label: String,
    /// zstd on the wire where a side is remote.
    pub compress: bool,
}

/// Moves one stream from `src` to `dst`. Returns the bytes that reached the
/// receiver; a failure names the side and host that failed first.
pub fn transfer(
    src: &Host,
    dst: &Host,
    stream: &Stream,
    pump_opts: PumpOptions,
    progress: &dyn Progress,
) -> Result<u64, Failure> {
    let wire = Wire::choose(stream.compress, src, dst);
    let send = wire.send(&stream.send)?;
    let recv = wire.recv(&stream.receive)?;
    tracing::info!("{}: {send} | {recv}", stream.label);
    let start_failed = |side: Side, host: &Host, e: crate::exec::ExecError| {
        Failure::on(side, &host.name, &crate::Error::Exec(e))
    };
    // The receiver starts first so the stream has somewhere to go.
    let mut receiver = dst
        .endpoint()
        .spawn(
            &recv,
            SpawnIo {
                stdin: true,
                stdout: false,
            },
        )
        .map_err(|e| start_failed(Side::Target, dst, e))?;
    let recv_err = receiver.stderr_reader();
    let mut sender = src
        .endpoint()
        .spawn(
            &send,
            SpawnIo {
                stdin: false,
                stdout: true,
            },
        )
        .map_err(|e| start_failed(Side::Source, src, e))?;
    let send_err = sender.stderr_reader();
    let (Some(out), Some(mut sink)) = (sender.take_stdout(), receiver.take_stdin()) else {
        return Err(Failure::internal("the send or receive process has no pipe"));
    };
    // 64 KiB pipes mean a context switch every 64 KiB on each side of the
    // pump; 1 MiB pipes let both ends run in longer stretches.
    for fd in [
        std::os::fd::AsFd::as_fd(&out),
        std::os::fd::AsFd::as_fd(&sink),
    ] {
        let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
    }
    let t = progress.transfer(&stream.label, stream.estimate);
    let reader: Box<dyn std::io::Read + std::marker::Send> = match wire {
        Wire::DecodeHere | Wire::ServedDecodeHere => Box::new(
            zstd::stream::read::Decoder::new(out).map_err(|e| Failure::internal(e.to_string()))?,
        ),
        Wire::EncodeHere => Box::new(
            zstd::stream::read::Encoder::new(out, ZSTD_LEVEL)
                .map_err(|e| Failure::internal(e.to_string()))?,
        ),
        Wire::Plain | Wire::Remote | Wire::ServedRemote => Box::new(out),
    };
    let pumped = pump(reader, &mut sink, pump_opts, t.as_ref());
    // End of stream for the receiver, whether or not the sender finished.
    drop(sink);
    let mut killed_sender = false;
    if pumped.is_err() {
        // The receiver is gone; the sender would block on a full pipe.
        sender.kill();
        killed_sender = true;
    }
    let send_status = wait(&mut sender);
    let recv_status = wait(&mut receiver);
    let mut send_stderr = join(send_err);
    let mut send_end = ProcessEnd::new(src, Side::Source, &send, send_status, killed_sender);
    if wire.send_status_on_stderr() {
        // `sh -c 'zfs send … | zstd'` exits with zstd's status; the real one
        // is on stderr.
        let (status_ok, rest) = split_send_exit(&send_stderr);
        send_stderr = rest;
        if !status_ok && send_end.status == End::Success {
            send_end.status = End::NoStatus;
        }
    }
    send_end.stderr = send_stderr;
    let mut recv_end = ProcessEnd::new(dst, Side::Target, &recv, recv_status, false);
    recv_end.stderr = join(recv_err);
    // Only a failed ssh session raises the question whether its host went away.
    for (end, host) in [(&mut send_end, src), (&mut recv_end, dst)] {
        if end.status == End::Code(255) {
            if let Endpoint::Ssh(t) = host.endpoint() {
                end.lost = t.lost_connection();
            }
        }
    }
    let ended = Ended {
        pumped: pumped.map_err(|e| match e {
            PumpError::Read { bytes, source } => PumpStop::Read {
                bytes,
                why: source.to_string(),
            },
            PumpError::Write { bytes, source } => PumpStop::Write {
                bytes,
                why: source.to_string(),
            },
        }),
        sender: send_end,
        receiver: recv_end,
    };
    let result = attribute(&ended);
    t.finish(ended.bytes(), result.is_ok());
    result
}

const PIPE_SIZE: usize = 1 << 20;

fn wait(c: &mut ChildGuard) -> Option<ExitStatus> {
    c.wait_timeout(None).ok().flatten()
}

fn join(h: Option<std::thread::JoinHandle<Vec<u8>>>) -> String {
    h.and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
        .unwrap_or_default()
}

/// How the pump stopped, when it did not reach the end of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PumpStop {
    /// Reading the stream failed (the sender side, or a corrupt zstd frame).
    Read { bytes: u64, why: String },
    /// The receiver stopped taking the stream.
    Write { bytes: u64, why: String },
}

/// How a process of the stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Success,
    Code(i32),
    Signal(i32),
    /// zfleet killed it, because the other end had already failed.
    KilledHere,
    /// It ended without a status that says how (or the shell around a
    /// compressing sender lost it).
    NoStatus,
}

/// One end of the stream as it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEnd {
    pub side: Side,
    pub host: String,
    /// It ran over ssh: its status is ssh's.
    pub remote: bool,
    pub cmdline: String,
    pub status: End,
    pub stderr: String,
    /// For a remote end that ended with ssh's 255: why the connection is gone,
    /// or `None` when it is still up.
    pub lost: Option<String>,
}

impl ProcessEnd {
    fn new(
        host: &Host,
        side: Side,
        argv: &Argv,
        status: Option<ExitStatus>,
        killed_here: bool,
    ) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let status = match status {
            _ if killed_here => End::KilledHere,
            None => End::NoStatus,
            Some(s) if s.success() => End::Success,
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => End::Code(c),
                (None, Some(sig)) => End::Signal(sig),
                (None, None) => End::NoStatus,
            },
        };
        Self {
            side,
            host: host.name.clone(),
            remote: !host.endpoint().is_local(),
            cmdline: argv.to_string(),
            status,
            stderr: String::new(),
            lost: None,
        }
    }

    fn failed(&self) -> bool {
        !matches!(self.status, End::Success | End::KilledHere)
    }

    /// What went wrong at this end, in a sentence naming host and command.
    fn failure(&self, bytes: u64) -> Failure {
        let after = format!("after {}", human_bytes(bytes));
        let (kind, message) = match (&self.status, &self.lost) {
            (End::Code(255), Some(why)) if self.remote => (
                FailureKind::Unreachable,
                format!(
                    "{} stopped answering during `{}`, {after}: {why}",
                    self.host, self.cmdline
                ),
            ),
            (End::Signal(sig), _) if self.remote => (
                FailureKind::Interrupted,
                format!(
                    "the ssh session to {} carrying `{}` was killed (signal {sig}) {after}",
                    self.host, self.cmdline
                ),
            ),
            (End::Signal(sig), _) => (
                FailureKind::Interrupted,
                format!(
                    "on {}: `{}` was killed (signal {sig}) {after}",
                    self.host, self.cmdline
                ),
            ),
            (_, _) if !self.stderr.is_empty() => {
                let zfs = ZfsErrorKind::classify(&self.stderr);
                let kind = match FailureKind::of_zfs_kind(&zfs) {
                    // A remote command that ended with nothing but ssh's
                    // status said only that the stream was cut.
                    FailureKind::Zfs {
                        zfs: ZfsErrorKind::Other,
                    } if self.status == End::Code(255) => FailureKind::Interrupted,
                    k => k,
                };
                (
                    kind,
                    format!(
                        "on {}: `{}` failed ({}) {after}: {}",
                        self.host,
                        self.cmdline,
                        self.status_text(),
                        self.stderr
                    ),
                )
            }
            _ => (
                FailureKind::Interrupted,
                format!(
                    "on {}: `{}` ended without saying why ({}) {after}; it was probably killed",
                    self.host,
                    self.cmdline,
                    self.status_text()
                ),
            ),
        };
        Failure {
            kind,
            message,
            side: Some(self.side),
            host: Some(self.host.clone()),
            bytes,
        }
    }

    fn status_text(&self) -> String {
        match self.status {
            End::Success => "exit status 0".into(),
            End::Code(c) => format!("exit status {c}"),
            End::Signal(s) => format!("killed by signal {s}"),
            End::KilledHere => "stopped by zfleet".into(),
            End::NoStatus => "no exit status".into(),
        }
    }
}

/// Everything known about a stream once both ends have finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub pumped: Result<u64, PumpStop>,
    pub sender: ProcessEnd,
    pub receiver: ProcessEnd,
}

impl Ended {
    /// Bytes that reached the receiver.
    pub fn bytes(&self) -> u64 {
        match &self.pumped {
            Ok(n) => *n,
            Err(PumpStop::Read { bytes, .. } | PumpStop::Write { bytes, .. }) => *bytes,
        }
    }
}

/// Which end failed first, and so what the stream's failure is.
///
/// - The pump could not write: the receiver stopped first (zfleet then
///   stopped the sender itself).
/// - The pump reached the end, or could not read, and the sender failed: the
///   sender (or its host, or its ssh session) first; a receiver that only
///   saw the stream end early is its consequence.
/// - The sender succeeded and the receiver failed: the receiver (no space,
///   a modified target).
/// - The sender did not fail but the pump could not read (a corrupt zstd
///   frame): zfleet itself, in between.
pub fn attribute(e: &Ended) -> Result<u64, Failure> {
    let bytes = e.bytes();
    let (s, r) = (&e.sender, &e.receiver);
    match &e.pumped {
        Err(PumpStop::Write { .. }) if r.failed() => Err(r.failure(bytes)),
        Err(PumpStop::Write { .. }) => Err(Failure {
            side: Some(Side::Target),
            host: Some(r.host.clone()),
            bytes,
            ..Failure::new(
                FailureKind::Interrupted,
                format!(
                    "on {}: `{}` stopped reading the stream after {}",
                    r.host,
                    r.cmdline,
                    human_bytes(bytes)
                ),
            )
        }),
        _ if s.failed() => Err(s.failure(bytes)),
        Err(PumpStop::Read { why, .. }) => Err(Failure {
            side: Some(Side::Here),
            bytes,
            ..Failure::new(
                FailureKind::Interrupted,
                format!(
                    "the stream from {} to {} broke in zfleet after {}: {why}",
                    s.host,
                    r.host,
                    human_bytes(bytes)
                ),
            )
        }),
        _ if r.failed() => Err(r.failure(bytes)),
        Ok(n) => Ok(*n),
    }
}

#[cfg(test)]
mod tests;
