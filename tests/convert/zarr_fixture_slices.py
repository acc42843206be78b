"""Saves each time step of a Zarr store's array as zarr-python reads it (<var>_<t>.npy in OUT)
and prints the step count and the grid's corner (west, north) and spacing from its 1-D y/x."""
import sys

import numpy as np
import zarr

store, var, out = sys.argv[1:4]
g = zarr.open_group(store, mode="r")
arr = g[var]
for t in range(arr.shape[0]):
    np.save(f"{out}/{var}_{t}.npy", arr[t])
x, y = g["x"][:], g["y"][:]
dx, dy = x[1] - x[0], y[1] - y[0]
print("steps", arr.shape[0])
print("corner", x.min() - abs(dx) / 2, y.max() + abs(dy) / 2, abs(dx), abs(dy))
