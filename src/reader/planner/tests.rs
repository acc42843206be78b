//! The registry and its plan cache over object_store's in-memory store, with requests counted by
//! the metered wrapper.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::metrics::Metrics;
use crate::store::metered::Metered;
use crate::store::object::{Lister, ObjectBackend};

/// GRIB2 messages of these lengths, back to back: section 0 (magic, edition 2, length), then
/// bytes that differ per message.
fn grib(lengths: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &len) in lengths.iter().enumerate() {
        let mut m = vec![i as u8 + 1; len as usize];
        m[..4].copy_from_slice(b"GRIB");
        m[4..8].copy_from_slice(&[0, 0, 0, 2]);
        m[8..16].copy_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&m);
    }
    out
}

/// The objects beside the opened one, as the namespace would give them.
#[derive(Default)]
struct Dir(parking_lot::Mutex<HashMap<String, ObjectRef>>);

#[async_trait]
impl Sidecars for Dir {
    async fn beside(&self, name: &str) -> Option<ObjectRef> {
        self.0.lock().get(name).cloned()
    }
}

struct Env {
    mem: Arc<InMemory>,
    cache: BlockCache,
    metrics: Arc<Metrics>,
    planners: Planners,
    dir: Dir,
}

impl Env {
    fn new() -> Self {
        let mem = Arc::new(InMemory::new());
        let metrics = Arc::new(Metrics::default());
        let backend = Arc::new(Metered::new(
            ObjectBackend::new(mem.clone(), String::new(), Lister::Generic),
            metrics.clone(),
            Duration::from_secs(5),
        ));
        Self {
            mem,
            cache: BlockCache::new(backend, metrics.clone(), 64 << 20),
            metrics,
            planners: Planners::default(),
            dir: Dir::default(),
        }
    }

    /// Puts `key` and returns it as opened (with its new ETag).
    async fn put(&self, key: &str, data: &[u8]) -> ObjectRef {
        let r = self
            .mem
            .put(&Path::from(key), PutPayload::from(data.to_vec()))
            .await
            .unwrap();
        ObjectRef {
            key: key.into(),
            etag: Some(r.e_tag.expect("the in-memory store gives ETags").into()),
            size: data.len() as u64,
        }
    }

    /// Puts `key` as a sidecar that the directory lists.
    async fn put_beside(&self, key: &str, data: &[u8]) {
        let obj = self.put(key, data).await;
        self.dir.0.lock().insert(key.to_string(), obj);
    }

    async fn plan(&self, obj: &ObjectRef) -> Option<Units> {
        let subject = Subject {
            obj,
            name: &obj.key,
            zarr_shard: None,
            sidecar: None,
        };
        self.planners
            .plan(subject, &self.dir, PlanIo::new(&self.cache))
            .await
    }

    fn gets(&self) -> u64 {
        self.metrics.get_requests.load(Relaxed)
    }

    /// Lookups in the block cache, hits and misses.
    fn lookups(&self) -> u64 {
        self.metrics.block_hits.load(Relaxed) + self.metrics.block_misses.load(Relaxed)
    }
}

#[tokio::test]
async fn a_second_open_of_an_unchanged_object_plans_nothing_and_makes_no_request() {
    let env = Env::new();
    let obj = env.put("f.grib2", &grib(&[1000, 2000, 500])).await;
    let plan = env
        .plan(&obj)
        .await
        .expect("a GRIB2 file walked by its messages");
    assert_eq!(
        *plan,
        vec![
            0..256,
            256..1000,
            1000..1256,
            1256..3000,
            3000..3256,
            3256..3500
        ]
    );
    // One probe per message, in series.
    assert_eq!(env.gets(), 3);
    let (gets, lookups) = (env.gets(), env.lookups());
    let again = env.plan(&obj).await.unwrap();
    assert!(Arc::ptr_eq(&plan, &again), "the kept plan is served");
    assert_eq!(env.gets(), gets, "no request");
    assert_eq!(env.lookups(), lookups, "nothing read, even from the cache");
}

#[tokio::test]
async fn plans_are_entries_of_the_shared_memory_tier() {
    let env = Env::new();
    let obj = env.put("f.grib2", &grib(&[1000, 2000, 500])).await;
    let memory = env.cache.memory();
    let plans = |k: &DerivedKey| k.what.starts_with("plan/");
    assert_eq!(memory.count_derived(plans).await, 0);
    env.plan(&obj).await.unwrap();
    assert_eq!(memory.count_derived(plans).await, 1, "kept in the tier");
    // The tier is the only place it is kept: once dropped there, the planner plans again.
    memory.invalidate_derived(plans).await;
    let lookups = env.lookups();
    env.plan(&obj).await.unwrap();
    assert!(
        env.lookups() > lookups,
        "planned again once the entry is gone"
    );
    assert_eq!(memory.count_derived(plans).await, 1);
}

