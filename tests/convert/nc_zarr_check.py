"""Compares the Zarr view of each NetCDF file with the file as xarray (h5netcdf) reads it,
and every array of each view with the dataset as h5py reads it. Variables Zarr cannot hold
(object and compound types; a Fletcher-32 checksum shuffled with the values, netCDF-C's
filter order, which numcodecs' shuffle cannot undo) must be absent; the rest must be equal.
Arguments: MOUNT NAME..."""
import json
import sys

import h5py
import numpy as np
import xarray as xr
import zarr

def same_attrs(x, y):
    """Equal keys and values; a list and a NumPy array of the same numbers are equal."""
    if sorted(x) != sorted(y):
        return False
    for k in x:
        a, b = x[k], y[k]
        if isinstance(a, str) or isinstance(b, str):
            if a != b:
                return False
        elif not np.array_equal(np.atleast_1d(np.asarray(a)), np.atleast_1d(np.asarray(b))):
            return False
    return True


mount, names = sys.argv[1], sys.argv[2:]
PACKED = {"pr"}  # int16 with scale_factor: xarray decodes a Zarr float attribute as float64


def cannot_hold(d):
    if d.dtype.kind == "O" or d.dtype.names:
        return True
    plist = d.id.get_create_plist()
    ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return 3 in ids and 2 in ids[ids.index(3):] and d.dtype.itemsize > 1


for name in names:
    path, view = f"{mount}/{name}", f"{mount}/{name}.zarr"
    with h5py.File(path, "r") as f:
        held = {k: f[k] for k in f if isinstance(f[k], h5py.Dataset)}
        g = zarr.open_consolidated(view, mode="r")
        shown = sorted(k for k, _ in g.arrays())
        absent = {k for k, d in held.items() if cannot_hold(d)}
        for k, d in held.items():
            if k in absent:
                assert k not in shown, (name, k, "a variable Zarr cannot hold is shown")
                continue
            if d.attrs.get("NAME", b"").startswith(b"This is a netCDF dimension but not"):
                continue
            want, got = d[...], g[k][...]
            assert got.dtype == want.dtype, (name, k, got.dtype, want.dtype)
            assert got.shape == want.shape, (name, k, got.shape, want.shape)
            assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), (name, k)
    if name.endswith(".nc"):
        a = xr.open_dataset(path, engine="h5netcdf").drop_vars(absent)
        z = xr.open_zarr(view, consolidated=True)
        assert sorted(a.variables) == sorted(z.variables), (name, list(a.variables), list(z.variables))
        assert same_attrs(a.attrs, z.attrs), (name, a.attrs, z.attrs)
        for v in a.variables:
            assert a[v].dims == z[v].dims, (name, v, a[v].dims, z[v].dims)
            assert same_attrs(a[v].attrs, z[v].attrs), (name, v, a[v].attrs, z[v].attrs)
        xr.testing.assert_allclose(a, z)
        xr.testing.assert_identical(a.drop_vars(PACKED), z.drop_vars(PACKED))
        assert set(a.coords) == set(z.coords), (name, set(a.coords), set(z.coords))
    print(json.dumps({"file": name, "arrays": shown}))
