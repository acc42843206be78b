//! Filesystem-layer tests over object_store's in-memory store, without a kernel.

use super::*;
use crate::cache::block::BLOCK_SIZE;
use crate::store::metered::Metered;
use crate::store::object::{Lister, ObjectBackend};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering::Relaxed;

const OWN: Ownership = Ownership {
    uid: 1234,
    gid: 5678,
    file_mode: 0o440,
    dir_mode: 0o550,
};
const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_millis(200);
const CACHE: u64 = 64 << 20;
const PREFIX: &str = "data/";
const MIB: u64 = 1 << 20;

async fn wait_ttl() {
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
}

/// Random bytes, different for each seed, so a misplaced slice cannot match by accident.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

struct Env {
    mem: Arc<InMemory>,
    fs: Fs,
    metrics: Arc<Metrics>,
}

impl Env {
    async fn new(ttl: Duration) -> Self {
        let mem = Arc::new(InMemory::new());
        let metrics = Arc::new(Metrics::default());
        let backend = Arc::new(Metered::new(
            ObjectBackend::new(mem.clone(), PREFIX.to_string(), Lister::Generic),
            metrics.clone(),
            Duration::from_secs(5),
        ));
        Self {
            mem,
            fs: Fs::new(backend, metrics.clone(), OWN, ttl, CACHE),
            metrics,
        }
    }

    async fn with(keys: &[(&str, &[u8])], ttl: Duration) -> Self {
        let env = Self::new(ttl).await;
        for (k, v) in keys {
            env.put(k, v).await;
        }
        env
    }

    async fn put(&self, rel: &str, data: &[u8]) {
        self.mem
            .put(
                &Path::from(format!("{PREFIX}{rel}")),
                PutPayload::from(data.to_vec()),
            )
            .await
            .unwrap();
    }

    async fn resolve(&self, path: &str) -> Result<Attr, FsError> {
        let mut cur = self.fs.getattr(ROOT_INO).await?;
        for name in path.split('/') {
            cur = self.fs.lookup(cur.ino, name).await?;
        }
        Ok(cur)
    }

    /// Looks `path` up and opens it read-only.
    async fn open(&self, path: &str) -> (Attr, Opened) {
        let attr = self.resolve(path).await.unwrap();
        let opened = self.fs.open(attr.ino, libc::O_RDONLY).await.unwrap();
        (attr, opened)
    }

    async fn readdir_all(&self, ino: u64) -> Vec<(u64, FileKind, String, u64)> {
        let fh = self.fs.opendir(ino).await.unwrap().fh;
        let all = self.fs.readdir(ino, fh, 0).unwrap();
        self.fs.releasedir(fh);
        all
    }

    /// Reads `len` bytes at `off` in chunks of `chunk`, as the kernel would.
    async fn read_chunked(&self, fh: u64, off: u64, len: u64, chunk: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pos = off;
        while pos < off + len {
            let want = chunk.min((off + len - pos) as u32);
            let got = self.fs.read(fh, pos, want).await.unwrap().to_bytes();
            if got.is_empty() {
                break;
            }
            assert!(got.len() <= want as usize);
            pos += got.len() as u64;
            out.extend_from_slice(&got);
        }
        out
    }

    fn gets(&self) -> u64 {
        self.metrics.get_requests.load(Relaxed)
    }
}

/// `data[off..off+len]`, clamped to its end.
fn expected(data: &[u8], off: u64, len: u64) -> &[u8] {
    let start = (off as usize).min(data.len());
    let end = (off.saturating_add(len) as usize).min(data.len());
    &data[start..end]
}

#[tokio::test]
async fn getattr_of_the_root_is_a_directory_with_the_configured_ownership() {
    let env = Env::new(LONG).await;
    let root = env.fs.getattr(ROOT_INO).await.unwrap();
    assert_eq!(root.ino, ROOT_INO);
    assert_eq!(root.kind, FileKind::Dir);
    assert_eq!(root.perm, 0o550);
    assert_eq!(root.nlink, 2);
    assert_eq!((root.uid, root.gid), (1234, 5678));
}

#[tokio::test]
async fn file_attributes_come_from_the_object() {
    let before = SystemTime::now() - Duration::from_secs(5);
    let env = Env::with(&[("d/f.bin", &[7u8; 1000])], LONG).await;
    let after = SystemTime::now() + Duration::from_secs(5);
    let d = env.resolve("d").await.unwrap();
    assert_eq!(d.kind, FileKind::Dir);
    assert_eq!(d.perm, 0o550);
    let f = env.resolve("d/f.bin").await.unwrap();
    assert_eq!(f.kind, FileKind::File);
    assert_eq!(f.size, 1000);
    assert_eq!(f.perm, 0o440);
    assert_eq!(f.nlink, 1);
    assert_eq!((f.uid, f.gid), (1234, 5678));
    assert!(f.mtime > before && f.mtime < after, "{:?}", f.mtime);
    assert_eq!(env.fs.getattr(f.ino).await.unwrap(), f);
    assert_eq!(env.fs.getattr(d.ino).await.unwrap(), d);
}

