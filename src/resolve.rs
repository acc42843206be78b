//! From what the user asked for (a dataset preset or a source URL, plus flags or config-file
//! entries) to one [`Source`] and its [`S3Settings`], and from the mount flags
//! ([`MountOptions`], shared by the command line and config files) to a [`MountConfig`].
//! Precedence, highest first:
//! - endpoint: flag/config, preset, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`;
//! - region: flag/config, preset, `AWS_REGION`/`AWS_DEFAULT_REGION`, the profile's `region`;
//! - access: see [`crate::credentials::resolve`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::catalog::{Preset, PresetAccess};
use crate::config::{
    MountConfig, Ownership, S3Settings, Source, WriteSettings, env_nonempty, parse_duration,
    parse_mode, parse_size,
};
use crate::credentials::keys_file::Keys;
use crate::credentials::{self, Access};

/// One source as requested. No `Debug`: `keys` are secrets.
#[derive(Default)]
pub struct SourceRequest {
    pub preset: Option<&'static Preset>,
    /// Used when there is no preset: `s3://...` or `file://...`.
    pub url: Option<String>,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    /// Access chosen by a flag or the config file.
    pub access: Option<Access>,
    /// Keys read from a credentials file (with `access: Some(Access::Keys)`).
    pub keys: Option<Keys>,
}

/// `SOURCE` as given on the command line: a URL, or else a preset name.
pub fn preset_or_url(source: &str) -> Result<(Option<&'static Preset>, Option<String>)> {
    if source.contains("://") {
        Ok((None, Some(source.to_string())))
    } else {
        Ok((Some(crate::catalog::find(source)?), None))
    }
}

pub fn resolve(req: SourceRequest) -> Result<(Source, S3Settings)> {
    let source = match (req.preset, &req.url) {
        (Some(p), _) => Source::S3 {
            bucket: p.bucket.to_string(),
            prefix: p.prefix.to_string(),
        },
        (None, Some(url)) => Source::parse(url)?,
        (None, None) => bail!("no source: name a dataset preset or a URL s3://BUCKET[/PREFIX]"),
    };
    let preset_access = req.preset.map(|p| match p.access {
        PresetAccess::Anonymous => Access::Anonymous,
        PresetAccess::Earthdata(url) => Access::Earthdata(url.to_string()),
    });
    let mut s3 = S3Settings {
        endpoint_url: req
            .endpoint_url
            .filter(|e| !e.is_empty())
            .or_else(|| req.preset.and_then(|p| p.endpoint.map(str::to_string)))
            .or_else(|| env_nonempty("AWS_ENDPOINT_URL")),
        region: req
            .region
            .filter(|r| !r.is_empty())
            .or_else(|| req.preset.map(|p| p.region.to_string()))
            .or_else(|| env_nonempty("AWS_REGION"))
            .or_else(|| env_nonempty("AWS_DEFAULT_REGION")),
        force_path_style: req.force_path_style || req.preset.is_some_and(|p| p.force_path_style),
        ca_bundle: env_nonempty("AWS_CA_BUNDLE").map(PathBuf::from),
        ..Default::default()
    };
    if let Some(c) = req.keys {
        s3.access_key_id = Some(c.access_key_id);
        s3.secret_access_key = Some(c.secret_access_key);
        s3.session_token = c.session_token;
    }
    if matches!(source, Source::S3 { .. }) {
        credentials::apply(credentials::resolve(req.access, preset_access), &mut s3)?;
    }
    if let Some(e) = &s3.endpoint_url
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        bail!("endpoint URL '{e}' must start with https:// (or http:// for a plain-HTTP server)");
    }
    Ok((source, s3))
}

