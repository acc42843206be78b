//! Command line: clap arguments, turned into a validated [`MountConfig`] in one step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::{
    MountConfig, Ownership, S3Settings, Source, parse_duration, parse_mode, parse_size,
};

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
    /// Mount SOURCE (s3://bucket[/prefix] or file:///abs/path) read-only at MOUNTPOINT.
    Mount(MountArgs),
    /// Unmount MOUNTPOINT, including a stale mount left by a killed daemon.
    Unmount { mountpoint: PathBuf },
    /// Mount a small generated sample dataset (Zarr, COG, GRIB2) with no network needed.
    Demo {
        /// Where to mount it (default: ./geomount-demo).
        mountpoint: Option<PathBuf>,
        #[command(flatten)]
        opts: MountOptions,
    },
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// s3://BUCKET[/PREFIX] or file:///ABS/PATH
    pub source: String,
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub opts: MountOptions,
}

#[derive(Debug, Args)]
pub struct S3Args {
    /// S3 endpoint, e.g. https://usgs.osn.mghpcc.org (plain http:// only when written so).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Region used for signing and the default AWS endpoint.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Address the bucket in the path (https://host/bucket) even on AWS.
    #[arg(long)]
    pub force_path_style: bool,
    /// Send unsigned (anonymous) requests, for public buckets.
    #[arg(long)]
    pub no_sign_request: bool,
}

#[derive(Debug, Args)]
pub struct MountOptions {
    /// Stay in the foreground instead of returning once the mount is ready.
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf for non-root).
    #[arg(long)]
    pub allow_other: bool,
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
    /// Memory block cache budget (e.g. 512MiB, 2GiB).
    #[arg(long, default_value = "1GiB")]
    pub cache_memory: String,
    /// Bound on one request including retries; a read past it fails with EIO.
    #[arg(long, default_value = "10s")]
    pub request_timeout: String,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Write logs here (background mounts otherwise log nowhere once ready).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl MountOptions {
    fn to_config(
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
            ownership: Ownership {
                // SAFETY: getuid/getgid cannot fail.
                uid: self.uid.unwrap_or_else(|| unsafe { libc::getuid() }),
                gid: self.gid.unwrap_or_else(|| unsafe { libc::getgid() }),
                file_mode: parse_mode(&self.file_mode).context("--file-mode")?,
                dir_mode: parse_mode(&self.dir_mode).context("--dir-mode")?,
            },
            metadata_ttl: parse_duration(&self.metadata_ttl).context("--metadata-ttl")?,
            cache_memory,
            request_timeout,
            threads: self.threads,
        })
    }
}

impl MountArgs {
    pub fn to_config(&self) -> Result<MountConfig> {
        let source = Source::parse(&self.source)?;
        let s3 = S3Settings {
            endpoint_url: self.s3.endpoint_url.clone().filter(|e| !e.is_empty()),
            region: self
                .s3
                .region
                .clone()
                .or_else(|| env_nonempty("AWS_DEFAULT_REGION")),
            force_path_style: self.s3.force_path_style,
            no_sign_request: self.s3.no_sign_request,
            access_key_id: env_nonempty("AWS_ACCESS_KEY_ID"),
            secret_access_key: env_nonempty("AWS_SECRET_ACCESS_KEY"),
            session_token: env_nonempty("AWS_SESSION_TOKEN"),
            ca_bundle: env_nonempty("AWS_CA_BUNDLE").map(PathBuf::from),
        };
        if let Some(e) = &s3.endpoint_url
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            bail!(
                "--endpoint-url '{e}' must start with https:// (or http:// for a plain-HTTP server)"
            );
        }
        self.opts.to_config(source, self.mountpoint.clone(), s3)
    }
}

/// Sets up `tracing`: level from `GEOMOUNT_LOG` (default `info`), to a file or stderr.
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
        None if to_stderr => builder.with_writer(std::io::stderr).try_init(),
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

/// Runs the command line and returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Mount(args) => args
            .to_config()
            .and_then(|cfg| crate::daemon::run_mount(cfg, args.opts.log_file.clone())),
        Command::Unmount { mountpoint } => crate::daemon::unmount(&mountpoint),
        Command::Demo { mountpoint, opts } => demo(mountpoint, &opts),
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("geomount: {e:#}");
            1
        }
    }
}
