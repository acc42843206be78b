//! Object backends. [`Backend`] is the one narrow interface the filesystem needs: list one
//! directory level, stat one key, read one byte range pinned to an ETag. Behaviour such as request
//! counting is added by wrappers ([`metered::Metered`]), not flags in the core.

pub mod build;
pub mod metered;
pub mod multi;
pub mod object;
pub mod s3_list;

use std::fmt::Debug;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::FsError;
use crate::rope::Rope;

/// One object as seen in a listing or a HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name within its directory (no `/`).
    pub name: String,
    pub size: u64,
    pub mtime: SystemTime,
    pub etag: Option<String>,
}

/// What an upload may replace: its precondition on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replace {
    /// Only if no object exists at the key (create-only).
    Nothing,
    /// Only the object with this ETag (the one the local copy was based on).
    Etag(String),
    /// Whatever is there: no precondition (the server does not honour them).
    Anything,
}

/// One upload: all of a local file's bytes become the object.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file: std::sync::Arc<std::fs::File>,
    /// Where `file` is, for messages.
    pub local: std::path::PathBuf,
    pub size: u64,
    pub replace: Replace,
    /// Kept on the object as `x-amz-meta-mtime` (seconds, as rclone writes it).
    pub mtime: SystemTime,
}

/// One directory level: sub-directory names and objects, names relative to the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub dirs: Vec<String>,
    pub files: Vec<ObjectInfo>,
    /// How many requests (pages) the listing took, for the metrics.
    pub requests: u64,
    /// A `dir/` marker object exists for the listed directory itself.
    pub marker: bool,
}

#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// Lists one level below `dir` (`""` for the root, otherwise ending with `/`).
    async fn list(&self, dir: &str) -> Result<Listing, FsError>;
    /// One cheap request that fails like any other would on a wrong bucket, endpoint or key.
    async fn probe(&self) -> Result<(), FsError>;
    /// Stats one object by its path relative to the source root.
    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError>;
    /// Reads `range` of `key`; with `etag`, fails with [`FsError::Stale`] if the object changed.
    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError>;
    /// Reads all of `key`: its info (size, ETag) and bytes. Backends that can do it in one GET
    /// override this; the default takes a HEAD and a ranged GET. Wrappers must forward it.
    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        let info = self.head(key).await?;
        let bytes = self
            .get_range(key, 0..info.size, info.etag.as_deref())
            .await?;
        Ok((info, bytes))
    }
    /// Uploads `up` as `key` and returns the new object's ETag. A failed precondition is
    /// [`FsError::Stale`]. The default (a read-only backend, a converted view) refuses.
    async fn put_file(&self, _key: &str, _up: Upload) -> Result<Option<String>, FsError> {
        Err(FsError::ReadOnly)
    }
    /// Deletes `key` (a missing key is no error).
    async fn delete(&self, _key: &str) -> Result<(), FsError> {
        Err(FsError::ReadOnly)
    }
    /// Before a writable mount serves: learns what the server honours (conditional PUT), with
    /// a few requests on a key of its own. Returns warnings to log.
    async fn prepare_writes(&self) -> Result<Vec<String>, FsError> {
        Ok(Vec::new())
    }
    /// Whether `key`'s bytes are made here from other objects (a converted view) rather than
    /// stored: the block cache reads such a key from the backend that derives it, and keeps
    /// only the sources' bytes on disk, not these. A wrapper must forward it.
    fn is_derived(&self, _key: &str) -> bool {
        false
    }
}

/// A shared backend is a backend (so a wrapper can hold one that others also hold).
#[async_trait]
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    async fn list(&self, dir: &str) -> Result<Listing, FsError> {
        (**self).list(dir).await
    }

    async fn probe(&self) -> Result<(), FsError> {
        (**self).probe().await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        (**self).head(key).await
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError> {
        (**self).get_range(key, range, etag).await
    }

    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        (**self).get_object(key).await
    }

    async fn put_file(&self, key: &str, up: Upload) -> Result<Option<String>, FsError> {
        (**self).put_file(key, up).await
    }

    async fn delete(&self, key: &str) -> Result<(), FsError> {
        (**self).delete(key).await
    }

    async fn prepare_writes(&self) -> Result<Vec<String>, FsError> {
        (**self).prepare_writes().await
    }

    fn is_derived(&self, key: &str) -> bool {
        (**self).is_derived(key)
    }
}

/// Whether `name` can be a file name: non-empty, not `.`/`..`, no `/` or NUL, at most 255 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.contains('/')
        && !name.contains('\0')
}

/// Sorts and filters a raw listing: invalid names are skipped with a debug log.
pub fn finish_listing(dir: &str, mut listing: Listing) -> Listing {
    listing.dirs.retain(|d| {
        let ok = valid_name(d);
        if !ok {
            tracing::debug!(
                dir,
                name = d.as_str(),
                "skipping prefix that cannot be a directory name"
            );
        }
        ok
    });
    listing.files.retain(|f| {
        let ok = valid_name(&f.name);
        if !ok {
            tracing::debug!(
                dir,
                name = f.name.as_str(),
                "skipping key that cannot be a file name"
            );
        }
        ok
    });
    listing.dirs.sort();
    listing.dirs.dedup();
    listing.files.sort_by(|a, b| a.name.cmp(&b.name));
    listing.files.dedup_by(|a, b| a.name == b.name);
    listing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_files_are_rejected() {
        assert!(valid_name("a b %+ü"));
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name(&"x".repeat(255)));
        assert!(!valid_name(&"x".repeat(256)));
    }
}
