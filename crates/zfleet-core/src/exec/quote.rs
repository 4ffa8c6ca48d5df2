//! The one function that turns argument words into a remote shell command line.
//!
//! OpenSSH hands the remote side a single string that the user's login shell
//! parses, so every word is quoted for a POSIX shell (sh, dash, bash, zsh, ksh).
//! A word that cannot survive that trip — one containing a NUL byte — is refused.
//! Words made only of safe characters are left bare, so the common case (zfs
//! with dataset names) reads the same in logs as typed by hand.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument {index} ({shown}) contains a NUL byte, which no remote shell can receive")]
pub struct QuoteError {
    pub index: usize,
    pub shown: String,
}

/// Characters no POSIX shell treats specially anywhere in a word. `=` is left
/// out of the first word, where `a=b` would be an assignment.
fn bare(index: usize, w: &str) -> bool {
    !w.is_empty()
        && w.char_indices().all(|(i, c)| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | '.' | '/' | ':' | ',' | '@' | '%' | '+')
                || (c == '=' && index > 0)
                // `#` starts a comment only at the start of a word.
                || (c == '#' && i > 0)
        })
}

fn quote_word(index: usize, w: &str) -> Result<std::borrow::Cow<'_, str>, QuoteError> {
    if bare(index, w) {
        return Ok(w.into());
    }
    shlex::try_quote(w).map_err(|_| QuoteError {
        index,
        shown: w.escape_debug().to_string(),
    })
}

/// Quotes each word so the remote shell sees exactly these words.
pub fn remote_command_line<'a>(
    words: impl IntoIterator<Item = &'a str>,
) -> Result<String, QuoteError> {
    let mut out = String::new();
    for (index, w) in words.into_iter().enumerate() {
        let q = quote_word(index, w)?;
        if index > 0 {
            out.push(' ');
        }
        out.push_str(&q);
    }
    Ok(out)
}

/// Like [`remote_command_line`] but never fails: for error messages and logs.
pub fn display_line<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words
        .into_iter()
        .enumerate()
        .map(|(i, w)| match quote_word(i, w) {
            Ok(q) => q.into_owned(),
            Err(_) => format!("{:?}", w),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tricky word survives a real local shell unchanged. The lab tests do
    /// the same through sshd and the remote login shell.
    #[test]
    fn round_trips_through_sh() {
        let words = [
            "plain",
            "with space",
            "it's",
            "\"double\"",
            "$(touch /tmp/zfleet-quote-pwned)",
            "`id`",
            "#comment",
            "pool/fs#bookmark",
            "#comment",
            "pool/fs#bookmark",
            "a;b",
            "a && b",
            "line1\nline2",
            "",
            "~",
            "*",
            "back\\slash",
            "ünïcödé",
            "--flag=x y",
        ];
        for shell in ["sh", "bash", "dash"] {
            if std::process::Command::new(shell)
                .arg("-c")
                .arg("true")
                .status()
                .is_err()
            {
                continue;
            }
            let mut argv = vec!["printf", "%s\\0"];
            argv.extend(words);
            let line = remote_command_line(argv.iter().copied()).unwrap();
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&line)
                .output()
                .unwrap();
            let got: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
            let want: Vec<&[u8]> = words
                .iter()
                .map(|w| w.as_bytes())
                .chain([&b""[..]])
                .collect();
            assert_eq!(got, want, "{shell}: {line}");
        }
        assert!(!std::path::Path::new("/tmp/zfleet-quote-pwned").exists());
    }

    #[test]
    fn nul_is_refused() {
        let e = remote_command_line(["zfs", "list", "a\0b"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "argument 2 (a\\0b) contains a NUL byte, which no remote shell can receive"
        );
    }

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(
            remote_command_line([
                "zfs",
                "list",
                "-H",
                "-o",
                "name,guid",
                "zroot/persistSave@autosnap_2024-01-01_00:00:00_hourly"
            ])
            .unwrap(),
            "zfs list -H -o name,guid zroot/persistSave@autosnap_2024-01-01_00:00:00_hourly"
        );
    }
}
