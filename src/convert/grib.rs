//! GRIB2 fields for the converted views: each field's metadata read from its message's first
//! few KiB, georeferenced, and its values decoded with the `grib` crate.
//!
//! Supported grids (template 3.N): 3.0 regular latitude/longitude, 3.10 Mercator (grid not
//! turned to the equator), 3.20 polar stereographic (one pole, scanned +i +j) and 3.30 Lambert
//! conformal, scanned row by row in either direction along each axis. Supported packings:
//! [`SUPPORTED_PACKINGS`]. Missing points (bitmap) decode to NaN. Other templates (3.1 rotated,
//! 3.40 Gaussian whose latitudes are not evenly spaced, 3.90 space view, ...), other packings
//! and other scanning modes are errors naming the template, which leave that field out of the
//! views. Message layout (section 0, the inventory, the sections of each field) is parsed in
//! [`crate::formats::grib2`]; here fields become georeferenced grids.

use anyhow::{Context, Result, bail, ensure};
use grib::def::grib2::template::param_set::{EarthShape, ScaledValue, ScanningMode};
use grib::projection::{Lcc, LccParams, Merc, MercParams, Project, Stere, StereParams};
use grib::{Grib2SubmessageDecoder, GridDefinitionTemplateValues};

use super::crs::{Crs, Earth};
use crate::formats::grib2::{self, Walked, template_name};