#[tokio::test]
async fn unknown_inodes_and_handles_are_refused() {
    let env = Env::with(&[("a", b"abc")], LONG).await;
    assert!(matches!(
        env.fs.getattr(424_242).await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        env.fs.open(424_242, libc::O_RDONLY).await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        env.fs.opendir(424_242).await,
        Err(FsError::NotFound)
    ));
    let err = env.fs.read(777, 0, 10).await.unwrap_err();
    assert!(matches!(err, FsError::BadHandle));
    assert_eq!(err.errno(), libc::EBADF);
    assert!(matches!(
        env.fs.readdir(ROOT_INO, 777, 0),
        Err(FsError::BadHandle)
    ));

    // A released handle is gone.
    let (_, o) = env.open("a").await;
    assert_eq!(
        &env.fs.read(o.fh, 0, 10).await.unwrap().to_bytes()[..],
        b"abc"
    );
    assert_eq!(env.fs.open_handles(), 1);
    env.fs.release(o.fh);
    assert_eq!(env.fs.open_handles(), 0);
    assert!(matches!(
        env.fs.read(o.fh, 0, 10).await,
        Err(FsError::BadHandle)
    ));
    let dfh = env.fs.opendir(ROOT_INO).await.unwrap().fh;
    assert!(env.fs.readdir(ROOT_INO, dfh, 0).is_ok());
    env.fs.releasedir(dfh);
    assert!(matches!(
        env.fs.readdir(ROOT_INO, dfh, 0),
        Err(FsError::BadHandle)
    ));
}

#[tokio::test]
async fn opening_a_directory_is_refused() {
    let env = Env::with(&[("d/f", b"x")], LONG).await;
    let d = env.resolve("d").await.unwrap();
    let err = env.fs.open(d.ino, libc::O_RDONLY).await.unwrap_err();
    assert!(matches!(err, FsError::IsADirectory));
    assert!(matches!(
        env.fs.open(ROOT_INO, libc::O_RDONLY).await,
        Err(FsError::IsADirectory)
    ));
    assert_eq!(
        env.fs.open_handles(),
        0,
        "no handle leaked by a failed open"
    );
}

#[tokio::test]
async fn ttl_given_to_the_kernel_is_never_zero() {
    let env = Env::new(Duration::ZERO).await;
    assert_eq!(env.fs.ttl(), Duration::from_millis(100));
    let env = Env::new(LONG).await;
    assert_eq!(env.fs.ttl(), LONG);
}

#[tokio::test]
async fn readdir_gives_dots_then_sorted_entries_with_kinds() {
    let env = Env::with(
        &[
            ("b.txt", b"bb"),
            ("a.txt", b"a"),
            ("Z", b"zzz"),
            ("dir/x", b"x"),
            ("c/d/e", b"e"),
            ("dir/y/z", b"z"),
            ("b.txt.d/q", b"q"),
        ],
        LONG,
    )
    .await;
    let all = env.readdir_all(ROOT_INO).await;
    let got: Vec<(&str, FileKind)> = all.iter().map(|(_, k, n, _)| (n.as_str(), *k)).collect();
    assert_eq!(
        got,
        vec![
            (".", FileKind::Dir),
            ("..", FileKind::Dir),
            ("Z", FileKind::File),
            ("a.txt", FileKind::File),
            ("b.txt", FileKind::File),
            ("b.txt.d", FileKind::Dir),
            ("c", FileKind::Dir),
            ("dir", FileKind::Dir),
        ]
    );
    assert_eq!(all[0].0, ROOT_INO, ". of the root");
    assert_eq!(all[1].0, ROOT_INO, ".. of the root is the root");
    // Each entry carries the offset of the next one.
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.3, i as u64 + 1, "{}", e.2);
    }
    // Inodes agree with lookup.
    for (ino, kind, name, _) in &all[2..] {
        let a = env.fs.lookup(ROOT_INO, name).await.unwrap();
        assert_eq!(a.ino, *ino, "{name}");
        assert_eq!(a.kind, *kind, "{name}");
    }

    // In a subdirectory, `.` is itself and `..` its parent.
    let dir = env.resolve("dir").await.unwrap();
    let sub = env.readdir_all(dir.ino).await;
    let got: Vec<(u64, FileKind, &str)> = sub
        .iter()
        .map(|(i, k, n, _)| (*i, *k, n.as_str()))
        .collect();
    let y = env.resolve("dir/y").await.unwrap();
    let x = env.resolve("dir/x").await.unwrap();
    assert_eq!(
        got,
        vec![
            (dir.ino, FileKind::Dir, "."),
            (ROOT_INO, FileKind::Dir, ".."),
            (x.ino, FileKind::File, "x"),
            (y.ino, FileKind::Dir, "y"),
        ]
    );
    let y_entries = env.readdir_all(y.ino).await;
    assert_eq!(y_entries[1].0, dir.ino, ".. of dir/y is dir");
    assert_eq!(y_entries.len(), 3);
}

