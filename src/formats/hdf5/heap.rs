//! Fractal heaps holding a group's links (dense link storage): every direct block is read and
//! the link messages in it, stored one after the other from the block's start, are followed.

use std::sync::Arc;

use super::mem::{Ctx, Cur, Mem, R, Stop};
use super::objects::hard_link;
use super::{Out, Task};

/// A fractal heap's doubling table and block header sizes.
#[derive(Debug)]
pub(super) struct Heap {
    header: u64,
    width: u64,
    start: u64,
    /// Rows of an indirect block that hold direct blocks.
    direct_rows: u64,
    /// Bytes of a block's offset field.
    off_size: usize,
    checksummed: bool,
}

impl Heap {
    /// Block size of row `r` of the doubling table.
    fn row_size(&self, r: u64) -> R<u64> {
        let shift = r.saturating_sub(1);
        if shift >= 48 {
            return Err(Stop::Bad("fractal heap row too large"));
        }
        Ok(self.start << shift)
    }
}

pub(super) fn header(m: &Mem, c: &Ctx, at: u64, out: &mut Out) -> R<()> {
    let len =
        4 + 1 + 2 + 2 + 1 + 4 + c.l + c.o + c.l + c.o + 8 * c.l + 2 + 2 * c.l + 2 + 2 + c.o + 2;
    let b = m.get(at, len as u64)?;
    let mut cur = Cur::new(b);
    cur.sig(b"FRHP", "bad fractal heap header")?;
    cur.skip(3)?;
    let filters = cur.uint(2)?;
    let flags = cur.u8()?;
    cur.skip(4 + c.l + c.o + c.l + c.o + 3 * c.l)?;
    let objects = cur.len(c)?;
    cur.skip(4 * c.l)?;
    let width = cur.uint(2)?;
    let start = cur.len(c)?;
    let max_direct = cur.len(c)?;
    let max_heap_bits = cur.uint(2)?;
    cur.skip(2)?;
    let root = cur.addr(c)?;
    let root_rows = cur.uint(2)?;
    if filters != 0 {
        return Err(Stop::Bad("a filtered fractal heap"));
    }
    if width == 0
        || !start.is_power_of_two()
        || !max_direct.is_power_of_two()
        || max_direct < start
        || !(1..=64).contains(&max_heap_bits)
    {
        return Err(Stop::Bad("bad fractal heap header"));
    }
    let heap = Arc::new(Heap {
        header: at,
        width,
        start,
        direct_rows: (max_direct.trailing_zeros() - start.trailing_zeros()) as u64 + 2,
        off_size: max_heap_bits.div_ceil(8) as usize,
        checksummed: flags & 0x02 != 0,
    });
    out.heap_objects.push((at, objects as i64));
    if let Some(root) = root {
        out.tasks.push(if root_rows == 0 {
            Task::HeapDirect {
                at: root,
                size: start,
                heap,
            }
        } else {
            Task::HeapIndirect {
                at: root,
                rows: root_rows,
                heap,
            }
        });
    }
    Ok(())
}

/// A direct block: the links in it, from the start until free space.
pub(super) fn direct(m: &Mem, c: &Ctx, at: u64, size: u64, h: &Heap, out: &mut Out) -> R<()> {
    let b = m.get(at, size)?;
    let mut cur = Cur::new(b);
    cur.sig(b"FHDB", "bad fractal heap direct block")?;
    cur.skip(1 + c.o + h.off_size + if h.checksummed { 4 } else { 0 })?;
    let mut found = 0;
    while cur.remaining() > 0 && b[cur.p] == 1 {
        let mut link = Cur::at(b, cur.p);
        let Ok(target) = hard_link(c, &mut link) else {
            break;
        };
        cur.p = link.p;
        found += 1;
        if let Some(obj) = target {
            out.tasks.push(Task::Object(obj));
        }
    }
    out.heap_objects.push((h.header, -found));
    Ok(())
}

/// An indirect block: its direct blocks, then its indirect blocks, row by row.
pub(super) fn indirect(
    m: &Mem,
    c: &Ctx,
    at: u64,
    rows: u64,
    h: &Arc<Heap>,
    out: &mut Out,
) -> R<()> {
    if rows > 64 {
        return Err(Stop::Bad("fractal heap indirect block too large"));
    }
    let prefix = 5 + c.o + h.off_size;
    let len = prefix as u64 + rows * h.width * c.o as u64;
    let b = m.get(at, len)?;
    let mut cur = Cur::new(b);
    cur.sig(b"FHIB", "bad fractal heap indirect block")?;
    cur.skip(prefix - 4)?;
    for r in 0..rows {
        let size = h.row_size(r)?;
        for _ in 0..h.width {
            let Some(child) = cur.addr(c)? else { continue };
            out.tasks.push(if r < h.direct_rows {
                Task::HeapDirect {
                    at: child,
                    size,
                    heap: h.clone(),
                }
            } else {
                // A child indirect block spans one row's block size of direct blocks.
                let span = size / h.start.saturating_mul(h.width);
                Task::HeapIndirect {
                    at: child,
                    rows: (63 - span.max(1).leading_zeros() as u64) + 1,
                    heap: h.clone(),
                }
            });
        }
    }
    Ok(())
}
