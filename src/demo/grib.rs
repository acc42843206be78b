//! HRRR-like GRIB2 file (3 messages) and its wgrib2-style `.idx` inventory.
//!
//! Each message is complete and self-contained: section 0 (indicator, total length), 1
//! (identification, NCEP, reference time 2020-12-14 00z), 3 (template 3.30 Lambert
//! conformal, HRRR's projection on a 160x120 3 km grid), 4 (template 4.0, or 4.8 for the
//! accumulation), 5 (template 5.0 simple packing), 6 (no bitmap), 7 (packed data), 8
//! (`7777`). All multi-byte integers are big endian; signed ones use GRIB's sign-magnitude
//! form. Values are stored in scanning mode 0x40: west to east, rows south to north.
//!
//! The `.idx` lists `msgnum:offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:` per message; a message
//! runs to the next offset (the last to end of file).

use anyhow::{Result, ensure};

use super::{Lcc, Output, hash_noise};

const NX: usize = 160;
const NY: usize = 120;
/// Grid spacing in metres (HRRR's 3 km).
const DX: f64 = 3000.0;
/// GRIB2 shape of earth 6: sphere of radius 6,371,229 m.
const EARTH_RADIUS: f64 = 6_371_229.0;
/// LaD = Latin1 = Latin2 (tangent cone) and LoV of HRRR.
const LATIN: f64 = 38.5;
const LOV: f64 = 262.5;
/// Reference time: year, month, day, hour.
const REF: (u16, u8, u8, u8) = (2020, 12, 14, 0);

/// HRRR's projection; the demo grid is centred on (LaD, LoV).
fn projection() -> Lcc {
    Lcc::new(LATIN, LATIN, LATIN, LOV - 360.0, EARTH_RADIUS)
}

fn axis_coord(k: usize, n: usize) -> f64 {
    (k as f64 - (n - 1) as f64 / 2.0) * DX
}

/// One GRIB2 message to encode.
struct Field {
    /// wgrib2 inventory names.
    var: &'static str,
    level: &'static str,
    forecast: &'static str,
    category: u8,
    number: u8,
    /// Type of first fixed surface (code table 4.5), scale factor, scaled value.
    surface: (u8, u8, u32),
    /// Accumulation length in hours from the reference time (template 4.8), if any.
    accumulation_hours: Option<u8>,
    decimal_scale: i16,
    bits: u8,
    values: Vec<f64>,
}

/// Plausible HRRR fields for a December evening, on the demo grid in scanning order.
fn fields() -> Vec<Field> {
    let proj = projection();
    let n = NX * NY;
    let (mut tmp, mut ugrd, mut apcp) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for j in 0..NY {
        for i in 0..NX {
            let (x, y) = (axis_coord(i, NX), axis_coord(j, NY));
            let (lat, lon) = proj.inverse(x, y);
            let (ju, iu) = (j as u64, i as u64);
            let wave = (0.6 * (lon + 97.5) + 0.4 * (lat - 38.5)).sin();
            tmp.push(271.0 - 0.9 * (lat - 38.5) + 4.0 * wave + 0.4 * hash_noise(0x2d, 0, ju, iu));
            ugrd.push(
                6.0 * (0.5 * (lat - 38.5)).cos() * (0.35 * (lon + 97.5)).sin()
                    + 2.5
                    + 0.8 * hash_noise(0x2d, 1, ju, iu),
            );
            let (xk, yk) = (x / 1000.0, y / 1000.0);
            let storm = 9.0
                * (-((xk - 60.0).powi(2) + (yk + 30.0).powi(2)) / (2.0 * 55.0f64.powi(2))).exp();
            let v = storm - 1.0;
            apcp.push(if v > 0.0 {
                v * (1.0 + 0.3 * hash_noise(0x2d, 2, ju, iu))
            } else {
                0.0
            });
        }
    }
    vec![
        Field {
            var: "TMP",
            level: "2 m above ground",
            forecast: "anl",
            category: 0,
            number: 0,
            surface: (103, 0, 2),
            accumulation_hours: None,
            decimal_scale: 2,
            bits: 16,
            values: tmp,
        },
        Field {
            var: "UGRD",
            level: "10 m above ground",
            forecast: "anl",
            category: 2,
            number: 2,
            surface: (103, 0, 10),
            accumulation_hours: None,
            decimal_scale: 2,
            bits: 14,
            values: ugrd,
        },
        Field {
            var: "APCP",
            level: "surface",
            forecast: "0-1 hour acc fcst",
            category: 1,
            number: 8,
            surface: (1, 0, 0),
            accumulation_hours: Some(1),
            decimal_scale: 3,
            bits: 12,
            values: apcp,
        },
    ]
}

