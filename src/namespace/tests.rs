//! Namespace tests over object_store's in-memory store, with requests counted by `Metered`.

use super::*;
use crate::store::metered::Metered;
use crate::store::object::{Lister, ObjectBackend};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

/// Long enough that nothing expires during a test.
const LONG: Duration = Duration::from_secs(600);
/// Short TTL for expiry tests; `wait_ttl` sleeps past it.
const SHORT: Duration = Duration::from_millis(200);

async fn wait_ttl() {
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
}

/// The source prefix every test mounts; keys outside it must stay invisible.
const PREFIX: &str = "src/";

struct Env {
    mem: Arc<InMemory>,
    ns: Namespace,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Requests {
    list: u64,
    head: u64,
    get: u64,
}

impl Env {
    async fn new(keys: &[&str], ttl: Duration) -> Self {
        let mem = Arc::new(InMemory::new());
        let metrics = Arc::new(Metrics::default());
        let backend = Arc::new(Metered::new(
            ObjectBackend::new(mem.clone(), PREFIX.to_string(), Lister::Generic),
            metrics.clone(),
            Duration::from_secs(5),
        ));
        let env = Self {
            mem,
            ns: Namespace::new(
                backend.clone(),
                BlockCache::new(backend, metrics.clone(), 64 << 20),
                ttl,
                metrics.clone(),
            ),
            metrics,
        };
        for k in keys {
            // Content is the key itself, so sizes are predictable.
            env.put(k, k.as_bytes()).await;
        }
        env
    }

    /// Puts `rel` (relative to the mount root) with `data`.
    async fn put(&self, rel: &str, data: &[u8]) {
        self.put_raw(&format!("{PREFIX}{rel}"), data).await;
    }

    /// Puts a full key, possibly outside the mounted prefix.
    async fn put_raw(&self, key: &str, data: &[u8]) {
        self.mem
            .put(&Path::from(key), PutPayload::from(data.to_vec()))
            .await
            .unwrap();
    }

    async fn delete(&self, rel: &str) {
        self.mem
            .delete(&Path::from(format!("{PREFIX}{rel}")))
            .await
            .unwrap();
    }

    fn requests(&self) -> Requests {
        Requests {
            list: self.metrics.list_requests.load(Relaxed),
            head: self.metrics.head_requests.load(Relaxed),
            get: self.metrics.get_requests.load(Relaxed),
        }
    }

