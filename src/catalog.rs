//! Dataset presets: where each public dataset lives and how it is accessed, so that
//! `geomount mount conus404 /mnt/conus404` needs no bucket, endpoint or credential knowledge.
//! Every value here can be overridden by the matching `geomount mount` flag.

use anyhow::{Result, bail};

/// NASA LP DAAC's temporary-credentials endpoint (Earthdata login through `~/.netrc`).
pub const LPDAAC_S3CREDENTIALS: &str = "https://data.lpdaac.earthdatacloud.nasa.gov/s3credentials";

/// How a preset's requests are signed unless a flag says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetAccess {
    /// Unsigned requests (public bucket).
    Anonymous,
    /// NASA Earthdata temporary credentials fetched from this `s3credentials` URL.
    Earthdata(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub description: &'static str,
    pub bucket: &'static str,
    /// Key prefix mounted as the root: empty or ending with `/`.
    pub prefix: &'static str,
    /// `None`: AWS's own endpoint for the region.
    pub endpoint: Option<&'static str>,
    pub region: &'static str,
    pub force_path_style: bool,
    pub access: PresetAccess,
}

impl Preset {
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    pub fn access_text(&self) -> String {
        match self.access {
            PresetAccess::Anonymous => "anonymous".into(),
            PresetAccess::Earthdata(url) => format!("NASA Earthdata temporary keys ({url})"),
        }
    }
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "conus404",
        description: "USGS HyTEST CONUS404 4 km WRF reanalysis 1979-2022, Zarr (hourly, daily, monthly, ...)",
        bucket: "hytest",
        prefix: "conus404/",
        endpoint: Some("https://usgs.osn.mghpcc.org"),
        region: "us-east-1",
        force_path_style: true,
        access: PresetAccess::Anonymous,
    },
    Preset {
        name: "hrrr",
        description: "NOAA High-Resolution Rapid Refresh 3 km forecasts, GRIB2 with .idx sidecars",
        bucket: "noaa-hrrr-bdp-pds",
        prefix: "",
        endpoint: None,
        region: "us-east-1",
        force_path_style: false,
        access: PresetAccess::Anonymous,
    },
    Preset {
        name: "wrf-cmip6",
        description: "WRF-downscaled CMIP6 projections over the western US, NetCDF-4",
        bucket: "wrf-cmip6-noversioning",
        prefix: "",
        endpoint: None,
        region: "us-west-2",
        force_path_style: false,
        access: PresetAccess::Anonymous,
    },
    Preset {
        name: "cresst",
        description: "CRESST shared project bucket: derived COGs, Zarr and NetCDF (anonymous read)",
        bucket: "cresst",
        prefix: "",
        endpoint: None,
        region: "us-west-2",
        force_path_style: false,
        access: PresetAccess::Anonymous,
    },
    Preset {
        name: "hls",
        description: "NASA Harmonized Landsat Sentinel-2 COGs (needs an Earthdata login in ~/.netrc)",
        bucket: "lp-prod-protected",
        prefix: "",
        endpoint: None,
        region: "us-west-2",
        force_path_style: false,
        access: PresetAccess::Earthdata(LPDAAC_S3CREDENTIALS),
    },
    Preset {
        name: "mast",
        description: "STScI MAST public archive (JWST, HST, TESS), FITS files",
        bucket: "stpubdata",
        prefix: "",
        endpoint: None,
        region: "us-east-1",
        force_path_style: false,
        access: PresetAccess::Anonymous,
    },
];

/// The preset called `name`; an unknown name is an error listing every preset.
pub fn find(name: &str) -> Result<&'static Preset> {
    match PRESETS.iter().find(|p| p.name == name) {
        Some(p) => Ok(p),
        None => bail!(
            "unknown dataset preset '{name}': use one of {} (see `geomount catalog`), or a source URL s3://BUCKET[/PREFIX] or file:///ABS/PATH",
            names().join(", ")
        ),
    }
}

pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// The text `geomount catalog` prints: one block per preset.
pub fn describe() -> String {
    let mut out = String::new();
    for p in PRESETS {
        let endpoint = p.endpoint.map_or_else(
            || format!("AWS (https://s3.{}.amazonaws.com)", p.region),
            |e| {
                format!(
                    "{e}{}",
                    if p.force_path_style {
                        " (path-style)"
                    } else {
                        ""
                    }
                )
            },
        );
        out.push_str(&format!(
            "{}\n  {}\n  bucket:   {}\n  prefix:   {}\n  endpoint: {endpoint}\n  region:   {}\n  access:   {}\n",
            p.name,
            p.description,
            p.bucket,
            if p.prefix.is_empty() { "/" } else { p.prefix },
            p.region,
            p.access_text(),
        ));
    }
    out.push_str(
        "\nMount one with `geomount mount PRESET MOUNTPOINT`; flags such as --endpoint-url, --region,\n\
         --profile or --no-sign-request override the preset's values.\n",
    );
    out
}

/// What `geomount catalog --json` prints: one object per preset; `endpoint` is `null` for AWS's
/// own endpoint of the region, `access` is `"anonymous"` or `"earthdata"` (with `earthdata_url`).
pub fn to_json() -> serde_json::Value {
    let presets = PRESETS
        .iter()
        .map(|p| {
            let (access, earthdata_url) = match p.access {
                PresetAccess::Anonymous => ("anonymous", None),
                PresetAccess::Earthdata(url) => ("earthdata", Some(url)),
            };
            serde_json::json!({
                "name": p.name,
                "description": p.description,
                "url": p.url(),
                "bucket": p.bucket,
                "prefix": p.prefix,
                "endpoint": p.endpoint,
                "region": p.region,
                "force_path_style": p.force_path_style,
                "access": access,
                "earthdata_url": earthdata_url,
            })
        })
        .collect();
    serde_json::Value::Array(presets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_names_are_unique_and_prefixes_well_formed() {
        let mut names = names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len());
        for p in PRESETS {
            assert!(p.prefix.is_empty() || p.prefix.ends_with('/'), "{}", p.name);
            assert!(!p.bucket.is_empty() && !p.description.is_empty());
        }
    }

    #[test]
    fn unknown_preset_lists_the_presets() {
        let msg = find("conus").unwrap_err().to_string();
        for p in PRESETS {
            assert!(msg.contains(p.name), "{msg}");
        }
        assert!(msg.contains("geomount catalog"), "{msg}");
    }

    #[test]
    fn the_catalog_shows_every_preset_with_bucket_endpoint_and_access() {
        let text = describe();
        for p in PRESETS {
            assert!(
                text.contains(p.name) && text.contains(p.bucket) && text.contains(p.description)
            );
        }
        assert!(text.contains("https://usgs.osn.mghpcc.org (path-style)"));
        assert!(text.contains("NASA Earthdata temporary keys"));
    }

    #[test]
    fn the_json_catalog_has_one_object_per_preset() {
        let json = to_json();
        let list = json.as_array().unwrap();
        assert_eq!(list.len(), PRESETS.len());
        for (v, p) in list.iter().zip(PRESETS) {
            assert_eq!(v["name"], p.name);
            assert_eq!(v["bucket"], p.bucket);
            assert_eq!(v["url"], p.url());
        }
        let conus = &list[0];
        assert_eq!(conus["endpoint"], "https://usgs.osn.mghpcc.org");
        assert_eq!(conus["access"], "anonymous");
        let hls = list.iter().find(|v| v["name"] == "hls").unwrap();
        assert_eq!(hls["endpoint"], serde_json::Value::Null);
        assert_eq!(hls["access"], "earthdata");
        assert_eq!(hls["earthdata_url"], LPDAAC_S3CREDENTIALS);
    }
}
