//! Layout of an HDF5 file (so of NetCDF-4): where every chunk of every dataset lies, from the
//! superblock, the object headers, the groups and each dataset's chunk index. Layout only.
//!
//! The parser is sans-I/O: a [`Walker`] is fed the bytes it asked for ([`Step::Need`]) and
//! walks as far as they allow. All structures that can be read at one point are asked for
//! together (every child header of a group, every child of a B-tree level), so planning costs
//! one round trip per level of the file's tree, not one per structure.
//!
//! Written here rather than taken from a crate: the pure-Rust HDF5 readers (hdf5-reader,
//! rust-hdf5, hdf5-pure-rust) pull their bytes through a blocking `read_range` or
//! `Read + Seek`, one structure at a time, so they can neither batch independent reads nor run
//! on the async cache without blocking a runtime thread; and they decode data, while a plan
//! needs only the few layout structures below.
//!
//! Read: superblock v0-v3; object headers v1 and v2 with continuation blocks; old-style groups
//! (symbol table, group B-tree v1, symbol nodes) and new-style compact groups (link messages);
//! data layout v3, v4 and v5 (HDF5 2.0, laid out as v4): contiguous, compact, and chunked with
//! a B-tree v1 index, or (v4/v5) a single chunk, implicit, fixed array (paged too), extensible
//! array or B-tree v2 index. A group's link-name and creation-order B-trees v2 are fetched with
//! the plan (the library reads them) but not interpreted.
//! Dense link storage (groups of more than 8 links written with creation order or
//! `libver="latest"`) is read from the fractal heap's blocks, whose links lie one after the
//! other; the heap's object count must match what is found.
//! Not read (the file gets no plan): filtered fractal heaps, layout v1/v2, virtual datasets,
//! paged extensible-array data blocks. Checksums are not verified: a plan only decides how
//! bytes are fetched, never which bytes are served.

pub mod describe;
mod heap;
mod index;
mod mem;
mod objects;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use mem::{Ctx, Mem, R, Stop};

use crate::error::{Format, FormatError};

