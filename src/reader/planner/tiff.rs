//! TIFF (classic or BigTIFF, tiled or stripped) files are read by whole tiles, from IFDs
//! parsed once with one or two small ranged reads.

use std::ops::Range;

use async_trait::async_trait;

use super::{PlanIo, Planner, Subject};
use crate::error::FsError;
use crate::formats::tiff::{TiffError, has_size_leaders, is_tiff, tile_ranges};
use crate::formats::units;
use crate::rope::Rope;

/// First read of a TIFF, as GDAL's /vsis3/ makes it: a COG's IFDs usually fit, with room for a
/// reader's first buffered read (kept as the head of the first tile's unit); if the IFDs do not
/// fit, exactly the missing bytes follow.
const FIRST_READ: u64 = 16 << 10;
/// A TIFF whose IFDs and tile arrays do not fit in this many first bytes is read unplanned.
const MAX_PREFIX: u64 = 4 << 20;
/// Bytes of the size leader GDAL's COG driver may write before each tile.
const LEADER: u64 = 4;

#[derive(Debug)]
pub struct Tiff;

#[async_trait]
impl Planner for Tiff {
    fn format(&self) -> &'static str {
        "TIFF"
    }

    fn claims(&self, s: &Subject<'_>) -> bool {
        let name = s.name.to_ascii_lowercase();
        name.ends_with(".tif") || name.ends_with(".tiff")
    }

    fn first_read(&self, s: &Subject<'_>) -> Option<Range<u64>> {
        Some(0..FIRST_READ.min(s.obj.size))
    }

    fn magic(&self, first: &[u8], _s: &Subject<'_>) -> bool {
        is_tiff(first)
    }

    /// Tile units, from the first read of the IFDs (and one more if the tile arrays lie
    /// further). The tile units those reads hold whole are kept from them.
    async fn plan(
        &self,
        s: &Subject<'_>,
        first: Option<Rope>,
        io: PlanIo<'_>,
    ) -> Result<Option<Vec<Range<u64>>>, FsError> {
        let obj = s.obj;
        let mut prefix = first.unwrap_or_default();
        let mut want = prefix.len() as u64;
        let mut scratch = Vec::new();
        let tiles = loop {
            match prefix.with_contiguous(&mut scratch, tile_ranges) {
                Ok(t) => break t,
                Err(TiffError::NeedPrefix(n)) if n <= MAX_PREFIX.min(obj.size) && n > want => {
                    // Read as an extent of its own, so a later open (or mount) finds it cached.
                    let more = io.read_extent(obj, want..n).await?;
                    prefix.append(more);
                    want = n;
                }
                Err(e) => {
                    tracing::debug!(key = %obj.key, "no tile plan for this TIFF: {e}");
                    return Ok(None);
                }
            }
        };
        let leader = if prefix.with_contiguous(&mut scratch, has_size_leaders) {
            LEADER
        } else {
            0
        };
        let units = units(&tiles, leader, obj.size);
        io.keep(obj, &units, 0, &prefix).await;
        Ok(Some(units))
    }
}
