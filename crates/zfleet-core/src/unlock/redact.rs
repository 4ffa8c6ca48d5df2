//! Taking secrets out of what other programs print.
//!
//! An initrd (or an impostor, or a broken askpass) may print back what it
//! read, and a secret provider may mention the secret in its error message.
//! Whatever zfleet shows, logs or stores of such output goes through a
//! [`Redactor`] first, which knows every secret of the run and the forms an
//! echo of one takes:
//!
//! - the secret as it is, and trimmed of surrounding whitespace (a program
//!   that trims its input, or a line trimmed for display);
//! - re-encoded: as Latin-1 when the secret is UTF-8 (a terminal or initrd in
//!   a Latin-1 locale), as UTF-8 when it is not (the reverse);
//! - split across lines: matching ignores CR and LF in the output, so an echo
//!   wrapped or printed in pieces still matches, and the line breaks inside go
//!   with it;
//! - cut off at either end of the text: a piece of output that starts with the
//!   end of a secret, or ends with its beginning (the rest not printed or not
//!   read yet), loses that part too, when it is at least [`MIN_PARTIAL`] bytes.
//!
//! Matching works on bytes, before anything is decoded, so output that is not
//! UTF-8, or an echo split inside a multi-byte character between two reads,
//! is redacted like any other. Every match becomes `[secret]`.

use std::ops::Range;

use zeroize::Zeroizing;

use super::Secret;
use crate::text;

/// What replaces a secret.
pub const MARK: &str = "[secret]";

/// The shortest beginning or end of a secret that is redacted at the edge of a
/// piece of output. Shorter ones are too likely to be ordinary text ("s." at
/// the end of a sentence); a secret shorter than this is matched whole only.
pub const MIN_PARTIAL: usize = 4;

/// Edge matches are looked for up to this length; longer secrets are key
/// files, matched whole.
const MAX_PARTIAL: usize = 1024;

/// The secrets of a run in every form they are looked for in. Zeroed when
/// dropped, like the secrets themselves.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