#[tokio::test]
async fn readdir_resumes_at_every_offset() {
    let keys: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    let pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"x"[..])).collect();
    let env = Env::with(&pairs, LONG).await;
    let fh = env.fs.opendir(ROOT_INO).await.unwrap().fh;
    let full = env.fs.readdir(ROOT_INO, fh, 0).unwrap();
    assert_eq!(full.len(), 12);
    // Resuming at the offset carried by the 3rd entry gives everything after it.
    let rest = env.fs.readdir(ROOT_INO, fh, full[2].3).unwrap();
    assert_eq!(rest, full[3..].to_vec());
    assert_eq!(rest[0].2, "f1");
    for (k, e) in full.iter().enumerate() {
        assert_eq!(
            env.fs.readdir(ROOT_INO, fh, e.3).unwrap(),
            full[k + 1..].to_vec(),
            "resume after entry {k}"
        );
    }
    assert!(env.fs.readdir(ROOT_INO, fh, 1000).unwrap().is_empty());
    env.fs.releasedir(fh);
}

#[tokio::test]
async fn an_open_directory_handle_is_a_stable_snapshot() {
    let env = Env::with(&[("a", b"1"), ("b", b"2")], SHORT).await;
    let fh = env.fs.opendir(ROOT_INO).await.unwrap().fh;
    let first = env.fs.readdir(ROOT_INO, fh, 0).unwrap();
    env.put("c", b"3").await;
    wait_ttl().await;
    // A new listing is fetched by a new opendir, while the old handle keeps its snapshot.
    let fresh = env.readdir_all(ROOT_INO).await;
    assert_eq!(fresh.len(), 5);
    assert_eq!(fresh[4].2, "c");
    let again = env.fs.readdir(ROOT_INO, fh, 2).unwrap();
    assert_eq!(again, first[2..].to_vec());
    assert_eq!(again.len(), 2);
    env.fs.releasedir(fh);
}

#[tokio::test]
async fn a_directory_of_5000_keys_lists_exactly() {
    const N: usize = 5000;
    let env = Env::new(LONG).await;
    // Names sort lexicographically in index order; sizes vary with the index.
    let name = |i: usize| format!("big/obj-{i:05}.dat");
    let size = |i: usize| (i * 7919) % 1013;
    for i in 0..N {
        env.put(&name(i), &bytes(size(i), i as u64)).await;
    }
    env.put("big/sub/inner", b"i").await;
    env.put("not-big", b"n").await;
    let big = env.resolve("big").await.unwrap();
    let lists = env.metrics.list_requests.load(Relaxed);
    let heads = env.metrics.head_requests.load(Relaxed);
    let all = env.readdir_all(big.ino).await;
    assert_eq!(all.len(), N + 3, "., .., {N} files and sub");
    assert_eq!(&all[0].2, ".");
    assert_eq!(&all[1].2, "..");
    for i in 0..N {
        let (ino, kind, n, off) = &all[i + 2];
        assert_eq!(n, &format!("obj-{i:05}.dat"));
        assert_eq!(*kind, FileKind::File);
        assert_eq!(*off, i as u64 + 3);
        let a = env.fs.lookup(big.ino, n).await.unwrap();
        assert_eq!(a.ino, *ino, "{n}");
        assert_eq!(a.size, size(i) as u64, "{n}");
        assert_eq!(env.fs.getattr(*ino).await.unwrap().size, size(i) as u64);
    }
    assert_eq!(all[N + 2].2, "sub");
    assert_eq!(all[N + 2].1, FileKind::Dir);
    let inos: std::collections::HashSet<u64> = all[2..].iter().map(|e| e.0).collect();
    assert_eq!(inos.len(), N + 1, "distinct inodes");
    // Looking `big` up listed it (one request for all 5,001 entries); opendir and the 5,000
    // lookups were answered from that listing.
    assert_eq!(lists, 1);
    assert_eq!(env.metrics.list_requests.load(Relaxed), lists);
    assert_eq!(env.metrics.head_requests.load(Relaxed), heads);
}

