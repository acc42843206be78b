//! [`Convert`]: a [`Backend`] wrapper adding the converted views beside the objects they come
//! from. For every `NAME.grib2` / `NAME.grb2` a listing also shows the directories
//! `NAME.grib2.zarr/` and `NAME.grib2.cog/`; `head` and `get_range` on keys below them make
//! the bytes. Virtual ETags are the source's ETag plus the view kind, so a replaced source
//! gives new ETags (and ESTALE to open files, as for any object).
//!
//! Only the bytes needed are read: the `.idx` sidecar (or each message's 16-byte section 0
//! when there is none), the first KiB of each message for its metadata, and a whole message
//! only when one of its fields is read. Decoded fields, pyramids, tiles and rendered
//! `preview.png` files are cached.

use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use moka::future::Cache;

use super::cog::Raster;
use super::grib::{Header, decode, parse_header, parse_idx};
use super::grib_view::{Axis, Content, Message, VFile, Views, assign_names, north_up};
use crate::error::FsError;
use crate::formats::grib2::{
    HEAD_BYTES, IdxLine, PROBE_BYTES, find_magic, message_at, message_ranges, section0_len,
};
use crate::rope::Rope;
use crate::store::{Backend, Listing, ObjectInfo};

/// Which view a virtual path is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zarr,
    Cog,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Zarr => ".zarr",
            Kind::Cog => ".cog",
        }
    }
}

/// A path below a view: the source key, the view and the path inside the view root.
#[derive(Debug, PartialEq, Eq)]
struct VPath {
    source: String,
    kind: Kind,
    rest: String,
}

fn is_grib(name: &str) -> bool {
    name.ends_with(".grib2") || name.ends_with(".grb2")
}

/// Splits `path` (a key, or a directory ending with `/`) at its first view segment.
fn parse_vpath(path: &str) -> Option<VPath> {
    let mut start = 0;
    for seg in path.split('/') {
        let end = start + seg.len();
        for kind in [Kind::Zarr, Kind::Cog] {
            if let Some(stem) = seg.strip_suffix(kind.suffix())
                && is_grib(stem)
            {
                let rest = path.get(end + 1..).unwrap_or("").to_string();
                return Some(VPath {
                    source: format!("{}{stem}", &path[..start]),
                    kind,
                    rest,
                });
            }
        }
        start = end + 1;
    }
    None
}

/// Cached state is keyed by source key and ETag, so a replaced source is never mixed in.
fn cache_key(source: &str, etag: Option<&str>) -> String {
    format!("{source}\0{}", etag.unwrap_or(""))
}

fn fail(what: &str, e: anyhow::Error) -> FsError {
    FsError::Convert(format!("{what}: {e:#}"))
}

fn grib_layout(v: &Views, k: usize) -> &super::cog::CogLayout {
    &v.cogs[k]
}

/// Latitudes and longitudes of a grid's points.
type LatLon = (Vec<f64>, Vec<f64>);

#[derive(Debug)]
pub struct Convert<B> {
    inner: B,
    views: Cache<String, Arc<Views>>,
    fields: Cache<String, Arc<Vec<f32>>>,
    pyramids: Cache<String, Arc<Vec<Raster>>>,
    latlon: Cache<String, Arc<LatLon>>,
    tiles: Cache<String, Bytes>,
    /// Rendered `preview.png` files, so a preview is drawn once, not per read.
    previews: Cache<String, Bytes>,
    zarr_views: Cache<String, Arc<zarr::ZarrViews>>,
}

/// Bytes budget of each decoded-data cache.
const CACHE_BYTES: u64 = 256 << 20;