    /// Resolves a `/`-separated path from the root by successive lookups.
    async fn resolve(&self, path: &str) -> Result<NodeInfo, FsError> {
        let mut cur = self.ns.get(ROOT_INO)?;
        for name in path.split('/') {
            cur = self.ns.lookup(cur.ino, name).await?;
        }
        Ok(cur)
    }
}

fn size_of(info: &NodeInfo) -> u64 {
    match &info.kind {
        NodeKind::File { size, .. } => *size,
        NodeKind::Dir => panic!("{} is a directory", info.path),
    }
}

fn etag_of(info: &NodeInfo) -> Option<String> {
    match &info.kind {
        NodeKind::File { etag, .. } => etag.clone(),
        NodeKind::Dir => panic!("{} is a directory", info.path),
    }
}

fn names(entries: &[DirEntry]) -> Vec<(&str, bool)> {
    entries
        .iter()
        .map(|e| (e.name.as_str(), e.is_dir))
        .collect()
}

const TREE: &[&str] = &[
    "a.txt",
    "dir/b.txt",
    "dir/c/d.txt",
    "dir/c/e/f.txt",
    "top.bin",
];

#[tokio::test]
async fn root_is_a_directory_with_itself_as_parent() {
    let env = Env::new(TREE, LONG).await;
    let root = env.ns.get(ROOT_INO).unwrap();
    assert_eq!(root.kind, NodeKind::Dir);
    assert_eq!(root.path, "");
    assert_eq!(env.ns.parent_of(ROOT_INO), ROOT_INO);
    assert_eq!(env.ns.ttl(), LONG);
    assert!(matches!(
        env.ns.get(ROOT_INO + 1000),
        Err(FsError::NotFound)
    ));
    assert_eq!(
        env.requests(),
        Requests {
            list: 0,
            head: 0,
            get: 0
        }
    );
}

#[tokio::test]
async fn lookup_without_parent_listing_uses_list_and_head() {
    let env = Env::new(TREE, LONG).await;

    // A file in the root: one LIST (is it a directory?) and one HEAD (is it an object?).
    let a = env.ns.lookup(ROOT_INO, "a.txt").await.unwrap();
    assert_eq!(a.path, "a.txt");
    assert_eq!(size_of(&a), "a.txt".len() as u64);
    assert!(etag_of(&a).is_some(), "the in-memory store reports ETags");
    assert_eq!(env.ns.parent_of(a.ino), ROOT_INO);
    assert_eq!(
        env.requests(),
        Requests {
            list: 1,
            head: 1,
            get: 0
        }
    );

    // An implicit directory (no object `dir`, only keys below it).
    let dir = env.ns.lookup(ROOT_INO, "dir").await.unwrap();
    assert_eq!(dir.kind, NodeKind::Dir);
    assert_eq!(dir.path, "dir");
    assert_eq!(
        env.requests(),
        Requests {
            list: 2,
            head: 2,
            get: 0
        }
    );

    // Looking `dir` up listed it, so its children resolve without requests.
    let b = env.ns.lookup(dir.ino, "b.txt").await.unwrap();
    assert_eq!(b.path, "dir/b.txt");
    assert_eq!(size_of(&b), "dir/b.txt".len() as u64);
    let c = env.ns.lookup(dir.ino, "c").await.unwrap();
    assert_eq!(c.kind, NodeKind::Dir);
    assert_eq!(c.path, "dir/c");
    assert_eq!(env.ns.parent_of(c.ino), dir.ino);
    assert_eq!(env.requests().list, 2);
    assert_eq!(env.requests().head, 2);

    // `dir/c` was seen in a listing but not listed itself: a child needs LIST + HEAD.
    let d = env.ns.lookup(c.ino, "d.txt").await.unwrap();
    assert_eq!(d.path, "dir/c/d.txt");
    assert_eq!(size_of(&d), "dir/c/d.txt".len() as u64);
    assert_eq!(env.ns.parent_of(d.ino), c.ino);
    assert_eq!(
        env.requests(),
        Requests {
            list: 3,
            head: 3,
            get: 0
        }
    );

    // Deeper: an implicit directory two levels below another implicit one.
    let f = env.resolve("dir/c/e/f.txt").await.unwrap();
    assert_eq!(f.path, "dir/c/e/f.txt");
    assert_eq!(size_of(&f), "dir/c/e/f.txt".len() as u64);

    // A missing name.
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "nope").await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        env.resolve("dir/c/nope.txt").await,
        Err(FsError::NotFound)
    ));
}

#[tokio::test]
async fn lookup_through_a_fresh_parent_listing_makes_no_request() {
    let env = Env::new(TREE, LONG).await;
    let root = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(
        names(&root),
        vec![("a.txt", false), ("dir", true), ("top.bin", false)]
    );
    let before = env.requests();
    assert_eq!(
        before,
        Requests {
            list: 1,
            head: 0,
            get: 0
        }
    );
    let hits = env.metrics.listing_hits.load(Relaxed);

    let a = env.ns.lookup(ROOT_INO, "a.txt").await.unwrap();
    assert_eq!(size_of(&a), 5);
    let dir = env.ns.lookup(ROOT_INO, "dir").await.unwrap();
    assert_eq!(dir.kind, NodeKind::Dir);
    let top = env.ns.lookup(ROOT_INO, "top.bin").await.unwrap();
    assert_eq!(size_of(&top), "top.bin".len() as u64);
    // A name the listing does not have is missing, also without a request.
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "b.txt").await,
        Err(FsError::NotFound)
    ));

    assert_eq!(env.requests(), before, "lookups answered by the listing");
    assert_eq!(env.metrics.listing_hits.load(Relaxed), hits + 4);
    // The inodes are the listing's.
    for (e, info) in root.iter().zip([&a, &dir, &top]) {
        assert_eq!(e.ino, info.ino, "{}", e.name);
    }
}

