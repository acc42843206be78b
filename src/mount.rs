//! Mount assembly, in dependency order: a [`MountConfig`]'s sources become object_store backends
//! with their credentials (`store::build`), held by the live, metered backend (SIGHUP swaps in
//! new keys there); one probe checks access; then the caches (memory blocks and the persistent
//! disk tier), the converted views beside the store (reading their sources through the same
//! tiers), the filesystem, and the FUSE session with its mount options. The process around it
//! (fork, readiness, signals, unmount) is `daemon`'s.
//!
//! A plain read passes `fuse.rs` → `fs.rs` → `reader/file.rs` → `cache/block.rs` (or its
//! `extents.rs`) → `store/metered.rs` → `store/object.rs`; only a read of a view file goes from
//! the block cache to the views (`convert/backend.rs`), which read their sources through the
//! block cache in turn.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use fuser::{Config, MountOption, SessionACL};

use crate::cache::block::BlockCache;
use crate::cache::disk::{DiskCache, default_dir};
use crate::cache::memory::MemoryTier;
use crate::config::{MAX_READ, MountConfig, Source};
use crate::credentials::keys_file;
use crate::error::{FsError, NoAnswer, StoreError, StoreErrorKind, Unavailable};
use crate::fs::{Fs, Sources};
use crate::fuse::FuseAdapter;
use crate::metrics::Metrics;
use crate::reader::PrefetchBudget;
use crate::store::Backend;
use crate::store::build::{build_backend, endpoint_display};
use crate::store::metered::Metered;
use crate::write::{WriteOptions, Writes};

/// Writes fail with ENOSPC when the staging file system has less than this free.
const MIN_FREE: u64 = 256 << 20;

/// The mount-time access check must answer within this, whatever the request timeout.
const ACCESS_CHECK_LIMIT: Duration = Duration::from_secs(8);

/// A mounted filesystem, not yet serving: run `session` to serve it.
pub struct Assembled {
    pub session: fuser::Session<FuseAdapter>,
    pub fs: Arc<Fs>,
    pub metrics: Arc<Metrics>,
    /// The live backend; [`reload_credentials`] swaps what it holds.
    pub backend: Arc<Metered>,
}

/// Builds every layer for `cfg` (its async parts on `rt`) and mounts it at `cfg.mountpoint`.
/// Fails with one line naming the cause when the source cannot be read.
pub fn assemble(cfg: &MountConfig, rt: &tokio::runtime::Runtime) -> Result<Assembled> {
    let metrics = Arc::new(Metrics::default());
    // The counters are the mount's: they carry on across a swap of the backend on SIGHUP.
    let store = Arc::new(Metered::shared(
        build_backend(cfg)?,
        metrics.clone(),
        cfg.request_timeout,
    ));
    // The access check is the store's own probe (the views add none).
    rt.block_on(check_access(store.as_ref(), cfg))?;
    // `--cache-memory` is the whole process's: prefetch in flight, and one memory tier that the
    // block cache and the converted views share.
    // A writable mount's uploads hold staged bytes in memory too, within the same budget.
    let for_reads = match cfg.writes {
        Some(_) => cfg.cache_memory.saturating_sub(crate::write::UPLOAD_MEMORY),
        None => cfg.cache_memory,
    };
    let (budget, cache_bytes) = PrefetchBudget::split(for_reads);
    let memory = MemoryTier::new(cache_bytes);
    let disk = open_disk_cache(cfg, metrics.clone())?;
    // The converted views sit beside the store: they read their sources through a block cache
    // over the store in the same memory and disk tiers, so each request they make is counted
    // and bounded; the filesystem's block cache reads from them only the keys they derive.
    let views: Option<Arc<dyn Backend>> = cfg.convert.then(|| {
        let sources = BlockCache::with_memory(store.clone(), metrics.clone(), memory.clone())
            .with_disk(disk.clone());
        Arc::new(
            crate::convert::backend::Convert::with_cache(store.clone(), sources)
                .with_metadata_ttl(cfg.metadata_ttl),
        ) as Arc<dyn Backend>
    });

    let mut fs = Fs::with_memory(
        Sources {
            store: store.clone(),
            views,
        },
        metrics.clone(),
        cfg.ownership,
        cfg.metadata_ttl,
        budget,
        memory,
    )
    .with_disk(disk);
    if let Some(w) = open_writes(cfg, store.clone(), rt.handle().clone())? {
        fs = fs.with_writes(w);
    }
    let fs = Arc::new(fs);
    let adapter = FuseAdapter::new(fs.clone(), rt.handle().clone());
    let session =
        fuser::Session::new(adapter, &cfg.mountpoint, &fuse_config(cfg)).map_err(|e| {
            anyhow!(
                "cannot mount on {}: {e}{}",
                cfg.mountpoint.display(),
                fuse_hint(
                    std::path::Path::new("/dev/fuse").exists(),
                    // SAFETY: geteuid cannot fail.
                    unsafe { libc::geteuid() } == 0,
                    on_path("fusermount3") || on_path("fusermount"),
                )
            )
        })?;
    Ok(Assembled {
        session,
        fs,
        metrics,
        backend: store,
    })
}

