//! GRIB2 message boundaries, from a wgrib2-style `.idx` sidecar
//! (`msgnum:byte_offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:`) or, without one, from the messages'
//! own section 0 (the `GRIB` magic, the edition and the total length in 16 bytes).
//!
//! An inventory has no lengths: a message ends where the next starts and the last runs to the
//! end of the object. Several inventory lines may share one offset (sub-messages of one GRIB
//! message); they are one range.
//!
//! Without an inventory the boundaries are found by hops: a small probe at a message's start
//! gives its length, which gives the next start. Up to [`MAX_GAP`] bytes of padding between
//! messages are skipped, as wgrib2 and eccodes do.

use std::ops::Range;

use anyhow::{Result, ensure};

/// Bytes that may separate messages (some files pad between them, as wgrib2 tolerates).
pub const MAX_GAP: usize = 64;

/// Bytes read at a supposed message start to find its section 0 past any padding.
pub const PROBE_BYTES: u64 = 16 + MAX_GAP as u64;

/// Where the `GRIB` magic starts within the first [`MAX_GAP`] bytes of `buf`.
pub fn find_magic(buf: &[u8]) -> Option<usize> {
    buf.windows(4).take(MAX_GAP).position(|w| w == b"GRIB")
}

/// Total length from a message's 16-byte section 0, checking the `GRIB` magic and edition 2.
pub fn section0_len(head: &[u8]) -> Result<u64> {
    ensure!(
        head.len() >= 16 && &head[..4] == b"GRIB",
        "not a GRIB message (no GRIB magic)"
    );
    ensure!(head[7] == 2, "GRIB edition {} is not 2", head[7]);
    Ok(u64::from_be_bytes(head[8..16].try_into()?))
}

/// The message whose probe (the bytes from `pos`, at least 16 past any padding) is `probe`, in
/// an object of `size` bytes: where it starts and ends. An error says why there is none (not
/// GRIB2, a length that runs past the object).
pub fn message_at(probe: &[u8], pos: u64, size: u64) -> Result<Range<u64>> {
    let skip = find_magic(probe)
        .ok_or_else(|| anyhow::anyhow!("no GRIB magic within {MAX_GAP} bytes of byte {pos}"))?;
    let len = section0_len(&probe[skip..])?;
    let start = pos + skip as u64;
    ensure!(
        len >= 16 && start.checked_add(len).is_some_and(|end| end <= size),
        "message at byte {start} has length {len}, past the end of the {size}-byte object"
    );
    Ok(start..start + len)
}

/// Whether a file name is a GRIB file that may have a `.idx` sidecar.
pub fn is_grib_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".grib2", ".grb2", ".grib", ".grb"]
        .iter()
        .any(|s| n.ends_with(s))
}

/// The message ranges of an object of `size` bytes, or `None` when the inventory does not fit
/// it (an unparsable line, offsets out of order or beyond the object): the caller then reads
/// the file without a plan.
pub fn messages_from_idx(idx: &str, size: u64) -> Option<Vec<Range<u64>>> {
    let mut starts: Vec<u64> = Vec::new();
    for line in idx.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut fields = line.split(':');
        let num = fields.next()?;
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        let offset: u64 = fields.next()?.parse().ok()?;
        match starts.last() {
            Some(&last) if offset == last => continue,
            Some(&last) if offset < last => return None,
            _ => {}
        }
        if offset >= size {
            return None;
        }
        starts.push(offset);
    }
    if starts.first() != Some(&0) {
        return None;
    }
    let ends = starts.iter().skip(1).copied().chain([size]);
    Some(starts.iter().zip(ends).map(|(&s, e)| s..e).collect())
}