#[tokio::test]
async fn whole_and_range_reads_equal_the_source() {
    let sizes: [usize; 5] = [0, 1, 4095, 131_073, 3 * MIB as usize + 12_345];
    let env = Env::new(LONG).await;
    for (i, &n) in sizes.iter().enumerate() {
        env.put(&format!("s/{n}"), &bytes(n, 100 + i as u64)).await;
    }
    for (i, &n) in sizes.iter().enumerate() {
        let data = bytes(n, 100 + i as u64);
        let gets_before = env.gets();
        let (attr, o) = env.open(&format!("s/{n}")).await;
        assert_eq!(attr.size, n as u64);
        assert!(!o.direct_io);
        let len = n as u64;

        // In one call, asking for more than there is.
        let whole = env
            .fs
            .read(o.fh, 0, n as u32 + 4096)
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(whole.len(), n, "size {n}");
        assert!(whole[..] == data[..], "whole read of size {n}");

        // Sequentially, in kernel-sized chunks.
        let chunked = env.read_chunked(o.fh, 0, len, 128 * 1024).await;
        assert!(chunked == data, "chunked read of size {n}");

        // Ranges: the first and last byte, odd ranges, and across block boundaries.
        let mut ranges = vec![
            (0, 1),
            (len.saturating_sub(1), 1),
            (len / 3, len / 3 + 1),
            (1, 4094),
            (len / 2, 10),
        ];
        if len > BLOCK_SIZE {
            ranges.extend([
                (BLOCK_SIZE - 3, 7),
                (BLOCK_SIZE, 1),
                (BLOCK_SIZE - 1, BLOCK_SIZE + 2),
                (2 * BLOCK_SIZE - 100, len),
            ]);
        }
        for (off, l) in ranges {
            let got = env.fs.read(o.fh, off, l as u32).await.unwrap().to_bytes();
            assert!(
                got[..] == *expected(&data, off, l),
                "size {n}: range {off}+{l} gave {} bytes",
                got.len()
            );
        }

        // At and past EOF: empty.
        for off in [len, len + 1, len + 4096, len + 10 * BLOCK_SIZE] {
            assert!(
                env.fs
                    .read(o.fh, off, 4096)
                    .await
                    .unwrap()
                    .to_bytes()
                    .is_empty(),
                "size {n}: read at {off}"
            );
        }
        // A zero-length read is empty too.
        assert!(env.fs.read(o.fh, 0, 0).await.unwrap().to_bytes().is_empty());
        if n == 0 {
            assert_eq!(env.gets(), gets_before, "an empty file needs no GET");
        }
        env.fs.release(o.fh);
    }
    assert_eq!(env.fs.open_handles(), 0);
}

#[tokio::test]
async fn a_thousand_random_reads_equal_the_source() {
    let n = 5 * MIB as usize + 4321;
    let data = bytes(n, 7);
    let env = Env::with(&[("big.bin", &data)], LONG).await;
    let (attr, o) = env.open("big.bin").await;
    assert_eq!(attr.size, n as u64);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for i in 0..1000 {
        // Some offsets past EOF, some zero lengths, some reads spanning several blocks.
        let off = rng.random_range(0..n as u64 + 2000);
        let len = match rng.random_range(0..10) {
            0 => 0,
            1 => rng.random_range(1..3 * MIB as u32),
            _ => rng.random_range(1..140_000),
        };
        let got = env.fs.read(o.fh, off, len).await.unwrap().to_bytes();
        assert!(
            got[..] == *expected(&data, off, len as u64),
            "read {i}: {off}+{len} gave {} bytes",
            got.len()
        );
    }
    // Everything is cached now: a whole read makes no GET.
    let whole = env.fs.read(o.fh, 0, n as u32).await.unwrap().to_bytes();
    assert!(whole[..] == data[..]);
    let gets = env.gets();
    let whole = env.fs.read(o.fh, 0, n as u32).await.unwrap().to_bytes();
    assert!(whole[..] == data[..]);
    assert_eq!(env.gets(), gets);
    assert!(env.metrics.bytes_read.load(Relaxed) > 0);
}

#[tokio::test]
async fn two_handles_on_one_file_read_independently() {
    let n = 2 * MIB as usize + 17;
    let data = bytes(n, 3);
    let env = Env::with(&[("f", &data)], LONG).await;
    let (_, o1) = env.open("f").await;
    let (_, o2) = env.open("f").await;
    assert_ne!(o1.fh, o2.fh);
    assert!(!o1.keep_cache);
    assert!(o2.keep_cache, "same ETag as the previous open");
    let a = env.fs.read(o1.fh, MIB + 5, 1000).await.unwrap().to_bytes();
    let b = env.fs.read(o2.fh, 5, 1000).await.unwrap().to_bytes();
    assert!(a[..] == data[MIB as usize + 5..MIB as usize + 1005]);
    assert!(b[..] == data[5..1005]);
    env.fs.release(o1.fh);
    let c = env
        .fs
        .read(o2.fh, n as u64 - 10, 100)
        .await
        .unwrap()
        .to_bytes();
    assert!(c[..] == data[n - 10..]);
}

#[tokio::test]
async fn opening_for_writing_is_refused_with_erofs() {
    let env = Env::with(&[("f", b"data")], LONG).await;
    let f = env.resolve("f").await.unwrap();
    for (what, flags) in [
        ("O_WRONLY", libc::O_WRONLY),
        ("O_RDWR", libc::O_RDWR),
        ("O_RDONLY|O_TRUNC", libc::O_RDONLY | libc::O_TRUNC),
        ("O_WRONLY|O_CREAT", libc::O_WRONLY | libc::O_CREAT),
        ("O_RDWR|O_APPEND", libc::O_RDWR | libc::O_APPEND),
    ] {
        for ino in [f.ino, STATS_INO] {
            let err = env.fs.open(ino, flags).await.unwrap_err();
            assert!(matches!(err, FsError::ReadOnly), "{what}: {err}");
            assert_eq!(err.errno(), libc::EROFS, "{what}");
        }
    }
    assert_eq!(env.fs.open_handles(), 0);
    assert_eq!(env.gets(), 0);
    // Read-only opens still work, with harmless extra flags.
    let o = env
        .fs
        .open(f.ino, libc::O_RDONLY | libc::O_NONBLOCK)
        .await
        .unwrap();
    assert_eq!(
        &env.fs.read(o.fh, 0, 100).await.unwrap().to_bytes()[..],
        b"data"
    );
}

