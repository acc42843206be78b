//! Chunk indexes: B-tree v1 (layout v3), and the layout v4 indexes (fixed array, extensible
//! array, B-tree v2). Each yields every allocated chunk's address and stored size.

use std::sync::Arc;

use super::mem::{Ctx, Cur, Mem, R, Stop, enc_size};
use super::objects::btree_v1;
use super::{ChunkKind, Out, Task};

/// Chunks a single index may list (a bound on corrupt counts).
const MAX_INDEX_CHUNKS: u64 = 1 << 22;

/// A node of a chunk B-tree v1: leaves list chunks (stored size in the key), inner nodes
/// list nodes one level down.
pub(super) fn chunk_node(
    m: &Mem,
    c: &Ctx,
    at: u64,
    level: Option<u8>,
    ndims: usize,
    out: &mut Out,
) -> R<()> {
    let key = 8 + 8 * ndims;
    let (node_level, children) = btree_v1(m, c, at, 1, key, level)?;
    for (k, child) in children {
        if node_level == 0 {
            let size = Cur::new(k).uint(4)?;
            out.chunk(c, child, size)?;
        } else {
            out.tasks.push(Task::ChunkNode {
                at: child,
                level: Some(node_level - 1),
                ndims,
            });
        }
    }
    Ok(())
}

/// Chunks of an implicit index: the chunk grid over the dataspace.
pub(super) fn implicit_count(space: &[u64], chunk: &[u64]) -> R<u64> {
    if space.len() + 1 != chunk.len() {
        return Err(Stop::Bad("chunk rank does not match the dataspace"));
    }
    let mut n = 1u64;
    for (s, c) in space.iter().zip(chunk) {
        if *c == 0 {
            return Err(Stop::Bad("a chunk dimension of 0"));
        }
        n = n
            .checked_mul(s.div_ceil(*c))
            .filter(|&n| n <= MAX_INDEX_CHUNKS)
            .ok_or(Stop::Bad("too many chunks"))?;
    }
    Ok(n)
}

/// One chunk entry of a fixed or extensible array: its address, and its size when filtered.
fn element(c: &Ctx, b: &[u8], filtered: bool, chunk: ChunkKind, out: &mut Out) -> R<()> {
    let mut cur = Cur::new(b);
    let at = cur.addr(c)?;
    let size = if filtered {
        cur.uint(b.len().saturating_sub(c.o + 4))?
    } else {
        chunk.bytes
    };
    match at {
        Some(at) => out.chunk(c, at, size),
        None => Ok(()),
    }
}

/// Entries `b` of `es` bytes each.
fn elements(
    c: &Ctx,
    b: &[u8],
    es: usize,
    filtered: bool,
    chunk: ChunkKind,
    out: &mut Out,
) -> R<()> {
    for e in b.chunks_exact(es) {
        element(c, e, filtered, chunk, out)?;
    }
    Ok(())
}

/// A B-tree v2 of chunk records: record layout and node capacities per depth.
#[derive(Debug)]
pub(super) struct Bt2 {
    node_size: u64,
    record: usize,
    filtered: bool,
    /// `None` for a tree of other records (a group's link indexes): walked only so its nodes
    /// are fetched with the plan, as the HDF5 library reads them.
    chunk: Option<ChunkKind>,
    /// Bytes of a child's record count in an inner node.
    nrec_width: usize,
    /// Bytes of a child's total record count, per depth of the inner node (index 0 unused).
    total_width: Vec<usize>,
}

