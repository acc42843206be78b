//! `~/.netrc` lookup (machine, login, password), as curl and NASA's Earthdata tools read it.
//! Hand-written: the `netrc` crates on crates.io are unmaintained (last releases years ago) and
//! the format needs only a tokenizer; `macdef` bodies are skipped.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// A login for one machine. `Debug` shows the login, never the password.
pub struct Login {
    pub login: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("login", &self.login)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `$NETRC`, else `~/.netrc`.
pub fn default_path() -> PathBuf {
    match std::env::var_os("NETRC").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".netrc"),
    }
}

/// The login for `host` from the netrc file at `path` (falling back to a `default` entry);
/// `None` if the file does not exist or names no such machine.
pub fn lookup(path: &std::path::Path, host: &str) -> Result<Option<Login>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(parse(&text, host))
}

pub fn parse(text: &str, host: &str) -> Option<Login> {
    let mut found: Option<Login> = None;
    let mut default: Option<Login> = None;
    // (is this entry the wanted one, is it `default`), login, password of the entry being read.
    let mut entry: Option<(bool, bool)> = None;
    let (mut login, mut password) = (String::new(), String::new());
    let mut finish = |entry: Option<(bool, bool)>, login: &mut String, password: &mut String| {
        let l = Login {
            login: std::mem::take(login),
            password: std::mem::take(password),
        };
        match entry {
            Some((true, _)) if found.is_none() => found = Some(l),
            Some((_, true)) => default = Some(l),
            _ => {}
        }
    };
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut tokens = line.split_whitespace();
        while let Some(tok) = tokens.next() {
            match tok {
                "machine" => {
                    finish(entry, &mut login, &mut password);
                    entry = Some((tokens.next() == Some(host), false));
                }
                "default" => {
                    finish(entry, &mut login, &mut password);
                    entry = Some((false, true));
                }
                "login" => login = tokens.next().unwrap_or_default().to_string(),
                "password" => password = tokens.next().unwrap_or_default().to_string(),
                "account" => {
                    tokens.next();
                }
                "macdef" => {
                    // The macro body runs to the next empty line.
                    finish(entry, &mut login, &mut password);
                    entry = None;
                    for l in lines.by_ref() {
                        if l.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                t if t.starts_with('#') => break,
                _ => {}
            }
        }
    }
    finish(entry, &mut login, &mut password);
    found.or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_machine_on_one_line_or_several() {
        let text = "# logins\nmachine other login a password b\nmachine urs.earthdata.nasa.gov\n  login me\n  password s3cret\n";
        let l = parse(text, "urs.earthdata.nasa.gov").unwrap();
        assert_eq!((l.login.as_str(), l.password.as_str()), ("me", "s3cret"));
        let l = parse(text, "other").unwrap();
        assert_eq!((l.login.as_str(), l.password.as_str()), ("a", "b"));
        assert!(parse(text, "nowhere").is_none());
    }

    #[test]
    fn login_debug_hides_the_password() {
        let l = parse("machine h login me password pw9q\n", "h").unwrap();
        let shown = format!("{l:?} {l:#?}");
        assert!(shown.contains("me") && !shown.contains("pw9q"), "{shown}");
    }

    #[test]
    fn default_entry_and_macros() {
        let text = "macdef init\ncd /\nmachine evil login x password y\n\nmachine h login u password p\ndefault login d password q\n";
        assert_eq!(parse(text, "h").unwrap().login, "u");
        assert_eq!(parse(text, "elsewhere").unwrap().login, "d");
        // Inside a macro body nothing counts as an entry.
        assert_eq!(parse(text, "evil").unwrap().login, "d");
    }
}
