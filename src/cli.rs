//! Command line: clap arguments, turned into a validated [`MountConfig`] in one step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::{
    MountConfig, Ownership, S3Settings, Source, parse_duration, parse_mode, parse_size,
};
use crate::credentials::Access;
use crate::resolve::{SourceRequest, preset_or_url, resolve};

#[derive(Debug, Parser)]
#[command(
    name = "geomount",
    version,
    about = "Mount remote scientific datasets (S3 buckets, Zarr, COG, GRIB2, NetCDF) as a read-only local directory tree"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount SOURCE (a dataset preset, s3://bucket[/prefix] or file:///abs/path) read-only at
    /// MOUNTPOINT; or, with --config FILE, the sources the file lists under MOUNTPOINT.
    Mount(MountArgs),
    /// List the dataset presets `geomount mount PRESET MOUNTPOINT` accepts.
    Catalog,
    /// Unmount MOUNTPOINT, including a stale mount left by a killed daemon.
    Unmount {
        mountpoint: PathBuf,
        /// Only clear a stale mount (its daemon is gone); otherwise do nothing and succeed.
        /// For a service's ExecStartPre, so a restart after a crash finds the mount point usable.
        #[arg(long)]
        stale_only: bool,
    },
    /// Mount a small generated sample dataset (Zarr, COG, GRIB2) with no network needed.
    Demo {
        /// Where to mount it (default: ./geomount-demo).
        mountpoint: Option<PathBuf>,
        #[command(flatten)]
        opts: MountOptions,
    },
    /// Warm a mount's caches for a file, folder or Zarr subset by reading it through the mount.
    Prefetch(crate::cache::prefetch::PrefetchArgs),
    /// Show or clear the persistent block cache.
    Cache {
        #[command(subcommand)]
        action: crate::cache::cli::CacheAction,
    },
    /// Write the man pages and shell completions (bash, zsh, fish) into DIR, for packaging.
    #[command(hide = true)]
    GenerateAssets { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// A dataset preset (see `geomount catalog`), s3://BUCKET[/PREFIX] or file:///ABS/PATH;
    /// with --config, the mount point.
    pub source: String,
    pub mountpoint: Option<PathBuf>,
    /// Mount the sources of this TOML file under one tree (`geomount mount --config FILE MOUNTPOINT`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub opts: MountOptions,
}

#[derive(Debug, Args)]
pub struct S3Args {
    /// S3 endpoint, e.g. https://usgs.osn.mghpcc.org (plain http:// only when written so).
    /// Default: the preset's, else AWS_ENDPOINT_URL, else the profile's endpoint_url.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Region used for signing and the default AWS endpoint. Default: the preset's, else
    /// AWS_REGION / AWS_DEFAULT_REGION, else the profile's.
    #[arg(long)]
    pub region: Option<String>,
    /// Address the bucket in the path (https://host/bucket) even on AWS.
    #[arg(long)]
    pub force_path_style: bool,
    /// Send unsigned (anonymous) requests, for public buckets.
    #[arg(long, conflicts_with_all = ["credentials_file", "profile", "earthdata_url"])]
    pub no_sign_request: bool,
    /// Read AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from this file
    /// (NAME=value lines; not readable by other users) instead of the environment.
    #[arg(long, conflicts_with_all = ["profile", "earthdata_url"])]
    pub credentials_file: Option<PathBuf>,
    /// Sign with this profile of ~/.aws/credentials and ~/.aws/config (keys, session token or
    /// credential_process; its region and endpoint_url apply unless set otherwise).
    #[arg(long, conflicts_with = "earthdata_url")]
    pub profile: Option<String>,
    /// Sign with NASA Earthdata temporary keys from this s3credentials URL (login from ~/.netrc).
    #[arg(long, value_name = "URL")]
    pub earthdata_url: Option<String>,
}

impl S3Args {
    /// The access mode the flags choose, if any.
    fn access(&self) -> Option<Access> {
        if self.no_sign_request {
            Some(Access::Anonymous)
        } else if self.credentials_file.is_some() {
            Some(Access::Keys)
        } else if let Some(p) = &self.profile {
            Some(Access::Profile(p.clone()))
        } else {
            self.earthdata_url.clone().map(Access::Earthdata)
        }
    }
}

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
    /// Permission bits of files, octal.
    #[arg(long, default_value = "0444")]
    pub file_mode: String,
    /// Permission bits of directories, octal.
    #[arg(long, default_value = "0555")]
    pub dir_mode: String,
    /// How long listings, attributes and missing names are cached (e.g. 60, 10s, 5m).
    #[arg(long, default_value = "60s")]
    pub metadata_ttl: String,
    /// Memory for cached blocks and prefetch in flight together (e.g. 512MiB, 2GiB).
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
}