/// The mount flags of `geomount mount` and `geomount demo`; a config file's `[mount]` and
/// `[cache]` sections set the same fields.
#[derive(Debug, Clone, Args)]
pub struct MountOptions {
    /// Stay in the foreground instead of returning once the mount is ready.
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf for non-root).
    #[arg(long)]
    pub allow_other: bool,
    /// Forbid running programs from the mount.
    #[arg(long)]
    pub noexec: bool,
    /// Owner shown for every entry (default: the mounting user).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Group shown for every entry (default: the mounting user's group).
    #[arg(long)]
    pub gid: Option<u32>,
    /// Permission bits of files, octal [default: 0444; 0644 with --read-write].
    #[arg(long)]
    pub file_mode: Option<String>,
    /// Permission bits of directories, octal [default: 0555; 0755 with --read-write].
    #[arg(long)]
    pub dir_mode: Option<String>,
    /// How long listings, attributes and missing names are cached (e.g. 60, 10s, 5m).
    #[arg(long, default_value = "60s")]
    pub metadata_ttl: String,
    /// Memory for everything the daemon keeps, together: cached blocks, prefetch in flight, the
    /// converted views' decoded fields and tiles, read plans, and with --read-write 64MiB for
    /// uploads (e.g. 512MiB, 2GiB).
    #[arg(long, default_value = "512MiB")]
    pub cache_memory: String,
    /// Directory of the persistent block cache, kept across mounts [default:
    /// $XDG_CACHE_HOME/geomount/blocks or ~/.cache/geomount/blocks; for root
    /// /var/cache/geomount/blocks].
    #[arg(long, env = "GEOMOUNT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Disk budget of the persistent block cache (e.g. 10GiB); 0 disables it.
    #[arg(long, default_value = "10GiB")]
    pub cache_disk: String,
    /// Bound on one request including retries; a read past it fails with EIO.
    #[arg(long, default_value = "10s")]
    pub request_timeout: String,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Write logs here (background mounts otherwise log nowhere once ready).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Do not show converted views (NAME.grib2.zarr/, NAME.grib2.cog/) beside GRIB2 files.
    #[arg(long)]
    pub no_convert: bool,
    /// Allow writes: files are staged on local disk and uploaded after their last close
    /// (converted views stay read-only).
    #[arg(long)]
    pub read_write: bool,
    /// With --read-write: quiet time after a file's last close before its upload (0 uploads
    /// in close, whose error close returns).
    #[arg(long, default_value = "2s")]
    pub write_back: String,
    /// With --read-write: refuse to delete what is on the server (unlink of an uploaded file).
    #[arg(long)]
    pub no_delete: bool,
    /// With --read-write: where written files wait for their upload [default: `staging`
    /// beside the block cache directory].
    #[arg(long)]
    pub staging_dir: Option<PathBuf>,
    /// With --read-write: bound on the bytes staged at once; past it writes fail with ENOSPC.
    #[arg(long, default_value = "50GiB")]
    pub staging_max: String,
}

impl MountOptions {
    /// Validates the flags into the configuration of one mount of `source` at `mountpoint`.
    pub fn to_config(
        &self,
        source: Source,
        mountpoint: PathBuf,
        s3: S3Settings,
    ) -> Result<MountConfig> {
        if self.threads == 0 || self.threads > 256 {
            bail!("--threads must be between 1 and 256");
        }
        let cache_memory = parse_size(&self.cache_memory).context("--cache-memory")?;
        if cache_memory < 16 << 20 {
            bail!("--cache-memory must be at least 16MiB");
        }
        if self.read_write && cache_memory < 128 << 20 {
            bail!(
                "--cache-memory must be at least 128MiB with --read-write (64MiB are for uploads)"
            );
        }
        let request_timeout = parse_duration(&self.request_timeout).context("--request-timeout")?;
        let (file_mode, dir_mode) = if self.read_write {
            ("0644", "0755")
        } else {
            ("0444", "0555")
        };
        let writes = self
            .read_write
            .then(|| -> Result<WriteSettings> {
                Ok(WriteSettings {
                    write_back: parse_duration(&self.write_back).context("--write-back")?,
                    no_delete: self.no_delete,
                    staging_dir: self.staging_dir.clone(),
                    staging_max: parse_size(&self.staging_max).context("--staging-max")?,
                })
            })
            .transpose()?;
        if request_timeout < Duration::from_millis(100) {
            bail!("--request-timeout must be at least 100ms");
        }
        Ok(MountConfig {
            source,
            mountpoint,
            s3,
            foreground: self.foreground,
            allow_other: self.allow_other,
            noexec: self.noexec,
            credentials_file: None,
            ownership: Ownership {
                // SAFETY: getuid/getgid cannot fail.
                uid: self.uid.unwrap_or_else(|| unsafe { libc::getuid() }),
                gid: self.gid.unwrap_or_else(|| unsafe { libc::getgid() }),
                file_mode: parse_mode(self.file_mode.as_deref().unwrap_or(file_mode))
                    .context("--file-mode")?,
                dir_mode: parse_mode(self.dir_mode.as_deref().unwrap_or(dir_mode))
                    .context("--dir-mode")?,
            },
            metadata_ttl: parse_duration(&self.metadata_ttl).context("--metadata-ttl")?,
            cache_memory,
            cache_dir: self.cache_dir.clone(),
            cache_disk: parse_size(&self.cache_disk).context("--cache-disk")?,
            request_timeout,
            threads: self.threads,
            convert: !self.no_convert,
            writes,
        })
    }
}