#[tokio::test]
async fn a_changed_etag_replans() {
    let env = Env::new();
    let old = env.put("f.grib2", &grib(&[1000, 2000])).await;
    let before = env.plan(&old).await.unwrap();
    assert_eq!(before.last().unwrap().end, 3000);
    let new = env.put("f.grib2", &grib(&[500, 500, 500])).await;
    assert_ne!(old.etag, new.etag);
    let gets = env.gets();
    let after = env.plan(&new).await.unwrap();
    assert_eq!(
        *after,
        vec![
            0..256,
            256..500,
            500..756,
            756..1000,
            1000..1256,
            1256..1500
        ]
    );
    assert_eq!(env.gets(), gets + 3, "the new version is walked anew");
}

#[tokio::test]
async fn a_plan_from_a_sidecar_is_kept_until_the_sidecar_changes() {
    let env = Env::new();
    let obj = env.put("g.grib2", &grib(&[1000, 2000, 500])).await;
    env.put_beside(
        "g.grib2.idx",
        b"1:0:d=2020121400:A:s:f:\n2:1000:d=2020121400:B:s:f:\n",
    )
    .await;
    // From the inventory alone: no read of the file.
    let plan = env.plan(&obj).await.unwrap();
    assert_eq!(*plan, vec![0..1000, 1000..3500]);
    assert_eq!(env.gets(), 1);
    let again = env.plan(&obj).await.unwrap();
    assert!(Arc::ptr_eq(&plan, &again));
    assert_eq!(env.gets(), 1);
    // A new inventory (new ETag) for the same file: planned from it.
    env.put_beside(
        "g.grib2.idx",
        b"1:0:d=2020121400:A:s:f:\n2:1000:d=2020121400:B:s:f:\n3:3000:d=2020121400:C:s:f:\n",
    )
    .await;
    let plan = env.plan(&obj).await.unwrap();
    assert_eq!(*plan, vec![0..1000, 1000..3000, 3000..3500]);
    assert_eq!(env.gets(), 2);
}

#[tokio::test]
async fn a_file_without_the_formats_magic_is_unplanned_and_so_kept() {
    let env = Env::new();
    let obj = env.put("not.tif", &[7u8; 40_000]).await;
    assert!(env.plan(&obj).await.is_none());
    // Only the first read, which shows the magic is not a TIFF's.
    assert_eq!(env.gets(), 1);
    assert_eq!(env.metrics.bytes_fetched.load(Relaxed), 16 << 10);
    let lookups = env.lookups();
    assert!(env.plan(&obj).await.is_none());
    assert_eq!((env.gets(), env.lookups()), (1, lookups));
}

#[tokio::test]
async fn a_file_no_planner_claims_costs_nothing() {
    let env = Env::new();
    let obj = env.put("data.bin", &grib(&[1000])).await;
    assert!(env.plan(&obj).await.is_none());
    assert_eq!((env.gets(), env.lookups()), (0, 0));
}

#[tokio::test]
async fn a_plan_that_failed_on_io_is_tried_again_at_the_next_open() {
    let env = Env::new();
    let mut obj = env.put("f.grib2", &grib(&[1000, 2000])).await;
    // Opened with an ETag the store no longer has: every GET is refused.
    obj.etag = Some("\"gone\"".into());
    assert!(env.plan(&obj).await.is_none());
    assert_eq!(env.gets(), 1);
    assert!(env.plan(&obj).await.is_none());
    assert_eq!(env.gets(), 2, "the failure was not kept as the file's plan");
}

#[tokio::test]
async fn objects_without_an_etag_are_planned_at_every_open() {
    let env = Env::new();
    let mut obj = env.put("f.grib2", &grib(&[1000, 2000])).await;
    obj.etag = None;
    let first = env.plan(&obj).await.unwrap();
    let lookups = env.lookups();
    let second = env.plan(&obj).await.unwrap();
    assert_eq!(first, second);
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(
        env.lookups() > lookups,
        "planned again (from the cached probes)"
    );
}

#[tokio::test]
async fn a_netcdf_files_small_variables_are_fetched_with_its_plan() {
    let env = Env::new();
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/netcdf/air.nc"
    ))
    .unwrap();
    let obj = env.put("air.nc", &file).await;
    let plan = env.plan(&obj).await.expect("air.nc is planned");
    // The first 64 KiB hold all the metadata, lat, lon and time; `air` (57,288 bytes at
    // 21,104) runs past them and is fetched whole with the plan.
    assert_eq!(env.gets(), 2);
    let air = 21_104..78_392;
    assert!(plan.contains(&air), "{plan:?}");
    let gets = env.gets();
    for unit in plan.iter().filter(|u| u.start >= 20_480) {
        let got = read_units(&env.cache, &obj, std::slice::from_ref(unit), unit.clone())
            .await
            .unwrap();
        assert_eq!(got.to_bytes(), file[unit.start as usize..unit.end as usize]);
    }
    assert_eq!(env.gets(), gets, "the variables are read from the cache");
}