pub(super) fn bt2_header(
    m: &Mem,
    c: &Ctx,
    at: u64,
    chunk: Option<ChunkKind>,
    out: &mut Out,
) -> R<()> {
    let len = 16 + c.o + 2 + c.l + 4;
    let b = m.get(at, len as u64)?;
    let mut cur = Cur::new(b);
    cur.sig(b"BTHD", "bad B-tree v2 header")?;
    cur.skip(1)?;
    let filtered = match (cur.u8()?, chunk) {
        (10, _) | (_, None) => false,
        (11, _) => true,
        _ => return Err(Stop::Bad("a chunk index B-tree v2 of other records")),
    };
    let node_size = cur.uint(4)?;
    let record = cur.uint(2)? as usize;
    let depth = cur.uint(2)? as u16;
    cur.skip(2)?;
    let root = cur.addr(c)?;
    let nrec = cur.uint(2)?;
    if record == 0 || depth > 16 || node_size < 10 + record as u64 {
        return Err(Stop::Bad("bad B-tree v2 header"));
    }
    // Capacities as HDF5 derives them: leaves hold (node - 10) / record records; an inner
    // node's child pointers carry the child's count, and below depth 1 its subtree total.
    let leaf_max = (node_size - 10) / record as u64;
    let nrec_width = enc_size(leaf_max);
    let mut cum = vec![leaf_max];
    let mut total_width = vec![0];
    for d in 1..=depth as usize {
        let ptr = (c.o + nrec_width + if d > 1 { total_width[d - 1] } else { 0 }) as u64;
        let max = (node_size.saturating_sub(10 + ptr)) / (record as u64 + ptr);
        let total = (max + 1).saturating_mul(cum[d - 1]).saturating_add(max);
        cum.push(total);
        total_width.push(enc_size(total));
    }
    let tree = Arc::new(Bt2 {
        node_size,
        record,
        filtered,
        chunk,
        nrec_width,
        total_width,
    });
    if let Some(at) = root
        && nrec > 0
    {
        out.tasks.push(Task::Bt2Node {
            at,
            depth,
            nrec,
            tree,
        });
    }
    Ok(())
}