/// What to do when FUSE itself is missing, appended to a failed mount's line: nothing when
/// `/dev/fuse` exists and the mount helper non-root users need is installed.
fn fuse_hint(dev_fuse: bool, root: bool, fusermount: bool) -> &'static str {
    if !dev_fuse {
        "; FUSE is unavailable: /dev/fuse is missing (load the kernel module with `modprobe fuse`; \
         in a container, start it with `--device /dev/fuse --cap-add SYS_ADMIN`)"
    } else if !root && !fusermount {
        "; FUSE mounts by non-root users need fusermount3: install fuse3 (`apt-get install fuse3`)"
    } else {
        ""
    }
}

/// Whether an executable called `name` is in a directory of `$PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// The FUSE session's options: read-only (or read-write with `--read-write`), the `fuse.geomount` type, `max_read`, and who may
/// enter the mount.
fn fuse_config(cfg: &MountConfig) -> Config {
    let mut options = vec![
        if cfg.writes.is_some() {
            MountOption::RW
        } else {
            MountOption::RO
        },
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::FSName(cfg.source.display_name()),
        // The type shows as `fuse.geomount` in the mount table, which umount(8), findmnt and
        // systemd match on. Not `MountOption::Subtype`: fuser's direct mount(2) as root drops it
        // (type `fuse`); the kernel takes `subtype=` itself, and fusermount3 also understands it.
        MountOption::CUSTOM("subtype=geomount".into()),
        MountOption::DefaultPermissions,
    ];
    if cfg.noexec {
        options.push(MountOption::NoExec);
    }
    options.push(MountOption::CUSTOM(format!("max_read={MAX_READ}")));
    let mut fuse_cfg = Config::default();
    fuse_cfg.mount_options = options;
    fuse_cfg.acl = if cfg.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    fuse_cfg.n_threads = Some(cfg.threads);
    fuse_cfg.clone_fd = true;
    fuse_cfg
}

/// Probes the source with one request, so a wrong bucket, endpoint or key fails the mount with
/// one clear line, chosen by the kind of the failure.
async fn check_access(backend: &dyn Backend, cfg: &MountConfig) -> Result<()> {
    let limit = cfg.request_timeout.min(ACCESS_CHECK_LIMIT);
    let res = match tokio::time::timeout(limit, backend.probe()).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Unavailable(Unavailable::Timeout),
            "LIST (access check)",
        )
        .with_source(NoAnswer {
            within: limit,
            hint: "",
        })
        .into()),
    };
    let Err(e) = res else { return Ok(()) };
    Err(anyhow!(access_message(&e, cfg).replace(['\n', '\r'], " ")))
}

