//! The superblock, object headers and their messages, and groups (old and new style).

use super::mem::{Ctx, Cur, Mem, R, Stop};
use super::{ChunkKind, Out, SIGNATURE, Task, contiguous};

const MSG_DATASPACE: u16 = 0x01;
const MSG_LINK_INFO: u16 = 0x02;
const MSG_LINK: u16 = 0x06;
const MSG_LAYOUT: u16 = 0x08;
const MSG_CONTINUATION: u16 = 0x10;
const MSG_SYMBOL_TABLE: u16 = 0x11;
/// A message stored elsewhere (shared): its body is a reference, not the message.
const FLAG_SHARED: u8 = 0x02;
/// Userblocks are powers of two from 512 bytes: the signature is looked for up to here.
const MAX_SIGNATURE_AT: u64 = 1 << 20;

/// Finds and reads the superblock; queues the root group's object header.
pub(super) fn superblock(m: &Mem, size: u64, out: &mut Out) -> R<Ctx> {
    let mut at = 0;
    let sb = loop {
        if at >= size.min(MAX_SIGNATURE_AT) {
            return Err(Stop::Bad("no HDF5 signature"));
        }
        if m.get(at, 8)? == SIGNATURE {
            break at;
        }
        at = if at == 0 { 512 } else { at * 2 };
    };
    let head = m.get(sb, 16.min(size - sb))?;
    let version = *head.get(8).ok_or(Stop::Bad("truncated superblock"))?;
    let (o, l) = match version {
        0 | 1 => (head.get(13), head.get(14)),
        2 | 3 => (head.get(9), head.get(10)),
        _ => return Err(Stop::Bad("unknown superblock version")),
    };
    let (o, l) = (
        *o.ok_or(Stop::Bad("truncated superblock"))? as usize,
        *l.ok_or(Stop::Bad("truncated superblock"))? as usize,
    );
    if ![2, 4, 8].contains(&o) || ![2, 4, 8].contains(&l) {
        return Err(Stop::Bad("unusual address or length size"));
    }
    let (fixed, addrs) = match version {
        0 => (24, 4),
        1 => (28, 4),
        _ => (12, 4),
    };
    // v0/v1: base, free space, end of file, driver info, then the root's symbol table entry
    // (link name offset, object header address). v2/v3: base, extension, end, root header.
    let len = fixed + addrs * o + if version < 2 { 2 * o } else { 0 };
    let b = m.get(sb, (len as u64).min(size - sb))?;
    let mut cur = Cur::at(b, fixed);
    let base = cur.uint(o)?;
    let c = Ctx { o, l, base, size };
    cur.skip(2 * o)?;
    if version < 2 {
        cur.skip(2 * o)?;
    }
    let root = cur.addr(&c)?.ok_or(Stop::Bad("no root group"))?;
    out.tasks.push(Task::Object(root));
    Ok(c)
}

/// One message of an object header: its type, flags and body.
struct Msg<'a> {
    kind: u16,
    flags: u8,
    body: &'a [u8],
}

/// The messages in `b`, laid out as in a v1 header (8-byte message headers) or a v2 one.
fn messages(b: &[u8], v2: Option<bool>) -> R<Vec<Msg<'_>>> {
    let mut cur = Cur::new(b);
    let mut out = Vec::new();
    let head = match v2 {
        None => 8,
        Some(order) => 4 + if order { 2 } else { 0 },
    };
    while cur.remaining() >= head {
        let (kind, size, flags) = match v2 {
            None => {
                let kind = cur.uint(2)? as u16;
                let size = cur.uint(2)? as usize;
                let flags = cur.u8()?;
                cur.skip(3)?;
                (kind, size, flags)
            }
            Some(order) => {
                let kind = cur.u8()? as u16;
                let size = cur.uint(2)? as usize;
                let flags = cur.u8()?;
                if order {
                    cur.skip(2)?;
                }
                (kind, size, flags)
            }
        };
        let body = cur.take(size)?;
        out.push(Msg { kind, flags, body });
    }
    Ok(out)
}