pub(crate) fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl MountOptions {
    pub(crate) fn to_config(
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
        let request_timeout = parse_duration(&self.request_timeout).context("--request-timeout")?;
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
                file_mode: parse_mode(&self.file_mode).context("--file-mode")?,
                dir_mode: parse_mode(&self.dir_mode).context("--dir-mode")?,
            },
            metadata_ttl: parse_duration(&self.metadata_ttl).context("--metadata-ttl")?,
            cache_memory,
            cache_dir: self.cache_dir.clone(),
            cache_disk: parse_size(&self.cache_disk).context("--cache-disk")?,
            request_timeout,
            threads: self.threads,
            convert: !self.no_convert,
        })
    }
}

impl MountArgs {
    pub fn to_config(&self) -> Result<MountConfig> {
        if let Some(file) = &self.config {
            return self.to_config_from_file(file);
        }
        let mountpoint = self
            .mountpoint
            .clone()
            .context("missing MOUNTPOINT: use geomount mount SOURCE MOUNTPOINT")?;
        let (preset, url) = preset_or_url(&self.source)?;
        let keys = match &self.s3.credentials_file {
            Some(path) => Some(read_credentials_file(path)?),
            None => None,
        };
        let (source, s3) = resolve(SourceRequest {
            preset,
            url,
            endpoint_url: self.s3.endpoint_url.clone(),
            region: self.s3.region.clone(),
            force_path_style: self.s3.force_path_style,
            access: self.s3.access(),
            keys,
        })?;
        let mut cfg = self.opts.to_config(source, mountpoint, s3)?;
        cfg.credentials_file = self.s3.credentials_file.clone();
        Ok(cfg)
    }

    /// `--config FILE MOUNTPOINT`: the file's sources as one tree; its `[mount]` and `[cache]`
    /// settings replace the flags' values.
    fn to_config_from_file(&self, file: &Path) -> Result<MountConfig> {
        if self.mountpoint.is_some() {
            bail!(
                "with --config FILE, give only the mount point: geomount mount --config FILE MOUNTPOINT"
            );
        }
        let s3 = &self.s3;
        if s3.endpoint_url.is_some()
            || s3.region.is_some()
            || s3.force_path_style
            || s3.access().is_some()
        {
            bail!(
                "with --config FILE, S3 settings go into the file's [sources.NAME] sections, not flags"
            );
        }
        let parsed = crate::config_file::load(file)?;
        let mut opts = self.opts.clone();
        parsed.apply_to(&mut opts);
        opts.to_config(
            Source::Tree(parsed.sources),
            PathBuf::from(&self.source),
            S3Settings::default(),
        )
    }
}

/// S3 keys read from a `--credentials-file`. No `Debug`: the values are secrets.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Reads a credentials file after checking that other users cannot read it.
pub fn read_credentials_file(path: &Path) -> Result<Credentials> {
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
    parse_credentials(&text).with_context(|| format!("credentials file {shown}"))
}

