"""Writes NetCDF-4/HDF5 files into a folder (the mount) with the real writers, and checks copies
of them (downloaded from the server) against the data.

    netcdf.py write DIR     to_netcdf with netcdf4 and h5netcdf; h5py mode="a" on a missing path
    netcdf.py check DIR     opens the server's copies; prints JSON
"""
import json
import os
import sys

import h5py
import numpy as np
import xarray as xr


def dataset():
    t2 = np.arange(6 * 20 * 30, dtype="float32").reshape(6, 20, 30) / 3
    return xr.Dataset(
        {"T2": (("time", "y", "x"), t2, {"units": "K"})},
        coords={"time": np.arange(6), "y": np.arange(20), "x": np.arange(30)},
    )


def main():
    mode, d = sys.argv[1], sys.argv[2]
    if mode == "write":
        dataset().to_netcdf(os.path.join(d, "a_netcdf4.nc"), engine="netcdf4")
        dataset().to_netcdf(os.path.join(d, "b_h5netcdf.nc"), engine="h5netcdf")
        with h5py.File(os.path.join(d, "c_h5py.h5"), "a") as f:
            f.create_dataset("v", data=np.arange(1000, dtype="int64"), chunks=(100,))
            f["v"].attrs["note"] = "appended"
        with h5py.File(os.path.join(d, "c_h5py.h5"), "a") as f:
            f.create_dataset("w", data=np.ones(10))
        print(json.dumps({"written": True}))
        return
    want = dataset()
    out = {}
    for name, engine in [("a_netcdf4.nc", "netcdf4"), ("b_h5netcdf.nc", "h5netcdf")]:
        got = xr.open_dataset(os.path.join(d, name), engine=engine).load()
        xr.testing.assert_identical(got, want)
        out[name] = True
    with h5py.File(os.path.join(d, "c_h5py.h5"), "r") as f:
        assert (f["v"][:] == np.arange(1000)).all()
        assert f["v"].attrs["note"] == "appended"
        assert (f["w"][:] == 1).all()
        out["c_h5py.h5"] = True
    print(json.dumps(out))


main()