/// Writes the GRIB2 file at `rel` and its inventory at `rel` + `.idx`.
pub(crate) fn write_demo_grib(out: &mut Output, rel: &str) -> Result<()> {
    let (file, idx) = build_grib()?;
    if let Some((dir, _)) = rel.rsplit_once('/') {
        out.mkdir(dir)?;
    }
    out.write(rel, &file)?;
    out.write(&format!("{rel}.idx"), idx.as_bytes())
}

/// Returns (GRIB2 bytes, `.idx` text).
fn build_grib() -> Result<(Vec<u8>, String)> {
    let (y, m, d, h) = REF;
    let date = format!("{y:04}{m:02}{d:02}{h:02}");
    let mut file = Vec::new();
    let mut idx = String::new();
    for (k, f) in fields().iter().enumerate() {
        idx.push_str(&format!(
            "{}:{}:d={date}:{}:{}:{}:\n",
            k + 1,
            file.len(),
            f.var,
            f.level,
            f.forecast
        ));
        file.extend(encode_message(f)?);
    }
    Ok((file, idx))
}

/// GRIB2 sign-magnitude encodings.
fn signed32(v: i32) -> u32 {
    if v < 0 {
        0x8000_0000 | v.unsigned_abs()
    } else {
        v as u32
    }
}
fn signed16(v: i16) -> u16 {
    if v < 0 {
        0x8000 | v.unsigned_abs()
    } else {
        v as u16
    }
}

/// Degrees to GRIB2 micro-degrees.
fn micro(deg: f64) -> i32 {
    (deg * 1e6).round() as i32
}

/// Prepends the 4-byte length and section number to a section body.
fn section(number: u8, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(body.len() + 5);
    s.extend_from_slice(&((body.len() + 5) as u32).to_be_bytes());
    s.push(number);
    s.extend_from_slice(body);
    s
}