fn weigh(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl<B: Backend> Convert<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            views: Cache::new(64),
            fields: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, v: &Arc<Vec<f32>>| weigh(v.len() * 4))
                .build(),
            pyramids: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, v: &Arc<Vec<Raster>>| weigh(v.iter().map(|r| r.data.len() * 4).sum()))
                .build(),
            latlon: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, v: &Arc<LatLon>| weigh((v.0.len() + v.1.len()) * 8))
                .build(),
            tiles: Cache::builder()
                .max_capacity(CACHE_BYTES / 4)
                .weigher(|_, v: &Bytes| weigh(v.len()))
                .build(),
            previews: Cache::builder()
                .max_capacity(CACHE_BYTES / 16)
                .weigher(|_, v: &Bytes| weigh(v.len()))
                .build(),
            zarr_views: Cache::new(64),
        }
    }

    /// A `preview.png`: rendered once from the smallest level of `pyramid`, then cached
    /// under `key` (the pyramid itself may be evicted meanwhile).
    async fn preview_png(
        &self,
        what: &str,
        key: String,
        pyramid: impl std::future::Future<Output = Result<Arc<Vec<Raster>>, FsError>>,
    ) -> Result<Bytes, FsError> {
        self.previews
            .try_get_with(key, async {
                let pyr = pyramid.await?;
                tokio::task::spawn_blocking(move || {
                    Bytes::from(pyr.last().map(super::preview::render).unwrap_or_default())
                })
                .await
                .map_err(|e| fail(what, anyhow!("preview task: {e}")))
            })
            .await
            .map_err(|e: Arc<FsError>| (*e).clone())
    }

    async fn read_all(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes, FsError> {
        Ok(self.inner.get_range(key, range, etag).await?.to_bytes())
    }

    /// The source object and its views (cached per ETag).
    async fn source_views(&self, source: &str) -> Result<(ObjectInfo, Arc<Views>), FsError> {
        let info = self.inner.head(source).await?;
        let key = cache_key(source, info.etag.as_deref());
        let views = self
            .views
            .try_get_with(key, async {
                self.build_views(source, &info).await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())?;
        Ok((info, views))
    }

    async fn build_views(&self, source: &str, info: &ObjectInfo) -> Result<Views, FsError> {
        let etag = info.etag.as_deref();
        let idx_key = format!("{source}.idx");
        let lines: Vec<Option<IdxLine>>;
        let mut spans: Vec<(u64, u64)> = Vec::new();
        match self.inner.head(&idx_key).await {
            Ok(idx) => {
                let text = self
                    .read_all(&idx_key, 0..idx.size, idx.etag.as_deref())
                    .await?;
                let parsed =
                    parse_idx(&String::from_utf8_lossy(&text)).map_err(|e| fail(&idx_key, e))?;
                let ranges = message_ranges(&parsed, info.size)
                    .with_context(|| format!("the inventory does not fit {source}"))
                    .map_err(|e| fail(&idx_key, e))?;
                spans.extend(ranges.iter().map(|r| (r.start, r.end - r.start)));
                lines = parsed.into_iter().map(Some).collect();
            }
            Err(FsError::NotFound) => {
                let mut pos = 0;
                // Fewer than 16 bytes after the last message cannot hold one: trailing padding.
                while pos + 16 <= info.size {
                    let window = (pos + PROBE_BYTES).min(info.size);
                    let head = self.read_all(source, pos..window, etag).await?;
                    let m = message_at(&head, pos, info.size).map_err(|e| fail(source, e))?;
                    spans.push((m.start, m.end - m.start));
                    pos = m.end;
                }
                lines = vec![None; spans.len()];
            }
            Err(e) => return Err(e),
        }
        let headers: Vec<(u64, u64, Header)> =
            futures::stream::iter(spans.iter().copied().enumerate())
                .map(|(k, span)| async move {
                    self.message_header(source, etag, span)
                        .await
                        .map_err(|e| match e {
                            FsError::Convert(m) => {
                                FsError::Convert(format!("{m} (message {})", k + 1))
                            }
                            other => other,
                        })
                })
                .buffered(16)
                .try_collect()
                .await?;
        let mut messages: Vec<Message> = headers
            .into_iter()
            .zip(lines)
            .map(|((offset, len, header), idx)| Message {
                offset,
                len,
                name: String::new(),
                idx,
                header,
            })
            .collect();
        assign_names(&mut messages);
        let name = source.rsplit('/').next().unwrap_or(source);
        Views::new(messages, name).map_err(|e| fail(source, e))
    }

    /// Where the message in `span` (offset, length) really starts and ends, and its header.
    async fn message_header(
        &self,
        source: &str,
        etag: Option<&str>,
        span: (u64, u64),
    ) -> Result<(u64, u64, Header), FsError> {
        let (off, span_len) = span;
        let mut want = span_len.min(HEAD_BYTES);
        loop {
            let head = self.read_all(source, off..off + want, etag).await?;
            let skip = find_magic(&head)
                .context("no GRIB magic at the message's offset")
                .map_err(|e| fail(source, e))?;
            let len = section0_len(&head[skip..]).map_err(|e| fail(source, e))?;
            if skip as u64 + len > span_len {
                return Err(fail(
                    source,
                    anyhow!("message at byte {off} runs past its inventory span"),
                ));
            }
            match parse_header(&head[skip..]) {
                Ok(h) => return Ok((off + skip as u64, len, h)),
                // A long section 2 or 3: read up to 1 MiB of the message.
                Err(_) if want < span_len.min(1 << 20) => want = span_len.min(1 << 20),
                Err(e) => return Err(fail(source, e)),
            }
        }
    }

    /// Values of message `k`, decoded once.
    async fn field(
        &self,
        source: &str,
        info: &ObjectInfo,
        views: &Views,
        k: usize,
    ) -> Result<Arc<Vec<f32>>, FsError> {
        let m = &views.messages[k];
        let key = format!("{}\0{k}", cache_key(source, info.etag.as_deref()));
        self.fields
            .try_get_with(key, async {
                let bytes = self
                    .read_all(source, m.offset..m.offset + m.len, info.etag.as_deref())
                    .await?;
                let g = &m.header.grid;
                let want = g.nx * g.ny;
                let values = tokio::task::spawn_blocking(move || decode(&bytes))
                    .await
                    .map_err(|e| fail(source, anyhow!("decoder task: {e}")))?
                    .with_context(|| format!("message {} ({})", k + 1, m.name))
                    .map_err(|e| fail(source, e))?;
                if values.len() != want {
                    return Err(fail(
                        source,
                        anyhow!(
                            "message {} decodes to {} values, not {want}",
                            k + 1,
                            values.len()
                        ),
                    ));
                }
                Ok(Arc::new(values))
            })
            .await
            .map_err(|e| (*e).clone())
    }

    async fn pyramid(
        &self,
        source: &str,
        info: &ObjectInfo,
        views: &Views,
        k: usize,
    ) -> Result<Arc<Vec<Raster>>, FsError> {
        let key = format!("{}\0{k}", cache_key(source, info.etag.as_deref()));
        self.pyramids
            .try_get_with(key, async {
                let values = self.field(source, info, views, k).await?;
                let g = views.messages[k].header.grid.clone();
                let levels = tokio::task::spawn_blocking(move || {
                    super::cog::pyramid(north_up(&g, &values), f32::NAN)
                })
                .await
                .map_err(|e| fail(source, anyhow!("overview task: {e}")))?;
                Ok::<_, FsError>(Arc::new(levels))
            })
            .await
            .map_err(|e: Arc<FsError>| (*e).clone())
    }

    /// Bytes `range` of a lazily made COG: compresses (and caches under `key`) only the tiles
    /// the range reaches, building the pyramid only if there is one.
    #[allow(clippy::too_many_arguments)]
    async fn lazy_cog<T: Send + Sync + 'static>(
        &self,
        what: &str,
        key: &str,
        owner: Arc<T>,
        layout: fn(&T, usize) -> &super::cog::CogLayout,
        k: usize,
        pyramid: impl std::future::Future<Output = Result<Arc<Vec<Raster>>, FsError>>,
        range: Range<u64>,
    ) -> Result<Bytes, FsError> {
        let wanted = layout(&owner, k).tiles_in(range.clone());
        let mut tiles = std::collections::HashMap::new();
        if !wanted.is_empty() {
            let pyr = pyramid.await?;
            for (l, t) in wanted {
                let bytes = self
                    .tiles
                    .try_get_with(format!("{key}\0{l}\0{t}"), async {
                        // Tile compression is CPU work, kept off the async workers.
                        let (levels, owner) = (pyr.clone(), owner.clone());
                        tokio::task::spawn_blocking(move || {
                            layout(&owner, k).tile_bytes(&levels, l, t)
                        })
                        .await
                        .map_err(|e| fail(what, anyhow!("tile task: {e}")))?
                        .map(Bytes::from)
                        .map_err(|e| fail(what, e))
                    })
                    .await
                    .map_err(|e: Arc<FsError>| (*e).clone())?;
                tiles.insert((l, t), bytes);
            }
        }
        layout(&owner, k)
            .read(range, |l, t| {
                tiles.get(&(l, t)).cloned().context("tile not prepared")
            })
            .map(Bytes::from)
            .map_err(|e| fail(what, e))
    }

    /// Bytes of one virtual file (the part `range` of it).
    async fn content(
        &self,
        vp: &VPath,
        info: &ObjectInfo,
        views: &Arc<Views>,
        file: &VFile,
        range: Range<u64>,
    ) -> Result<Bytes, FsError> {
        let source = vp.source.as_str();
        let whole: Bytes = match &file.content {
            Content::Json(text) => Bytes::from(text.clone()),
            Content::Cog(k) => {
                let key = format!("{}\0{k}", cache_key(source, info.etag.as_deref()));
                let pyramid = self.pyramid(source, info, views, *k);
                return self
                    .lazy_cog(source, &key, views.clone(), grib_layout, *k, pyramid, range)
                    .await;
            }
            Content::Field(k) => {
                let v = self.field(source, info, views, *k).await?;
                Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
            }
            Content::Axis(axis) => {
                let g = &views.messages[0].header.grid;
                let v = if *axis == Axis::X { g.x() } else { g.y() };
                Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
            }
            Content::LatLon(axis) => {
                let key = cache_key(source, info.etag.as_deref());
                let g = views.messages[0].header.grid.clone();
                let ll = self
                    .latlon
                    .try_get_with(key, async move {
                        tokio::task::spawn_blocking(move || g.latlon())
                            .await
                            .map_err(|e| fail(source, anyhow!("projection task: {e}")))?
                            .map(Arc::new)
                            .map_err(|e| fail(source, e))
                    })
                    .await
                    .map_err(|e| (*e).clone())?;
                let v = if *axis == Axis::Y { &ll.0 } else { &ll.1 };
                Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
            }
            Content::CrsValue => Bytes::from_static(&[0, 0, 0, 0]),
            Content::Preview(k) => {
                let key = format!("{}\0{k}", cache_key(source, info.etag.as_deref()));
                let pyramid = self.pyramid(source, info, views, *k);
                self.preview_png(source, key, pyramid).await?
            }
        };
        let end = range.end.min(whole.len() as u64) as usize;
        let start = (range.start as usize).min(end);
        Ok(whole.slice(start..end))
    }

    fn tree(views: &Views, kind: Kind) -> &std::collections::BTreeMap<String, VFile> {
        match kind {
            Kind::Zarr => &views.zarr,
            Kind::Cog => &views.cog,
        }
    }

    fn etag(info: &ObjectInfo, kind: Kind) -> Option<String> {
        info.etag.as_ref().map(|e| format!("{e}{}", kind.suffix()))
    }
}

