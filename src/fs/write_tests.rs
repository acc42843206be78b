//! Tests of a writable `Fs` over object_store's in-memory store, without a kernel. Results are
//! checked on the store, never through the filesystem.

use super::*;
use crate::store::metered::Metered;
use crate::store::object::{Lister, ObjectBackend, WriteSupport};
use crate::write::WriteOptions;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::atomic::Ordering::Relaxed;

const OWN: Ownership = Ownership {
    uid: 1000,
    gid: 1000,
    file_mode: 0o644,
    dir_mode: 0o755,
};
const WRITE_BACK: Duration = Duration::from_millis(150);

struct Env {
    mem: Arc<InMemory>,
    fs: Fs,
    metrics: Arc<Metrics>,
    staging: tempfile::TempDir,
}

fn options(staging_max: u64) -> WriteOptions {
    WriteOptions {
        write_back: WRITE_BACK,
        no_delete: false,
        staging_max,
        min_free: 0,
    }
}

fn writable_fs(
    mem: &Arc<InMemory>,
    metrics: &Arc<Metrics>,
    staging: &std::path::Path,
    max: u64,
) -> Fs {
    let backend = Arc::new(Metered::new(
        ObjectBackend::new(mem.clone(), String::new(), Lister::Generic).with_writes(WriteSupport {
            enabled: true,
            preconditions: true,
            metadata: true,
        }),
        metrics.clone(),
        Duration::from_secs(5),
    ));
    let writes = Writes::open(
        staging,
        backend.clone(),
        options(max),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    Fs::new(
        backend,
        metrics.clone(),
        OWN,
        Duration::from_secs(60),
        64 << 20,
    )
    .with_writes(writes)
}

impl Env {
    async fn new() -> Self {
        Self::with_max(u64::MAX).await
    }

    async fn with_max(max: u64) -> Self {
        let mem = Arc::new(InMemory::new());
        let metrics = Arc::new(Metrics::default());
        let staging = tempfile::tempdir().unwrap();
        let fs = writable_fs(&mem, &metrics, staging.path(), max);
        Self {
            mem,
            fs,
            metrics,
            staging,
        }
    }

    async fn put(&self, key: &str, data: &[u8]) {
        self.mem
            .put(&Path::from(key), PutPayload::from(data.to_vec()))
            .await
            .unwrap();
    }

    /// The object at `key` on the server, if any.
    async fn server(&self, key: &str) -> Option<Vec<u8>> {
        match self.mem.get(&Path::from(key)).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }

    async fn keys(&self) -> Vec<String> {
        use futures::TryStreamExt;
        let mut k: Vec<String> = self
            .mem
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        k.sort();
        k
    }

    fn uploads(&self) -> u64 {
        self.metrics.uploads.load(Relaxed)
    }

    /// Creates `name` in `parent`, writes `data` and closes it.
    async fn write_file(&self, parent: u64, name: &str, data: &[u8]) -> u64 {
        let (attr, o) = self
            .fs
            .create(parent, name, 0o644, libc::O_WRONLY | libc::O_CREAT)
            .await
            .unwrap();
        assert_eq!(self.fs.write(o.fh, 0, data).unwrap(), data.len());
        self.fs.flush(o.fh).await.unwrap();
        self.fs.release(o.fh);
        attr.ino
    }

    async fn settle(&self) {
        tokio::time::sleep(WRITE_BACK * 3).await;
    }
}

#[tokio::test]
async fn a_closed_file_is_uploaded_once_after_the_write_back_delay() {
    let env = Env::new().await;
    let ino = env.write_file(ROOT_INO, "a.bin", b"hello world").await;
    // Visible at once, before any upload.
    assert_eq!(env.fs.lookup(ROOT_INO, "a.bin").await.unwrap().size, 11);
    assert_eq!(env.fs.state_xattr(ino).unwrap(), "dirty");
    assert_eq!(env.server("a.bin").await, None);
    env.settle().await;
    assert_eq!(
        env.server("a.bin").await.as_deref(),
        Some(&b"hello world"[..])
    );
    assert_eq!(env.uploads(), 1);
    assert_eq!(env.fs.state_xattr(ino).unwrap(), "clean");
    // Nothing is left in staging.
    assert_eq!(
        std::fs::read_dir(env.staging.path().join("data"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn temporaries_renamed_or_unlinked_inside_the_window_never_reach_the_server() {
    let env = Env::new().await;
    env.put("target.txt", b"old").await;
    // rsync: a temporary, renamed over the target.
    env.write_file(ROOT_INO, ".target.txt.Ab12Cd", b"new bytes")
        .await;
    env.fs
        .rename(
            ROOT_INO,
            ".target.txt.Ab12Cd",
            ROOT_INO,
            "target.txt",
            false,
        )
        .await
        .unwrap();
    // GDAL: an overview temporary, deleted after use.
    env.write_file(ROOT_INO, "out.ovr.tmp", b"overview").await;
    env.fs.unlink(ROOT_INO, "out.ovr.tmp").await.unwrap();
    env.settle().await;
    assert_eq!(env.keys().await, vec!["target.txt".to_string()]);
    assert_eq!(
        env.server("target.txt").await.as_deref(),
        Some(&b"new bytes"[..])
    );
    assert_eq!(env.uploads(), 1);
    let names: Vec<String> = {
        let fh = env.fs.opendir(ROOT_INO).await.unwrap().fh;
        env.fs
            .readdir(ROOT_INO, fh, 0)
            .unwrap()
            .into_iter()
            .map(|e| e.2)
            .collect()
    };
    assert_eq!(names, vec![".", "..", "target.txt"]);
}

#[tokio::test]
async fn a_file_unlinked_while_open_uploads_nothing() {
    let env = Env::new().await;
    let (_, o) = env
        .fs
        .create(ROOT_INO, "gone.bin", 0o644, libc::O_WRONLY | libc::O_CREAT)
        .await
        .unwrap();
    env.fs.unlink(ROOT_INO, "gone.bin").await.unwrap();
    env.fs.write(o.fh, 0, b"late bytes").unwrap();
    env.fs.release(o.fh);
    env.settle().await;
    assert!(env.keys().await.is_empty());
    assert_eq!(env.uploads(), 0);
    assert!(matches!(
        env.fs.lookup(ROOT_INO, "gone.bin").await,
        Err(FsError::NotFound)
    ));
}

#[tokio::test]
async fn fsync_uploads_now_and_an_in_place_edit_keeps_the_rest_of_the_object() {
    let env = Env::new().await;
    env.put("d/meta.json", b"{\"shape\": [10]}").await;
    let attr = env.fs.lookup(ROOT_INO, "d").await.unwrap();
    let f = env.fs.lookup(attr.ino, "meta.json").await.unwrap();
    let o = env.fs.open(f.ino, libc::O_RDWR).await.unwrap();
    env.fs.write(o.fh, 11, b"20").unwrap();
    let read = env.fs.read(o.fh, 0, 100).await.unwrap().to_bytes();
    assert_eq!(&read[..], b"{\"shape\": [20]}");
    env.fs.fsync(f.ino).await.unwrap();
    assert_eq!(
        env.server("d/meta.json").await.as_deref(),
        Some(&b"{\"shape\": [20]}"[..])
    );
    env.fs.release(o.fh);
    env.settle().await;
    assert_eq!(
        env.uploads(),
        1,
        "closing after the fsync uploads nothing more"
    );
}

#[tokio::test]
async fn someone_elses_newer_object_is_never_overwritten() {
    let env = Env::new().await;
    env.put("shared.tif", b"v1").await;
    let f = env.fs.lookup(ROOT_INO, "shared.tif").await.unwrap();
    let o = env
        .fs
        .open(f.ino, libc::O_WRONLY | libc::O_TRUNC)
        .await
        .unwrap();
    env.fs.write(o.fh, 0, b"mine").unwrap();
    // Another writer replaces the object meanwhile.
    env.put("shared.tif", b"theirs").await;
    let err = env.fs.fsync(f.ino).await.unwrap_err();
    assert_eq!(err.errno(), libc::ESTALE, "{err}");
    env.fs.release(o.fh);
    assert_eq!(
        env.server("shared.tif").await.as_deref(),
        Some(&b"theirs"[..])
    );
    let kept: Vec<_> = std::fs::read_dir(env.staging.path().join("conflicts"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(kept, vec![b"mine".to_vec()]);
    assert_eq!(env.metrics.upload_conflicts.load(Relaxed), 1);
}

#[tokio::test]
async fn a_new_key_is_created_only_if_nobody_else_made_it() {
    let env = Env::new().await;
    let (_, o) = env
        .fs
        .create(
            ROOT_INO,
            "new.nc",
            0o644,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        )
        .await
        .unwrap();
    env.fs.write(o.fh, 0, b"ours").unwrap();
    env.put("new.nc", b"raced").await;
    assert_eq!(
        env.fs.fsync(o.fh_ino(&env)).await.unwrap_err().errno(),
        libc::ESTALE
    );
    env.fs.release(o.fh);
    assert_eq!(env.server("new.nc").await.as_deref(), Some(&b"raced"[..]));
}

trait FhIno {
    fn fh_ino(&self, env: &Env) -> u64;
}

impl FhIno for Opened {
    fn fh_ino(&self, env: &Env) -> u64 {
        match env.fs.handles.lock().get(&self.fh) {
            Some(Handle::Staged { ino, .. }) => *ino,
            _ => panic!("not a staged handle"),
        }
    }
}

#[tokio::test]
async fn o_excl_on_an_existing_name_is_eexist() {
    let env = Env::new().await;
    env.put("x", b"1").await;
    let err = env
        .fs
        .create(
            ROOT_INO,
            "x",
            0o644,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        )
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EEXIST);
}

#[tokio::test]
async fn new_folders_and_files_show_in_listings_before_any_upload() {
    let env = Env::new().await;
    env.put("store.zarr/.zgroup", b"{}").await;
    let store = env.fs.lookup(ROOT_INO, "store.zarr").await.unwrap();
    let t2 = env.fs.mkdir(store.ino, "T2").await.unwrap();
    env.write_file(t2.ino, "0.0", b"chunk").await;
    let fh = env.fs.opendir(store.ino).await.unwrap().fh;
    let names: Vec<String> = env
        .fs
        .readdir(store.ino, fh, 0)
        .unwrap()
        .into_iter()
        .map(|e| e.2)
        .collect();
    assert_eq!(names, vec![".", "..", ".zgroup", "T2"]);
    assert_eq!(env.fs.lookup(t2.ino, "0.0").await.unwrap().size, 5);
    // A folder with a file not yet uploaded is not empty.
    assert_eq!(
        env.fs.rmdir(store.ino, "T2").await.unwrap_err().errno(),
        libc::ENOTEMPTY
    );
    env.settle().await;
    assert_eq!(
        env.server("store.zarr/T2/0.0").await.as_deref(),
        Some(&b"chunk"[..])
    );
}

#[tokio::test]
async fn a_folder_made_here_is_renamed_locally_and_one_with_server_files_is_exdev() {
    let env = Env::new().await;
    env.put("old/a", b"a").await;
    let tmp = env.fs.mkdir(ROOT_INO, "tmp.d").await.unwrap();
    env.write_file(tmp.ino, "f", b"ff").await;
    env.fs
        .rename(ROOT_INO, "tmp.d", ROOT_INO, "final.d", false)
        .await
        .unwrap();
    let err = env
        .fs
        .rename(ROOT_INO, "old", ROOT_INO, "new", false)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EXDEV);
    env.settle().await;
    assert_eq!(
        env.keys().await,
        vec!["final.d/f".to_string(), "old/a".to_string()]
    );
}

#[tokio::test]
async fn link_from_a_staged_file_stages_the_new_name_zarr_3_style() {
    let env = Env::new().await;
    let tmp = env
        .write_file(ROOT_INO, "zarr.json.abc123.partial", b"{}")
        .await;
    env.fs.link(tmp, ROOT_INO, "zarr.json").await.unwrap();
    assert_eq!(
        env.fs
            .link(tmp, ROOT_INO, "zarr.json")
            .await
            .unwrap_err()
            .errno(),
        libc::EEXIST
    );
    env.fs
        .unlink(ROOT_INO, "zarr.json.abc123.partial")
        .await
        .unwrap();
    env.settle().await;
    assert_eq!(env.keys().await, vec!["zarr.json".to_string()]);
    assert_eq!(env.uploads(), 1);
}

#[tokio::test]
async fn the_mtime_a_writer_set_is_reported_after_the_upload() {
    let env = Env::new().await;
    let ino = env.write_file(ROOT_INO, "r.dat", b"rsync").await;
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    env.fs
        .setattr(
            ino,
            writing::SetAttr {
                mtime: Some(when),
                mode: Some(0o600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    env.settle().await;
    assert_eq!(env.uploads(), 1);
    assert_eq!(env.fs.getattr(ino).await.unwrap().mtime, when);
}

#[tokio::test]
async fn a_full_staging_area_refuses_the_write_and_uploads_nothing() {
    let env = Env::with_max(1000).await;
    let (_, o) = env
        .fs
        .create(ROOT_INO, "big", 0o644, libc::O_WRONLY | libc::O_CREAT)
        .await
        .unwrap();
    assert_eq!(env.fs.write(o.fh, 0, &[7; 600]).unwrap(), 600);
    let err = env.fs.write(o.fh, 600, &[7; 600]).unwrap_err();
    assert_eq!(err.errno(), libc::ENOSPC);
    env.fs.release(o.fh);
    env.settle().await;
    assert!(env.keys().await.is_empty());
    // The mount still writes files that fit.
    env.write_file(ROOT_INO, "small", b"ok").await;
    env.settle().await;
    assert_eq!(env.server("small").await.as_deref(), Some(&b"ok"[..]));
}

#[tokio::test]
async fn a_closed_file_a_killed_mount_left_is_uploaded_by_the_next_one() {
    let mem = Arc::new(InMemory::new());
    let metrics = Arc::new(Metrics::default());
    let staging = tempfile::tempdir().unwrap();
    {
        // What a mount that died inside the write-back window leaves: a closed file's record.
        let dir = crate::write::staging::StagingDir::open(staging.path()).unwrap();
        use std::io::Write;
        dir.create_data(5).unwrap().write_all(b"survived").unwrap();
        let rec = crate::write::staging::Record {
            path: "deep/er/file.txt".into(),
            base: None,
            closed: true,
            mtime_ns: 1,
            size: 8,
        };
        dir.write_record(5, &rec).unwrap();
        dir.create_data(6).unwrap().write_all(b"torn").unwrap();
        dir.write_record(
            6,
            &crate::write::staging::Record {
                closed: false,
                path: "open.txt".into(),
                ..rec
            },
        )
        .unwrap();
    }
    let fs = writable_fs(&mem, &metrics, staging.path(), u64::MAX);
    tokio::time::sleep(WRITE_BACK * 3).await;
    let got = mem
        .get(&Path::from("deep/er/file.txt"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"survived");
    assert!(
        mem.get(&Path::from("open.txt")).await.is_err(),
        "an open file is never uploaded"
    );
    assert_eq!(
        std::fs::read_dir(staging.path().join("quarantine"))
            .unwrap()
            .count(),
        1
    );
    drop(fs);
}

#[tokio::test]
async fn a_read_only_mount_refuses_every_write() {
    let mem = Arc::new(InMemory::new());
    let metrics = Arc::new(Metrics::default());
    let fs = Fs::new(
        Arc::new(ObjectBackend::new(
            mem.clone(),
            String::new(),
            Lister::Generic,
        )),
        metrics,
        OWN,
        Duration::from_secs(60),
        64 << 20,
    );
    let err = fs
        .create(ROOT_INO, "x", 0o644, libc::O_WRONLY)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EROFS);
    assert_eq!(
        fs.mkdir(ROOT_INO, "d").await.unwrap_err().errno(),
        libc::EROFS
    );
}