fn encode_message(f: &Field) -> Result<Vec<u8>> {
    ensure!(
        f.values.len() == NX * NY,
        "{}: wrong number of values",
        f.var
    );
    let (year, month, day, hour) = REF;

    // Section 1: identification.
    let mut s1 = Vec::new();
    s1.extend_from_slice(&7u16.to_be_bytes()); // centre: NCEP
    s1.extend_from_slice(&0u16.to_be_bytes()); // sub-centre
    s1.push(2); // master tables version
    s1.push(1); // local tables version
    s1.push(1); // significance of reference time: start of forecast
    s1.extend_from_slice(&year.to_be_bytes());
    s1.extend_from_slice(&[month, day, hour, 0, 0]);
    s1.push(0); // production status: operational
    s1.push(1); // type of data: forecast products

    // Section 3: grid definition, template 3.30 (Lambert conformal).
    let proj = projection();
    let (la1, lo1) = proj.inverse(axis_coord(0, NX), axis_coord(0, NY));
    let mut s3 = Vec::new();
    s3.push(0); // source: code table 3.1
    s3.extend_from_slice(&((NX * NY) as u32).to_be_bytes());
    s3.push(0); // no optional list of numbers
    s3.push(0);
    s3.extend_from_slice(&30u16.to_be_bytes());
    s3.push(6); // shape of earth: sphere R = 6,371,229 m
    s3.extend_from_slice(&[0; 15]); // radius / axes scale factors and values (unused for 6)
    s3.extend_from_slice(&(NX as u32).to_be_bytes());
    s3.extend_from_slice(&(NY as u32).to_be_bytes());
    s3.extend_from_slice(&signed32(micro(la1)).to_be_bytes());
    s3.extend_from_slice(&signed32(micro(lo1.rem_euclid(360.0))).to_be_bytes());
    s3.push(0x08); // resolution/component flags: u/v relative to the grid (as HRRR)
    s3.extend_from_slice(&signed32(micro(LATIN)).to_be_bytes()); // LaD
    s3.extend_from_slice(&signed32(micro(LOV)).to_be_bytes()); // LoV
    s3.extend_from_slice(&((DX * 1000.0) as u32).to_be_bytes()); // Dx in mm
    s3.extend_from_slice(&((DX * 1000.0) as u32).to_be_bytes()); // Dy in mm
    s3.push(0); // projection centre: north pole
    s3.push(0x40); // scanning: +i, +j (south to north), i consecutive
    s3.extend_from_slice(&signed32(micro(LATIN)).to_be_bytes()); // Latin1
    s3.extend_from_slice(&signed32(micro(LATIN)).to_be_bytes()); // Latin2
    s3.extend_from_slice(&signed32(micro(-90.0)).to_be_bytes()); // southern pole lat
    s3.extend_from_slice(&0u32.to_be_bytes()); // southern pole lon

    // Section 4: product definition, template 4.0 or 4.8.
    let mut s4 = Vec::new();
    s4.extend_from_slice(&0u16.to_be_bytes()); // no coordinate values
    let template: u16 = if f.accumulation_hours.is_some() { 8 } else { 0 };
    s4.extend_from_slice(&template.to_be_bytes());
    s4.push(f.category);
    s4.push(f.number);
    s4.push(2); // generating process: forecast
    s4.push(0); // background process
    s4.push(83); // analysis/forecast process id (HRRR)
    s4.extend_from_slice(&0u16.to_be_bytes()); // hours after cut-off
    s4.push(0); // minutes after cut-off
    s4.push(1); // unit of time range: hour
    s4.extend_from_slice(&0u32.to_be_bytes()); // forecast time
    s4.push(f.surface.0);
    s4.push(f.surface.1);
    s4.extend_from_slice(&f.surface.2.to_be_bytes());
    s4.push(255); // no second fixed surface
    s4.push(0);
    s4.extend_from_slice(&0u32.to_be_bytes());
    if let Some(hours) = f.accumulation_hours {
        ensure!(
            u32::from(hour) + u32::from(hours) < 24,
            "accumulation crosses a day"
        );
        s4.extend_from_slice(&year.to_be_bytes()); // end of overall time interval
        s4.extend_from_slice(&[month, day, hour + hours, 0, 0]);
        s4.push(1); // one time range specification
        s4.extend_from_slice(&0u32.to_be_bytes()); // missing values in the process
        s4.push(1); // statistical process: accumulation
        s4.push(2); // successive times, forecast time incremented
        s4.push(1); // unit of the time range: hour
        s4.extend_from_slice(&u32::from(hours).to_be_bytes());
        s4.push(255); // increment unit: missing
        s4.extend_from_slice(&0u32.to_be_bytes());
    }

    // Sections 5 and 7: simple packing.
    let packed = pack_simple(&f.values, f.decimal_scale, f.bits)?;
    let mut s5 = Vec::new();
    s5.extend_from_slice(&(f.values.len() as u32).to_be_bytes());
    s5.extend_from_slice(&0u16.to_be_bytes()); // template 5.0
    s5.extend_from_slice(&packed.reference.to_be_bytes());
    s5.extend_from_slice(&signed16(packed.binary_scale).to_be_bytes());
    s5.extend_from_slice(&signed16(f.decimal_scale).to_be_bytes());
    s5.push(packed.bits);
    s5.push(0); // original values: floating point

    let mut body = Vec::new();
    body.extend(section(1, &s1));
    body.extend(section(3, &s3));
    body.extend(section(4, &s4));
    body.extend(section(5, &s5));
    body.extend(section(6, &[255])); // no bitmap
    body.extend(section(7, &packed.data));
    body.extend_from_slice(b"7777");

    let mut msg = Vec::with_capacity(body.len() + 16);
    msg.extend_from_slice(b"GRIB");
    msg.extend_from_slice(&[0, 0, 0, 2]); // reserved, discipline 0 (meteorological), edition 2
    msg.extend_from_slice(&((body.len() + 16) as u64).to_be_bytes());
    msg.extend(body);
    Ok(msg)
}

