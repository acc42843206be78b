//! Entry points for the fuzz targets (`fuzz/`) into parsers that are private to their modules.
//! Each calls the product's own code path unchanged; none is used by the product itself.
//! Public parsers (TIFF, GRIB2, Zarr metadata, netrc, config files, mount options) are called
//! by the targets directly.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::disk;
use crate::error::{CacheError, FormatError};
use crate::formats::hdf5::describe::{FileDesc, describe};
use crate::formats::zarr::parse_v2_dtype;
use crate::store::ObjectInfo;

/// A Blosc1 frame decoded to at most `max` bytes (`crate::convert::blosc::decode`).
pub fn blosc_decode(src: &[u8], max: usize) -> anyhow::Result<Vec<u8>> {
    crate::convert::blosc::decode(src, max)
}

/// One Zarr v2 chunk of `len` elements of `dtype` (`<f4`, `>i2`, ...) decoded by the pipeline
/// of `compressor` (`zlib`, `gzip`, `zstd`, `blosc`, or none) after a `shuffle` filter of
/// that element size, when given: the Zarr-COG view's chunk decoder.
pub fn zarr_chunk_decode(
    compressor: Option<&str>,
    shuffle: Option<u64>,
    dtype: &str,
    raw: &[u8],
    len: usize,
) -> anyhow::Result<Vec<f64>> {
    use crate::convert::zarr_cog::codecs::Pipeline;
    let dt = parse_v2_dtype(dtype)?;
    let comp = compressor.map_or(serde_json::Value::Null, |c| serde_json::json!({ "id": c }));
    let filters = match shuffle {
        Some(n) => serde_json::json!([{ "id": "shuffle", "elementsize": n }]),
        None => serde_json::Value::Null,
    };
    Pipeline::from_v2(&serde_json::json!("C"), &comp, &filters, dt)?.decode(raw, dt, len)
}

/// A disk cache entry file's bytes checked as the cache reads them back: the payload.
pub fn disk_entry(buf: Vec<u8>, ident: u64, len: Option<usize>) -> Result<Bytes, CacheError> {
    disk::check_entry(Path::new("fuzz-entry"), buf, ident, len)
}

/// A disk cache attribute record's payload read back as the object's attributes.
pub fn disk_attr(key: &str, payload: &[u8], max_age: Duration) -> Option<ObjectInfo> {
    disk::attr_record(key, payload, max_age)
}

/// What an S3 ListObjectsV2 answer body gives for `prefix` (`None`: unreadable), with the
/// continuation token, and the (code, message) the same body gives as an error answer.
pub fn s3_list_bodies(
    body: &[u8],
    prefix: &str,
) -> (
    Option<crate::store::s3_list::Page>,
    crate::store::s3_list::ErrorBody,
) {
    crate::store::s3_list::read_bodies(body, prefix)
}

/// AWS profile `name` of the given credentials and config file texts: its settings and
/// whether its keys resolve.
pub fn aws_profile(
    name: &str,
    credentials: &str,
    config: &str,
) -> (
    anyhow::Result<crate::credentials::aws_profile::ProfileSettings>,
    anyhow::Result<()>,
) {
    crate::credentials::aws_profile::profile_from_texts(name, credentials, config)
}

/// The NetCDF-as-Zarr description of an HDF5 file held in memory, with the values of its
/// small variables (as folder views read them).
pub fn hdf5_describe(file: &[u8]) -> Result<FileDesc, FormatError> {
    let storage = std::sync::Arc::new(hdf5_reader::storage::BytesStorage::new(file.to_vec()));
    describe(storage, 64 << 10)
}
