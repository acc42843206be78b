//! The one errno table: every filesystem error is an [`FsError`] and [`FsError::errno`] is the
//! only place that turns one into an errno. The match is exhaustive, so a new variant must
//! choose its errno here.

use std::fmt;

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
    #[error("access denied by the server: {0}")]
    AccessDenied(String),
    #[error("request timed out or the server is unreachable: {0}")]
    Unavailable(String),
    #[error("remote I/O error: {0}")]
    Remote(String),
    #[error("bad file handle")]
    BadHandle,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("no such attribute")]
    NoAttribute,
    #[error("converted view failed: {0}")]
    Convert(String),
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotADirectory => libc::ENOTDIR,
            FsError::IsADirectory => libc::EISDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::Stale { .. } => libc::ESTALE,
            FsError::AccessDenied(_) => libc::EACCES,
            FsError::Unavailable(_) => libc::EIO,
            FsError::Remote(_) => libc::EIO,
            FsError::BadHandle => libc::EBADF,
            FsError::InvalidArgument(_) => libc::EINVAL,
            FsError::NoAttribute => libc::ENODATA,
            FsError::Convert(_) => libc::EIO,
        }
    }

    /// Whether this error is an expected outcome (a missing name) rather than a fault worth a warning.
    pub fn is_expected(&self) -> bool {
        matches!(
            self,
            FsError::NotFound | FsError::NoAttribute | FsError::ReadOnly
        )
    }
}

/// Classifies an object_store error. `what` names the object or prefix for the message.
pub fn from_object_store(err: &object_store::Error, what: impl fmt::Display) -> FsError {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => FsError::NotFound,
        E::Precondition { .. } | E::NotModified { .. } => FsError::Stale {
            expected: what.to_string(),
        },
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            FsError::AccessDenied(format!("{what}: {err}"))
        }
        other => {
            let text = format!("{what}: {}", chain(other));
            if looks_unavailable(&text) {
                FsError::Unavailable(text)
            } else {
                FsError::Remote(text)
            }
        }
    }
}

/// Formats an error with its sources, one line.
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

fn looks_unavailable(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "timed out",
        "timeout",
        "connection refused",
        "error sending request",
        "connect",
        "retry",
    ]
    .iter()
    .any(|k| t.contains(k))
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
        assert_eq!(FsError::Unavailable("x".into()).errno(), libc::EIO);
    }

    #[test]
    fn object_store_errors_classify() {
        let nf = object_store::Error::NotFound {
            path: "a".into(),
            source: "gone".into(),
        };
        assert!(matches!(from_object_store(&nf, "a"), FsError::NotFound));
        let pre = object_store::Error::Precondition {
            path: "a".into(),
            source: "etag".into(),
        };
        assert_eq!(from_object_store(&pre, "a").errno(), libc::ESTALE);
    }
}
