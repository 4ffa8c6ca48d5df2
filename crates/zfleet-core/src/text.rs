//! Making text that came from elsewhere safe to show.
//!
//! A remote host, an initrd or a secret provider decides what its messages
//! contain. Printed as they are, control characters in them are instructions
//! to the terminal: `ESC[2K ESC[1G` erases the line zfleet just printed and
//! writes over it, `\r` does the same without an escape, a bidi override
//! reorders what follows. Everything that shows such text — tables, errors,
//! logs, the state database — passes it through [`escape_controls`] (or
//! [`one_line`]) first, so that the characters are shown rather than obeyed.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters a terminal acts on rather than shows: C0 controls (tab and
/// newline included), DEL, C1 controls, and the invisible formatting
/// characters that reorder or hide text (bidi embeddings, overrides and
/// isolates, zero-width characters, the BOM).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}')
}

/// `s` with every control and invisible formatting character written out as an
/// escape: `\n`, `\r`, `\t`, `\x1b` (other C0 controls and DEL), `\u{202e}`
/// (anything else). Everything else is left alone, so ordinary text reads as
/// it came; a `\` is not doubled, so an escape cannot be told from the same
/// characters typed, which costs nothing for reading a message.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape_controls`], but line breaks stay: for multi-line messages (an
/// error with a snippet of the fleet file) printed on their own.
pub fn escape_controls_keep_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.split('\n')
            .map(escape_controls)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// One line for a table cell or a database field: the lines of `s` (ssh's
/// messages may span several), trimmed and joined with a space, then escaped.
pub fn one_line(s: &str) -> String {
    let joined = s
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    escape_controls(&joined).into_owned()
}

/// At most `max` characters of `s` (at least one), the last of them `…` when
/// `s` is longer.
pub fn bounded(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().nth(max).is_none() {
        return Cow::Borrowed(s);
    }
    let cut = s
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(s.len(), |(i, _)| i);
    Cow::Owned(format!("{}…", &s[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("plain text: ünïcode, tabs aside", "plain text: ünïcode, tabs aside")]
    #[case("\u{1b}[2K\u{1b}[1Gbravo  unlocked", "\\x1b[2K\\x1b[1Gbravo  unlocked")]
    #[case("fake\rline", "fake\\rline")]
    #[case("two\nlines\tand a tab", "two\\nlines\\tand a tab")]
    #[case("nul \0 del \u{7f} bell \u{7}", "nul \\x00 del \\x7f bell \\x07")]
    #[case("c1 \u{9b}2K csi", "c1 \\u{9b}2K csi")]
    #[case("rtl \u{202e}dekcolnu", "rtl \\u{202e}dekcolnu")]
    #[case("zero\u{200b}width \u{feff}bom", "zero\\u{200b}width \\u{feff}bom")]
    #[case("a \\x1b typed", "a \\x1b typed")]
    fn escapes(#[case] input: &str, #[case] want: &str) {
        assert_eq!(escape_controls(input), want);
        // Escaping what was escaped changes nothing: callers may do it twice.
        assert_eq!(escape_controls(want), want);
    }

    #[test]
    fn lines() {
        assert_eq!(
            one_line("Warning: x\r\n  host key changed \u{1b}[31m\n\n"),
            "Warning: x host key changed \\x1b[31m"
        );
        assert_eq!(
            escape_controls_keep_lines("a\u{1b}\n  b\r"),
            "a\\x1b\n  b\\r"
        );
        assert!(matches!(escape_controls("ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn bounds() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcd", 3), "ab…");
        assert_eq!(bounded("äöüß", 2), "ä…");
        assert_eq!(bounded("", 0), "");
    }
}
