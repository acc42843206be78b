//! The grids conversions georeference: their GeoTIFF keys, CF grid-mapping attributes and WKT
//! (for GDAL's `_CRS`). Angles in degrees, lengths in metres; the earth is an ellipsoid given
//! by its semi-axes (a sphere when they are equal).

use serde_json::{Map, Value, json};

use super::tiff::{Entry, GeoKeys};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Earth {
    pub a: f64,
    pub b: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Crs {
    Geographic {
        earth: Earth,
    },
    /// Lambert conformal conic; `lat1 == lat2` is the tangent (1SP-like) case HRRR uses.
    LambertConformal {
        earth: Earth,
        lat1: f64,
        lat2: f64,
        lat0: f64,
        lon0: f64,
    },
    /// Polar stereographic with latitude of true scale `lat_ts` (its sign picks the pole).
    PolarStereographic {
        earth: Earth,
        lat_ts: f64,
        lon0: f64,
    },
    /// Mercator with latitude of true scale `lat_ts`.
    Mercator {
        earth: Earth,
        lat_ts: f64,
        lon0: f64,
    },
}

const USER_DEFINED: u16 = 32767;

impl Crs {
    pub fn earth(&self) -> Earth {
        match *self {
            Crs::Geographic { earth }
            | Crs::LambertConformal { earth, .. }
            | Crs::PolarStereographic { earth, .. }
            | Crs::Mercator { earth, .. } => earth,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Crs::Geographic { .. } => "geographic",
            Crs::LambertConformal { .. } => "Lambert conformal conic",
            Crs::PolarStereographic { .. } => "polar stereographic",
            Crs::Mercator { .. } => "Mercator",
        }
    }

    /// GeoTIFF keys: user-defined datum and ellipsoid, and for projections a user-defined
    /// projected CS with its coordinate transformation.
    pub(crate) fn geokey_entries(&self) -> Vec<Entry> {
        let Earth { a, b } = self.earth();
        let mut g = GeoKeys::default();
        let projected = !matches!(self, Crs::Geographic { .. });
        g.short(1024, if projected { 1 } else { 2 }); // GTModelType
        g.short(1025, 1); // GTRasterType = PixelIsArea
        g.text(1026, self.name()); // GTCitation
        g.short(2048, USER_DEFINED); // GeographicType
        g.text(2049, &format!("ellipsoid a={a} b={b}")); // GeogCitation
        g.short(2050, USER_DEFINED); // GeogGeodeticDatum
        g.short(2051, 8901); // GeogPrimeMeridian = Greenwich
        g.short(2054, 9102); // GeogAngularUnits = degree
        g.short(2056, USER_DEFINED); // GeogEllipsoid
        g.double(2057, a); // GeogSemiMajorAxis
        g.double(2058, b); // GeogSemiMinorAxis
        if projected {
            g.short(3072, USER_DEFINED); // ProjectedCSType
            g.text(3073, self.name()); // PCSCitation
            g.short(3074, USER_DEFINED); // Projection
            g.short(3076, 9001); // ProjLinearUnits = metre
        }
        match *self {
            Crs::Geographic { .. } => {}
            Crs::LambertConformal {
                lat1,
                lat2,
                lat0,
                lon0,
                ..
            } => {
                g.short(3075, 8); // CT_LambertConfConic_2SP
                g.double(3078, lat1); // ProjStdParallel1
                g.double(3079, lat2); // ProjStdParallel2
                g.double(3084, lon0); // ProjFalseOriginLong
                g.double(3085, lat0); // ProjFalseOriginLat
                g.double(3086, 0.0); // ProjFalseOriginEasting
                g.double(3087, 0.0); // ProjFalseOriginNorthing
            }
            Crs::PolarStereographic { lat_ts, lon0, .. } => {
                // GDAL reads a non-polar ProjNatOriginLat as variant B's latitude of true scale.
                g.short(3075, 15); // CT_PolarStereographic
                g.double(3081, lat_ts); // ProjNatOriginLat
                g.double(3082, 0.0); // ProjFalseEasting
                g.double(3083, 0.0); // ProjFalseNorthing
                g.double(3092, 1.0); // ProjScaleAtNatOrigin
                g.double(3095, lon0); // ProjStraightVertPoleLong
            }
            Crs::Mercator { lat_ts, lon0, .. } => {
                g.short(3075, 7); // CT_Mercator
                g.double(3078, lat_ts); // ProjStdParallel1 (Mercator 2SP)
                g.double(3080, lon0); // ProjNatOriginLong
                g.double(3081, 0.0); // ProjNatOriginLat
                g.double(3082, 0.0); // ProjFalseEasting
                g.double(3083, 0.0); // ProjFalseNorthing
            }
        }
        g.into_entries()
    }

    /// OGC WKT 1 of the CRS, as GDAL reads from a Zarr `_CRS` attribute.
    pub fn wkt(&self) -> String {
        let Earth { a, b } = self.earth();
        let inv_f = if a == b { 0.0 } else { a / (a - b) };
        let geog = format!(
            "GEOGCS[\"unknown\",DATUM[\"unknown\",SPHEROID[\"unknown\",{a},{inv_f}]],\
             PRIMEM[\"Greenwich\",0],UNIT[\"degree\",0.0174532925199433]]"
        );
        let proj = |method: &str, params: &[(&str, f64)]| {
            let p: String = params
                .iter()
                .map(|(k, v)| format!(",PARAMETER[\"{k}\",{v}]"))
                .collect();
            format!(
                "PROJCS[\"{}\",{geog},PROJECTION[\"{method}\"]{p},UNIT[\"metre\",1]]",
                self.name()
            )
        };
        match *self {
            Crs::Geographic { .. } => geog,
            Crs::LambertConformal {
                lat1,
                lat2,
                lat0,
                lon0,
                ..
            } => proj(
                "Lambert_Conformal_Conic_2SP",
                &[
                    ("standard_parallel_1", lat1),
                    ("standard_parallel_2", lat2),
                    ("latitude_of_origin", lat0),
                    ("central_meridian", lon0),
                    ("false_easting", 0.0),
                    ("false_northing", 0.0),
                ],
            ),
            Crs::PolarStereographic { lat_ts, lon0, .. } => proj(
                "Polar_Stereographic",
                &[
                    ("latitude_of_origin", lat_ts),
                    ("central_meridian", lon0),
                    ("scale_factor", 1.0),
                    ("false_easting", 0.0),
                    ("false_northing", 0.0),
                ],
            ),
            Crs::Mercator { lat_ts, lon0, .. } => proj(
                "Mercator_2SP",
                &[
                    ("standard_parallel_1", lat_ts),
                    ("central_meridian", lon0),
                    ("false_easting", 0.0),
                    ("false_northing", 0.0),
                ],
            ),
        }
    }

    /// CF grid-mapping attributes for a `crs` variable, plus `crs_wkt` and GDAL's `_CRS`.
    pub fn cf_attrs(&self) -> Map<String, Value> {
        let Earth { a, b } = self.earth();
        let mut m = Map::new();
        let mut set = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        match *self {
            Crs::Geographic { .. } => set("grid_mapping_name", json!("latitude_longitude")),
            Crs::LambertConformal {
                lat1,
                lat2,
                lat0,
                lon0,
                ..
            } => {
                set("grid_mapping_name", json!("lambert_conformal_conic"));
                set("standard_parallel", json!([lat1, lat2]));
                set("latitude_of_projection_origin", json!(lat0));
                set("longitude_of_central_meridian", json!(lon0));
            }
            Crs::PolarStereographic { lat_ts, lon0, .. } => {
                set("grid_mapping_name", json!("polar_stereographic"));
                set(
                    "latitude_of_projection_origin",
                    json!(if lat_ts >= 0.0 { 90.0 } else { -90.0 }),
                );
                set("standard_parallel", json!(lat_ts));
                set("straight_vertical_longitude_from_pole", json!(lon0));
            }
            Crs::Mercator { lat_ts, lon0, .. } => {
                set("grid_mapping_name", json!("mercator"));
                set("standard_parallel", json!(lat_ts));
                set("longitude_of_projection_origin", json!(lon0));
            }
        }
        if !matches!(self, Crs::Geographic { .. }) {
            set("false_easting", json!(0.0));
            set("false_northing", json!(0.0));
        }
        set("semi_major_axis", json!(a));
        set("semi_minor_axis", json!(b));
        let wkt = self.wkt();
        set("crs_wkt", json!(wkt));
        set("_CRS", json!({ "wkt": wkt }));
        m
    }
}

/// The CRS a CF grid-mapping variable's attributes describe: `lambert_conformal_conic`,
/// `polar_stereographic`, `mercator` and `latitude_longitude`, with false easting/northing
/// zero. The earth comes from `semi_major_axis` with `semi_minor_axis` or
/// `inverse_flattening`, or from `earth_radius`; WGS 84 when none is given.
pub fn from_cf(attrs: &Map<String, Value>) -> anyhow::Result<Crs> {
    use anyhow::{Context, bail};
    let num = |k: &str| -> Option<f64> {
        match attrs.get(k)? {
            Value::Array(v) => v.first()?.as_f64(),
            v => v.as_f64(),
        }
    };
    let need = |k: &str| num(k).with_context(|| format!("grid mapping lacks `{k}`"));
    let earth = match (
        num("semi_major_axis"),
        num("semi_minor_axis"),
        num("inverse_flattening"),
        num("earth_radius"),
    ) {
        (Some(a), Some(b), _, _) => Earth { a, b },
        (Some(a), None, Some(f), _) if f != 0.0 => Earth { a, b: a - a / f },
        (Some(a), None, _, _) | (None, _, _, Some(a)) => Earth { a, b: a },
        _ => Earth {
            a: 6_378_137.0,
            b: 6_356_752.314_245_179,
        },
    };
    for k in ["false_easting", "false_northing"] {
        if num(k).is_some_and(|v| v != 0.0) {
            bail!("grid mapping has a non-zero `{k}`, which is not supported");
        }
    }
    let name = attrs
        .get("grid_mapping_name")
        .and_then(Value::as_str)
        .context("grid mapping lacks `grid_mapping_name`")?;
    Ok(match name {
        "latitude_longitude" => Crs::Geographic { earth },
        "lambert_conformal_conic" => {
            let parallels: Vec<f64> = match attrs.get("standard_parallel") {
                Some(Value::Array(v)) => v.iter().filter_map(Value::as_f64).collect(),
                Some(v) => v.as_f64().into_iter().collect(),
                None => vec![],
            };
            let lat1 = *parallels
                .first()
                .context("grid mapping lacks `standard_parallel`")?;
            Crs::LambertConformal {
                earth,
                lat1,
                lat2: parallels.get(1).copied().unwrap_or(lat1),
                lat0: need("latitude_of_projection_origin")?,
                lon0: need("longitude_of_central_meridian")?,
            }
        }
        "polar_stereographic" => Crs::PolarStereographic {
            earth,
            lat_ts: need("standard_parallel")?,
            lon0: need("straight_vertical_longitude_from_pole")?,
        },
        "mercator" => Crs::Mercator {
            earth,
            lat_ts: num("standard_parallel").unwrap_or(0.0),
            lon0: need("longitude_of_projection_origin")?,
        },
        other => bail!("grid mapping `{other}` is not supported"),
    })
}
