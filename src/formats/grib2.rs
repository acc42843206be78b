//! GRIB2 (WMO FM 92 edition 2) layout: message boundaries, from a wgrib2-style `.idx` sidecar
//! (`msgnum:byte_offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:`) or, without one, from the messages'
//! own section 0 (the `GRIB` magic, the edition and the total length in 16 bytes); and what a
//! message holds, from the sections of its head (0-5).
//!
//! An inventory has no lengths: a message ends where the next starts and the last runs to the
//! end of the object. Several inventory lines may share one offset (sub-messages of one GRIB
//! message, `N.1`, `N.2`); they are one range.
//!
//! Without an inventory the boundaries are found by hops ([`step`]): a small probe at a
//! message's start gives its length, which gives the next start. Up to [`MAX_GAP`] bytes of
//! anything else before a `GRIB` magic are skipped (ECMWF's padding to 120 bytes, Fortran
//! record markers), a GRIB1 message is stepped over whole by its own length, and bytes after
//! the last message that hold no magic end the walk. A message of several fields (sections 2-7
//! repeated) is one range; [`field_sections`] finds its fields, counted as eccodes counts them
//! (each field one message, in file order). With an inventory, each offset is one range and the
//! same field walk numbers its fields, so both paths see the same fields.
//!
//! How strict: one inventory rule for every consumer, the strictest that real inventories
//! (wgrib2 `-s`, NOAA's and the cloud mirrors' `.idx` files) pass: each line has the six
//! fields wgrib2 writes, a message number of digits and dots and an integer offset; offsets
//! never decrease; the first is 0 and every one lies inside the object. Anything else means
//! the inventory does not describe the object (planners and views then walk section 0, the
//! views with a log line saying why).
//!
//! The sections themselves are parsed by the `grib` crate (sections 1-5 of the head through
//! [`parse_heads`], values by the views). Hand-written here is what the crate cannot do: it
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

/// Bytes of anything but a message (padding, record markers, junk) scanned past for the next
/// `GRIB` magic. ECMWF's MARS pads every message to a multiple of 120 bytes (up to 119 bytes
/// after one), Fortran unformatted files put a 4- or 8-byte record marker after one message and
/// before the next (8 to 16 bytes); 4 KiB covers those with room and bounds the scan of an
/// object that is not GRIB at all.
pub const MAX_GAP: usize = 4096;

/// Bytes read first at a supposed message start: section 0 behind up to 240 bytes of padding
/// (two ECMWF padding units, or record markers), which decides the step for real files.
pub const PROBE_BYTES: u64 = 256;

/// Bytes from a supposed message start that always decide the step: section 0 after
/// [`MAX_GAP`] bytes of anything else.
pub const WINDOW_BYTES: u64 = MAX_GAP as u64 + 16;

/// Where the `GRIB` magic starts within the first [`MAX_GAP`] bytes of `buf`.
pub fn find_magic(buf: &[u8]) -> Option<usize> {
    buf.windows(4).take(MAX_GAP + 1).position(|w| w == b"GRIB")
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

/// Total length of a GRIB1 message from its section 0 (octets 5-7). ECMWF writes messages over
/// 8 MiB with the top bit set and the length in units of 120 bytes (the message padded to
/// that), which is where the next message starts.
fn grib1_len(head: &[u8]) -> u64 {
    let len = u64::from(head[4]) << 16 | u64::from(head[5]) << 8 | u64::from(head[6]);
    if len & 0x80_0000 != 0 {
        (len & 0x7f_ffff) * 120
    } else {
        len
    }
}

/// The bytes from `pos` to the end of an object of `size` bytes when they are too few to hold a
/// message (section 0 is 16 bytes): trailing bytes, which a walk need not read.
pub fn short_tail(pos: u64, size: u64) -> Option<Range<u64>> {
    (size.saturating_sub(pos) < 16).then_some(pos..size)
}

/// One step of the walk over an object's messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A GRIB2 message.
    Grib2(Range<u64>),
    /// A message of another edition (GRIB1), skipped whole.
    Other { edition: u8, range: Range<u64> },
    /// No message from here to the end of the object: `trailing` holds none (padding, a record
    /// marker, junk).
    End { trailing: Range<u64> },
    /// The bytes given do not decide: read this range (from the same start) and step again.
    More(Range<u64>),
}

