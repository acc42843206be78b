//! [`Convert`]: the converted views, a source of bytes beside the store. For every
//! `NAME.grib2` / `NAME.grb2` a listing also shows the directories `NAME.grib2.zarr/` and
//! `NAME.grib2.cog/`; `head` and `get_range` on keys below them make the bytes. The keys it
//! makes are those [`Backend::is_derived`] names: a mount's block cache reads only those from
//! here and every other key straight from the store, while the namespace lists and stats through
//! here (other keys' listings and HEADs are the store's, with the view folders added). Virtual ETags are the source's ETag plus the view kind, so a replaced source
//! gives new ETags (and ESTALE to open files, as for any object).
//!
//! Only the bytes needed are read: the `.idx` sidecar (or a small probe at each message's
//! section 0 when there is none), the first KiB of each message for its metadata (more when a
//! bitmap or further fields lie past them), and a whole message only when one of its fields is
//! read. A message or field that cannot be converted is left out of both views with a log line
//! naming the file, its number (as eccodes counts) and the reason; the rest is served. Source
//! bytes come through the range store plain files use ([`BlockCache`]: the shared memory tier,
//! then the disk tier, then one GET with `If-Match`). Everything made from them (the views' inventory, decoded fields, pyramids,
//! compressed tiles, lat/lon, `preview.png`) is an entry of the shared memory tier keyed by
//! (source key, source ETag, what), weighed by its bytes, evicted under pressure and made again
//! when needed. A read of a view file carries its virtual ETag, which names the source's ETag:
//! while the inventory is held it needs no request to the source.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::cog::{CogLayout, Raster};
use super::grib::{Header, decode, parse_headers};
use super::grib_view::{Axis, Content, Message, VFile, Views, assign_names, north_up};
use crate::cache::block::{BlockCache, ObjectRef};
use crate::cache::memory::{DerivedKey, MemoryTier};
use crate::error::FsError;
use crate::formats::grib2::{
    HEAD_BYTES, IdxLine, PROBE_BYTES, Step, Walked, find_magic, message_ranges, parse_idx,
    section0_len, short_tail, step,
};
use crate::metrics::Metrics;
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

/// The source ETag a view file's ETag names (the source's plus `suffix`); a view ETag without
/// the suffix can name no source version: stale.
fn source_etag<'a>(etag: Option<&'a str>, suffix: &str) -> Result<Option<&'a str>, FsError> {
    match etag {
        None => Ok(None),
        Some(e) => e
            .strip_suffix(suffix)
            .map(Some)
            .ok_or_else(|| FsError::Stale {
                expected: e.to_string(),
            }),
    }
}

/// Maps a stale source to a stale view file: the ETag the reader holds (`expected`, the view
/// file's) is the one named, not the source's.
fn stale_as(expected: Option<&str>) -> impl Fn(FsError) -> FsError + Copy + '_ {
    move |e| match (e, expected) {
        (FsError::Stale { .. }, Some(x)) => FsError::Stale {
            expected: x.to_string(),
        },
        (e, _) => e,
    }
}

