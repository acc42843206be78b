//! The one errno table: every filesystem error is an [`FsError`] and [`FsError::errno`] is the
//! only place that turns one into an errno. The match is exhaustive (down to the kinds of the
//! typed errors), so a new variant or kind must choose its errno here.
//!
//! Each layer's failures have their own type, which keeps what went wrong as a kind and the
//! underlying error as its source: [`StoreError`] (object store requests), [`FormatError`] (bytes
//! of a format that do not parse), [`CacheError`] (the cache's own storage), [`ViewError`] (a converted view's failure). They fold into
//! [`FsError`] with `?` (`From`), so a caller above never classifies an error by its text.

mod cache;
mod format;
mod store;
mod view;

pub use cache::{CacheError, CacheErrorKind};
pub use format::{Format, FormatError};
pub use store::{
    CredentialsError, ErrorResponse, NoAnswer, StoreError, StoreErrorKind, Unavailable,
};
pub use view::ViewError;

/// Errors surfaced by filesystem operations.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("read-only file system")]
    ReadOnly,
    #[error("object changed since it was opened (ETag {expected} no longer matches)")]
    Stale { expected: String },
    /// An object store request failed (other than a missing or changed object, which are
    /// [`FsError::NotFound`] and [`FsError::Stale`]).
    #[error(transparent)]
    Store(StoreError),
    /// Bytes of a known format do not parse.
    #[error(transparent)]
    Format(FormatError),
    /// The cache's own storage failed.
    #[error(transparent)]
    Cache(CacheError),
    #[error("bad file handle")]
    BadHandle,
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    /// A rename this mount cannot do in place (`mv` then copies and deletes).
    #[error("cannot rename across this boundary: {0}")]
    CrossDevice(&'static str),
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    /// A file was unstaged (uploaded) between two steps of an open: it is opened from the
    /// server instead. Never leaves the filesystem layer.
    #[error("the file is no longer staged")]
    NotStaged,
    /// The staging area of a writable mount failed (a full disk is ENOSPC).
    #[error("staging: {0}")]
    Staging(CacheError),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("no such attribute")]
    NoAttribute,
    /// A converted view cannot be built or served (a grid, codec or layout it does not
    /// support, a source that contradicts its inventory); it names the view or its source.
    #[error(transparent)]
    View(ViewError),
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotADirectory => libc::ENOTDIR,
            FsError::IsADirectory => libc::EISDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::Stale { .. } => libc::ESTALE,
            FsError::Store(e) => match e.kind() {
                StoreErrorKind::NotFound => libc::ENOENT,
                StoreErrorKind::Stale => libc::ESTALE,
                StoreErrorKind::AccessDenied | StoreErrorKind::Credentials => libc::EACCES,
                StoreErrorKind::Unavailable(
                    Unavailable::Timeout | Unavailable::Connect | Unavailable::Interrupted,
                ) => libc::EIO,
                StoreErrorKind::Remote { .. } | StoreErrorKind::ShortRead { .. } => libc::EIO,
            },
            FsError::Format(_) => libc::EIO,
            // A read-only filesystem reports its cache's trouble as an I/O error; a full cache
            // disk never fails a read (the block is served without being kept).
            FsError::Cache(e) => match e.kind() {
                CacheErrorKind::Io
                | CacheErrorKind::Full
                | CacheErrorKind::Corrupt
                | CacheErrorKind::WrongKind => libc::EIO,
            },
            FsError::BadHandle => libc::EBADF,
            FsError::Exists => libc::EEXIST,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::CrossDevice(_) => libc::EXDEV,
            FsError::NotPermitted(_) => libc::EPERM,
            FsError::NotStaged => libc::EAGAIN,
            FsError::Staging(e) => match e.kind() {
                CacheErrorKind::Full => libc::ENOSPC,
                CacheErrorKind::Io | CacheErrorKind::Corrupt | CacheErrorKind::WrongKind => {
                    libc::EIO
                }
            },
            FsError::InvalidArgument(_) => libc::EINVAL,
            FsError::NoAttribute => libc::ENODATA,
            FsError::View(_) => libc::EIO,
        }
    }

    /// Whether this error is an expected outcome (a missing name) rather than a fault worth a warning.
    pub fn is_expected(&self) -> bool {
        matches!(
            self,
            FsError::NotFound
                | FsError::NoAttribute
                | FsError::ReadOnly
                | FsError::Exists
                | FsError::NotEmpty
                | FsError::CrossDevice(_)
        )
    }

    /// The converted view (or source) `file` fails for `reason`.
    pub fn view(
        file: impl Into<String>,
        reason: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        FsError::View(ViewError::new(file, reason))
    }
}

/// A store failure is an [`FsError`]; a missing or changed object becomes the plain
/// [`FsError::NotFound`] and [`FsError::Stale`] that the layers above match on.
impl From<StoreError> for FsError {
    fn from(e: StoreError) -> Self {
        match e.kind() {
            StoreErrorKind::NotFound => FsError::NotFound,
            StoreErrorKind::Stale => FsError::Stale {
                expected: e.what().to_string(),
            },
            _ => FsError::Store(e),
        }
    }
}

impl From<FormatError> for FsError {
    fn from(e: FormatError) -> Self {
        FsError::Format(e)
    }
}

impl From<ViewError> for FsError {
    fn from(e: ViewError) -> Self {
        FsError::View(e)
    }
}

impl From<CacheError> for FsError {
    fn from(e: CacheError) -> Self {
        FsError::Cache(e)
    }
}

/// Formats an error with its sources, one line; a source whose text is already shown is skipped.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let t = e.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_distinct_meaningful_errno() {
        assert_eq!(FsError::NotFound.errno(), libc::ENOENT);
        assert_eq!(FsError::ReadOnly.errno(), libc::EROFS);
        assert_eq!(
            FsError::Stale {
                expected: "x".into()
            }
            .errno(),
            libc::ESTALE
        );
        let store = |kind| FsError::Store(StoreError::new(kind, "GET k"));
        assert_eq!(store(StoreErrorKind::AccessDenied).errno(), libc::EACCES);
        assert_eq!(store(StoreErrorKind::Credentials).errno(), libc::EACCES);
        assert_eq!(
            store(StoreErrorKind::Unavailable(Unavailable::Timeout)).errno(),
            libc::EIO
        );
        assert_eq!(
            store(StoreErrorKind::Remote { status: Some(500) }).errno(),
            libc::EIO
        );
        let short = FsError::from(StoreError::short_read("GET k bytes 0-9", 10, 4));
        assert_eq!(short.errno(), libc::EIO);
        assert_eq!(
            short.to_string(),
            "short read: GET k bytes 0-9: wanted 10 bytes, server sent 4"
        );
        assert_eq!(FsError::view("a.grib2", "no grid").errno(), libc::EIO);
    }

    #[test]
    fn missing_and_changed_objects_fold_into_the_plain_variants() {
        let nf: FsError = StoreError::new(StoreErrorKind::NotFound, "HEAD k").into();
        assert!(matches!(nf, FsError::NotFound));
        let stale: FsError = StoreError::new(StoreErrorKind::Stale, "\"e1\"").into();
        assert!(matches!(stale, FsError::Stale { expected } if expected == "\"e1\""));
        let denied: FsError = StoreError::new(StoreErrorKind::AccessDenied, "HEAD k").into();
        assert!(matches!(&denied, FsError::Store(e) if e.kind() == StoreErrorKind::AccessDenied));
    }

    #[test]
    fn the_source_chain_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e: FsError =
            StoreError::new(StoreErrorKind::Unavailable(Unavailable::Connect), "GET k")
                .with_source(io)
                .into();
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