/// The line a failed access check reports: what failed, for which bucket at which endpoint,
/// and what to check.
fn access_message(e: &FsError, cfg: &MountConfig) -> String {
    let bucket = match &cfg.source {
        Source::Local { root } => {
            return format!("cannot read source folder {}: {e}", root.display());
        }
        Source::Tree(_) => return format!("cannot read every source of the tree: {e}"),
        Source::S3 { bucket, .. } => bucket,
    };
    let endpoint = endpoint_display(&cfg.s3);
    let FsError::Store(s) = e else {
        return format!("cannot list bucket '{bucket}' at {endpoint}: {e}");
    };
    let d = s.detail();
    match s.kind() {
        StoreErrorKind::Unavailable(_) => format!(
            "cannot reach endpoint {endpoint} for bucket '{bucket}': {d}; check --endpoint-url and that the server is up"
        ),
        StoreErrorKind::Credentials => format!("cannot get credentials for bucket '{bucket}': {d}"),
        StoreErrorKind::AccessDenied => format!(
            "access denied to bucket '{bucket}' at {endpoint}: {d}; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --no-sign-request for a public bucket"
        ),
        // A listing answers 404 only for a bucket that is not there.
        StoreErrorKind::NotFound | StoreErrorKind::Remote { status: Some(404) } => format!(
            "bucket '{bucket}' does not exist at {endpoint}: check the bucket name and --region/--endpoint-url ({d})"
        ),
        StoreErrorKind::Stale
        | StoreErrorKind::Remote { .. }
        | StoreErrorKind::ShortRead { .. } => {
            format!("cannot list bucket '{bucket}' at {endpoint}: {e}")
        }
    }
}

/// The disk cache a mount configuration asks for: `None` when `--cache-disk 0`, and for local
/// sources (a copy on the same disks would gain nothing). The scope is the endpoint and the
/// source, so two buckets (or endpoints) never share blocks.
/// The staging area of a `--read-write` mount: one folder per source under the staging
/// directory, locked for this mount.
fn open_writes(
    cfg: &MountConfig,
    store: Arc<Metered>,
    rt: tokio::runtime::Handle,
) -> Result<Option<Arc<Writes>>> {
    let Some(w) = &cfg.writes else {
        return Ok(None);
    };
    let root = match &w.staging_dir {
        Some(d) => d.clone(),
        None => {
            let blocks = match &cfg.cache_dir {
                Some(d) => d.clone(),
                None => default_dir()?,
            };
            blocks
                .parent()
                .map_or_else(|| blocks.join("staging"), |p| p.join("staging"))
        }
    };
    let scope = format!(
        "{} {}",
        endpoint_display(&cfg.s3),
        cfg.source.display_name()
    );
    let hash = xxhash_rust::xxh3::xxh3_64(scope.as_bytes());
    let dir = root.join(format!("{hash:016x}"));
    let opts = WriteOptions {
        write_back: w.write_back,
        no_delete: w.no_delete,
        staging_max: w.staging_max,
        min_free: MIN_FREE,
    };
    let warnings = rt
        .block_on(store.prepare_writes())
        .map_err(|e| anyhow!("cannot write to the source ({e}): check that the keys may write, or mount without --read-write"))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let writes = Writes::open(&dir, store, opts, rt).context("--staging-dir")?;
    tracing::info!(staging = %dir.display(), "writable mount: files are staged here until uploaded");
    Ok(Some(writes))
}

