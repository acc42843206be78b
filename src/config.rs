//! Validated mount configuration. The front ends (`resolve`, `config_file`) turn raw arguments
//! into a [`MountConfig`] in one step; everything after that trusts these values.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Largest read the kernel may send in one request (the mount's `max_read` and readahead; also
/// the prefetch unit for small files).
pub const MAX_READ: u32 = 1 << 20;

/// The value of environment variable `name`, unless unset or empty (which mean the same here).
pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where the objects come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `s3://bucket[/prefix]`; `prefix` is empty or ends with `/`.
    S3 { bucket: String, prefix: String },
    /// `file:///abs/path`: object_store's local store, same code path as S3.
    Local { root: PathBuf },
    /// Several sources under one tree (a config file's `[sources.NAME]`): each is a top-level
    /// directory named after it, with its own settings and credentials.
    Tree(Vec<TreeSource>),
}

/// One top-level directory of a [`Source::Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSource {
    /// A valid file name.
    pub name: String,
    /// `S3` or `Local`, never another tree.
    pub source: Source,
    pub s3: S3Settings,
}

impl Source {
    pub fn parse(s: &str) -> Result<Source> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("source '{s}' has no bucket name: use s3://BUCKET[/PREFIX]");
            }
            let prefix = prefix.trim_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            return Ok(Source::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(rest) = s.strip_prefix("file://") {
            let root = PathBuf::from(rest);
            if !root.is_absolute() {
                bail!("source '{s}' must be an absolute path: use file:///ABS/PATH");
            }
            return Ok(Source::Local { root });
        }
        bail!("source '{s}' is not understood: use s3://BUCKET[/PREFIX] or file:///ABS/PATH")
    }

    /// A short name for messages and the mount table.
    pub fn display_name(&self) -> String {
        match self {
            Source::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Source::Local { root } => format!("file://{}", root.display()),
            Source::Tree(sources) => format!(
                "geomount:{}",
                sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// S3 connection settings. Secrets are never printed: `Debug` redacts them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    pub no_sign_request: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    /// Sign with this AWS profile's keys (static, session or `credential_process`).
    pub profile: Option<String>,
    /// Sign with NASA Earthdata temporary keys from this `s3credentials` URL.
    pub earthdata_url: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("no_sign_request", &self.no_sign_request)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_bundle", &self.ca_bundle)
            .field("profile", &self.profile)
            .field("earthdata_url", &self.earthdata_url)
            .finish()
    }
}

/// Ownership and permission bits shown for every entry.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u16,
    pub dir_mode: u16,
}

/// Everything a mount needs, validated.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub source: Source,
    pub mountpoint: PathBuf,
    pub s3: S3Settings,
    pub foreground: bool,
    pub allow_other: bool,
    /// Mount with `noexec`: no program can be run from the mount.
    pub noexec: bool,
    /// Where the S3 keys came from, if a file: SIGHUP reads it again.
    pub credentials_file: Option<PathBuf>,
    pub ownership: Ownership,
    /// TTL of listings, attributes and negative lookups (also given to the kernel).
    pub metadata_ttl: Duration,
    /// Budget of the memory block cache in bytes.
    pub cache_memory: u64,
    /// Directory of the persistent block cache (`None`: the default for the user).
    pub cache_dir: Option<PathBuf>,
    /// Budget of the persistent block cache in bytes; 0 disables it.
    pub cache_disk: u64,
    /// Bound on one request including retries; past it a read fails with EIO.
    pub request_timeout: Duration,
    /// FUSE worker threads.
    pub threads: usize,
    /// Serve converted views of GRIB2 files ([`crate::convert`]).
    pub convert: bool,
    /// Present for a `--read-write` mount.
    pub writes: Option<WriteSettings>,
}

/// How a writable mount stages and uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSettings {
    pub write_back: Duration,
    pub no_delete: bool,
    /// `None`: `staging` beside the block cache directory.
    pub staging_dir: Option<PathBuf>,
    pub staging_max: u64,
}

/// Parses sizes like `512MiB`, `2GiB`, `1.5G`, `4096`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("size '{s}' has no number: use e.g. 512MiB or 2GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        "t" | "tb" => 1000u64.pow(4),
        "tib" => 1 << 40,
        other => bail!("size '{s}' has unknown unit '{other}': use B, KiB, MiB, GiB or TiB"),
    };
    if !n.is_finite() || n < 0.0 {
        bail!("size '{s}' must be a non-negative number");
    }
    Ok((n * mult as f64) as u64)
}

/// Parses a duration in seconds (`30`, `1.5`) or with a unit (`500ms`, `10s`, `5m`, `1h`).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = num.trim().parse().with_context(|| {
        format!("duration '{s}' is not understood: use e.g. 30, 500ms, 10s, 5m")
    })?;
    if !n.is_finite() || n < 0.0 {
        bail!("duration '{s}' must be a non-negative number");
    }
    Duration::try_from_secs_f64(n * mult).map_err(|_| anyhow::anyhow!("duration '{s}' is too long"))
}

/// Parses an octal permission mode such as `0644` or `755`.
pub fn parse_mode(s: &str) -> Result<u16> {
    let m = u16::from_str_radix(s.trim_start_matches("0o"), 8)
        .with_context(|| format!("mode '{s}' is not octal: use e.g. 0644"))?;
    if m > 0o7777 {
        bail!("mode '{s}' is out of range: use at most 7777");
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_settings_debug_shows_no_key() {
        let s = S3Settings {
            access_key_id: Some("AKIDc8w".into()),
            secret_access_key: Some("skc8w".into()),
            session_token: Some("tkc8w".into()),
            region: Some("eu-west-3".into()),
            ..Default::default()
        };
        let shown = format!("{s:?} {s:#?}");
        for v in ["AKIDc8w", "skc8w", "tkc8w"] {
            assert!(!shown.contains(v), "{shown}");
        }
        assert!(shown.contains("eu-west-3"), "{shown}");
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            Source::parse("s3://b/some/prefix/").unwrap(),
            Source::S3 {
                bucket: "b".into(),
                prefix: "some/prefix/".into()
            }
        );
        assert_eq!(
            Source::parse("s3://b").unwrap(),
            Source::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert!(Source::parse("s3:///x").is_err());
        assert!(Source::parse("file://relative").is_err());
        assert!(Source::parse("http://x").is_err());
        assert_eq!(
            Source::parse("file:///tmp/x").unwrap(),
            Source::Local {
                root: "/tmp/x".into()
            }
        );
    }

    #[test]
    fn sizes_durations_modes() {
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("GiB").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_mode("0644").unwrap(), 0o644);
        assert!(parse_mode("0999").is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = S3Settings {
            secret_access_key: Some("SUPERSECRET".into()),
            session_token: Some("TOKENVALUE".into()),
            access_key_id: Some("AKIDVALUE".into()),
            ..Default::default()
        };
        let d = format!("{s:?}");
        assert!(
            !d.contains("SUPERSECRET") && !d.contains("TOKENVALUE") && !d.contains("AKIDVALUE")
        );
    }

    /// Found by fuzzing (fuzz target `mount_options`, `metadata_ttl=6077...7s`): a finite
    /// number of seconds past what a `Duration` holds.
    #[test]
    fn durations_too_long_for_a_duration_are_errors() {
        for s in ["1e300s", "6077777777777777777777777777777777777s", "1e17h"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert_eq!(parse_duration("1e3s").unwrap(), Duration::from_secs(1000));
    }
}
