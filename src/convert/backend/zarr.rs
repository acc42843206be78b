//! The `STORE.zarr.cog/` views of [`Convert`]: for a directory `STORE.zarr` holding a v2
//! `.zmetadata` or a v3 root `zarr.json`, one COG per time step of each georeferenced array
//! (see [`crate::convert::zarr_cog`]). Building the view reads the metadata (a v3 root
//! without consolidated metadata: one listing of the store and the `zarr.json` of each folder
//! below it) and the 1-D coordinate arrays; a COG's tiles read only the chunks of its own
//! step. Virtual ETags are the metadata document's ETag plus `.cog`: a rewritten store gives
//! new ETags. Chunk and shard bytes come through the range store; the view, each step's
//! pyramid, its compressed tiles and `preview.png` are entries of the shared memory tier keyed
//! by (store, metadata ETag, what).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use anyhow::anyhow;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{Convert, fail, object_ref, source_etag, stale_as};
use crate::cache::block::ObjectRef;
use crate::cache::memory::DerivedKey;
use crate::convert::cog::{CogLayout, Raster};
use crate::convert::zarr_cog::{CogViews, Store, ZFile, step_raster};
use crate::error::FsError;
use crate::formats::zarr::Shard;
use crate::store::{Backend, Listing, ObjectInfo};

/// A shard object and the byte range of each inner chunk (`None`: not written).
type ShardIndex = (ObjectRef, Vec<Option<Range<u64>>>);

/// Suffix of the view directory beside `STORE.zarr`.
pub(super) const SUFFIX: &str = ".cog";

/// A store and its COG view.
#[derive(Debug)]
pub struct ZarrViews {
    store: Store,
    cogs: CogViews,
    /// The metadata document's info (its ETag names the view's version).
    info: ObjectInfo,
}

impl ZarrViews {
    fn etag(&self) -> Option<&str> {
        self.info.etag.as_deref()
    }

    /// Bytes held, roughly: array metadata and attributes, coordinates, COG layouts.
    fn weight(&self) -> usize {
        let arrays = 4096 * self.store.arrays.len();
        let layouts: usize = self.cogs.layouts.iter().map(super::cog_layout_weight).sum();
        arrays + layouts + 128 * self.cogs.files.len()
    }
}

/// A path below a Zarr COG view: the store's key prefix (`a/STORE.zarr`) and the path inside
/// the view root.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ZPath {
    store: String,
    rest: String,
}

fn is_zarr_dir(name: &str) -> bool {
    name.len() > 5 && name.ends_with(".zarr")
}

/// Splits `path` at its first `STORE.zarr.cog` segment.
pub(super) fn parse_zpath(path: &str) -> Option<ZPath> {
    let mut start = 0;
    for seg in path.split('/') {
        let end = start + seg.len();
        if let Some(stem) = seg.strip_suffix(SUFFIX)
            && is_zarr_dir(stem)
        {
            return Some(ZPath {
                store: format!("{}{stem}", &path[..start]),
                rest: path.get(end + 1..).unwrap_or("").to_string(),
            });
        }
        start = end + 1;
    }
    None
}

fn layout(v: &ZarrViews, k: usize) -> &CogLayout {
    &v.cogs.layouts[v.cogs.steps[k].layout]
}

fn etag(info: &ObjectInfo) -> Option<String> {
    info.etag.as_ref().map(|e| format!("{e}{SUFFIX}"))
}

