//! [`Rope`]: bytes kept in the pieces they arrived in. Fetched data flows from the network to the
//! kernel without being copied into new buffers: slicing and joining only move reference-counted
//! `Bytes` handles. The one copy left is at the FUSE reply, into a buffer the thread reuses.

use std::ops::Range;

use bytes::Bytes;

/// A byte string made of pieces. Invariant: no piece is empty; `len` is their total length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rope {
    parts: Vec<Bytes>,
    len: usize,
}

impl From<Bytes> for Rope {
    fn from(b: Bytes) -> Self {
        let mut r = Rope::default();
        r.push(b);
        r
    }
}

impl From<Vec<u8>> for Rope {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl Rope {
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.parts.push(b);
        }
    }

    pub fn append(&mut self, other: Rope) {
        self.len += other.len;
        self.parts.extend(other.parts);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// Bytes `range` (clamped to the length), without copying.
    pub fn slice(&self, range: Range<usize>) -> Rope {
        let (start, end) = (range.start.min(self.len), range.end.min(self.len));
        let mut out = Rope::default();
        let mut pos = 0;
        for p in &self.parts {
            let (p_start, p_end) = (pos, pos + p.len());
            pos = p_end;
            if p_end <= start {
                continue;
            }
            if p_start >= end {
                break;
            }
            out.push(p.slice(start.max(p_start) - p_start..end.min(p_end) - p_start));
        }
        out
    }

    /// Calls `f` with the bytes as one slice: the piece itself when there is one, otherwise the
    /// pieces joined in `scratch` (reused by the caller, so no fresh memory is touched).
    pub fn with_contiguous<T>(&self, scratch: &mut Vec<u8>, f: impl FnOnce(&[u8]) -> T) -> T {
        match self.parts.as_slice() {
            [] => f(&[]),
            [one] => f(one),
            many => {
                scratch.clear();
                for p in many {
                    scratch.extend_from_slice(p);
                }
                f(scratch)
            }
        }
    }

    /// The bytes in one `Bytes` (copies unless there is a single piece).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut v = Vec::with_capacity(self.len);
                for p in many {
                    v.extend_from_slice(p);
                }
                v.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(pieces: &[&[u8]]) -> Rope {
        let mut r = Rope::default();
        for p in pieces {
            r.push(Bytes::copy_from_slice(p));
        }
        r
    }

    #[test]
    fn slices_across_pieces_without_losing_bytes() {
        let r = rope(&[b"abc", b"", b"defg", b"h"]);
        assert_eq!(r.len(), 8);
        assert_eq!(r.parts().len(), 3, "empty pieces are dropped");
        let all = b"abcdefgh";
        for a in 0..=8 {
            for b in a..=10 {
                let s = r.slice(a..b);
                assert_eq!(&s.to_bytes()[..], &all[a.min(8)..b.min(8)], "{a}..{b}");
                assert_eq!(s.len(), b.min(8) - a.min(8));
            }
        }
        assert_eq!(
            r.slice(1..3).parts().len(),
            1,
            "a slice inside one piece stays one piece"
        );
    }

    #[test]
    fn contiguous_view_reuses_the_scratch_buffer() {
        let mut scratch = Vec::with_capacity(64);
        let r = rope(&[b"ab", b"cd"]);
        let cap = scratch.capacity();
        assert_eq!(r.with_contiguous(&mut scratch, |s| s.to_vec()), b"abcd");
        assert_eq!(scratch.capacity(), cap);
        let one = rope(&[b"xyz"]);
        assert_eq!(one.with_contiguous(&mut scratch, |s| s.to_vec()), b"xyz");
        let mut joined = rope(&[b"1"]);
        joined.append(rope(&[b"23", b"4"]));
        assert_eq!(&joined.to_bytes()[..], b"1234");
        assert_eq!(joined.len(), 4);
    }
}