/// The view or source `what` fails for `reason` (its source chain kept).
fn fail(
    what: &str,
    reason: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> FsError {
    FsError::view(what, reason)
}

/// Bytes of a bitmap or data section a header walk skips with no read rather than read through.
const SKIP_OVER: u64 = 64 << 10;

/// Where a GRIB message starts, its length, and each of its fields' header or why it cannot
/// be converted.
type MessageFields = (u64, u64, Vec<anyhow::Result<Header>>);

/// Latitudes and longitudes of a grid's points.
type LatLon = (Vec<f64>, Vec<f64>);

/// A GRIB2 source's info (as seen when its views were built) and its views.
#[derive(Debug)]
struct SourceViews {
    info: ObjectInfo,
    views: Views,
}

impl SourceViews {
    fn object(&self, source: &str) -> ObjectRef {
        object_ref(source, &self.info)
    }

    fn etag(&self) -> Option<&str> {
        self.info.etag.as_deref()
    }

    /// Bytes held, roughly: the JSON documents, the COG headers and tile tables, the messages.
    fn weight(&self) -> usize {
        let tree = |t: &std::collections::BTreeMap<String, VFile>| -> usize {
            t.iter()
                .map(|(p, f)| {
                    p.len()
                        + 64
                        + match &f.content {
                            Content::Json(s) => s.len(),
                            _ => 0,
                        }
                })
                .sum()
        };
        let cogs: usize = self.views.cogs.iter().map(cog_layout_weight).sum();
        tree(&self.views.zarr) + tree(&self.views.cog) + cogs + 512 * self.views.messages.len()
    }
}

/// Bytes a COG layout holds, roughly: its header (IFDs, tile tables) and its tile list.
fn cog_layout_weight(l: &CogLayout) -> usize {
    4096 + 24 * l.tiles_in(0..l.size()).len()
}

fn grib_layout(v: &SourceViews, k: usize) -> &CogLayout {
    &v.views.cogs[k]
}

fn object_ref(key: &str, info: &ObjectInfo) -> ObjectRef {
    ObjectRef {
        key: key.into(),
        etag: info.etag.as_deref().map(Into::into),
        size: info.size,
    }
}

/// One pad unit of a tile's zlib stream: an empty, non-final stored deflate block.
const PAD: [u8; 5] = [0, 0, 0, 0xff, 0xff];
/// The last bytes of a framed tile are kept verbatim (the end of the padding, the final
/// block, the Adler-32 and the trailer), so the run of [`PAD`] before them is all that is cut.
const PACK_TAIL: usize = 32;

/// A COG tile as the memory tier keeps it: its framed bytes less the run of [`PAD`] units that
/// fills its zlib stream to the fixed slot, made again on read. Tiles of smooth fields compress
/// to a few per cent of their slot, so this holds tens of tiles where the padded bytes held one.
#[derive(Debug)]
struct PackedTile {
    head: Bytes,
    pads: usize,
    tail: Bytes,
}

impl PackedTile {
    /// Any bytes pack: the run cut is whatever run of [`PAD`] ends where the kept tail starts
    /// (the tail is lengthened by up to 4 bytes to meet the run's phase), so unpacking gives
    /// the same bytes whatever the stream holds.
    fn pack(framed: &[u8]) -> Self {
        let run_before = |at: usize| {
            let mut end = at;
            while end >= PAD.len() && framed[end - PAD.len()..end] == PAD {
                end -= PAD.len();
            }
            end
        };
        let tail_at = (0..PAD.len())
            .filter_map(|shift| framed.len().checked_sub(PACK_TAIL + shift))
            .max_by_key(|&at| at - run_before(at))
            .unwrap_or(0);
        let end = run_before(tail_at);
        Self {
            head: Bytes::copy_from_slice(&framed[..end]),
            pads: (tail_at - end) / PAD.len(),
            tail: Bytes::copy_from_slice(&framed[tail_at..]),
        }
    }

    /// The framed bytes again.
    fn unpack(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.head.len() + self.pads * PAD.len() + self.tail.len());
        out.extend_from_slice(&self.head);
        out.extend(PAD.iter().cycle().take(self.pads * PAD.len()));
        out.extend_from_slice(&self.tail);
        Bytes::from(out)
    }

    fn weight(&self) -> usize {
        self.head.len() + self.tail.len() + 64
    }
}

/// Little-endian bytes `range` of `values` (each `N` bytes), made only for that range.
fn le_range<const N: usize, T: Copy>(
    values: &[T],
    range: Range<u64>,
    to_le: fn(T) -> [u8; N],
) -> Bytes {
    let len = (values.len() * N) as u64;
    let (start, end) = (range.start.min(len) as usize, range.end.min(len) as usize);
    if start >= end {
        return Bytes::new();
    }
    let mut out = Vec::with_capacity(end - start);
    for v in &values[start / N..end.div_ceil(N)] {
        out.extend_from_slice(&to_le(*v));
    }
    let skip = start % N;
    out.drain(..skip);
    out.truncate(end - start);
    Bytes::from(out)
}

#[derive(Debug)]
pub struct Convert<B> {
    inner: Arc<B>,
    /// The sources' bytes: the range store plain files are read through, over `inner`.
    source: BlockCache,
    /// Sources stat'ed within the last `ttl`: their info, and when it was seen.
    seen: parking_lot::Mutex<std::collections::HashMap<String, (ObjectInfo, Instant)>>,
    /// The folder views' listings and roots.
    folders: nc_dir::Folders,
    ttl: Duration,
}