#[async_trait]
impl<B: Backend> Backend for Convert<B> {
    async fn list(&self, dir: &str) -> Result<Listing, FsError> {
        if let Some(zp) = zarr::parse_zpath(dir) {
            return self.zarr_list(dir, &zp).await;
        }
        let Some(vp) = parse_vpath(dir) else {
            let mut listing = self.inner.list(dir).await?;
            let mut extra = self.zarr_cog_dirs(dir, &listing).await;
            for f in &listing.files {
                if is_grib(&f.name) {
                    for kind in [Kind::Zarr, Kind::Cog] {
                        extra.push(format!("{}{}", f.name, kind.suffix()));
                    }
                }
            }
            listing.dirs.extend(extra);
            return Ok(crate::store::finish_listing(dir, listing));
        };
        let (info, views) = self.source_views(&vp.source).await?;
        let mut listing = Listing::default();
        let mut any = false;
        for (path, file) in Self::tree(&views, vp.kind) {
            let Some(below) = path.strip_prefix(vp.rest.as_str()) else {
                continue;
            };
            any = true;
            match below.split_once('/') {
                Some((d, _)) => listing.dirs.push(d.to_string()),
                None => listing.files.push(ObjectInfo {
                    name: below.to_string(),
                    size: file.size,
                    mtime: info.mtime,
                    etag: Self::etag(&info, vp.kind),
                }),
            }
        }
        if !any && !vp.rest.is_empty() {
            return Err(FsError::NotFound);
        }
        Ok(crate::store::finish_listing(dir, listing))
    }

