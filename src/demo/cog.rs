//! The demo's Cloud Optimized GeoTIFF: day 1 of the synthetic CONUS404 T2, upsampled to 500 m
//! and written by the COG writer in [`crate::convert::cog`].

use anyhow::Result;

use super::Output;
use super::zarr::{Conus404, DX, NX, NY};
use crate::convert::cog::{CogSpec, GeoRef, Raster, pyramid, write_compact};
use crate::convert::crs::{Crs, Earth};

/// GDAL_NODATA of the demo COG.
pub(crate) const NODATA: f32 = -9999.0;
/// zlib level of the demo COG's tiles (GDAL's default DEFLATE level).
const DEFLATE_LEVEL: u32 = 6;
/// The demo COG upsamples the 4 km grid by this factor (500 m pixels).
const UPSAMPLE: usize = 8;

/// CONUS404's Lambert conformal conic on the WRF sphere.
const CONUS404_CRS: Crs = Crs::LambertConformal {
    earth: Earth {
        a: 6_370_000.0,
        b: 6_370_000.0,
    },
    lat1: 30.0,
    lat2: 50.0,
    lat0: 39.1,
    lon0: -97.9,
};

/// Writes `cog/T2_1979-10-01.tif`: day 1 of the Zarr T2, flipped north-up and bilinearly
/// upsampled from 4 km to 500 m over exactly the Zarr grid's extent.
pub(crate) fn write_demo_cog(c: &Conus404, out: &mut Output, rel: &str) -> Result<()> {
    let full = upsample_bilinear(c, c.t2_day(0), UPSAMPLE);
    let pixel = DX / UPSAMPLE as f64;
    let geo = GeoRef {
        west: c.x[0] - DX / 2.0,
        north: c.y[NY - 1] + DX / 2.0,
        dx: pixel,
        dy: pixel,
    };
    let metadata = "<GDALMetadata>\n\
        \x20 <Item name=\"source\">geomount offline demo: synthetic CONUS404-like T2, 1979-10-01 (NOT real data)</Item>\n\
        \x20 <Item name=\"DESCRIPTION\" sample=\"0\" role=\"description\">T2</Item>\n\
        \x20 <Item name=\"UNITTYPE\" sample=\"0\" role=\"unittype\">K</Item>\n\
        \x20 <Item name=\"long_name\" sample=\"0\">Temperature at 2 m</Item>\n\
        </GDALMetadata>\n";
    let spec = CogSpec {
        width: full.width,
        height: full.height,
        geo,
        crs: CONUS404_CRS,
        nodata: NODATA,
        gdal_metadata: Some(metadata.to_string()),
    };
    let bytes = write_compact(&spec, &pyramid(full, NODATA), DEFLATE_LEVEL)?;
    if let Some((dir, _)) = rel.rsplit_once('/') {
        out.mkdir(dir)?;
    }
    out.write(rel, &bytes)
}

/// Bilinear interpolation of a south-to-north (NY, NX) grid onto a north-up grid `factor`
/// times finer covering the same extent; outside the outer cell centres values are clamped.
fn upsample_bilinear(c: &Conus404, field: &[f32], factor: usize) -> Raster {
    let (width, height) = (NX * factor, NY * factor);
    let pixel = DX / factor as f64;
    let (west, north) = (c.x[0] - DX / 2.0, c.y[NY - 1] + DX / 2.0);
    // Fractional grid index of a coordinate -> (lower index, weight of the upper one).
    let locate = |coord: f64, origin: f64, n: usize| {
        let f = ((coord - origin) / DX).clamp(0.0, (n - 1) as f64);
        let k = (f.floor() as usize).min(n - 2);
        (k, f - k as f64)
    };
    let cols: Vec<(usize, f64)> = (0..width)
        .map(|q| locate(west + (q as f64 + 0.5) * pixel, c.x[0], NX))
        .collect();
    let mut data = Vec::with_capacity(width * height);
    for r in 0..height {
        let (j, wy) = locate(north - (r as f64 + 0.5) * pixel, c.y[0], NY);
        let (s, n) = (
            &field[j * NX..(j + 1) * NX],
            &field[(j + 1) * NX..(j + 2) * NX],
        );
        for &(i, wx) in &cols {
            let south = f64::from(s[i]) * (1.0 - wx) + f64::from(s[i + 1]) * wx;
            let northv = f64::from(n[i]) * (1.0 - wx) + f64::from(n[i + 1]) * wx;
            data.push((south * (1.0 - wy) + northv * wy) as f32);
        }
    }
    Raster {
        width,
        height,
        data,
    }
}
