//! Extents: byte ranges of an object that the caller chose (a planned unit, the aligned piece
//! of a random read), cached as entries of their own beside the fixed blocks, keyed by (key,
//! ETag, range). This module stores and fetches; it decides nothing about what to fetch (that
//! is the reader's read policy, `crate::reader`).
//!
//! An entry holds an extent whole, or only its head (first bytes) or its tail (last bytes) when
//! a fetch covered part of it:
//! - a whole extent is kept in memory and on disk;
//! - a head is kept in memory only, and dropped once its extent is fetched whole;
//! - a tail is kept in memory, and on disk by its exact range.
//!
//! Whole objects fetched in one GET (whose ETag is learned from that GET) are kept as blocks.

use std::ops::Range;

use super::{BlockCache, BlockKey, ObjectRef, Part, disk_get, disk_put};
use crate::error::{FsError, StoreError};
use crate::metrics::Metrics;
use crate::rope::Rope;
use crate::store::ObjectInfo;

/// A missing piece of an extent to fetch: bytes `want` of `extent`, after the `head` already
/// held (which then runs from `extent.start` to `want.start`).
#[derive(Debug, Clone)]
pub struct Missing {
    pub extent: Range<u64>,
    pub want: Range<u64>,
    pub head: Option<Rope>,
}

impl BlockCache {
    fn extent_key(obj: &ObjectRef, extent: &Range<u64>, part: Part) -> BlockKey {
        BlockKey {
            index: extent.start,
            end: extent.end,
            part,
            ..Self::key(obj, 0)
        }
    }

    /// Extent `e` whole, from memory, else from disk (a disk hit is put back in memory).
    /// Counted as a block hit or miss.
    pub async fn extent(&self, obj: &ObjectRef, e: &Range<u64>) -> Option<Rope> {
        let key = Self::extent_key(obj, e, Part::Whole);
        let mut got = self.cache.get(&key).await;
        if got.is_none() {
            // Being read ahead: wait for that run (if it fails, the reader fetches it itself).
            let pending = self.inflight.lock().get(&key).cloned();
            if let Some(p) = pending {
                got = p.slice().await.ok();
            }
        }
        if got.is_none() {
            let len = (e.end - e.start) as usize;
            got = disk_get(&self.disk, obj, (e.start, e.end), len).await;
            if let Some(b) = &got {
                self.cache.insert(key, b.clone()).await;
            }
        }
        let counter = if got.is_some() {
            &self.metrics.block_hits
        } else {
            &self.metrics.block_misses
        };
        Metrics::inc(counter);
        got
    }

    /// Whether extent `e` is held whole (in memory or on disk) or being fetched by a run.
    pub fn holds_extent(&self, obj: &ObjectRef, e: &Range<u64>) -> bool {
        self.holds(obj, &Self::extent_key(obj, e, Part::Whole))
    }