impl<B: Backend> Convert<B> {
    /// The view directories to add to `listing` of `dir`: one per `*.zarr` directory that
    /// has a `.zmetadata` (v2) or a `zarr.json` (v3).
    pub(super) async fn zarr_cog_dirs(&self, dir: &str, listing: &Listing) -> Vec<String> {
        let names: Vec<String> = listing
            .dirs
            .iter()
            .filter(|d| is_zarr_dir(d))
            .cloned()
            .collect();
        let probes = names.into_iter().map(|d| {
            let store = format!("{dir}{d}");
            async move {
                let found = self.zarr_meta(&store).await.is_ok();
                found.then(|| format!("{d}{SUFFIX}"))
            }
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The store's metadata document (`.zmetadata`, else the v3 root `zarr.json`) and its
    /// info.
    async fn zarr_meta(&self, store: &str) -> Result<(String, ObjectInfo), FsError> {
        let zmeta = format!("{store}/.zmetadata");
        match self.inner.head(&zmeta).await {
            Err(FsError::NotFound) => {
                let root = format!("{store}/zarr.json");
                let info = self.inner.head(&root).await?;
                Ok((root, info))
            }
            got => Ok((zmeta, got?)),
        }
    }

    /// The arrays of a store from its metadata document `meta`. A v3 root without
    /// consolidated metadata: the `zarr.json` of each folder below the root is read.
    async fn zarr_store(&self, store: &str, meta: &str, bytes: &[u8]) -> Result<Store, FsError> {
        if meta.ends_with(".zmetadata") {
            return Store::from_zmetadata(bytes).map_err(|e| fail(meta, e));
        }
        let mut extra = Vec::new();
        if !Store::is_consolidated_v3(bytes) {
            let listing = self.inner.list(&format!("{store}/")).await?;
            let docs = futures::stream::iter(listing.dirs)
                .map(|d| async move {
                    let key = format!("{store}/{d}/zarr.json");
                    match self.inner.get_object(&key).await {
                        Ok((_, rope)) => Ok(serde_json::from_slice::<serde_json::Value>(
                            &rope.to_bytes(),
                        )
                        .ok()
                        .map(|v| (d, v))),
                        Err(FsError::NotFound) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .buffered(8)
                .try_collect::<Vec<_>>()
                .await?;
            extra.extend(docs.into_iter().flatten());
        }
        Store::from_zarr_json(bytes, &extra).map_err(|e| fail(meta, e))
    }

    /// The store's view, kept per (store, metadata ETag). With `etag`, the metadata version a
    /// reader holds, a held view needs no request; else (or to build it) the metadata document
    /// is stat'ed, and one whose ETag is no longer `etag` is stale.
    async fn zarr_views(&self, store: &str, etag: Option<&str>) -> Result<Arc<ZarrViews>, FsError> {
        if let Some(e) = etag
            && let Some(v) = self
                .memory()
                .get(&DerivedKey::of::<ZarrViews>(store, Some(e), "zarr-views"))
                .await
        {
            return Ok(v);
        }
        let (zmeta, info) = self.zarr_meta(store).await?;
        if let Some(e) = etag
            && info.etag.as_deref() != Some(e)
        {
            return Err(FsError::Stale {
                expected: e.to_string(),
            });
        }
        let key = DerivedKey::of::<ZarrViews>(store, info.etag.as_deref(), "zarr-views");
        self.memory()
            .get_or_make(key, async {
                let bytes = self
                    .source
                    .read(&object_ref(&zmeta, &info), 0..info.size)
                    .await?
                    .to_bytes();
                let parsed = self.zarr_store(store, &zmeta, &bytes).await?;
                let mut coords = BTreeMap::new();
                for path in parsed.coords_needed() {
                    let v = self
                        .read_slab(store, info.etag.as_deref(), &parsed, &path, &[], 1)
                        .await?;
                    coords.insert(path, v);
                }
                let cogs = CogViews::new(store, &parsed, &coords);
                let views = ZarrViews {
                    store: parsed,
                    cogs,
                    info,
                };
                let weight = views.weight();
                Ok((Arc::new(views), weight))
            })
            .await
    }

    /// All of the unsharded chunk object `key` (`None`: never written). Its size and ETag are
    /// kept in the memory tier once seen (per store version `meta_etag`), so a later read is
    /// served by the range store without a request; the first is one GET, whose bytes go into
    /// the range store. A chunk rewritten since (stale) is fetched again.
    async fn chunk_bytes(
        &self,
        key: &str,
        meta_etag: Option<&str>,
    ) -> Result<Option<Bytes>, FsError> {
        let id = DerivedKey::of::<ObjectInfo>(key, meta_etag, "object-info");
        if let Some(info) = self.memory().get::<ObjectInfo>(&id).await {
            match self
                .source
                .read(&object_ref(key, &info), 0..info.size)
                .await
            {
                Ok(r) => return Ok(Some(r.to_bytes())),
                Err(FsError::Stale { .. } | FsError::NotFound) => {
                    self.memory().invalidate(&id).await
                }
                Err(e) => return Err(e),
            }
        }
        let (info, rope) = match self.inner.get_object(key).await {
            Ok(got) => got,
            Err(FsError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.source
            .insert_whole(&object_ref(key, &info), rope.clone())
            .await;
        let weight = 128 + info.name.len() + info.etag.as_ref().map_or(0, |e| e.len());
        // Recorded only after its bytes are stored, so a reader of the record finds them.
        let _ = self
            .memory()
            .get_or_make(id, async { Ok((Arc::new(info), weight)) })
            .await;
        Ok(Some(rope.to_bytes()))
    }

    /// The slab of array `var` at `lead` with its last `k` dimensions whole, reading only the
    /// chunks it lies in (a missing chunk is the fill value).
    async fn read_slab(
        &self,
        store: &str,
        meta_etag: Option<&str>,
        parsed: &Store,
        var: &str,
        lead: &[usize],
        k: usize,
    ) -> Result<Vec<f64>, FsError> {
        let meta = parsed
            .arrays
            .get(var)
            .ok_or_else(|| fail(store, anyhow!("no array `{var}`")))?;
        let coords = meta.slab_chunks(lead, k);
        // Sharded arrays: each shard's index, read once (`None`: the shard was never written).
        let mut shards: Vec<(String, &Shard)> = Vec::new();
        for c in &coords {
            if let (key, Some((sh, _))) = meta.chunk_location(var, c)
                && !shards.iter().any(|(k, _)| *k == key)
            {
                shards.push((key, sh));
            }
        }
        // One at a time: a step's slab lies in few shards.
        let mut indexes = std::collections::HashMap::new();
        for (key, sh) in shards {
            let index = self.shard_index(&format!("{store}/{key}"), sh).await?;
            indexes.insert(key, index);
        }
        let indexes = &indexes;
        let chunks: Vec<Option<Vec<f64>>> = futures::stream::iter(coords)
            .map(|c| async move {
                let (rel, inner) = meta.chunk_location(var, &c);
                let key = format!("{store}/{rel}");
                let got = match (inner, indexes.get(&rel)) {
                    (None, _) => self.chunk_bytes(&key, meta_etag).await,
                    (Some(_), Some(None)) => return Ok(None),
                    (Some((_, pos)), Some(Some((shard, ranges)))) => match &ranges[pos] {
                        Some(r) => self.read_exact(shard, r.clone()).await.map(Some),
                        None => return Ok(None),
                    },
                    (Some(_), None) => return Err(fail(&key, anyhow!("shard index not read"))),
                };
                let raw = match got {
                    Ok(Some(b)) => b,
                    Ok(None) | Err(FsError::NotFound) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let m = meta.clone();
                tokio::task::spawn_blocking(move || m.decode_chunk(&raw))
                    .await
                    .map_err(|e| fail(&key, anyhow::Error::new(e).context("decoder task")))?
                    .map(Some)
                    .map_err(|e| fail(&key, e.context(format!("array `{var}`"))))
            })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(meta.assemble(lead, k, &chunks))
    }

    /// A shard and the byte ranges of its inner chunks; `None` when the shard is missing (all
    /// its chunks are the fill value). The index is read through the range store.
    async fn shard_index(&self, key: &str, sh: &Shard) -> Result<Option<ShardIndex>, FsError> {
        let info = match self.inner.head(key).await {
            Ok(i) => i,
            Err(FsError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let range = sh.index_range(info.size).map_err(|e| fail(key, e))?;
        let shard = object_ref(key, &info);
        let bytes = self.read_exact(&shard, range).await?;
        let ranges = sh
            .inner_ranges(&bytes, info.size)
            .map_err(|e| fail(key, e))?;
        Ok(Some((shard, ranges)))
    }

    async fn step_pyramid(
        &self,
        store: &str,
        views: &ZarrViews,
        k: usize,
    ) -> Result<Arc<Vec<Raster>>, FsError> {
        let key = DerivedKey::of::<Vec<Raster>>(store, views.etag(), format!("zpyramid/{k}"));
        self.memory()
            .get_or_make(key, async {
                let step = views.cogs.steps[k].clone();
                let (w, h) = views
                    .store
                    .plane(&step.var)
                    .ok_or_else(|| fail(store, anyhow!("no array `{}`", step.var)))?;
                let slab = self
                    .read_slab(store, views.etag(), &views.store, &step.var, &step.lead, 2)
                    .await?;
                let levels = tokio::task::spawn_blocking(move || {
                    crate::convert::cog::pyramid(step_raster(&step, w, h, &slab), f32::NAN)
                })
                .await
                .map_err(|e| fail(store, anyhow::Error::new(e).context("overview task")))?;
                let weight = levels.iter().map(|r| r.data.len() * 4).sum();
                Ok((Arc::new(levels), weight))
            })
            .await
    }

    pub(super) async fn zarr_list(&self, dir: &str, zp: &ZPath) -> Result<Listing, FsError> {
        let views = self.zarr_views(&zp.store, None).await?;
        let info = &views.info;
        let mut listing = Listing::default();
        let mut any = false;
        for (path, &file) in &views.cogs.files {
            let Some(below) = path.strip_prefix(zp.rest.as_str()) else {
                continue;
            };
            any = true;
            match below.split_once('/') {
                Some((d, _)) => listing.dirs.push(d.to_string()),
                None => listing.files.push(ObjectInfo {
                    name: below.to_string(),
                    size: views.cogs.size(&views.store, file),
                    mtime: info.mtime,
                    etag: etag(info),
                }),
            }
        }
        if !any && !zp.rest.is_empty() {
            return Err(FsError::NotFound);
        }
        Ok(crate::store::finish_listing(dir, listing))
    }

    pub(super) async fn zarr_head(&self, key: &str, zp: &ZPath) -> Result<ObjectInfo, FsError> {
        let views = self.zarr_views(&zp.store, None).await?;
        let &file = views.cogs.files.get(&zp.rest).ok_or(FsError::NotFound)?;
        Ok(ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: views.cogs.size(&views.store, file),
            mtime: views.info.mtime,
            etag: etag(&views.info),
        })
    }

    pub(super) async fn zarr_range(
        &self,
        zp: &ZPath,
        range: Range<u64>,
        expected: Option<&str>,
    ) -> Result<Bytes, FsError> {
        // The view file's ETag names the metadata version the reader holds: no request while
        // that version's view is held.
        let stale = stale_as(expected);
        let meta_etag = source_etag(expected, SUFFIX)?;
        let views = self.zarr_views(&zp.store, meta_etag).await.map_err(stale)?;
        let what = format!("{}{SUFFIX}/{}", zp.store, zp.rest);
        let k = match views.cogs.files.get(&zp.rest).ok_or(FsError::NotFound)? {
            ZFile::Cog(k) => *k,
            ZFile::Preview(k) => {
                let key = DerivedKey::of::<Bytes>(&zp.store, views.etag(), format!("zpreview/{k}"));
                let pyramid = self.step_pyramid(&zp.store, &views, *k);
                let png = self.preview_png(&what, key, pyramid).await.map_err(stale)?;
                let end = range.end.min(png.len() as u64) as usize;
                let start = (range.start as usize).min(end);
                return Ok(png.slice(start..end));
            }
        };
        let prefix = format!("ztile/{k}");
        let tiles = (zp.store.as_str(), views.etag(), prefix.as_str());
        let pyramid = self.step_pyramid(&zp.store, &views, k);
        self.lazy_cog(&what, tiles, views.clone(), layout, k, pyramid, range)
            .await
            .map_err(stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blosc fixture through a local-folder backend: the view lists its steps, a COG
    /// has its announced size, and `preview.png` is rendered once: with the pyramids dropped
    /// and the chunks deleted, it is still served, the same bytes.
    #[tokio::test]
    async fn blosc_store_view_and_cached_preview() {
        use crate::store::object::{Lister, ObjectBackend};
        let dir = tempfile::tempdir().unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/zarr/dataset_3d.zarr");
        let dst = dir.path().join("d.zarr");
        for sub in ["", "dataset", "time", "x", "y"] {
            std::fs::create_dir_all(dst.join(sub)).unwrap();
            for e in std::fs::read_dir(src.join(sub)).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    std::fs::copy(e.path(), dst.join(sub).join(e.file_name())).unwrap();
                }
            }
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let b = Convert::new(ObjectBackend::new(
            Arc::new(store),
            String::new(),
            Lister::Generic,
        ));
        let listing = b.list("").await.unwrap();
        assert!(
            listing.dirs.contains(&"d.zarr.cog".to_string()),
            "{listing:?}"
        );
        let steps = b.list("d.zarr.cog/dataset/").await.unwrap();
        let names: Vec<&str> = steps.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["2022-01-01.tif", "2023-01-01.tif", "preview.png"]);
        let read = |key: &'static str| {
            let b = &b;
            async move {
                let info = b.head(key).await?;
                let rope = b.get_range(key, 0..info.size, info.etag.as_deref()).await?;
                Ok::<_, FsError>((info.size, rope.to_bytes()))
            }
        };
        let (size, tif) = read("d.zarr.cog/dataset/2023-01-01.tif").await.unwrap();
        assert_eq!(tif.len() as u64, size);
        let (size, png) = read("d.zarr.cog/dataset/preview.png").await.unwrap();
        assert_eq!(png.len() as u64, size);
        assert!(png.starts_with(b"\x89PNG"));
        b.memory()
            .invalidate_derived(|k| k.what.starts_with("zpyramid/"))
            .await;
        std::fs::remove_dir_all(dst.join("dataset")).unwrap();
        let (_, again) = read("d.zarr.cog/dataset/preview.png").await.unwrap();
        assert_eq!(again, png);
    }

    #[test]
    fn zpath_splits_at_the_view() {
        assert_eq!(
            parse_zpath("a/s.zarr.cog/T2/1979-10-01.tif"),
            Some(ZPath {
                store: "a/s.zarr".into(),
                rest: "T2/1979-10-01.tif".into()
            })
        );
        assert_eq!(
            parse_zpath("s.zarr.cog/"),
            Some(ZPath {
                store: "s.zarr".into(),
                rest: String::new()
            })
        );
        assert_eq!(parse_zpath("a/s.zarr/T2/0.0"), None);
        assert_eq!(parse_zpath(".zarr.cog/x"), None);
    }
}
