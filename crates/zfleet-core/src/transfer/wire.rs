//! Compression of the stream on the wire: where zstd runs depends on which
//! sides are remote, and a sender's exit status must survive the pipe to zstd.

use crate::exec::Argv;
use crate::failure::Failure;
use crate::host::Host;
use crate::protocol::{SEND_EXIT_TAG, ZSTD_LEVEL, ZSTD_PREFIX};

/// How the stream is compressed between the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    Plain,
    /// The remote source compresses; this process decompresses into a local receiver.
    DecodeHere,
    /// The source's `zfleet serve` compresses in process; this process
    /// decompresses into a local receiver.
    ServedDecodeHere,
    /// This process compresses a local sender; the remote receiver decompresses.
    EncodeHere,
    /// Both sides remote: the source compresses and the target decompresses.
    Remote,
    /// Both sides remote, the source through `zfleet serve`.
    ServedRemote,
}

impl Wire {
    pub(super) fn choose(compress: bool, src: &Host, dst: &Host) -> Self {
        // A receive-only `zfleet serve` takes a plain stream.
        if !compress || dst.is_served() {
            return Wire::Plain;
        }
        let served_src = src.is_served();
        if served_src && !src.serve_compresses() {
            // An older serve that runs single commands only.
            return Wire::Plain;
        }
        match (src.endpoint().is_local(), dst.endpoint().is_local()) {
            (true, true) => Wire::Plain,
            (false, true) if served_src => Wire::ServedDecodeHere,
            (false, true) => Wire::DecodeHere,
            (true, false) => Wire::EncodeHere,
            (false, false) if served_src => Wire::ServedRemote,
            (false, false) => Wire::Remote,
        }
    }

    /// `sh -c 'zfs send … | zstd'` exits with zstd's status; the sender's is
    /// on stderr. (A served sender's status is serve's own.)
    pub(super) fn send_status_on_stderr(self) -> bool {
        matches!(self, Wire::DecodeHere | Wire::Remote)
    }

    /// `sh -c '{ zfs send …; echo zfleet-send-exit:$? >&2; } | zstd -c'` on the
    /// source, so the sender's own exit status is not lost behind zstd's; or
    /// `zfleet-zstd zfs send …` for `zfleet serve`.
    pub(super) fn send(self, send: &Argv) -> Result<Argv, Failure> {
        if matches!(self, Wire::ServedDecodeHere | Wire::ServedRemote) {
            return Ok(Argv::new(ZSTD_PREFIX)
                .arg(&send.program)
                .args(send.args.iter().map(String::as_str)));
        }
        if !self.send_status_on_stderr() {
            return Ok(send.clone());
        }
        let line = crate::exec::quote::remote_command_line(send.words())
            .map_err(|e| Failure::internal(e.to_string()))?;
        Ok(Argv::new("sh").arg("-c").arg(format!(
            "{{ {line}; echo {SEND_EXIT_TAG}$? >&2; }} | zstd -c -q -{ZSTD_LEVEL}"
        )))
    }

    pub(super) fn recv(self, recv: &Argv) -> Result<Argv, Failure> {
        if !matches!(self, Wire::EncodeHere | Wire::Remote | Wire::ServedRemote) {
            return Ok(recv.clone());
        }
        let line = crate::exec::quote::remote_command_line(recv.words())
            .map_err(|e| Failure::internal(e.to_string()))?;
        Ok(Argv::new("sh")
            .arg("-c")
            .arg(format!("zstd -d -c -q | {line}")))
    }
}

/// Takes the sender's exit status line out of its stderr.
pub(super) fn split_send_exit(stderr: &str) -> (bool, String) {
    let mut ok = false;
    let rest: Vec<&str> = stderr
        .lines()
        .filter(|l| match l.strip_prefix(SEND_EXIT_TAG) {
            Some(code) => {
                ok = code.trim() == "0";
                false
            }
            None => true,
        })
        .collect();
    (ok, rest.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_senders_status_survives_the_pipe() {
        assert_eq!(split_send_exit("zfleet-send-exit:0"), (true, String::new()));
        assert_eq!(
            split_send_exit("cannot open 'x': dataset does not exist\nzfleet-send-exit:1"),
            (false, "cannot open 'x': dataset does not exist".to_string())
        );
        // Killed before it could say: a failure.
        assert_eq!(split_send_exit(""), (false, String::new()));
    }

    #[test]
    fn compressing_send_line() {
        let send = Argv::new("zfs").args(["send", "-I", "z/a@1", "z/a@2"]);
        let w = Wire::DecodeHere.send(&send).unwrap();
        assert_eq!(
            w.args[1],
            "{ zfs send -I z/a@1 z/a@2; echo zfleet-send-exit:$? >&2; } | zstd -c -q -3"
        );
        // zfleet serve compresses in process: one command it can check.
        let w = Wire::ServedDecodeHere.send(&send).unwrap();
        assert_eq!(w.to_string(), "zfleet-zstd zfs send -I z/a@1 z/a@2");
        assert!(!Wire::ServedDecodeHere.send_status_on_stderr());
    }
}
