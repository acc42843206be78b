//! Writes of a `--read-write` mount: files written through the mount are staged on local disk
//! ([`staging`]) and uploaded after their last close, once no write came for the write-back
//! delay. A rename or unlink inside that window is a local operation, so temporaries (zarr's
//! `.partial`, rsync's `.NAME.XXXXXX`, GDAL's `.ovr.tmp`) never reach the bucket.
//!
//! The filesystem (`fs.rs`) keeps one [`Staged`] per inode being written; the namespace is told
//! what happened through [`Events`] (this module does not know it).
//!
//! Invariants:
//! - a staged file's `version` grows with every change; the server holds version `synced` of it,
//!   and the file is clean when the two are equal;
//! - at most one upload of a file runs at a time (`uploading`); a change during an upload
//!   leaves it dirty, and it is uploaded again;
//! - a file whose write failed (a full disk) is never uploaded: its bytes are incomplete;
//! - an upload's conflict (someone else's object is there) never overwrites it: the local copy
//!   moves to `conflicts/`.

pub mod staging;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::error::{CacheError, FsError, StoreErrorKind};
use crate::store::{Backend, Replace, Upload};
use staging::{Record, StagingDir, from_ns, to_ns};

/// Uploaded files whose modification time the mount remembers (to report it, since a listing
/// carries only the upload time), at most.
const MAX_REMEMBERED_MTIMES: usize = 100_000;
/// Bytes of staged files held in memory by uploads at once (a PUT's body, a multipart upload's
/// parts in flight): part of `--cache-memory` on a writable mount.
pub const UPLOAD_MEMORY: u64 = 64 << 20;
/// Uploads of one `sync_under` (fsync of a folder, unmount) at once.
const SYNC_PARALLEL: usize = 16;
/// A failed upload that may succeed later is retried after this.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The knobs of a writable mount.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Quiet time after the last close before the upload (0: upload in `close`).
    pub write_back: Duration,
    /// Refuse unlink and rmdir of what is on the server.
    pub no_delete: bool,
    /// Bound on the bytes staged at once.
    pub staging_max: u64,
    /// Writes fail with ENOSPC when the staging file system has less free than this.
    pub min_free: u64,
}

/// What the namespace is told by the write path.
pub trait Events: Send + Sync {
    /// `path` (inode `ino`) is on the server now, as `etag`, with this size and mtime.
    fn uploaded(&self, ino: u64, path: &str, size: u64, mtime: SystemTime, etag: Option<String>);
    /// `ino` is no longer staged: what the server has is what the mount shows.
    fn unstaged(&self, ino: u64);
}

/// A staged file's state, for the `user.geomount.state` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Dirty,
    Uploading,
    Clean,
    Conflict,
    Failed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Dirty => "dirty",
            State::Uploading => "uploading",
            State::Clean => "clean",
            State::Conflict => "conflict",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug)]
struct Inner {
    path: String,
    size: u64,
    mtime: SystemTime,
    mode: u16,
    base: Option<String>,
    /// Open handles of this inode.
    opens: u32,
    version: u64,
    synced: Option<u64>,
    uploading: bool,
    /// Unlinked, or set aside: nothing more happens to it.
    gone: bool,
    /// A write failed: the bytes are incomplete and are never uploaded.
    broken: bool,
    conflict: bool,
    /// The last upload's error (kept until a later upload succeeds).
    error: Option<FsError>,
}

impl Inner {
    fn clean(&self) -> bool {
        self.synced == Some(self.version)
    }

    fn record(&self, closed: bool) -> Record {
        Record {
            path: self.path.clone(),
            base: self.base.clone(),
            closed,
            mtime_ns: to_ns(self.mtime),
            size: self.size,
        }
    }
}

/// One file being written.
#[derive(Debug)]
pub struct Staged {
    id: u64,
    /// Its inode (a rename keeps it).
    ino: u64,
    file: Arc<std::fs::File>,
    inner: Mutex<Inner>,
    /// Held while the journal record is written.
    journal: Mutex<()>,
    /// Bumped when an upload of this file ends (either way), for waiters.
    settled: watch::Sender<u64>,
}