/// Read units for the first messages of an object found by section-0 hops, the probe of each
/// (`probes[k]`, read from where the previous message ended) a unit of its own and the rest
/// of its message another. `tail` is set when the walk reached the end of the object: the
/// bytes after the last message (fewer than 16, padding) are a unit too. The units are
/// contiguous from 0; reads past them take the generic block path.
pub fn hop_units(
    probes: &[Range<u64>],
    messages: &[Range<u64>],
    tail: Option<u64>,
) -> Vec<Range<u64>> {
    let mut out = Vec::with_capacity(2 * messages.len() + 1);
    for (p, m) in probes.iter().zip(messages) {
        out.push(p.clone());
        if m.end > p.end {
            out.push(p.end..m.end);
        }
    }
    let end = out.last().map_or(0, |u| u.end);
    if let Some(size) = tail.filter(|&s| s > end) {
        out.push(end..size);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::touched;

    #[test]
    fn the_fixture_inventory_gives_two_messages() {
        let idx = "1:0:d=2020121400:APCP:surface:0-12 hour acc fcst:\n\
                   2:887243:d=2020121400:APCP:surface:11-12 hour acc fcst:\n";
        let m = messages_from_idx(idx, 1_532_183).unwrap();
        assert_eq!(m, vec![0..887_243, 887_243..1_532_183]);
        assert_eq!(touched(&m, 887_243..887_300), 1..2);
        assert_eq!(touched(&m, 887_000..887_300), 0..2);
        assert_eq!(touched(&m, 0..10), 0..1);
        assert_eq!(touched(&m, 1_532_183..1_532_200), 2..2);
    }

    /// The planner's walk on the HRRR-like sample (a stray byte before message 2 and after
    /// the last): two probes, units contiguous from 0 to the end, message 2 in one unit after
    /// its probe. The messages are where eccodes finds them (tests/data/make.py).
    #[test]
    fn section0_hops_walk_the_hrrr_sample() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/grib2/hrrr.t00z.wrfsfcf12.grib2");
        let data = std::fs::read(&path).unwrap();
        let size = data.len() as u64;
        let eccodes: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path.with_extension("grib2.json")).unwrap(),
        )
        .unwrap();
        let at = |k: usize, key: &str| eccodes["messages"][k][key].as_u64().unwrap();
        let (end1, start2) = (at(0, "length"), at(1, "offset"));
        let end2 = start2 + at(1, "length");
        let (mut probes, mut messages, mut pos) = (vec![], vec![], 0);
        while pos + 16 <= size {
            let probe = pos..(pos + PROBE_BYTES).min(size);
            let m = message_at(&data[probe.start as usize..probe.end as usize], pos, size).unwrap();
            pos = m.end;
            probes.push(probe);
            messages.push(m);
        }
        assert_eq!(messages, vec![0..end1, start2..end2]);
        assert!(
            start2 == end1 + 1 && end2 == size - 1,
            "one stray byte after each"
        );
        let units = hop_units(&probes, &messages, Some(size));
        assert_eq!(
            units,
            vec![
                0..80,
                80..end1,
                end1..end1 + 80,
                end1 + 80..end2,
                end2..size
            ]
        );
        assert_eq!(touched(&units, end1..size), 2..5);
        // A partial walk leaves the rest unplanned; junk and truncated messages are refused.
        assert_eq!(
            hop_units(&probes[..1], &messages[..1], None),
            vec![0..80, 80..end1]
        );
        assert!(message_at(&[0; 80], 0, size).is_err());
        assert!(message_at(&data[..80], 0, 1000).is_err());
        let mut ed1 = data[..80].to_vec();
        ed1[7] = 1;
        assert!(message_at(&ed1, 0, size).is_err());
        assert!(message_at(&data[..10], 0, size).is_err());
    }

    #[test]
    fn real_full_inventories_parse_and_bad_ones_are_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/idx");
        // wgrib2-style inventories of HRRR files, one message per line (some lines without
        // their trailing colon in the subhourly one).
        for name in [
            "hrrr.t01z.wrfsfcf00.grib2.idx",
            "hrrr.t01z.wrfsubhf00.grib2.idx",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let m = messages_from_idx(&text, 200 << 20).unwrap();
            assert_eq!(m.len(), text.lines().count(), "{name}");
            assert!(m.windows(2).all(|w| w[0].end == w[1].start), "{name}");
        }
        // Shared offsets (sub-messages) collapse; lines without a trailing colon parse.
        assert_eq!(
            messages_from_idx("1:0:a\n1.1:0:b\n2:10:c", 20).unwrap(),
            vec![0..10, 10..20]
        );
        assert_eq!(
            messages_from_idx("1:0:a\n2:0:b\n3:10:c", 20).unwrap(),
            vec![0..10, 10..20]
        );
        assert!(messages_from_idx("1:5:a", 20).is_none());
        assert!(messages_from_idx("1:0:a\n2:30:b", 20).is_none());
        assert!(messages_from_idx("garbage", 20).is_none());
        assert!(is_grib_name("hrrr.t00z.wrfsfcf00.grib2") && !is_grib_name("x.grib2.idx"));
    }
}