/// An object header, v1 or v2: its messages in the first block are handled here, the
/// continuation blocks are queued.
pub(super) fn object_header(m: &Mem, c: &Ctx, at: u64, out: &mut Out) -> R<()> {
    let prefix = m.get(at, 16.min(c.size - at))?;
    if prefix.starts_with(b"OHDR") {
        let mut cur = Cur::new(prefix);
        cur.skip(4)?;
        if cur.u8()? != 2 {
            return Err(Stop::Bad("unknown object header version"));
        }
        let flags = cur.u8()?;
        let extra = if flags & 0x20 != 0 { 16 } else { 0 } + if flags & 0x10 != 0 { 4 } else { 0 };
        let width = 1usize << (flags & 3);
        let size_at = 6 + extra;
        let b = m.get(at, (size_at + width) as u64)?;
        let size = Cur::at(b, size_at).uint(width)?;
        let start = at + (size_at + width) as u64;
        let body = m.get(start, size)?;
        return handle(
            c,
            &messages(body, Some(flags & 0x04 != 0))?,
            Some(flags & 0x04 != 0),
            out,
        );
    }
    let mut cur = Cur::new(prefix);
    if cur.u8()? != 1 {
        return Err(Stop::Bad("unknown object header version"));
    }
    cur.skip(7)?;
    let size = cur.uint(4)?;
    let body = m.get(at + 16, size)?;
    handle(c, &messages(body, None)?, None, out)
}

/// A continuation block of an object header.
pub(super) fn continuation(
    m: &Mem,
    c: &Ctx,
    at: u64,
    len: u64,
    v2: Option<bool>,
    out: &mut Out,
) -> R<()> {
    let b = m.get(at, len)?;
    let body = match v2 {
        None => b,
        Some(_) => {
            if !b.starts_with(b"OCHK") || b.len() < 8 {
                return Err(Stop::Bad("bad object header continuation block"));
            }
            &b[4..b.len() - 4]
        }
    };
    handle(c, &messages(body, v2)?, v2, out)
}

