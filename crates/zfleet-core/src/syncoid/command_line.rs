//! Finding syncoid's arguments in a line that runs it: a cron command, a
//! systemd `ExecStart=`, a line of a shell script. The words are split as a
//! POSIX shell splits them; what comes before the program (`sudo`, `nice
//! -n 10`, `FOO=bar`) and after its arguments (`>> log 2>&1`, `&& curl …`) is
//! kept apart, so the arguments are exactly what syncoid would see.

/// A line that runs syncoid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The program word as written (`/usr/sbin/syncoid`).
    pub program: String,
    /// syncoid's arguments.
    pub args: Vec<String>,
    /// Words before the program (a wrapper, environment assignments).
    pub before: Vec<String>,
    /// What follows the arguments: redirections and further commands.
    pub after: Vec<String>,
    /// A word holds `$`: a shell or systemd would have expanded it, so the
    /// arguments may not be what ran.
    pub expands_variables: bool,
}

/// Whether `word` names the syncoid program (any directory).
pub fn is_syncoid_program(word: &str) -> bool {
    word.rsplit('/').next() == Some("syncoid")
}

/// Splits `line` like a shell and finds syncoid in it. `Ok(None)`: the line
/// does not run syncoid. A `sh -c '…'` (or `bash -c`) word is looked into.
pub fn find(line: &str) -> Result<Option<Found>, String> {
    if !line.contains("syncoid") {
        return Ok(None);
    }
    let words = shlex::split(line).ok_or_else(|| "unbalanced quotes".to_string())?;
    find_in_words(&words)
}

fn find_in_words(words: &[String]) -> Result<Option<Found>, String> {
    let Some(at) = words.iter().position(|w| is_syncoid_program(w)) else {
        // `sh -c 'syncoid … >> /var/log/x'`: the script is one word.
        for w in words {
            if w.contains(char::is_whitespace) && w.contains("syncoid") {
                if let Some(found) = find(w)? {
                    return Ok(Some(found));
                }
            }
        }
        return Ok(None);
    };
    let mut args = Vec::new();
    let mut after = Vec::new();
    let mut rest = words[at + 1..].iter();
    for w in rest.by_ref() {
        if is_shell_operator(w) {
            after.push(w.clone());
            break;
        }
        if let Some(stripped) = w.strip_suffix(';') {
            if !stripped.is_empty() {
                args.push(stripped.to_string());
            }
            after.push(";".into());
            break;
        }
        args.push(w.clone());
    }
    after.extend(rest.cloned());
    let expands_variables = words[..at]
        .iter()
        .chain(&args)
        .any(|w| w.contains('$') || w.contains('`'));
    Ok(Some(Found {
        program: words[at].clone(),
        args,
        before: words[..at].to_vec(),
        after,
        expands_variables,
    }))
}

/// `;`, `&&`, `||`, `|`, `&`, and redirections (`>x`, `>>`, `2>&1`, `<`).
fn is_shell_operator(w: &str) -> bool {
    if matches!(w, ";" | "&&" | "||" | "|" | "&" | "|&") {
        return true;
    }
    let digits = w.trim_start_matches(|c: char| c.is_ascii_digit());
    digits.starts_with('>') || digits.starts_with('<') || w.starts_with("&>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("syncoid a/b c/d", &["a/b", "c/d"], &[], &[])]
    #[case::path_and_redirect(
        "/usr/sbin/syncoid -r tank/x root@h:bk/x >> /var/log/syncoid.log 2>&1",
        &["-r", "tank/x", "root@h:bk/x"], &[], &[">>", "/var/log/syncoid.log", "2>&1"]
    )]
    #[case::wrapper_and_chain(
        "flock -n /run/s.lock nice -n 10 syncoid --quiet a/b c/d && curl -fsS https://hc/x",
        &["--quiet", "a/b", "c/d"], &["flock", "-n", "/run/s.lock", "nice", "-n", "10"], &["&&", "curl", "-fsS", "https://hc/x"]
    )]
    #[case::quoted_empty("syncoid --sendoptions '' --recvoptions c a/b c/d", &["--sendoptions", "", "--recvoptions", "c", "a/b", "c/d"], &[], &[])]
    #[case::semicolon_glued("syncoid a/b c/d; echo done", &["a/b", "c/d"], &[], &[";", "echo", "done"])]
    #[case::sh_c("/bin/sh -c 'syncoid a/b c/d > /dev/null'", &["a/b", "c/d"], &[], &[">", "/dev/null"])]
    fn finds_the_arguments(
        #[case] line: &str,
        #[case] args: &[&str],
        #[case] before: &[&str],
        #[case] after: &[&str],
    ) {
        let f = find(line).unwrap().unwrap();
        assert_eq!(f.args, args);
        assert_eq!(f.before, before);
        assert_eq!(f.after, after);
        assert!(!f.expands_variables);
    }

    #[test]
    fn lines_without_syncoid_and_broken_quotes() {
        assert_eq!(find("sanoid --cron").unwrap(), None);
        assert_eq!(find("echo syncoid-is-nice").unwrap(), None);
        assert!(find("syncoid 'a/b c/d").is_err());
    }

    #[test]
    fn variables_are_noticed() {
        let f = find("syncoid $OPTS a/b c/d").unwrap().unwrap();
        assert!(f.expands_variables);
    }
}
