//! [`Metered`]: the live backend of a mount. It holds the backend requests go to, which SIGHUP
//! replaces with one carrying new credentials ([`Metered::swap`]), counts requests, errors and
//! bytes in [`Metrics`], and bounds every call by the request timeout, so no operation can hang
//! past it.
//!
//! Invariants: a call runs to its end on the backend it started with (a swap affects only calls
//! that start after it); the counters belong to the mount, not to the backend, so they carry on
//! across swaps.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{Backend, Listing, ObjectInfo, Upload};
use crate::error::{FsError, NoAnswer, StoreError, StoreErrorKind, Unavailable};
use crate::metrics::Metrics;
use crate::rope::Rope;

#[derive(Debug)]
pub struct Metered {
    live: RwLock<Arc<dyn Backend>>,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl Metered {
    pub fn new(inner: impl Backend, metrics: Arc<Metrics>, timeout: Duration) -> Self {
        Self::shared(Arc::new(inner), metrics, timeout)
    }

    /// Over a backend others may hold too (a built source stack is one).
    pub fn shared(inner: Arc<dyn Backend>, metrics: Arc<Metrics>, timeout: Duration) -> Self {
        Self {
            live: RwLock::new(inner),
            metrics,
            timeout,
        }
    }

    /// Sends every call that starts from now on to `new`; calls under way finish where they are.
    pub fn swap(&self, new: Arc<dyn Backend>) {
        *self.live.write() = new;
    }

    /// The backend a call starting now goes to (the lock is held only to clone it).
    fn current(&self) -> Arc<dyn Backend> {
        self.live.read().clone()
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, FsError>>,
    ) -> Result<T, FsError> {
        let res = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(
                StoreError::new(StoreErrorKind::Unavailable(Unavailable::Timeout), what)
                    .with_source(NoAnswer {
                        within: self.timeout,
                        hint: "--request-timeout",
                    })
                    .into(),
            ),
        };
        if let Err(e) = &res
            && !e.is_expected()
        {
            Metrics::inc(&self.metrics.request_errors);
        }
        res
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Backend for Metered {
    async fn list(&self, dir: &str) -> Result<Listing, FsError> {
        let live = self.current();
        let res = self.bounded(&format!("LIST {dir}"), live.list(dir)).await;
        let pages = res.as_ref().map(|l| l.requests.max(1)).unwrap_or(1);
        Metrics::add(&self.metrics.list_requests, pages);
        res
    }

    async fn probe(&self) -> Result<(), FsError> {
        Metrics::inc(&self.metrics.list_requests);
        let live = self.current();
        self.bounded("LIST (access check)", live.probe()).await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        Metrics::inc(&self.metrics.head_requests);
        let live = self.current();
        self.bounded(&format!("HEAD {key}"), live.head(key)).await
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError> {
        Metrics::inc(&self.metrics.get_requests);
        let what = format!("GET {key} bytes {}-{}", range.start, range.end);
        tracing::trace!("{what}");
        let live = self.current();
        let data = self
            .bounded(&what, live.get_range(key, range, etag))
            .await?;
        Metrics::add(&self.metrics.bytes_fetched, data.len() as u64);
        Ok(data)
    }

    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        Metrics::inc(&self.metrics.get_requests);
        let live = self.current();
        let got = self
            .bounded(&format!("GET {key}"), live.get_object(key))
            .await?;
        Metrics::add(&self.metrics.bytes_fetched, got.1.len() as u64);
        Ok(got)
    }

    /// Not bounded by the request timeout as a whole: a large upload takes many requests, each
    /// of which the object_store client bounds.
    async fn put_file(&self, key: &str, up: Upload) -> Result<Option<String>, FsError> {
        Metrics::inc(&self.metrics.uploads);
        let size = up.size;
        let res = self.current().put_file(key, up).await;
        match &res {
            Ok(_) => Metrics::add(&self.metrics.bytes_uploaded, size),
            Err(FsError::Stale { .. }) => Metrics::inc(&self.metrics.upload_conflicts),
            Err(_) => Metrics::inc(&self.metrics.upload_errors),
        }
        res
    }

    async fn delete(&self, key: &str) -> Result<(), FsError> {
        Metrics::inc(&self.metrics.delete_requests);
        let live = self.current();
        self.bounded(&format!("DELETE {key}"), live.delete(key))
            .await
    }

    async fn prepare_writes(&self) -> Result<Vec<String>, FsError> {
        self.current().prepare_writes().await
    }

    fn is_derived(&self, key: &str) -> bool {
        self.current().is_derived(key)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::store::object::{Lister, ObjectBackend};

    #[tokio::test]
    async fn calls_go_to_the_backend_swapped_in_and_the_counts_carry_on() {
        let a = Arc::new(InMemory::new());
        let b = Arc::new(InMemory::new());
        a.put(&Path::from("x"), PutPayload::from(b"from a".to_vec()))
            .await
            .unwrap();
        b.put(&Path::from("x"), PutPayload::from(b"from b!".to_vec()))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let m = Metered::new(
            ObjectBackend::new(a, String::new(), Lister::Generic),
            metrics.clone(),
            Duration::from_secs(5),
        );
        assert_eq!(m.head("x").await.unwrap().size, 6);
        m.swap(Arc::new(ObjectBackend::new(
            b,
            String::new(),
            Lister::Generic,
        )));
        assert_eq!(m.head("x").await.unwrap().size, 7);
        let got = m.get_range("x", 0..4, None).await.unwrap();
        assert_eq!(&got.to_bytes()[..], b"from");
        assert_eq!(metrics.head_requests.load(Relaxed), 2);
        assert_eq!(metrics.get_requests.load(Relaxed), 1);
        assert_eq!(metrics.bytes_fetched.load(Relaxed), 4);
    }
}