#[tokio::test]
async fn inodes_are_stable_and_distinct_per_path() {
    let env = Env::new(TREE, SHORT).await;
    let paths = [
        "a.txt",
        "dir",
        "dir/b.txt",
        "dir/c",
        "dir/c/d.txt",
        "dir/c/e",
        "dir/c/e/f.txt",
        "top.bin",
    ];
    let mut first = Vec::new();
    for p in paths {
        let info = env.resolve(p).await.unwrap();
        assert_eq!(info.path, p);
        assert_eq!(env.ns.get(info.ino).unwrap(), info);
        first.push(info.ino);
    }
    let distinct: HashSet<u64> = first.iter().copied().collect();
    assert_eq!(distinct.len(), paths.len(), "one inode per path: {first:?}");
    assert!(!distinct.contains(&ROOT_INO));

    // Same inodes from repeated lookups, from listings, and after every cache expired.
    for round in 0..3 {
        if round == 2 {
            wait_ttl().await;
        }
        for (p, &ino) in paths.iter().zip(&first) {
            assert_eq!(env.resolve(p).await.unwrap().ino, ino, "{p} round {round}");
        }
        let root = env.ns.list(ROOT_INO).await.unwrap();
        let by_name: HashMap<_, _> = root.iter().map(|e| (e.name.as_str(), e.ino)).collect();
        assert_eq!(by_name["a.txt"], first[0]);
        assert_eq!(by_name["dir"], first[1]);
        assert_eq!(by_name["top.bin"], first[7]);
        let dir = env.ns.list(first[1]).await.unwrap();
        assert_eq!(
            names(&dir),
            vec![("b.txt", false), ("c", true)],
            "round {round}"
        );
        assert_eq!(dir[0].ino, first[2]);
        assert_eq!(dir[1].ino, first[3]);
    }
}

#[tokio::test]
async fn invalid_names_are_not_found_without_any_request() {
    let env = Env::new(&["a.txt", "a/b"], LONG).await;
    let long = "x".repeat(256);
    for name in [".", "..", "", "a/b", "a\0b", long.as_str()] {
        assert!(
            matches!(env.ns.lookup(ROOT_INO, name).await, Err(FsError::NotFound)),
            "{name:?}"
        );
    }
    let dir = env.ns.get(ROOT_INO).unwrap();
    assert_eq!(dir.kind, NodeKind::Dir);
    assert_eq!(
        env.requests(),
        Requests {
            list: 0,
            head: 0,
            get: 0
        },
        "invalid names must be refused before any request"
    );
    // Nothing was remembered as missing either: valid names still resolve.
    assert_eq!(
        env.ns.lookup(ROOT_INO, "a").await.unwrap().kind,
        NodeKind::Dir
    );
}

#[tokio::test]
async fn a_255_byte_name_is_valid() {
    let name = "n".repeat(255);
    let env = Env::new(&[name.as_str()], LONG).await;
    let info = env.ns.lookup(ROOT_INO, &name).await.unwrap();
    assert_eq!(info.path, name);
    assert_eq!(size_of(&info), 255);
    let root = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(names(&root), vec![(name.as_str(), false)]);
}

