//! HDF5 (NetCDF-4) files are read by whole chunks, from their chunk indexes, walked with a few
//! batched reads.

use std::ops::Range;

use async_trait::async_trait;

use super::{PlanIo, Planner, Subject};
use crate::error::FsError;
use crate::formats::hdf5::{FIRST_READ, SIGNATURE, Step, Walker, is_hdf5_name};
use crate::formats::merge_near;
use crate::rope::Rope;

/// Small datasets this close together are fetched with one GET.
const SMALL_GAP: u64 = 16 << 10;

#[derive(Debug)]
pub struct Hdf5;

#[async_trait]
impl Planner for Hdf5 {
    fn format(&self) -> &'static str {
        "HDF5"
    }

    fn claims(&self, s: &Subject<'_>) -> bool {
        is_hdf5_name(&s.name.to_ascii_lowercase())
    }

    fn first_read(&self, s: &Subject<'_>) -> Option<Range<u64>> {
        Some(0..FIRST_READ.min(s.obj.size))
    }

    fn read_in_order(&self) -> bool {
        true
    }

    /// The signature lies at byte 0, 512, 1024, 2048, ... (after a user block). Only a first
    /// read that holds the whole file settles its absence; otherwise the walker looks further.
    fn magic(&self, first: &[u8], s: &Subject<'_>) -> bool {
        let at =
            std::iter::once(0).chain(std::iter::successors(Some(512usize), |a| a.checked_mul(2)));
        let found = at
            .take_while(|&a| a + SIGNATURE.len() <= first.len())
            .any(|a| &first[a..a + SIGNATURE.len()] == SIGNATURE);
        found || (first.len() as u64) < s.obj.size
    }

    /// Chunk units: the walker's reads (each an extent of its own, fetched concurrently per
    /// round) and the units they hold whole are kept. The small datasets' storage found in a
    /// round is fetched with the next one, so a NetCDF reader's reads of its coordinates at
    /// open need no round trip of their own.
    async fn plan(
        &self,
        s: &Subject<'_>,
        first: Option<Rope>,
        io: PlanIo<'_>,
    ) -> Result<Option<Vec<Range<u64>>>, FsError> {
        let obj = s.obj;
        let mut walker = Walker::new(obj.size);
        let first = first.unwrap_or_default();
        walker.feed(0, &first.to_bytes());
        let mut reads = vec![(0, first)];
        loop {
            let (walk, done) = match walker.step() {
                Step::Done => (Vec::new(), true),
                Step::Unsupported(why) => {
                    tracing::debug!(key = %obj.key, "no chunk plan for this HDF5 file: {why}");
                    return Ok(None);
                }
                Step::Need(ranges) => (ranges, false),
            };
            // The small datasets found so far ride along with the walk's round.
            let small = merge_near(walker.take_small(), SMALL_GAP);
            if done && small.is_empty() {
                break;
            }
            let got = futures::future::join_all(
                walk.iter()
                    .chain(&small)
                    .map(|r| io.read_extent(obj, r.clone())),
            )
            .await;
            for (i, (r, data)) in walk.iter().chain(&small).zip(got).enumerate() {
                let data = data?;
                if i < walk.len() {
                    walker.feed(r.start, &data.to_bytes());
                }
                reads.push((r.start, data));
            }
            if done {
                break;
            }
        }
        let Some(units) = walker.units() else {
            return Ok(None);
        };
        for (at, data) in &reads {
            io.keep(obj, &units, *at, data).await;
        }
        Ok(Some(units))
    }
}