#[tokio::test]
async fn a_replaced_object_fails_with_estale_and_never_mixes_versions() {
    let n = 6 * MIB as usize;
    let v1 = bytes(n, 1);
    let v2 = bytes(n, 2);
    let env = Env::with(&[("f", &v1)], SHORT).await;
    let (_, o) = env.open("f").await;
    let head = env.fs.read(o.fh, 0, 4096).await.unwrap().to_bytes();
    assert!(head[..] == v1[..4096]);

    env.put("f", &v2).await;
    // Let any prefetch spawned by the first read run (and fail) now.
    tokio::time::sleep(Duration::from_millis(20)).await;

    // A block that was never fetched for the old version is refused.
    let err = env.fs.read(o.fh, 5 * MIB, 4096).await.unwrap_err();
    assert!(matches!(err, FsError::Stale { .. }), "{err}");
    assert_eq!(err.errno(), libc::ESTALE);

    // Whatever a read returns is the old version; a read that needs any new block fails whole.
    let ranges = [
        (0, 4096),
        (0, 3 * MIB),
        (MIB - 10, 20),
        (2 * MIB, 100),
        (4 * MIB - 1, 2),
        (0, n as u64),
    ];
    for (off, len) in ranges {
        match env.fs.read(o.fh, off, len as u32).await {
            Ok(got) => assert!(
                got.to_bytes()[..] == v1[off as usize..(off + len) as usize],
                "read {off}+{len} returned bytes that are not the opened version"
            ),
            Err(e) => assert!(matches!(e, FsError::Stale { .. }), "read {off}+{len}: {e}"),
        }
    }
    // Block 2 onwards was never fetched before the replacement: those reads must fail.
    for (off, len) in [(0, 3 * MIB), (2 * MIB, 100), (0, n as u64)] {
        assert!(
            matches!(
                env.fs.read(o.fh, off, len as u32).await,
                Err(FsError::Stale { .. })
            ),
            "read {off}+{len} must fail"
        );
    }

    // Once the metadata TTL expired, a new open pins the new version.
    wait_ttl().await;
    let (attr, o2) = env.open("f").await;
    assert_eq!(attr.size, n as u64);
    assert!(!o2.keep_cache, "the kernel must drop the old pages");
    let all = env.fs.read(o2.fh, 0, n as u32).await.unwrap().to_bytes();
    assert!(all[..] == v2[..]);
    // The old handle stays refused.
    assert!(matches!(
        env.fs.read(o.fh, 5 * MIB, 4096).await,
        Err(FsError::Stale { .. })
    ));
}

#[tokio::test]
async fn a_shrunk_object_fails_with_estale_not_short_data() {
    let v1 = bytes(3 * MIB as usize, 11);
    let env = Env::with(&[("f", &v1)], LONG).await;
    let (_, o) = env.open("f").await;
    env.put("f", b"tiny").await;
    let err = env.fs.read(o.fh, 2 * MIB, 4096).await.unwrap_err();
    assert!(matches!(err, FsError::Stale { .. }), "{err}");
}

#[tokio::test]
async fn the_stats_file_is_hidden_but_readable() {
    let env = Env::with(&[("a", b"hello"), ("d/x", b"x")], LONG).await;
    // Some traffic first, so the counters are not all zero.
    let (_, o) = env.open("a").await;
    assert_eq!(
        &env.fs.read(o.fh, 0, 100).await.unwrap().to_bytes()[..],
        b"hello"
    );
    env.fs.release(o.fh);

    let attr = env.fs.lookup(ROOT_INO, STATS_NAME).await.unwrap();
    assert_eq!(attr.ino, STATS_INO);
    assert_eq!(attr.kind, FileKind::File);
    assert_eq!(attr.perm, 0o444);
    assert!(attr.size > 0);
    assert_eq!(
        env.fs.getattr(STATS_INO).await.unwrap().kind,
        FileKind::File
    );

    let listing = env.readdir_all(ROOT_INO).await;
    assert!(
        listing
            .iter()
            .all(|e| e.2 != STATS_NAME && e.0 != STATS_INO),
        "stats file must not be listed: {listing:?}"
    );
    assert_eq!(listing.len(), 4);
    // Only at the root.
    let d = env.resolve("d").await.unwrap();
    assert!(matches!(
        env.fs.lookup(d.ino, STATS_NAME).await,
        Err(FsError::NotFound)
    ));

    let gets = env.gets();
    assert!(gets >= 1);
    let opened = env.fs.open(STATS_INO, libc::O_RDONLY).await.unwrap();
    assert!(opened.direct_io, "size unknown in advance: direct I/O");
    assert!(!opened.keep_cache);
    let whole = env.fs.read(opened.fh, 0, 1 << 20).await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&whole).unwrap();
    for key in [
        "get_requests",
        "list_requests",
        "head_requests",
        "bytes_fetched",
        "bytes_read",
        "lookups",
    ] {
        assert!(json[key].is_u64(), "{key} missing in {json}");
    }
    assert_eq!(json["get_requests"], gets);
    assert_eq!(json["bytes_read"], 5);
    assert!(whole.ends_with(b"}\n"));

    // Piecewise reads give the same snapshot; past the end is empty.
    let mut pieces = Vec::new();
    let mut off = 0;
    loop {
        let p = env.fs.read(opened.fh, off, 7).await.unwrap().to_bytes();
        if p.is_empty() {
            break;
        }
        off += p.len() as u64;
        pieces.extend_from_slice(&p);
    }
    assert_eq!(pieces, whole.to_vec());
    assert!(
        env.fs
            .read(opened.fh, whole.len() as u64 + 10, 10)
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
    env.fs.release(opened.fh);
    assert_eq!(env.fs.open_handles(), 0);
}