/// What the kernel is shown for a staged file.
#[derive(Debug, Clone, Copy)]
pub struct StagedAttr {
    pub size: u64,
    pub mtime: SystemTime,
    pub mode: u16,
}

pub struct Writes {
    dir: StagingDir,
    store: Arc<dyn Backend>,
    opts: WriteOptions,
    files: Mutex<HashMap<u64, Arc<Staged>>>,
    next_id: AtomicU64,
    /// Bytes staged (sum of the sizes of staged files).
    used: AtomicU64,
    /// Path → (ETag, mtime) of files this mount uploaded.
    mtimes: Mutex<HashMap<String, (String, SystemTime)>>,
    events: OnceLock<Weak<dyn Events>>,
    /// Files closed by a previous mount, uploaded once the namespace is attached.
    recovered: Mutex<Vec<(u64, Record)>>,
    /// Where uploads run (FUSE requests arrive on threads outside it).
    rt: tokio::runtime::Handle,
    /// [`UPLOAD_MEMORY`] in MiB permits.
    upload_memory: tokio::sync::Semaphore,
    me: Weak<Writes>,
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes")
            .field("staging", &self.dir.root())
            .finish_non_exhaustive()
    }
}

fn io_err(op: &'static str, path: &std::path::Path, e: std::io::Error) -> FsError {
    FsError::Staging(CacheError::io(op, path, e))
}

/// Whether an upload's failure is final (retrying cannot help).
fn is_final(e: &FsError) -> bool {
    match e {
        FsError::Store(s) => matches!(
            s.kind(),
            StoreErrorKind::AccessDenied | StoreErrorKind::Credentials
        ),
        FsError::ReadOnly | FsError::Staging(_) | FsError::NotFound => true,
        _ => false,
    }
}

impl Writes {
    /// Writes staged in `dir` (locked: fails if another mount uses it), uploaded to `store`.
    /// What a previous mount left there is recovered (see [`StagingDir::recover`]).
    pub fn open(
        dir: &std::path::Path,
        store: Arc<dyn Backend>,
        opts: WriteOptions,
        rt: tokio::runtime::Handle,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = StagingDir::open(dir)?;
        let (recovered, next_id) = dir.recover()?;
        if !recovered.is_empty() {
            tracing::info!(
                files = recovered.len(),
                "uploading files a previous mount had closed but not uploaded"
            );
        }
        Ok(Arc::new_cyclic(|me| Self {
            dir,
            store,
            opts,
            files: Mutex::default(),
            next_id: AtomicU64::new(next_id),
            used: AtomicU64::new(0),
            mtimes: Mutex::default(),
            events: OnceLock::new(),
            recovered: Mutex::new(recovered),
            rt,
            upload_memory: tokio::sync::Semaphore::new((UPLOAD_MEMORY >> 20) as usize),
            me: me.clone(),
        }))
    }

