//! The `NAME.nc.zarr/` views of [`Convert`]: beside every NetCDF-4/HDF5 file (`.nc`, `.nc4`,
//! `.h5`, `.hdf5`, `.he5`, `.hdf`), a consolidated Zarr v2 store whose chunks are the file's
//! own chunks ([`crate::convert::nc_zarr`]).
//!
//! Building the view walks the file as its read plan does ([`Walker`]: the same first read,
//! then batched rounds, each read an extent of its own in the range store, so a file planned
//! before, in this mount or on disk from an earlier one, needs no request), then describes it
//! ([`describe`]) from those bytes; the few structures the walk does not fetch (names in a
//! local heap, strings in the global heap) are read as extents of at least [`MIN_READ`] bytes.
//! A chunk file's bytes are the source's at the chunk's range, read with the unit of adjacent
//! chunks of its array it belongs to ([`crate::convert::nc_zarr`]), kept in memory and on disk
//! by that range. The view (its tree) is an entry of the shared
//! memory tier keyed by (source, ETag); view ETags are the source's plus `.zarr`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Convert, fail, object_ref, source_etag, stale_as};
use crate::cache::block::{BlockCache, ObjectRef};
use crate::convert::nc_zarr::{NcFile, Part, Tree, store};
use crate::error::FsError;
use crate::formats::hdf5::describe::{FileDesc, describe};
use crate::formats::hdf5::{FIRST_READ, Step, Walker, is_hdf5_name};
use crate::rope::Rope;
use crate::store::{Backend, Listing, ObjectInfo};

/// Suffix of the view directory beside `NAME.nc`.
pub(super) const SUFFIX: &str = ".zarr";
/// A structure the walk did not fetch is read with at least this many bytes.
const MIN_READ: u64 = 16 << 10;

/// A NetCDF file's Zarr view.
#[derive(Debug)]
pub struct NcView {
    tree: Tree,
    /// The source's info when the view was built (its ETag names the view's version).
    info: ObjectInfo,
}

impl NcView {
    fn etag(&self) -> Option<String> {
        self.info.etag.as_ref().map(|e| format!("{e}{SUFFIX}"))
    }

    /// Bytes held, roughly: paths, ranges and the JSON documents.
    fn weight(&self) -> usize {
        self.tree
            .iter()
            .map(|(p, f)| {
                p.len()
                    + 64
                    + match &f.part {
                        Part::Json(s) => s.len(),
                        Part::Inline(b) => b.len(),
                        Part::Source { .. } => 0,
                    }
            })
            .sum()
    }
}

/// A path below a NetCDF Zarr view: the source key and the path inside the view root.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NPath {
    source: String,
    rest: String,
}

/// Whether a file so named gets a Zarr view.
pub(super) fn has_view(name: &str) -> bool {
    is_hdf5_name(&name.to_ascii_lowercase())
}

/// Splits `path` at its first `NAME.nc.zarr` segment.
pub(super) fn parse_npath(path: &str) -> Option<NPath> {
    let mut start = 0;
    for seg in path.split('/') {
        let end = start + seg.len();
        if let Some(stem) = seg.strip_suffix(SUFFIX)
            && has_view(stem)
        {
            return Some(NPath {
                source: format!("{}{stem}", &path[..start]),
                rest: path.get(end + 1..).unwrap_or("").to_string(),
            });
        }
        start = end + 1;
    }
    None
}

/// The file's bytes for the describing parser: the walk's reads, and more read on demand
/// through the range store (blocking: the parser runs on a blocking thread).
struct Pieces {
    size: u64,
    held: Mutex<BTreeMap<u64, Bytes>>,
    cache: BlockCache,
    obj: ObjectRef,
    runtime: tokio::runtime::Handle,
    /// The first read that failed, reported instead of the parser's error.
    failed: Mutex<Option<FsError>>,
}

impl Pieces {
    fn find(&self, start: u64, end: u64) -> Option<Bytes> {
        let held = self.held.lock();
        let (&at, b) = held.range(..=start).next_back()?;
        let to = at + b.len() as u64;
        (to >= end).then(|| b.slice((start - at) as usize..(end - at) as usize))
    }
}

impl hdf5_reader::storage::Storage for Pieces {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_range(
        &self,
        offset: u64,
        len: usize,
    ) -> hdf5_reader::error::Result<hdf5_reader::storage::StorageBuffer> {
        let end = offset.saturating_add(len as u64);
        if end > self.size {
            return Err(hdf5_reader::error::Error::UnexpectedEof {
                offset,
                needed: len as u64,
                available: self.size.saturating_sub(offset),
            });
        }
        if let Some(b) = self.find(offset, end) {
            return Ok(hdf5_reader::storage::StorageBuffer::from_vec(b.to_vec()));
        }
        let want = offset..end.max(offset + MIN_READ).min(self.size);
        let unit = std::slice::from_ref(&want);
        let got = self.runtime.block_on(crate::reader::file::read_units(
            &self.cache,
            &self.obj,
            unit,
            want.clone(),
        ));
        match got {
            Ok(rope) if rope.len() >= len => {
                let b = rope.to_bytes();
                let out = b.slice(0..len);
                self.held.lock().insert(offset, b);
                Ok(hdf5_reader::storage::StorageBuffer::from_vec(out.to_vec()))
            }
            Ok(rope) => Err(hdf5_reader::error::Error::UnexpectedEof {
                offset,
                needed: len as u64,
                available: rope.len() as u64,
            }),
            Err(e) => {
                let msg = e.to_string();
                self.failed.lock().get_or_insert(e);
                Err(hdf5_reader::error::Error::Io(std::io::Error::other(msg)))
            }
        }
    }
}

