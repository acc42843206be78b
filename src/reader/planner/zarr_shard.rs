//! Shards of a sharded Zarr v3 array are read by their inner chunks, from the shard index.

use std::ops::Range;

use async_trait::async_trait;

use super::{PlanIo, Planner, Subject};
use crate::error::FsError;
use crate::formats::units;
use crate::rope::Rope;

#[derive(Debug)]
pub struct ZarrShard;

#[async_trait]
impl Planner for ZarrShard {
    fn format(&self) -> &'static str {
        "Zarr v3 shard"
    }

    /// A shard has no name or magic of its own: the namespace knows it from the array's
    /// metadata.
    fn claims(&self, s: &Subject<'_>) -> bool {
        s.zarr_shard.is_some()
    }

    /// Inner-chunk units, from the index (read as an extent of its own): a read of one inner
    /// chunk fetches that chunk, not the shard.
    async fn plan(
        &self,
        s: &Subject<'_>,
        _first: Option<Rope>,
        io: PlanIo<'_>,
    ) -> Result<Option<Vec<Range<u64>>>, FsError> {
        let (obj, Some(shard)) = (s.obj, s.zarr_shard.as_ref()) else {
            return Ok(None);
        };
        let len = shard.index_len();
        if len > obj.size {
            return Ok(None);
        }
        let at = if shard.index_at_end {
            obj.size - len
        } else {
            0
        };
        let index = io.read_extent(obj, at..at + len).await?;
        let mut scratch = Vec::new();
        let Some(mut ranges) =
            index.with_contiguous(&mut scratch, |b| shard.chunk_ranges(b, obj.size))
        else {
            return Ok(None);
        };
        // The index is a unit of its own too, so no chunk's unit runs into it.
        ranges.push(at..at + len);
        ranges.sort_by_key(|r| r.start);
        Ok(Some(units(&ranges, 0, obj.size)))
    }
}
