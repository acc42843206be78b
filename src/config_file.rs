//! The TOML config file of `geomount mount --config FILE MOUNTPOINT`: several sources under one
//! tree (`[sources.NAME]`), plus `[mount]` and `[cache]` settings. See
//! `packaging/etc/geomount.toml` for a documented example. Every error names the file, the line
//! and the key: serde with `deny_unknown_fields` finds unknown keys and wrong types, and values
//! are kept `Spanned` so that checks after parsing can point at their line too.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use toml::Spanned;

use crate::config::{TreeSource, parse_duration, parse_mode, parse_size};
use crate::credentials::{Access, keys_file};
use crate::resolve::{MountOptions, SourceRequest, resolve};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileToml {
    #[serde(default)]
    mount: MountToml,
    #[serde(default)]
    cache: CacheToml,
    sources: Spanned<BTreeMap<String, Spanned<SourceToml>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MountToml {
    uid: Option<u32>,
    gid: Option<u32>,
    file_mode: Option<Spanned<String>>,
    dir_mode: Option<Spanned<String>>,
    metadata_ttl: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    threads: Option<Spanned<usize>>,
    allow_other: Option<bool>,
    noexec: Option<bool>,
    read_write: Option<bool>,
    write_back: Option<Spanned<String>>,
    no_delete: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CacheToml {
    memory: Option<Spanned<String>>,
    dir: Option<PathBuf>,
    disk: Option<Spanned<String>>,
    staging_dir: Option<PathBuf>,
    staging_max: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum AccessToml {
    Anonymous,
    Keys,
    Profile,
    Earthdata,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SourceToml {
    preset: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    region: Option<String>,
    #[serde(default)]
    force_path_style: bool,
    access: Option<Spanned<AccessToml>>,
    profile: Option<String>,
    credentials_file: Option<PathBuf>,
    earthdata_url: Option<String>,
}

/// A parsed, validated config file.
pub struct ConfigFile {
    pub sources: Vec<TreeSource>,
    mount: MountToml,
    cache: CacheToml,
}

/// Line (1-based) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&text).map_err(|e| anyhow!("config file {}: {e:#}", path.display()))
}

/// An error at `span`: `line N: KEY: MESSAGE`.
fn at(text: &str, span: Range<usize>, key: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("line {}: {key}: {msg}", line_of(text, span.start))
}

/// serde's message with the line, and the key of that line when the message does not name it.
fn toml_error(text: &str, e: &toml::de::Error) -> anyhow::Error {
    let msg = e.message().trim();
    let Some(span) = e.span() else {
        return anyhow!("{msg}");
    };
    let line_no = line_of(text, span.start);
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    match line.split_once('=') {
        Some((key, _)) if !msg.contains('`') => {
            anyhow!("line {line_no}: {}: {msg}", key.trim())
        }
        _ => anyhow!("line {line_no}: {msg}"),
    }
}

fn check<T>(
    text: &str,
    v: &Option<Spanned<String>>,
    key: &str,
    f: impl Fn(&str) -> Result<T>,
) -> Result<()> {
    if let Some(v) = v {
        f(v.get_ref()).map_err(|e| at(text, v.span(), key, format!("{e:#}")))?;
    }
    Ok(())
}

pub fn parse(text: &str) -> Result<ConfigFile> {
    let file: FileToml = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let m = &file.mount;
    check(text, &m.file_mode, "mount.file-mode", parse_mode)?;
    check(text, &m.dir_mode, "mount.dir-mode", parse_mode)?;
    check(text, &m.metadata_ttl, "mount.metadata-ttl", parse_duration)?;
    check(
        text,
        &m.request_timeout,
        "mount.request-timeout",
        parse_duration,
    )?;
    if let Some(t) = &m.threads
        && !(1..=256).contains(t.get_ref())
    {
        return Err(at(
            text,
            t.span(),
            "mount.threads",
            "must be between 1 and 256",
        ));
    }
    check(text, &file.cache.memory, "cache.memory", parse_size)?;
    check(text, &file.cache.disk, "cache.disk", parse_size)?;

    let (span, table) = (file.sources.span(), file.sources.into_inner());
    if table.is_empty() {
        return Err(at(
            text,
            span,
            "sources",
            "no source: add a [sources.NAME] section",
        ));
    }
    let mut sources = Vec::new();
    for (name, s) in table {
        let span = s.span();
        let key = format!("sources.{name}");
        if !crate::store::valid_name(&name) || name.starts_with('.') {
            return Err(at(
                text,
                span,
                &key,
                "the name must be a plain directory name",
            ));
        }
        let (source, s3) = source(text, &key, s.into_inner())
            .map_err(|e| at(text, span.clone(), &key, format!("{e:#}")))?;
        sources.push(TreeSource { name, source, s3 });
    }
    Ok(ConfigFile {
        sources,
        mount: file.mount,
        cache: file.cache,
    })
}

/// Resolves one `[sources.NAME]`; errors about one value name its own line.
fn source(
    text: &str,
    key: &str,
    s: SourceToml,
) -> Result<(crate::config::Source, crate::config::S3Settings)> {
    let preset = match &s.preset {
        Some(p) => Some(
            crate::catalog::find(p.get_ref())
                .map_err(|e| at(text, p.span(), &format!("{key}.preset"), e))?,
        ),
        None => None,
    };
    match (&s.preset, &s.url) {
        (Some(_), Some(u)) => {
            return Err(at(
                text,
                u.span(),
                &format!("{key}.url"),
                "give either preset or url, not both",
            ));
        }
        (None, None) => bail!("give `preset = \"NAME\"` or `url = \"s3://BUCKET/PREFIX\"`"),
        _ => {}
    }
    // Without `access`, a profile or credentials file or Earthdata URL given implies it.
    let mode = s
        .access
        .as_ref()
        .map(|a| *a.get_ref())
        .or(if s.profile.is_some() {
            Some(AccessToml::Profile)
        } else if s.credentials_file.is_some() {
            Some(AccessToml::Keys)
        } else if s.earthdata_url.is_some() {
            Some(AccessToml::Earthdata)
        } else {
            None
        });
    let access_span = s.access.as_ref().map(|a| a.span());
    let need = |what: &str| match &access_span {
        Some(sp) => at(text, sp.clone(), &format!("{key}.access"), what),
        None => anyhow!("{what}"),
    };
    let access = match mode {
        None => None,
        Some(AccessToml::Anonymous) => Some(Access::Anonymous),
        Some(AccessToml::Keys) => Some(Access::Keys),
        Some(AccessToml::Profile) => Some(Access::Profile(
            s.profile
                .clone()
                .ok_or_else(|| need("access = \"profile\" needs `profile = \"NAME\"`"))?,
        )),
        Some(AccessToml::Earthdata) => Some(Access::Earthdata(
            s.earthdata_url
                .clone()
                .or_else(|| match preset.map(|p| p.access) {
                    Some(crate::catalog::PresetAccess::Earthdata(u)) => Some(u.to_string()),
                    _ => None,
                })
                .ok_or_else(|| {
                    need("access = \"earthdata\" needs `earthdata-url = \"https://.../s3credentials\"`")
                })?,
        )),
    };
    let keys = match &s.credentials_file {
        Some(p) => Some(keys_file::read(p)?),
        None => None,
    };
    let endpoint = s.endpoint.clone();
    resolve(SourceRequest {
        preset,
        url: s.url.map(Spanned::into_inner),
        endpoint_url: s.endpoint.map(Spanned::into_inner),
        region: s.region,
        force_path_style: s.force_path_style,
        access,
        keys,
    })
    .map_err(|e| match (&endpoint, format!("{e:#}")) {
        (Some(ep), msg) if msg.contains("endpoint URL") => {
            at(text, ep.span(), &format!("{key}.endpoint"), msg)
        }
        (_, msg) => anyhow!("{msg}"),
    })
}

impl ConfigFile {
    /// The file's `[mount]` and `[cache]` values replace those of `opts`.
    pub fn apply_to(&self, opts: &mut MountOptions) {
        let m = &self.mount;
        let text = |v: &Option<Spanned<String>>, slot: &mut String| {
            if let Some(v) = v {
                *slot = v.get_ref().clone();
            }
        };
        opts.uid = m.uid.or(opts.uid);
        opts.gid = m.gid.or(opts.gid);
        if let Some(v) = &m.file_mode {
            opts.file_mode = Some(v.get_ref().clone());
        }
        if let Some(v) = &m.dir_mode {
            opts.dir_mode = Some(v.get_ref().clone());
        }
        opts.read_write |= m.read_write.unwrap_or(false);
        opts.no_delete |= m.no_delete.unwrap_or(false);
        text(&m.write_back, &mut opts.write_back);
        text(&self.cache.staging_max, &mut opts.staging_max);
        if self.cache.staging_dir.is_some() {
            opts.staging_dir = self.cache.staging_dir.clone();
        }
        text(&m.metadata_ttl, &mut opts.metadata_ttl);
        text(&m.request_timeout, &mut opts.request_timeout);
        if let Some(t) = &m.threads {
            opts.threads = *t.get_ref();
        }
        opts.allow_other |= m.allow_other.unwrap_or(false);
        opts.noexec |= m.noexec.unwrap_or(false);
        text(&self.cache.memory, &mut opts.cache_memory);
        text(&self.cache.disk, &mut opts.cache_disk);
        if self.cache.dir.is_some() {
            opts.cache_dir = self.cache.dir.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("parsed:\n{text}"),
            Err(e) => format!("{e:#}"),
        }
    }

    const GOOD: &str = r#"
[mount]
allow-other = true
uid = 1000
file-mode = "0440"
metadata-ttl = "5m"

[cache]
memory = "1GiB"
dir = "/var/cache/geomount"
disk = "20GiB"

[sources.conus404]
preset = "conus404"

[sources.hrrr]
preset = "hrrr"
endpoint = "http://127.0.0.1:9000"
region = "garage"

[sources.lab]
url = "s3://bucket/some/prefix"
endpoint = "https://s3.example.org"
access = "anonymous"

[sources.hls]
preset = "hls"
earthdata-url = "http://127.0.0.1:1/s3credentials"
"#;

    #[test]
    fn a_full_file_parses_into_a_tree_and_options() {
        let c = parse(GOOD).unwrap();
        let names: Vec<&str> = c.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["conus404", "hls", "hrrr", "lab"]);
        let hrrr = &c.sources[2];
        assert_eq!(
            hrrr.source,
            Source::S3 {
                bucket: "noaa-hrrr-bdp-pds".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            hrrr.s3.endpoint_url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(hrrr.s3.region.as_deref(), Some("garage"));
        assert!(hrrr.s3.no_sign_request);
        let lab = &c.sources[3];
        assert!(lab.s3.no_sign_request);
        assert_eq!(
            lab.source,
            Source::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix/".into()
            }
        );
        assert_eq!(
            c.sources[1].s3.earthdata_url.as_deref(),
            Some("http://127.0.0.1:1/s3credentials")
        );
        let mut opts = crate::resolve::test_mount_options();
        c.apply_to(&mut opts);
        let cfg = opts
            .to_config(Source::Tree(c.sources), "/mnt".into(), Default::default())
            .unwrap();
        assert!(cfg.allow_other);
        assert_eq!(cfg.ownership.uid, 1000);
        assert_eq!(cfg.ownership.file_mode, 0o440);
        assert_eq!(cfg.metadata_ttl.as_secs(), 300);
        assert_eq!(cfg.cache_memory, 1 << 30);
        assert_eq!(cfg.cache_disk, 20 << 30);
        assert_eq!(
            cfg.cache_dir.as_deref(),
            Some(Path::new("/var/cache/geomount"))
        );
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[sources.a]\npreset = \"hrrr\"\ncolour = \"red\"\n",
                &["line 3", "colour"],
            ),
            (
                "[mount]\nallow-other = \"yes\"\n[sources.a]\npreset = \"hrrr\"\n",
                &["line 2", "allow-other"],
            ),
            (
                "[sources.a]\npreset = \"hrrr\"\n[cache]\nmemory = \"12XB\"\n",
                &["line 4", "cache.memory", "XB"],
            ),
            (
                "[sources.a]\npreset = \"nope\"\n",
                &["line 2", "sources.a.preset", "conus404, hrrr"],
            ),
            (
                "[sources.a]\nurl = \"s3://b\"\naccess = \"magic\"\n",
                &["line 3", "magic"],
            ),
            (
                "[sources.a]\nurl = \"s3://b\"\naccess = \"profile\"\n",
                &["line 3", "sources.a.access", "profile = "],
            ),
            (
                "[sources.a]\nurl = \"s3://b\"\nendpoint = \"s3.example.org\"\naccess = \"anonymous\"\n",
                &["line 3", "sources.a.endpoint", "https://"],
            ),
            (
                "[sources.a]\nregion = \"x\"\n",
                &["line 1", "sources.a", "preset"],
            ),
            (
                "[sources.a]\npreset = \"hrrr\"\nurl = \"s3://b\"\n",
                &["line 3", "sources.a.url"],
            ),
            (
                "[mount]\nthreads = 0\n[sources.a]\npreset = \"hrrr\"\n",
                &["line 2", "mount.threads"],
            ),
            ("[mount]\nuid = 1\n", &["sources"]),
            ("[sources]\n", &["line 1", "no source"]),
        ];
        for (text, want) in cases {
            let msg = err(text);
            for w in *want {
                assert!(msg.contains(w), "{text:?}: {msg:?} lacks {w:?}");
            }
            assert!(!msg.contains('\n'), "one line: {msg:?}");
        }
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../packaging/etc/geomount.toml");
        let c = parse(text).unwrap();
        assert!(c.sources.len() >= 3);
    }
}