#[tokio::test]
async fn keys_outside_the_prefix_are_invisible() {
    let env = Env::new(&["in.txt"], LONG).await;
    env.put_raw("other/out.txt", b"x").await;
    env.put_raw("srcx/out.txt", b"x").await;
    env.put_raw("srcfile", b"x").await;
    let root = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(names(&root), vec![("in.txt", false)]);
    let fresh = Env::new(&["in.txt"], LONG).await;
    fresh.put_raw("other/out.txt", b"x").await;
    for name in ["other", "srcx", "srcfile", "out.txt"] {
        assert!(
            matches!(
                fresh.ns.lookup(ROOT_INO, name).await,
                Err(FsError::NotFound)
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_directory_wins_over_an_object_with_the_same_name() {
    let keys = ["x", "x/y", "z"];

    // Through the parent listing: `x` appears once, as a directory.
    let env = Env::new(&keys, LONG).await;
    let root = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(names(&root), vec![("x", true), ("z", false)]);
    let before = env.requests();
    let x = env.ns.lookup(ROOT_INO, "x").await.unwrap();
    assert_eq!(x.kind, NodeKind::Dir);
    assert_eq!(x.ino, root[0].ino);
    assert_eq!(env.requests(), before);
    let y = env.ns.lookup(x.ino, "y").await.unwrap();
    assert_eq!(size_of(&y), "x/y".len() as u64);
    assert!(matches!(
        env.ns.open_file(x.ino).await,
        Err(FsError::IsADirectory)
    ));

    // Through LIST + HEAD (parent not listed): the HEAD finds the object, the directory still wins.
    let env = Env::new(&keys, LONG).await;
    let x = env.ns.lookup(ROOT_INO, "x").await.unwrap();
    assert_eq!(x.kind, NodeKind::Dir);
    assert_eq!(x.path, "x");
    assert_eq!(
        names(&env.ns.list(x.ino).await.unwrap()),
        vec![("y", false)]
    );
    // A later listing of the root agrees and reuses the inode.
    let root = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(names(&root), vec![("x", true), ("z", false)]);
    assert_eq!(root[0].ino, x.ino);
    assert_eq!(env.ns.get(x.ino).unwrap().kind, NodeKind::Dir);
}

#[tokio::test]
async fn listing_is_cached_within_the_ttl() {
    let env = Env::new(TREE, LONG).await;
    let first = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(env.requests().list, 1);
    env.put("new.txt", b"new").await;
    let hits = env.metrics.listing_hits.load(Relaxed);
    let second = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(env.requests().list, 1, "no LIST within the TTL");
    assert_eq!(env.metrics.listing_hits.load(Relaxed), hits + 1);
    assert_eq!(first, second);
    assert!(!second.iter().any(|e| e.name == "new.txt"));
    // The cached listing also answers lookups: the new name is not seen yet.
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "new.txt").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(env.requests().list, 1);
    assert_eq!(env.requests().head, 0);
}

#[tokio::test]
async fn listing_is_refreshed_after_the_ttl() {
    let env = Env::new(TREE, SHORT).await;
    let first = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(env.requests().list, 1);
    env.put("new.txt", b"new!").await;
    env.delete("top.bin").await;
    wait_ttl().await;
    let second = env.ns.list(ROOT_INO).await.unwrap();
    assert_eq!(env.requests().list, 2);
    assert_eq!(
        names(&second),
        vec![("a.txt", false), ("dir", true), ("new.txt", false)]
    );
    // Surviving entries keep their inodes; the new one gets a new inode.
    assert_eq!(second[0].ino, first[0].ino);
    assert_eq!(second[1].ino, first[1].ino);
    assert!(first.iter().all(|e| e.ino != second[2].ino));
    let new = env.ns.lookup(ROOT_INO, "new.txt").await.unwrap();
    assert_eq!(new.ino, second[2].ino);
    assert_eq!(size_of(&new), 4);
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "top.bin").await,
        Err(FsError::NotFound)
    ));
    // Both lookups were answered by the new listing.
    assert_eq!(env.requests().list, 2);
    assert_eq!(env.requests().head, 0);
}

#[tokio::test]
async fn missing_names_are_cached_within_the_ttl() {
    let env = Env::new(TREE, SHORT).await;
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "later.txt").await,
        Err(FsError::NotFound)
    ));
    let after_first = env.requests();
    assert_eq!(
        after_first,
        Requests {
            list: 1,
            head: 1,
            get: 0
        }
    );
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "later.txt").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(env.requests(), after_first, "second miss is cached");
    assert_eq!(env.metrics.negative_hits.load(Relaxed), 1);

    // Created now, it is still reported missing until the negative entry expires...
    env.put("later.txt", b"here").await;
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "later.txt").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(env.requests(), after_first);

    // ...and found after the TTL.
    wait_ttl().await;
    let info = env.ns.lookup(ROOT_INO, "later.txt").await.unwrap();
    assert_eq!(size_of(&info), 4);
    assert_eq!(
        env.requests(),
        Requests {
            list: 2,
            head: 2,
            get: 0
        }
    );
    // Found now, the name is no longer cached as missing.
    assert_eq!(
        env.ns.lookup(ROOT_INO, "later.txt").await.unwrap().ino,
        info.ino
    );
    assert_eq!(env.metrics.negative_hits.load(Relaxed), 2);
}

