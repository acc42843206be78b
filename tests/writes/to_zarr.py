"""Writes a CONUS404-shaped dataset (dask arrays, 8 workers) with xarray's to_zarr into a folder (the mount), appends
time steps, and checks a copy of the same store (downloaded from the server) against the data.

    to_zarr.py write STORE      to_zarr(consolidated=True), then three appends along time
    to_zarr.py check STORE      opens STORE (the server's copy) and compares; prints JSON
"""
import json
import sys

import dask
import numpy as np
import xarray as xr

# Chunks are written by eight threads at once, as a dask cluster's workers would.
dask.config.set(scheduler="threads", num_workers=8)


def dataset(t0, nt):
    times = np.arange(t0, t0 + nt).astype("datetime64[h]").astype("datetime64[ns]")
    y, x = np.arange(20), np.arange(30)
    t2 = (np.arange(nt * 20 * 30, dtype="float32").reshape(nt, 20, 30) + t0 * 1000) / 7
    return xr.Dataset(
        {"T2": (("time", "y", "x"), t2)},
        coords={"time": times, "y": y, "x": x},
    ).chunk({"time": 2, "y": 10, "x": 15})


# Three steps first (the last Zarr chunk along time is partial), then three appends of two:
# each rewrites the partial chunk and the consolidated metadata.
FIRST, STEP, APPENDS = 3, 2, 3


def full():
    parts = [dataset(0, FIRST)] + [dataset(FIRST + STEP * i, STEP) for i in range(APPENDS)]
    return xr.concat(parts, dim="time")


def main():
    mode, store = sys.argv[1], sys.argv[2]
    if mode == "write":
        dataset(0, FIRST).to_zarr(store, mode="w", consolidated=True)
        for i in range(APPENDS):
            dataset(FIRST + STEP * i, STEP).to_zarr(
                store, mode="a", append_dim="time", consolidated=True, align_chunks=True
            )
        print(json.dumps({"written": True}))
    else:
        got = xr.open_zarr(store, consolidated=True).load()
        want = full().load()
        xr.testing.assert_equal(got, want)
        print(json.dumps({"times": int(got.sizes["time"]), "equal": True}))


main()
