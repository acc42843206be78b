"""Zarr view (xarray, consolidated) vs eccodes on the source GRIB2; dumps arrays as .npy."""
import sys

import eccodes
import numpy as np
import xarray as xr

zarr, grib, out = sys.argv[1:4]
ds = xr.open_zarr(zarr, consolidated=True)
fields = []
with open(grib, "rb") as f:
    while True:
        h = eccodes.codes_grib_new_from_file(f)
        if h is None:
            break
        ny, nx = eccodes.codes_get(h, "Ny"), eccodes.codes_get(h, "Nx")
        fields.append(eccodes.codes_get_values(h).reshape(ny, nx))
        eccodes.codes_release(h)
names = sorted(v for v in ds.data_vars if v.startswith("APCP"))
assert len(names) == len(fields), (names, len(fields))
for k, name in enumerate(sorted(names, key=lambda n: ds[n].attrs["GRIB_message"])):
    got = ds[name].values
    ref = fields[k]
    assert got.dtype == np.float32 and got.shape == ref.shape, (got.dtype, got.shape)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-30)
    bad = (np.abs(got - ref) > 1e-5 * np.maximum(np.abs(ref), 1e-6)).sum()
    assert bad == 0, f"{name}: {bad} values differ from eccodes by > 1e-5 relative (max {rel.max()})"
    assert ds[name].attrs["grid_mapping"] == "crs"
    np.save(f"{out}/{name}.npy", got)
    print(name, "mean", float(got.mean()), "max", float(got.max()))
crs = ds["crs"].attrs
assert crs["grid_mapping_name"] == "lambert_conformal_conic", crs
assert ds["latitude"].shape == (1059, 1799) and ds["x"].attrs["units"] == "m"
lat0 = float(ds["latitude"].values[0, 0])
assert abs(lat0 - 21.138123) < 1e-4, lat0
print("arrays", len(names))