fn is_line_break(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A redactor for one secret.
    pub fn of(secret: &Secret) -> Self {
        let mut r = Self::new();
        r.add(secret);
        r
    }

    pub fn add(&mut self, secret: &Secret) {
        self.add_bytes(secret.expose_for_redaction());
    }

    /// Adds `bytes` and its variants. Also for text that may be a secret
    /// without being one zfleet accepted (what a failing provider printed).
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        let trimmed = bytes.trim_ascii();
        for form in [bytes, trimmed] {
            self.push(form.to_vec());
            match std::str::from_utf8(form) {
                Ok(s) => {
                    // Latin-1, when every character has a Latin-1 byte.
                    if s.chars().any(|c| c as u32 >= 0x80) && s.chars().all(|c| c as u32 <= 0xff) {
                        self.push(s.chars().map(|c| c as u32 as u8).collect());
                    }
                }
                Err(_) => {
                    // Bytes read as Latin-1 and printed as UTF-8.
                    self.push(
                        form.iter()
                            .map(|&b| char::from(b))
                            .collect::<String>()
                            .into_bytes(),
                    );
                }
            }
        }
    }

    /// Stores `form` without its line breaks: matching skips them in the text.
    fn push(&mut self, form: Vec<u8>) {
        let form = Zeroizing::new(form);
        let needle: Zeroizing<Vec<u8>> = Zeroizing::new(
            form.iter()
                .copied()
                .filter(|b| !is_line_break(*b))
                .collect(),
        );
        if !needle.is_empty() && !self.needles.iter().any(|n| **n == *needle) {
            self.needles.push(needle);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The byte ranges of `hay` that hold a secret, sorted and merged.
    fn spans(&self, hay: &[u8], edges: bool) -> Vec<Range<usize>> {
        // `hay` without CR and LF, and where each of its bytes came from.
        let (flat, at): (Vec<u8>, Vec<usize>) = hay
            .iter()
            .enumerate()
            .filter(|(_, b)| !is_line_break(**b))
            .map(|(i, b)| (*b, i))
            .unzip();
        let flat = Zeroizing::new(flat);
        let mut spans = Vec::new();
        let n = flat.len();
        for needle in &self.needles {
            let m = needle.len();
            for start in memchr::memmem::find_iter(&flat, needle.as_slice()) {
                spans.push(at[start]..at[start + m - 1] + 1);
            }
            if !edges || m <= MIN_PARTIAL {
                continue;
            }
            let longest = (m - 1).min(n).min(MAX_PARTIAL);
            // The end of a secret at the start of the text.
            if let Some(k) = (MIN_PARTIAL..=longest)
                .rev()
                .find(|&k| flat[..k] == needle[m - k..])
            {
                spans.push(0..at[k - 1] + 1);
            }
            // The beginning of a secret at the end of the text.
            if let Some(k) = (MIN_PARTIAL..=longest)
                .rev()
                .find(|&k| flat[n - k..] == needle[..k])
            {
                spans.push(at[n - k]..hay.len());
            }
        }
        spans.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::new();
        for s in spans {
            match merged.last_mut() {
                Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
                _ => merged.push(s),
            }
        }
        merged
    }

    fn replace(hay: &[u8], spans: &[Range<usize>]) -> String {
        let mut out = String::with_capacity(hay.len());
        let mut pos = 0;
        for s in spans {
            out.push_str(&String::from_utf8_lossy(&hay[pos..s.start]));
            out.push_str(MARK);
            pos = s.end;
        }
        out.push_str(&String::from_utf8_lossy(&hay[pos..]));
        out
    }

    /// Output of another program as text, every secret in it (whole, or cut
    /// off at either end) replaced by [`MARK`]. Not UTF-8 is decoded lossily
    /// after redaction. Control characters are left for the caller to escape.
    pub fn redact(&self, output: &[u8]) -> String {
        Self::replace(output, &self.spans(output, true))
    }

    /// A message zfleet composed (which may quote remote output): whole
    /// secrets only, since its ends are zfleet's own words.
    pub fn scrub(&self, message: &str) -> String {
        if self.is_empty() {
            return message.to_string();
        }
        Self::replace(message.as_bytes(), &self.spans(message.as_bytes(), false))
    }

    /// The lines of `output` after redaction: trimmed, empty ones dropped,
    /// control characters escaped.
    pub fn lines(&self, output: &[u8]) -> Vec<String> {
        self.redact(output)
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| text::printable(l).into_owned())
            .collect()
    }

    /// What of `output` goes into a message: its last `lines` lines after
    /// redaction, escaped, joined with ` / `, at most `max` characters.
    pub fn excerpt(&self, output: &[u8], lines: usize, max: usize) -> String {
        let all = self.lines(output);
        let tail = &all[all.len().saturating_sub(lines)..];
        text::bounded(&tail.join(" / "), max).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const PW: &str = " pässwörd-0123abcd ";

    fn r() -> Redactor {
        Redactor::of(&Secret::from_bytes(PW.as_bytes()))
    }

    fn latin1(s: &str) -> Vec<u8> {
        s.chars().map(|c| c as u32 as u8).collect()
    }

    #[rstest]
    #[case::plain(format!("You typed:{PW}\nNo key").into_bytes(), "You typed:[secret]\nNo key")]
    #[case::trailing_spaces(format!("got '{PW}  '").into_bytes(), "got '[secret]  '")]
    #[case::trimmed_by_the_echo(b"got 'p\xc3\xa4ssw\xc3\xb6rd-0123abcd'".to_vec(), "got '[secret]'")]
    #[case::latin1([b"got ".as_slice(), &latin1(PW), b"!"].concat(), "got [secret]!")]
    #[case::split_by_a_line_break(
        b"got p\xc3\xa4ssw\xc3\xb6rd-01\r\n23abcd then".to_vec(),
        // The secret's own spaces go with it.
        "got[secret]then"
    )]
    #[case::split_across_three_lines(
        b"x p\xc3\xa4ss\nw\xc3\xb6rd\n-0123abcd y".to_vec(),
        "x[secret]y"
    )]
    #[case::cut_off_at_the_end(b"Enter passphrase: p\xc3\xa4ssw\xc3".to_vec(), "Enter passphrase:[secret]")]
    #[case::cut_off_at_the_start(b"rd-0123abcd\nNo key available".to_vec(), "[secret]\nNo key available")]
    #[case::twice(format!("{PW}{PW}").into_bytes(), "[secret]")]
    #[case::nothing(b"No key available with this passphrase.".to_vec(), "No key available with this passphrase.")]
    #[case::not_utf8(b"bad \xff\xfe bytes".to_vec(), "bad \u{fffd}\u{fffd} bytes")]
    fn redacts(#[case] output: Vec<u8>, #[case] want: &str) {
        assert_eq!(r().redact(&output), want);
    }

    #[test]
    fn short_edges_and_whole_secrets_only_in_messages() {
        // Three bytes of the secret's start at the end of a line are ordinary text.
        assert_eq!(r().redact("written:p\u{e4}".as_bytes()), "written:p\u{e4}");
        // A composed message keeps its ends.
        let r2 = Redactor::of(&Secret::from_bytes(b"retries = 0 and more"));
        assert_eq!(
            r2.scrub("sent 1 time, retries = 0"),
            "sent 1 time, retries = 0"
        );
        assert_eq!(
            r2.redact(b"sent 1 time, retries = 0"),
            "sent 1 time, [secret]"
        );
        assert_eq!(
            r2.scrub("echo: retries = 0 and more (sent)"),
            "echo: [secret] (sent)"
        );
    }

    #[test]
    fn secrets_that_are_not_utf8() {
        let r = Redactor::of(&Secret::from_bytes(b"caf\xe9-secret"));
        assert_eq!(r.redact(b"raw caf\xe9-secret."), "raw [secret].");
        assert_eq!(
            r.redact("as utf-8 café-secret.".as_bytes()),
            "as utf-8 [secret]."
        );
    }

    #[test]
    fn excerpts_are_escaped_and_bounded() {
        let out = format!("one\n\u{1b}[2K\u{1b}[1Galpha  unlocked\nlast:{PW}\n");
        assert_eq!(
            r().excerpt(out.as_bytes(), 2, 300),
            "\\u{1b}[2K\\u{1b}[1Galpha  unlocked / last:[secret]"
        );
        assert_eq!(r().excerpt(b"xyzwvuts", 1, 4), "xyz…");
        assert_eq!(Redactor::new().redact(b"x"), "x");
    }
}
