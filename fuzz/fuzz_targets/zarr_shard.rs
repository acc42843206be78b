//! Zarr v3 `sharding_indexed`: the codec configuration, then a shard's index.
//! Input: a JSON configuration, a 0 byte, the shard's bytes. The shard shape is the inner
//! chunk shape times 1..=4 along each dimension (chosen by the shard's first bytes).
//! Invariants: the index range lies in the shard; every inner range lies in the shard; the
//! present ranges are sorted.
#![no_main]

use geomount::formats::zarr::shard::ShardingCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (conf, shard) = (&data[..split], &data[split + 1..]);
    let Ok(conf) = serde_json::from_slice::<serde_json::Value>(conf) else {
        return;
    };
    let inner: Vec<u64> = conf["chunk_shape"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
        .unwrap_or_default();
    let shape: Vec<u64> = inner
        .iter()
        .enumerate()
        .map(|(i, &c)| c.saturating_mul(1 + u64::from(shard.get(i).copied().unwrap_or(0) % 4)))
        .collect();
    let Ok(codec) = ShardingCodec::from_v3(&conf, &shape) else {
        return;
    };
    let size = shard.len() as u64;
    let Ok(at) = codec.shard.index_range(size) else {
        return;
    };
    assert!(
        at.start <= at.end && at.end <= size,
        "index {at:?} of {size}"
    );
    let index = &shard[at.start as usize..at.end as usize];
    if let Ok(ranges) = codec.shard.inner_ranges(index, size) {
        assert_eq!(ranges.len(), codec.shard.count());
        for r in ranges.iter().flatten() {
            assert!(r.start <= r.end && r.end <= size, "inner {r:?} of {size}");
        }
        let present = codec
            .shard
            .chunk_ranges(index, size)
            .expect("index read twice");
        assert!(present.windows(2).all(|w| w[0].start <= w[1].start));
    }
});
