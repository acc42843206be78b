//! A [`Backend`] wrapper that counts requests, errors and bytes in [`Metrics`] and bounds every
//! call by the request timeout, so no operation can hang past it.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Backend, Listing, ObjectInfo};
use crate::error::{FsError, NoAnswer, StoreError, StoreErrorKind, Unavailable};
use crate::metrics::Metrics;
use crate::rope::Rope;

#[derive(Debug)]
pub struct Metered<B> {
    inner: B,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl<B: Backend> Metered<B> {
    pub fn new(inner: B, metrics: Arc<Metrics>, timeout: Duration) -> Self {
        Self {
            inner,
            metrics,
            timeout,
        }
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
impl<B: Backend> Backend for Metered<B> {
    async fn list(&self, dir: &str) -> Result<Listing, FsError> {
        let res = self
            .bounded(&format!("LIST {dir}"), self.inner.list(dir))
            .await;
        let pages = res.as_ref().map(|l| l.requests.max(1)).unwrap_or(1);
        Metrics::add(&self.metrics.list_requests, pages);
        res
    }

    async fn probe(&self) -> Result<(), FsError> {
        Metrics::inc(&self.metrics.list_requests);
        self.bounded("LIST (access check)", self.inner.probe())
            .await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        Metrics::inc(&self.metrics.head_requests);
        self.bounded(&format!("HEAD {key}"), self.inner.head(key))
            .await
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError> {
        Metrics::inc(&self.metrics.get_requests);
        let what = format!("GET {key} bytes {}-{}", range.start, range.end);
        let data = self
            .bounded(&what, self.inner.get_range(key, range, etag))
            .await?;
        Metrics::add(&self.metrics.bytes_fetched, data.len() as u64);
        Ok(data)
    }

    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        Metrics::inc(&self.metrics.get_requests);
        let got = self
            .bounded(&format!("GET {key}"), self.inner.get_object(key))
            .await?;
        Metrics::add(&self.metrics.bytes_fetched, got.1.len() as u64);
        Ok(got)
    }
}