    /// Attaches the namespace. Returns the recovered files (path, size, mtime) for it to
    /// show; each is then staged under the inode `ino_of` gives and uploaded.
    pub fn attach(&self, events: Weak<dyn Events>, mut ino_of: impl FnMut(&str) -> Option<u64>) {
        let _ = self.events.set(events);
        let recovered = std::mem::take(&mut *self.recovered.lock());
        for (id, rec) in recovered {
            let Some(ino) = ino_of(&rec.path) else {
                tracing::warn!(
                    path = rec.path.as_str(),
                    "a recovered file's folder cannot be shown: kept in staging"
                );
                continue;
            };
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.dir.data_path(id))
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(path = rec.path.as_str(), error = %e, "cannot open a recovered file");
                    continue;
                }
            };
            let st = self.insert(ino, id, file, &rec.path, rec.base.clone(), rec.size);
            st.inner.lock().mtime = from_ns(rec.mtime_ns);
            self.schedule(&st, Duration::ZERO);
        }
    }

    fn events(&self) -> Option<Arc<dyn Events>> {
        self.events.get().and_then(Weak::upgrade)
    }

    pub fn staging_root(&self) -> &std::path::Path {
        self.dir.root()
    }

    fn insert(
        &self,
        ino: u64,
        id: u64,
        file: std::fs::File,
        path: &str,
        base: Option<String>,
        size: u64,
    ) -> Arc<Staged> {
        self.used.fetch_add(size, Ordering::Relaxed);
        let st = Arc::new(Staged {
            id,
            ino,
            file: Arc::new(file),
            inner: Mutex::new(Inner {
                path: path.to_string(),
                size,
                mtime: SystemTime::now(),
                mode: 0o644,
                base,
                opens: 0,
                version: 1,
                synced: None,
                uploading: false,
                gone: false,
                broken: false,
                conflict: false,
                error: None,
            }),
            journal: Mutex::new(()),
            settled: watch::Sender::new(0),
        });
        self.files.lock().insert(ino, st.clone());
        st
    }

    /// Refuses growth past `--staging-max` or below the free-space floor.
    fn check_space(&self, growth: u64) -> Result<(), FsError> {
        let used = self.used.load(Ordering::Relaxed);
        let full = used.saturating_add(growth) > self.opts.staging_max
            || self.dir.free_bytes() < self.opts.min_free.saturating_add(growth);
        if full {
            return Err(FsError::Staging(CacheError::io(
                "write",
                self.dir.root(),
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            )));
        }
        Ok(())
    }

    /// Stages a new, empty file at `path` for inode `ino` (opened once), replacing `base` (the
    /// server's object there, if any).
    pub fn create(&self, ino: u64, path: &str, base: Option<String>) -> Result<(), FsError> {
        self.check_space(0)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let file = self.dir.create_data(id)?;
        let st = self.insert(ino, id, file, path, base, 0);
        st.inner.lock().opens = 1;
        self.save(&st)
    }

    /// Stages the server's object at `path` (`size` bytes, `etag`) for writing in place: its
    /// bytes are copied down with `fetch` (a range pinned to the ETag). Opened once.
    pub async fn copy_down<F, Fut>(
        &self,
        ino: u64,
        path: &str,
        size: u64,
        etag: Option<String>,
        fetch: F,
    ) -> Result<(), FsError>
    where
        F: Fn(std::ops::Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<crate::rope::Rope, FsError>>,
    {
        const PIECE: u64 = 8 << 20;
        self.check_space(size)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let file = self.dir.create_data(id)?;
        let local = self.dir.data_path(id);
        let mut at = 0;
        while at < size {
            let end = (at + PIECE).min(size);
            let bytes = match fetch(at..end).await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    let _ = self.dir.remove(id);
                    return Err(e);
                }
            };
            if let Err(e) = file.write_all_at(&bytes, at) {
                let _ = self.dir.remove(id);
                return Err(io_err("write", &local, e));
            }
            at = end;
        }
        let st = self.insert(ino, id, file, path, etag, size);
        {
            let mut i = st.inner.lock();
            i.opens = 1;
            // Unchanged so far: what the server has.
            i.synced = Some(i.version);
        }
        self.save(&st)
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Staged>> {
        self.files.lock().get(&ino).cloned()
    }

    pub fn is_staged(&self, ino: u64) -> bool {
        self.files.lock().contains_key(&ino)
    }

    pub fn attr(&self, ino: u64) -> Option<StagedAttr> {
        let st = self.get(ino)?;
        let i = st.inner.lock();
        Some(StagedAttr {
            size: i.size,
            mtime: i.mtime,
            mode: i.mode,
        })
    }

    /// The state of a staged inode, for its xattr.
    pub fn state(&self, ino: u64) -> Option<State> {
        let st = self.get(ino)?;
        let i = st.inner.lock();
        Some(if i.conflict {
            State::Conflict
        } else if i.uploading {
            State::Uploading
        } else if i.error.is_some() || i.broken {
            State::Failed
        } else if i.clean() {
            State::Clean
        } else {
            State::Dirty
        })
    }

    /// The modification time this mount gave `path`, if the server still has the object it
    /// uploaded (ETag `etag`).
    pub fn uploaded_mtime(&self, path: &str, etag: Option<&str>) -> Option<SystemTime> {
        let m = self.mtimes.lock();
        let (e, t) = m.get(path)?;
        (Some(e.as_str()) == etag).then_some(*t)
    }

    /// Another handle of a staged inode opened.
    pub fn opened(&self, st: &Staged) {
        st.inner.lock().opens += 1;
    }

    fn changed(i: &mut Inner) {
        i.version += 1;
        i.mtime = SystemTime::now();
    }

    pub fn write(&self, st: &Staged, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        let end = offset + data.len() as u64;
        let growth = end.saturating_sub(st.inner.lock().size);
        let res = self.check_space(growth).and_then(|()| {
            st.file
                .write_all_at(data, offset)
                .map_err(|e| io_err("write", &self.dir.data_path(st.id), e))
        });
        let mut i = st.inner.lock();
        if let Err(e) = res {
            i.broken = true;
            return Err(e);
        }
        if end > i.size {
            self.used.fetch_add(end - i.size, Ordering::Relaxed);
            i.size = end;
        }
        Self::changed(&mut i);
        Ok(data.len())
    }

    pub fn read(&self, st: &Staged, offset: u64, size: u32) -> Result<bytes::Bytes, FsError> {
        let len = {
            let i = st.inner.lock();
            (size as u64).min(i.size.saturating_sub(offset)) as usize
        };
        let mut buf = vec![0; len];
        let mut got = 0;
        while got < len {
            match st.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(io_err("read", &self.dir.data_path(st.id), e)),
            }
        }
        buf.truncate(got);
        Ok(buf.into())
    }

    pub fn truncate(&self, st: &Staged, size: u64) -> Result<(), FsError> {
        let old = st.inner.lock().size;
        self.check_space(size.saturating_sub(old))?;
        st.file
            .set_len(size)
            .map_err(|e| io_err("truncate", &self.dir.data_path(st.id), e))?;
        let mut i = st.inner.lock();
        if size > i.size {
            self.used.fetch_add(size - i.size, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(i.size - size, Ordering::Relaxed);
        }
        i.size = size;
        Self::changed(&mut i);
        Ok(())
    }

    /// A new mtime is a change the object must carry (rsync and `cp -a` set it after the
    /// last write, often after the close).
    pub fn set_times(&self, st: &Arc<Staged>, mtime: SystemTime) {
        let closed = {
            let mut i = st.inner.lock();
            i.mtime = mtime;
            i.version += 1;
            i.opens == 0
        };
        if closed {
            self.schedule(st, self.opts.write_back);
        }
    }

    pub fn set_mode(&self, st: &Staged, mode: u16) {
        st.inner.lock().mode = mode & 0o7777;
    }

    /// A handle closed. After the last one a changed file is journaled as closed and its upload
    /// scheduled; a broken one is dropped; a clean one is unstaged.
    pub fn released(&self, ino: u64) -> Result<(), FsError> {
        let Some(st) = self.get(ino) else {
            return Ok(());
        };
        let (last, broken, clean) = {
            let mut i = st.inner.lock();
            i.opens = i.opens.saturating_sub(1);
            (i.opens == 0 && !i.gone, i.broken, i.clean())
        };
        if !last {
            return Ok(());
        }
        if broken {
            tracing::warn!(path = %st.inner.lock().path, "a write to this file failed: it is not uploaded");
            self.drop_staged(ino, &st);
            return Ok(());
        }
        if clean {
            self.unstage_if_idle(ino, &st);
            return Ok(());
        }
        self.journal_closed(&st)?;
        self.schedule(&st, self.opts.write_back);
        Ok(())
    }

    /// Makes the bytes and the record durable: the next mount uploads the file if this one
    /// dies.
    fn journal_closed(&self, st: &Staged) -> Result<(), FsError> {
        self.sync_bytes(st)?;
        self.save(st)
    }

    /// Makes `st`'s bytes durable (fsync of its data file).
    fn sync_bytes(&self, st: &Staged) -> Result<(), FsError> {
        let path = self.dir.data_path(st.id);
        st.file.sync_data().map_err(|e| io_err("fsync", &path, e))
    }

    /// Writes `st`'s record as it is now (closed when no handle is open; its bytes are then
    /// already fsynced). Record writes of one file are serialized, so the last state wins.
    fn save(&self, st: &Staged) -> Result<(), FsError> {
        let _one_at_a_time = st.journal.lock();
        let rec = {
            let i = st.inner.lock();
            i.record(i.opens == 0)
        };
        self.dir.write_record(st.id, &rec)
    }

    fn schedule(&self, st: &Arc<Staged>, after: Duration) {
        let Some(me) = self.me.upgrade() else { return };
        let st = st.clone();
        let version = st.inner.lock().version;
        self.rt.spawn(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            // A later change (or an open) takes over: it schedules its own upload.
            let current = {
                let i = st.inner.lock();
                i.version == version && i.opens == 0 && !i.gone
            };
            if current {
                let _ = me.upload(&st).await;
            }
        });
    }

    /// Uploads `st` unless it is clean; waits for an upload under way first. Returns the
    /// outcome for the file's current generation.
    async fn upload(&self, st: &Arc<Staged>) -> Result<(), FsError> {
        loop {
            let mut settled = st.settled.subscribe();
            let job = {
                let mut i = st.inner.lock();
                if i.gone {
                    return if i.conflict {
                        Err(FsError::Stale {
                            expected: format!("{} (kept in the conflicts folder)", i.path),
                        })
                    } else {
                        Ok(())
                    };
                }
                if i.broken {
                    return Err(i.error.clone().unwrap_or(FsError::Staging(CacheError::io(
                        "write",
                        self.dir.root(),
                        std::io::Error::from_raw_os_error(libc::ENOSPC),
                    ))));
                }
                if i.clean() {
                    return Ok(());
                }
                if i.uploading {
                    None
                } else {
                    i.uploading = true;
                    Some((i.path.clone(), i.size, i.base.clone(), i.mtime, i.version))
                }
            };
            let Some((path, size, base, mtime, version)) = job else {
                let _ = settled.changed().await;
                continue;
            };
            let up = Upload {
                file: st.file.clone(),
                local: self.dir.data_path(st.id),
                size,
                replace: base.clone().map_or(Replace::Nothing, Replace::Etag),
                mtime,
            };
            tracing::debug!(path = path.as_str(), size, "uploading");
            // What the upload holds in memory at most (the multipart parts in flight are
            // bounded by the same total).
            let mib = (size.min(UPLOAD_MEMORY).div_ceil(1 << 20)).max(1) as u32;
            let permit = self.upload_memory.acquire_many(mib).await;
            let res = self.store.put_file(&path, up).await;
            drop(permit);
            let outcome = self.finish_upload(st, &path, size, mtime, version, res);
            st.settled.send_modify(|n| *n += 1);
            return outcome;
        }
    }

    fn finish_upload(
        &self,
        st: &Arc<Staged>,
        path: &str,
        size: u64,
        mtime: SystemTime,
        version: u64,
        res: Result<Option<String>, FsError>,
    ) -> Result<(), FsError> {
        let ino = st.ino;
        let mut i = st.inner.lock();
        i.uploading = false;
        match res {
            Ok(etag) => {
                i.error = None;
                // What is on the server now is the base of any later upload.
                i.base = etag.clone();
                if i.path == path {
                    i.synced = Some(version);
                } else {
                    // Renamed during the upload: the new path still needs its own.
                    i.base = None;
                }
                let (again, idle) = (!i.clean() && i.opens == 0, i.opens == 0 && i.clean());
                drop(i);
                if let Some(e) = &etag {
                    let mut m = self.mtimes.lock();
                    if m.len() >= MAX_REMEMBERED_MTIMES {
                        m.clear();
                    }
                    m.insert(path.to_string(), (e.clone(), mtime));
                }
                if let Some(ev) = self.events() {
                    ev.uploaded(ino, path, size, mtime, etag);
                }
                tracing::info!(path, size, "uploaded");
                if again {
                    self.schedule(st, self.opts.write_back);
                } else if idle {
                    self.unstage_if_idle(ino, st);
                }
                Ok(())
            }
            Err(FsError::Stale { .. }) => {
                i.conflict = true;
                i.gone = true;
                let p = i.path.clone();
                drop(i);
                let kept = self.dir.set_aside(st.id, &p, "conflicts");
                tracing::warn!(
                    path = p.as_str(),
                    kept = ?kept.as_ref().map(|k| k.display().to_string()),
                    "upload refused: the object changed on the server since this copy was based on it; the local copy is kept in the staging conflicts folder"
                );
                self.forget(ino, st);
                Err(FsError::Stale {
                    expected: format!("{p} (kept in the conflicts folder)"),
                })
            }
            Err(e) => {
                i.error = Some(e.clone());
                let retry = !is_final(&e) && i.opens == 0;
                drop(i);
                tracing::warn!(path, error = %crate::error::chain(&e), retry, "upload failed; the file stays staged");
                if retry {
                    self.schedule(st, RETRY_AFTER);
                }
                Err(e)
            }
        }
    }

    /// Stops tracking `ino` (its record and bytes are already handled).
    fn forget(&self, ino: u64, st: &Staged) {
        let removed = {
            let mut files = self.files.lock();
            match files.get(&ino) {
                Some(s) if std::ptr::eq(s.as_ref(), st) => files.remove(&ino).is_some(),
                _ => false,
            }
        };
        if removed {
            self.used.fetch_sub(st.inner.lock().size, Ordering::Relaxed);
            if let Some(ev) = self.events() {
                ev.unstaged(ino);
            }
        }
    }

    /// A clean file nobody has open: its bytes are on the server, the staged copy goes.
    fn unstage_if_idle(&self, ino: u64, st: &Staged) {
        {
            let i = st.inner.lock();
            if !(i.clean() && i.opens == 0 && !i.uploading) {
                return;
            }
        }
        if let Err(e) = self.dir.remove(st.id) {
            tracing::warn!(error = %e, "cannot remove an uploaded file from staging");
        }
        self.forget(ino, st);
    }

    /// Drops a staged file without uploading it (unlinked, or broken).
    fn drop_staged(&self, ino: u64, st: &Staged) {
        st.inner.lock().gone = true;
        if let Err(e) = self.dir.remove(st.id) {
            tracing::warn!(error = %e, "cannot remove a file from staging");
        }
        self.forget(ino, st);
    }

    /// `fsync`: uploads `ino` now (if changed) and returns the upload's outcome.
    pub async fn fsync(&self, ino: u64) -> Result<(), FsError> {
        let Some(st) = self.get(ino) else {
            return Ok(());
        };
        // The file may still be open: its record stays `closed: false` (a crash now
        // quarantines it), but its bytes are made durable before they are sent.
        self.sync_bytes(&st)?;
        self.upload(&st).await
    }

    /// Waits until every staged file under `prefix` (a path, `""` for all) is uploaded; the
    /// first failure is returned after all were tried.
    pub async fn sync_under(&self, prefix: &str) -> Result<(), FsError> {
        let under =
            |p: &str| prefix.is_empty() || p == prefix || p.starts_with(&format!("{prefix}/"));
        let files: Vec<_> = self
            .files
            .lock()
            .values()
            .filter(|s| under(&s.inner.lock().path))
            .cloned()
            .collect();
        use futures::StreamExt;
        let closed = files.into_iter().filter(|st| st.inner.lock().opens == 0);
        let results: Vec<_> = futures::stream::iter(closed)
            .map(|st| async move { self.upload(&st).await })
            .buffer_unordered(SYNC_PARALLEL)
            .collect()
            .await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// At unmount: uploads everything closed, within `limit`. Returns how many files are left
    /// staged (kept for the next mount).
    pub async fn drain(&self, limit: Duration) -> usize {
        let all = self.sync_under("");
        let _ = tokio::time::timeout(limit, all).await;
        self.files
            .lock()
            .values()
            .filter(|s| !s.inner.lock().clean())
            .count()
    }

    /// `unlink` of a staged inode: dropped, never uploaded. Returns the ETag of the server's
    /// object it was based on, if any (which the caller deletes).
    pub fn unlink(&self, ino: u64) -> Option<Option<String>> {
        let st = self.get(ino)?;
        let base = {
            let i = st.inner.lock();
            i.base.clone()
        };
        self.drop_staged(ino, &st);
        Some(base)
    }

    /// A staged inode now lives at `path`, replacing `base` there. Journaled.
    pub fn rename(&self, ino: u64, path: &str, base: Option<String>) -> Result<(), FsError> {
        let Some(st) = self.get(ino) else {
            return Ok(());
        };
        let closed = {
            let mut i = st.inner.lock();
            i.path = path.to_string();
            i.base = base;
            i.version += 1;
            i.opens == 0
        };
        if closed {
            // Its bytes must be durable before a record says closed.
            self.journal_closed(&st)?;
        } else {
            self.save(&st)?;
        }
        if closed {
            self.schedule(&st, self.opts.write_back);
        }
        Ok(())
    }

    /// The paths of staged inodes under directory `prefix` (for a directory rename), with
    /// their inodes.
    pub fn staged_under(&self, prefix: &str) -> Vec<(u64, String)> {
        let p = format!("{prefix}/");
        self.files
            .lock()
            .iter()
            .map(|(ino, s)| (*ino, s.inner.lock().path.clone()))
            .filter(|(_, path)| path.starts_with(&p))
            .collect()
    }

    /// Whether the last close uploads (a zero write-back delay).
    pub fn uploads_in_close(&self) -> bool {
        self.opts.write_back.is_zero()
    }

    pub fn no_delete(&self) -> bool {
        self.opts.no_delete
    }

    /// The ETag of the server's object a staged inode replaces, if any.
    pub fn base_of(&self, ino: u64) -> Option<String> {
        self.get(ino)?.inner.lock().base.clone()
    }

    pub fn free_bytes(&self) -> u64 {
        let room = self
            .opts
            .staging_max
            .saturating_sub(self.used.load(Ordering::Relaxed));
        self.dir
            .free_bytes()
            .saturating_sub(self.opts.min_free)
            .min(room)
    }

    /// Stages a copy of `src`'s bytes as a new, closed file at `path` (inode `ino`), to be
    /// uploaded there.
    pub fn copy_staged(&self, src: &Staged, ino: u64, path: &str) -> Result<(), FsError> {
        let size = src.inner.lock().size;
        self.check_space(size)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let to = self.dir.data_path(id);
        if let Err(e) = std::fs::copy(self.dir.data_path(src.id), &to) {
            let _ = self.dir.remove(id);
            return Err(io_err("copy", &to, e));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&to)
            .map_err(|e| io_err("open", &to, e))?;
        let st = self.insert(ino, id, file, path, None, size);
        st.inner.lock().mtime = src.inner.lock().mtime;
        self.journal_closed(&st)?;
        self.schedule(&st, self.opts.write_back);
        Ok(())
    }

    /// Where conflicting local copies are kept.
    pub fn conflicts_dir(&self) -> PathBuf {
        self.dir.root().join("conflicts")
    }
}

// Tests: `staging`'s own, and the write path through the filesystem in `fs/write_tests.rs`.