pub(super) fn bt2_node(
    m: &Mem,
    c: &Ctx,
    at: u64,
    depth: u16,
    nrec: u64,
    t: &Arc<Bt2>,
    out: &mut Out,
) -> R<()> {
    let b = m.get(at, t.node_size)?;
    let mut cur = Cur::new(b);
    let sig = if depth == 0 { b"BTLF" } else { b"BTIN" };
    cur.sig(sig, "bad B-tree v2 node")?;
    cur.skip(2)?;
    let records = cur.take(
        (nrec as usize)
            .checked_mul(t.record)
            .ok_or(Stop::Bad("size overflow"))?,
    )?;
    for r in records.chunks_exact(t.record) {
        let Some(chunk) = t.chunk else { break };
        let mut rc = Cur::new(r);
        let addr = rc.addr(c)?;
        let size = if t.filtered {
            let width = t
                .record
                .checked_sub(c.o + 4 + 8 * chunk.rank)
                .filter(|w| (1..=8).contains(w))
                .ok_or(Stop::Bad("bad filtered chunk record"))?;
            rc.uint(width)?
        } else {
            chunk.bytes
        };
        if let Some(addr) = addr {
            out.chunk(c, addr, size)?;
        }
    }
    if depth > 0 {
        let total = t.total_width[depth as usize];
        for _ in 0..=nrec {
            let child = cur.addr(c)?;
            let n = cur.uint(t.nrec_width)?;
            if depth > 1 {
                cur.skip(total)?;
            }
            if let Some(child) = child {
                out.tasks.push(Task::Bt2Node {
                    at: child,
                    depth: depth - 1,
                    nrec: n,
                    tree: t.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A fixed array header's parameters.
#[derive(Debug)]
pub(super) struct Fa {
    es: usize,
    filtered: bool,
    nelmts: u64,
    page_bits: u8,
    chunk: ChunkKind,
}

pub(super) fn fa_header(m: &Mem, c: &Ctx, at: u64, chunk: ChunkKind, out: &mut Out) -> R<()> {
    let b = m.get(at, (8 + c.l + c.o) as u64)?;
    let mut cur = Cur::new(b);
    cur.sig(b"FAHD", "bad fixed array header")?;
    cur.skip(1)?;
    let filtered = cur.u8()? == 1;
    let es = cur.u8()? as usize;
    let page_bits = cur.u8()?;
    let nelmts = cur.len(c)?;
    let block = cur.addr(c)?;
    if es < c.o || nelmts > MAX_INDEX_CHUNKS || page_bits > 32 {
        return Err(Stop::Bad("bad fixed array header"));
    }
    if let Some(at) = block {
        let fa = Arc::new(Fa {
            es,
            filtered,
            nelmts,
            page_bits,
            chunk,
        });
        out.tasks.push(Task::FaBlock { at, fa });
    }
    Ok(())
}

/// A fixed array data block: its elements, or (paged) a bitmap of the pages that follow.
pub(super) fn fa_block(m: &Mem, c: &Ctx, at: u64, fa: &Fa, out: &mut Out) -> R<()> {
    let prefix = 6 + c.o;
    let page = 1u64 << fa.page_bits;
    if fa.nelmts <= page {
        let len = prefix as u64 + fa.nelmts * fa.es as u64;
        let b = m.get(at, len)?;
        Cur::new(b).sig(b"FADB", "bad fixed array data block")?;
        return elements(c, &b[prefix..], fa.es, fa.filtered, fa.chunk, out);
    }
    let pages = fa.nelmts.div_ceil(page);
    let bitmap = pages.div_ceil(8) as usize;
    let b = m.get(at, (prefix + bitmap) as u64)?;
    Cur::new(b).sig(b"FADB", "bad fixed array data block")?;
    let bits = &b[prefix..];
    let mut page_at = at + (prefix + bitmap + 4) as u64;
    for p in 0..pages {
        let n = page.min(fa.nelmts - p * page);
        let len = n * fa.es as u64;
        if bits[(p / 8) as usize] & (0x80 >> (p % 8)) != 0 {
            let b = m.get(page_at, len)?;
            elements(c, b, fa.es, fa.filtered, fa.chunk, out)?;
        }
        page_at += len + 4;
    }
    Ok(())
}

/// An extensible array header's parameters.
#[derive(Debug)]
pub(super) struct Ea {
    es: usize,
    filtered: bool,
    chunk: ChunkKind,
    /// Elements in the index block itself.
    index_elmts: u64,
    /// Per super block: data blocks and elements per data block.
    sblocks: Vec<(u64, u64)>,
    /// Super blocks whose data blocks the index block lists directly.
    index_sblocks: usize,
    /// Data block addresses in the index block.
    index_dblks: u64,
    /// Elements set (higher ones are unallocated).
    max_set: u64,
    /// Bytes of a block's offset field.
    off_size: usize,
    page: u64,
}

pub(super) fn ea_header(m: &Mem, c: &Ctx, at: u64, chunk: ChunkKind, out: &mut Out) -> R<()> {
    let b = m.get(at, (12 + 6 * c.l + c.o) as u64)?;
    let mut cur = Cur::new(b);
    cur.sig(b"EAHD", "bad extensible array header")?;
    cur.skip(1)?;
    let filtered = cur.u8()? == 1;
    let es = cur.u8()? as usize;
    let max_bits = cur.u8()? as u32;
    let index_elmts = cur.u8()? as u64;
    let dblk_min = cur.u8()? as u64;
    let sblk_min_ptrs = cur.u8()? as u64;
    let page_bits = cur.u8()? as u32;
    cur.skip(4 * c.l)?;
    let max_set = cur.len(c)?;
    cur.skip(c.l)?;
    let index = cur.addr(c)?;
    if es < c.o
        || !(1..=64).contains(&max_bits)
        || page_bits > 32
        || !dblk_min.is_power_of_two()
        || !sblk_min_ptrs.is_power_of_two()
        || max_set > MAX_INDEX_CHUNKS
    {
        return Err(Stop::Bad("bad extensible array header"));
    }
    let nsblks = 1 + max_bits.saturating_sub(dblk_min.trailing_zeros()) as usize;
    let sblocks: Vec<(u64, u64)> = (0..nsblks.min(64))
        .map(|u| {
            (
                1u64 << (u / 2),
                (1u64 << u.div_ceil(2)).saturating_mul(dblk_min),
            )
        })
        .collect();
    let index_sblocks = (2 * sblk_min_ptrs.trailing_zeros() as usize).min(sblocks.len());
    let ea = Arc::new(Ea {
        es,
        filtered,
        chunk,
        index_elmts,
        index_dblks: 2 * (sblk_min_ptrs - 1),
        sblocks,
        index_sblocks,
        max_set,
        off_size: (max_bits as usize).div_ceil(8),
        page: 1u64 << page_bits,
    });
    if let Some(at) = index {
        out.tasks.push(Task::EaIndex { at, ea });
    }
    Ok(())
}

/// The index block: its own elements, then data block and super block addresses.
pub(super) fn ea_index(m: &Mem, c: &Ctx, at: u64, ea: &Arc<Ea>, out: &mut Out) -> R<()> {
    let prefix = 6 + c.o;
    let nsblk_addrs = ea.sblocks.len() - ea.index_sblocks;
    let len = prefix as u64
        + ea.index_elmts * ea.es as u64
        + (ea.index_dblks + nsblk_addrs as u64) * c.o as u64;
    let b = m.get(at, len)?;
    let mut cur = Cur::new(b);
    cur.sig(b"EAIB", "bad extensible array index block")?;
    cur.skip(2 + c.o)?;
    let own = cur.take((ea.index_elmts * ea.es as u64) as usize)?;
    let set = ea.max_set.min(ea.index_elmts) as usize;
    elements(c, &own[..set * ea.es], ea.es, ea.filtered, ea.chunk, out)?;
    let mut first = ea.index_elmts;
    let per_dblk = ea.sblocks[..ea.index_sblocks]
        .iter()
        .flat_map(|&(n, e)| std::iter::repeat_n(e, n as usize));
    for nelmts in per_dblk.take(ea.index_dblks as usize) {
        let dblk = cur.addr(c)?;
        if let Some(d) = dblk
            && first < ea.max_set
        {
            out.tasks.push(data_block(d, nelmts, ea)?);
        }
        first = first.saturating_add(nelmts);
    }
    for &(ndblks, nelmts) in &ea.sblocks[ea.index_sblocks..] {
        let sblk = cur.addr(c)?;
        if let Some(s) = sblk
            && first < ea.max_set
        {
            out.tasks.push(Task::EaSuper {
                at: s,
                ndblks,
                nelmts,
                ea: ea.clone(),
            });
        }
        first = first.saturating_add(ndblks.saturating_mul(nelmts));
    }
    Ok(())
}

fn data_block(at: u64, nelmts: u64, ea: &Arc<Ea>) -> R<Task> {
    if nelmts > ea.page {
        return Err(Stop::Bad("paged extensible array data blocks"));
    }
    Ok(Task::EaData {
        at,
        nelmts,
        ea: ea.clone(),
    })
}

/// A super block: the addresses of its data blocks.
pub(super) fn ea_super(
    m: &Mem,
    c: &Ctx,
    at: u64,
    ndblks: u64,
    nelmts: u64,
    ea: &Arc<Ea>,
    out: &mut Out,
) -> R<()> {
    if nelmts > ea.page {
        return Err(Stop::Bad("paged extensible array data blocks"));
    }
    let prefix = 6 + c.o + ea.off_size;
    let b = m.get(at, prefix as u64 + ndblks * c.o as u64)?;
    let mut cur = Cur::new(b);
    cur.sig(b"EASB", "bad extensible array super block")?;
    cur.skip(prefix - 4)?;
    for _ in 0..ndblks {
        if let Some(d) = cur.addr(c)? {
            out.tasks.push(data_block(d, nelmts, ea)?);
        }
    }
    Ok(())
}

/// A data block: its elements.
pub(super) fn ea_data(
    m: &Mem,
    c: &Ctx,
    at: u64,
    nelmts: u64,
    ea: &Arc<Ea>,
    out: &mut Out,
) -> R<()> {
    let prefix = 6 + c.o + ea.off_size;
    let b = m.get(at, prefix as u64 + nelmts * ea.es as u64)?;
    Cur::new(b).sig(b"EADB", "bad extensible array data block")?;
    elements(c, &b[prefix..], ea.es, ea.filtered, ea.chunk, out)
}
