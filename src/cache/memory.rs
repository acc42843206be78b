//! The memory tier of the range store: one least-recently-used cache, weighed in bytes, that
//! holds everything the process keeps in memory for reads. Two kinds of entry share it:
//! - object bytes: blocks, planned units and their parts, keyed by [`BlockKey`] (object key,
//!   ETag, position), for the block cache ([`super::block::BlockCache`]);
//! - derived values: anything made from an object's bytes (a decoded field, a compressed tile,
//!   a view's inventory), keyed by [`DerivedKey`] (source key, source ETag, what the value is,
//!   its Rust type) and weighed by the bytes its maker reports.
//!
//! One capacity bounds both, so a mount's `--cache-memory` (less prefetch in flight) bounds all
//! of them together: a burst of decoded fields evicts old blocks and the other way round. Plain
//! LRU, not moka's default TinyLFU admission: a block prefetched once must be admitted even when
//! the cache is full, or a stream longer than the cache refetches it. Concurrent misses for one
//! derived value compute it once (moka `try_get_with`). The tier knows no format: it stores bytes and
//! opaque values.

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;

use moka::future::Cache;
use moka::policy::EvictionPolicy;

use super::block::BlockKey;
use crate::error::{CacheError, FsError};
use crate::rope::Rope;

/// What an entry costs beyond its payload: the key, moka's node, the value's header.
const ENTRY_OVERHEAD: u64 = 128;

/// Identifies a derived value: the object it was made from (key and ETag, so a replaced object
/// never serves an old value), what it is (`"field/3"`, `"tile/0/2/5"`, chosen by its maker) and
/// its type, so two makers can never read each other's values as the wrong type.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct DerivedKey {
    pub key: Arc<str>,
    pub etag: Option<Arc<str>>,
    pub what: Arc<str>,
    ty: TypeId,
}

impl DerivedKey {
    /// The key of a value of type `T`.
    pub fn of<T: 'static>(key: &str, etag: Option<&str>, what: impl Into<Arc<str>>) -> Self {
        Self {
            key: key.into(),
            etag: etag.map(Into::into),
            what: what.into(),
            ty: TypeId::of::<T>(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum Key {
    Block(BlockKey),
    Derived(DerivedKey),
}

/// An entry. A [`Key::Block`] always holds [`Value::Bytes`] and a [`Key::Derived`] always a
/// [`Value::Derived`] of the key's type: only the typed methods below insert, and each pairs
/// its key kind with its value kind.
#[derive(Clone)]
enum Value {
    Bytes(Rope),
    Derived {
        value: Arc<dyn Any + Send + Sync>,
        bytes: u64,
    },
}

impl Value {
    fn weight(&self) -> u32 {
        let payload = match self {
            Value::Bytes(r) => r.len() as u64 + 32 * r.parts().len() as u64,
            Value::Derived { bytes, .. } => *bytes,
        };
        (payload + ENTRY_OVERHEAD).min(u32::MAX as u64) as u32
    }

    fn bytes(self) -> Option<Rope> {
        match self {
            Value::Bytes(r) => Some(r),
            Value::Derived { .. } => None,
        }
    }

    fn derived<T: Send + Sync + 'static>(self) -> Option<Arc<T>> {
        match self {
            Value::Derived { value, .. } => value.downcast::<T>().ok(),
            Value::Bytes(_) => None,
        }
    }
}

/// The shared memory tier. Clones share one cache.
#[derive(Clone)]
pub struct MemoryTier {
    cache: Cache<Key, Value>,
}

impl std::fmt::Debug for MemoryTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTier")
            .field("bytes", &self.cache.weighted_size())
            .field("capacity", &self.cache.policy().max_capacity())
            .finish()
    }
}

/// The error a key of one kind holding a value of the other would give (never built: see
/// [`Value`]).
fn mismatch() -> Arc<FsError> {
    Arc::new(FsError::Cache(CacheError::wrong_kind(
        "a bytes key with a derived value, or the reverse",
    )))
}

