//! GRIB2 (WMO FM 92 edition 2) layout: message boundaries, from a wgrib2-style `.idx` sidecar
//! (`msgnum:byte_offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:`) or, without one, from the messages'
//! own section 0 (the `GRIB` magic, the edition and the total length in 16 bytes); and what a
//! message holds, from the sections of its head (0-5).
//!
//! An inventory has no lengths: a message ends where the next starts and the last runs to the
//! end of the object. Several inventory lines may share one offset (sub-messages of one GRIB
//! message, `N.1`, `N.2`); they are one range.
//!
//! Without an inventory the boundaries are found by hops: a small probe at a message's start
//! gives its length, which gives the next start. Up to [`MAX_GAP`] bytes of padding between
//! messages are skipped, as wgrib2 and eccodes do.
//!
//! How strict: one inventory rule for every consumer, the strictest that real inventories
//! (wgrib2 `-s`, NOAA's and the cloud mirrors' `.idx` files) pass: each line has the six
//! fields wgrib2 writes, a message number of digits and dots and an integer offset; offsets
//! never decrease; the first is 0 and every one lies inside the object. Anything else means
//! the inventory does not describe the object (a planner then walks section 0; a view fails,
//! saying why).
//!
//! The sections themselves are parsed by the `grib` crate (sections 1-5 of the head through
//! [`parse_head`], values by the views). Hand-written here is what the crate cannot do: it
//! walks a whole file's sections through a blocking `Read + Seek` when it opens one (so
//! finding message boundaries with it would need every section header of the object, one
//! blocking read each, where a planner makes one small ranged read per message), it expects
//! messages back to back (no padding between them, which real files have), and it does not
//! expose the end of a statistic's interval (product template 4.8).

use std::ops::Range;

use crate::error::{Format, FormatError};

type Result<T> = std::result::Result<T, FormatError>;

/// The GRIB2 structure `what` breaks a rule: `problem`.
fn bad(what: impl Into<String>, problem: impl Into<String>) -> FormatError {
    FormatError::invalid(Format::Grib2, what, problem)
}

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
    if head.len() < 16 || &head[..4] != b"GRIB" {
        return Err(bad("section 0", "not a GRIB message (no GRIB magic)"));
    }
    if head[7] != 2 {
        return Err(bad("section 0", format!("GRIB edition {} is not 2", head[7])).at(7));
    }
    let mut len = [0; 8];
    len.copy_from_slice(&head[8..16]);
    Ok(u64::from_be_bytes(len))
}

/// The message whose probe (the bytes from `pos`, at least 16 past any padding) is `probe`, in
/// an object of `size` bytes: where it starts and ends. An error says why there is none (not
/// GRIB2, a length that runs past the object).
pub fn message_at(probe: &[u8], pos: u64, size: u64) -> Result<Range<u64>> {
    let skip = find_magic(probe).ok_or_else(|| {
        bad(
            "section 0",
            format!("no GRIB magic within {MAX_GAP} bytes of byte {pos}"),
        )
        .at(pos)
    })?;
    let start = pos + skip as u64;
    let len = section0_len(&probe[skip..]).map_err(|e| {
        let within = e.offset().unwrap_or(0);
        e.at(start + within)
    })?;
    if len < 16 || start.checked_add(len).is_none_or(|end| end > size) {
        return Err(bad(
            "section 0",
            format!(
                "message at byte {start} has length {len}, past the end of the {size}-byte object"
            ),
        )
        .at(start));
    }
    Ok(start..start + len)
}

/// Whether a file name is a GRIB file that may have a `.idx` sidecar.
pub fn is_grib_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".grib2", ".grb2", ".grib", ".grb"]
        .iter()
        .any(|s| n.ends_with(s))
}

/// One `.idx` line: `msgnum:offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxLine {
    pub offset: u64,
    pub var: String,
    pub level: String,
    pub forecast: String,
}

