//! `preview.png`: a quicklook of a field (its smallest COG overview) in viridis, NaN in grey,
//! with a colour bar and its minimum and maximum below. The PNG's size follows from the
//! raster's shape alone (its IDAT is a fixed-length zlib stream, see [`super::deflate`]), so it
//! is known at `getattr` before anything is decoded. Hand-written (a few chunks and a 3x5
//! digit font) because PNG encoders size their IDAT by the data.

use super::cog::Raster;
use super::deflate::{slot_len, zlib_exact};

/// Rows below the field: gap, colour bar, gap, labels.
const BAR_TOP: usize = 4;
const BAR_H: usize = 12;
const LABEL_TOP: usize = BAR_TOP + BAR_H + 3;
const SCALE: usize = 2;
const LEGEND_H: usize = LABEL_TOP + 5 * SCALE + 3;
/// Narrowest image, so the labels fit.
const MIN_W: usize = 200;

/// Viridis at nine evenly spaced stops.
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 45, 123],
    [59, 82, 139],
    [44, 114, 142],
    [33, 145, 140],
    [40, 174, 128],
    [94, 201, 98],
    [173, 220, 48],
    [253, 231, 37],
];
const NAN_GREY: [u8; 3] = [200, 200, 200];

fn viridis(t: f32) -> [u8; 3] {
    let s = t.clamp(0.0, 1.0) * 8.0;
    let i = (s.floor() as usize).min(7);
    let f = s - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    std::array::from_fn(|c| (a[c] as f32 + (b[c] as f32 - a[c] as f32) * f).round() as u8)
}

/// 3x5 glyphs, one row per 3 bits.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        'e' => [0, 7, 7, 4, 7],
        _ => [0; 5],
    }
}

/// Width and height of the preview of a `width` x `height` field overview.
fn shape(width: usize, height: usize) -> (usize, usize) {
    (width.max(MIN_W), height + LEGEND_H)
}

fn raw_len(width: usize, height: usize) -> usize {
    let (w, h) = shape(width, height);
    h * (1 + 3 * w)
}

/// Byte size of the preview of a `width` x `height` overview.
pub fn size(width: usize, height: usize) -> u64 {
    (8 + 25 + 12 + slot_len(raw_len(width, height)) + 12) as u64
}

fn label(v: f32) -> String {
    if v == 0.0 || (v.is_finite() && v.abs() >= 0.01 && v.abs() < 1e5) {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// The preview PNG of an overview; exactly [`size`] bytes.
pub fn render(r: &Raster) -> Vec<u8> {
    let (w, h) = shape(r.width, r.height);
    let mut px = vec![[255u8; 3]; w * h];
    let finite = r.data.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    for y in 0..r.height {
        for x in 0..r.width {
            let v = r.data[y * r.width + x];
            px[y * w + x] = if v.is_finite() {
                viridis((v - lo) / span)
            } else {
                NAN_GREY
            };
        }
    }
    for y in r.height + BAR_TOP..r.height + BAR_TOP + BAR_H {
        for x in 0..w {
            px[y * w + x] = viridis(x as f32 / (w - 1) as f32);
        }
    }
    if lo <= hi {
        let max = label(hi);
        let max_x = w.saturating_sub(max.len() * 4 * SCALE);
        for (text, x0) in [(label(lo), 0), (max, max_x)] {
            for (i, c) in text.chars().enumerate() {
                for (row, bits) in glyph(c).iter().enumerate() {
                    for col in 0..3 {
                        if bits & (4 >> col) == 0 {
                            continue;
                        }
                        for (dy, dx) in (0..SCALE).flat_map(|a| (0..SCALE).map(move |b| (a, b))) {
                            let x = x0 + (i * 4 + col) * SCALE + dx;
                            let y = r.height + LABEL_TOP + row * SCALE + dy;
                            if x < w {
                                px[y * w + x] = [0, 0, 0];
                            }
                        }
                    }
                }
            }
        }
    }
    let mut raw = Vec::with_capacity(raw_len(r.width, r.height));
    for row in px.chunks_exact(w) {
        raw.push(0); // filter: none
        raw.extend(row.iter().flatten());
    }
    let mut out = Vec::with_capacity(size(r.width, r.height) as usize);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_exact(&raw, 6));
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn preview_has_its_precomputed_size_and_decodes() {
        let r = Raster {
            width: 30,
            height: 20,
            data: (0..600)
                .map(|k| if k % 7 == 0 { f32::NAN } else { k as f32 })
                .collect(),
        };
        let png = render(&r);
        assert_eq!(png.len() as u64, size(30, 20));
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 200);
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), raw_len(30, 20));
        // Pixel (0,0) is NaN (grey); pixel (1,0) is the minimum (viridis' first colour).
        assert_eq!(&raw[1..4], &NAN_GREY);
        assert_eq!(&raw[4..7], &VIRIDIS[0]);
        assert_eq!(viridis(1.0), VIRIDIS[8]);
    }
}