/// The next step of the walk over an object of `size` bytes from `pos`, given `buf`, the bytes
/// from `pos` (a [`PROBE_BYTES`] probe first, a [`WINDOW_BYTES`] window when the step says
/// [`Step::More`]; fewer at the end of the object). Up to [`MAX_GAP`] bytes before the `GRIB`
/// magic are skipped. An error says why the walk cannot go on: no magic within [`MAX_GAP`]
/// bytes, an edition other than 1 or 2, a length that runs past the object (a truncated
/// message); the messages before it stand.
pub fn step(buf: &[u8], pos: u64, size: u64) -> Result<Step> {
    let at_end = pos + buf.len() as u64 >= size;
    let window = (pos + WINDOW_BYTES).min(size);
    let more = (buf.len() as u64) < window - pos;
    let Some(skip) = find_magic(buf) else {
        return if at_end {
            Ok(Step::End {
                trailing: pos..size,
            })
        } else if more {
            Ok(Step::More(pos..window))
        } else {
            Err(bad(
                "section 0",
                format!("no GRIB magic within {MAX_GAP} bytes of byte {pos}"),
            )
            .at(pos))
        };
    };
    let start = pos + skip as u64;
    let Some(head) = buf.get(skip..skip + 16) else {
        return if more && !at_end {
            Ok(Step::More(pos..window))
        } else {
            Err(bad(
                "section 0",
                format!("GRIB magic at byte {start} with fewer than 16 bytes after it: a truncated message"),
            )
            .at(start))
        };
    };
    let edition = head[7];
    let len = match edition {
        1 => grib1_len(head),
        2 => section0_len(head)?,
        e => {
            return Err(
                bad("section 0", format!("GRIB edition {e} is neither 1 nor 2")).at(start + 7),
            );
        }
    };
    if len < 16 || start.checked_add(len).is_none_or(|end| end > size) {
        return Err(bad(
            "section 0",
            format!(
                "message at byte {start} has length {len}, past the end of the {size}-byte object \
                 (a truncated message)"
            ),
        )
        .at(start));
    }
    let range = start..start + len;
    Ok(if edition == 2 {
        Step::Grib2(range)
    } else {
        Step::Other { edition, range }
    })
}

/// The whole walk over an object held in memory: the steps (no [`Step::More`]) and the error
/// the walk stopped at, if any. Callers that read ranges drive [`step`] themselves.
pub fn walk(data: &[u8]) -> (Vec<Step>, Option<FormatError>) {
    let size = data.len() as u64;
    let (mut out, mut pos) = (Vec::new(), 0u64);
    loop {
        if let Some(trailing) = short_tail(pos, size) {
            if !trailing.is_empty() {
                out.push(Step::End { trailing });
            }
            return (out, None);
        }
        let mut want = (pos + PROBE_BYTES).min(size);
        let s = loop {
            match step(&data[pos as usize..want as usize], pos, size) {
                Ok(Step::More(r)) if r.end > want => want = r.end,
                other => break other,
            }
        };
        match s {
            Ok(Step::End { trailing }) => {
                if !trailing.is_empty() {
                    out.push(Step::End { trailing });
                }
                return (out, None);
            }
            Ok(Step::Grib2(r)) => {
                pos = r.end;
                out.push(Step::Grib2(r));
            }
            Ok(Step::Other { edition, range }) => {
                pos = range.end;
                out.push(Step::Other { edition, range });
            }
            Ok(Step::More(_)) => {
                return (
                    out,
                    Some(bad("section 0", "the walk asks for no new bytes").at(pos)),
                );
            }
            Err(e) => return (out, Some(e)),
        }
    }
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

/// What one field of a message holds, from its sections 1-6.
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
    /// Data representation template number (section 5, code table 5.0).
    pub packing: u16,
    /// Bit-map indicator (section 6, code table 6.0): 0 a bitmap follows, 255 none.
    pub bitmap: u8,
}