#[tokio::test]
async fn missing_directories_are_cached_within_the_ttl() {
    let env = Env::new(TREE, SHORT).await;
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "later").await,
        Err(FsError::NotFound)
    ));
    let after_first = env.requests();
    assert!(matches!(
        env.ns.lookup(ROOT_INO, "later").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(env.requests(), after_first);
    env.put("later/inside.txt", b"x").await;
    wait_ttl().await;
    let info = env.ns.lookup(ROOT_INO, "later").await.unwrap();
    assert_eq!(info.kind, NodeKind::Dir);
    assert_eq!(
        names(&env.ns.list(info.ino).await.unwrap()),
        vec![("inside.txt", false)]
    );
}

#[tokio::test]
async fn a_file_that_becomes_a_directory_keeps_its_inode() {
    let env = Env::new(&["f", "d/e"], SHORT).await;
    let f = env.ns.lookup(ROOT_INO, "f").await.unwrap();
    assert_eq!(size_of(&f), 1);
    assert!(matches!(
        env.ns.list(f.ino).await,
        Err(FsError::NotADirectory)
    ));
    let d = env.ns.lookup(ROOT_INO, "d").await.unwrap();
    assert_eq!(d.kind, NodeKind::Dir);
    assert_eq!(
        names(&env.ns.list(d.ino).await.unwrap()),
        vec![("e", false)]
    );

    // Swap them: `f` becomes a directory, `d` an object.
    env.delete("f").await;
    env.put("f/g", b"g").await;
    env.delete("d/e").await;
    env.put("d", b"now a file").await;
    wait_ttl().await;

    let f2 = env.ns.lookup(ROOT_INO, "f").await.unwrap();
    assert_eq!(f2.ino, f.ino);
    assert_eq!(f2.kind, NodeKind::Dir);
    assert_eq!(
        names(&env.ns.list(f.ino).await.unwrap()),
        vec![("g", false)]
    );
    assert!(matches!(
        env.ns.open_file(f.ino).await,
        Err(FsError::IsADirectory)
    ));

    let d2 = env.ns.lookup(ROOT_INO, "d").await.unwrap();
    assert_eq!(d2.ino, d.ino);
    assert_eq!(size_of(&d2), 10);
    // Its old listing is gone with the directory.
    assert!(matches!(
        env.ns.list(d.ino).await,
        Err(FsError::NotADirectory)
    ));
    assert!(matches!(
        env.ns.lookup(d.ino, "e").await,
        Err(FsError::NotADirectory)
    ));
}

#[tokio::test]
async fn lookups_and_lists_on_the_wrong_kind_of_node_fail() {
    let env = Env::new(TREE, LONG).await;
    let a = env.ns.lookup(ROOT_INO, "a.txt").await.unwrap();
    assert!(matches!(
        env.ns.lookup(a.ino, "x").await,
        Err(FsError::NotADirectory)
    ));
    assert!(matches!(
        env.ns.list(a.ino).await,
        Err(FsError::NotADirectory)
    ));
    assert!(matches!(
        env.ns.lookup(9_999, "x").await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(env.ns.list(9_999).await, Err(FsError::NotFound)));
    assert!(matches!(
        env.ns.open_file(9_999).await,
        Err(FsError::NotFound)
    ));
    assert!(matches!(
        env.ns.open_file(ROOT_INO).await,
        Err(FsError::IsADirectory)
    ));
    let dir = env.ns.lookup(ROOT_INO, "dir").await.unwrap();
    let err = env.ns.open_file(dir.ino).await.unwrap_err();
    assert!(matches!(err, FsError::IsADirectory));
    assert_eq!(err.errno(), libc::EISDIR);
}

#[tokio::test]
async fn open_keeps_the_page_cache_only_while_the_etag_is_unchanged() {
    let env = Env::new(TREE, SHORT).await;
    let a = env.ns.lookup(ROOT_INO, "a.txt").await.unwrap();
    let heads = env.requests().head;

    let (info, keep) = env.ns.open_file(a.ino).await.unwrap();
    assert!(!keep, "first open: nothing cached to keep");
    assert_eq!(info, a);
    let (info2, keep) = env.ns.open_file(a.ino).await.unwrap();
    assert!(keep, "second open, same ETag");
    assert_eq!(info2, a);
    assert_eq!(env.requests().head, heads, "facts fresh: no HEAD at open");

    // Past the TTL, an unchanged object keeps the cache (after a HEAD).
    wait_ttl().await;
    let (_, keep) = env.ns.open_file(a.ino).await.unwrap();
    assert!(keep);
    assert_eq!(env.requests().head, heads + 1);

    // Replaced: the next open after the TTL sees the new ETag and drops the cache.
    env.put("a.txt", b"replaced!").await;
    wait_ttl().await;
    let (info3, keep) = env.ns.open_file(a.ino).await.unwrap();
    assert!(!keep, "new ETag: the kernel must drop its pages");
    assert_eq!(env.requests().head, heads + 2);
    assert_eq!(info3.ino, a.ino);
    assert_eq!(size_of(&info3), 9);
    assert_ne!(etag_of(&info3), etag_of(&a));
    assert_eq!(env.ns.get(a.ino).unwrap(), info3, "the node was updated");
    let (_, keep) = env.ns.open_file(a.ino).await.unwrap();
    assert!(keep, "and then keeps it again");
}

#[tokio::test]
async fn open_of_a_deleted_object_after_the_ttl_is_not_found() {
    let env = Env::new(TREE, SHORT).await;
    let a = env.ns.lookup(ROOT_INO, "a.txt").await.unwrap();
    env.delete("a.txt").await;
    wait_ttl().await;
    assert!(matches!(
        env.ns.open_file(a.ino).await,
        Err(FsError::NotFound)
    ));
}

#[tokio::test]
async fn listing_a_large_directory_keeps_every_key() {
    let keys: Vec<String> = (0..1500).map(|i| format!("big/k{i:04}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let env = Env::new(&refs, LONG).await;
    let big = env.ns.lookup(ROOT_INO, "big").await.unwrap();
    let entries = env.ns.list(big.ino).await.unwrap();
    assert_eq!(entries.len(), 1500);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.name, format!("k{i:04}"));
        assert!(!e.is_dir);
        assert_eq!(env.ns.parent_of(e.ino), big.ino);
    }
    let distinct: HashSet<u64> = entries.iter().map(|e| e.ino).collect();
    assert_eq!(distinct.len(), 1500);
}

#[test]
fn remembered_missing_names_stay_within_their_byte_bound() {
    let mut t = Tables::default();
    let ttl = Duration::from_secs(3600);
    let long = "d/".repeat(1000);
    let n = 2 * MAX_NEGATIVE_BYTES / Tables::negative_weight(&long);
    for i in 0..n {
        t.remember_missing(format!("{long}{i}"), ttl);
        assert!(
            t.negative_bytes <= MAX_NEGATIVE_BYTES,
            "{}",
            t.negative_bytes
        );
    }
    let held: usize = t.negative.keys().map(|p| Tables::negative_weight(p)).sum();
    assert_eq!(held, t.negative_bytes, "the tally is the entries' weight");
    assert!(
        t.negative.contains_key(&format!("{long}{}", n - 1)),
        "the newest is kept"
    );
    t.forget_missing(&format!("{long}{}", n - 1));
    let held: usize = t.negative.keys().map(|p| Tables::negative_weight(p)).sum();
    assert_eq!(held, t.negative_bytes);
}
