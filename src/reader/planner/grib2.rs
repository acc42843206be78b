//! GRIB2 files are read by whole messages. The boundaries come from the `.idx` sidecar when it
//! fits the file, else from each message's section 0, hopping from one message to the next.

use std::ops::Range;

use async_trait::async_trait;

use super::{PlanIo, Planner, Subject};
use crate::cache::block::ObjectRef;
use crate::error::FsError;
use crate::formats::grib2::{
    PROBE_BYTES, Step, find_magic, hop_units, is_grib_name, messages_from_idx, short_tail, step,
};
use crate::rope::Rope;

/// Larger inventories are not read (a real one is tens of KiB).
const MAX_IDX_BYTES: u64 = 16 << 20;
/// Messages planned at open without an inventory: each costs one serial small request on the
/// first open (1-5 s for all 64 at 20-80 ms per request); later messages take the block path.
const MAX_HOPS: usize = 64;
/// Section 0 is 16 bytes: a smaller file holds no message.
const SECTION0: u64 = 16;

#[derive(Debug)]
pub struct Grib2;

#[async_trait]
impl Planner for Grib2 {
    fn format(&self) -> &'static str {
        "GRIB2"
    }

    fn claims(&self, s: &Subject<'_>) -> bool {
        is_grib_name(s.name)
    }

    fn sidecar(&self, s: &Subject<'_>) -> Option<String> {
        Some(format!("{}.idx", s.name))
    }

    fn read_in_order(&self) -> bool {
        true
    }

    /// Without an inventory, the first message's probe (which holds the `GRIB` magic); with
    /// one, nothing: the inventory gives the plan with no read of the file.
    fn first_read(&self, s: &Subject<'_>) -> Option<Range<u64>> {
        (s.sidecar.is_none() && s.obj.size >= SECTION0).then(|| 0..PROBE_BYTES.min(s.obj.size))
    }

    fn magic(&self, first: &[u8], _s: &Subject<'_>) -> bool {
        find_magic(first).is_some()
    }

    async fn plan(
        &self,
        s: &Subject<'_>,
        first: Option<Rope>,
        io: PlanIo<'_>,
    ) -> Result<Option<Vec<Range<u64>>>, FsError> {
        if let Some(idx) = &s.sidecar
            && let Some(messages) = idx_plan(s.obj, idx, io).await?
        {
            return Ok(Some(messages));
        }
        hop_plan(s.obj, first, io).await
    }
}

/// The messages an inventory gives, or `None` when it is too large, not text or does not fit
/// the file.
async fn idx_plan(
    obj: &ObjectRef,
    idx: &ObjectRef,
    io: PlanIo<'_>,
) -> Result<Option<Vec<Range<u64>>>, FsError> {
    if idx.size > MAX_IDX_BYTES {
        return Ok(None);
    }
    let text = io.read(idx, 0..idx.size).await?.to_bytes();
    let Ok(text) = std::str::from_utf8(&text) else {
        return Ok(None);
    };
    let messages = messages_from_idx(text, obj.size);
    if messages.is_none() {
        tracing::debug!(key = %obj.key, "the .idx sidecar does not fit the file: no message plan from it");
    }
    Ok(messages)
}

/// Message units from section 0 of each message: one small ranged read per message, in series
/// (each start comes from the previous length), each kept as an extent of its own so that a
/// later open needs no request. The walk stops after [`MAX_HOPS`] messages or at anything that
/// is not a GRIB2 message; reads past the planned units take the block path. (A lazier plan,
/// finding the next boundary when a read reaches past the known ones, would need plans that
/// grow while a file is open; readers hold a fixed one.) `first` is the probe at byte 0.
async fn hop_plan(
    obj: &ObjectRef,
    mut first: Option<Rope>,
    io: PlanIo<'_>,
) -> Result<Option<Vec<Range<u64>>>, FsError> {
    let (mut probes, mut messages, mut tail) = (Vec::new(), Vec::new(), None);
    let mut pos = 0;
    let mut scratch = Vec::new();
    while messages.len() < MAX_HOPS {
        if short_tail(pos, obj.size).is_some() {
            tail = Some(obj.size);
            break;
        }
        let mut probe = pos..(pos + PROBE_BYTES).min(obj.size);
        let mut bytes = match first.take().filter(|_| pos == 0) {
            Some(b) => b,
            None => io.read_extent(obj, probe.clone()).await?,
        };
        let mut next = bytes.with_contiguous(&mut scratch, |b| step(b, pos, obj.size));
        if let Ok(Step::More(window)) = &next {
            probe = window.clone();
            bytes = io.read_extent(obj, probe.clone()).await?;
            next = bytes.with_contiguous(&mut scratch, |b| step(b, pos, obj.size));
        }
        // A GRIB1 message is a unit like any message: it is read whole too.
        match next {
            Ok(Step::Grib2(m) | Step::Other { range: m, .. }) if m.end >= probe.end => {
                pos = m.end;
                probes.push(probe);
                messages.push(m);
            }
            Ok(Step::End { .. }) => {
                tail = Some(obj.size);
                break;
            }
            Ok(m) => {
                tracing::debug!(key = %obj.key, "GRIB2 walk step {m:?} ends the plan");
                break;
            }
            Err(e) => {
                tracing::debug!(key = %obj.key, "GRIB2 message walk stops at byte {pos}: {e:#}");
                break;
            }
        }
    }
    if messages.is_empty() {
        return Ok(None);
    }
    Ok(Some(hop_units(&probes, &messages, tail)))
}
