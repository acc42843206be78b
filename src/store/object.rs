//! [`Backend`] over any `object_store::ObjectStore` (S3, local files, in-memory for tests).
//! Keys are the source prefix plus the path relative to the mount root.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, GetResultPayload, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, UpdateVersion, WriteMultipart,
};

use super::s3_list::S3Lister;
use super::{Backend, Listing, ObjectInfo, Replace, Upload, finish_listing};
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

/// Objects up to this size are uploaded with one PUT; larger ones in parts.
pub const SINGLE_PUT_MAX: u64 = 16 << 20;
/// The smallest part of a multipart upload; larger files get larger parts, so that none needs
/// more than [`MAX_PARTS`].
pub const MIN_PART: u64 = 16 << 20;
/// S3's limit on the parts of one upload.
pub const MAX_PARTS: u64 = 10_000;
/// Parts of one upload in flight at once (their bytes are held until sent).
pub const PARTS_IN_FLIGHT: usize = 4;

/// What the store behind an [`ObjectBackend`] supports when writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSupport {
    /// Uploads may be written at all.
    pub enabled: bool,
    /// PUT honours create-only and If-Match preconditions.
    pub preconditions: bool,
    /// Objects carry user metadata (`x-amz-meta-*`).
    pub metadata: bool,
}

#[derive(Debug)]
pub struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    /// Empty, or ends with `/`.
    prefix: String,
    lister: Lister,
    writes: WriteSupport,
    /// The server honours conditional PUT: learned by [`Backend::prepare_writes`]; until then
    /// (and where it does not) an upload checks with a HEAD first.
    conditional: std::sync::atomic::AtomicBool,
}

/// The part size for a multipart upload of `size` bytes: at least [`MIN_PART`], and large
/// enough that no upload needs more than [`MAX_PARTS`] parts.
pub fn part_size(size: u64) -> u64 {
    size.div_ceil(MAX_PARTS).max(MIN_PART)
}

/// Reads `len` bytes of `file` at `offset`, off the async threads.
async fn read_part(up: &Upload, offset: u64, len: u64) -> Result<bytes::Bytes, FsError> {
    let file = up.file.clone();
    let res = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, offset).map(|()| buf.into())
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    res.map_err(|e| FsError::Staging(crate::error::CacheError::io("read", &up.local, e)))
}

impl ObjectBackend {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: String, lister: Lister) -> Self {
        Self {
            store,
            prefix,
            lister,
            writes: WriteSupport::default(),
            conditional: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Allows uploads, with what the store supports.
    pub fn with_writes(mut self, writes: WriteSupport) -> Self {
        self.writes = writes;
        self.conditional = writes.preconditions.into();
        self
    }

    fn attributes(&self, up: &Upload) -> Attributes {
        let mut a = Attributes::new();
        if self.writes.metadata {
            let secs = up
                .mtime
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            a.insert(
                Attribute::Metadata("mtime".into()),
                AttributeValue::from(format!("{secs:.9}")),
            );
        }
        a
    }

    /// Whether the object at `path` may be replaced under `replace`, asked with a HEAD (for a
    /// multipart upload, whose completion object_store sends without a precondition; a writer
    /// that lands between this check and the completion is not detected).
    async fn may_replace(&self, path: &Path, replace: &Replace) -> Result<(), FsError> {
        let current = match self.store.head(path).await {
            Ok(m) => Some(m.e_tag),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(StoreError::from_object_store(e, format!("HEAD '{path}'")).into()),
        };
        let ok = match (replace, &current) {
            (Replace::Anything, _) | (Replace::Nothing, None) => true,
            (Replace::Etag(want), Some(have)) => have.as_deref() == Some(want.as_str()),
            (Replace::Nothing, Some(_)) | (Replace::Etag(_), None) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(FsError::Stale {
                expected: format!("{replace:?} at '{path}'"),
            })
        }
    }

    async fn put_multipart(&self, path: &Path, up: Upload) -> Result<Option<String>, FsError> {
        let what = || format!("multipart upload of '{path}'");
        let opts = PutMultipartOptions {
            attributes: self.attributes(&up),
            ..Default::default()
        };
        let upload = self
            .store
            .put_multipart_opts(path, opts)
            .await
            .map_err(|e| StoreError::from_object_store(e, what()))?;
        let part = part_size(up.size);
        let mut w = WriteMultipart::new_with_chunk_size(upload, part as usize);
        let mut offset = 0;
        while offset < up.size {
            let len = part.min(up.size - offset);
            let bytes = match read_part(&up, offset, len).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            };
            if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT - 1).await {
                let _ = w.abort().await;
                return Err(StoreError::from_object_store(e, what()).into());
            }
            w.put(bytes);
            offset += len;
        }
        // `finish` aborts the upload when a part or the completion fails.
        let done = w
            .finish()
            .await
            .map_err(|e| StoreError::from_object_store(e, what()))?;
        Ok(done.e_tag)
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

