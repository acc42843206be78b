"""Compares each folder view DIR.zarr with the folder's files joined by xarray
(`open_mfdataset` with h5netcdf), and prints each view's variables and length of time.
Arguments: MOUNT DIR..."""
import glob
import json
import sys

import xarray as xr

mount, dirs = sys.argv[1], sys.argv[2:]
for d in dirs:
    files = sorted(glob.glob(f"{mount}/{d}/*.nc"))
    a = xr.open_mfdataset(files, engine="h5netcdf", combine="by_coords",
                          data_vars="minimal", coords="minimal")
    z = xr.open_zarr(f"{mount}/{d}.zarr", consolidated=True)
    assert sorted(a.variables) == sorted(z.variables), (d, list(a.variables), list(z.variables))
    assert set(a.coords) == set(z.coords), (d, set(a.coords), set(z.coords))
    xr.testing.assert_identical(a, z)
    print(json.dumps({"dir": d, "variables": sorted(z.variables), "time": z.sizes["time"]}))
