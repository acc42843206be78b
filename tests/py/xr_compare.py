"""xr_compare.py ENGINE LOCAL MOUNTED: open both copies with xarray (ENGINE "zarr" means
xr.open_zarr) and print JSON: whether they are identical, per-variable array_equal, and a
summary of the mounted copy (shape, first/last value, mean) for tests/clients.rs to assert on."""
import json
import sys

import numpy as np
import xarray as xr

engine, local, mounted = sys.argv[1:4]


def load(path):
    ds = xr.open_zarr(path) if engine == "zarr" else xr.open_dataset(path, engine=engine)
    return ds.load()


def scalar(v):
    return str(v) if v.dtype.kind in "mM" else v.item()


a, b = load(local), load(mounted)
out = {
    "identical": bool(a.identical(b)),
    "equal": {
        k: bool(np.array_equal(a[k].values, b[k].values, equal_nan=a[k].dtype.kind == "f"))
        for k in a.variables
    },
    "sizes": dict(b.sizes),
    "vars": {
        k: {
            "shape": list(v.shape),
            "first": scalar(v.values.flat[0]),
            "last": scalar(v.values.flat[-1]),
            "mean": float(np.nanmean(v.values)) if v.dtype.kind in "fiu" else None,
        }
        for k, v in b.variables.items()
    },
}
print(json.dumps(out))