/// The HDF5 signature, at offset 0, 512, 1024, 2048, ... of a file.
pub const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
/// Whether a (lowercase) file name is one HDF5 files are given (NetCDF-4 included).
pub fn is_hdf5_name(name: &str) -> bool {
    [".nc", ".nc4", ".h5", ".hdf5", ".he5", ".hdf"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// First read of an HDF5 file: libnetcdf and h5py put the superblock, the object headers and
/// the first chunk index nodes at the start, so one read usually finds most of them. Every
/// walk of a file starts with it, so the walks of its plan and of its views share that read.
pub const FIRST_READ: u64 = 64 << 10;
/// Structures of unknown size are first asked for with at least this many bytes.
const MIN_READ: u64 = 4 << 10;
/// Bounds on planning: rounds of reads, bytes of metadata, structures parsed, chunks.
const MAX_ROUNDS: usize = 24;
const MAX_META_BYTES: u64 = 16 << 20;
const MAX_TASKS: usize = 1 << 20;
const MAX_CHUNKS: usize = 4 << 20;
/// Contiguous storage is cut into units of at most this size, so a small read of a large
/// contiguous variable does not fetch all of it.
const CONTIGUOUS_PIECE: u64 = 4 << 20;
/// A dataset stored in one piece of at most this many bytes (contiguous, or a single chunk) is
/// small: NetCDF readers read such variables (coordinates, bounds, scalars) whole at open.
pub const SMALL_DATASET: u64 = 64 << 10;
/// At most this many bytes of small datasets per file are offered by [`Walker::take_small`].
pub const SMALL_TOTAL: u64 = 1 << 20;

/// What the walker wants next.
#[derive(Debug)]
pub enum Step {
    /// Fetch these ranges (sorted, disjoint, none fetched before) and [`Walker::feed`] them.
    Need(Vec<Range<u64>>),
    /// Every dataset's storage is known: see [`Walker::units`].
    Done,
    /// Not a readable HDF5 file, a feature not read here, or over the planning bounds: the
    /// structure (and its address, when one is at fault) and why.
    Unsupported(FormatError),
}

/// One structure to parse.
#[derive(Clone, Debug)]
enum Task {
    Superblock,
    Object(u64),
    /// A continuation block of an object header (`Some(creation order flag)` for v2 headers).
    Messages {
        at: u64,
        len: u64,
        v2: Option<bool>,
    },
    GroupNode {
        at: u64,
        level: Option<u8>,
    },
    /// A fractal heap of a group's links (dense link storage).
    HeapHeader(u64),
    HeapDirect {
        at: u64,
        size: u64,
        heap: Arc<heap::Heap>,
    },
    HeapIndirect {
        at: u64,
        rows: u64,
        heap: Arc<heap::Heap>,
    },
    SymbolNode(u64),
    ChunkNode {
        at: u64,
        level: Option<u8>,
        ndims: usize,
    },
    Bt2Header {
        at: u64,
        chunk: Option<ChunkKind>,
    },
    Bt2Node {
        at: u64,
        depth: u16,
        nrec: u64,
        tree: Arc<index::Bt2>,
    },
    FaHeader {
        at: u64,
        chunk: ChunkKind,
    },
    FaBlock {
        at: u64,
        fa: Arc<index::Fa>,
    },
    EaHeader {
        at: u64,
        chunk: ChunkKind,
    },
    EaIndex {
        at: u64,
        ea: Arc<index::Ea>,
    },
    EaSuper {
        at: u64,
        ndblks: u64,
        nelmts: u64,
        ea: Arc<index::Ea>,
    },
    EaData {
        at: u64,
        nelmts: u64,
        ea: Arc<index::Ea>,
    },
}

impl Task {
    /// The structure's name and file address.
    fn what(&self) -> (&'static str, Option<u64>) {
        match self {
            Task::Superblock => ("superblock", None),
            Task::Object(at) => ("object header", Some(*at)),
            Task::Messages { at, .. } => ("object header continuation", Some(*at)),
            Task::GroupNode { at, .. } => ("group B-tree node", Some(*at)),
            Task::HeapHeader(at) => ("fractal heap header", Some(*at)),
            Task::HeapDirect { at, .. } => ("fractal heap direct block", Some(*at)),
            Task::HeapIndirect { at, .. } => ("fractal heap indirect block", Some(*at)),
            Task::SymbolNode(at) => ("symbol table node", Some(*at)),
            Task::ChunkNode { at, .. } => ("chunk B-tree node", Some(*at)),
            Task::Bt2Header { at, .. } => ("B-tree v2 header", Some(*at)),
            Task::Bt2Node { at, .. } => ("B-tree v2 node", Some(*at)),
            Task::FaHeader { at, .. } => ("fixed array header", Some(*at)),
            Task::FaBlock { at, .. } => ("fixed array data block", Some(*at)),
            Task::EaHeader { at, .. } => ("extensible array header", Some(*at)),
            Task::EaIndex { at, .. } => ("extensible array index block", Some(*at)),
            Task::EaSuper { at, .. } => ("extensible array super block", Some(*at)),
            Task::EaData { at, .. } => ("extensible array data block", Some(*at)),
        }
    }

    /// This structure cannot be read: `why`.
    fn refused(&self, why: &'static str) -> FormatError {
        let (what, at) = self.what();
        let e = FormatError::invalid(Format::Hdf5, what, why);
        match at {
            Some(at) => e.at(at),
            None => e,
        }
    }
}

/// The file as a whole cannot be planned: `why` (a bound, links not all found).
fn refused(why: &'static str) -> Step {
    Step::Unsupported(FormatError::invalid(Format::Hdf5, "file", why))
}

/// What the chunks of one dataset look like: their unfiltered size and the dataspace rank.
#[derive(Clone, Copy, Debug)]
struct ChunkKind {
    bytes: u64,
    rank: usize,
}

/// What a parsed structure yields: more structures to parse, and storage ranges.
#[derive(Default)]
struct Out {
    tasks: Vec<Task>,
    storage: Vec<Range<u64>>,
    /// The storage of small datasets ([`SMALL_DATASET`]), also in `storage`.
    small: Vec<Range<u64>>,
    /// Per fractal heap (by header address): objects it says it holds, objects found.
    heap_objects: Vec<(u64, i64)>,
}

impl Out {
    fn chunk(&mut self, c: &Ctx, at: u64, len: u64) -> R<()> {
        let end = at
            .checked_add(len)
            .ok_or(Stop::Bad("chunk size overflow"))?;
        if end > c.size {
            return Err(Stop::Bad("a chunk past the end of the file"));
        }
        if len > 0 {
            self.storage.push(at..end);
        }
        Ok(())
    }

    /// The whole storage of a dataset held in one piece (contiguous, or a single chunk).
    fn one_piece(&mut self, c: &Ctx, at: u64, len: u64) -> R<()> {
        self.chunk(c, at, len)?;
        if len > 0 && len <= SMALL_DATASET {
            self.small.push(at..at + len);
        }
        Ok(())
    }
}

/// The planning walk of one file of `size` bytes.
pub struct Walker {
    size: u64,
    ctx: Option<Ctx>,
    mem: Mem,
    fetched: Vec<Range<u64>>,
    fetched_bytes: u64,
    rounds: usize,
    tasks_run: usize,
    pending: Vec<Task>,
    seen: HashSet<u64>,
    storage: Vec<Range<u64>>,
    /// Small datasets' storage found and not yet taken ([`Walker::take_small`]), and the
    /// bytes offered so far.
    small: Vec<Range<u64>>,
    small_bytes: u64,
    /// Per fractal heap: objects declared minus objects found (0 once all links are read).
    heap_balance: HashMap<u64, i64>,
}

impl Walker {
    pub fn new(size: u64) -> Walker {
        Walker {
            size,
            ctx: None,
            mem: Mem::default(),
            fetched: Vec::new(),
            fetched_bytes: 0,
            rounds: 0,
            tasks_run: 0,
            pending: vec![Task::Superblock],
            seen: HashSet::new(),
            storage: Vec::new(),
            small: Vec::new(),
            small_bytes: 0,
            heap_balance: HashMap::new(),
        }
    }

    /// Bytes `at..at + data.len()` of the file.
    pub fn feed(&mut self, at: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.mem.insert(at, data);
        self.fetched.push(at..at + data.len() as u64);
        self.fetched_bytes += data.len() as u64;
    }

    /// Parses all it can from the bytes fed so far.
    pub fn step(&mut self) -> Step {
        let mut queue = std::mem::take(&mut self.pending);
        let mut misses = Vec::new();
        while let Some(task) = queue.pop() {
            self.tasks_run += 1;
            if self.tasks_run > MAX_TASKS {
                return refused("too many structures");
            }
            let mut out = Out::default();
            match self.run(&task, &mut out) {
                Ok(()) => {
                    queue.append(&mut out.tasks);
                    self.storage.append(&mut out.storage);
                    self.small.append(&mut out.small);
                    for (h, n) in out.heap_objects {
                        *self.heap_balance.entry(h).or_default() += n;
                    }
                    if self.storage.len() > MAX_CHUNKS {
                        return refused("too many chunks");
                    }
                }
                Err(Stop::Miss(r)) => {
                    misses.push(r);
                    self.pending.push(task);
                }
                Err(Stop::Bad(why)) => return Step::Unsupported(task.refused(why)),
            }
        }
        if self.pending.is_empty() {
            // Links are read from heap blocks in sequence: all must be found, or some
            // dataset may be missed.
            if self.heap_balance.values().any(|&n| n != 0) {
                return refused("dense links not all found in their heap");
            }
            return Step::Done;
        }
        self.rounds += 1;
        let need = self.needs(misses);
        let more: u64 = need.iter().map(|r| r.end - r.start).sum();
        if self.rounds > MAX_ROUNDS || self.fetched_bytes + more > MAX_META_BYTES {
            return refused("over the planning bounds");
        }
        if need.is_empty() {
            return refused("a structure past the end of the file");
        }
        Step::Need(need)
    }

    /// The storage of the small datasets found since the last call and not yet fed, up to
    /// [`SMALL_TOTAL`] bytes per file, sorted; each range is a dataset's whole storage (so a
    /// read of it holds its units whole). A planner fetches them with its next round: readers
    /// read them at open, each a round trip of its own otherwise.
    pub fn take_small(&mut self) -> Vec<Range<u64>> {
        let mut small = std::mem::take(&mut self.small);
        small.sort_by_key(|r| r.start);
        small.dedup();
        let mut out = Vec::new();
        for r in small {
            let len = r.end - r.start;
            if self.mem.missing(r.clone()).is_empty() || self.small_bytes + len > SMALL_TOTAL {
                continue;
            }
            self.small_bytes += len;
            out.push(r);
        }
        out
    }

    /// The missing ranges, each at least `MIN_READ` long (within the file), merged.
    fn needs(&self, misses: Vec<Range<u64>>) -> Vec<Range<u64>> {
        let mut want: Vec<Range<u64>> = misses
            .into_iter()
            .map(|r| r.start..r.end.max(r.start.saturating_add(MIN_READ)).min(self.size))
            .filter(|r| r.start < r.end)
            .collect();
        want.sort_by_key(|r| r.start);
        super::merge_near(want, 0)
            .into_iter()
            .flat_map(|r| self.mem.missing(r))
            .collect()
    }

    fn run(&mut self, task: &Task, out: &mut Out) -> R<()> {
        let Some(c) = self.ctx else {
            let c = objects::superblock(&self.mem, self.size, out)?;
            self.ctx = Some(c);
            return Ok(());
        };
        // Each structure is parsed once, however many others name it (continuation blocks
        // included: one that names itself, or is named twice, would otherwise multiply).
        let key = match task {
            Task::Object(a) | Task::GroupNode { at: a, .. } | Task::SymbolNode(a) => Some(*a),
            Task::Messages { at, .. } => Some(*at),
            Task::ChunkNode { at, .. } | Task::Bt2Node { at, .. } => Some(*at),
            Task::HeapHeader(at) | Task::HeapDirect { at, .. } | Task::HeapIndirect { at, .. } => {
                Some(*at)
            }
            _ => None,
        };
        if key.is_some_and(|k| self.seen.contains(&k)) {
            return Ok(());
        }
        let m = &self.mem;
        match task {
            Task::Superblock => {}
            Task::Object(at) => objects::object_header(m, &c, *at, out)?,
            Task::Messages { at, len, v2 } => objects::continuation(m, &c, *at, *len, *v2, out)?,
            Task::GroupNode { at, level } => objects::group_node(m, &c, *at, *level, out)?,
            Task::SymbolNode(at) => objects::symbol_node(m, &c, *at, out)?,
            Task::HeapHeader(at) => heap::header(m, &c, *at, out)?,
            Task::HeapDirect { at, size, heap } => heap::direct(m, &c, *at, *size, heap, out)?,
            Task::HeapIndirect { at, rows, heap } => heap::indirect(m, &c, *at, *rows, heap, out)?,
            Task::ChunkNode { at, level, ndims } => {
                index::chunk_node(m, &c, *at, *level, *ndims, out)?
            }
            Task::Bt2Header { at, chunk } => index::bt2_header(m, &c, *at, *chunk, out)?,
            Task::Bt2Node {
                at,
                depth,
                nrec,
                tree,
            } => index::bt2_node(m, &c, *at, *depth, *nrec, tree, out)?,
            Task::FaHeader { at, chunk } => index::fa_header(m, &c, *at, *chunk, out)?,
            Task::FaBlock { at, fa } => index::fa_block(m, &c, *at, fa, out)?,
            Task::EaHeader { at, chunk } => index::ea_header(m, &c, *at, *chunk, out)?,
            Task::EaIndex { at, ea } => index::ea_index(m, &c, *at, ea, out)?,
            Task::EaSuper {
                at,
                ndblks,
                nelmts,
                ea,
            } => index::ea_super(m, &c, *at, *ndblks, *nelmts, ea, out)?,
            Task::EaData { at, nelmts, ea } => index::ea_data(m, &c, *at, *nelmts, ea, out)?,
        }
        if let Some(k) = key {
            self.seen.insert(k);
        }
        Ok(())
    }

    /// The storage ranges found (chunks, and pieces of contiguous storage), sorted.
    pub fn storage(&self) -> Vec<Range<u64>> {
        let mut s = self.storage.clone();
        s.sort_by_key(|r| (r.start, r.end));
        s.dedup();
        s
    }

    /// The file cut into units once [`Step::Done`]: every chunk is one unit, and so is every
    /// stretch between chunks (at most `CONTIGUOUS_PIECE` long), cut further where a fetched
    /// metadata range starts or ends (unless that lies inside a chunk). `None` if no dataset
    /// has storage.
    pub fn units(&self) -> Option<Vec<Range<u64>>> {
        let storage = self.storage();
        if storage.is_empty() {
            return None;
        }
        let inside = |b: u64| {
            let i = storage.partition_point(|r| r.start < b);
            i > 0 && storage[i - 1].end > b
        };
        let mut cuts: Vec<u64> = storage.iter().flat_map(|r| [r.start, r.end]).collect();
        cuts.extend(
            self.fetched
                .iter()
                .flat_map(|r| [r.start, r.end])
                .filter(|&b| !inside(b)),
        );
        cuts.retain(|&b| b > 0 && b < self.size);
        cuts.push(self.size);
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::with_capacity(cuts.len());
        let mut at = 0;
        for b in cuts {
            let i = storage.partition_point(|r| r.start < at);
            if storage.get(i).is_some_and(|r| r.start == at && r.end == b) {
                out.push(at..b);
            } else {
                // A stretch no chunk fills (metadata, or storage not planned) is fetched in
                // pieces like contiguous storage.
                let mut p = at;
                while p < b {
                    let e = b.min(p + CONTIGUOUS_PIECE);
                    out.push(p..e);
                    p = e;
                }
            }
            at = b;
        }
        Some(out)
    }
}

/// Contiguous storage `at..at + len` as pieces of at most `CONTIGUOUS_PIECE` bytes.
fn contiguous(c: &Ctx, at: u64, len: u64, out: &mut Out) -> R<()> {
    if at.checked_add(len).is_none_or(|end| end > c.size) {
        return Err(Stop::Bad("contiguous storage past the end of the file"));
    }
    if len <= SMALL_DATASET {
        return out.one_piece(c, at, len);
    }
    let mut off = 0;
    while off < len {
        let n = (len - off).min(CONTIGUOUS_PIECE);
        out.chunk(c, at + off, n)?;
        off += n;
    }
    Ok(())
}

/// Drives a walker over an in-memory file, starting with its first `first` bytes: the storage
/// found and the number of rounds of reads it took, or why there is no plan.
#[cfg(test)]
fn walk_bytes(file: &[u8], first: usize) -> Result<(Walker, usize), FormatError> {
    let mut w = Walker::new(file.len() as u64);
    w.feed(0, &file[..first.min(file.len())]);
    let mut rounds = 0;
    loop {
        match w.step() {
            Step::Done => return Ok((w, rounds)),
            Step::Unsupported(why) => return Err(why),
            Step::Need(ranges) => {
                rounds += 1;
                for r in ranges {
                    w.feed(r.start, &file[r.start as usize..r.end as usize]);
                }
            }
        }
    }
}