/// Bytes of a message's head that [`parse_heads`] is likely to need.
pub const HEAD_BYTES: u64 = 4096;

/// Where the sections of one field lie in its message (byte ranges from the message's start).
/// Sections 2-7 may repeat within a message (WMO regulation 92.1.3): a field has the latest
/// section of each number before its section 7, section 2 only when the message has one. The
/// ranges of sections 6 and 7 may reach past the bytes a head holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSections {
    pub s1: Range<usize>,
    pub s2: Option<Range<usize>>,
    pub s3: Range<usize>,
    pub s4: Range<usize>,
    pub s5: Range<usize>,
    pub s6: Range<usize>,
    pub s7: Range<usize>,
}

/// Fields of a message, or which bytes (offsets from its start) are needed to find them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Walked<T> {
    Fields(Vec<T>),
    /// More than the bytes given: this range, within the message and ending past the bytes
    /// given. The walk never reads the bytes between the end of those given and the range's
    /// start (they are inside the body of a section 6 or 7, a bitmap or packed data), so a
    /// caller may give them as anything, e.g. zeros, rather than read them.
    Need(Range<u64>),
}

/// The fields of the message of `len` bytes whose first bytes are `buf`: each field's sections,
/// needing sections 1-5 whole and the first 6 bytes of sections 6 and 7 (their lengths and the
/// bit-map indicator).
pub fn field_sections(buf: &[u8], len: u64) -> Result<Walked<FieldSections>> {
    section0_len(buf)?;
    let section = |num: u8| format!("section {num}");
    let mut latest: [Option<Range<usize>>; 7] = Default::default();
    let mut fields = Vec::new();
    let mut pos = 16usize;
    let need = |from: usize, to: usize| {
        let to = (to as u64).min(len);
        Ok(Walked::Need((from as u64).min(to)..to))
    };
    loop {
        if pos as u64 + 4 == len {
            if buf.get(pos..pos + 4).is_some_and(|end| end != b"7777") {
                return Err(bad("section 8", "no 7777 at the end of the message").at(pos as u64));
            }
            break;
        }
        // A section header is 5 bytes and 6 are read (section 6's bit-map indicator); any
        // section leaves 4 bytes for section 8 after it.
        if pos as u64 + 6 > len {
            return Err(bad("message", "its sections run past its length").at(pos as u64));
        }
        let Some(h) = buf.get(pos..pos + 6) else {
            return need(pos, pos + 6);
        };
        let slen = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let num = h[4];
        // Section 6 holds at least its bit-map indicator; section 7 may be empty (a constant).
        if slen < 5 + usize::from(num == 6) || pos as u64 + slen as u64 > len - 4 {
            return Err(bad(section(num), format!("length {slen}")).at(pos as u64));
        }
        match num {
            1..=5 if buf.len() < pos + slen => return need(buf.len(), pos + slen),
            1..=6 => latest[usize::from(num)] = Some(pos..pos + slen),
            7 => {
                let get = |n: usize| {
                    latest[n].clone().ok_or_else(|| {
                        bad(section(n as u8), "missing before section 7").at(pos as u64)
                    })
                };
                fields.push(FieldSections {
                    s1: get(1)?,
                    s2: latest[2].clone(),
                    s3: get(3)?,
                    s4: get(4)?,
                    s5: get(5)?,
                    s6: get(6)?,
                    s7: pos..pos + slen,
                });
            }
            n => return Err(bad(section(n), "not a GRIB2 section number").at(pos as u64)),
        }
        pos += slen;
    }
    if fields.is_empty() {
        return Err(bad("message", "no fields (no section 7)"));
    }
    Ok(Walked::Fields(fields))
}

/// Parses every field of a message from its first bytes (`buf`, see [`field_sections`]). The
/// grib crate parses whole messages, so each field is given to it as a copy of its sections 0-5
/// with empty sections 6 and 7.
pub fn parse_heads(buf: &[u8], len: u64) -> Result<Walked<Head>> {
    let fields = match field_sections(buf, len)? {
        Walked::Fields(f) => f,
        Walked::Need(n) => return Ok(Walked::Need(n)),
    };
    fields
        .iter()
        .map(|f| head_of(buf, f))
        .collect::<Result<Vec<_>>>()
        .map(Walked::Fields)
}