/// The grid of a message: its shape, CRS and the coordinates of its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub nx: usize,
    pub ny: usize,
    pub crs: Crs,
    /// Coordinates of the first point and signed spacing in scan order: projection metres, or
    /// degrees (longitude, latitude) for a geographic grid. A geographic grid keeps the source's
    /// longitudes (0..360 stays 0..360), shifted by -360 only when all of them are >= 180, so
    /// that `x` always increases or decreases monotonically.
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

    /// Whether `x` and `y` are longitude and latitude (template 3.0).
    pub fn is_geographic(&self) -> bool {
        matches!(self.crs, Crs::Geographic { .. })
    }

    /// Latitudes and longitudes (degrees) of every point, row-major in scan order.
    pub fn latlon(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = self.nx * self.ny;
        let (mut lat, mut lon) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (xs, ys) = (self.x(), self.y());
        let Some(proj) = self.projection()? else {
            for y in &ys {
                lat.extend(std::iter::repeat_n(*y, self.nx));
                lon.extend(&xs);
            }
            return Ok((lat, lon));
        };
        for &y in &ys {
            for &x in &xs {
                let (l, p) = proj
                    .project(&(x, y), true)
                    .map_err(|e| anyhow::anyhow!("projection: {e}"))?;
                lat.push(p.to_degrees());
                lon.push(l.to_degrees());
            }
        }
        Ok((lat, lon))
    }

    /// The map projection of a projected grid; `None` for a geographic one.
    fn projection(&self) -> Result<Option<Box<dyn Project>>> {
        let ellipsoid = |e: Earth| grib::projection::Ellipsoid::from_a_and_b(e.a, e.b);
        let p: Box<dyn Project> = match self.crs {
            Crs::Geographic { .. } => return Ok(None),
            Crs::LambertConformal {
                earth,
                lat1,
                lat2,
                lat0,
                lon0,
            } => Box::new(
                // The cone is symmetric in its two standard parallels; grib 0.20.2's `Lcc`
                // takes it as secant only when `lat_1 > lat_2` (`is_secant_cone` lacks an
                // `abs()`), so they are given in descending order.
                Lcc::new(&LccParams {
                    ellipsoid: ellipsoid(earth),
                    lat_0: lat0,
                    lon_0: lon0,
                    lat_1: lat1.max(lat2),
                    lat_2: lat1.min(lat2),
                })
                .map_err(|e| anyhow::anyhow!("Lambert conformal parameters: {e}"))?,
            ),
            Crs::PolarStereographic {
                earth,
                lat_ts,
                lon0,
            } => Box::new(
                Stere::new(&StereParams {
                    ellipsoid: ellipsoid(earth),
                    lat_ts,
                    lat_0: if lat_ts >= 0.0 { 90.0 } else { -90.0 },
                    lon_0: lon0,
                    k_0: 1.0,
                })
                .map_err(|e| anyhow::anyhow!("polar stereographic parameters: {e}"))?,
            ),
            Crs::Mercator {
                earth,
                lat_ts,
                lon0,
            } => Box::new(
                Merc::new(&MercParams {
                    ellipsoid: ellipsoid(earth),
                    lat_ts,
                    lon_0: lon0,
                })
                .map_err(|e| anyhow::anyhow!("Mercator parameters: {e}"))?,
            ),
        };
        Ok(Some(p))
    }

    /// Projection coordinates of a point given in degrees.
    fn forward(&self, lat: f64, lon: f64) -> Result<(f64, f64)> {
        match self.projection()? {
            None => Ok((lon, lat)),
            Some(p) => p
                .project(&(lon.to_radians(), lat.to_radians()), false)
                .map_err(|e| anyhow::anyhow!("projection: {e}")),
        }
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

/// The fields of the message of `len` bytes whose first bytes are `buf` (see
/// [`grib2::parse_heads`]), each georeferenced, or an error naming why it cannot be converted
/// (its grid or packing); an error for the whole message when its sections do not parse.
pub fn parse_headers(buf: &[u8], len: u64) -> Result<Walked<Result<Header>>> {
    Ok(match grib2::parse_heads(buf, len)? {
        Walked::Need(n) => Walked::Need(n),
        Walked::Fields(heads) => Walked::Fields(heads.into_iter().map(header_of).collect()),
    })
}

/// The header of a single-field message's first bytes (`head`, reaching its section 7).
pub fn parse_header(head: &[u8]) -> Result<Header> {
    let len = grib2::section0_len(head)?;
    match parse_headers(head, len)? {
        Walked::Fields(mut f) if f.len() == 1 => f.remove(0),
        Walked::Fields(f) => bail!("a message of {} fields", f.len()),
        Walked::Need(n) => bail!("bytes {n:?} of the message are needed"),
    }
}

fn header_of(h: grib2::Head) -> Result<Header> {
    let template = h.grid.grid_tmpl_num();
    let grid = grid(&h.grid, template).with_context(|| {
        format!(
            "GRIB2 grid template 3.{template} ({})",
            template_name(template)
        )
    })?;
    ensure!(
        SUPPORTED_PACKINGS.iter().any(|(n, _)| *n == h.packing),
        "GRIB2 data representation template 5.{} ({}) is not supported ({})",
        h.packing,
        packing_name(h.packing),
        supported_packings()
    );
    ensure!(
        matches!(h.bitmap, 0 | 255),
        "GRIB2 bit-map indicator {} (code table 6.0: a bitmap defined elsewhere) is not supported",
        h.bitmap
    );
    Ok(Header {
        valid_time: h.valid_time,
        discipline: h.discipline,
        category: h.category,
        number: h.number,
        reference_time: h.reference_time,
        grid,
    })
}

/// Data representation templates (code table 5.0) the views decode, all through the `grib`
/// crate: its own simple, complex and run-length decoders, and with its features JPEG 2000
/// through `hayro-jpeg2000`, PNG through `png` and CCSDS through `rust-aec`, all pure Rust (no
/// C library to build or install, and memory safety on the untrusted bytes of a message).
pub const SUPPORTED_PACKINGS: &[(u16, &str)] = &[
    (0, "simple"),
    (2, "complex"),
    (3, "complex with spatial differencing"),
    (40, "JPEG 2000"),
    (41, "PNG"),
    (42, "CCSDS"),
    (200, "run length"),
];

fn supported_packings() -> String {
    let list: Vec<String> = SUPPORTED_PACKINGS
        .iter()
        .map(|(n, name)| format!("5.{n} {name}"))
        .collect();
    format!("supported: {}", list.join(", "))
}

/// What data representation template `5.n` is (code table 5.0), for messages.
pub fn packing_name(n: u16) -> &'static str {
    match n {
        1 => "matrix",
        4 => "IEEE floating point",
        50 | 51 => "spectral",
        53 => "spectral for limited area models",
        61 => "simple packing with logarithm pre-processing",
        _ => SUPPORTED_PACKINGS
            .iter()
            .find(|(m, _)| *m == n)
            .map_or("unknown", |(_, name)| name),
    }
}

/// The supported templates and what to do otherwise, as error messages say.
pub const SUPPORTED_TEMPLATES: &str = "supported: 3.0 latitude/longitude, 3.10 Mercator, 3.20 \
    polar stereographic, 3.30 Lambert conformal; read the GRIB2 file itself, or regrid it to one \
    of those (e.g. wgrib2 -new_grid)";

