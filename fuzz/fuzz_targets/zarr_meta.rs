//! Zarr consolidated metadata: a v2 `.zmetadata` and a v3 root `zarr.json`, as store metadata
//! and as the layout the namespace classifies names with.
//! Invariants: an array read has as many chunk sizes as dimensions, none 0, and a grid of that
//! rank; classifying and finding shards of names under every node never panics.
#![no_main]

use geomount::formats::zarr::layout::ZarrLayout;
use geomount::formats::zarr::{ArrayMeta, StoreMeta};
use libfuzzer_sys::fuzz_target;

fn check_array(a: &ArrayMeta) {
    assert_eq!(a.shape.len(), a.chunks.len(), "{a:?}");
    assert!(!a.chunks.contains(&0), "{a:?}");
    assert_eq!(a.grid().len(), a.shape.len());
    let _ = a.data_type();
    let _ = a.keys.key(&vec![0u64; a.shape.len()]);
}

fn check_layout(layout: &ZarrLayout, store: &StoreMeta) {
    for node in store.nodes.iter().chain(store.documents.iter()) {
        for rel in [
            node.clone(),
            format!("{node}/0"),
            format!("{node}/0.0"),
            format!("{node}/c/0/0"),
            format!("{node}/.zarray"),
            format!("{node}/zarr.json"),
            format!("{node}/99999999999999999999"),
        ] {
            let _ = layout.classify(&rel);
            let _ = layout.shard_of(&rel);
        }
    }
}

fuzz_target!(|doc: &[u8]| {
    if let Ok(store) = StoreMeta::from_zmetadata(doc) {
        store.arrays.values().flatten().for_each(check_array);
        if let Some(layout) = ZarrLayout::from_v2(doc) {
            check_layout(&layout, &store);
        }
    }
    if let Ok(store) = StoreMeta::from_zarr_json(doc, &[]) {
        store.arrays.values().flatten().for_each(check_array);
        if let Some(Ok(a)) = &store.root_array {
            check_array(a);
        }
        if let Some(layout) = ZarrLayout::from_v3(doc) {
            check_layout(&layout, &store);
        }
    }
    let _ = geomount::formats::zarr::is_consolidated_v3(doc);
});
