//! Failures of converted views: the file (a view, or the source it is built from) and why,
//! the reason's own errors kept as its source chain.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A converted view that cannot be built or served: a grid, codec or layout it does not
/// support, source bytes that do not parse ([`super::FormatError`] in the chain), values that
/// do not decode, a worker task that failed. Always EIO for that file only.
#[derive(Debug, Clone)]
pub struct ViewError {
    /// The view's path, or the source object's key.
    file: String,
    source: Arc<dyn Error + Send + Sync + 'static>,
}

impl ViewError {
    pub fn new(
        file: impl Into<String>,
        reason: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            file: file.into(),
            source: Arc::from(reason.into()),
        }
    }

    /// The same failure, said to be in `place` of the file (`message 3`).
    pub fn within(self, place: impl fmt::Display) -> Self {
        Self {
            file: self.file,
            source: Arc::new(Within {
                place: place.to_string(),
                source: self.source,
            }),
        }
    }

    /// The view or source the failure is of.
    pub fn file(&self) -> &str {
        &self.file
    }
}

/// A place in a file, as a link of the chain: its text is the place, its source the failure.
#[derive(Debug)]
struct Within {
    place: String,
    source: Arc<dyn Error + Send + Sync + 'static>,
}

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.place)
    }
}

impl Error for Within {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "converted view failed: {}: {}",
            self.file,
            super::chain(self.source.as_ref())
        )
    }
}

impl Error for ViewError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Format, FormatError, FsError};

    #[test]
    fn a_view_error_names_the_file_the_place_and_the_reason_and_keeps_the_chain() {
        let parse = FormatError::invalid(Format::Grib2, "section 0", "no GRIB magic").at(32);
        let e: FsError = ViewError::new("m/a.grib2", parse)
            .within("message 2")
            .into();
        assert_eq!(e.errno(), libc::EIO);
        assert_eq!(
            e.to_string(),
            "converted view failed: m/a.grib2: message 2: unreadable GRIB2 section 0 at byte 32: no GRIB magic"
        );
        let chain = std::iter::successors(std::error::Error::source(&e), |&e| e.source());
        let found = chain
            .filter_map(|e| e.downcast_ref::<FormatError>())
            .next()
            .expect("the format error is in the chain");
        assert_eq!(found.offset(), Some(32));
    }
}
