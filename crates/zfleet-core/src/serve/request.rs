//! What arrives in `SSH_ORIGINAL_COMMAND`: split into words the way a POSIX
//! shell would (the server quoted them with `exec::quote`), and into commands
//! at standalone `&&` words — but never run by a shell.

use super::Refusal;

/// Longer than any request zfleet makes (the longest is a chained base move).
pub const MAX_REQUEST: usize = 4096;
const MAX_COMMANDS: usize = crate::protocol::SERVE_MAX_CHAINED;

pub fn parse(raw: &str) -> Result<Vec<Vec<String>>, Refusal> {
    if raw.trim().is_empty() {
        return Err(Refusal::new("no command: interactive sessions are refused"));
    }
    if raw.len() > MAX_REQUEST {
        return Err(Refusal::new(format!(
            "request of {} bytes is longer than {MAX_REQUEST}",
            raw.len()
        )));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(Refusal::new(format!(
            "control character {:?} in the request",
            c
        )));
    }
    let words = shlex::split(raw).ok_or_else(|| Refusal::new("unbalanced quotes"))?;
    let mut commands: Vec<Vec<String>> = vec![Vec::new()];
    for w in words {
        if w == "&&" {
            commands.push(Vec::new());
        } else if let Some(last) = commands.last_mut() {
            last.push(w);
        }
    }
    if commands.iter().any(Vec::is_empty) {
        return Err(Refusal::new("an empty command around `&&`"));
    }
    if commands.len() > MAX_COMMANDS {
        return Err(Refusal::new(format!(
            "more than {MAX_COMMANDS} chained commands"
        )));
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_chains() {
        assert_eq!(
            parse("zfs list -H zroot/a").unwrap(),
            [["zfs", "list", "-H", "zroot/a"]]
        );
        assert_eq!(
            parse("zfs set zfleet:base:vault=1 z/a@s && zfs hold zfleet:base:vault z/a@s").unwrap(),
            vec![
                vec!["zfs", "set", "zfleet:base:vault=1", "z/a@s"],
                vec!["zfs", "hold", "zfleet:base:vault", "z/a@s"]
            ]
        );
        // Quoted words come out whole; what a shell would do with `;` or `$()`
        // never happens, they are just characters in a word.
        assert_eq!(
            parse("zfs list 'a b' \"c;d\" '$(id)'").unwrap(),
            [["zfs", "list", "a b", "c;d", "$(id)"]]
        );
        assert_eq!(parse("zfs list;id").unwrap(), [["zfs", "list;id"]]);
    }

    #[test]
    fn refusals() {
        let msg = |r: &str| parse(r).unwrap_err().reason;
        assert_eq!(msg(""), "no command: interactive sessions are refused");
        assert_eq!(
            msg("zfs list\nid"),
            "control character '\\n' in the request"
        );
        // ssh cannot carry a NUL in a command (argv strings end there), but a
        // request that somehow has one is refused like any control character.
        assert_eq!(
            msg("zfs send zroot/a@s\0; id"),
            "control character '\\0' in the request"
        );
        assert_eq!(
            msg("zfs list\tzroot"),
            "control character '\\t' in the request"
        );
        assert_eq!(msg("zfs list 'open"), "unbalanced quotes");
        assert_eq!(msg("zfs list &&"), "an empty command around `&&`");
        assert!(msg(&format!("zfs list {}", "a".repeat(5000))).starts_with("request of 5009 bytes"));
    }
}
