//! Command line: clap arguments, turned into a validated [`MountConfig`] in one step.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::{MountConfig, S3Settings, Source, env_nonempty};
use crate::credentials::{Access, keys_file};
use crate::resolve::{MountOptions, SourceRequest, preset_or_url, resolve};

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
    /// Mount SOURCE (a dataset preset, s3://bucket[/prefix] or file:///abs/path) at MOUNTPOINT,
    /// read-only unless --read-write; or, with --config FILE, the sources the file lists under MOUNTPOINT.
    Mount(MountArgs),
    /// List the dataset presets `geomount mount PRESET MOUNTPOINT` accepts.
    Catalog {
        /// Print the presets as a JSON array (name, description, bucket, prefix, endpoint,
        /// region, force_path_style, access), for programs such as the Python package.
        #[arg(long)]
        json: bool,
    },
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
    Prefetch(crate::commands::prefetch::PrefetchArgs),
    /// Wait until everything written under PATH (a file or folder of a --read-write mount) is
    /// uploaded; fails naming the cause if an upload fails.
    Sync { path: PathBuf },
    /// Show or clear the persistent block cache.
    Cache {
        #[command(subcommand)]
        action: crate::commands::cache::CacheAction,
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
            Some(path) => Some(keys_file::read(path)?),
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
        Command::Sync { path } => crate::commands::sync::run(&path),
        Command::Catalog { json } => {
            if json {
                println!("{}", crate::catalog::to_json());
            } else {
                print!("{}", crate::catalog::describe());
            }
            Ok(())
        }
        Command::Cache { action } => crate::commands::cache::run(action),
        Command::Prefetch(args) => crate::commands::prefetch::run(args),
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
        return crate::mount_helper::main(args.collect(), run_args);
    }
    report(run(Cli::parse()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