fn grid(def: &grib::GridDefinition, template: u16) -> Result<Grid> {
    let values = match template {
        0 | 10 | 20 | 30 => GridDefinitionTemplateValues::try_from(def)
            .map_err(|e| anyhow::anyhow!("cannot read the grid definition: {e}"))?,
        40 => bail!(
            "not supported: Gaussian latitudes are not evenly spaced, so no COG geotransform \
             can describe the grid ({SUPPORTED_TEMPLATES})"
        ),
        _ => bail!("not supported ({SUPPORTED_TEMPLATES})"),
    };
    match values {
        GridDefinitionTemplateValues::Template0(g) => latlon_grid(&g),
        GridDefinitionTemplateValues::Template10(g) => mercator_grid(&g),
        GridDefinitionTemplateValues::Template20(g) => polar_grid(&g),
        GridDefinitionTemplateValues::Template30(g) => lambert_grid(&g),
        _ => bail!("not supported ({SUPPORTED_TEMPLATES})"),
    }
}

/// The earth of code table 3.2. Scaled values are `value * 10^-factor` (the grib crate's
/// `radii` multiplies instead, which is wrong for non-zero factors).
fn earth(e: &EarthShape) -> Result<Earth> {
    let scaled = |v: &ScaledValue<u8, u32>| {
        f64::from(v.scaled_value) / 10f64.powi(i32::from(v.scale_factor))
    };
    let (a, b) = match e.shape {
        1 => (
            scaled(&e.spherical_earth_radius),
            scaled(&e.spherical_earth_radius),
        ),
        3 => (scaled(&e.major_axis) * 1e3, scaled(&e.minor_axis) * 1e3),
        7 => (scaled(&e.major_axis), scaled(&e.minor_axis)),
        _ => e.radii().with_context(|| {
            format!(
                "shape of the earth {} (code table 3.2) is not supported",
                e.shape
            )
        })?,
    };
    ensure!(
        a.is_finite() && b.is_finite() && a > 1e6 && b > 1e6 && b <= a,
        "shape of the earth {} gives implausible radii {a} m, {b} m",
        e.shape
    );
    Ok(Earth { a, b })
}

/// Checks what every template needs of the scanning mode and the grid size.
fn check_scan(mode: &ScanningMode, ni: u32, nj: u32) -> Result<(usize, usize)> {
    ensure!(
        mode.is_consecutive_for_i() && !mode.scans_alternating_rows() && mode.0 & 0x0f == 0,
        "scanning mode {:#010b} is not supported (rows must be consecutive, one direction, \
         not offset)",
        mode.0
    );
    let points = u64::from(ni) * u64::from(nj);
    ensure!(
        points > 0 && points < 1 << 30,
        "grid of {ni}x{nj} points is empty or too large"
    );
    Ok((ni as usize, nj as usize))
}

fn sign(positive: bool) -> f64 {
    if positive { 1.0 } else { -1.0 }
}

