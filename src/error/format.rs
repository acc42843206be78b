//! Bytes of a known format that do not parse: which format, where, and the parser's own error.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The formats geomount parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zarr,
    Tiff,
    Grib2,
    Hdf5,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Zarr => "Zarr",
            Format::Tiff => "TIFF",
            Format::Grib2 => "GRIB2",
            Format::Hdf5 => "HDF5",
        })
    }
}

/// One parse failure. The source is the format's own error (a parser's error enum, a JSON
/// error); [`FormatError::invalid`] describes a rule the bytes break in words.
#[derive(Debug, Clone)]
pub struct FormatError {
    format: Format,
    /// The object and the structure in it: `'a.grib2' message 3`, `'s.zarr/T2/.zarray'`.
    what: String,
    /// Byte offset in the object where the bytes stop making sense, when known.
    at: Option<u64>,
    source: Arc<dyn Error + Send + Sync + 'static>,
}

/// A broken rule of a format, in words.
#[derive(Debug)]
struct Invalid(String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Invalid {}

impl FormatError {
    pub fn new(
        format: Format,
        what: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            format,
            what: what.into(),
            at: None,
            source: Arc::from(source.into()),
        }
    }

    /// The bytes break a rule of the format that `problem` states.
    pub fn invalid(format: Format, what: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::new(format, what, Invalid(problem.into()))
    }

    /// The same failure, in the object `object` (a key): parsers name the structure, the
    /// caller that knows which object it read adds its name.
    pub fn of(mut self, object: impl fmt::Display) -> Self {
        self.what = if self.what.is_empty() {
            format!("'{object}'")
        } else {
            format!("'{object}' {}", self.what)
        };
        self
    }

    /// Where in the object the failure is.
    pub fn at(mut self, offset: u64) -> Self {
        self.at = Some(offset);
        self
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn offset(&self) -> Option<u64> {
        self.at
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable {} {}", self.format, self.what)?;
        if let Some(at) = self.at {
            write!(f, " at byte {at}")?;
        }
        write!(f, ": {}", super::chain(self.source.as_ref()))
    }
}

impl Error for FormatError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FsError;

    #[test]
    fn a_format_error_names_format_place_and_cause_and_is_eio() {
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = FormatError::new(Format::Zarr, "'s.zarr/.zmetadata'", json).at(1);
        let msg = e.to_string();
        assert!(
            msg.starts_with("unreadable Zarr 's.zarr/.zmetadata' at byte 1: EOF"),
            "{msg}"
        );
        assert!(e.source().unwrap().is::<serde_json::Error>());
        let fs: FsError = FormatError::invalid(Format::Grib2, "'a.grib2'", "no GRIB magic").into();
        assert_eq!(fs.errno(), libc::EIO);
        assert_eq!(fs.to_string(), "unreadable GRIB2 'a.grib2': no GRIB magic");
    }
}