/// One field's head from the message bytes holding its sections 0-5 and 6's first bytes.
fn head_of(buf: &[u8], f: &FieldSections) -> Result<Head> {
    let section = |num: u8| format!("section {num}");
    let mut msg = buf[..16].to_vec();
    for r in [
        Some(&f.s1),
        f.s2.as_ref(),
        Some(&f.s3),
        Some(&f.s4),
        Some(&f.s5),
    ]
    .into_iter()
    .flatten()
    {
        msg.extend_from_slice(&buf[r.clone()]);
    }
    let bitmap = buf[f.s6.start + 5];
    let packing = buf[f.s5.clone()]
        .get(9..11)
        .map(|t| u16::from_be_bytes([t[0], t[1]]))
        .ok_or_else(|| bad(section(5), "shorter than 11 bytes").at(f.s5.start as u64))?;
    let interval_end = statistical_end(&buf[f.s4.clone()]);
    msg.extend_from_slice(&[0, 0, 0, 6, 6, bitmap]);
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
        packing,
        bitmap,
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
        let (data, eccodes) = hrrr();
        let size = data.len() as u64;
        let at = |k: usize, key: &str| eccodes["messages"][k][key].as_u64().unwrap();
        let (end1, start2) = (at(0, "length"), at(1, "offset"));
        let end2 = start2 + at(1, "length");
        let (mut probes, mut messages, mut pos) = (vec![], vec![], 0);
        loop {
            let probe = pos..(pos + PROBE_BYTES).min(size);
            match step(&data[probe.start as usize..probe.end as usize], pos, size).unwrap() {
                Step::Grib2(m) => {
                    pos = m.end;
                    probes.push(probe);
                    messages.push(m);
                }
                Step::End { trailing } => {
                    assert_eq!(trailing, end2..size);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(messages, vec![0..end1, start2..end2]);
        assert!(
            start2 == end1 + 1 && end2 == size - 1,
            "one stray byte after each"
        );
        let p = PROBE_BYTES;
        let units = hop_units(&probes, &messages, Some(size));
        assert_eq!(
            units,
            vec![0..p, p..end1, end1..end1 + p, end1 + p..end2, end2..size]
        );
        assert_eq!(touched(&units, end1..size), 2..5);
        // A partial walk leaves the rest unplanned; junk and truncated messages are refused.
        assert_eq!(
            hop_units(&probes[..1], &messages[..1], None),
            vec![0..p, p..end1]
        );
        let junk = vec![0; WINDOW_BYTES as usize];
        assert_eq!(
            step(&junk[..80], 0, size).unwrap(),
            Step::More(0..WINDOW_BYTES)
        );
        assert!(step(&junk, 0, size).is_err());
        assert!(step(&data[..80], 0, 1000).is_err());
        let mut ed3 = data[..80].to_vec();
        ed3[7] = 3;
        let e = step(&ed3, 0, size).unwrap_err();
        assert_eq!(
            (e.format(), e.offset()),
            (crate::error::Format::Grib2, Some(7))
        );
        assert_eq!(
            e.to_string(),
            "unreadable GRIB2 section 0 at byte 7: GRIB edition 3 is neither 1 nor 2"
        );
        // Section 0 cut short inside the object: more bytes decide.
        assert_eq!(
            step(&data[..10], 0, size).unwrap(),
            Step::More(0..WINDOW_BYTES)
        );
        assert!(step(&data[..10], 0, 10).is_err());
    }

    fn hrrr() -> (Vec<u8>, serde_json::Value) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/grib2/hrrr.t00z.wrfsfcf12.grib2");
        let data = std::fs::read(&path).unwrap();
        let eccodes = serde_json::from_str(
            &std::fs::read_to_string(path.with_extension("grib2.json")).unwrap(),
        )
        .unwrap();
        (data, eccodes)
    }

    /// A GRIB2 message of `len` bytes as far as section 0 and the end marker go.
    fn grib2_of(len: usize) -> Vec<u8> {
        let mut m = b"GRIB\0\0\0\x02".to_vec();
        m.extend_from_slice(&(len as u64).to_be_bytes());
        m.resize(len - 4, 0);
        m.extend_from_slice(b"7777");
        m
    }

    /// A GRIB1 message of `len` bytes (24-bit length in octets 5-7, edition 1 in octet 8).
    fn grib1_of(len: usize) -> Vec<u8> {
        let mut m = b"GRIB".to_vec();
        m.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        m.push(1);
        m.resize(len - 4, 0);
        m.extend_from_slice(b"7777");
        m
    }

    /// The ranges of GRIB2 messages a walk found, and the other steps.
    fn grib2_ranges(steps: &[Step]) -> Vec<Range<u64>> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Grib2(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_walk_skips_padding_record_markers_and_grib1() {
        // ECMWF: every message padded to a multiple of 120 bytes.
        let mut f = Vec::new();
        let mut want = Vec::new();
        for len in [1000, 361, 2401] {
            let start = f.len() as u64;
            f.extend(grib2_of(len));
            want.push(start..start + len as u64);
            f.resize(f.len().div_ceil(120) * 120, 0);
        }
        let (steps, err) = walk(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(grib2_ranges(&steps), want);
        assert_eq!(
            steps.last(),
            Some(&Step::End {
                trailing: 3961..4080
            })
        );

        // Fortran unformatted records: a 4-byte length before and after each message (and
        // 8-byte ones), little- or big-endian.
        for (width, le) in [(4, false), (4, true), (8, true)] {
            let (mut f, mut want) = (Vec::new(), Vec::new());
            for len in [300, 20, 5000] {
                let m = grib2_of(len);
                let marker = |n: usize| -> Vec<u8> {
                    let b = (n as u64).to_be_bytes();
                    let b = &b[8 - width..];
                    if le {
                        b.iter().rev().copied().collect()
                    } else {
                        b.to_vec()
                    }
                };
                f.extend(marker(len));
                want.push(f.len() as u64..(f.len() + len) as u64);
                f.extend(m);
                f.extend(marker(len));
            }
            let (steps, err) = walk(&f);
            assert!(err.is_none(), "{width} {le}: {err:?}");
            assert_eq!(grib2_ranges(&steps), want, "{width} {le}");
            let size = f.len() as u64;
            assert_eq!(
                steps.last(),
                Some(&Step::End {
                    trailing: size - width as u64..size
                })
            );
        }

        // GRIB1 mixed in: skipped whole, by its 24-bit length; a real GRIB2 message after it.
        let (hrrr, _) = hrrr();
        let m1 = section0_len(&hrrr).unwrap() as usize;
        let mut f = grib1_of(500);
        f.extend(&hrrr[..m1]);
        f.extend(grib1_of(77));
        let (steps, err) = walk(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            steps,
            vec![
                Step::Other {
                    edition: 1,
                    range: 0..500
                },
                Step::Grib2(500..500 + m1 as u64),
                Step::Other {
                    edition: 1,
                    range: 500 + m1 as u64..577 + m1 as u64
                },
            ]
        );
        // ECMWF's large GRIB1: the top bit set, the length in 120-byte units.
        let mut big = grib1_of(240);
        big[4..7].copy_from_slice(&[0x80, 0, 2]);
        assert_eq!(
            step(&big, 0, 240).unwrap(),
            Step::Other {
                edition: 1,
                range: 0..240
            }
        );
    }

    #[test]
    fn the_walk_stops_at_junk_and_truncated_tails_keeping_what_it_found() {
        // Junk longer than MAX_GAP before the next message: the first message stands.
        let mut f = grib2_of(100);
        f.extend(vec![7u8; MAX_GAP + 1]);
        f.extend(grib2_of(100));
        let (steps, err) = walk(&f);
        assert_eq!(grib2_ranges(&steps), vec![0..100]);
        assert!(
            err.unwrap()
                .to_string()
                .contains("no GRIB magic within 4096 bytes of byte 100")
        );
        // Exactly MAX_GAP bytes of junk are skipped.
        let mut f = grib2_of(100);
        f.extend(vec![7u8; MAX_GAP]);
        f.extend(grib2_of(100));
        let (steps, err) = walk(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(grib2_ranges(&steps), vec![0..100, 4196..4296]);
        // A truncated last message: a length past the end, or a section 0 cut short.
        let mut f = grib2_of(100);
        f.extend(&grib2_of(100)[..60]);
        let (steps, err) = walk(&f);
        assert_eq!(grib2_ranges(&steps), vec![0..100]);
        assert!(err.unwrap().to_string().contains("truncated"));
        // Fewer than 16 bytes cannot hold a message: trailing bytes, whatever they are; a magic
        // with fewer than 16 bytes after it further from the end is a truncated section 0.
        let mut f = grib2_of(100);
        f.extend(&grib2_of(100)[..10]);
        let (steps, err) = walk(&f);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(steps[1], Step::End { trailing: 100..110 });
        let mut f = grib2_of(100);
        f.extend(vec![0; 10]);
        f.extend(&grib2_of(100)[..10]);
        let (steps, err) = walk(&f);
        assert_eq!(grib2_ranges(&steps), vec![0..100]);
        assert!(err.unwrap().to_string().contains("fewer than 16 bytes"));
        // Trailing bytes without a magic end the walk; nothing at all is an empty walk.
        let mut f = grib2_of(100);
        f.extend(b"0123456789abcdefXYZ");
        let (steps, err) = walk(&f);
        assert!(err.is_none());
        assert_eq!(steps[1], Step::End { trailing: 100..119 });
        let (steps, err) = walk(&[]);
        assert!(steps.is_empty() && err.is_none());
    }

    /// A real message's fields; sections 2-7 repeated make a second field; heads that stop
    /// short ask for the bytes that decide.
    #[test]
    fn fields_of_a_message_follow_repeated_sections() {
        let (hrrr, _) = hrrr();
        let len = section0_len(&hrrr).unwrap();
        let msg = &hrrr[..len as usize];
        let Walked::Fields(f) = field_sections(msg, len).unwrap() else {
            panic!("whole message")
        };
        assert_eq!(f.len(), 1);
        let f = f[0].clone();
        assert_eq!((f.s7.end as u64, f.s2), (len - 4, None));
        // A two-field message: sections 4-7 again before the end marker.
        let mut two = msg[..f.s7.end].to_vec();
        for r in [&f.s4, &f.s5, &f.s6, &f.s7] {
            two.extend_from_slice(&msg[r.clone()]);
        }
        two.extend_from_slice(b"7777");
        let total = two.len() as u64;
        two[8..16].copy_from_slice(&total.to_be_bytes());
        let Walked::Fields(heads) = parse_heads(&two, total).unwrap() else {
            panic!("whole message")
        };
        assert_eq!(heads.len(), 2);
        assert_eq!(heads[1].packing, heads[0].packing);
        // The first 4 KiB do not reach section 7's header of the second field.
        let head = &two[..HEAD_BYTES as usize];
        match parse_heads(head, total).unwrap() {
            // The second field's section 4 header, past field 1's data, which is not needed.
            Walked::Need(n) => assert_eq!(n, f.s7.end as u64..f.s7.end as u64 + 6),
            Walked::Fields(_) => panic!("cannot know the fields from 4 KiB"),
        }
        // A section number out of range or a section longer than the message: refused.
        let mut bad7 = two.clone();
        bad7[f.s4.start + 4] = 9;
        assert!(field_sections(&bad7, total).is_err());
        let mut bad_end = two.clone();
        let n = bad_end.len();
        bad_end[n - 1] = b'X';
        assert!(field_sections(&bad_end, total).is_err());
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

    /// Found by fuzzing (fuzz target `grib2_sections`): a message whose last bytes are too few
    /// for a section header. The walk asked for bytes it had been given (a caller feeding it
    /// would never get further); it is an error.
    #[test]
    fn a_section_header_cut_by_the_message_end_is_an_error() {
        let mut m = b"GRIB\0\0\0\x02".to_vec();
        m.extend_from_slice(&21u64.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 5, 1]);
        assert!(field_sections(&m, 21).is_err());
    }
}
