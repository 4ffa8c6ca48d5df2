//! The stream between `zfs send` and `zfs recv`: a bounded buffer that smooths
//! bursts (mbuffer's job), byte counting for progress, and an optional rate limit.
//!
//! A reader thread fills fixed-size chunks and hands them over a bounded channel;
//! the caller's thread writes them out and returns the empty chunks for reuse. The
//! memory used is `buffer` bytes whatever the stream size.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::progress::Transfer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PumpOptions {
    /// Total bytes buffered between reader and writer.
    pub buffer: usize,
    pub chunk: usize,
    /// Bytes per second; `None` for no limit.
    pub rate_limit: Option<u64>,
}

impl Default for PumpOptions {
    fn default() -> Self {
        Self {
            buffer: 32 << 20,
            chunk: 1 << 20,
            rate_limit: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("reading the send stream failed after {bytes} bytes: {source}")]
    Read { bytes: u64, source: io::Error },
    #[error("writing to the receiver failed after {bytes} bytes: {source}")]
    Write { bytes: u64, source: io::Error },
}

impl PumpError {
    pub fn bytes(&self) -> u64 {
        match self {
            PumpError::Read { bytes, .. } | PumpError::Write { bytes, .. } => *bytes,
        }
    }
}

/// Copies `reader` to `writer` until end of stream. Returns the bytes moved.
/// Dropping the writer when done (closing the receiver's stdin) is the caller's job.
pub fn pump<R, W>(
    reader: R,
    writer: &mut W,
    opts: PumpOptions,
    progress: &dyn Transfer,
) -> Result<u64, PumpError>
where
    R: Read + Send,
    W: Write,
{
    let chunk = opts.chunk.max(4096);
    let slots = (opts.buffer / chunk).max(2);
    // A chunk travels with the length filled, so it keeps its full size and is
    // zeroed once when allocated (calloc), not before every read: clearing it
    // each time was a memset of the whole stream, the pump's main cost.
    let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(slots);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..slots {
        let _ = empty_tx.send(vec![0u8; chunk]);
    }

    thread::scope(|s| {
        // The limit applies where the stream is read: in a pull that is the
        // network, and whatever the direction it bounds both ends, since the
        // writer can only pass on what was read.
        let mut limiter = opts.rate_limit.map(RateLimiter::new);
        let reader_thread = s.spawn(move || -> Result<(), (u64, io::Error)> {
            let mut reader = reader;
            let mut total = 0u64;
            // The writer side hangs up when it fails; then stop reading so the
            // sender sees a closed pipe and exits.
            while let Ok(mut buf) = empty_rx.recv() {
                let mut filled = 0;
                while filled < chunk {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err((total, e)),
                    }
                }
                total += filled as u64;
                if let Some(l) = limiter.as_mut() {
                    l.wait_for(filled as u64);
                }
                let eof = filled < chunk;
                if filled > 0 && full_tx.send((buf, filled)).is_err() {
                    return Ok(());
                }
                if eof {
                    return Ok(());
                }
            }
            Ok(())
        });

        let mut written = 0u64;
        let mut write_result = Ok(());
        for (buf, filled) in full_rx.iter() {
            if let Err(e) = writer.write_all(&buf[..filled]) {
                write_result = Err(e);
                break;
            }
            written += filled as u64;
            progress.advance(written);
            let _ = empty_tx.send(buf);
        }
        // Unblocks a reader waiting for an empty chunk after a write failure.
        drop(empty_tx);
        drop(full_rx);
        let read_result = reader_thread
            .join()
            .unwrap_or_else(|_| Err((written, io::Error::other("reader thread panicked"))));
        if let Err(source) = write_result {
            return Err(PumpError::Write {
                bytes: written,
                source,
            });
        }
        if let Err((bytes, source)) = read_result {
            return Err(PumpError::Read { bytes, source });
        }
        if let Err(source) = writer.flush() {
            return Err(PumpError::Write {
                bytes: written,
                source,
            });
        }
        Ok(written)
    })
}

/// A token bucket with one second of burst.
struct RateLimiter {
    rate: u64,
    start: Instant,
    sent: u64,
}

impl RateLimiter {
    fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            start: Instant::now(),
            sent: 0,
        }
    }

    fn wait_for(&mut self, bytes: u64) {
        self.sent += bytes;
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed + Duration::from_secs(1) {
            thread::sleep(due - elapsed - Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Count(AtomicU64);
    impl Transfer for Count {
        fn advance(&self, bytes: u64) {
            self.0.store(bytes, Ordering::Relaxed);
        }
        fn finish(&self, _: u64, _: bool) {}
    }

    #[test]
    fn copies_exactly() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        let c = Count::default();
        let n = pump(
            &data[..],
            &mut out,
            PumpOptions {
                buffer: 1 << 20,
                chunk: 64 << 10,
                rate_limit: None,
            },
            &c,
        )
        .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(out, data);
        assert_eq!(c.0.load(Ordering::Relaxed), data.len() as u64);
    }

    #[test]
    fn empty_stream() {
        let mut out = Vec::new();
        assert_eq!(
            pump(
                &b""[..],
                &mut out,
                PumpOptions::default(),
                &crate::progress::Silent
            )
            .unwrap(),
            0
        );
    }

    struct FailingWriter(usize);
    impl Write for FailingWriter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "receiver gone"));
            }
            self.0 -= 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// An endless sender and a receiver that dies: the pump stops instead of
    /// reading forever.
    #[test]
    fn receiver_failure_stops_the_pump() {
        let endless = io::repeat(7);
        let e = pump(
            endless,
            &mut FailingWriter(3),
            PumpOptions {
                buffer: 1 << 20,
                chunk: 64 << 10,
                rate_limit: None,
            },
            &crate::progress::Silent,
        )
        .unwrap_err();
        assert!(matches!(e, PumpError::Write { .. }), "{e}");
        assert_eq!(e.bytes(), 3 * (64 << 10));
    }

    #[test]
    fn rate_limit_slows_down() {
        let data = vec![0u8; 3 << 20];
        let start = Instant::now();
        let mut out = Vec::new();
        pump(
            &data[..],
            &mut out,
            PumpOptions {
                buffer: 1 << 20,
                chunk: 256 << 10,
                rate_limit: Some(1 << 20),
            },
            &crate::progress::Silent,
        )
        .unwrap();
        // 3 MiB at 1 MiB/s with one second of burst: at least ~2 s.
        assert!(
            start.elapsed() >= Duration::from_millis(1800),
            "{:?}",
            start.elapsed()
        );
    }
}