/// The flags' default mount options, for tests.
#[cfg(test)]
pub fn test_mount_options() -> MountOptions {
    use clap::Parser;
    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        o: MountOptions,
    }
    P::parse_from(["geomount"]).o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{PRESETS, find};

    fn preset(name: &str, access: Option<Access>) -> (Source, S3Settings) {
        resolve(SourceRequest {
            preset: Some(find(name).unwrap()),
            access,
            ..Default::default()
        })
        .unwrap()
    }

    fn bucket(s: &Source) -> (&str, &str) {
        match s {
            Source::S3 { bucket, prefix } => (bucket, prefix),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_preset_resolves_to_its_bucket_prefix_endpoint_region_and_signing() {
        // (name, bucket, prefix, endpoint, region, path style, anonymous, earthdata URL)
        let want = [
            (
                "conus404",
                "hytest",
                "conus404/",
                Some("https://usgs.osn.mghpcc.org"),
                "us-east-1",
                true,
                true,
                None,
            ),
            (
                "hrrr",
                "noaa-hrrr-bdp-pds",
                "",
                None,
                "us-east-1",
                false,
                true,
                None,
            ),
            (
                "wrf-cmip6",
                "wrf-cmip6-noversioning",
                "",
                None,
                "us-west-2",
                false,
                true,
                None,
            ),
            ("cresst", "cresst", "", None, "us-west-2", false, true, None),
            (
                "hls",
                "lp-prod-protected",
                "",
                None,
                "us-west-2",
                false,
                false,
                Some("https://data.lpdaac.earthdatacloud.nasa.gov/s3credentials"),
            ),
            (
                "mast",
                "stpubdata",
                "",
                None,
                "us-east-1",
                false,
                true,
                None,
            ),
        ];
        assert_eq!(want.len(), PRESETS.len());
        for (name, b, prefix, endpoint, region, path, anon, earthdata) in want {
            let (src, s3) = preset(name, None);
            assert_eq!(bucket(&src), (b, prefix), "{name}");
            assert_eq!(s3.endpoint_url.as_deref(), endpoint, "{name}");
            assert_eq!(s3.region.as_deref(), Some(region), "{name}");
            assert_eq!(s3.force_path_style, path, "{name}");
            assert_eq!(s3.no_sign_request, anon, "{name}");
            assert_eq!(s3.earthdata_url.as_deref(), earthdata, "{name}");
            assert_eq!(s3.profile, None, "{name}");
        }
    }

    #[test]
    fn flags_override_preset_values() {
        let (src, s3) = resolve(SourceRequest {
            preset: Some(find("hrrr").unwrap()),
            endpoint_url: Some("http://127.0.0.1:9000".into()),
            region: Some("garage".into()),
            force_path_style: true,
            access: Some(Access::Keys),
            keys: Some(Keys {
                access_key_id: "AK".into(),
                secret_access_key: "SK".into(),
                session_token: None,
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(bucket(&src), ("noaa-hrrr-bdp-pds", ""));
        assert_eq!(s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region.as_deref(), Some("garage"));
        assert!(s3.force_path_style && !s3.no_sign_request);
        assert_eq!(s3.access_key_id.as_deref(), Some("AK"));
        let (_, s3) = preset("hls", Some(Access::Anonymous));
        assert!(s3.no_sign_request && s3.earthdata_url.is_none());
        let (_, s3) = preset(
            "hls",
            Some(Access::Earthdata("http://127.0.0.1:1/c".into())),
        );
        assert_eq!(s3.earthdata_url.as_deref(), Some("http://127.0.0.1:1/c"));
    }

    #[test]
    fn a_bad_endpoint_is_refused_and_unknown_presets_listed() {
        let err = resolve(SourceRequest {
            preset: Some(find("mast").unwrap()),
            endpoint_url: Some("s3.example.org".into()),
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("must start with https://"), "{err}");
        let err = preset_or_url("hrr").err().unwrap().to_string();
        assert!(
            err.contains("conus404, hrrr, wrf-cmip6, cresst, hls, mast"),
            "{err}"
        );
        assert_eq!(
            preset_or_url("s3://b/p").unwrap().1.as_deref(),
            Some("s3://b/p")
        );
    }
}