impl MemoryTier {
    /// A tier holding at most `capacity` bytes of entries (payload and per-entry overhead).
    pub fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .max_capacity(capacity)
            .weigher(|_k: &Key, v: &Value| v.weight())
            .build();
        Self { cache }
    }

    /// Bytes held now, as weighed (moka applies pending evictions lazily, so this may briefly
    /// exceed the capacity by the entries inserted since its last housekeeping).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Applies pending inserts and evictions (for exact figures in tests and stats).
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    pub(crate) async fn get_bytes(&self, key: &BlockKey) -> Option<Rope> {
        self.cache
            .get(&Key::Block(key.clone()))
            .await
            .and_then(Value::bytes)
    }

    pub(crate) async fn insert_bytes(&self, key: BlockKey, bytes: Rope) {
        self.cache
            .insert(Key::Block(key), Value::Bytes(bytes))
            .await;
    }

    pub(crate) async fn invalidate_bytes(&self, key: &BlockKey) {
        self.cache.invalidate(&Key::Block(key.clone())).await;
    }

    pub(crate) fn contains_bytes(&self, key: &BlockKey) -> bool {
        self.cache.contains_key(&Key::Block(key.clone()))
    }

    /// The derived value under `key` if it is held.
    pub async fn get<T: Send + Sync + 'static>(&self, key: &DerivedKey) -> Option<Arc<T>> {
        debug_assert_eq!(key.ty, TypeId::of::<T>());
        self.cache
            .get(&Key::Derived(key.clone()))
            .await
            .and_then(Value::derived)
    }

    /// The derived value under `key`, or the one `make` makes, with the bytes it holds (its
    /// weight). Made once however many callers miss it at the same time; an error is returned
    /// to all of them and not cached, so a later call tries again.
    pub async fn get_or_make<T, F>(&self, key: DerivedKey, make: F) -> Result<Arc<T>, FsError>
    where
        T: Send + Sync + 'static,
        F: Future<Output = Result<(Arc<T>, usize), FsError>>,
    {
        debug_assert_eq!(key.ty, TypeId::of::<T>());
        // Boxed: nested makers (a tile's pyramid's field's bytes) would otherwise stack every
        // level's future inline, deeper than a worker thread's stack in unoptimised builds.
        Box::pin(self.cache.try_get_with(Key::Derived(key), async {
            let (value, bytes) = make.await?;
            Ok::<_, FsError>(Value::Derived {
                value,
                bytes: bytes as u64,
            })
        }))
        .await
        .and_then(|v| v.derived().ok_or_else(mismatch))
        .map_err(|e| (*e).clone())
    }

    /// Drops the derived value under `key`.
    pub async fn invalidate(&self, key: &DerivedKey) {
        self.cache.invalidate(&Key::Derived(key.clone())).await;
    }

    /// How many derived values are held whose key satisfies `pred` (after pending tasks).
    pub async fn count_derived(&self, pred: impl Fn(&DerivedKey) -> bool) -> usize {
        self.cache.run_pending_tasks().await;
        self.cache
            .iter()
            .filter(|(k, _)| matches!(&**k, Key::Derived(d) if pred(d)))
            .count()
    }

    /// Drops every derived value whose key satisfies `pred`.
    pub async fn invalidate_derived(&self, pred: impl Fn(&DerivedKey) -> bool) {
        let keys: Vec<Key> = self
            .cache
            .iter()
            .filter(|(k, _)| matches!(&**k, Key::Derived(d) if pred(d)))
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in keys {
            self.cache.invalidate(&k).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(index: u64) -> BlockKey {
        BlockKey::block("obj".into(), Some("e1".into()), index)
    }

    #[tokio::test]
    async fn blocks_and_derived_values_share_one_capacity() {
        let tier = MemoryTier::new(1 << 20);
        for i in 0..4 {
            tier.insert_bytes(block(i), Rope::from(vec![0u8; 200_000]))
                .await;
        }
        tier.run_pending_tasks().await;
        assert!(tier.weighted_size() > 800_000);
        // A 600 kB value evicts the least recently used blocks to fit.
        let key = DerivedKey::of::<Vec<f32>>("obj", Some("e1"), "field/0");
        let v = tier
            .get_or_make(key.clone(), async {
                Ok((Arc::new(vec![1.0f32; 150_000]), 600_000))
            })
            .await
            .unwrap();
        assert_eq!(v.len(), 150_000);
        tier.run_pending_tasks().await;
        assert!(tier.weighted_size() <= 1 << 20, "{}", tier.weighted_size());
        assert!(tier.get::<Vec<f32>>(&key).await.is_some());
        assert!(tier.get_bytes(&block(0)).await.is_none(), "oldest evicted");
        assert!(tier.get_bytes(&block(3)).await.is_some(), "newest kept");
    }

    #[tokio::test]
    async fn concurrent_misses_make_once_and_errors_are_not_kept() {
        let tier = MemoryTier::new(1 << 20);
        let made = std::sync::atomic::AtomicUsize::new(0);
        let key = DerivedKey::of::<u64>("obj", None, "n");
        let calls = (0..8).map(|_| {
            tier.get_or_make(key.clone(), async {
                made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
                Ok((Arc::new(7u64), 8))
            })
        });
        for r in futures::future::join_all(calls).await {
            assert_eq!(*r.unwrap(), 7);
        }
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);
        let other = DerivedKey::of::<u64>("obj", None, "fails");
        let err = tier
            .get_or_make::<u64, _>(other.clone(), async { Err(FsError::NotFound) })
            .await;
        assert!(matches!(err, Err(FsError::NotFound)));
        let ok = tier
            .get_or_make(other, async { Ok((Arc::new(1u64), 8)) })
            .await;
        assert_eq!(*ok.unwrap(), 1, "the error was not cached");
    }

    #[tokio::test]
    async fn keys_differ_by_etag_and_type() {
        let tier = MemoryTier::new(1 << 20);
        let a = DerivedKey::of::<u32>("obj", Some("e1"), "x");
        tier.get_or_make(a.clone(), async { Ok((Arc::new(1u32), 4)) })
            .await
            .unwrap();
        assert!(
            tier.get::<u32>(&DerivedKey::of::<u32>("obj", Some("e2"), "x"))
                .await
                .is_none()
        );
        assert!(
            tier.get::<u64>(&DerivedKey::of::<u64>("obj", Some("e1"), "x"))
                .await
                .is_none()
        );
        assert_eq!(tier.count_derived(|k| &*k.what == "x").await, 1);
        tier.invalidate_derived(|k| &*k.what == "x").await;
        assert!(tier.get::<u32>(&a).await.is_none());
    }
}