fn latlon_grid(g: &grib::def::grib2::template::Template3_0) -> Result<Grid> {
    let ll = &g.lat_lon;
    let p = &ll.grid;
    let mode = &ll.scanning_mode;
    let (nx, ny) = check_scan(mode, p.ni, p.nj)?;
    // Note 1 of template 3.0: angles in units of basic angle / subdivisions, else microdegrees.
    let unit = match (
        p.initial_production_domain_basic_angle,
        p.basic_angle_subdivisions,
    ) {
        (0, _) | (_, 0) | (_, u32::MAX) => 1e-6,
        (basic, sub) => f64::from(basic) / f64::from(sub),
    };
    let (lat1, lat2) = (
        f64::from(p.first_point_lat) * unit,
        f64::from(p.last_point_lat) * unit,
    );
    let (lon1, lon2) = (
        f64::from(p.first_point_lon) * unit,
        f64::from(p.last_point_lon) * unit,
    );
    ensure!(
        (-90.0..=90.0).contains(&lat1) && (-90.0..=90.0).contains(&lat2),
        "latitudes {lat1}, {lat2} of the first and last points are out of range"
    );
    // Flag table 3.3, bit 4: the j increment is given.
    let j_inc = (p.resolution_and_component_flags.0 & 0x10 != 0 && ll.j_direction_inc != u32::MAX)
        .then(|| f64::from(ll.j_direction_inc) * unit);
    let dy = if ny > 1 {
        let dy = (lat2 - lat1) / (ny - 1) as f64;
        ensure!(
            dy != 0.0 && (dy > 0.0) == mode.scans_positively_for_j(),
            "the first and last latitudes ({lat1}, {lat2}) do not match the scanning mode \
             {:#010b}",
            mode.0
        );
        // eccodes places rows by the j increment (and the last at the last latitude), columns
        // from the first and last longitudes: rows from the increment, unless it disagrees
        // with the first and last latitudes by more than the increment's rounding to its unit.
        match j_inc {
            Some(inc) => {
                let step = inc * dy.signum();
                let off = (lat1 + step * (ny - 1) as f64 - lat2).abs();
                ensure!(
                    off <= unit * (ny - 1) as f64 / 2.0 + 1e-9,
                    "the j increment {inc} degrees does not fit the first and last latitudes \
                     ({lat1}, {lat2}) of {ny} rows ({off} degrees apart): eccodes places such \
                     rows unevenly"
                );
                step
            }
            None => dy,
        }
    } else {
        f64::from(ll.j_direction_inc) * unit * sign(mode.scans_positively_for_j())
    };
    // Longitudes run from the first point in the scanning direction, wrapping at 360.
    let east = mode.scans_positively_for_i();
    let span = (if east { lon2 - lon1 } else { lon1 - lon2 }).rem_euclid(360.0);
    let dx = if nx > 1 {
        ensure!(span > 0.0, "the first and last longitudes are both {lon1}");
        span / (nx - 1) as f64 * sign(east)
    } else {
        f64::from(ll.i_direction_inc) * unit * sign(east)
    };
    ensure!(
        dx.is_finite() && dy.is_finite() && dx != 0.0 && dy != 0.0,
        "grid spacing {dx} x {dy} degrees is not usable"
    );
    let west = lon1.min(lon1 + dx * (nx - 1) as f64);
    let x0 = if west >= 180.0 { lon1 - 360.0 } else { lon1 };
    Ok(Grid {
        nx,
        ny,
        crs: Crs::Geographic {
            earth: earth(&g.earth)?,
        },
        x0,
        y0: lat1,
        dx,
        dy,
    })
}

/// A projected grid from its first point (degrees) and signed spacing (metres).
fn projected(nx: usize, ny: usize, crs: Crs, first: (f64, f64), dx: f64, dy: f64) -> Result<Grid> {
    ensure!(
        dx.is_finite() && dy.is_finite() && dx != 0.0 && dy != 0.0,
        "grid spacing {dx} x {dy} m is not usable"
    );
    let mut grid = Grid {
        nx,
        ny,
        crs,
        x0: 0.0,
        y0: 0.0,
        dx,
        dy,
    };
    (grid.x0, grid.y0) = grid.forward(first.0, first.1)?;
    Ok(grid)
}

fn polar_grid(g: &grib::def::grib2::template::Template3_20) -> Result<Grid> {
    let deg = 1e-6;
    let mode = &g.scanning_mode;
    let (nx, ny) = check_scan(mode, g.ni, g.nj)?;
    // WMO's scanning flags (code table 3.4) say where the second row and column lie; eccodes
    // (2.50) and GDAL place every polar stereographic grid as if it scanned +i, +j whatever the
    // flags say. Where the two readings differ, the message is refused rather than placed by one.
    ensure!(
        mode.scans_positively_for_i() && mode.scans_positively_for_j(),
        "scanning mode {:#010b} is not supported for polar stereographic grids: eccodes and \
         GDAL place the rows and columns as if scanned +i, +j (mode 0b01000000), the WMO \
         definition of the flags otherwise, so no placement would agree with both",
        mode.0
    );
    let centre = &g.projection_centre;
    ensure!(
        !centre.is_bipolar() && centre.0 & 0x3f == 0,
        "projection centre flag {:#010b} is not supported (one pole only)",
        centre.0
    );
    // LaD gives the latitude of true scale; its sign follows the pole on the plane.
    let lad = (f64::from(g.lad) * deg).abs();
    let lat_ts = if centre.contains_north_pole_on_projection_plane() {
        lad
    } else {
        -lad
    };
    let crs = Crs::PolarStereographic {
        earth: earth(&g.earth_shape)?,
        lat_ts,
        lon0: normalize_lon(f64::from(g.lov) * deg),
    };
    let first = (
        f64::from(g.first_point_lat) * deg,
        normalize_lon(f64::from(g.first_point_lon) * deg),
    );
    let dx = f64::from(g.dx) * 1e-3 * sign(mode.scans_positively_for_i());
    let dy = f64::from(g.dy) * 1e-3 * sign(mode.scans_positively_for_j());
    projected(nx, ny, crs, first, dx, dy)
}