/// Parses `NAME=value` lines like systemd's `EnvironmentFile=`: blank lines and `#`/`;` comments
/// are skipped, `export ` and one pair of surrounding quotes are allowed. Errors name the line and
/// the variable, never a value (nor a name that does not look like one: it may be a pasted secret).
pub fn parse_credentials(text: &str) -> Result<Credentials> {
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
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        _ => bail!("needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    }
}

/// Whether stderr is the journal's stream (systemd sets `JOURNAL_STREAM=DEV:INODE` for it).
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(want) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
    else {
        return false;
    };
    want.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// Sets up `tracing`: level from `GEOMOUNT_LOG` (default `info`), to a file or stderr. On stderr,
/// colours only on a terminal; into the journal, no timestamps either (the journal adds its own).
pub fn init_logging(file: Option<&Path>, to_stderr: bool) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    // fuser warns when its own unmount-on-drop finds the mount already gone: not news.
    let filter = EnvFilter::try_from_env("GEOMOUNT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,fuser::session=error"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match file {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open log file {}", p.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init()
        }
        None if to_stderr && stderr_is_journal() => builder
            .with_ansi(false)
            .without_time()
            .with_writer(std::io::stderr)
            .try_init(),
        None if to_stderr => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init()
        }
        None => builder.with_writer(std::io::sink).try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

fn demo(mountpoint: Option<PathBuf>, opts: &MountOptions) -> Result<()> {
    let data = demo_dir()?;
    crate::demo::ensure_dataset(&data)
        .with_context(|| format!("cannot generate the demo dataset in {}", data.display()))?;
    let mp = mountpoint.unwrap_or_else(|| PathBuf::from("geomount-demo"));
    std::fs::create_dir_all(&mp)
        .with_context(|| format!("cannot create mount point {}", mp.display()))?;
    let mp = mp.canonicalize()?;
    let source = Source::Local { root: data.clone() };
    let cfg = opts.to_config(source, mp.clone(), S3Settings::default())?;
    let foreground = cfg.foreground;
    if !foreground {
        crate::daemon::run_mount(cfg.clone(), opts.log_file.clone())?;
    }
    let m = mp.display();
    println!(
        "geomount demo: sample data from {} mounted at {m}",
        data.display()
    );
    print!("{}", crate::demo::describe());
    println!("Try:");
    println!("  ls -l {m} {m}/*");
    println!("  gdalinfo {m}/cog/T2_1979-10-01.tif");
    println!("  gdalinfo {m}/hrrr/hrrr.t00z.wrfsfcf00.grib2");
    println!(
        "  python3 -c 'import xarray as xr; ds = xr.open_zarr(\"{m}/conus404_daily.zarr\"); print(ds.T2.isel(time=0).mean().values)'"
    );
    println!("  cat {m}/.geomount-stats      # request and cache counters");
    println!("Unmount with: geomount unmount {m}");
    if foreground {
        crate::daemon::run_mount(cfg, opts.log_file.clone())?;
    }
    Ok(())
}

fn demo_dir() -> Result<PathBuf> {
    let base = match env_nonempty("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env_nonempty("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("geomount").join("demo"))
}

/// Writes `geomount.1` (and one page per subcommand) gzipped, and bash, zsh and fish completions.
fn generate_assets(dir: &Path) -> Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building names the subcommands `geomount-mount` etc., as their pages are called.
    cmd.build();
    // The top page gets the sections a reader of `man geomount` needs beyond the flags.
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    page.extend_from_slice(MAN_EXTRA.as_bytes());
    write_gz(&man.join("geomount.1.gz"), &page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let m = clap_mangen::Man::new(sub.clone());
        let mut page = Vec::new();
        m.render(&mut page)?;
        write_gz(&man.join(format!("{}.gz", m.get_filename())), &page)?;
    }
    // `man mount.fuse.geomount` shows geomount(1), which documents the helper.
    write_gz(
        &man.join("mount.fuse.geomount.8.gz"),
        b".so man1/geomount.1\n",
    )?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "geomount", &completions)
            .with_context(|| format!("cannot write {shell} completions"))?;
    }
    Ok(())
}

/// gzip with no name or time in the header, so the same page gives the same bytes.
fn write_gz(path: &Path, data: &[u8]) -> Result<()> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(f, flate2::Compression::best());
    std::io::Write::write_all(&mut gz, data)?;
    gz.finish()?;
    Ok(())
}

/// Extra sections of `geomount.1`, in roff.
const MAN_EXTRA: &str = include_str!("../packaging/man/geomount-extra.roff");