/// At most this many sources' infos are remembered (a few hundred bytes each).
const SEEN_MAX: usize = 4096;

/// Memory tier of a [`Convert`] made by [`Convert::new`], which has no tier to share.
const OWN_MEMORY: u64 = 256 << 20;

impl<B: Backend> Convert<B> {
    /// Views over `inner` with a range store of their own (a memory tier of [`OWN_MEMORY`]
    /// bytes, no disk tier).
    pub fn new(inner: B) -> Self {
        let inner = Arc::new(inner);
        let source = BlockCache::new(inner.clone(), Arc::new(Metrics::default()), OWN_MEMORY);
        Self::with_cache(inner, source)
    }

    /// Views over `inner` reading source bytes through `source`, a block cache over the same
    /// `inner`; what the views make goes into `source`'s memory tier too.
    pub fn with_cache(inner: Arc<B>, source: BlockCache) -> Self {
        Self {
            inner,
            source,
            seen: Default::default(),
            folders: Default::default(),
            ttl: Duration::ZERO,
        }
    }

    /// A source's info is taken as current for `ttl` after it was stat'ed (as the namespace
    /// takes a file's), so the lookups of a view's files cost no request each.
    pub fn with_metadata_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The source's info: stat'ed, unless that was done within the metadata TTL.
    async fn source_info(&self, source: &str) -> Result<ObjectInfo, FsError> {
        if let Some((info, at)) = self.seen.lock().get(source)
            && at.elapsed() < self.ttl
        {
            return Ok(info.clone());
        }
        let info = self.inner.head(source).await?;
        if !self.ttl.is_zero() {
            let mut seen = self.seen.lock();
            if seen.len() >= SEEN_MAX {
                seen.clear();
            }
            seen.insert(source.to_string(), (info.clone(), Instant::now()));
        }
        Ok(info)
    }

    fn memory(&self) -> &MemoryTier {
        self.source.memory()
    }

    /// Bytes `range` of `obj`, read as a unit of its own (kept in memory and on disk by its
    /// exact range, so only these bytes are fetched, once).
    async fn read_exact(&self, obj: &ObjectRef, range: Range<u64>) -> Result<Bytes, FsError> {
        let unit = std::slice::from_ref(&range);
        let got = crate::reader::file::read_units(&self.source, obj, unit, range.clone()).await?;
        Ok(got.to_bytes())
    }

    /// A `preview.png`: rendered once from the smallest level of `pyramid`, then kept under
    /// `key` (the pyramid itself may be evicted meanwhile).
    async fn preview_png(
        &self,
        what: &str,
        key: DerivedKey,
        pyramid: impl std::future::Future<Output = Result<Arc<Vec<Raster>>, FsError>>,
    ) -> Result<Arc<Bytes>, FsError> {
        self.memory()
            .get_or_make(key, async {
                let pyr = pyramid.await?;
                let png = tokio::task::spawn_blocking(move || {
                    Bytes::from(pyr.last().map(super::preview::render).unwrap_or_default())
                })
                .await
                .map_err(|e| fail(what, anyhow::Error::new(e).context("preview task")))?;
                let weight = png.len();
                Ok((Arc::new(png), weight))
            })
            .await
    }

    /// The source object and its views, kept per (source, ETag). With `etag`, the source
    /// version a reader holds, held views need no request; else (or to build them) the source
    /// is stat'ed, and a source whose ETag is no longer `etag` is stale.
    async fn source_views(
        &self,
        source: &str,
        etag: Option<&str>,
    ) -> Result<Arc<SourceViews>, FsError> {
        self.view_of(source, etag, "views", |info| async move {
            let views = self.build_views(source, &info).await?;
            let sv = SourceViews { info, views };
            let weight = sv.weight();
            Ok((sv, weight))
        })
        .await
    }