fn open_disk_cache(cfg: &MountConfig, metrics: Arc<Metrics>) -> Result<Option<Arc<DiskCache>>> {
    if cfg.cache_disk == 0 || matches!(cfg.source, Source::Local { .. }) {
        return Ok(None);
    }
    let dir = match &cfg.cache_dir {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    let scope = match &cfg.source {
        // Keys of a tree start with the source's name; the scope names every source's place.
        Source::Tree(sources) => sources
            .iter()
            .map(|t| {
                format!(
                    "{}={} {}",
                    t.name,
                    endpoint_display(&t.s3),
                    t.source.display_name()
                )
            })
            .collect::<Vec<_>>()
            .join(";"),
        _ => format!(
            "{} {}",
            endpoint_display(&cfg.s3),
            cfg.source.display_name()
        ),
    };
    DiskCache::open(&dir, cfg.cache_disk, &scope, metrics)
        .map(Some)
        .context("--cache-dir (pass --cache-disk 0 to mount without a disk cache)")
}

/// SIGHUP: with `--credentials-file`, reads the file again and swaps in a backend with the new
/// keys, without dropping the mount; requests already under way finish with the old keys. Other
/// settings (endpoint, cache size, TTL) need a restart. A bad file keeps the old keys.
pub fn reload_credentials(cfg: &MountConfig, live: &Metered) {
    let Some(path) = &cfg.credentials_file else {
        tracing::warn!(
            "SIGHUP: nothing to reload: the keys come from the environment or flags (use --credentials-file to rotate keys in place); restart to change other settings"
        );
        return;
    };
    let rebuilt = keys_file::read(path).and_then(|c| {
        let mut new_cfg = cfg.clone();
        new_cfg.s3.access_key_id = Some(c.access_key_id);
        new_cfg.s3.secret_access_key = Some(c.secret_access_key);
        new_cfg.s3.session_token = c.session_token;
        build_backend(&new_cfg)
    });
    match rebuilt {
        Ok(b) => {
            live.swap(b);
            tracing::info!(file = %path.display(), "SIGHUP: reloaded the S3 keys");
        }
        Err(e) => tracing::error!("SIGHUP: keeping the current keys: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Ownership, S3Settings};
    use crate::error::ErrorResponse;

    fn s3_mount() -> MountConfig {
        MountConfig {
            source: Source::S3 {
                bucket: "era5".into(),
                prefix: String::new(),
            },
            mountpoint: "/mnt".into(),
            s3: S3Settings {
                endpoint_url: Some("http://127.0.0.1:3900".into()),
                ..Default::default()
            },
            foreground: true,
            allow_other: false,
            noexec: false,
            credentials_file: None,
            ownership: Ownership {
                uid: 0,
                gid: 0,
                file_mode: 0o444,
                dir_mode: 0o555,
            },
            metadata_ttl: Duration::from_secs(60),
            cache_memory: 64 << 20,
            cache_dir: None,
            cache_disk: 0,
            request_timeout: Duration::from_secs(10),
            threads: 1,
            convert: false,
            writes: None,
        }
    }

    #[test]
    fn a_missing_fuse_says_how_to_enable_it() {
        assert!(fuse_hint(false, true, true).contains("modprobe fuse"));
        assert!(fuse_hint(false, false, false).contains("--device /dev/fuse"));
        assert!(fuse_hint(true, false, false).contains("apt-get install fuse3"));
        assert_eq!(fuse_hint(true, false, true), "");
        assert_eq!(fuse_hint(true, true, false), "");
    }

    #[test]
    fn the_access_check_line_follows_the_kind_of_failure() {
        let cfg = s3_mount();
        let msg = |kind, source: Option<ErrorResponse>| {
            let mut e = StoreError::new(kind, "listing s3://era5/");
            if let Some(s) = source {
                e = e.with_source(s);
            }
            access_message(&e.into(), &cfg)
        };
        let answer = |status, code: &str| ErrorResponse {
            status,
            code: code.into(),
            message: "m".into(),
        };
        let m = msg(
            StoreErrorKind::Remote { status: Some(404) },
            Some(answer(http::StatusCode::NOT_FOUND, "NoSuchBucket")),
        );
        assert!(
            m.starts_with("bucket 'era5' does not exist at http://127.0.0.1:3900")
                && m.contains("NoSuchBucket"),
            "{m}"
        );
        let m = msg(
            StoreErrorKind::AccessDenied,
            Some(answer(http::StatusCode::FORBIDDEN, "AccessDenied")),
        );
        assert!(
            m.starts_with("access denied to bucket 'era5'") && m.contains("AWS_SECRET_ACCESS_KEY"),
            "{m}"
        );
        let m = msg(StoreErrorKind::Credentials, None);
        assert!(
            m.starts_with("cannot get credentials for bucket 'era5'"),
            "{m}"
        );
        let m = msg(StoreErrorKind::Unavailable(Unavailable::Connect), None);
        assert!(
            m.starts_with("cannot reach endpoint http://127.0.0.1:3900 for bucket 'era5'"),
            "{m}"
        );
        let m = msg(
            StoreErrorKind::Remote { status: Some(500) },
            Some(answer(http::StatusCode::INTERNAL_SERVER_ERROR, "")),
        );
        assert!(m.starts_with("cannot list bucket 'era5'"), "{m}");
    }
}
