"""One-message GRIB2 file's Zarr view (xarray, consolidated) vs eccodes: values (missing points
NaN), coordinates and the CF grid mapping. Dumps the field as NAME.npy and what GDAL's check
needs as NAME.json in OUT. Usage: ZARR GRIB OUT NAME."""
import json
import sys

import eccodes
import numpy as np
import xarray as xr

zarr, grib, out, name = sys.argv[1:5]
ds = xr.open_zarr(zarr, consolidated=True)
with open(grib, "rb") as f:
    h = eccodes.codes_grib_new_from_file(f)
get = lambda k: eccodes.codes_get(h, k)
ni, nj = get("Ni"), get("Nj")
ref = eccodes.codes_get_values(h).reshape(nj, ni)
missing = ref == get("missingValue") if get("bitmapPresent") else np.zeros(ref.shape, bool)
lats = eccodes.codes_get_array(h, "latitudes").reshape(nj, ni)
lons = eccodes.codes_get_array(h, "longitudes").reshape(nj, ni)
template = get("gridDefinitionTemplateNumber")
i_west = get("iScansNegatively") == 1
j_north = get("jScansPositively") == 1

fields = [v for v in ds.data_vars if v not in ("crs", "latitude", "longitude", "x", "y")]
assert len(fields) == 1, fields
got = ds[fields[0]].values
assert got.dtype == np.float32 and got.shape == (nj, ni), (got.dtype, got.shape)
assert (np.isnan(got) == missing).all(), f"{name}: NaN where eccodes has {missing.sum()} missing"
assert missing.sum() > 0 or not get("bitmapPresent"), name
ok = ~missing
bad = (np.abs(got[ok] - ref[ok]) > 1e-5 * np.abs(ref[ok])).sum()
assert bad == 0, f"{name}: {bad} values differ from eccodes by > 1e-5 relative"
crs = ds["crs"].attrs
gm = {0: "latitude_longitude", 10: "mercator", 20: "polar_stereographic"}[template]
assert crs["grid_mapping_name"] == gm, crs
assert "wkt" in ds[fields[0]].attrs["_CRS"], ds[fields[0]].attrs

geo = {}
if template == 0:
    lon = ds["longitude"].values
    lat = ds["latitude"].values
    assert ds[fields[0]].dims == ("latitude", "longitude"), ds[fields[0]].dims
    assert np.abs(lat - lats[:, 0]).max() < 1e-6, (lat, lats[:, 0])
    d = (lon - lons[0, :] + 180.0) % 360.0 - 180.0
    assert np.abs(d).max() < 1e-6, (lon, lons[0, :])
    assert (np.diff(lon) > 0).all() or (np.diff(lon) < 0).all(), lon
    dx, dy = abs(lon[1] - lon[0]), abs(lat[1] - lat[0])
    # Pixel-edge extent from eccodes' own coordinates, longitudes unwrapped from the first.
    unwrapped = lons[0, 0] + np.cumsum(np.r_[0.0, (np.diff(lons[0, :]) + 180.0) % 360.0 - 180.0])
    geo = {"west": float(unwrapped.min() - dx / 2), "east": float(unwrapped.max() + dx / 2),
           "north": float(lats.max() + dy / 2), "south": float(lats.min() - dy / 2)}
else:
    assert ds[fields[0]].dims == ("y", "x") and ds["x"].attrs["units"] == "m"
    assert np.abs(ds["latitude"].values - lats).max() < 1e-5
    d = (ds["longitude"].values - lons + 180.0) % 360.0 - 180.0
    assert np.abs(d).max() < 1e-5, np.abs(d).max()
np.save(f"{out}/{name}.npy", got)
with open(f"{out}/{name}.json", "w") as f:
    json.dump({"flip_rows": j_north, "flip_cols": i_west, "geographic": template == 0, **geo}, f)
print("ok", name, fields[0], "missing", int(missing.sum()))