    /// A view of `source` named `what`, kept in the memory tier per (source, ETag). With
    /// `etag` (the source version a reader holds) a held view needs no request; else (or to
    /// build it from the source's info with `build`, which also gives its weight) the source is
    /// stat'ed, and a source whose ETag is no longer `etag` is stale.
    async fn view_of<T, F, Fut>(
        &self,
        source: &str,
        etag: Option<&str>,
        what: &str,
        build: F,
    ) -> Result<Arc<T>, FsError>
    where
        T: Send + Sync + 'static,
        F: FnOnce(ObjectInfo) -> Fut,
        Fut: std::future::Future<Output = Result<(T, usize), FsError>>,
    {
        let current = async {
            let info = self.source_info(source).await?;
            Ok((info.etag.clone(), info))
        };
        self.held_or_built(source, etag, what, current, build).await
    }

    /// A view of `source` named `what`, kept in the memory tier per (source, version). With
    /// `etag` (the version a reader holds) a held view needs no request; else `current` (not
    /// awaited otherwise) gives the source's version and what `build` makes the view (and its
    /// weight) from, and a source whose version is no longer `etag` is stale.
    async fn held_or_built<I, T, C, F, Fut>(
        &self,
        source: &str,
        etag: Option<&str>,
        what: &str,
        current: C,
        build: F,
    ) -> Result<Arc<T>, FsError>
    where
        T: Send + Sync + 'static,
        C: std::future::Future<Output = Result<(Option<String>, I), FsError>>,
        F: FnOnce(I) -> Fut,
        Fut: std::future::Future<Output = Result<(T, usize), FsError>>,
    {
        if let Some(e) = etag
            && let Some(v) = self
                .memory()
                .get(&DerivedKey::of::<T>(source, Some(e), what))
                .await
        {
            return Ok(v);
        }
        let (version, info) = current.await?;
        if let Some(e) = etag
            && version.as_deref() != Some(e)
        {
            return Err(FsError::Stale {
                expected: e.to_string(),
            });
        }
        let key = DerivedKey::of::<T>(source, version.as_deref(), what);
        self.memory()
            .get_or_make(key, async {
                let (v, weight) = build(info).await?;
                Ok((Arc::new(v), weight))
            })
            .await
    }

