//! Text that came from a user or a remote host, made safe to show on a
//! terminal: control characters (newlines, ESC sequences, bidi overrides) are
//! written as escapes, so a value cannot forge output lines or recolour and
//! retitle the terminal. An initrd that prints `ESC[2K ESC[1G … unlocked`
//! would otherwise repaint zfleet's table; what it said is shown as
//! `\u{1b}[2K\u{1b}[1G … unlocked`.

use std::borrow::Cow;

/// Characters that change how a terminal shows what follows them, or that
/// hide text: controls, bidi marks, embeddings, overrides and isolates,
/// zero-width characters, line and paragraph separators, the BOM.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` with every control character escaped (`\n`, `\u{1b}`); borrowed when
/// nothing needed escaping.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`printable`], but keeps line breaks: for multi-line text such as a
/// remote program's stderr.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && unsafe_char(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\n' && unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line for a table cell or a database field: the lines of `s` (ssh's
/// messages may span several), trimmed and joined with a space, then
/// [`printable`].
pub fn one_line(s: &str) -> String {
    let joined = s
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    printable(&joined).into_owned()
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

/// One character as a "this is not allowed" message shows it: printable
/// ASCII as itself in backticks, anything else by name or code point, so a
/// no-break space does not look like a space.
pub fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        '\n' => "a newline".to_string(),
        '\t' => "a tab".to_string(),
        '\0' => "a NUL byte".to_string(),
        '`' => "a backtick".to_string(),
        c if c.is_ascii_control() => format!("control character {:#04x}", c as u32),
        c if c.is_ascii() => format!("`{c}`"),
        c if unsafe_char(c) => format!("U+{:04X}", c as u32),
        c => format!("U+{:04X} (`{c}`)", c as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(printable("plain/name"), "plain/name");
        assert_eq!(printable("a\nb\u{1b}[2Jc"), "a\\nb\\u{1b}[2Jc");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable_lines("one\ntwo\u{7}"), "one\ntwo\\u{7}");
    }

    /// What an initrd or a provider may print to repaint or hide a line.
    #[test]
    fn terminal_tricks_are_shown_not_obeyed() {
        for (input, want) in [
            (
                "\u{1b}[2K\u{1b}[1Gbravo  unlocked",
                "\\u{1b}[2K\\u{1b}[1Gbravo  unlocked",
            ),
            ("fake\rline", "fake\\rline"),
            (
                "c1 \u{9b}2K csi, del \u{7f}",
                "c1 \\u{9b}2K csi, del \\u{7f}",
            ),
            (
                "zero\u{200b}width \u{feff}bom \u{2028}ls",
                "zero\\u{200b}width \\u{feff}bom \\u{2028}ls",
            ),
            (
                "plain: ünïcode 'quoted' \\ kept",
                "plain: ünïcode 'quoted' \\ kept",
            ),
        ] {
            assert_eq!(printable(input), want);
            // Escaping twice changes nothing: callers may do it on the way out.
            assert_eq!(printable(want), want);
        }
        assert_eq!(
            one_line("Warning: x\r\n  host key changed \u{1b}[31m\n\n"),
            "Warning: x host key changed \\u{1b}[31m"
        );
    }

    #[test]
    fn bounds() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcd", 3), "ab…");
        assert_eq!(bounded("äöüß", 2), "ä…");
        assert_eq!(bounded("", 0), "");
    }

    #[test]
    fn characters_by_code_point() {
        assert_eq!(describe_char('\u{a0}'), "U+00A0 (`\u{a0}`)");
        assert_eq!(describe_char('\u{202e}'), "U+202E");
        assert_eq!(describe_char('\u{1b}'), "control character 0x1b");
        assert_eq!(describe_char(';'), "`;`");
        assert_eq!(describe_char('é'), "U+00E9 (`é`)");
    }
}
