"""Every message of each GRIB file against its Zarr view (read as plain files: .zmetadata and
raw little-endian chunks): a GRIB2 field the view lists equals eccodes' values within 1e-5
relative (missing points NaN) and eccodes' latitudes and longitudes within 1e-6 degrees; one it
does not list is named, with its number, in the mount's log as left out; a GRIB1 message is
named as skipped. Messages are numbered as eccodes counts them with multi-field support on.
Usage: MOUNT SRC LOG FILE...; prints one JSON line {file: {"ok": [n], "refused": {n: line},
"skipped": [n]}}; exits non-zero at the first disagreement."""
import json
import os
import sys

import eccodes as e
import numpy as np

mount, src, log = sys.argv[1:4]
files = sys.argv[4:]
e.codes_grib_multi_support_on()


def view(name):
    """The Zarr view's arrays by eccodes message number, and the view root."""
    root = os.path.join(mount, f"{name}.zarr")
    with open(os.path.join(root, ".zmetadata")) as f:
        meta = json.load(f)["metadata"]
    arrays = {}
    for key, attrs in meta.items():
        if key.endswith("/.zattrs") and "GRIB_message" in attrs:
            arrays[attrs["GRIB_message"]] = key[: -len("/.zattrs")]
    return root, meta, arrays


def chunk(root, meta, name):
    z = meta[f"{name}/.zarray"]
    key = ".".join("0" for _ in z["shape"]) or "0"
    with open(os.path.join(root, name, key), "rb") as f:
        data = np.frombuffer(f.read(), dtype=np.dtype(z["dtype"]))
    return data.reshape(z["shape"])


# Build every view first, so that all log lines are written before the log is read.
views = {f: view(f) for f in files}
with open(log) as f:
    lines = f.read().splitlines()
summary = {}
for name in files:
    root, meta, arrays = views[name]
    got = {"ok": [], "refused": {}, "skipped": []}
    with open(os.path.join(src, name), "rb") as fh:
        n = 0
        while True:
            h = e.codes_grib_new_from_file(fh)
            if h is None:
                break
            n += 1
            get = lambda k: e.codes_get(h, k)
            tag = f"{name} message {n}"
            if get("edition") != 2:
                assert n not in arrays, f"{tag}: GRIB{get('edition')} listed"
                line = next((l for l in lines if f"{name}: message {n} (GRIB edition" in l and
                             "skipped" in l), None)
                assert line, f"{tag}: no log line says the GRIB1 message is skipped"
                got["skipped"].append(n)
                e.codes_release(h)
                continue
            if n not in arrays:
                line = next((l for l in lines if f"{name}: message {n} left out of the views: "
                             in l), None)
                assert line, f"{tag}: not listed and no log line names it"
                got["refused"][n] = line.split("left out of the views: ", 1)[1]
                e.codes_release(h)
                continue
            arr = arrays[n]
            ref = e.codes_get_values(h)
            missing = (ref == get("missingValue")) if get("bitmapPresent") else np.zeros(ref.shape, bool)
            ni, nj = get("Ni"), get("Nj")
            v = chunk(root, meta, arr)
            assert v.shape == (nj, ni), f"{tag}: shape {v.shape}, eccodes {nj}x{ni}"
            v = v.ravel()
            assert (np.isnan(v) == missing).all(), f"{tag}: NaN where eccodes has {missing.sum()} missing"
            ok = ~missing
            tol = 1e-5 * np.maximum(np.abs(ref[ok]), 1e-30)
            bad = np.abs(v[ok] - ref[ok]) > tol
            assert not bad.any(), (f"{tag}: {bad.sum()} values differ, e.g. {v[ok][bad][:3]} vs "
                                   f"{ref[ok][bad][:3]}")
            lats = e.codes_get_array(h, "latitudes").reshape(nj, ni)
            lons = e.codes_get_array(h, "longitudes").reshape(nj, ni)
            dims = meta[f"{arr}/.zattrs"]["_ARRAY_DIMENSIONS"]
            lat, lon = chunk(root, meta, "latitude"), chunk(root, meta, "longitude")
            if dims == ["latitude", "longitude"]:
                lat, lon = np.repeat(lat[:, None], ni, 1), np.repeat(lon[None, :], nj, 0)
            dlat = np.abs(lat - lats).max()
            dlon = np.abs((lon - lons + 180.0) % 360.0 - 180.0).max()
            assert dlat < 1e-6 and dlon < 1e-6, f"{tag}: lat off by {dlat}, lon by {dlon} degrees"
            got["ok"].append(n)
            e.codes_release(h)
    assert n > 0, f"{name}: eccodes reads no message"
    extra = set(arrays) - set(got["ok"])
    assert not extra, f"{name}: the view lists messages {extra} eccodes does not have"
    summary[name] = got
print(json.dumps(summary))
