//! GRIB2 messages for the converted views: the `.idx` inventory, each message's metadata read
//! from its first few KiB, and its values decoded with the `grib` crate.
//!
//! Supported grids: template 3.30 (Lambert conformal), which HRRR uses. Other templates are
//! reported as unsupported for that message's views.

use anyhow::{Context, Result, bail, ensure};
use grib::projection::{Lcc, LccParams, Project};
use grib::{Grib2SubmessageDecoder, GridDefinitionTemplateValues};

use super::crs::{Crs, Earth};

/// One `.idx` line: `msgnum:offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxLine {
    pub offset: u64,
    pub var: String,
    pub level: String,
    pub forecast: String,
}

/// Parses a wgrib2-style inventory; lines that do not parse are an error naming the line.
pub fn parse_idx(text: &str) -> Result<Vec<IdxLine>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.splitn(7, ':').collect();
        ensure!(
            f.len() >= 6,
            "idx line {} has too few fields: {line:?}",
            n + 1
        );
        let offset = f[1]
            .parse()
            .with_context(|| format!("idx line {}: bad offset {:?}", n + 1, f[1]))?;
        out.push(IdxLine {
            offset,
            var: f[3].to_string(),
            level: f[4].to_string(),
            forecast: f[5].trim_end_matches(':').to_string(),
        });
    }
    ensure!(
        out.windows(2).all(|w| w[0].offset < w[1].offset),
        "idx offsets are not increasing"
    );
    Ok(out)
}

/// Bytes that may separate messages (some files pad between them, as wgrib2 tolerates).
pub const MAX_GAP: usize = 64;

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

/// The grid of a message: its shape, CRS and the projection coordinates of its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub nx: usize,
    pub ny: usize,
    pub crs: Crs,
    /// Projection coordinates (metres) of the first point and signed spacing in scan order.
    pub x0: f64,
    pub y0: f64,
    pub dx: f64,
    pub dy: f64,
}

impl Grid {
    pub fn x(&self) -> Vec<f64> {
        (0..self.nx).map(|i| self.x0 + self.dx * i as f64).collect()
    }
    pub fn y(&self) -> Vec<f64> {
        (0..self.ny).map(|j| self.y0 + self.dy * j as f64).collect()
    }

    /// Latitudes and longitudes (degrees) of every point, row-major in scan order.
    pub fn latlon(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let proj = self.lcc()?;
        let n = self.nx * self.ny;
        let (mut lat, mut lon) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for y in self.y() {
            for x in self.x() {
                let (l, p) = proj
                    .project(&(x, y), true)
                    .map_err(|e| anyhow::anyhow!("projection: {e}"))?;
                lat.push(p.to_degrees());
                lon.push(l.to_degrees());
            }
        }
        Ok((lat, lon))
    }

    fn lcc(&self) -> Result<Lcc> {
        let Crs::LambertConformal {
            earth,
            lat1,
            lat2,
            lat0,
            lon0,
        } = self.crs
        else {
            bail!("only Lambert conformal grids are supported");
        };
        Lcc::new(&LccParams {
            ellipsoid: grib::projection::Ellipsoid::from_a_and_b(earth.a, earth.b),
            lat_0: lat0,
            lon_0: lon0,
            lat_1: lat1,
            lat_2: lat2,
        })
        .map_err(|e| anyhow::anyhow!("Lambert conformal parameters: {e}"))
    }
}

/// What a message holds, from sections 0-5.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub discipline: u8,
    pub category: u8,
    pub number: u8,
    /// Reference time, ISO 8601 UTC.
    pub reference_time: String,
    /// Reference time plus the forecast time, ISO 8601 UTC, when it decodes.
    pub valid_time: Option<String>,
    pub grid: Grid,
}

/// Bytes of a message's head that [`parse_header`] is likely to need.
pub const HEAD_BYTES: u64 = 4096;

