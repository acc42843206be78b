//! The bytes of an HDF5 file fetched so far, and bounds-checked little-endian decoding.

use std::collections::BTreeMap;
use std::ops::Range;

/// Why a structure could not be parsed (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    /// These bytes are not fetched yet: retry once they are.
    Miss(Range<u64>),
    /// Malformed or unsupported: no plan for the file.
    Bad(&'static str),
}

pub(super) type R<T> = Result<T, Stop>;

/// Fetched bytes: disjoint pieces keyed by file address, overlapping or adjacent ones merged.
#[derive(Default)]
pub(super) struct Mem {
    pieces: BTreeMap<u64, Vec<u8>>,
}

impl Mem {
    pub(super) fn insert(&mut self, at: u64, data: &[u8]) {
        let mut start = at;
        let mut end = at + data.len() as u64;
        let touching: Vec<u64> = self
            .pieces
            .range(..=end)
            .filter(|(s, p)| **s + p.len() as u64 >= at)
            .map(|(s, _)| *s)
            .collect();
        let old: Vec<(u64, Vec<u8>)> = touching
            .into_iter()
            .filter_map(|s| self.pieces.remove(&s).map(|p| (s, p)))
            .collect();
        for (s, p) in &old {
            start = start.min(*s);
            end = end.max(s + p.len() as u64);
        }
        let mut merged = vec![0u8; (end - start) as usize];
        for (s, p) in &old {
            let o = (s - start) as usize;
            merged[o..o + p.len()].copy_from_slice(p);
        }
        let o = (at - start) as usize;
        merged[o..o + data.len()].copy_from_slice(data);
        self.pieces.insert(start, merged);
    }

    /// Bytes `at..at + len`, or `Miss` if any of them is not fetched.
    pub(super) fn get(&self, at: u64, len: u64) -> R<&[u8]> {
        let end = at.checked_add(len).ok_or(Stop::Bad("address overflow"))?;
        if let Some((s, p)) = self.pieces.range(..=at).next_back()
            && end <= s + p.len() as u64
        {
            return Ok(&p[(at - s) as usize..(end - s) as usize]);
        }
        Err(Stop::Miss(at..end))
    }

    /// The parts of `r` not fetched yet.
    pub(super) fn missing(&self, r: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let mut at = r.start;
        let first = self
            .pieces
            .range(..=r.start)
            .next_back()
            .map_or(r.start, |(s, _)| *s);
        for (s, p) in self.pieces.range(first..r.end) {
            let e = s + p.len() as u64;
            if *s > at {
                out.push(at..*s);
            }
            at = at.max(e);
            if at >= r.end {
                break;
            }
        }
        if at < r.end {
            out.push(at..r.end);
        }
        out
    }
}

/// Sizes of addresses and lengths, and where address 0 lies, from the superblock.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ctx {
    pub o: usize,
    pub l: usize,
    pub base: u64,
    pub size: u64,
}

impl Ctx {
    /// A decoded address as a file offset: `None` for the undefined address (all ones).
    pub(super) fn addr(&self, raw: u64, width: usize) -> R<Option<u64>> {
        if (width < 8 && raw == (1u64 << (8 * width)) - 1) || raw == u64::MAX {
            return Ok(None);
        }
        let a = self
            .base
            .checked_add(raw)
            .ok_or(Stop::Bad("address overflow"))?;
        if a >= self.size {
            return Err(Stop::Bad("an address past the end of the file"));
        }
        Ok(Some(a))
    }
}

/// A cursor over one fetched structure; running past its end is malformed input.
pub(super) struct Cur<'a> {
    b: &'a [u8],
    pub p: usize,
}

impl<'a> Cur<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Cur { b, p: 0 }
    }

    pub(super) fn at(b: &'a [u8], p: usize) -> Self {
        Cur { b, p }
    }

    pub(super) fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.p.checked_add(n).ok_or(Stop::Bad("size overflow"))?;
        let s = self
            .b
            .get(self.p..end)
            .ok_or(Stop::Bad("truncated structure"))?;
        self.p = end;
        Ok(s)
    }

    pub(super) fn skip(&mut self, n: usize) -> R<()> {
        self.take(n).map(|_| ())
    }

    pub(super) fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned little-endian integer of `n` bytes (at most 8).
    pub(super) fn uint(&mut self, n: usize) -> R<u64> {
        if n > 8 {
            return Err(Stop::Bad("integer wider than 8 bytes"));
        }
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |v, &b| (v << 8) | b as u64))
    }

    pub(super) fn addr(&mut self, c: &Ctx) -> R<Option<u64>> {
        let raw = self.uint(c.o)?;
        c.addr(raw, c.o)
    }

    pub(super) fn len(&mut self, c: &Ctx) -> R<u64> {
        self.uint(c.l)
    }

    pub(super) fn sig(&mut self, s: &[u8; 4], what: &'static str) -> R<()> {
        if self.take(4)? != s {
            return Err(Stop::Bad(what));
        }
        Ok(())
    }

    pub(super) fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.p)
    }
}

/// Bytes needed to encode `n` (as HDF5 sizes its variable-width counters).
pub(super) fn enc_size(n: u64) -> usize {
    (63 - n.max(1).leading_zeros() as usize) / 8 + 1
}