struct Packed {
    reference: f32,
    binary_scale: i16,
    bits: u8,
    data: Vec<u8>,
}

/// GRIB2 simple packing: Y * 10^D = R + X * 2^E with X < 2^bits, MSB-first bit stream.
/// R is the largest f32 not above the minimum so that every X is non-negative.
fn pack_simple(values: &[f64], decimal_scale: i16, bits: u8) -> Result<Packed> {
    ensure!((1..=31).contains(&bits), "unsupported bit width {bits}");
    let factor = 10f64.powi(i32::from(decimal_scale));
    let scaled: Vec<f64> = values.iter().map(|v| v * factor).collect();
    ensure!(scaled.iter().all(|v| v.is_finite()), "non-finite value");
    let min = scaled.iter().copied().fold(f64::INFINITY, f64::min);
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut reference = min as f32;
    while f64::from(reference) > min {
        reference = f32_next_down(reference);
    }
    let range = max - f64::from(reference);
    if range == 0.0 {
        // Constant field: zero bits, empty section 7.
        return Ok(Packed {
            reference,
            binary_scale: 0,
            bits: 0,
            data: Vec::new(),
        });
    }
    let max_int = f64::from((1u32 << bits) - 1);
    let mut e = (range / max_int).log2().ceil() as i32;
    while range / 2f64.powi(e) > max_int {
        e += 1;
    }
    let step = 2f64.powi(e);
    let mut data = vec![0u8; (scaled.len() * usize::from(bits)).div_ceil(8)];
    let mut bitpos = 0usize;
    for v in &scaled {
        let x = ((v - f64::from(reference)) / step)
            .round()
            .clamp(0.0, max_int) as u32;
        for b in (0..bits).rev() {
            if (x >> b) & 1 == 1 {
                data[bitpos / 8] |= 0x80 >> (bitpos % 8);
            }
            bitpos += 1;
        }
    }
    Ok(Packed {
        reference,
        binary_scale: i16::try_from(e)?,
        bits,
        data,
    })
}

