//! A pure-Rust decoder of Blosc1 frames (format version 2, as c-blosc 1.x and numcodecs'
//! `Blosc` write them): the 16-byte header, per-block offsets, the per-block split streams,
//! byte shuffle and bit shuffle, and the inner codecs `lz4`/`lz4hc` (over `lz4_flex`), `zlib`
//! (`flate2`), `zstd` and `blosclz` (ported from c-blosc's `blosclz_decompress`). `snappy` is
//! refused. Every length and offset is checked against the frame: a corrupt frame is an error,
//! never a panic.
//!
//! Why not the C library: `blosc-src` builds c-blosc, lz4 and zlib with `cc` (about 30 s more
//! on a 2-core machine) and needs `unsafe` FFI over untrusted bytes; `zarrs` adds about 40
//! crates (rayon, regex, snappy's C++ among them) on top of that. The format is small.

use std::io::Read;

use anyhow::{Context, Result, bail, ensure};

const HEADER: usize = 16;
const DOSHUFFLE: u8 = 0x1;
const MEMCPYED: u8 = 0x2;
const DOBITSHUFFLE: u8 = 0x4;
const FUTURE: u8 = 0x8;
const DONT_SPLIT: u8 = 0x10;
/// c-blosc's limits for splitting a block into one stream per byte of the type.
const MAX_SPLITS: usize = 16;
const MIN_BUFFERSIZE: usize = 128;