fn mercator_grid(g: &grib::def::grib2::template::Template3_10) -> Result<Grid> {
    let deg = 1e-6;
    let mode = &g.scanning_mode;
    let (nx, ny) = check_scan(mode, g.ni, g.nj)?;
    ensure!(
        g.orientation == 0,
        "a Mercator grid turned by {} degrees to the equator is not supported",
        f64::from(g.orientation) * deg
    );
    // The central meridian halfway between the first and last points (in the scanning
    // direction), so that the grid never straddles the projection's seam.
    let (lon1, lon2) = (
        f64::from(g.first_point_lon) * deg,
        f64::from(g.last_point_lon) * deg,
    );
    let east = mode.scans_positively_for_i();
    let span = (if east { lon2 - lon1 } else { lon1 - lon2 }).rem_euclid(360.0);
    let lon0 = normalize_lon((lon1 + sign(east) * span / 2.0).rem_euclid(360.0));
    let crs = Crs::Mercator {
        earth: earth(&g.earth_shape)?,
        lat_ts: f64::from(g.lad) * deg,
        lon0,
    };
    let first = (f64::from(g.first_point_lat) * deg, normalize_lon(lon1));
    let dx = f64::from(g.di) * 1e-3 * sign(east);
    let dy = f64::from(g.dj) * 1e-3 * sign(mode.scans_positively_for_j());
    projected(nx, ny, crs, first, dx, dy)
}

fn lambert_grid(g: &grib::def::grib2::template::Template3_30) -> Result<Grid> {
    let deg = 1e-6;
    let mode = &g.scanning_mode;
    let (nx, ny) = check_scan(mode, g.ni, g.nj)?;
    let crs = Crs::LambertConformal {
        earth: earth(&g.earth_shape)?,
        lat1: f64::from(g.latin1) * deg,
        lat2: f64::from(g.latin2) * deg,
        lat0: f64::from(g.lad) * deg,
        lon0: normalize_lon(f64::from(g.lov) * deg),
    };
    let first = (
        f64::from(g.first_point_lat) * deg,
        normalize_lon(f64::from(g.first_point_lon) * deg),
    );
    let dx = f64::from(g.dx) * 1e-3 * sign(mode.scans_positively_for_i());
    let dy = f64::from(g.dy) * 1e-3 * sign(mode.scans_positively_for_j());
    projected(nx, ny, crs, first, dx, dy)
}

fn normalize_lon(lon: f64) -> f64 {
    if lon > 180.0 { lon - 360.0 } else { lon }
}

/// Decodes every value of field `field` (0-based) of one whole message (scan order; missing
/// points are NaN).
pub fn decode(message: &[u8], field: usize) -> Result<Vec<f32>> {
    let len = grib2::section0_len(message).context("GRIB2 message")?;
    ensure!(
        len as usize == message.len(),
        "GRIB2 message of {len} bytes given {} bytes",
        message.len()
    );
    let fields = match grib2::field_sections(message, len)? {
        Walked::Fields(f) => f,
        Walked::Need(_) => bail!("GRIB2 message shorter than its sections"),
    };
    let f = fields.get(field).with_context(|| {
        format!(
            "GRIB2 message of {} fields has no field {}",
            fields.len(),
            field + 1
        )
    })?;
    let owned;
    let (bytes, nth) = match constant_as_simple(message, f) {
        Some(single) => {
            owned = single;
            (&owned[..], 0)
        }
        None => (message, field),
    };
    let grib2 = grib::from_bytes(bytes).context("GRIB2 message")?;
    let (_, sub) = grib2
        .iter()
        .nth(nth)
        .context("GRIB2 message without that field")?;
    let decoder = Grib2SubmessageDecoder::from(sub).context("GRIB2 data sections")?;
    let values: Vec<f32> = decoder.dispatch().context("GRIB2 data")?.collect();
    Ok(values)
}

