//! GRIB2 message boundaries from a wgrib2-style `.idx` sidecar
//! (`msgnum:byte_offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:`). The file has no lengths: a message
//! ends where the next starts and the last runs to the end of the object. Several inventory lines
//! may share one offset (sub-messages of one GRIB message); they are one range.

use std::ops::Range;

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

    #[test]
    fn real_full_inventories_parse_and_bad_ones_are_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/idx");
        let text = std::fs::read_to_string(dir.join("hrrr.t01z.wrfsfcf00.grib2.idx")).unwrap();
        let m = messages_from_idx(&text, 200 << 20).unwrap();
        assert!(m.len() >= 150, "{}", m.len());
        assert!(m.windows(2).all(|w| w[0].end == w[1].start));
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