#[tokio::test]
async fn opendir_keeps_the_kernel_cache_only_for_an_unchanged_listing() {
    let env = Env::with(&[("a.txt", b"a")], SHORT).await;
    assert!(
        !env.fs.opendir(ROOT_INO).await.unwrap().keep_cache,
        "first opendir"
    );
    assert!(
        env.fs.opendir(ROOT_INO).await.unwrap().keep_cache,
        "same listing"
    );
    wait_ttl().await;
    assert!(
        !env.fs.opendir(ROOT_INO).await.unwrap().keep_cache,
        "listing refreshed after the TTL"
    );
}

/// A consolidated v2 store: `T2` (4, 4) in 2x2 chunks, with `0.0`, `0.1` and `1.0` written.
async fn zarr_env() -> Env {
    let zmeta = serde_json::json!({
        "zarr_consolidated_format": 1,
        "metadata": {
            ".zgroup": {"zarr_format": 2},
            "T2/.zarray": {"shape": [4, 4], "chunks": [2, 2], "zarr_format": 2},
            "T2/.zattrs": {"_ARRAY_DIMENSIONS": ["y", "x"]}
        }
    });
    let zmeta = serde_json::to_vec(&zmeta).unwrap();
    let env = Env::new(LONG).await;
    env.put("s.zarr/.zmetadata", &zmeta).await;
    env.put("s.zarr/.zgroup", b"{\"zarr_format\": 2}").await;
    env.put("s.zarr/T2/.zarray", b"{}").await;
    env.put("s.zarr/T2/.zattrs", b"{}").await;
    for (i, c) in ["0.0", "0.1", "1.0"].iter().enumerate() {
        env.put(
            &format!("s.zarr/T2/{c}"),
            &bytes(3 * MIB as usize / 2, i as u64),
        )
        .await;
    }
    env
}