/// Parses a wgrib2-style inventory; a line that does not parse is an error naming it, and so
/// are offsets that decrease. Lines sharing an offset (sub-messages) are all returned.
pub fn parse_idx(text: &str) -> Result<Vec<IdxLine>> {
    let mut out: Vec<IdxLine> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let what = || format!("inventory line {}", n + 1);
        let f: Vec<&str> = line.splitn(7, ':').collect();
        if f.len() < 6 {
            return Err(bad(what(), format!("too few fields: {line:?}")));
        }
        if f[0].is_empty() || !f[0].bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(bad(what(), format!("bad message number {:?}", f[0])));
        }
        let offset: u64 = f[1].parse().map_err(|e| {
            FormatError::new(Format::Grib2, format!("{} offset {:?}", what(), f[1]), e)
        })?;
        if out.last().is_some_and(|last| offset < last.offset) {
            return Err(bad(what(), "offsets are not increasing"));
        }
        out.push(IdxLine {
            offset,
            var: f[3].to_string(),
            level: f[4].to_string(),
            forecast: f[5].trim_end_matches(':').to_string(),
        });
    }
    Ok(out)
}

/// The message ranges an inventory gives an object of `size` bytes: one per distinct offset,
/// each to the next (the last to the end of the object). An error when the inventory does not
/// fit the object: empty, a first offset other than 0, an offset past the object.
pub fn message_ranges(lines: &[IdxLine], size: u64) -> Result<Vec<Range<u64>>> {
    let mut starts: Vec<u64> = lines.iter().map(|l| l.offset).collect();
    starts.dedup();
    if starts.first() != Some(&0) {
        return Err(bad("inventory", "the first message is not at byte 0"));
    }
    if let Some(&last) = starts.last().filter(|&&last| last >= size) {
        return Err(bad(
            "inventory",
            format!("offset {last} is outside the {size}-byte object"),
        ));
    }
    let ends = starts.iter().skip(1).copied().chain([size]);
    Ok(starts.iter().zip(ends).map(|(&s, e)| s..e).collect())
}

/// The message ranges of an object of `size` bytes, or `None` when the inventory does not fit
/// it (see [`parse_idx`] and [`message_ranges`]): the caller then reads the file without a plan.
pub fn messages_from_idx(idx: &str, size: u64) -> Option<Vec<Range<u64>>> {
    message_ranges(&parse_idx(idx).ok()?, size).ok()
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

/// What a message holds, from its sections 1-5.
#[derive(Clone, Debug)]
pub struct Head {
    pub discipline: u8,
    pub category: u8,
    pub number: u8,
    /// Reference time, ISO 8601 UTC.
    pub reference_time: String,
    /// The end of a statistic's interval (product template 4.8), else reference time plus the
    /// forecast time, ISO 8601 UTC, when it decodes.
    pub valid_time: Option<String>,
    /// Section 3, for the grid's template values (`grib::GridDefinitionTemplateValues`).
    pub grid: grib::GridDefinition,
}

/// Bytes of a message's head that [`parse_head`] is likely to need.
pub const HEAD_BYTES: u64 = 4096;

/// Parses sections 0-5 from the first bytes of a message (`head`), which must reach the start
/// of section 6. The grib crate parses whole messages, so it is given a copy of the head with
/// empty sections 6 and 7.
pub fn parse_head(head: &[u8]) -> Result<Head> {
    section0_len(head)?;
    let mut pos = 16;
    let mut msg = head[..16].to_vec();
    let mut interval_end = None;
    let section = |num: u8| format!("section {num}");
    loop {
        if pos + 5 > head.len() {
            return Err(bad("message head", "longer than the bytes read").at(pos as u64));
        }
        let mut word = [0; 4];
        word.copy_from_slice(&head[pos..pos + 4]);
        let len = u32::from_be_bytes(word) as usize;
        let num = head[pos + 4];
        if len < 5 {
            return Err(bad(section(num), format!("length {len}")).at(pos as u64));
        }
        if num >= 6 {
            if num != 6 {
                return Err(bad(section(6), "missing").at(pos as u64));
            }
            let indicator = head.get(pos + 5).copied().unwrap_or(255);
            msg.extend_from_slice(&[0, 0, 0, 6, 6, indicator]);
            break;
        }
        if pos + len > head.len() {
            return Err(bad(section(num), "longer than the bytes read").at(pos as u64));
        }
        if num == 4 {
            interval_end = statistical_end(&head[pos..pos + len]);
        }
        msg.extend_from_slice(&head[pos..pos + len]);
        pos += len;
    }
    msg.extend_from_slice(&[0, 0, 0, 5, 7]);
    msg.extend_from_slice(b"7777");
    let total = msg.len() as u64;
    msg[8..16].copy_from_slice(&total.to_be_bytes());
    let grib2 =
        grib::from_bytes(msg).map_err(|e| FormatError::new(Format::Grib2, "message head", e))?;
    let (_, sub) = grib2
        .iter()
        .next()
        .ok_or_else(|| bad("message head", "no fields"))?;
    let discipline = sub.indicator().discipline;
    let prod = sub.prod_def();
    let category = prod
        .parameter_category()
        .ok_or_else(|| bad(section(4), "no parameter category"))?;
    let number = prod
        .parameter_number()
        .ok_or_else(|| bad(section(4), "no parameter number"))?;
    let t = sub.identification().ref_time_unchecked();
    let reference_time = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    // An accumulation or other statistic is valid at the end of its interval.
    let valid_time = interval_end.or_else(|| {
        sub.temporal_info()
            .forecast_time_target
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    });
    Ok(Head {
        discipline,
        category,
        number,
        reference_time,
        valid_time,
        grid: sub.grid_def().clone(),
    })
}

/// The end of the overall time interval of product template 4.8 (octets 35-41 of section 4),
/// ISO 8601 UTC; `None` for other templates.
fn statistical_end(sect4: &[u8]) -> Option<String> {
    let template = u16::from_be_bytes(sect4.get(7..9)?.try_into().ok()?);
    let t = sect4.get(34..41).filter(|_| template == 8)?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        u16::from_be_bytes([t[0], t[1]]),
        t[2],
        t[3],
        t[4],
        t[5],
        t[6]
    ))
}