/// Parses sections 0-5 from the first bytes of a message (`head`), which must reach the start
/// of section 6. The grib crate parses whole messages, so it is given a copy of the head with
/// empty sections 6 and 7.
pub fn parse_header(head: &[u8]) -> Result<Header> {
    section0_len(head)?;
    let mut pos = 16;
    let mut msg = head[..16].to_vec();
    let mut interval_end = None;
    loop {
        ensure!(
            pos + 5 <= head.len(),
            "GRIB message header longer than the bytes read"
        );
        let len = u32::from_be_bytes(head[pos..pos + 4].try_into()?) as usize;
        let num = head[pos + 4];
        ensure!(len >= 5, "GRIB section {num} has length {len}");
        if num >= 6 {
            ensure!(num == 6, "GRIB section 6 missing");
            let indicator = head.get(pos + 5).copied().unwrap_or(255);
            msg.extend_from_slice(&[0, 0, 0, 6, 6, indicator]);
            break;
        }
        ensure!(
            pos + len <= head.len(),
            "GRIB section {num} longer than the bytes read"
        );
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
    let grib2 = grib::from_bytes(msg).context("GRIB2 header")?;
    let (_, sub) = grib2
        .iter()
        .next()
        .context("GRIB2 message without fields")?;
    let discipline = sub.indicator().discipline;
    let prod = sub.prod_def();
    let category = prod.parameter_category().context("no parameter category")?;
    let number = prod.parameter_number().context("no parameter number")?;
    let t = sub.identification().ref_time_unchecked();
    let reference_time = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    let grid = match GridDefinitionTemplateValues::try_from(sub.grid_def())
        .context("GRIB2 grid definition")?
    {
        GridDefinitionTemplateValues::Template30(g) => lambert_grid(&g)?,
        _ => bail!("this GRIB2 grid template is not supported (only 3.30 Lambert conformal)"),
    };
    // An accumulation or other statistic is valid at the end of its interval.
    let valid_time = interval_end.or_else(|| {
        sub.temporal_info()
            .forecast_time_target
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    });
    Ok(Header {
        valid_time,
        discipline,
        category,
        number,
        reference_time,
        grid,
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

fn lambert_grid(g: &grib::def::grib2::template::Template3_30) -> Result<Grid> {
    let deg = 1e-6;
    let (a, b) = g
        .earth_shape
        .radii()
        .context("unknown shape of the earth (code table 3.2)")?;
    let mode = &g.scanning_mode;
    ensure!(
        mode.is_consecutive_for_i() && !mode.scans_alternating_rows(),
        "scanning mode {:#010b} is not supported",
        mode.0
    );
    let points = u64::from(g.ni) * u64::from(g.nj);
    ensure!(
        points > 0 && points < 1 << 30,
        "grid of {}x{} points is empty or too large",
        g.ni,
        g.nj
    );
    let crs = Crs::LambertConformal {
        earth: Earth { a, b },
        lat1: f64::from(g.latin1) * deg,
        lat2: f64::from(g.latin2) * deg,
        lat0: f64::from(g.lad) * deg,
        lon0: normalize_lon(f64::from(g.lov) * deg),
    };
    let mut grid = Grid {
        nx: g.ni as usize,
        ny: g.nj as usize,
        crs,
        x0: 0.0,
        y0: 0.0,
        dx: f64::from(g.dx)
            * 1e-3
            * if mode.scans_positively_for_i() {
                1.0
            } else {
                -1.0
            },
        dy: f64::from(g.dy)
            * 1e-3
            * if mode.scans_positively_for_j() {
                1.0
            } else {
                -1.0
            },
    };
    let (lat1, lon1) = (
        f64::from(g.first_point_lat) * deg,
        normalize_lon(f64::from(g.first_point_lon) * deg),
    );
    let (x0, y0) = grid
        .lcc()?
        .project(&(lon1.to_radians(), lat1.to_radians()), false)
        .map_err(|e| anyhow::anyhow!("projection: {e}"))?;
    (grid.x0, grid.y0) = (x0, y0);
    Ok(grid)
}

fn normalize_lon(lon: f64) -> f64 {
    if lon > 180.0 { lon - 360.0 } else { lon }
}

/// Decodes every value of one whole message (scan order; missing points are NaN).
pub fn decode(message: &[u8]) -> Result<Vec<f32>> {
    let grib2 = grib::from_bytes(message).context("GRIB2 message")?;
    let (_, sub) = grib2
        .iter()
        .next()
        .context("GRIB2 message without fields")?;
    let decoder = Grib2SubmessageDecoder::from(sub).context("GRIB2 data sections")?;
    let values: Vec<f32> = decoder.dispatch().context("GRIB2 data")?.collect();
    Ok(values)
}

/// A variable name from `VAR:LEVEL` (`TMP_2_m_above_ground`): runs of characters that are not
/// ASCII letters or digits become one `_`.
pub fn array_name(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts {
        for c in p.chars() {
            if c.is_ascii_alphanumeric() {
                s.push(c);
            } else if !s.ends_with('_') && !s.is_empty() {
                s.push('_');
            }
        }
        if !s.ends_with('_') && !s.is_empty() {
            s.push('_');
        }
    }
    s.trim_end_matches('_').to_string()
}

/// Units and long names of common NCEP short names (for CF attributes).
pub fn describe(var: &str) -> Option<(&'static str, &'static str)> {
    Some(match var {
        "TMP" => ("K", "Temperature"),
        "DPT" => ("K", "Dew point temperature"),
        "APCP" => ("kg m-2", "Total precipitation"),
        "UGRD" => ("m s-1", "U component of wind"),
        "VGRD" => ("m s-1", "V component of wind"),
        "GUST" => ("m s-1", "Wind speed (gust)"),
        "RH" => ("%", "Relative humidity"),
        "SPFH" => ("kg kg-1", "Specific humidity"),
        "PRES" => ("Pa", "Pressure"),
        "MSLMA" | "PRMSL" => ("Pa", "Mean sea level pressure"),
        "HGT" => ("gpm", "Geopotential height"),
        "REFC" => ("dB", "Composite reflectivity"),
        "TCDC" => ("%", "Total cloud cover"),
        "VIS" => ("m", "Visibility"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "../shared/fixtures/hrrr/subset_20201214_hrrr.t00z.wrfsfcf12.grib2";

    #[test]
    fn idx_lines_parse_and_names_are_identifiers() {
        let idx = parse_idx(&std::fs::read_to_string(format!("{FIXTURE}.idx")).unwrap()).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx[1].offset, 887_243);
        assert_eq!(idx[1].forecast, "11-12 hour acc fcst");
        assert_eq!(
            array_name(&["TMP", "2 m above ground"]),
            "TMP_2_m_above_ground"
        );
        assert_eq!(
            array_name(&["APCP", "surface", "0-12 hour acc fcst"]),
            "APCP_surface_0_12_hour_acc_fcst"
        );
        assert!(parse_idx("1:x:d=1:A:b:c:").is_err());
        let full = std::fs::read_to_string("../shared/fixtures/idx/hrrr.t01z.wrfsfcf00.grib2.idx")
            .unwrap();
        assert_eq!(parse_idx(&full).unwrap().len(), 170);
    }

    #[test]
    fn hrrr_header_and_values_match_eccodes_reference() {
        let bytes = std::fs::read(FIXTURE).unwrap();
        let len = section0_len(&bytes).unwrap() as usize;
        assert_eq!(len, 887_243);
        let h = parse_header(&bytes[..HEAD_BYTES as usize]).unwrap();
        assert_eq!((h.discipline, h.category, h.number), (0, 1, 8));
        assert_eq!(h.reference_time, "2020-12-14T00:00:00Z");
        // The 0-12 h accumulation is valid at its end.
        assert_eq!(h.valid_time.as_deref(), Some("2020-12-14T12:00:00Z"));
        assert_eq!((h.grid.nx, h.grid.ny), (1799, 1059));
        assert!((h.grid.dx - 3000.0).abs() < 1e-6 && h.grid.dy > 0.0);
        let v = decode(&bytes[..len]).unwrap();
        assert_eq!(v.len(), 1_905_141);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let max = v.iter().cloned().fold(f32::MIN, f32::max);
        // Reference values from ../shared/fixtures/README.md (eccodes).
        assert!((mean - 1.624704).abs() / 1.624704 < 1e-5, "mean {mean}");
        assert!((f64::from(max) - 135.36).abs() < 0.01, "max {max}");
        let (lat, lon) = h.grid.latlon().unwrap();
        assert!((lat[0] - 21.138123).abs() < 1e-4 && (lon[0] - (237.280472 - 360.0)).abs() < 1e-4);
        // A truncated message is an error, not a panic.
        assert!(decode(&bytes[..len / 2]).is_err());
    }
}
