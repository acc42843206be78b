//! The staging directory of a writable mount, on local disk: the bytes of files written through
//! the mount until they are uploaded, and the journal that lets the next mount finish what a
//! killed one started.
//!
//! Layout, under one folder per source (`staging/<source hash>/`):
//! - `lock`: held with `flock` for the life of the mount, so a second daemon refuses to start;
//! - `data/<id>`: a staged file's bytes;
//! - `journal/<id>.json`: its [`Record`] (key, base ETag, whether it was closed), replaced
//!   atomically (written beside, fsynced, renamed, the folder fsynced);
//! - `quarantine/`: files that were open when a mount died (their bytes may be torn: never
//!   uploaded, kept for the user);
//! - `conflicts/`: local copies that lost to someone else's newer object.
//!
//! Invariants: a record says `closed` only after its data was fsynced; a data file without a
//! record is garbage (its record was removed first, or never written).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::error::{CacheError, FsError};

/// What the journal knows of one staged file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Path relative to the mount root.
    pub path: String,
    /// ETag of the object this copy replaces; `None` for a new key.
    pub base: Option<String>,
    /// Every writer had closed it (and its bytes were fsynced) when the record was written.
    pub closed: bool,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u64,
    pub size: u64,
}

pub fn to_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

pub fn from_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

#[derive(Debug)]
pub struct StagingDir {
    root: PathBuf,
    /// Held (flock) while this value lives.
    _lock: File,
}

fn staging_err(op: &'static str, path: &Path, e: std::io::Error) -> FsError {
    FsError::Staging(CacheError::io(op, path, e))
}

