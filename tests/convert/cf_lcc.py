"""The CF dataset the Zarr-to-COG tests write: T2(time, y, x) in K on a Lambert conformal grid
(CONUS404's projection) whose y runs south to north, a NaN corner, and a `crs` grid-mapping
variable. Imported by the store writers beside it."""
import numpy as np
import pandas as pd
import xarray as xr


def cf_lcc(nt, ny, nx, d, x0, y0, seed, freq):
    """The dataset, its x and y coordinates and its times."""
    rng = np.random.default_rng(seed)
    data = rng.normal(280, 10, (nt, ny, nx)).astype("float32")
    data[:, :4, :6] = np.nan
    x = x0 + d * np.arange(nx)
    y = y0 + d * np.arange(ny)  # ascending: south to north
    times = pd.date_range("1979-10-01T00:00", periods=nt, freq=freq)
    ds = xr.Dataset(
        {"T2": (("time", "y", "x"), data, {"units": "K", "grid_mapping": "crs"}),
         "crs": ((), np.int32(0), {
             "grid_mapping_name": "lambert_conformal_conic",
             "standard_parallel": [30.0, 50.0],
             "latitude_of_projection_origin": 39.100006,
             "longitude_of_central_meridian": -97.9,
             "false_easting": 0.0, "false_northing": 0.0,
             "semi_major_axis": 6370000.0, "semi_minor_axis": 6370000.0})},
        coords={"time": times, "y": ("y", y, {"units": "m"}), "x": ("x", x, {"units": "m"})},
    )
    return ds, x, y, times
