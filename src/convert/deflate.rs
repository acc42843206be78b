//! zlib streams of an exact, precomputed length. A COG's header names every tile's offset and
//! byte count, and the converted views serve that header before any tile is compressed; so each
//! tile gets a fixed slot (the stored-block worst case) and its compressed stream is padded to
//! fill the slot exactly with empty deflate blocks, which every inflater (zlib, libdeflate,
//! miniz) skips. The padding is inside the stream, so the TIFF byte count is the stream length.
//!
//! Hand-written because no crate pads a deflate stream to a chosen length.

use flate2::{Compress, Compression, FlushCompress};

/// Length of a zlib stream holding `n` bytes in stored blocks, including the smallest tail.
pub(crate) fn slot_len(n: usize) -> usize {
    2 + stored_len(n) + MIN_TAIL + 4
}

/// Raw deflate length of `n` bytes as non-final stored blocks of at most 65535 bytes.
fn stored_len(n: usize) -> usize {
    n + 5 * n.div_ceil(65535).max(1)
}

/// The shortest tail (a final empty stored block).
const MIN_TAIL: usize = 5;

/// Compresses `raw` at `level` into a zlib stream exactly `slot_len(raw.len())` long.
pub(crate) fn zlib_exact(raw: &[u8], level: u32) -> Vec<u8> {
    let slot = slot_len(raw.len());
    let body = match deflate_sync(raw, level) {
        Some(b) if b.len() <= stored_len(raw.len()) => b,
        _ => stored(raw),
    };
    let mut out = Vec::with_capacity(slot);
    out.extend_from_slice(&[0x78, 0x01]); // CMF: deflate, 32K window; FLG: fastest, check bits
    out.extend_from_slice(&body);
    out.extend_from_slice(&tail(slot - 2 - body.len() - 4));
    out.extend_from_slice(&adler32(raw).to_be_bytes());
    debug_assert_eq!(out.len(), slot);
    out
}

/// Raw deflate ending with a sync flush: non-final blocks, byte aligned. `None` if the
/// compressor reports an error (then the caller stores the bytes instead).
fn deflate_sync(raw: &[u8], level: u32) -> Option<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
            .ok()?;
        // All input taken and room left over: the flush is complete.
        if c.total_in() as usize == raw.len() && out.len() < out.capacity() {
            return Some(out);
        }
        out.reserve(raw.len() / 4 + 1024);
    }
}

/// `raw` as non-final stored blocks.
fn stored(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_len(raw.len()));
    let mut chunks = raw.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
    }
    for c in chunks {
        let n = c.len() as u16;
        out.push(0);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// Deflate bits, least significant first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    nbits: usize,
}

impl Bits {
    fn put(&mut self, v: u32, n: usize) {
        for k in 0..n {
            if self.nbits % 8 == 0 {
                self.out.push(0);
            }
            if (v >> k) & 1 == 1 {
                let last = self.out.len() - 1;
                self.out[last] |= 1 << (self.nbits % 8);
            }
            self.nbits += 1;
        }
    }
    fn align(&mut self) {
        self.nbits = self.nbits.next_multiple_of(8);
    }
    /// An empty fixed-Huffman block: header, then end-of-block (7 zero bits).
    fn empty_fixed(&mut self, last: bool) {
        self.put(u32::from(last), 1);
        self.put(1, 2);
        self.put(0, 7);
    }
    /// An empty stored block: header, align, LEN = 0, NLEN = 0xffff.
    fn empty_stored(&mut self, last: bool) {
        self.put(u32::from(last), 1);
        self.put(0, 2);
        self.align();
        self.out.extend_from_slice(&[0, 0, 0xff, 0xff]);
        self.nbits += 32;
    }
}

/// No-op deflate blocks ending with a final block, exactly `len` (>= 5) bytes, starting byte
/// aligned: empty stored blocks (5 bytes each), then 0-7 empty fixed-Huffman blocks (10 bits
/// each) and a final empty block, searched for a combination of the right length.
fn tail(len: usize) -> Vec<u8> {
    assert!(len >= MIN_TAIL, "deflate tail of {len} bytes");
    for stored_blocks in (0..=len / 5).rev().take(4) {
        for fixed in 0..8 {
            for final_stored in [true, false] {
                let mut b = Bits::default();
                for _ in 0..stored_blocks {
                    b.empty_stored(false);
                }
                for _ in 0..fixed {
                    b.empty_fixed(false);
                }
                if final_stored {
                    b.empty_stored(true);
                } else {
                    b.empty_fixed(true);
                }
                if b.out.len() == len {
                    return b.out;
                }
            }
        }
    }
    unreachable!("every tail length >= 5 is reachable (tested)")
}

/// RFC 1950 checksum.
fn adler32(data: &[u8]) -> u32 {
    let mut a = adler2::Adler32::new();
    a.write_slice(data);
    a.checksum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut d = flate2::read::ZlibDecoder::new(z);
        d.read_to_end(&mut out).expect("inflate");
        out
    }

    #[test]
    fn every_tail_length_is_reachable() {
        for len in MIN_TAIL..200 {
            assert_eq!(tail(len).len(), len);
        }
    }

    #[test]
    fn streams_fill_their_slot_and_inflate_to_the_input() {
        let smooth: Vec<u8> = (0..300_000u32).map(|k| (k / 1000) as u8).collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let big: Vec<u8> = (0..1_048_576u32)
            .map(|k| ((k % 2048) as f32 * 0.01).sin().to_bits().to_be_bytes()[(k % 4) as usize])
            .collect();
        for raw in [big, smooth, noise, Vec::new(), vec![7u8; 3]] {
            for level in [0, 1, 6] {
                let z = zlib_exact(&raw, level);
                assert_eq!(z.len(), slot_len(raw.len()));
                let back = inflate(&z);
                assert_eq!(back.len(), raw.len());
                let first = back.iter().zip(&raw).position(|(a, b)| a != b);
                assert_eq!(first, None, "level {level}, {} bytes", raw.len());
                // Strict zlib check: header checksum, and nothing after the adler.
                assert_eq!(u16::from_be_bytes([z[0], z[1]]) % 31, 0);
            }
        }
    }
}