#[tokio::test]
async fn zarr_lookups_inside_a_consolidated_store_make_no_list_and_one_get_per_chunk() {
    let env = zarr_env().await;
    let store = env.resolve("s.zarr").await.unwrap();
    assert_eq!(store.kind, FileKind::Dir);
    // The probe: zarr.json (missing) and .zmetadata, fetched whole.
    assert_eq!(env.gets(), 2);
    for missing in ["s.zarr/zarr.json", "s.zarr/.zarray", "s.zarr/T2/.zgroup"] {
        assert!(
            matches!(env.resolve(missing).await, Err(FsError::NotFound)),
            "{missing}"
        );
    }
    assert_eq!(env.resolve("s.zarr/T2").await.unwrap().kind, FileKind::Dir);
    assert_eq!(
        env.resolve("s.zarr/.zmetadata").await.unwrap().kind,
        FileKind::File
    );
    assert_eq!(
        env.gets(),
        2,
        "metadata and directories were settled without requests"
    );
    // A chunk: one GET at lookup; open and read need no more.
    let (attr, opened) = env.open("s.zarr/T2/0.1").await;
    assert_eq!(attr.size, 3 * MIB / 2);
    let got = env.read_chunked(opened.fh, 0, attr.size, 128 << 10).await;
    assert_eq!(got, bytes(3 * MIB as usize / 2, 1));
    assert_eq!(env.gets(), 3);
    // A chunk never written is missing after one GET; one off the grid goes to the usual lookup.
    assert!(matches!(
        env.resolve("s.zarr/T2/1.1").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(env.gets(), 4);
    assert_eq!(env.metrics.list_requests.load(Relaxed), 0);
    assert_eq!(env.metrics.head_requests.load(Relaxed), 0);
    assert!(matches!(
        env.resolve("s.zarr/T2/9.9").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(env.metrics.list_requests.load(Relaxed), 1);
}

#[tokio::test]
async fn a_grib_file_with_an_idx_is_read_by_whole_messages_only() {
    let env = Env::new(LONG).await;
    let data = bytes(3 * MIB as usize, 9);
    let (m1, m2) = (700_000u64, 2_000_000u64);
    env.put("g/f.grib2", &data).await;
    let idx = format!(
        "1:0:d=2020121400:A:s:f:\n2:{m1}:d=2020121400:B:s:f:\n3:{m2}:d=2020121400:C:s:f:\n"
    );
    env.put("g/f.grib2.idx", idx.as_bytes()).await;
    let (_, opened) = env.open("g/f.grib2").await;
    assert!(opened.direct_io, "a planned file bypasses the page cache");
    let before = env.metrics.bytes_fetched.load(Relaxed);
    let gets = env.gets();
    // A read inside message 2 fetches exactly message 2.
    let got = env
        .fs
        .read(opened.fh, m1 + 10, 1000)
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&got[..], &data[m1 as usize + 10..m1 as usize + 1010]);
    assert_eq!(env.gets(), gets + 1);
    assert_eq!(env.metrics.bytes_fetched.load(Relaxed) - before, m2 - m1);
    // Message 2 is now cached; a read grazing message 1's tail fetches just those bytes.
    let got = env.fs.read(opened.fh, m1 - 5, 100_000).await.unwrap();
    assert_eq!(
        &got.to_bytes()[..],
        &data[m1 as usize - 5..m1 as usize + 99_995]
    );
    assert_eq!(env.gets(), gets + 2);
    assert_eq!(
        env.metrics.bytes_fetched.load(Relaxed) - before,
        m2 - m1 + 5
    );
    // A read inside message 1 fetches it whole.
    let got = env.fs.read(opened.fh, 10, 10).await.unwrap();
    assert_eq!(&got.to_bytes()[..], &data[10..20]);
    assert_eq!(env.metrics.bytes_fetched.load(Relaxed) - before, m2 + 5);
}

/// A mapped planned file faults its pages in through the page cache, where a short answer is
/// taken for the file's end: a page-cache read that a process's buffer fill would see cut
/// short at the next message is answered in full, and reading the whole file page by page
/// gives its bytes.
#[tokio::test]
async fn a_page_cache_read_of_a_planned_file_is_never_cut_short() {
    let env = Env::new(LONG).await;
    let data = bytes(3 * MIB as usize, 11);
    let m1 = 700_416u64; // page-aligned, as a mapping's faults are
    env.put("g/f.grib2", &data).await;
    env.put(
        "g/f.grib2.idx",
        format!("1:0:d=2020121400:A:s:f:\n2:{m1}:d=2020121400:B:s:f:\n").as_bytes(),
    )
    .await;
    // The same two reads on two handles: one inside message 1, then one continuing it into
    // the head of message 2, not held.
    let reads = [(m1 - 16_384, 8_192u32), (m1 - 8_192, 16_384u32)];
    let (_, process) = env.open("g/f.grib2").await;
    assert!(process.direct_io);
    let (_, pages) = env.open("g/f.grib2").await;
    let mut got = Vec::new();
    for (off, len) in reads {
        got.push(env.fs.read(process.fh, off, len).await.unwrap().to_bytes());
    }
    assert_eq!(
        got[1].len(),
        8_192,
        "a process's buffer fill stops at message 2"
    );
    assert!(got[1][..] == data[m1 as usize - 8_192..m1 as usize]);
    for (off, len) in reads {
        let got = env
            .fs
            .read_for(pages.fh, off, len, ReadFor::PageCache)
            .await
            .unwrap()
            .to_bytes();
        let want = expected(&data, off, len as u64);
        assert_eq!(got.len(), want.len(), "page-cache read at {off}");
        assert!(got[..] == *want, "page-cache read at {off}");
    }
    // Page by page, as faults in a mapping come: every answer is whole, the last one ends
    // the file.
    let (_, pages) = env.open("g/f.grib2").await;
    let mut all = Vec::new();
    let mut off = 0;
    while off < data.len() as u64 {
        let got = env
            .fs
            .read_for(pages.fh, off, 4096, ReadFor::PageCache)
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(
            got.len() as u64,
            4096.min(data.len() as u64 - off),
            "at {off}"
        );
        all.extend_from_slice(&got);
        off += 4096;
    }
    assert!(all == data);
}

#[tokio::test]
async fn a_zarr_v3_shard_is_read_by_its_inner_chunks() {
    let meta = serde_json::json!({
        "zarr_format": 3, "node_type": "group",
        "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": {
            "a": {"zarr_format": 3, "node_type": "array", "shape": [20],
                  "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [20]}},
                  "codecs": [{"name": "sharding_indexed",
                              "configuration": {"chunk_shape": [5]}}]}
        }}
    });
    let env = Env::new(LONG).await;
    env.put("s.zarr/zarr.json", &serde_json::to_vec(&meta).unwrap())
        .await;
    // Four inner chunks of 1000 bytes, then the index (offset, length) x 4 and a CRC32C.
    let mut shard = bytes(4000, 5);
    for i in 0..4u64 {
        shard.extend_from_slice(&(i * 1000).to_le_bytes());
        shard.extend_from_slice(&1000u64.to_le_bytes());
    }
    shard.extend_from_slice(&[0; 4]);
    env.put("s.zarr/a/c/0", &shard).await;
    let (attr, opened) = env.open("s.zarr/a/c/0").await;
    assert_eq!(attr.size, 4068);
    assert!(opened.direct_io);
    let before = env.metrics.bytes_fetched.load(Relaxed);
    let got = env.fs.read(opened.fh, 2000, 1000).await.unwrap();
    assert_eq!(&got.to_bytes()[..], &shard[2000..3000]);
    // Only that inner chunk was fetched, not the shard.
    assert_eq!(env.metrics.bytes_fetched.load(Relaxed) - before, 1000);
    assert_eq!(env.metrics.list_requests.load(Relaxed), 0);
}

#[tokio::test]
async fn a_netcdf4_file_is_planned_from_its_first_read_with_its_small_variables() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/netcdf/air.nc");
    let data = std::fs::read(&p).unwrap();
    // Where h5py says each variable's bytes are (tests/data/make.py).
    let h5py: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.with_extension("json")).unwrap()).unwrap();
    let var = |name: &str| {
        let s = h5py["storage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        let start = s["offset"].as_u64().unwrap();
        start..start + s["size"].as_u64().unwrap()
    };
    let (lat, air) = (var("lat"), var("air"));
    assert!(lat.end <= 64 << 10 && air.start < 64 << 10 && air.end > 64 << 10);
    let env = Env::new(LONG).await;
    env.put("n/air.nc", &data).await;
    let (_, opened) = env.open("n/air.nc").await;
    assert!(opened.direct_io, "a planned file bypasses the page cache");
    // Planning reads the first 64 KiB, which hold all the metadata, and with them `air`
    // (a small variable, under 64 KiB, running past them) whole.
    assert_eq!(env.gets(), 2);
    assert_eq!(
        env.metrics.bytes_fetched.load(Relaxed),
        (64 << 10) + (air.end - air.start)
    );
    // `lat` (contiguous) lies in the first read, `air` was fetched with the plan: no request.
    for v in [lat, air] {
        let got = env
            .fs
            .read(opened.fh, v.start, (v.end - v.start) as u32)
            .await
            .unwrap();
        assert_eq!(&got.to_bytes()[..], &data[v.start as usize..v.end as usize]);
    }
    assert_eq!(env.gets(), 2);
}

