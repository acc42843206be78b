//! A [`Backend`] that routes a tree of several sources: the root lists one directory per source
//! (a config file's `[sources.NAME]`), and `NAME/rest` goes to that source's own backend stack
//! (its endpoint, region and credentials) as `rest`. The filesystem above sees one backend.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Backend, Listing, ObjectInfo, Upload};
use crate::error::{FsError, StoreError, StoreErrorKind};
use crate::rope::Rope;

#[derive(Debug)]
pub struct MultiBackend {
    /// Sorted by name; names are valid file names.
    sources: Vec<(String, Arc<dyn Backend>)>,
}

impl MultiBackend {
    pub fn new(mut sources: Vec<(String, Arc<dyn Backend>)>) -> Self {
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        Self { sources }
    }

    /// The source holding `path` and the path within it; `None` for the root or an unknown name.
    fn route<'a>(&self, path: &'a str) -> Option<(&Arc<dyn Backend>, &'a str)> {
        let (name, rest) = path.split_once('/')?;
        let i = self
            .sources
            .binary_search_by(|s| s.0.as_str().cmp(name))
            .ok()?;
        Some((&self.sources[i].1, rest))
    }
}

#[async_trait]
impl Backend for MultiBackend {
    async fn list(&self, dir: &str) -> Result<Listing, FsError> {
        if dir.is_empty() {
            return Ok(Listing {
                dirs: self.sources.iter().map(|s| s.0.clone()).collect(),
                requests: 0,
                ..Default::default()
            });
        }
        let (b, rest) = self.route(dir).ok_or(FsError::NotFound)?;
        b.list(rest).await
    }

    /// Probes every source; the first failure names its source.
    async fn probe(&self) -> Result<(), FsError> {
        let results = futures::future::join_all(self.sources.iter().map(|(_, b)| b.probe())).await;
        for ((name, _), r) in self.sources.iter().zip(results) {
            if let Err(e) = r {
                return Err(match e {
                    FsError::Store(e) => FsError::Store(e.in_source(name)),
                    other => FsError::Store(
                        StoreError::new(StoreErrorKind::Remote { status: None }, "probe")
                            .with_source(other)
                            .in_source(name),
                    ),
                });
            }
        }
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        // A source's own root is a directory, never an object.
        let (b, rest) = self.route(key).ok_or(FsError::NotFound)?;
        if rest.is_empty() {
            return Err(FsError::NotFound);
        }
        b.head(rest).await
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError> {
        let (b, rest) = self.route(key).ok_or(FsError::NotFound)?;
        b.get_range(rest, range, etag).await
    }

    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        let (b, rest) = self.route(key).ok_or(FsError::NotFound)?;
        if rest.is_empty() {
            return Err(FsError::NotFound);
        }
        b.get_object(rest).await
    }

    async fn put_file(&self, key: &str, up: Upload) -> Result<Option<String>, FsError> {
        match self.route(key) {
            Some((b, rest)) if !rest.is_empty() => b.put_file(rest, up).await,
            _ => Err(FsError::ReadOnly),
        }
    }

    async fn prepare_writes(&self) -> Result<Vec<String>, FsError> {
        let mut warnings = Vec::new();
        for (name, b) in &self.sources {
            for w in b.prepare_writes().await? {
                warnings.push(format!("source {name}: {w}"));
            }
        }
        Ok(warnings)
    }

    async fn delete(&self, key: &str) -> Result<(), FsError> {
        match self.route(key) {
            Some((b, rest)) if !rest.is_empty() => b.delete(rest).await,
            _ => Err(FsError::ReadOnly),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object::{Lister, ObjectBackend};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    async fn source(files: &[(&str, &str)]) -> Arc<dyn Backend> {
        let mem = Arc::new(InMemory::new());
        for (k, v) in files {
            mem.put(&Path::from(*k), PutPayload::from(v.as_bytes().to_vec()))
                .await
                .unwrap();
        }
        Arc::new(ObjectBackend::new(mem, "p/".into(), Lister::Generic))
    }

    #[tokio::test]
    async fn the_root_lists_sources_and_paths_route_to_their_source() {
        let m = MultiBackend::new(vec![
            (
                "hrrr".into(),
                source(&[("p/hrrr.20201214/a.grib2", "grib")]).await,
            ),
            (
                "conus404".into(),
                source(&[("p/daily.zarr/.zgroup", "{}"), ("p/x", "xx")]).await,
            ),
        ]);
        let root = m.list("").await.unwrap();
        assert_eq!(root.dirs, ["conus404", "hrrr"]);
        assert!(root.files.is_empty());
        let c = m.list("conus404/").await.unwrap();
        assert_eq!(c.dirs, ["daily.zarr"]);
        assert_eq!(c.files[0].name, "x");
        assert_eq!(
            m.list("hrrr/hrrr.20201214/").await.unwrap().files[0].name,
            "a.grib2"
        );
        let info = m.head("hrrr/hrrr.20201214/a.grib2").await.unwrap();
        assert_eq!((info.name.as_str(), info.size), ("a.grib2", 4));
        let got = m.get_range("conus404/x", 0..2, None).await.unwrap();
        assert_eq!(&got.to_bytes()[..], b"xx");
        for missing in ["nope/x", "hrrr", "conus404/", "x"] {
            assert!(
                matches!(m.head(missing).await, Err(FsError::NotFound)),
                "{missing}"
            );
        }
        assert!(matches!(m.list("nope/").await, Err(FsError::NotFound)));
        m.probe().await.unwrap();
    }
}