/// Decodes a Blosc1 frame that holds at most `max` bytes (a frame claiming more is refused
/// before anything is allocated).
pub fn decode(src: &[u8], max: usize) -> Result<Vec<u8>> {
    ensure!(src.len() >= HEADER, "blosc frame shorter than its header");
    let version = src[0];
    let flags = src[2];
    let typesize = src[3] as usize;
    let u32_at = |o: usize| u32::from_le_bytes([src[o], src[o + 1], src[o + 2], src[o + 3]]);
    let nbytes = u32_at(4) as usize;
    let blocksize = u32_at(8) as usize;
    let cbytes = u32_at(12) as usize;
    ensure!(
        matches!(version, 1 | 2),
        "blosc format version {version} is not supported (blosc1 frames, version 2, are)"
    );
    ensure!(flags & FUTURE == 0, "blosc frame has unknown flags");
    ensure!(
        (HEADER..=src.len()).contains(&cbytes),
        "blosc frame claims {cbytes} bytes but holds {}",
        src.len()
    );
    ensure!(
        nbytes <= max,
        "blosc frame decodes to {nbytes} bytes, more than the {max} expected"
    );
    let src = &src[..cbytes];
    if nbytes == 0 {
        return Ok(Vec::new());
    }
    if flags & MEMCPYED != 0 {
        ensure!(
            cbytes == nbytes + HEADER,
            "blosc memcpy frame has the wrong size"
        );
        return Ok(src[HEADER..cbytes].to_vec());
    }
    ensure!(
        blocksize > 0 && typesize > 0,
        "blosc frame has block size {blocksize}, type size {typesize}"
    );
    let codec = Inner::from_flags(flags)?;
    let nblocks = nbytes.div_ceil(blocksize);
    ensure!(
        nblocks <= (cbytes - HEADER) / 4,
        "blosc frame too short for its {nblocks} block offsets"
    );
    let mut out = vec![0u8; nbytes];
    // Only a block's first `bsize` bytes (at most `nbytes`) are used: a hostile block size
    // allocates no more than the frame decodes to.
    let mut tmp = vec![0u8; blocksize.min(nbytes)];
    for j in 0..nblocks {
        let start = u32::from_le_bytes(src[HEADER + 4 * j..HEADER + 4 * j + 4].try_into()?);
        let begin = j * blocksize;
        let bsize = blocksize.min(nbytes - begin);
        let leftover = bsize < blocksize;
        let split = flags & DONT_SPLIT == 0
            && typesize <= MAX_SPLITS
            && bsize / typesize >= MIN_BUFFERSIZE
            && !leftover;
        let nsplits = if split { typesize } else { 1 };
        let neblock = bsize / nsplits;
        let mut off = start as usize;
        let shuffled = (flags & DOSHUFFLE != 0 && typesize > 1)
            || (flags & DOBITSHUFFLE != 0 && bsize >= typesize);
        let dst: &mut [u8] = if shuffled {
            &mut tmp[..bsize]
        } else {
            &mut out[begin..begin + bsize]
        };
        for s in 0..nsplits {
            let n = src
                .get(off..off + 4)
                .context("blosc block offset outside the frame")?;
            let n = u32::from_le_bytes(n.try_into()?) as usize;
            off += 4;
            let stream = src
                .get(off..off + n)
                .context("blosc stream runs past the frame")?;
            off += n;
            let part = &mut dst[s * neblock..(s + 1) * neblock];
            if n == neblock {
                part.copy_from_slice(stream);
            } else {
                codec.decompress(stream, part)?;
            }
        }
        let block = &mut out[begin..begin + bsize];
        if flags & DOSHUFFLE != 0 && typesize > 1 {
            unshuffle(typesize, &tmp[..bsize], block);
        } else if flags & DOBITSHUFFLE != 0 && bsize >= typesize {
            bitunshuffle(typesize, &tmp[..bsize], block);
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug)]
enum Inner {
    BloscLz,
    Lz4,
    Zlib,
    Zstd,
}

impl Inner {
    fn from_flags(flags: u8) -> Result<Self> {
        Ok(match flags >> 5 {
            0 => Inner::BloscLz,
            1 => Inner::Lz4,
            3 => Inner::Zlib,
            4 => Inner::Zstd,
            2 => bail!("blosc with snappy is not supported (lz4, zstd, zlib, blosclz are)"),
            c => bail!("blosc compressor code {c} is unknown"),
        })
    }

    /// Decompresses `src` to exactly `dst.len()` bytes.
    fn decompress(self, src: &[u8], dst: &mut [u8]) -> Result<()> {
        let want = dst.len();
        let got = match self {
            Inner::Lz4 => lz4_flex::block::decompress_into(src, dst).context("blosc lz4 stream")?,
            Inner::BloscLz => blosclz(src, dst).context("blosc blosclz stream")?,
            Inner::Zlib => read_exact_stream(flate2::read::ZlibDecoder::new(src), dst)
                .context("blosc zlib stream")?,
            Inner::Zstd => read_exact_stream(
                zstd::stream::read::Decoder::new(src).context("blosc zstd stream")?,
                dst,
            )
            .context("blosc zstd stream")?,
        };
        ensure!(
            got == want,
            "blosc stream decodes to {got} bytes, not {want}"
        );
        Ok(())
    }
}

/// Reads `r` into `dst`; the count read, or `dst.len() + 1` if the stream holds more.
fn read_exact_stream(mut r: impl Read, dst: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < dst.len() {
        match r.read(&mut dst[n..])? {
            0 => return Ok(n),
            k => n += k,
        }
    }
    let mut extra = [0u8; 1];
    Ok(n + r.read(&mut extra)?)
}

/// c-blosc's `blosclz_decompress` (FastLZ level 1 with 16-bit far matches), bounds-checked.
fn blosclz(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    const MAX_DISTANCE: usize = 8191;
    if src.is_empty() {
        return Ok(0);
    }
    let bad = || anyhow::anyhow!("corrupt blosclz stream");
    let mut ip = 1;
    let mut op = 0;
    let mut ctrl = (src[0] & 31) as usize;
    loop {
        if ctrl >= 32 {
            let mut len = (ctrl >> 5) - 1;
            let mut ofs = (ctrl & 31) << 8;
            if len == 6 {
                loop {
                    let code = *src.get(ip).ok_or_else(bad)?;
                    ip += 1;
                    len += code as usize;
                    if code != 255 {
                        break;
                    }
                }
            }
            let code = *src.get(ip).ok_or_else(bad)? as usize;
            ip += 1;
            len += 3;
            // Distance back from `op` to the match, less one.
            let mut back = ofs + code;
            if code == 255 && ofs == 31 << 8 {
                let hi = *src.get(ip).ok_or_else(bad)? as usize;
                let lo = *src.get(ip + 1).ok_or_else(bad)? as usize;
                ip += 2;
                ofs = (hi << 8) + lo;
                back = ofs + MAX_DISTANCE;
            }
            ensure!(op + len <= dst.len() && back < op, "corrupt blosclz stream");
            if ip >= src.len() {
                break;
            }
            ctrl = src[ip] as usize;
            ip += 1;
            // Byte by byte: the match may overlap what it writes (a run).
            let end = op + len;
            while op < end {
                dst[op] = dst[op - back - 1];
                op += 1;
            }
        } else {
            let n = ctrl + 1;
            ensure!(
                op + n <= dst.len() && ip + n <= src.len(),
                "corrupt blosclz stream"
            );
            dst[op..op + n].copy_from_slice(&src[ip..ip + n]);
            op += n;
            ip += n;
            if ip >= src.len() {
                break;
            }
            ctrl = src[ip] as usize;
            ip += 1;
        }
    }
    Ok(op)
}

/// Byte unshuffle of one block: `src` holds byte 0 of every element, then byte 1, ...;
/// trailing bytes that make no whole element are copied.
pub fn unshuffle(typesize: usize, src: &[u8], dst: &mut [u8]) {
    let n = src.len() / typesize;
    for i in 0..n {
        for j in 0..typesize {
            dst[i * typesize + j] = src[j * n + i];
        }
    }
    let done = n * typesize;
    dst[done..].copy_from_slice(&src[done..]);
}

/// Bit unshuffle of one block (the bitshuffle library's layout): bit `b` of byte `j` of
/// element `i` is bit `i % 8` of byte `i / 8` of row `8 j + b`, each row `n / 8` bytes. Only
/// whole groups of 8 elements are shuffled; a block whose element count is not a multiple of
/// 8 is stored as is, and trailing bytes are copied.
fn bitunshuffle(typesize: usize, src: &[u8], dst: &mut [u8]) {
    let n = src.len() / typesize;
    if n % 8 != 0 {
        dst.copy_from_slice(src);
        return;
    }
    let row = n / 8;
    dst[..n * typesize].fill(0);
    for j in 0..typesize {
        for b in 0..8 {
            let bits = &src[(j * 8 + b) * row..(j * 8 + b + 1) * row];
            for (g, &byte) in bits.iter().enumerate() {
                if byte == 0 {
                    continue;
                }
                for k in 0..8 {
                    if byte >> k & 1 != 0 {
                        dst[(g * 8 + k) * typesize + j] |= 1 << b;
                    }
                }
            }
        }
    }
    let done = n * typesize;
    dst[done..].copy_from_slice(&src[done..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        assert!(decode(&[], 64).is_err());
        assert!(decode(&[2, 1, 0x21, 8, 64, 0, 0, 0], 64).is_err());
        // Header claims 4096 bytes in 2 blocks but holds no offsets.
        let mut f = vec![2u8, 1, 0x21, 8];
        f.extend_from_slice(&4096u32.to_le_bytes());
        f.extend_from_slice(&2048u32.to_le_bytes());
        f.extend_from_slice(&16u32.to_le_bytes());
        assert!(decode(&f, 1 << 20).is_err());
        for seed in 0..200u32 {
            let mut g = f.clone();
            g[12..16].copy_from_slice(&64u32.to_le_bytes());
            g.extend((0..48).map(|i| (i * 37 + seed * 11) as u8));
            let _ = decode(&g, 1 << 20);
        }
    }

    /// Frames c-blosc 1.21 wrote (tests/convert/blosc_frames.py): every codec, byte and bit
    /// shuffle, split and unsplit blocks, and a leftover block too short to bit-shuffle.
    #[test]
    fn c_blosc_frames_decode() {
        let want: Vec<u8> = (0..1100u16)
            .flat_map(|i| ((i / 16) * 3 + if i % 16 == 5 { 7 } else { 0 }).to_le_bytes())
            .collect();
        for (name, frame) in [
            (
                "blosclz_shuffle",
                &include_bytes!("blosc_testdata/blosclz_shuffle.blosc")[..],
            ),
            (
                "blosclz_noshuffle",
                include_bytes!("blosc_testdata/blosclz_noshuffle.blosc"),
            ),
            (
                "lz4_bitshuffle",
                include_bytes!("blosc_testdata/lz4_bitshuffle.blosc"),
            ),
            (
                "zlib_noshuffle",
                include_bytes!("blosc_testdata/zlib_noshuffle.blosc"),
            ),
            (
                "zstd_bitshuffle",
                include_bytes!("blosc_testdata/zstd_bitshuffle.blosc"),
            ),
        ] {
            assert_eq!(decode(frame, 2200).expect(name), want, "{name}");
            assert!(decode(frame, 2199).is_err(), "{name}: size limit");
            for cut in [17, frame.len() / 2, frame.len() - 1] {
                assert!(decode(&frame[..cut], 2200).is_err(), "{name} cut at {cut}");
            }
            // Damaged payload bytes: an error or wrong values, never a panic.
            for k in (24..frame.len()).step_by(7) {
                let mut bad = frame.to_vec();
                bad[k] ^= 0x5a;
                let _ = decode(&bad, 2200);
            }
        }
    }

    #[test]
    fn memcpy_frame() {
        let mut f = vec![2u8, 1, MEMCPYED, 1];
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&19u32.to_le_bytes());
        f.extend_from_slice(b"abc");
        assert_eq!(decode(&f, 3).unwrap(), b"abc");
        assert!(decode(&f, 2).is_err());
    }

    #[test]
    fn shuffles_invert() {
        let data: Vec<u8> = (0..80u8).collect();
        // Byte shuffle of 3-byte elements (26 elements, 2 trailing bytes).
        let n = 26;
        let mut sh = vec![0u8; 80];
        for i in 0..n {
            for j in 0..3 {
                sh[j * n + i] = data[i * 3 + j];
            }
        }
        sh[78..].copy_from_slice(&data[78..]);
        let mut back = vec![0u8; 80];
        unshuffle(3, &sh, &mut back);
        assert_eq!(back, data);
        // Bit shuffle of 2-byte elements (40 elements).
        let row = 40 / 8;
        let mut bs = vec![0u8; 80];
        for i in 0..40 {
            for j in 0..2 {
                for b in 0..8 {
                    if data[i * 2 + j] >> b & 1 != 0 {
                        bs[(j * 8 + b) * row + i / 8] |= 1 << (i % 8);
                    }
                }
            }
        }
        let mut back = vec![0u8; 80];
        bitunshuffle(2, &bs, &mut back);
        assert_eq!(back, data);
    }

    /// Found by fuzzing (fuzz target `blosc`): a frame whose compressed size is below the
    /// header's own 16 bytes.
    #[test]
    fn a_frame_claiming_fewer_bytes_than_its_header_is_an_error() {
        let mut f = vec![2u8, 1, 0x21, 8];
        f.extend_from_slice(&64u32.to_le_bytes());
        f.extend_from_slice(&64u32.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&[0; 32]);
        assert!(decode(&f, 64).is_err());
    }
}