/// What one block of messages says: continuations, group members, a dataset's storage.
fn handle(c: &Ctx, msgs: &[Msg], v2: Option<bool>, out: &mut Out) -> R<()> {
    let mut dims: Option<Vec<u64>> = None;
    for msg in msgs {
        let mut cur = Cur::new(msg.body);
        match msg.kind {
            MSG_CONTINUATION => {
                let at = cur.addr(c)?.ok_or(Stop::Bad("undefined continuation"))?;
                let len = cur.len(c)?;
                out.tasks.push(Task::Messages { at, len, v2 });
            }
            MSG_SYMBOL_TABLE => {
                if let Some(at) = cur.addr(c)? {
                    out.tasks.push(Task::GroupNode { at, level: None });
                }
            }
            MSG_LINK => {
                if let Some(at) = hard_link(c, &mut cur)? {
                    out.tasks.push(Task::Object(at));
                }
            }
            MSG_LINK_INFO => {
                cur.skip(1)?;
                let flags = cur.u8()?;
                if flags & 1 != 0 {
                    cur.skip(8)?;
                }
                if let Some(at) = cur.addr(c)? {
                    out.tasks.push(Task::HeapHeader(at));
                }
                // The name and creation order indexes, which the library reads to list links.
                let indexes = if flags & 2 != 0 { 2 } else { 1 };
                for _ in 0..indexes {
                    if let Some(at) = cur.addr(c)? {
                        out.tasks.push(Task::Bt2Header { at, chunk: None });
                    }
                }
            }
            MSG_DATASPACE if msg.flags & FLAG_SHARED == 0 => dims = Some(dataspace(c, &mut cur)?),
            MSG_LAYOUT => {
                if msg.flags & FLAG_SHARED != 0 {
                    return Err(Stop::Bad("a shared layout message"));
                }
                layout(c, &mut cur, dims.as_deref(), out)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The target of a link message if it is a hard link.
pub(super) fn hard_link(c: &Ctx, cur: &mut Cur) -> R<Option<u64>> {
    if cur.u8()? != 1 {
        return Err(Stop::Bad("unknown link message version"));
    }
    let flags = cur.u8()?;
    let kind = if flags & 0x08 != 0 { cur.u8()? } else { 0 };
    if flags & 0x04 != 0 {
        cur.skip(8)?;
    }
    if flags & 0x10 != 0 {
        cur.skip(1)?;
    }
    let name_len = cur.uint(1 << (flags & 3))? as usize;
    cur.skip(name_len)?;
    match kind {
        0 => cur.addr(c),
        // Soft and external links: a length-prefixed value.
        1 | 64 => {
            let n = cur.uint(2)? as usize;
            cur.skip(n)?;
            Ok(None)
        }
        _ => Err(Stop::Bad("unknown link type")),
    }
}

/// The current dimensions of a dataspace message.
fn dataspace(c: &Ctx, cur: &mut Cur) -> R<Vec<u64>> {
    let version = cur.u8()?;
    let rank = cur.u8()? as usize;
    cur.skip(1)?;
    match version {
        1 => cur.skip(5)?,
        2 => cur.skip(1)?,
        _ => return Err(Stop::Bad("unknown dataspace version")),
    }
    (0..rank).map(|_| cur.len(c)).collect()
}

/// A data layout message: contiguous storage becomes units, a chunk index is queued.
fn layout(c: &Ctx, cur: &mut Cur, space: Option<&[u64]>, out: &mut Out) -> R<()> {
    let version = cur.u8()?;
    // v5 (HDF5 2.0, filtered chunks) is laid out as v4; the index entries carry their own
    // widths, which the indexes read from their headers.
    if !(3..=5).contains(&version) {
        return Err(Stop::Bad("data layout message v1/v2"));
    }
    match cur.u8()? {
        0 => Ok(()),
        1 => {
            let at = cur.addr(c)?;
            let len = cur.len(c)?;
            match at {
                Some(at) => contiguous(c, at, len, out),
                None => Ok(()),
            }
        }
        2 if version == 3 => {
            let ndims = cur.u8()? as usize;
            let at = cur.addr(c)?;
            if ndims < 1 {
                return Err(Stop::Bad("chunks of no dimension"));
            }
            if let Some(at) = at {
                out.tasks.push(Task::ChunkNode {
                    at,
                    level: None,
                    ndims,
                });
            }
            Ok(())
        }
        2 => chunked_v4(c, cur, space, out),
        _ => Err(Stop::Bad("virtual or unknown layout class")),
    }
}

/// A v4 chunked layout: the chunk shape, then the index type and its parameters.
fn chunked_v4(c: &Ctx, cur: &mut Cur, space: Option<&[u64]>, out: &mut Out) -> R<()> {
    let flags = cur.u8()?;
    let ndims = cur.u8()? as usize;
    let width = cur.u8()? as usize;
    if ndims < 1 || !(1..=8).contains(&width) {
        return Err(Stop::Bad("bad chunk shape"));
    }
    let dims: Vec<u64> = (0..ndims).map(|_| cur.uint(width)).collect::<R<_>>()?;
    let bytes = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or(Stop::Bad("chunk size overflow"))?;
    let chunk = ChunkKind {
        bytes,
        rank: ndims - 1,
    };
    let kind = cur.u8()?;
    match kind {
        1 => {
            let filtered = if flags & 0x02 != 0 {
                let len = cur.len(c)?;
                cur.skip(4)?;
                Some(len)
            } else {
                None
            };
            if let Some(at) = cur.addr(c)? {
                out.one_piece(c, at, filtered.unwrap_or(bytes))?;
            }
        }
        2 => {
            let at = cur.addr(c)?;
            let space = space.ok_or(Stop::Bad("implicit index before its dataspace"))?;
            if let Some(at) = at {
                let n = super::index::implicit_count(space, &dims)?;
                for i in 0..n {
                    let off = i
                        .checked_mul(bytes)
                        .ok_or(Stop::Bad("chunk size overflow"))?;
                    let at = at.checked_add(off).ok_or(Stop::Bad("chunk past the end"))?;
                    out.chunk(c, at, bytes)?;
                }
            }
        }
        3 => {
            cur.skip(1)?;
            if let Some(at) = cur.addr(c)? {
                out.tasks.push(Task::FaHeader { at, chunk });
            }
        }
        4 => {
            cur.skip(5)?;
            if let Some(at) = cur.addr(c)? {
                out.tasks.push(Task::EaHeader { at, chunk });
            }
        }
        5 => {
            cur.skip(6)?;
            if let Some(at) = cur.addr(c)? {
                out.tasks.push(Task::Bt2Header {
                    at,
                    chunk: Some(chunk),
                });
            }
        }
        _ => return Err(Stop::Bad("unknown chunk index type")),
    }
    Ok(())
}

/// A node of a group's B-tree v1: its children are nodes or symbol table nodes.
pub(super) fn group_node(m: &Mem, c: &Ctx, at: u64, level: Option<u8>, out: &mut Out) -> R<()> {
    let (node_level, children) = btree_v1(m, c, at, 0, c.l, level)?;
    for (_, child) in children {
        out.tasks.push(if node_level == 0 {
            Task::SymbolNode(child)
        } else {
            Task::GroupNode {
                at: child,
                level: Some(node_level - 1),
            }
        });
    }
    Ok(())
}

/// A B-tree v1 entry: its (left) key and the child's address.
type Entry<'a> = (&'a [u8], u64);

/// A B-tree v1 node of `kind` with keys of `key` bytes: its level and (key, child) pairs.
pub(super) fn btree_v1<'a>(
    m: &'a Mem,
    c: &Ctx,
    at: u64,
    kind: u8,
    key: usize,
    level: Option<u8>,
) -> R<(u8, Vec<Entry<'a>>)> {
    let prefix = 8 + 2 * c.o;
    let head = m.get(at, prefix as u64)?;
    let mut cur = Cur::new(head);
    cur.sig(b"TREE", "bad B-tree v1 node")?;
    if cur.u8()? != kind {
        return Err(Stop::Bad("B-tree v1 node of the wrong type"));
    }
    let node_level = cur.u8()?;
    if level.is_some_and(|l| l != node_level) {
        return Err(Stop::Bad("B-tree v1 node at the wrong level"));
    }
    let n = cur.uint(2)? as usize;
    let len = prefix + n * (key + c.o) + key;
    let b = m.get(at, len as u64)?;
    let mut cur = Cur::at(b, prefix);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = cur.take(key)?;
        if let Some(child) = cur.addr(c)? {
            out.push((k, child));
        }
    }
    Ok((node_level, out))
}

/// A symbol table node: each entry's object header.
pub(super) fn symbol_node(m: &Mem, c: &Ctx, at: u64, out: &mut Out) -> R<()> {
    let head = m.get(at, 8)?;
    let mut cur = Cur::new(head);
    cur.sig(b"SNOD", "bad symbol table node")?;
    cur.skip(2)?;
    let n = cur.uint(2)? as usize;
    let entry = 2 * c.o + 24;
    let b = m.get(at + 8, (n * entry) as u64)?;
    for i in 0..n {
        let mut cur = Cur::at(b, i * entry + c.o);
        if let Some(obj) = cur.addr(c)? {
            out.tasks.push(Task::Object(obj));
        }
    }
    Ok(())
}
