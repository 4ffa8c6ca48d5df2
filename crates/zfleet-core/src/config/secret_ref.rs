//! Where a secret comes from. Only the reference lives in `fleet.toml`; the
//! secret itself is fetched when needed and never written anywhere.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `op://vault/item/field`, read with `op read`.
    OnePassword(String),
    /// `pass:name/in/store`, read with `pass show`.
    Pass(String),
    /// `file:/path`: the file's content (one trailing newline removed).
    File(PathBuf),
    /// `env:NAME`: an environment variable of the zfleet process.
    Env(String),
    /// `cmd:program args…`: a command's standard output, split like a shell
    /// would but never run through one.
    Command(Vec<String>),
}

pub const SECRET_FORMS: &str =
    "`op://vault/item/field`, `pass:NAME`, `file:/PATH`, `env:NAME` or `cmd:PROGRAM ARGS`";

impl SecretRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("op://") {
            if rest.split('/').filter(|p| !p.is_empty()).count() < 3 {
                return Err(format!(
                    "`{s}` is not a 1Password reference: expected `op://vault/item/field`"
                ));
            }
            return Ok(SecretRef::OnePassword(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("pass:") {
            if rest.is_empty() {
                return Err("`pass:` needs an entry name, as in `pass:hosts/alpha`".into());
            }
            // `pass show -x` would read the name as an option.
            if rest.starts_with('-') {
                return Err(format!("`{s}`: a pass entry name may not start with `-`"));
            }
            return Ok(SecretRef::Pass(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("file:") {
            if !rest.starts_with('/') {
                return Err(format!("`{s}`: a secret file must be an absolute path"));
            }
            return Ok(SecretRef::File(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("env:") {
            if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{s}`: expected `env:NAME` with a variable name"));
            }
            return Ok(SecretRef::Env(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("cmd:") {
            let words = shlex::split(rest)
                .filter(|w| !w.is_empty())
                .ok_or_else(|| format!("`{s}`: the command has unbalanced quotes"))?;
            if words.is_empty() {
                return Err("`cmd:` needs a command".into());
            }
            return Ok(SecretRef::Command(words));
        }
        Err(format!(
            "`{s}` is not a secret reference; expected {SECRET_FORMS}"
        ))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::OnePassword(r) => f.write_str(r),
            SecretRef::Pass(n) => write!(f, "pass:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::Command(w) => write!(
                f,
                "cmd:{}",
                crate::exec::quote::display_line(w.iter().map(String::as_str))
            ),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            SecretRef::parse("op://nix/alpha/encryption").unwrap(),
            SecretRef::OnePassword("op://nix/alpha/encryption".into())
        );
        assert_eq!(
            SecretRef::parse("pass:hosts/alpha").unwrap(),
            SecretRef::Pass("hosts/alpha".into())
        );
        assert_eq!(
            SecretRef::parse("file:/etc/zfleet/alpha.key").unwrap(),
            SecretRef::File("/etc/zfleet/alpha.key".into())
        );
        assert_eq!(
            SecretRef::parse("env:ALPHA_KEY").unwrap(),
            SecretRef::Env("ALPHA_KEY".into())
        );
        assert_eq!(
            SecretRef::parse("cmd:secret-tool lookup host 'alpha beta'").unwrap(),
            SecretRef::Command(vec![
                "secret-tool".into(),
                "lookup".into(),
                "host".into(),
                "alpha beta".into()
            ])
        );
        assert_eq!(SecretRef::parse("hunter2").unwrap_err(), "`hunter2` is not a secret reference; expected `op://vault/item/field`, `pass:NAME`, `file:/PATH`, `env:NAME` or `cmd:PROGRAM ARGS`");
        assert!(SecretRef::parse("op://nix/alpha").is_err());
        assert_eq!(
            SecretRef::parse("pass:--clip").unwrap_err(),
            "`pass:--clip`: a pass entry name may not start with `-`"
        );
        assert!(SecretRef::parse("file:relative").is_err());
        assert!(SecretRef::parse("cmd:'unbalanced").is_err());
    }
}
