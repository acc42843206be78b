"""Writes the NetCDF-as-Zarr fixtures into OUT with the real producers: xarray with the
netcdf4 and h5netcdf engines, and h5py (libver latest: fixed array, extensible array and
B-tree v2 indexes; missing chunks; a variable-length string and a compound dataset, which Zarr
cannot hold). Argument: OUT."""
import sys

import h5py
import numpy as np
import pandas as pd
import xarray as xr

out = sys.argv[1]
rng = np.random.default_rng(7)
time = pd.date_range("2001-01-01", periods=24, freq="D")
y, x = np.arange(30.0), np.arange(40.0) * 1000.0


def dataset():
    tas = rng.random((24, 30, 40), dtype="f4") * 40 + 250
    tas[3, 4, 5] = np.nan
    pr = rng.random((24, 30, 40)) * 50
    pr[0, 0, :7] = np.nan
    return xr.Dataset(
        {
            "tas": (("time", "y", "x"), tas, {"units": "K", "long_name": "air temperature",
                                               "grid_mapping": "crs", "cell_methods": "time: mean"}),
            "pr": (("time", "y", "x"), pr, {"units": "mm/day"}),
            "orog": (("y", "x"), rng.random((30, 40)).astype("f8"), {"units": "m"}),
            "lat": (("y", "x"), np.add.outer(y, x / 1e3).astype("f4"), {"units": "degrees_north"}),
            "crs": ((), np.int32(0), {"grid_mapping_name": "lambert_conformal_conic",
                                      "standard_parallel": [30.0, 60.0],
                                      "longitude_of_central_meridian": -98.0}),
            "flags": (("x",), np.arange(40, dtype="u1"), {"flag_values": np.array([0, 1], "u1")}),
        },
        coords={"time": time, "y": ("y", y, {"axis": "Y"}), "x": ("x", x, {"axis": "X"})},
        attrs={"title": "geomount NetCDF-as-Zarr fixture", "institution": "tests", "version": 3},
    ).set_coords("lat")


ds = dataset()
ds.time.encoding.update({"units": "days since 2000-01-01", "calendar": "noleap"})
packed = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 10.0, "_FillValue": -32767}
# netcdf4 engine (libnetcdf, earliest libver): B-tree v1 chunk indexes, an unlimited time.
ds.to_netcdf(
    f"{out}/nc4.nc", engine="netcdf4", unlimited_dims=["time"],
    encoding={
        "tas": {"zlib": True, "shuffle": True, "complevel": 4, "chunksizes": (1, 30, 40)},
        "pr": packed | {"zlib": True, "shuffle": False, "chunksizes": (6, 15, 40)},
        "orog": {"zlib": True, "fletcher32": True, "chunksizes": (10, 40)},
        "time": {"units": "days since 2000-01-01", "calendar": "noleap"},
    },
)
# h5netcdf engine: the same variables, fletcher32 beside shuffle and deflate.
ds.to_netcdf(
    f"{out}/h5.nc", engine="h5netcdf",
    encoding={
        "tas": {"zlib": True, "shuffle": True, "fletcher32": True, "chunksizes": (4, 15, 20)},
        "pr": packed | {"zlib": True, "chunksizes": (24, 10, 10)},
        "time": {"units": "hours since 2001-01-01", "calendar": "proleptic_gregorian"},
    },
)
# h5py, libver latest: the v4 chunk indexes, chunks never written, types Zarr cannot hold.
with h5py.File(f"{out}/latest.h5", "w", libver="latest") as f:
    fa = f.create_dataset("fa", shape=(12, 64, 64), chunks=(1, 32, 32), dtype="f4",
                          compression="gzip", shuffle=True, fillvalue=-1.0)
    fa[::2] = rng.random((6, 64, 64), dtype="f4")  # odd steps never written: fill
    ea = f.create_dataset("ea", shape=(0, 64), maxshape=(None, 64), chunks=(4, 64), dtype="i4",
                          compression="gzip", fletcher32=True)
    ea.resize((20, 64))
    ea[...] = rng.integers(-1000, 1000, (20, 64), dtype="i4")
    bt = f.create_dataset("bt2", shape=(10, 50), maxshape=(None, None), chunks=(3, 16),
                          dtype=">f8", compression="gzip")
    bt[...] = rng.random((10, 50))
    f.create_dataset("contig", data=np.arange(6 * 1000, dtype="i2").reshape(6, 1000))
    f.create_dataset("names", data=np.array(["a", "bb", "ccc"], dtype=object),
                     dtype=h5py.string_dtype())
    f.create_dataset("pairs", data=np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]))
    f.attrs["note"] = "written by h5py"