/// The next f32 towards negative infinity (`f32::next_down` needs Rust 1.86).
fn f32_next_down(v: f32) -> f32 {
    if v.is_nan() || v == f32::NEG_INFINITY {
        v
    } else if v == 0.0 {
        -f32::from_bits(1)
    } else if v > 0.0 {
        f32::from_bits(v.to_bits() - 1)
    } else {
        f32::from_bits(v.to_bits() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(b: &[u8], o: usize) -> u32 {
        u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"))
    }
    fn sm16(v: u16) -> i32 {
        if v & 0x8000 != 0 {
            -i32::from(v & 0x7fff)
        } else {
            i32::from(v)
        }
    }

    /// Splits a message into (section number, section bytes), checking lengths add up.
    fn sections(msg: &[u8]) -> Vec<(u8, &[u8])> {
        assert_eq!(&msg[..4], b"GRIB");
        assert_eq!(msg[7], 2, "edition");
        let total = u64::from_be_bytes(msg[8..16].try_into().expect("8 bytes")) as usize;
        assert_eq!(total, msg.len());
        assert_eq!(&msg[total - 4..], b"7777");
        let mut out = Vec::new();
        let mut o = 16;
        while o < total - 4 {
            let len = be32(msg, o) as usize;
            assert!(len >= 5 && o + len <= total - 4, "section overruns message");
            out.push((msg[o + 4], &msg[o..o + len]));
            o += len;
        }
        assert_eq!(o, total - 4, "sections do not tile the message");
        out
    }

    #[test]
    fn messages_are_well_formed_and_idx_offsets_match() {
        let (file, idx) = build_grib().expect("build");
        let lines: Vec<&str> = idx.lines().collect();
        assert_eq!(lines.len(), 3);
        let offsets: Vec<usize> = lines
            .iter()
            .map(|l| {
                l.split(':')
                    .nth(1)
                    .expect("offset")
                    .parse()
                    .expect("number")
            })
            .collect();
        assert_eq!(offsets[0], 0);
        assert_eq!(lines[0], "1:0:d=2020121400:TMP:2 m above ground:anl:");
        assert!(lines[2].ends_with(":d=2020121400:APCP:surface:0-1 hour acc fcst:"));
        let originals = fields();
        for (k, &start) in offsets.iter().enumerate() {
            let end = offsets.get(k + 1).copied().unwrap_or(file.len());
            let msg = &file[start..end];
            let secs = sections(msg);
            let numbers: Vec<u8> = secs.iter().map(|s| s.0).collect();
            assert_eq!(numbers, vec![1, 3, 4, 5, 6, 7]);
            let s3 = secs[1].1;
            assert_eq!(s3.len(), 81, "template 3.30 length");
            assert_eq!(u16::from_be_bytes([s3[12], s3[13]]), 30);
            assert_eq!(s3[14], 6);
            assert_eq!((be32(s3, 30), be32(s3, 34)), (NX as u32, NY as u32));
            assert_eq!(be32(s3, 51), 262_500_000);
            assert_eq!(s3[64], 0x40);
            let s4 = secs[2].1;
            let template = u16::from_be_bytes([s4[7], s4[8]]);
            assert_eq!(s4.len(), if template == 8 { 58 } else { 34 });

            // Decode simple packing and compare with the source values.
            let s5 = secs[3].1;
            assert_eq!(be32(s5, 5) as usize, NX * NY);
            let r = f64::from(f32::from_be_bytes(s5[11..15].try_into().expect("4")));
            let e = sm16(u16::from_be_bytes([s5[15], s5[16]]));
            let d = sm16(u16::from_be_bytes([s5[17], s5[18]]));
            let bits = usize::from(s5[19]);
            let data = &secs[5].1[5..];
            assert_eq!(data.len(), (NX * NY * bits).div_ceil(8));
            let step = 2f64.powi(e) / 10f64.powi(d);
            for (n, want) in originals[k].values.iter().enumerate() {
                let mut x = 0u64;
                for b in n * bits..(n + 1) * bits {
                    x = (x << 1) | u64::from((data[b / 8] >> (7 - b % 8)) & 1);
                }
                let got = (r + x as f64 * 2f64.powi(e)) / 10f64.powi(d);
                assert!(
                    (got - want).abs() <= step / 2.0 + 1e-9,
                    "{}: {got} vs {want}",
                    originals[k].var
                );
            }
        }
    }

    #[test]
    fn first_grid_point_is_south_west_corner() {
        let (lat, lon) = projection().inverse(axis_coord(0, NX), axis_coord(0, NY));
        assert!(
            (35.0..38.5).contains(&lat) && (-101.0..-97.5).contains(&lon),
            "{lat} {lon}"
        );
        assert_eq!(signed32(-90_000_000), 0x8000_0000 | 90_000_000);
        assert_eq!(signed16(-3), 0x8003);
        assert!(f32_next_down(1.0) < 1.0 && f32_next_down(-1.0) < -1.0);
    }
}
