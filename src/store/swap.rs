//! A [`Backend`] whose inner backend can be replaced while the mount runs (SIGHUP with new
//! credentials). A call in progress finishes on the backend it started with.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{Backend, Listing, ObjectInfo};
use crate::error::FsError;
use crate::rope::Rope;

#[derive(Debug)]
pub struct Swappable {
    inner: RwLock<Arc<dyn Backend>>,
}

impl Swappable {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner: RwLock::new(inner),
        }
    }

    pub fn swap(&self, new: Arc<dyn Backend>) {
        *self.inner.write() = new;
    }

    fn current(&self) -> Arc<dyn Backend> {
        self.inner.read().clone()
    }
}

#[async_trait]
impl Backend for Swappable {
    async fn list(&self, dir: &str) -> Result<Listing, FsError> {
        self.current().list(dir).await
    }

    async fn probe(&self) -> Result<(), FsError> {
        self.current().probe().await
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        self.current().head(key).await
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError> {
        self.current().get_range(key, range, etag).await
    }

    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        self.current().get_object(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object::{Lister, ObjectBackend};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn calls_go_to_the_backend_swapped_in() {
        let a = Arc::new(InMemory::new());
        let b = Arc::new(InMemory::new());
        a.put(&Path::from("x"), PutPayload::from(b"from a".to_vec()))
            .await
            .unwrap();
        b.put(&Path::from("x"), PutPayload::from(b"from b!".to_vec()))
            .await
            .unwrap();
        let s = Swappable::new(Arc::new(ObjectBackend::new(
            a,
            String::new(),
            Lister::Generic,
        )));
        assert_eq!(s.head("x").await.unwrap().size, 6);
        s.swap(Arc::new(ObjectBackend::new(
            b,
            String::new(),
            Lister::Generic,
        )));
        assert_eq!(s.head("x").await.unwrap().size, 7);
        let got = s.get_range("x", 0..4, None).await.unwrap();
        assert_eq!(&got.to_bytes()[..], b"from");
    }
}
