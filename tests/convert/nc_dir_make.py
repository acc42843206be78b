"""Writes the folder-view fixtures into OUT with xarray (netcdf4 engine), as model archives
are written: one file per year of a daily variable, time unlimited and encoded with one
reference date, chunks (1, y, x) with deflate and shuffle, 2-D lat/lon coordinates.
- OUT/wrf/: three yearly files of 31, 28 and 31 days, which a folder view joins.
- OUT/misaligned/: two files chunked 4 days along time, the first of 31 days, whose chunks
  would not line up: no folder view.
Argument: OUT."""
import os
import sys

import numpy as np
import pandas as pd
import xarray as xr

out = sys.argv[1]
rng = np.random.default_rng(11)
y, x = np.arange(30.0), np.arange(40.0) * 1000.0


def year(start, days, chunk_days):
    time = pd.date_range(start, periods=days, freq="D")
    tas = rng.random((days, 30, 40), dtype="f4") * 40 + 250
    ds = xr.Dataset(
        {
            "tas": (("time", "y", "x"), tas, {"units": "K", "grid_mapping": "crs"}),
            "lat": (("y", "x"), np.add.outer(y, x / 1e3).astype("f4"), {"units": "degrees_north"}),
            "crs": ((), np.int32(0), {"grid_mapping_name": "lambert_conformal_conic"}),
        },
        coords={"time": time, "y": ("y", y), "x": ("x", x)},
        attrs={"title": "geomount folder-view fixture"},
    ).set_coords("lat")
    enc = {
        "tas": {"zlib": True, "shuffle": True, "complevel": 4, "chunksizes": (chunk_days, 30, 40)},
        "time": {"units": "days since 2000-01-01", "calendar": "standard", "dtype": "f8"},
    }
    return ds, enc


for folder, years, chunk in [
    ("wrf", [("2001-01-01", 31), ("2002-02-01", 28), ("2003-03-01", 31)], 1),
    ("misaligned", [("2001-01-01", 31), ("2002-01-01", 31)], 4),
]:
    os.makedirs(f"{out}/{folder}", exist_ok=True)
    for start, days in years:
        ds, enc = year(start, days, chunk)
        ds.to_netcdf(f"{out}/{folder}/tas_{start[:4]}.nc", engine="netcdf4", encoding=enc,
                     unlimited_dims=["time"])