impl StagingDir {
    /// Opens (creating) the staging folder `root` and locks it; fails if another process holds
    /// it.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["data", "journal", "quarantine", "conflicts"] {
            std::fs::create_dir_all(root.join(sub)).with_context(|| {
                format!(
                    "cannot create staging folder {}: check --staging-dir",
                    root.join(sub).display()
                )
            })?;
        }
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "staging folder {} is in use by another geomount: unmount it first, or give this \
                 mount its own --staging-dir",
                root.display()
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn data_path(&self, id: u64) -> PathBuf {
        self.root.join("data").join(id.to_string())
    }

    fn record_path(&self, id: u64) -> PathBuf {
        self.root.join("journal").join(format!("{id}.json"))
    }

    /// A new, empty data file for `id`.
    pub fn create_data(&self, id: u64) -> Result<File, FsError> {
        let path = self.data_path(id);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| staging_err("create", &path, e))
    }

    /// Replaces `id`'s record atomically and durably.
    pub fn write_record(&self, id: u64, rec: &Record) -> Result<(), FsError> {
        let path = self.record_path(id);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(rec).map_err(|e| staging_err("encode", &path, e.into()))?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(self.root.join("journal"))?.sync_all()
        };
        write().map_err(|e| staging_err("write", &path, e))
    }

    /// Forgets `id`: its record first (so a crash in between leaves garbage, not a record
    /// without data), then its bytes.
    pub fn remove(&self, id: u64) -> Result<(), FsError> {
        let rec = self.record_path(id);
        match std::fs::remove_file(&rec) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(staging_err("remove", &rec, e)),
        }
        let _ = File::open(self.root.join("journal")).and_then(|d| d.sync_all());
        let data = self.data_path(id);
        match std::fs::remove_file(&data) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(staging_err("remove", &data, e)),
        }
    }

    /// Moves `id`'s bytes into `folder` (`quarantine` or `conflicts`) under a name made of its
    /// path, and forgets its record. Returns where the bytes are now.
    pub fn set_aside(&self, id: u64, path: &str, folder: &str) -> Result<PathBuf, FsError> {
        let stamp = to_ns(SystemTime::now());
        let name = format!("{}.{stamp}", path.replace('/', "%2F"));
        let to = self.root.join(folder).join(name);
        let from = self.data_path(id);
        std::fs::rename(&from, &to).map_err(|e| staging_err("rename", &from, e))?;
        self.remove(id)?;
        Ok(to)
    }

    /// What a previous mount left: closed files to upload (their ids and records), files that
    /// were open at the crash moved to `quarantine/` (logged), garbage deleted. Also returns
    /// the next free id.
    pub fn recover(&self) -> Result<(Vec<(u64, Record)>, u64)> {
        let mut closed = Vec::new();
        let mut max_id = 0;
        let journal = self.root.join("journal");
        for entry in std::fs::read_dir(&journal)
            .with_context(|| format!("cannot read {}", journal.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                // A record half-written at a crash (`.json.tmp`): the old record still stands.
                let _ = std::fs::remove_file(entry.path());
                continue;
            };
            max_id = max_id.max(id);
            let rec: Option<Record> = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let data_len = std::fs::metadata(self.data_path(id)).map(|m| m.len()).ok();
            match rec {
                Some(r) if r.closed && data_len == Some(r.size) => closed.push((id, r)),
                Some(r) if data_len.is_some() => {
                    let to = self
                        .set_aside(id, &r.path, "quarantine")
                        .map_err(anyhow::Error::from)?;
                    tracing::warn!(
                        path = r.path.as_str(),
                        kept = %to.display(),
                        "a file was open for writing when the previous mount stopped: its bytes may be incomplete, so it was not uploaded; it is kept in the staging quarantine"
                    );
                }
                _ => {
                    tracing::warn!(record = %entry.path().display(), "staging record unreadable or its data is missing: dropped");
                    self.remove(id).map_err(anyhow::Error::from)?;
                }
            }
        }
        let data = self.root.join("data");
        for entry in std::fs::read_dir(&data)? {
            let entry = entry?;
            let id = entry.file_name().to_string_lossy().parse::<u64>().ok();
            max_id = max_id.max(id.unwrap_or(0));
            if id.is_none_or(|id| !self.record_path(id).exists()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        closed.sort_by_key(|(id, _)| *id);
        Ok((closed, max_id + 1))
    }

    /// Bytes free for unprivileged users on the staging file system.
    pub fn free_bytes(&self) -> u64 {
        statvfs(&self.root).map_or(u64::MAX, |s| s.f_bavail * s.f_frsize)
    }
}

/// `statvfs(2)` of `path`.
pub fn statvfs(path: &Path) -> Option<libc::statvfs> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `s` a buffer of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `s`.
    Some(unsafe { s.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, closed: bool, size: u64) -> Record {
        Record {
            path: path.into(),
            base: None,
            closed,
            mtime_ns: 1,
            size,
        }
    }

    #[test]
    fn a_second_daemon_on_one_staging_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _a = StagingDir::open(tmp.path()).unwrap();
        let err = StagingDir::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another geomount"), "{err}");
    }

    #[test]
    fn recovery_uploads_closed_files_and_quarantines_open_ones() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let s = StagingDir::open(tmp.path()).unwrap();
            for (id, path, closed) in [(1, "a/closed.bin", true), (2, "open.bin", false)] {
                let mut f = s.create_data(id).unwrap();
                f.write_all(b"12345").unwrap();
                s.write_record(id, &rec(path, closed, 5)).unwrap();
            }
            // Garbage: data with no record, and a torn record.
            s.create_data(7).unwrap();
            std::fs::write(tmp.path().join("journal/3.json.tmp"), b"{").unwrap();
        }
        let s = StagingDir::open(tmp.path()).unwrap();
        let (closed, next) = s.recover().unwrap();
        assert_eq!(closed, vec![(1, rec("a/closed.bin", true, 5))]);
        assert_eq!(next, 8);
        assert!(!s.data_path(7).exists());
        assert!(!s.data_path(2).exists());
        let q: Vec<_> = std::fs::read_dir(tmp.path().join("quarantine"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(q.len(), 1);
        assert!(q[0].starts_with("open.bin."), "{q:?}");
        assert!(!tmp.path().join("journal/3.json.tmp").exists());
    }
}
