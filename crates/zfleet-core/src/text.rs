//! Text that came from a user or a remote host, made safe to show on a
//! terminal: control characters (newlines, ESC sequences, bidi overrides) are
//! written as escapes, so a value cannot forge output lines or recolour and
//! retitle the terminal.

use std::borrow::Cow;

/// Characters that change how a terminal shows what follows them.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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

    #[test]
    fn characters_by_code_point() {
        assert_eq!(describe_char('\u{a0}'), "U+00A0 (`\u{a0}`)");
        assert_eq!(describe_char('\u{202e}'), "U+202E");
        assert_eq!(describe_char('\u{1b}'), "control character 0x1b");
        assert_eq!(describe_char(';'), "`;`");
        assert_eq!(describe_char('é'), "U+00E9 (`é`)");
    }
}