/// A constant field packed with complex packing (5.2, 5.3: 0 bits per group reference and an
/// empty data section, as GFS writes them) as a single-field message of simple packing (5.0)
/// with the same reference value, scale factors and 0 bits, which the `grib` crate decodes as
/// the constant R * 10^-D at every point its bitmap has (as eccodes and wgrib2 read it; the
/// crate's complex decoders refuse the empty data section). `None` for any other field.
fn constant_as_simple(msg: &[u8], f: &grib2::FieldSections) -> Option<Vec<u8>> {
    let s5 = msg.get(f.s5.clone())?;
    let template = u16::from_be_bytes([*s5.get(9)?, *s5.get(10)?]);
    let (nbits, s7_len) = (*s5.get(19)?, f.s7.len());
    if !matches!(template, 2 | 3) || nbits != 0 || s7_len != 5 {
        return None;
    }
    let mut simple = Vec::with_capacity(21);
    simple.extend_from_slice(&21u32.to_be_bytes());
    simple.push(5);
    simple.extend_from_slice(&s5[5..9]); // number of data points
    simple.extend_from_slice(&[0, 0]); // template 5.0
    simple.extend_from_slice(&s5[11..19]); // R, E, D
    simple.push(0); // bits per value
    simple.push(*s5.get(20)?); // type of original field values
    let mut out = msg[..16].to_vec();
    for r in [Some(&f.s1), f.s2.as_ref(), Some(&f.s3), Some(&f.s4)]
        .into_iter()
        .flatten()
    {
        out.extend_from_slice(&msg[r.clone()]);
    }
    out.extend_from_slice(&simple);
    out.extend_from_slice(msg.get(f.s6.clone())?);
    out.extend_from_slice(msg.get(f.s7.clone())?);
    out.extend_from_slice(b"7777");
    let total = out.len() as u64;
    out[8..16].copy_from_slice(&total.to_be_bytes());
    Some(out)
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
    use crate::formats::grib2::{HEAD_BYTES, section0_len};

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/grib2/hrrr.t00z.wrfsfcf12.grib2"
    );

    /// eccodes' reading of each message of FIXTURE (written by tests/data/make.py).
    fn eccodes_messages() -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(format!("{FIXTURE}.json")).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["messages"].as_array().unwrap().clone()
    }

    #[test]
    fn idx_lines_parse_and_names_are_identifiers() {
        let idx = crate::formats::grib2::parse_idx(
            &std::fs::read_to_string(format!("{FIXTURE}.idx")).unwrap(),
        )
        .unwrap();
        let m = eccodes_messages();
        assert_eq!(idx.len(), m.len());
        assert_eq!(idx[1].offset, m[1]["idx_offset"].as_u64().unwrap());
        let step = m[1]["stepRange"].as_str().unwrap();
        assert_eq!(idx[1].forecast, format!("{step} hour acc fcst"));
        assert_eq!(
            array_name(&["TMP", "2 m above ground"]),
            "TMP_2_m_above_ground"
        );
        assert_eq!(
            array_name(&["APCP", "surface", "0-12 hour acc fcst"]),
            "APCP_surface_0_12_hour_acc_fcst"
        );
        assert!(crate::formats::grib2::parse_idx("1:x:d=1:A:b:c:").is_err());
        let full = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/idx/hrrr.t01z.wrfsfcf00.grib2.idx"
        ))
        .unwrap();
        assert_eq!(crate::formats::grib2::parse_idx(&full).unwrap().len(), 170);
    }

    fn latlon(ni: u32, nj: u32, first: (f64, f64), last: (f64, f64), mode: u8) -> Result<Grid> {
        latlon_inc(ni, nj, first, last, mode, u32::MAX)
    }

    /// With the j increment `j_inc` (microdegrees; `u32::MAX` missing).
    fn latlon_inc(
        ni: u32,
        nj: u32,
        first: (f64, f64),
        last: (f64, f64),
        mode: u8,
        j_inc: u32,
    ) -> Result<Grid> {
        use grib::def::grib2::template::{Template3_0, param_set};
        let micro = |d: f64| (d * 1e6).round();
        let sv = |scale_factor, scaled_value| ScaledValue {
            scale_factor,
            scaled_value,
        };
        latlon_grid(&Template3_0 {
            earth: EarthShape {
                shape: 6,
                spherical_earth_radius: sv(0, 0),
                major_axis: sv(0, 0),
                minor_axis: sv(0, 0),
            },
            lat_lon: param_set::LatLonGrid {
                grid: param_set::Grid {
                    ni,
                    nj,
                    initial_production_domain_basic_angle: 0,
                    basic_angle_subdivisions: u32::MAX,
                    first_point_lat: micro(first.0) as i32,
                    first_point_lon: micro(first.1) as u32,
                    resolution_and_component_flags: param_set::ResolutionAndComponentFlags(48),
                    last_point_lat: micro(last.0) as i32,
                    last_point_lon: micro(last.1) as u32,
                },
                i_direction_inc: u32::MAX,
                j_direction_inc: j_inc,
                scanning_mode: ScanningMode(mode),
            },
        })
    }

    #[test]
    fn latlon_grids_keep_source_longitudes_monotonic() {
        // GFS 0.25: 0..359.75 east, 90 N to 90 S.
        let g = latlon(1440, 721, (90.0, 0.0), (-90.0, 359.75), 0).unwrap();
        assert_eq!((g.x0, g.y0), (0.0, 90.0));
        assert!((g.dx - 0.25).abs() < 1e-12 && (g.dy + 0.25).abs() < 1e-12);
        assert!(g.is_geographic());
        // Across 0 eastwards from 350: shifted to -10..10.
        let g = latlon(21, 2, (0.0, 350.0), (1.0, 10.0), 0b0100_0000).unwrap();
        assert_eq!((g.x0, g.dx, g.dy), (-10.0, 1.0, 1.0));
        // Westwards from 20 to 340 (= -20), south to north.
        let g = latlon(41, 21, (-10.0, 20.0), (10.0, 340.0), 0b1100_0000).unwrap();
        assert_eq!((g.x0, g.dx, g.dy), (20.0, -1.0, 1.0));
        assert_eq!(*g.x().last().unwrap(), -20.0);
        let (lat, lon) = g.latlon().unwrap();
        assert_eq!((lat[41], lon[41]), (-9.0, 20.0));
        // Latitudes against the scanning mode, column-major or offset rows: refused.
        assert!(latlon(4, 3, (10.0, 0.0), (-10.0, 3.0), 0b0100_0000).is_err());
        assert!(latlon(4, 3, (10.0, 0.0), (-10.0, 3.0), 0b0010_0000).is_err());
        assert!(latlon(4, 3, (10.0, 0.0), (-10.0, 3.0), 0b0001_0000).is_err());
        assert!(latlon(0, 3, (10.0, 0.0), (-10.0, 3.0), 0).is_err());
        assert!(latlon(4, 3, (10.0, 5.0), (-10.0, 5.0), 0).is_err());
        // Rows by the j increment as eccodes places them, within its rounding to microdegrees
        // (1/12 degree over 2161 rows); one that does not fit the latitudes is refused.
        let g = latlon_inc(10, 2161, (90.0, 0.0), (-90.0, 9.0), 0, 83_333).unwrap();
        assert!((g.dy + 0.083333).abs() < 1e-12, "{}", g.dy);
        let g = latlon_inc(10, 5, (50.0, 10.0), (46.0, 19.0), 0, 1_000_000).unwrap();
        assert_eq!((g.dy, g.dx), (-1.0, 1.0));
        let e = latlon_inc(10, 5, (50.0, 10.0), (46.0, 19.0), 0, 900_000).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    #[test]
    fn earth_scaled_values_divide() {
        let sv = |scale_factor, scaled_value| ScaledValue {
            scale_factor,
            scaled_value,
        };
        let e = EarthShape {
            shape: 1,
            spherical_earth_radius: sv(1, 63_712_290),
            major_axis: sv(0, 0),
            minor_axis: sv(0, 0),
        };
        assert_eq!(earth(&e).unwrap().a, 6_371_229.0);
        assert!(
            earth(&EarthShape {
                shape: 1,
                spherical_earth_radius: sv(0, 5),
                ..e.clone()
            })
            .is_err()
        );
        assert!(earth(&EarthShape { shape: 42, ..e }).is_err());
        assert_eq!(template_name(90), "space view");
    }

    /// HRRR message 1 with its section 5 changed by `edit` and its section 7 replaced by
    /// `s7` (the section 0 length fixed).
    fn hrrr_edited(edit: impl Fn(&mut Vec<u8>), s7: &[u8]) -> Vec<u8> {
        let bytes = std::fs::read(FIXTURE).unwrap();
        let len = section0_len(&bytes).unwrap();
        let msg = &bytes[..len as usize];
        let Walked::Fields(f) = grib2::field_sections(msg, len).unwrap() else {
            panic!("whole message")
        };
        let f = &f[0];
        let mut out = msg[..f.s5.start].to_vec();
        let mut s5 = msg[f.s5.clone()].to_vec();
        edit(&mut s5);
        out.extend_from_slice(&s5);
        out.extend_from_slice(&msg[f.s6.clone()]);
        out.extend_from_slice(s7);
        out.extend_from_slice(b"7777");
        let total = out.len() as u64;
        out[8..16].copy_from_slice(&total.to_be_bytes());
        out
    }

    /// Complex packing with 0 bits and an empty section 7 is the constant R * 10^-D; an
    /// unsupported packing is refused by its template number and name.
    #[test]
    fn constant_fields_decode_and_unsupported_packings_are_named() {
        let template = |m: &[u8]| {
            let len = section0_len(m).unwrap();
            let Walked::Fields(f) = grib2::field_sections(m, len).unwrap() else {
                panic!()
            };
            let s5 = &m[f[0].s5.clone()];
            u16::from_be_bytes([s5[9], s5[10]])
        };
        let constant = hrrr_edited(
            |s5| {
                s5[11..15].copy_from_slice(&2735.0f32.to_be_bytes()); // R
                s5[17..19].copy_from_slice(&1u16.to_be_bytes()); // D = 1
                s5[19] = 0; // bits
            },
            &[0, 0, 0, 5, 7],
        );
        assert!(matches!(template(&constant), 2 | 3));
        let v = decode(&constant, 0).unwrap();
        assert_eq!(v.len(), 1799 * 1059);
        assert!(v.iter().all(|&x| (x - 273.5).abs() < 1e-4), "{:?}", &v[..3]);
        assert!(parse_header(&constant).is_ok());
        let ieee = hrrr_edited(
            |s5| s5[9..11].copy_from_slice(&4u16.to_be_bytes()),
            &[0, 0, 0, 5, 7],
        );
        let e = parse_header(&ieee).unwrap_err().to_string();
        assert!(
            e.contains("template 5.4 (IEEE floating point) is not supported"),
            "{e}"
        );
    }

    #[test]
    fn hrrr_header_and_values_match_eccodes_reference() {
        let bytes = std::fs::read(FIXTURE).unwrap();
        let m = &eccodes_messages()[0];
        let num = |k: &str| m[k].as_f64().unwrap();
        let len = section0_len(&bytes).unwrap() as usize;
        assert_eq!(len as f64, num("length"));
        let h = parse_header(&bytes[..HEAD_BYTES as usize]).unwrap();
        assert_eq!(
            (h.discipline, h.category, h.number),
            (
                num("discipline") as u8,
                num("parameterCategory") as u8,
                num("parameterNumber") as u8
            )
        );
        assert_eq!(h.reference_time, m["reference_time"]);
        // The 0-12 h accumulation is valid at its end.
        assert_eq!(h.valid_time.as_deref(), m["valid_time"].as_str());
        assert_eq!((h.grid.nx as f64, h.grid.ny as f64), (num("Nx"), num("Ny")));
        assert!((h.grid.dx - num("DxInMetres")).abs() < 1e-6 && h.grid.dy > 0.0);
        let v = decode(&bytes[..len], 0).unwrap();
        assert_eq!(v.len() as f64, num("count"));
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let max = v.iter().cloned().fold(f32::MIN, f32::max);
        // Within 1e-5 relative of eccodes' mean; the max to half the packing step (0.01).
        assert!(
            (mean - num("mean")).abs() / num("mean") < 1e-5,
            "mean {mean}"
        );
        assert!((f64::from(max) - num("max")).abs() < 0.005, "max {max}");
        let (lat, lon) = h.grid.latlon().unwrap();
        assert!(
            (lat[0] - num("lat0")).abs() < 1e-4 && (lon[0] - (num("lon0") - 360.0)).abs() < 1e-4
        );
        // A truncated message is an error, not a panic.
        assert!(decode(&bytes[..len / 2], 0).is_err());
    }
}