/// GRIB2 messages of these lengths, back to back: section 0 (magic, edition 2, length), then
/// random bytes.
fn grib(lengths: &[u64], seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &len) in lengths.iter().enumerate() {
        let mut m = bytes(len as usize, seed * 100 + i as u64);
        m[..4].copy_from_slice(b"GRIB");
        m[4..8].copy_from_slice(&[0, 0, 0, 2]);
        m[8..16].copy_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&m);
    }
    out
}

fn requests(env: &Env) -> (u64, u64, u64) {
    let m = &env.metrics;
    (
        m.get_requests.load(Relaxed),
        m.head_requests.load(Relaxed),
        m.list_requests.load(Relaxed),
    )
}

#[tokio::test]
async fn a_reopened_planned_file_makes_no_request() {
    let env = Env::new(LONG).await;
    env.put("g/f.grib2", &grib(&[300_000, 700_000], 1)).await;
    let (attr, first) = env.open("g/f.grib2").await;
    assert!(first.direct_io, "walked by its messages");
    let before = requests(&env);
    let again = env.fs.open(attr.ino, libc::O_RDONLY).await.unwrap();
    assert!(again.direct_io);
    assert_eq!(
        requests(&env),
        before,
        "the plan is kept: no probe, no lookup"
    );
}

#[tokio::test]
async fn a_replaced_file_is_planned_anew() {
    let env = Env::new(SHORT).await;
    env.put("g/f.grib2", &grib(&[300_000, 700_000], 1)).await;
    let (attr, opened) = env.open("g/f.grib2").await;
    let fetched = || env.metrics.bytes_fetched.load(Relaxed);
    // A read in message 2 fetches the rest of it after its probe (already held).
    let before = fetched();
    env.fs.read(opened.fh, 300_300, 1000).await.unwrap();
    assert_eq!(
        fetched() - before,
        700_000 - crate::formats::grib2::PROBE_BYTES
    );
    // The same name, other message boundaries.
    let data = grib(&[500_000, 500_000], 2);
    env.put("g/f.grib2", &data).await;
    wait_ttl().await;
    let opened = env.fs.open(attr.ino, libc::O_RDONLY).await.unwrap();
    let before = fetched();
    let got = env.fs.read(opened.fh, 500_300, 1000).await.unwrap();
    assert_eq!(&got.to_bytes()[..], &data[500_300..501_300]);
    assert_eq!(
        fetched() - before,
        500_000 - crate::formats::grib2::PROBE_BYTES,
        "read by the new plan"
    );
}