impl<B: Backend> Convert<B> {
    /// The view directories to add to a listing with `files`: one per NetCDF/HDF5 file.
    pub(super) fn nc_zarr_dirs(files: &[ObjectInfo]) -> impl Iterator<Item = String> + '_ {
        files
            .iter()
            .filter(|f| has_view(&f.name))
            .map(|f| format!("{}{SUFFIX}", f.name))
    }

    /// The source's view, kept per (source, ETag). With `etag` (the version a reader holds),
    /// a held view needs no request; else the source is stat'ed, and a source whose ETag is no
    /// longer `etag` is stale.
    async fn nc_view(&self, source: &str, etag: Option<&str>) -> Result<Arc<NcView>, FsError> {
        self.view_of(source, etag, "nc-zarr", |info| async move {
            let desc = self.nc_describe(source, &info, 0).await?;
            for (name, why) in &desc.skipped {
                tracing::warn!("{source}: '{name}' left out of the Zarr view: {why}");
            }
            let view = NcView {
                tree: store(&desc),
                info,
            };
            let weight = view.weight();
            Ok((view, weight))
        })
        .await
    }

    /// Walks the file's structures in batched rounds, then describes it from what was read
    /// (with the values of variables of at most `small_values` bytes, see [`describe`]).
    pub(super) async fn nc_describe(
        &self,
        source: &str,
        info: &ObjectInfo,
        small_values: u64,
    ) -> Result<FileDesc, FsError> {
        let obj = object_ref(source, info);
        let mut held = BTreeMap::new();
        let first = 0..FIRST_READ.min(info.size);
        let mut walker = Walker::new(info.size);
        let bytes = self.read_exact(&obj, first).await?;
        walker.feed(0, &bytes);
        held.insert(0, bytes);
        loop {
            match walker.step() {
                Step::Done => break,
                // The describing parser reads what it needs; the walk only batches.
                Step::Unsupported(why) => {
                    tracing::debug!(%source, "the HDF5 walk stops early: {why}");
                    break;
                }
                Step::Need(ranges) => {
                    let got = futures::future::join_all(
                        ranges.iter().map(|r| self.read_exact(&obj, r.clone())),
                    )
                    .await;
                    for (r, b) in ranges.iter().zip(got) {
                        let b = b?;
                        walker.feed(r.start, &b);
                        held.insert(r.start, b);
                    }
                }
            }
        }
        let pieces = Arc::new(Pieces {
            size: info.size,
            held: Mutex::new(held),
            cache: self.source.clone(),
            obj,
            runtime: tokio::runtime::Handle::current(),
            failed: Mutex::new(None),
        });
        let p = pieces.clone();
        let got = tokio::task::spawn_blocking(move || describe(p, small_values))
            .await
            .map_err(|e| fail(source, anyhow::Error::new(e).context("describe task")))?;
        match got {
            Ok(desc) => Ok(desc),
            Err(e) => Err(pieces
                .failed
                .lock()
                .take()
                .unwrap_or_else(|| fail(source, e))),
        }
    }

    pub(super) async fn nc_list(&self, dir: &str, np: &NPath) -> Result<Listing, FsError> {
        let view = self.nc_view(&np.source, None).await?;
        let files = view.tree.iter().map(|(p, f)| (p.as_str(), f.size));
        let listing = super::list_tree(files, &np.rest, &view.info, view.etag())?;
        Ok(crate::store::finish_listing(dir, listing))
    }

    pub(super) async fn nc_head(&self, key: &str, np: &NPath) -> Result<ObjectInfo, FsError> {
        let view = self.nc_view(&np.source, None).await?;
        let file = view.tree.get(&np.rest).ok_or(FsError::NotFound)?;
        Ok(ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: file.size,
            mtime: view.info.mtime,
            etag: view.etag(),
        })
    }

    pub(super) async fn nc_range(
        &self,
        np: &NPath,
        range: Range<u64>,
        expected: Option<&str>,
    ) -> Result<Rope, FsError> {
        let stale = stale_as(expected);
        let src_etag = source_etag(expected, SUFFIX)?;
        let view = self.nc_view(&np.source, src_etag).await.map_err(stale)?;
        let file = view.tree.get(&np.rest).ok_or(FsError::NotFound)?;
        let obj = |_| Some(object_ref(&np.source, &view.info));
        self.tree_range(file, obj, range).await.map_err(stale)
    }

    /// Bytes `range` of view file `file`; `obj(i)` is its source file `i`. A chunk is read
    /// with the unit of adjacent chunks it belongs to, then the range taken from it.
    pub(super) async fn tree_range(
        &self,
        file: &NcFile,
        obj: impl FnOnce(usize) -> Option<ObjectRef>,
        range: Range<u64>,
    ) -> Result<Rope, FsError> {
        let end = range.end.min(file.size);
        let start = range.start.min(end);
        let bytes = match &file.part {
            Part::Json(s) => Bytes::copy_from_slice(&s.as_bytes()[start as usize..end as usize]),
            Part::Inline(b) => Bytes::copy_from_slice(&b[start as usize..end as usize]),
            Part::Source {
                file,
                range: r,
                unit,
            } => {
                if start == end {
                    return Ok(Rope::default());
                }
                let obj = obj(*file).ok_or(FsError::NotFound)?;
                let unit = std::slice::from_ref(unit);
                // Readers of the unit's other chunks meanwhile (a reader's threads) wait for
                // this one GET; spawned, so the unit is kept even if this reader goes away.
                if !self.source.holds_extent(&obj, &unit[0]) {
                    let _ = tokio::spawn(self.source.start_extent_run(&obj, unit)).await;
                }
                let want = r.start + start..r.start + end;
                return crate::reader::file::read_units(&self.source, &obj, unit, want).await;
            }
        };
        Ok(Rope::from(bytes))
    }
}
