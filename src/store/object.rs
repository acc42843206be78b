//! [`Backend`] over any `object_store::ObjectStore` (S3, local files, in-memory for tests).
//! Keys are the source prefix plus the path relative to the mount root.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt};

use super::s3_list::S3Lister;
use super::{Backend, Listing, ObjectInfo, finish_listing};
use crate::error::{FsError, StoreError, StoreErrorKind};
use crate::rope::Rope;

/// How directory levels are listed.
#[derive(Debug)]
pub enum Lister {
    /// object_store's own `list_with_delimiter` (local files, in-memory).
    Generic,
    /// Our ListObjectsV2 client: it skips keys object_store's `Path` rejects (`a//b`, `..`)
    /// instead of failing the whole page.
    S3(S3Lister),
}

#[derive(Debug)]
pub struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    /// Empty, or ends with `/`.
    prefix: String,
    lister: Lister,
}

impl ObjectBackend {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: String, lister: Lister) -> Self {
        Self {
            store,
            prefix,
            lister,
        }
    }

    fn path(&self, rel: &str) -> Result<Path, FsError> {
        let full = format!("{}{}", self.prefix, rel);
        Path::parse(&full).map_err(|_| FsError::NotFound)
    }

    async fn list_generic(&self, dir: &str) -> Result<Listing, FsError> {
        let full = format!("{}{}", self.prefix, dir);
        let prefix = Path::parse(&full).map_err(|_| FsError::NotFound)?;
        let prefix_opt = if full.is_empty() { None } else { Some(&prefix) };
        let res = self
            .store
            .list_with_delimiter(prefix_opt)
            .await
            .map_err(|e| StoreError::from_object_store(e, format!("listing '{full}'")))?;
        let strip = |p: &Path| -> Option<String> {
            let s = p.as_ref();
            let rest = if full.is_empty() {
                s
            } else {
                s.strip_prefix(full.as_str())?
            };
            Some(rest.trim_end_matches('/').to_string())
        };
        let dirs = res.common_prefixes.iter().filter_map(strip).collect();
        let files = res
            .objects
            .iter()
            .filter_map(|m| {
                Some(ObjectInfo {
                    name: strip(&m.location)?,
                    size: m.size,
                    mtime: m.last_modified.into(),
                    etag: m.e_tag.clone(),
                })
            })
            .collect();
        Ok(Listing {
            dirs,
            files,
            requests: 1,
            marker: false,
        })
    }
}

#[async_trait]
impl Backend for ObjectBackend {
    async fn list(&self, dir: &str) -> Result<Listing, FsError> {
        let listing = match &self.lister {
            Lister::Generic => self.list_generic(dir).await?,
            Lister::S3(l) => l.list(&format!("{}{}", self.prefix, dir)).await?,
        };
        Ok(finish_listing(dir, listing))
    }

    async fn probe(&self) -> Result<(), FsError> {
        match &self.lister {
            Lister::Generic => self.list_generic("").await.map(drop),
            Lister::S3(l) => l.probe(&self.prefix).await,
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, FsError> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| StoreError::from_object_store(e, format!("HEAD '{path}'")))?;
        Ok(ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: meta.size,
            mtime: meta.last_modified.into(),
            etag: meta.e_tag,
        })
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Rope, FsError> {
        let path = self.path(key)?;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            if_match: etag.map(str::to_string),
            ..Default::default()
        };
        let what = || format!("GET '{path}' bytes {}-{}", range.start, range.end);
        let res = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| stale_or(e, etag, what()))?;
        body(res, etag, what).await
    }

    /// One GET: the response carries size, ETag and modification time with the bytes.
    async fn get_object(&self, key: &str) -> Result<(ObjectInfo, Rope), FsError> {
        let path = self.path(key)?;
        let what = || format!("GET '{path}'");
        let res = self
            .store
            .get_opts(&path, GetOptions::default())
            .await
            .map_err(|e| StoreError::from_object_store(e, what()))?;
        let info = ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: res.meta.size,
            mtime: res.meta.last_modified.into(),
            etag: res.meta.e_tag.clone(),
        };
        let etag = info.etag.clone();
        let bytes = body(res, etag.as_deref(), what).await?;
        if bytes.len() as u64 != info.size {
            return Err(StoreError::short_read(what(), info.size, bytes.len() as u64).into());
        }
        Ok((info, bytes))
    }
}

/// The body of a GET, kept in the pieces it arrived in.
async fn body(
    res: object_store::GetResult,
    etag: Option<&str>,
    what: impl Fn() -> String,
) -> Result<Rope, FsError> {
    // Network bodies are kept in the pieces they arrived in (object_store's `bytes()` would
    // copy them into one new buffer); local files are read in one piece.
    if matches!(res.payload, GetResultPayload::Stream(_)) {
        let mut rope = Rope::default();
        let mut stream = res.into_stream();
        while let Some(piece) = stream.next().await {
            rope.push(piece.map_err(|e| stale_or(e, etag, what()))?);
        }
        Ok(rope)
    } else {
        let bytes = res.bytes().await.map_err(|e| stale_or(e, etag, what()))?;
        Ok(bytes.into())
    }
}

/// A failed GET; a failed precondition names the ETag the read was pinned to.
fn stale_or(e: object_store::Error, etag: Option<&str>, what: String) -> FsError {
    let e = StoreError::from_object_store(e, what);
    match e.kind() {
        StoreErrorKind::Stale => FsError::Stale {
            expected: etag.unwrap_or_default().to_string(),
        },
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    async fn backend() -> (Arc<InMemory>, ObjectBackend) {
        let mem = Arc::new(InMemory::new());
        for (k, v) in [
            ("p/a.txt", "hello"),
            ("p/dir/b.txt", "bb"),
            ("p/dir/c/d.txt", "ddd"),
            ("other/x", "x"),
        ] {
            mem.put(&Path::from(k), PutPayload::from(v.as_bytes().to_vec()))
                .await
                .unwrap();
        }
        let b = ObjectBackend::new(mem.clone(), "p/".into(), Lister::Generic);
        (mem, b)
    }

    #[tokio::test]
    async fn lists_one_level_under_the_prefix() {
        let (_, b) = backend().await;
        let root = b.list("").await.unwrap();
        assert_eq!(root.dirs, vec!["dir".to_string()]);
        assert_eq!(root.files.len(), 1);
        assert_eq!(root.files[0].name, "a.txt");
        assert_eq!(root.files[0].size, 5);
        let sub = b.list("dir/").await.unwrap();
        assert_eq!(sub.dirs, vec!["c".to_string()]);
        assert_eq!(sub.files[0].name, "b.txt");
    }

    #[tokio::test]
    async fn ranged_get_pinned_to_etag() {
        let (mem, b) = backend().await;
        let info = b.head("a.txt").await.unwrap();
        let etag = info.etag.clone().unwrap();
        let got = b.get_range("a.txt", 1..4, Some(&etag)).await.unwrap();
        assert_eq!(&got.to_bytes()[..], b"ell");
        mem.put(
            &Path::from("p/a.txt"),
            PutPayload::from(b"changed".to_vec()),
        )
        .await
        .unwrap();
        let err = b.get_range("a.txt", 0..2, Some(&etag)).await.unwrap_err();
        assert_eq!(err.errno(), libc::ESTALE, "{err}");
        assert!(matches!(b.head("nope").await, Err(FsError::NotFound)));
    }
}
