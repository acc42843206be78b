//! Lookups inside Zarr stores answered from consolidated metadata, with no LIST.
//!
//! A directory named `*.zarr` is probed at lookup with whole-object GETs of its `zarr.json` and
//! `.zmetadata` (together). If either holds consolidated metadata, the store's layout is kept for
//! the life of the mount and every later lookup below it is settled by the layout:
//! - groups, arrays and `/`-separated chunk directories are directories, with no request;
//! - metadata documents the layout does not list are missing, with no request;
//! - metadata documents and chunks are fetched whole with one GET through the block cache, which
//!   keeps the bytes for the coming read; the lookup keeps the size and ETag (a 404 is a missing
//!   chunk);
//! - shards (v3 `sharding_indexed`) are only stat'ed (HEAD): readers read them by their index;
//! - anything the layout does not describe goes to the usual lookup.

use std::sync::Arc;

use crate::error::FsError;
use crate::formats::zarr::{ZarrEntry, ZarrLayout};
use crate::store::ObjectInfo;

use super::{Namespace, NodeInfo};

/// Whether a directory name looks like a Zarr store.
fn looks_like_store(name: &str) -> bool {
    name.len() > 5 && name.to_ascii_lowercase().ends_with(".zarr")
}

impl Namespace {
    /// The Zarr store holding `path` (the nearest registered ancestor) and `path` relative to it.
    fn zarr_store_of(&self, path: &str) -> Option<(Arc<ZarrLayout>, String)> {
        let stores = self.zarr_stores.read();
        if stores.is_empty() {
            return None;
        }
        let mut p = path;
        while let Some((up, _)) = p.rsplit_once('/') {
            p = up;
            if let Some(l) = stores.get(p) {
                return Some((l.clone(), path[p.len() + 1..].to_string()));
            }
        }
        None
    }

    /// The shard layout of `path`, when it is a shard of a sharded Zarr v3 array.
    pub fn zarr_shard(&self, path: &str) -> Option<crate::formats::zarr::Shard> {
        let (layout, rel) = self.zarr_store_of(path)?;
        layout.shard_of(&rel)
    }

    /// Settles `path` from Zarr metadata when it can; `None` means "look it up as usual".
    pub(super) async fn lookup_zarr(
        &self,
        parent: u64,
        path: &str,
    ) -> Option<Result<NodeInfo, FsError>> {
        if let Some((layout, rel)) = self.zarr_store_of(path) {
            return match layout.classify(&rel) {
                ZarrEntry::Dir => Some(Ok(self.record_dir(parent, path.to_string()))),
                ZarrEntry::Absent => Some(Err(self.remember_missing(path.to_string()))),
                ZarrEntry::Meta | ZarrEntry::Chunk { whole: true } => {
                    Some(self.fetch_whole(parent, path).await)
                }
                ZarrEntry::Chunk { whole: false } => Some(match self.backend.head(path).await {
                    Ok(o) => Ok(self.record_file(parent, path.to_string(), &o)),
                    Err(FsError::NotFound) => Err(self.remember_missing(path.to_string())),
                    Err(e) => Err(e),
                }),
                ZarrEntry::Unknown => None,
            };
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        if looks_like_store(name) {
            return self.detect_store(parent, path).await.map(Ok);
        }
        None
    }

    /// One GET for the whole object through the cache (which keeps its bytes); its attributes
    /// are recorded. Attributes
    /// recorded on disk less than the TTL ago (by this mount or an earlier one) need no request:
    /// the bytes then come from the block cache.
    async fn fetch_whole(&self, parent: u64, path: &str) -> Result<NodeInfo, FsError> {
        if let Some(d) = self.attr_cache.clone() {
            let (key, ttl) = (path.to_string(), self.ttl);
            if let Ok(Some(info)) = tokio::task::spawn_blocking(move || d.get_attr(&key, ttl)).await
            {
                return Ok(self.record_file(parent, path.to_string(), &info));
            }
        }
        match self.cache.fetch_whole(path).await {
            Ok((info, _)) => {
                if let Some(d) = self.attr_cache.clone() {
                    let (key, i) = (path.to_string(), info.clone());
                    let _ = tokio::task::spawn_blocking(move || d.put_attr(&key, &i)).await;
                }
                Ok(self.record_file(parent, path.to_string(), &info))
            }
            Err(FsError::NotFound) => Err(self.remember_missing(path.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Probes `path` for consolidated metadata (each document fetched whole through the cache,
    /// which keeps its bytes); on success registers the store and returns it as a directory. Any
    /// failure leaves the usual lookup to decide.
    async fn detect_store(&self, parent: u64, path: &str) -> Option<NodeInfo> {
        let v3_key = format!("{path}/zarr.json");
        let v2_key = format!("{path}/.zmetadata");
        let (v3, v2) = tokio::join!(
            self.cache.fetch_whole(&v3_key),
            self.cache.fetch_whole(&v2_key)
        );
        let parse = |got: &Result<(ObjectInfo, crate::rope::Rope), FsError>,
                     f: fn(&[u8]) -> Option<ZarrLayout>| {
            let (_, bytes) = got.as_ref().ok()?;
            let mut scratch = Vec::new();
            bytes.with_contiguous(&mut scratch, f)
        };
        let layout = parse(&v3, ZarrLayout::from_v3).or_else(|| parse(&v2, ZarrLayout::from_v2))?;
        tracing::debug!(store = path, "Zarr store with consolidated metadata");
        self.zarr_stores
            .write()
            .insert(path.to_string(), Arc::new(layout));
        let dir = self.record_dir(parent, path.to_string());
        for (key, got) in [(v3_key, v3), (v2_key, v2)] {
            match got {
                Ok((info, _)) => {
                    self.record_file(dir.ino, key, &info);
                }
                Err(FsError::NotFound) => {
                    self.remember_missing(key);
                }
                Err(_) => {}
            }
        }
        Some(dir)
    }
}
