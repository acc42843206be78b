//! Failures of the cache's own storage (the disk tier's directory), with the I/O error.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheErrorKind {
    /// Reading or writing the cache's files failed.
    Io,
    /// The file system holding the cache has no room (ENOSPC) or the user no quota (EDQUOT).
    Full,
    /// A cache file is not a valid entry (bad magic, length or checksum).
    Corrupt,
    /// A memory tier entry holds a value of another kind than its key names (an invariant of
    /// the tier; never expected).
    WrongKind,
}

#[derive(Debug, Clone)]
pub struct CacheError {
    kind: CacheErrorKind,
    /// What was being done: `create`, `write`, `read`, `rename`.
    op: &'static str,
    path: PathBuf,
    /// The I/O error, or for a corrupt entry what is wrong with it.
    source: Arc<dyn Error + Send + Sync + 'static>,
}

/// What is wrong with a corrupt entry.
#[derive(Debug)]
struct Bad(String);

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Bad {}

impl CacheError {
    /// `op` on `path` failed with `e`; a full disk or quota is [`CacheErrorKind::Full`].
    pub fn io(op: &'static str, path: &Path, e: std::io::Error) -> Self {
        let full = e.kind() == std::io::ErrorKind::StorageFull
            || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        Self {
            kind: if full {
                CacheErrorKind::Full
            } else {
                CacheErrorKind::Io
            },
            op,
            path: path.to_path_buf(),
            source: Arc::new(e),
        }
    }

    /// The entry at `path` is not valid: `why`.
    pub fn corrupt(path: &Path, why: impl Into<String>) -> Self {
        Self {
            kind: CacheErrorKind::Corrupt,
            op: "check",
            path: path.to_path_buf(),
            source: Arc::new(Bad(why.into())),
        }
    }

    /// The memory tier's entry `what` holds a value of another kind than its key names.
    pub fn wrong_kind(what: impl Into<String>) -> Self {
        Self {
            kind: CacheErrorKind::WrongKind,
            op: "check",
            path: PathBuf::from("memory tier"),
            source: Arc::new(Bad(what.into())),
        }
    }

    pub fn kind(&self) -> CacheErrorKind {
        self.kind
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match self.kind {
            CacheErrorKind::Full => write!(f, "disk cache full: cannot {} {p}", self.op)?,
            CacheErrorKind::Io => write!(f, "disk cache: cannot {} {p}", self.op)?,
            CacheErrorKind::Corrupt => write!(f, "disk cache entry {p} is corrupt")?,
            CacheErrorKind::WrongKind => write!(f, "memory cache entry of the wrong kind")?,
        }
        write!(f, ": {}", self.source)
    }
}

impl Error for CacheError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_quota_are_full_other_io_is_io() {
        let p = Path::new("/c/x.blk");
        let kind =
            |code| CacheError::io("write", p, std::io::Error::from_raw_os_error(code)).kind();
        assert_eq!(kind(libc::ENOSPC), CacheErrorKind::Full);
        assert_eq!(kind(libc::EDQUOT), CacheErrorKind::Full);
        assert_eq!(kind(libc::EIO), CacheErrorKind::Io);
        let e = CacheError::io("write", p, std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(
            e.to_string()
                .starts_with("disk cache full: cannot write /c/x.blk"),
            "{e}"
        );
        let c = CacheError::corrupt(p, "checksum mismatch");
        assert_eq!(
            c.to_string(),
            "disk cache entry /c/x.blk is corrupt: checksum mismatch"
        );
    }
}
