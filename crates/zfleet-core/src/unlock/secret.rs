//! A passphrase or key in memory.
//!
//! [`Secret`] has no `Display`, `Clone` or `Serialize`, its `Debug` is redacted,
//! and its bytes are zeroed when it is dropped. The only ways out are
//! [`Secret::stdin_line`]/[`Secret::stdin_raw`], which produce the bytes for a
//! child's stdin as another zeroed-on-drop value, and the
//! [`Redactor`](super::redact::Redactor), which removes the secret from text
//! that another program printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice};

/// Larger than any passphrase or key file a provider should return.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

pub struct Secret(SecretSlice<u8>);

impl Secret {
    /// Copies `bytes` into an allocation of exactly their length, so no
    /// reallocation ever leaves an unzeroed copy behind. The caller zeroes its
    /// own buffer.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        Self(SecretSlice::from(Box::<[u8]>::from(bytes)))
    }

    pub fn len(&self) -> usize {
        self.0.expose_secret().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The secret and a newline, as `cryptsetup` and `zfs load-key` read a
    /// passphrase from a pipe: up to the first newline. Without the newline
    /// some askpass programs wait for more and never unlock.
    pub fn stdin_line(&self) -> SecretSlice<u8> {
        let s = self.0.expose_secret();
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s);
        v.push(b'\n');
        // Capacity equals length, so this conversion does not reallocate.
        SecretSlice::from(v)
    }

    /// The secret as it is, for `keyformat=raw` keys (exactly 32 bytes).
    pub fn stdin_raw(&self) -> SecretSlice<u8> {
        SecretSlice::from(Box::<[u8]>::from(self.0.expose_secret()))
    }

    /// For [`Redactor`](super::redact::Redactor) only, which keeps its copies
    /// zeroed-on-drop too.
    pub(super) fn expose_for_redaction(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The first CR or LF in the secret, if any: `(byte offset, which)`.
    pub fn line_break(&self) -> Option<(usize, LineBreak)> {
        self.0
            .expose_secret()
            .iter()
            .enumerate()
            .find_map(|(i, b)| match b {
                b'\n' => Some((i, LineBreak::Lf)),
                b'\r' => Some((i, LineBreak::Cr)),
                _ => None,
            })
    }

    #[cfg(test)]
    pub(crate) fn expose_for_test(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// A line break inside a secret, which a line-reading askpass would take as
/// the end of one passphrase and the start of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineBreak {
    Cr,
    Lf,
}

impl LineBreak {
    pub fn name(self) -> &'static str {
        match self {
            LineBreak::Cr => "carriage return (CR)",
            LineBreak::Lf => "line feed (LF)",
        }
    }
}

/// Makes this process non-dumpable before secrets enter it: no core dump (which
/// systemd-coredump would keep on disk), and no ptrace or `/proc/PID/mem` by
/// other processes of the same user; root still can. Programs zfleet starts
/// are dumpable again after exec, and they hold no secret but what is on their
/// stdin. Failure is logged, not fatal: the secret is no less protected than
/// in any other program.
pub fn protect_process() {
    use rustix::process::{set_dumpable_behavior, DumpableBehavior};
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!("could not make zfleet non-dumpable: {e}");
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let s = Secret::from_bytes(b"hunter2");
        assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
        assert_eq!(s.len(), 7);
        assert_eq!(s.stdin_line().expose_secret(), b"hunter2\n");
        assert_eq!(s.stdin_raw().expose_secret(), b"hunter2");
        assert_eq!(
            format!("{:?}", s.stdin_line()),
            "SecretBox<[u8]>([REDACTED])"
        );
    }

    #[test]
    fn process_is_made_non_dumpable() {
        use rustix::process::{dumpable_behavior, DumpableBehavior};
        protect_process();
        assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
    }

    #[test]
    fn line_breaks_are_found() {
        assert_eq!(Secret::from_bytes(b"one line").line_break(), None);
        assert_eq!(
            Secret::from_bytes(b"two\nlines").line_break(),
            Some((3, LineBreak::Lf))
        );
        assert_eq!(
            Secret::from_bytes(b"cr\r").line_break(),
            Some((2, LineBreak::Cr))
        );
    }
}