/// Runs one parsed command line.
fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Mount(args) => args
            .to_config()
            .and_then(|cfg| crate::daemon::run_mount(cfg, args.opts.log_file.clone())),
        Command::Unmount {
            mountpoint,
            stale_only: false,
        } => crate::daemon::unmount(&mountpoint),
        Command::Unmount {
            mountpoint,
            stale_only: true,
        } => crate::daemon::unmount_stale(&mountpoint).map(|cleared| {
            if cleared {
                eprintln!(
                    "geomount: cleared a stale mount at {}",
                    mountpoint.display()
                );
            }
        }),
        Command::Demo { mountpoint, opts } => demo(mountpoint, &opts),
        Command::Catalog => {
            print!("{}", crate::catalog::describe());
            Ok(())
        }
        Command::Cache { action } => crate::cache::cli::run(action),
        Command::Prefetch(args) => crate::cache::prefetch::run(args),
        Command::GenerateAssets { dir } => generate_assets(&dir),
    }
}

/// Runs the command line `argv` (`argv[0]` is the program name) and returns the exit status.
pub fn run_args(argv: impl IntoIterator<Item = String>) -> i32 {
    match Cli::try_parse_from(argv) {
        Ok(cli) => report(run(cli)),
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
    }
}

fn report(res: Result<()>) -> i32 {
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("geomount: {e:#}");
            1
        }
    }
}

/// Runs the process and returns its exit status. Called as `mount.fuse.geomount` (a symlink to
/// this binary, which mount(8) runs for `-t fuse.geomount`), it is the mount helper.
pub fn main() -> i32 {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0).file_name().unwrap_or_default();
    if name.as_encoded_bytes().starts_with(b"mount.") {
        return crate::mount_helper::main(args.collect());
    }
    report(run(Cli::parse()))
}

/// The flags' default mount options, for tests.
#[cfg(test)]
pub fn test_mount_options() -> MountOptions {
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

    #[test]
    fn credentials_files_parse_like_environment_files() {
        let c = parse_credentials(
            "# keys for the lab\n\nAWS_ACCESS_KEY_ID=AKID\nexport AWS_SECRET_ACCESS_KEY=\"s3cr=t\"\n; note\nAWS_SESSION_TOKEN='tok'\n",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.secret_access_key, "s3cr=t");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        let c = parse_credentials("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b").unwrap();
        assert!(c.session_token.is_none());
    }

    #[test]
    fn credentials_file_errors_name_the_line_never_the_value() {
        let e = |t: &str| match parse_credentials(t) {
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
    fn a_world_readable_credentials_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.env");
        std::fs::write(&p, "AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let msg = format!("{:#}", read_credentials_file(&p).err().unwrap());
        assert!(msg.contains("chmod 600"), "{msg}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_credentials_file(&p).unwrap().access_key_id, "a");
    }

    fn mount_config(argv: &[&str]) -> Result<MountConfig> {
        match Cli::try_parse_from(argv)?.command {
            Command::Mount(m) => m.to_config(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_preset_mounts_by_name_and_flags_override_it() {
        let cfg = mount_config(&[
            "geomount",
            "mount",
            "hrrr",
            "/mnt/h",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--region",
            "lab",
            "--cache-dir",
            "/var/cache/g",
            "--cache-disk",
            "1GiB",
        ])
        .unwrap();
        assert_eq!(
            cfg.source,
            Source::S3 {
                bucket: "noaa-hrrr-bdp-pds".into(),
                prefix: String::new()
            }
        );
        assert_eq!(cfg.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(cfg.s3.region.as_deref(), Some("lab"));
        assert!(cfg.s3.no_sign_request);
        assert_eq!(cfg.cache_dir.as_deref(), Some(Path::new("/var/cache/g")));
        assert_eq!(cfg.cache_disk, 1 << 30);
        let err = |argv: &[&str]| format!("{:#}", mount_config(argv).unwrap_err());
        assert!(err(&["geomount", "mount", "nope", "/mnt"]).contains("conus404, hrrr"));
        assert!(err(&["geomount", "mount", "hrrr"]).contains("missing MOUNTPOINT"));
        assert!(
            err(&["geomount", "mount", "--config", "/x.toml", "/mnt", "/other"])
                .contains("give only the mount point")
        );
        assert!(
            err(&[
                "geomount",
                "mount",
                "hls",
                "/m",
                "--no-sign-request",
                "--profile",
                "p"
            ])
            .contains("cannot be used with")
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
