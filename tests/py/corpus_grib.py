"""corpus_grib.py LOCAL MOUNTED [VIEW]: every GRIB2 message of MOUNTED decodes (eccodes) to
exactly the values of LOCAL's; with VIEW (the file's converted Zarr view), each view array that
names its `GRIB_message` equals eccodes' values of that message within 1e-5 relative (in the
source's scanning order, or with the rows flipped). Prints JSON: message and view-array counts.
(The corpus check gives no VIEW: tests/convert/grib_fidelity_check.py checks the views there,
allowing messages left out by name.)"""
import json
import sys

import eccodes
import numpy as np


def fields(path):
    out = []
    with open(path, "rb") as f:
        while True:
            h = eccodes.codes_grib_new_from_file(f)
            if h is None:
                return out
            out.append(eccodes.codes_get_values(h))
            eccodes.codes_release(h)


local, mounted = fields(sys.argv[1]), fields(sys.argv[2])
assert local, "no GRIB2 message in the local file"
assert len(local) == len(mounted), (len(local), len(mounted))
for n, (a, b) in enumerate(zip(local, mounted)):
    assert np.array_equal(a, b, equal_nan=True), f"message {n + 1} differs through the mount"
report = {"messages": len(local), "view_arrays": 0}
if len(sys.argv) > 3:
    import xarray as xr

    ds = xr.open_zarr(sys.argv[3], consolidated=True)
    names = sorted((v for v in ds.data_vars if "GRIB_message" in ds[v].attrs),
                   key=lambda v: ds[v].attrs["GRIB_message"])
    assert len(names) == len(local), (names, len(local))
    for name, ref in zip(names, local):
        got = ds[name].values.astype("float64")

        def close(v):
            return v.size == ref.size and np.allclose(v.ravel(), ref, rtol=1e-5, atol=1e-6,
                                                      equal_nan=True)

        assert close(got) or close(got[::-1]), f"{name} differs from eccodes"
        report["view_arrays"] += 1
print(json.dumps(report))