/// What GRIB2 grid template `3.n` is (code table 3.1), for messages.
pub fn template_name(n: u16) -> &'static str {
    match n {
        0 => "latitude/longitude",
        1 => "rotated latitude/longitude",
        2 | 3 => "stretched latitude/longitude",
        10 => "Mercator",
        20 => "polar stereographic",
        30 => "Lambert conformal",
        31 => "Albers equal area",
        40 => "Gaussian latitude/longitude",
        41..=43 => "rotated or stretched Gaussian latitude/longitude",
        50..=53 => "spherical harmonics",
        90 => "space view",
        101 => "unstructured",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::touched;

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
        let e = message_at(&ed1, 0, size).unwrap_err();
        assert_eq!(
            (e.format(), e.offset()),
            (crate::error::Format::Grib2, Some(7))
        );
        assert_eq!(
            e.to_string(),
            "unreadable GRIB2 section 0 at byte 7: GRIB edition 1 is not 2"
        );
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
            messages_from_idx("1:0:d=1:A:x:f:\n1.1:0:d=1:B:x:f:\n2:10:d=1:C:x:f", 20).unwrap(),
            vec![0..10, 10..20]
        );
        assert_eq!(
            messages_from_idx("1:0:d=1:A:x:f:\n2:0:d=1:B:x:f:\n3:10:d=1:C:x:f:", 20).unwrap(),
            vec![0..10, 10..20]
        );
        assert!(messages_from_idx("1:5:d=1:A:x:f:", 20).is_none());
        assert!(messages_from_idx("1:0:d=1:A:x:f:\n2:30:d=1:B:x:f:", 20).is_none());
        assert!(messages_from_idx("garbage", 20).is_none());
        // Fewer than wgrib2's six fields, a bad message number, decreasing offsets: refused.
        assert!(messages_from_idx("1:0:a\n2:10:b", 20).is_none());
        assert!(messages_from_idx("x:0:d=1:A:x:f:", 20).is_none());
        assert!(messages_from_idx("1:10:d=1:A:x:f:\n2:0:d=1:B:x:f:", 20).is_none());
        let lines = parse_idx("1:0:d=1:A:x:f:\n1.2:0:d=1:B:y:g:").unwrap();
        assert_eq!((lines[1].var.as_str(), lines[1].level.as_str()), ("B", "y"));
        assert_eq!(message_ranges(&lines, 5).unwrap(), vec![0..5]);
        assert!(is_grib_name("hrrr.t00z.wrfsfcf00.grib2") && !is_grib_name("x.grib2.idx"));
    }
}
