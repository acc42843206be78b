//! Classic little-endian TIFF pieces the COG writer needs: IFD entries with their values
//! encoded, GeoTIFF keys, and the serialisation of a chain of IFDs at known offsets. Tag
//! numbers and field types are [`crate::formats::tiff`]'s.

use crate::formats::tiff::field::{ASCII, DOUBLE, LONG, SHORT};
use crate::formats::tiff::tag::{
    GEO_ASCII_PARAMS, GEO_DOUBLE_PARAMS, GEO_KEY_DIRECTORY, TILE_BYTE_COUNTS, TILE_OFFSETS,
};

/// One IFD entry with its value already encoded little endian.
pub(crate) struct Entry {
    pub(crate) tag: u16,
    typ: u16,
    count: u32,
    pub(crate) data: Vec<u8>,
}

impl Entry {
    pub(crate) fn shorts(tag: u16, v: &[u16]) -> Self {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Self {
            tag,
            typ: SHORT,
            count: v.len() as u32,
            data,
        }
    }
    pub(crate) fn longs(tag: u16, v: &[u32]) -> Self {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Self {
            tag,
            typ: LONG,
            count: v.len() as u32,
            data,
        }
    }
    pub(crate) fn doubles(tag: u16, v: &[f64]) -> Self {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Self {
            tag,
            typ: DOUBLE,
            count: v.len() as u32,
            data,
        }
    }
    /// NUL-terminated ASCII; the count includes the NUL.
    pub(crate) fn ascii(tag: u16, s: &str) -> Self {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        Self {
            tag,
            typ: ASCII,
            count: data.len() as u32,
            data,
        }
    }
    /// Values of at most 4 bytes live in the entry itself.
    pub(crate) fn inline(&self) -> bool {
        self.data.len() <= 4
    }
}

/// Accumulates GeoKeys; each key is (id, location tag, count, value or index).
#[derive(Default)]
pub(crate) struct GeoKeys {
    keys: Vec<[u16; 4]>,
    doubles: Vec<f64>,
    ascii: String,
}

impl GeoKeys {
    pub(crate) fn short(&mut self, id: u16, v: u16) {
        self.keys.push([id, 0, 1, v]);
    }
    pub(crate) fn double(&mut self, id: u16, v: f64) {
        self.keys
            .push([id, GEO_DOUBLE_PARAMS, 1, self.doubles.len() as u16]);
        self.doubles.push(v);
    }
    /// ASCII values are '|'-terminated in GeoAsciiParams; the count includes the '|'.
    pub(crate) fn text(&mut self, id: u16, s: &str) {
        self.keys.push([
            id,
            GEO_ASCII_PARAMS,
            (s.len() + 1) as u16,
            self.ascii.len() as u16,
        ]);
        self.ascii.push_str(s);
        self.ascii.push('|');
    }
    /// The GeoTIFF tags; header = KeyDirectoryVersion 1, KeyRevision 1.0, key count, then the
    /// keys sorted by id. Empty parameter tags are left out.
    pub(crate) fn into_entries(mut self) -> Vec<Entry> {
        self.keys.sort_by_key(|k| k[0]);
        let mut dir: Vec<u16> = vec![1, 1, 0, self.keys.len() as u16];
        dir.extend(self.keys.iter().flatten());
        let mut out = vec![Entry::shorts(GEO_KEY_DIRECTORY, &dir)];
        if !self.doubles.is_empty() {
            out.push(Entry::doubles(GEO_DOUBLE_PARAMS, &self.doubles));
        }
        if !self.ascii.is_empty() {
            out.push(Entry::ascii(GEO_ASCII_PARAMS, &self.ascii));
        }
        out
    }
}

/// Where each IFD and each out-of-line value goes, computed before any byte is written.
pub(crate) struct IfdLayout {
    pub(crate) ifd_offsets: Vec<usize>,
    /// Per IFD, per entry: the offset of its out-of-line value.
    value_offsets: Vec<Vec<Option<usize>>>,
    /// First byte after the last value.
    pub(crate) end: usize,
}

impl IfdLayout {
    /// IFDs back to back from `start`, then out-of-line values: other tags first, then every
    /// strile array (GDAL's COG order), each word aligned. Entries must be sorted by tag.
    pub(crate) fn plan(ifds: &[Vec<Entry>], start: usize) -> Self {
        let mut pos = start.next_multiple_of(2);
        let mut ifd_offsets = Vec::with_capacity(ifds.len());
        for e in ifds {
            ifd_offsets.push(pos);
            pos += 2 + 12 * e.len() + 4;
        }
        let mut value_offsets: Vec<Vec<Option<usize>>> =
            ifds.iter().map(|e| vec![None; e.len()]).collect();
        for strile_pass in [false, true] {
            for (l, e) in ifds.iter().enumerate() {
                for (k, entry) in e.iter().enumerate() {
                    let is_strile = matches!(entry.tag, TILE_OFFSETS | TILE_BYTE_COUNTS);
                    if !entry.inline() && is_strile == strile_pass {
                        pos = pos.next_multiple_of(2);
                        value_offsets[l][k] = Some(pos);
                        pos += entry.data.len();
                    }
                }
            }
        }
        Self {
            ifd_offsets,
            value_offsets,
            end: pos,
        }
    }

    /// Appends the IFDs and their values to `buf`, which holds exactly the bytes before the
    /// first IFD; `buf` then ends at [`Self::end`].
    pub(crate) fn write(&self, ifds: &[Vec<Entry>], buf: &mut Vec<u8>) {
        for (l, e) in ifds.iter().enumerate() {
            buf.resize(self.ifd_offsets[l], 0);
            buf.extend_from_slice(&(e.len() as u16).to_le_bytes());
            for (k, entry) in e.iter().enumerate() {
                buf.extend_from_slice(&entry.tag.to_le_bytes());
                buf.extend_from_slice(&entry.typ.to_le_bytes());
                buf.extend_from_slice(&entry.count.to_le_bytes());
                let mut field = [0u8; 4];
                match self.value_offsets[l][k] {
                    Some(off) => field = (off as u32).to_le_bytes(),
                    None => field[..entry.data.len()].copy_from_slice(&entry.data),
                }
                buf.extend_from_slice(&field);
            }
            let next = self.ifd_offsets.get(l + 1).copied().unwrap_or(0) as u32;
            buf.extend_from_slice(&next.to_le_bytes());
        }
        let mut values: Vec<(usize, &[u8])> = Vec::new();
        for (l, e) in ifds.iter().enumerate() {
            for (k, entry) in e.iter().enumerate() {
                if let Some(off) = self.value_offsets[l][k] {
                    values.push((off, &entry.data));
                }
            }
        }
        values.sort_by_key(|v| v.0);
        for (off, data) in values {
            buf.resize(off, 0);
            buf.extend_from_slice(data);
        }
        buf.resize(self.end, 0);
    }
}