    async fn put_file(&self, key: &str, up: Upload) -> Result<Option<String>, FsError> {
        if !self.writes.enabled {
            return Err(FsError::ReadOnly);
        }
        let path = self.path(key)?;
        let mut replace = up.replace.clone();
        if !self.writes.preconditions {
            // No ETags to compare (a local folder): the last writer wins.
            replace = Replace::Anything;
        } else if up.size > SINGLE_PUT_MAX
            || !self.conditional.load(std::sync::atomic::Ordering::Relaxed)
        {
            // The completion of a multipart upload is sent without a precondition, and some
            // servers ignore them on PUT: a HEAD checks first.
            self.may_replace(&path, &replace).await?;
            replace = Replace::Anything;
        }
        if up.size > SINGLE_PUT_MAX {
            return self.put_multipart(&path, up).await;
        }
        let mode = match replace {
            Replace::Nothing => PutMode::Create,
            Replace::Etag(e) => PutMode::Update(UpdateVersion {
                e_tag: Some(e),
                version: None,
            }),
            Replace::Anything => PutMode::Overwrite,
        };
        let opts = PutOptions {
            mode,
            attributes: self.attributes(&up),
            ..Default::default()
        };
        let bytes = read_part(&up, 0, up.size).await?;
        let done = self
            .store
            .put_opts(&path, bytes.into(), opts)
            .await
            .map_err(|e| put_error(e, &path))?;
        Ok(done.e_tag)
    }

    /// Puts a probe key twice, create-only: a server that honours preconditions refuses the
    /// second. The probe key is deleted.
    async fn prepare_writes(&self) -> Result<Vec<String>, FsError> {
        if !(self.writes.enabled && self.writes.preconditions) {
            return Ok(Vec::new());
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = format!(".geomount-probe-{}-{stamp}", std::process::id());
        let path = self.path(&key)?;
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let what = || format!("PUT '{path}' (write check)");
        self.store
            .put_opts(&path, bytes::Bytes::new().into(), create())
            .await
            .map_err(|e| StoreError::from_object_store(e, what()))?;
        let second = self
            .store
            .put_opts(&path, bytes::Bytes::new().into(), create())
            .await;
        let _ = self.store.delete(&path).await;
        let honoured = matches!(
            second,
            Err(object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. })
        );
        self.conditional
            .store(honoured, std::sync::atomic::Ordering::Relaxed);
        Ok(if honoured {
            Vec::new()
        } else {
            vec![
                "the server ignores conditional PUT (If-None-Match/If-Match): each upload checks the object with a HEAD first, and a writer that lands between the check and the upload is overwritten".to_string(),
            ]
        })
    }

    async fn delete(&self, key: &str) -> Result<(), FsError> {
        if !self.writes.enabled {
            return Err(FsError::ReadOnly);
        }
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::from_object_store(e, format!("DELETE '{path}'")).into()),
        }
    }
}

/// A failed PUT; a failed precondition (someone else's object is there) is [`FsError::Stale`].
fn put_error(e: object_store::Error, path: &Path) -> FsError {
    match e {
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            FsError::Stale {
                expected: format!("the object at '{path}' this copy was based on"),
            }
        }
        e => StoreError::from_object_store(e, format!("PUT '{path}'")).into(),
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