    /// The GRIB2 messages of `source` and the `.idx` lines of each (empty without an
    /// inventory), from its inventory when there is one that fits, else by walking section 0
    /// (see [`crate::formats::grib2`]); `None` entries are messages of another edition, skipped
    /// but counted (eccodes counts them). A walk that stops early keeps the messages before
    /// and logs why; one that finds nothing is an error.
    async fn message_spans(
        &self,
        source: &str,
        info: &ObjectInfo,
    ) -> Result<Vec<Option<(Range<u64>, Vec<IdxLine>)>>, FsError> {
        let obj = object_ref(source, info);
        let idx_key = format!("{source}.idx");
        match self.inner.head(&idx_key).await {
            Ok(idx) => {
                let text = self
                    .source
                    .read(&object_ref(&idx_key, &idx), 0..idx.size)
                    .await?
                    .to_bytes();
                let fitted = parse_idx(&String::from_utf8_lossy(&text)).and_then(|lines| {
                    let ranges = message_ranges(&lines, info.size)?;
                    Ok((lines, ranges))
                });
                match fitted {
                    Ok((lines, ranges)) => {
                        return Ok(ranges
                            .into_iter()
                            .map(|r| {
                                let at: Vec<IdxLine> = lines
                                    .iter()
                                    .filter(|l| l.offset == r.start)
                                    .cloned()
                                    .collect();
                                Some((r, at))
                            })
                            .collect());
                    }
                    Err(e) => tracing::warn!(
                        "{source}: the inventory {idx_key} does not fit the file ({e}): its \
                         messages are found from section 0"
                    ),
                }
            }
            Err(FsError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            if let Some(trailing) = short_tail(pos, info.size) {
                if !trailing.is_empty() {
                    log_trailing(source, &trailing);
                }
                break;
            }
            let mut window = pos..(pos + PROBE_BYTES).min(info.size);
            let next = loop {
                let bytes = self.read_exact(&obj, window.clone()).await?;
                match step(&bytes, pos, info.size) {
                    Ok(Step::More(w)) if w.end > window.end => window = w,
                    other => break other,
                }
            };
            match next {
                Ok(Step::Grib2(m)) => {
                    pos = m.end;
                    out.push(Some((m, Vec::new())));
                }
                Ok(Step::Other { edition, range }) => {
                    tracing::info!(
                        "{source}: message {} (GRIB edition {edition}, bytes {}..{}) skipped: \
                         the views show GRIB2 only",
                        out.len() + 1,
                        range.start,
                        range.end
                    );
                    pos = range.end;
                    out.push(None);
                }
                Ok(Step::End { trailing }) => {
                    log_trailing(source, &trailing);
                    break;
                }
                Ok(Step::More(_)) => break,
                Err(e) if out.iter().any(Option::is_some) => {
                    tracing::warn!(
                        "{source}: the message walk stops at byte {pos}: {e}; the views show \
                         the messages before it"
                    );
                    break;
                }
                Err(e) => return Err(fail(source, e)),
            }
        }
        Ok(out)
    }

    async fn build_views(&self, source: &str, info: &ObjectInfo) -> Result<Views, FsError> {
        let obj = object_ref(source, info);
        let spans = self.message_spans(source, info).await?;
        let obj = &obj;
        let fields: Vec<Option<Result<MessageFields, FsError>>> =
            futures::stream::iter(spans.iter().cloned())
                .map(|span| async move {
                    match span {
                        Some((r, _)) => Some(self.message_fields(obj, r).await),
                        None => None,
                    }
                })
                .buffered(16)
                .collect()
                .await;
        // Numbered as eccodes counts: each field one message, skipped messages too.
        let mut number = 0;
        let mut messages: Vec<Message> = Vec::new();
        for (span, got) in spans.into_iter().zip(fields) {
            let (Some((_, lines)), Some(got)) = (span, got) else {
                number += 1;
                continue;
            };
            let (offset, len, headers) = match got {
                Ok(x) => x,
                Err(FsError::View(v)) => {
                    number += 1;
                    tracing::warn!("{source}: message {number} left out of the views: {v}");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !lines.is_empty() && lines.len() != headers.len() {
                tracing::warn!(
                    "{source}: message {}: the inventory has {} lines for a message of {} \
                     fields: names from the codes",
                    number + 1,
                    lines.len(),
                    headers.len()
                );
            }
            let named = lines.len() == headers.len();
            for (field, header) in headers.into_iter().enumerate() {
                number += 1;
                match header {
                    Ok(header) => messages.push(Message {
                        offset,
                        len,
                        field,
                        number,
                        name: String::new(),
                        idx: named.then(|| lines[field].clone()),
                        header,
                    }),
                    Err(e) => {
                        tracing::warn!("{source}: message {number} left out of the views: {e:#}")
                    }
                }
            }
        }
        // One Zarr group holds one grid: the grid of the first message converted.
        if let Some(first) = messages.first().map(|m| m.header.grid.clone()) {
            messages.retain(|m| {
                let same = m.header.grid == first;
                if !same {
                    tracing::warn!(
                        "{source}: message {} left out of the views: its grid differs from the \
                         first converted message's ({}x{} {:?}), and one Zarr group holds one \
                         grid",
                        m.number,
                        first.nx,
                        first.ny,
                        first.crs
                    );
                }
                same
            });
        }
        assign_names(&mut messages);
        let name = source.rsplit('/').next().unwrap_or(source);
        Views::new(messages, name).map_err(|e| fail(source, e))
    }

    /// Where the message in `span` of `obj` really starts and ends, and the header of each of
    /// its fields (or why it cannot be converted). An error when its sections do not parse.
    async fn message_fields(
        &self,
        obj: &ObjectRef,
        span: Range<u64>,
    ) -> Result<MessageFields, FsError> {
        let source = &*obj.key;
        let (off, span_len) = (span.start, span.end - span.start);
        let head = self
            .read_exact(obj, off..off + span_len.min(HEAD_BYTES))
            .await?;
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
        let start = off + skip as u64;
        // The message's first bytes; bodies of sections 6 and 7 the walk skips over are zeros
        // when far from what is held, so a bitmap or a field's data is never read for a header.
        let mut msg = head[skip..].to_vec();
        loop {
            match parse_headers(&msg, len).map_err(|e| fail(source, e))? {
                Walked::Fields(f) => return Ok((start, len, f)),
                Walked::Need(n) => {
                    let have = msg.len() as u64;
                    if n.end <= have {
                        return Err(fail(
                            source,
                            anyhow!("message at byte {start}: its sections do not parse"),
                        ));
                    }
                    // Far ahead: the next section header and what likely follows it. Else
                    // at least twice the bytes held, so that a message takes few reads.
                    let from = if n.start > have + SKIP_OVER {
                        n.start
                    } else {
                        have
                    };
                    let to = if from > have {
                        (n.end + HEAD_BYTES).min(len)
                    } else {
                        n.end.max(2 * have).min(len)
                    };
                    let more = self.read_exact(obj, start + from..start + to).await?;
                    msg.resize(from as usize, 0);
                    msg.extend_from_slice(&more);
                }
            }
        }
    }

    /// Values of message `k`, decoded once (while held).
    async fn field(
        &self,
        source: &str,
        sv: &SourceViews,
        k: usize,
    ) -> Result<Arc<Vec<f32>>, FsError> {
        let m = &sv.views.messages[k];
        let key = DerivedKey::of::<Vec<f32>>(source, sv.etag(), format!("field/{k}"));
        self.memory()
            .get_or_make(key, async {
                // The message as a unit of its own: a plain reader's plan from the same `.idx`
                // has the same unit.
                let bytes = self
                    .read_exact(&sv.object(source), m.offset..m.offset + m.len)
                    .await?;
                let g = &m.header.grid;
                let want = g.nx * g.ny;
                let field = m.field;
                let values = tokio::task::spawn_blocking(move || decode(&bytes, field))
                    .await
                    .map_err(|e| fail(source, anyhow::Error::new(e).context("decoder task")))?
                    .with_context(|| format!("message {} ({})", m.number, m.name))
                    .map_err(|e| fail(source, e))?;
                if values.len() != want {
                    return Err(fail(
                        source,
                        anyhow!(
                            "message {} decodes to {} values, not {want}",
                            m.number,
                            values.len()
                        ),
                    ));
                }
                let weight = values.len() * 4;
                Ok((Arc::new(values), weight))
            })
            .await
    }

    async fn pyramid(
        &self,
        source: &str,
        sv: &SourceViews,
        k: usize,
    ) -> Result<Arc<Vec<Raster>>, FsError> {
        let key = DerivedKey::of::<Vec<Raster>>(source, sv.etag(), format!("pyramid/{k}"));
        self.memory()
            .get_or_make(key, async {
                let values = self.field(source, sv, k).await?;
                let g = sv.views.messages[k].header.grid.clone();
                let levels = tokio::task::spawn_blocking(move || {
                    super::cog::pyramid(north_up(&g, &values), f32::NAN)
                })
                .await
                .map_err(|e| fail(source, anyhow::Error::new(e).context("overview task")))?;
                let weight = levels.iter().map(|r| r.data.len() * 4).sum();
                Ok((Arc::new(levels), weight))
            })
            .await
    }

    /// Bytes `range` of a lazily made COG: compresses (and keeps, packed, under `tiles`:
    /// source key, ETag and a prefix naming the COG) only the tiles the range reaches, building
    /// the pyramid only if there is one.
    #[allow(clippy::too_many_arguments)]
    async fn lazy_cog<T: Send + Sync + 'static>(
        &self,
        what: &str,
        tiles: (&str, Option<&str>, &str),
        owner: Arc<T>,
        layout: fn(&T, usize) -> &CogLayout,
        k: usize,
        pyramid: impl std::future::Future<Output = Result<Arc<Vec<Raster>>, FsError>>,
        range: Range<u64>,
    ) -> Result<Bytes, FsError> {
        let (key, etag, prefix) = tiles;
        let wanted = layout(&owner, k).tiles_in(range.clone());
        let mut packed = std::collections::HashMap::new();
        if !wanted.is_empty() {
            let pyr = pyramid.await?;
            for (l, t) in wanted {
                let id = DerivedKey::of::<PackedTile>(key, etag, format!("{prefix}/{l}/{t}"));
                let tile = self
                    .memory()
                    .get_or_make(id, async {
                        // Tile compression is CPU work, kept off the async workers.
                        let (levels, owner) = (pyr.clone(), owner.clone());
                        let tile = tokio::task::spawn_blocking(move || {
                            layout(&owner, k)
                                .tile_bytes(&levels, l, t)
                                .map(|b| PackedTile::pack(&b))
                        })
                        .await
                        .map_err(|e| fail(what, anyhow::Error::new(e).context("tile task")))?
                        .map_err(|e| fail(what, e))?;
                        let weight = tile.weight();
                        Ok((Arc::new(tile), weight))
                    })
                    .await?;
                packed.insert((l, t), tile);
            }
        }
        // One tile unpacked at a time: the read copies what it needs and drops it.
        layout(&owner, k)
            .read(range, |l, t| {
                packed
                    .get(&(l, t))
                    .map(|p| p.unpack())
                    .context("tile not prepared")
            })
            .map(Bytes::from)
            .map_err(|e| fail(what, e))
    }

    /// Bytes `range` of one virtual file.
    async fn content(
        &self,
        vp: &VPath,
        sv: &Arc<SourceViews>,
        file: &VFile,
        range: Range<u64>,
    ) -> Result<Bytes, FsError> {
        let source = vp.source.as_str();
        let whole: Bytes = match &file.content {
            Content::Json(text) => Bytes::from(text.clone()),
            Content::Cog(k) => {
                let pyramid = self.pyramid(source, sv, *k);
                let prefix = format!("tile/{k}");
                let tiles = (source, sv.etag(), prefix.as_str());
                return self
                    .lazy_cog(source, tiles, sv.clone(), grib_layout, *k, pyramid, range)
                    .await;
            }
            Content::Field(k) => {
                let v = self.field(source, sv, *k).await?;
                return Ok(le_range(&v, range, f32::to_le_bytes));
            }
            Content::Axis(axis) => {
                let g = &sv.views.messages[0].header.grid;
                let v = if *axis == Axis::X { g.x() } else { g.y() };
                return Ok(le_range(&v, range, f64::to_le_bytes));
            }
            Content::LatLon(axis) => {
                let key = DerivedKey::of::<LatLon>(source, sv.etag(), "latlon");
                let g = sv.views.messages[0].header.grid.clone();
                let ll = self
                    .memory()
                    .get_or_make(key, async move {
                        let ll = tokio::task::spawn_blocking(move || g.latlon())
                            .await
                            .map_err(|e| {
                                fail(source, anyhow::Error::new(e).context("projection task"))
                            })?
                            .map_err(|e| fail(source, e))?;
                        let weight = (ll.0.len() + ll.1.len()) * 8;
                        Ok((Arc::new(ll), weight))
                    })
                    .await?;
                let v = if *axis == Axis::Y { &ll.0 } else { &ll.1 };
                return Ok(le_range(v, range, f64::to_le_bytes));
            }
            Content::CrsValue => Bytes::from_static(&[0, 0, 0, 0]),
            Content::Preview(k) => {
                let key = DerivedKey::of::<Bytes>(source, sv.etag(), format!("preview/{k}"));
                let pyramid = self.pyramid(source, sv, *k);
                (*self.preview_png(source, key, pyramid).await?).clone()
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
        if let Some(np) = netcdf::parse_npath(dir) {
            return self.nc_list(dir, &np).await;
        }
        if let Some(dp) = self.dir_route(dir) {
            return self.dir_list(dir, &dp).await;
        }
        let Some(vp) = parse_vpath(dir) else {
            let mut listing = match self.inner.list(dir).await {
                Ok(l) if !l.files.is_empty() || !l.dirs.is_empty() || l.marker => l,
                got => match self.dir_probe(dir).await {
                    Some(dp) => return self.dir_list(dir, &dp).await,
                    None => got?,
                },
            };
            let (mut extra, folders) = futures::join!(
                self.zarr_cog_dirs(dir, &listing),
                self.nc_dir_dirs(dir, &listing)
            );
            extra.extend(folders);
            extra.extend(Self::nc_zarr_dirs(&listing.files));
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
        let sv = self.source_views(&vp.source, None).await?;
        let info = &sv.info;
        let mut listing = Listing::default();
        let mut any = false;
        for (path, file) in Self::tree(&sv.views, vp.kind) {
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
                    etag: Self::etag(info, vp.kind),
                }),
            }
        }
        if !any && !vp.rest.is_empty() {
            return Err(FsError::NotFound);
        }
        // A view root exists even with nothing to show (every message left out).
        listing.marker = vp.rest.is_empty();
        Ok(crate::store::finish_listing(dir, listing))
    }

    async fn probe(&self) -> Result<(), FsError> {
        self.inner.probe().await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        if let Some(zp) = zarr::parse_zpath(key) {
            return self.zarr_head(key, &zp).await;
        }
        if let Some(np) = netcdf::parse_npath(key) {
            return self.nc_head(key, &np).await;
        }
        if let Some(dp) = self.dir_route(key) {
            return self.dir_head(key, &dp).await;
        }
        let Some(vp) = parse_vpath(key) else {
            return self.inner.head(key).await;
        };
        let sv = self.source_views(&vp.source, None).await?;
        let file = Self::tree(&sv.views, vp.kind)
            .get(&vp.rest)
            .ok_or(FsError::NotFound)?;
        Ok(ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: file.size,
            mtime: sv.info.mtime,
            etag: Self::etag(&sv.info, vp.kind),
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
        if let Some(np) = netcdf::parse_npath(key) {
            return self.nc_range(&np, range, etag).await;
        }
        if let Some(dp) = self.dir_route(key) {
            return self.dir_range(&dp, range, etag).await;
        }
        let Some(vp) = parse_vpath(key) else {
            return self.inner.get_range(key, range, etag).await;
        };
        // The view file's ETag names the source version the reader holds: no request while
        // that version's views are held.
        let stale = stale_as(etag);
        let src_etag = source_etag(etag, vp.kind.suffix())?;
        let sv = self
            .source_views(&vp.source, src_etag)
            .await
            .map_err(stale)?;
        let file = Self::tree(&sv.views, vp.kind)
            .get(&vp.rest)
            .ok_or(FsError::NotFound)?;
        let bytes = self.content(&vp, &sv, file, range).await.map_err(stale)?;
        Ok(Rope::from(bytes))
    }

    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        if !self.is_derived(key) {
            return self.inner.get_object(key).await;
        }
        // A view file's info and bytes come from the decoded views, not from a request each.
        let info = self.head(key).await?;
        let bytes = self
            .get_range(key, 0..info.size, info.etag.as_deref())
            .await?;
        Ok((info, bytes))
    }

    fn is_derived(&self, key: &str) -> bool {
        parse_vpath(key).is_some()
            || zarr::parse_zpath(key).is_some()
            || netcdf::parse_npath(key).is_some()
            || self.dir_route(key).is_some()
    }
}

/// Logs bytes after a file's last GRIB message, which the views ignore.
fn log_trailing(source: &str, trailing: &Range<u64>) {
    tracing::info!(
        "{source}: {} bytes after the last message (bytes {}..{}) hold no message: ignored",
        trailing.end - trailing.start,
        trailing.start,
        trailing.end
    );
}

/// The listing of the view folder `rest` (a path inside a view root, empty or ending with `/`)
/// of a view whose files are `files` (path inside the root, size), all with the source's
/// `info` and the view's `etag`. A folder with nothing below it is not found, except the root.
fn list_tree<'a>(
    files: impl Iterator<Item = (&'a str, u64)>,
    rest: &str,
    info: &ObjectInfo,
    etag: Option<String>,
) -> Result<Listing, FsError> {
    let mut listing = Listing::default();
    let mut any = false;
    for (path, size) in files {
        let Some(below) = path.strip_prefix(rest) else {
            continue;
        };
        any = true;
        match below.split_once('/') {
            Some((d, _)) => {
                if listing.dirs.last().is_none_or(|l| l != d) {
                    listing.dirs.push(d.to_string());
                }
            }
            None => listing.files.push(ObjectInfo {
                name: below.to_string(),
                size,
                mtime: info.mtime,
                etag: etag.clone(),
            }),
        }
    }
    if !any && !rest.is_empty() {
        return Err(FsError::NotFound);
    }
    listing.marker = rest.is_empty();
    Ok(listing)
}

mod nc_dir;
mod netcdf;
#[cfg(test)]
mod tests;
mod zarr;