    /// Starts fetching the adjacent `extents` (sorted, each ending where the next starts) whole
    /// with one ranged GET; see [`BlockCache::start_parts`]. Readers of any of them meanwhile
    /// wait for this run.
    pub fn start_extent_run(
        &self,
        obj: &ObjectRef,
        extents: &[Range<u64>],
    ) -> impl std::future::Future<Output = Result<(), FsError>> + Send + 'static {
        let span = extents.first().map_or(0, |e| e.start)..extents.last().map_or(0, |e| e.end);
        let parts = extents
            .iter()
            .map(|e| (Self::extent_key(obj, e, Part::Whole), e.clone()))
            .collect();
        self.start_parts(obj, span, parts)
    }

    /// The head of extent `e` held in memory: its first bytes, from `e.start`.
    pub async fn extent_head(&self, obj: &ObjectRef, e: &Range<u64>) -> Option<Rope> {
        self.cache.get(&Self::extent_key(obj, e, Part::Head)).await
    }

    /// The bytes `from..e.end` of extent `e` from a kept tail: the one in memory if it reaches
    /// back that far, else one kept on disk for exactly this range. Returned with where they
    /// start (at or before `from`).
    pub async fn extent_tail(
        &self,
        obj: &ObjectRef,
        e: &Range<u64>,
        from: u64,
    ) -> Option<(u64, Rope)> {
        let key = Self::extent_key(obj, e, Part::Tail);
        if let Some(t) = self.cache.get(&key).await {
            let base = e.end - t.len() as u64;
            if base <= from {
                return Some((base, t));
            }
        }
        let t = disk_get(&self.disk, obj, (from, e.end), (e.end - from) as usize).await?;
        self.cache.insert(key, t.clone()).await;
        Some((from, t))
    }

    /// Caches the extents wholly inside `data`, which holds bytes `at..` of `obj`, and the head
    /// of one that starts inside it and runs past its end.
    pub async fn insert_extents(
        &self,
        obj: &ObjectRef,
        extents: &[Range<u64>],
        at: u64,
        data: &Rope,
    ) {
        let end = at + data.len() as u64;
        let mut fresh = Vec::new();
        for e in extents.iter().filter(|e| e.start >= at && e.start < end) {
            let b = data.slice((e.start - at) as usize..(e.end.min(end) - at) as usize);
            if e.end <= end {
                self.cache
                    .insert(Self::extent_key(obj, e, Part::Whole), b.clone())
                    .await;
                fresh.push(((e.start, e.end), b));
            } else {
                self.cache
                    .insert(Self::extent_key(obj, e, Part::Head), b)
                    .await;
            }
        }
        disk_put(&self.disk, obj, fresh).await;
    }

    /// Fetches the `missing` pieces (in order; the pieces of one extent never overlap), each
    /// run of adjacent ones with one GET, and keeps each by what it then holds of its extent
    /// (its head prepended): whole, head or tail. Returns, per piece, its bytes (head included)
    /// and where they start.
    pub async fn fetch_extents(
        &self,
        obj: &ObjectRef,
        mut missing: Vec<Missing>,
    ) -> Result<Vec<(u64, Rope)>, FsError> {
        let mut out = Vec::with_capacity(missing.len());
        let mut i = 0;
        while i < missing.len() {
            let mut j = i;
            while j + 1 < missing.len() && missing[j + 1].want.start == missing[j].want.end {
                j += 1;
            }
            let span = missing[i].want.start..missing[j].want.end;
            let len = (span.end - span.start) as usize;
            tracing::debug!(key = %obj.key, extents = j + 1 - i, ?span, "fetching extents");
            let all = self
                .disk
                .origin
                .of(&obj.key)
                .get_range(&obj.key, span.clone(), obj.etag.as_deref())
                .await?;
            if all.len() != len {
                return Err(StoreError::short_read(
                    format!("GET '{}' bytes {}-{}", obj.key, span.start, span.end),
                    len as u64,
                    all.len() as u64,
                )
                .into());
            }
            let mut kept = Vec::new();
            for m in &mut missing[i..=j] {
                let (e, w) = (&m.extent, &m.want);
                let mut b = m.head.take().unwrap_or_default();
                b.append(all.slice((w.start - span.start) as usize..(w.end - span.start) as usize));
                let base = w.end - b.len() as u64;
                if base == e.start && w.end == e.end {
                    self.cache
                        .insert(Self::extent_key(obj, e, Part::Whole), b.clone())
                        .await;
                    self.cache
                        .invalidate(&Self::extent_key(obj, e, Part::Head))
                        .await;
                    kept.push(((e.start, e.end), b.clone()));
                } else if base == e.start {
                    self.cache
                        .insert(Self::extent_key(obj, e, Part::Head), b.clone())
                        .await;
                } else if w.end == e.end {
                    self.cache
                        .insert(Self::extent_key(obj, e, Part::Tail), b.clone())
                        .await;
                    kept.push(((base, e.end), b.clone()));
                }
                out.push((base, b));
            }
            disk_put(&self.disk, obj, kept).await;
            i = j + 1;
        }
        Ok(out)
    }

    /// Fetches all of `key` with one GET and keeps its bytes (in memory and on disk), keyed by
    /// the ETag that GET returned. Returns its attributes and bytes.
    pub async fn fetch_whole(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        let (info, bytes) = self.disk.origin.of(key).get_object(key).await?;
        let obj = ObjectRef {
            key: key.into(),
            etag: info.etag.as_deref().map(Into::into),
            size: info.size,
        };
        self.insert_whole(&obj, bytes.clone()).await;
        Ok((info, bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::store::metered::Metered;
    use crate::store::object::{Lister, ObjectBackend};

    #[tokio::test]
    async fn adjacent_missing_pieces_are_one_get_and_kept_by_what_they_hold() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let mem = Arc::new(InMemory::new());
        let r = mem
            .put(&Path::from("o"), PutPayload::from(data.clone()))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let backend = Metered::new(
            ObjectBackend::new(mem, String::new(), Lister::Generic),
            metrics.clone(),
            Duration::from_secs(5),
        );
        let cache = BlockCache::new(Arc::new(backend), metrics.clone(), 1 << 20);
        let obj = ObjectRef {
            key: "o".into(),
            etag: r.e_tag.map(Into::into),
            size: 300,
        };
        let piece = |extent: Range<u64>, want: Range<u64>, head: Option<Rope>| Missing {
            extent,
            want,
            head,
        };
        // Extent 0 whole and the head of extent 1 (adjacent: one GET); the tail of extent 2.
        let got = cache
            .fetch_extents(
                &obj,
                vec![
                    piece(0..100, 0..100, None),
                    piece(100..200, 100..150, None),
                    piece(200..300, 250..300, None),
                ],
            )
            .await
            .unwrap();
        assert_eq!(metrics.get_requests.load(Relaxed), 2);
        let starts: Vec<u64> = got.iter().map(|(at, _)| *at).collect();
        assert_eq!(starts, vec![0, 100, 250]);
        assert_eq!(&got[2].1.to_bytes()[..], &data[250..300]);
        assert_eq!(
            &cache.extent(&obj, &(0..100)).await.unwrap().to_bytes()[..],
            &data[..100]
        );
        let head = cache.extent_head(&obj, &(100..200)).await.unwrap();
        assert_eq!(&head.to_bytes()[..], &data[100..150]);
        let (at, tail) = cache.extent_tail(&obj, &(200..300), 260).await.unwrap();
        assert_eq!((at, &tail.to_bytes()[..]), (250, &data[250..300]));
        // The rest of extent 1 after its head: the extent is then held whole, the head dropped.
        let got = cache
            .fetch_extents(&obj, vec![piece(100..200, 150..200, Some(head))])
            .await
            .unwrap();
        assert_eq!((got[0].0, &got[0].1.to_bytes()[..]), (100, &data[100..200]));
        assert_eq!(metrics.bytes_fetched.load(Relaxed), 250);
        assert!(cache.extent(&obj, &(100..200)).await.is_some());
        assert!(cache.extent_head(&obj, &(100..200)).await.is_none());
    }
}
