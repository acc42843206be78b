//! The `STORE.zarr.cog/` views of [`Convert`]: for a directory `STORE.zarr` holding a v2
//! `.zmetadata`, one COG per time step of each georeferenced array (see
//! [`crate::convert::zarr_cog`]). Building the view reads `.zmetadata` and the 1-D coordinate
//! arrays; a COG's tiles read only the chunks of its own step. Virtual ETags are the
//! `.zmetadata` ETag plus `.cog`: a rewritten store gives new ETags.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use anyhow::anyhow;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{Convert, cache_key, fail};
use crate::convert::cog::{CogLayout, Raster};
use crate::convert::zarr_cog::{CogViews, Store, ZFile, step_raster};
use crate::error::FsError;
use crate::store::{Backend, Listing, ObjectInfo};

/// Suffix of the view directory beside `STORE.zarr`.
pub(super) const SUFFIX: &str = ".cog";

/// A store and its COG view.
#[derive(Debug)]
pub struct ZarrViews {
    store: Store,
    cogs: CogViews,
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
    /// has a `.zmetadata`.
    pub(super) async fn zarr_cog_dirs(&self, dir: &str, listing: &Listing) -> Vec<String> {
        let names: Vec<String> = listing
            .dirs
            .iter()
            .filter(|d| is_zarr_dir(d))
            .cloned()
            .collect();
        let probes = names.into_iter().map(|d| {
            let key = format!("{dir}{d}/.zmetadata");
            async move {
                let found = self.inner.head(&key).await.is_ok();
                found.then(|| format!("{d}{SUFFIX}"))
            }
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// `.zmetadata`'s info and the store's view (cached per ETag).
    async fn zarr_views(&self, store: &str) -> Result<(ObjectInfo, Arc<ZarrViews>), FsError> {
        let zmeta = format!("{store}/.zmetadata");
        let info = self.inner.head(&zmeta).await?;
        let key = cache_key(&zmeta, info.etag.as_deref());
        let views = self
            .zarr_views
            .try_get_with(key, async {
                let bytes = self
                    .read_all(&zmeta, 0..info.size, info.etag.as_deref())
                    .await?;
                let parsed = Store::from_zmetadata(&bytes).map_err(|e| fail(&zmeta, e))?;
                let mut coords = BTreeMap::new();
                for path in parsed.coords_needed() {
                    let v = self.read_slab(store, &parsed, &path, &[], 1).await?;
                    coords.insert(path, v);
                }
                let cogs = CogViews::new(&parsed, &coords);
                Ok::<_, FsError>(Arc::new(ZarrViews {
                    store: parsed,
                    cogs,
                }))
            })
            .await
            .map_err(|e| (*e).clone())?;
        Ok((info, views))
    }

    /// The slab of array `var` at `lead` with its last `k` dimensions whole, reading only the
    /// chunks it lies in (a missing chunk is the fill value).
    async fn read_slab(
        &self,
        store: &str,
        parsed: &Store,
        var: &str,
        lead: &[usize],
        k: usize,
    ) -> Result<Vec<f64>, FsError> {
        let meta = parsed
            .arrays
            .get(var)
            .ok_or_else(|| fail(store, anyhow!("no array `{var}`")))?;
        let chunks: Vec<Option<Vec<f64>>> = futures::stream::iter(meta.slab_chunks(lead, k))
            .map(|c| async move {
                let key = format!("{store}/{}", meta.chunk_key(var, &c));
                let raw = match self.inner.get_object(&key).await {
                    Ok((_, rope)) => rope.to_bytes(),
                    Err(FsError::NotFound) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let m = meta.clone();
                tokio::task::spawn_blocking(move || m.decode_chunk(&raw))
                    .await
                    .map_err(|e| fail(&key, anyhow!("decoder task: {e}")))?
                    .map(Some)
                    .map_err(|e| fail(&key, e))
            })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(meta.assemble(lead, k, &chunks))
    }

    async fn step_pyramid(
        &self,
        store: &str,
        info: &ObjectInfo,
        views: &ZarrViews,
        k: usize,
    ) -> Result<Arc<Vec<Raster>>, FsError> {
        let key = format!(
            "{}\0z{k}",
            cache_key(&format!("{store}/.zmetadata"), info.etag.as_deref())
        );
        self.pyramids
            .try_get_with(key, async {
                let step = views.cogs.steps[k].clone();
                let (w, h) = views
                    .store
                    .plane(&step.var)
                    .ok_or_else(|| fail(store, anyhow!("no array `{}`", step.var)))?;
                let slab = self
                    .read_slab(store, &views.store, &step.var, &step.lead, 2)
                    .await?;
                let levels = tokio::task::spawn_blocking(move || {
                    crate::convert::cog::pyramid(step_raster(&step, w, h, &slab), f32::NAN)
                })
                .await
                .map_err(|e| fail(store, anyhow!("overview task: {e}")))?;
                Ok::<_, FsError>(Arc::new(levels))
            })
            .await
            .map_err(|e: Arc<FsError>| (*e).clone())
    }

    pub(super) async fn zarr_list(&self, dir: &str, zp: &ZPath) -> Result<Listing, FsError> {
        let (info, views) = self.zarr_views(&zp.store).await?;
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
                    etag: etag(&info),
                }),
            }
        }
        if !any && !zp.rest.is_empty() {
            return Err(FsError::NotFound);
        }
        Ok(crate::store::finish_listing(dir, listing))
    }

    pub(super) async fn zarr_head(&self, key: &str, zp: &ZPath) -> Result<ObjectInfo, FsError> {
        let (info, views) = self.zarr_views(&zp.store).await?;
        let &file = views.cogs.files.get(&zp.rest).ok_or(FsError::NotFound)?;
        Ok(ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: views.cogs.size(&views.store, file),
            mtime: info.mtime,
            etag: etag(&info),
        })
    }

    pub(super) async fn zarr_range(
        &self,
        zp: &ZPath,
        range: Range<u64>,
        expected: Option<&str>,
    ) -> Result<Bytes, FsError> {
        let (info, views) = self.zarr_views(&zp.store).await?;
        if let Some(expected) = expected
            && etag(&info).as_deref() != Some(expected)
        {
            return Err(FsError::Stale {
                expected: expected.to_string(),
            });
        }
        let k = match views.cogs.files.get(&zp.rest).ok_or(FsError::NotFound)? {
            ZFile::Cog(k) => *k,
            ZFile::Preview(k) => {
                let pyramid = self.step_pyramid(&zp.store, &info, &views, *k).await?;
                let png = match pyramid.last() {
                    Some(r) => crate::convert::preview::render(r),
                    None => Vec::new(),
                };
                let end = range.end.min(png.len() as u64) as usize;
                let start = (range.start as usize).min(end);
                return Ok(Bytes::from(png).slice(start..end));
            }
        };
        let tile_key = format!(
            "{}\0z{k}",
            cache_key(&format!("{}/.zmetadata", zp.store), info.etag.as_deref())
        );
        let pyramid = self.step_pyramid(&zp.store, &info, &views, k);
        let what = format!("{}{SUFFIX}/{}", zp.store, zp.rest);
        self.lazy_cog(&what, &tile_key, views.clone(), layout, k, pyramid, range)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