    async fn probe(&self) -> Result<(), FsError> {
        self.inner.probe().await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        if let Some(zp) = zarr::parse_zpath(key) {
            return self.zarr_head(key, &zp).await;
        }
        let Some(vp) = parse_vpath(key) else {
            return self.inner.head(key).await;
        };
        let (info, views) = self.source_views(&vp.source).await?;
        let file = Self::tree(&views, vp.kind)
            .get(&vp.rest)
            .ok_or(FsError::NotFound)?;
        Ok(ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: file.size,
            mtime: info.mtime,
            etag: Self::etag(&info, vp.kind),
        })
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError> {
        if let Some(zp) = zarr::parse_zpath(key) {
            return Ok(Rope::from(self.zarr_range(&zp, range, etag).await?));
        }
        let Some(vp) = parse_vpath(key) else {
            return self.inner.get_range(key, range, etag).await;
        };
        let (info, views) = self.source_views(&vp.source).await?;
        if let Some(expected) = etag
            && Self::etag(&info, vp.kind).as_deref() != Some(expected)
        {
            return Err(FsError::Stale {
                expected: expected.to_string(),
            });
        }
        let file = Self::tree(&views, vp.kind)
            .get(&vp.rest)
            .ok_or(FsError::NotFound)?;
        let bytes = self.content(&vp, &info, &views, file, range).await?;
        Ok(Rope::from(bytes))
    }

    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        if parse_vpath(key).is_none() && zarr::parse_zpath(key).is_none() {
            return self.inner.get_object(key).await;
        }
        // A view file's info and bytes come from the decoded views, not from a request each.
        let info = self.head(key).await?;
        let bytes = self
            .get_range(key, 0..info.size, info.etag.as_deref())
            .await?;
        Ok((info, bytes))
    }
}

#[cfg(test)]
mod tests;
mod zarr;
