//! S3 keys from a `--credentials-file` (or a config file's `credentials-file`): `NAME=value`
//! lines in a file other users cannot read. Reread on SIGHUP to rotate keys in place.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// S3 keys read from a `--credentials-file`. `Debug` shows none of the values.
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &"<set>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Reads a credentials file after checking that other users cannot read it.
pub fn read(path: &Path) -> Result<Keys> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read credentials file {shown}"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o004 != 0 {
        bail!(
            "credentials file {shown} is readable by every user (mode {mode:04o}): run `chmod 600 {shown}`"
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read credentials file {shown}"))?;
    parse(&text).with_context(|| format!("credentials file {shown}"))
}

/// Parses `NAME=value` lines like systemd's `EnvironmentFile=`: blank lines and `#`/`;` comments
/// are skipped, `export ` and one pair of surrounding quotes are allowed. Errors name the line and
/// the variable, never a value (nor a name that does not look like one: it may be a pasted secret).
pub fn parse(text: &str) -> Result<Keys> {
    let (mut id, mut secret, mut token) = (None, None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let is_name = |s: &str| {
            !s.is_empty()
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let Some((name, value)) = line.split_once('=').filter(|(n, _)| is_name(n.trim())) else {
            bail!("line {}: expected NAME=value", n + 1);
        };
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(value)
            .to_string();
        let slot = match name.trim() {
            "AWS_ACCESS_KEY_ID" => &mut id,
            "AWS_SECRET_ACCESS_KEY" => &mut secret,
            "AWS_SESSION_TOKEN" => &mut token,
            other => bail!(
                "line {}: unknown name '{other}': use AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN",
                n + 1
            ),
        };
        *slot = Some(value).filter(|v| !v.is_empty());
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Keys {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        _ => bail!("needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_files_parse_like_environment_files() {
        let c = parse(
            "# keys for the lab\n\nAWS_ACCESS_KEY_ID=AKID\nexport AWS_SECRET_ACCESS_KEY=\"s3cr=t\"\n; note\nAWS_SESSION_TOKEN='tok'\n",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.secret_access_key, "s3cr=t");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        let c = parse("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b").unwrap();
        assert!(c.session_token.is_none());
    }

    #[test]
    fn credentials_file_errors_name_the_line_never_the_value() {
        let e = |t: &str| match parse(t) {
            Ok(_) => panic!("{t:?} parsed"),
            Err(e) => format!("{e:#}"),
        };
        let msg = e("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_KEY=hunter2\n");
        assert!(
            msg.contains("line 2") && msg.contains("AWS_SECRET_KEY"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(e("AWS_ACCESS_KEY_ID hunter2").contains("line 1"));
        let msg = e("AWS_ACCESS_KEY_ID=a\nFQoGZXIvYXdzE+/token==\n");
        assert!(msg.contains("line 2") && !msg.contains("FQoG"), "{msg}");
        assert!(e("AWS_ACCESS_KEY_ID=a").contains("needs both"));
        assert!(e("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=").contains("needs both"));
    }

    #[test]
    fn keys_debug_shows_no_value() {
        let k = parse(
            "AWS_ACCESS_KEY_ID=AKIDkf7\nAWS_SECRET_ACCESS_KEY=sk7x\nAWS_SESSION_TOKEN=tk7y\n",
        )
        .unwrap();
        let shown = format!("{k:?} {k:#?}");
        for s in ["AKIDkf7", "sk7x", "tk7y"] {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(shown.contains("session_token: Some("), "{shown}");
    }

    #[test]
    fn a_world_readable_credentials_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.env");
        std::fs::write(&p, "AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let msg = format!("{:#}", read(&p).err().unwrap());
        assert!(msg.contains("chmod 600"), "{msg}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&p).unwrap().access_key_id, "a");
    }
}
