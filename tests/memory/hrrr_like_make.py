"""Writes an HRRR-size GRIB2 file with eccodes (run at test time): HRRR's CONUS grid (1799 x 1059
Lambert conformal, 3 km, on a sphere of radius 6371229 m), two messages of precipitation-like
fields (mostly zero, smooth rain cells) packed as HRRR packs them (template 5.3, complex packing
with spatial differencing), and a wgrib2-style .idx sidecar naming them as the HRRR sample's.
Prints "wrote PATH BYTES" and each message's mean (for checks of the views' values).

Usage: hrrr_like_make.py OUT.grib2
"""
import sys

import eccodes as e
import numpy as np

out = sys.argv[1]
NX, NY = 1799, 1059


def rain(seed, cells, scale):
    """Rain cells: a sum of Gaussian bumps, cut to zero below a threshold, rounded to 0.01."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:NY, 0:NX].astype(np.float32)
    v = np.zeros((NY, NX), np.float32)
    for _ in range(cells):
        cx, cy = rng.uniform(0, NX), rng.uniform(0, NY)
        r = rng.uniform(15, 90)
        v += rng.uniform(0.2, 1.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    v = np.where(v > 0.05, (v - 0.05) * scale, 0.0)
    return np.round(v, 2)


def message(values, number):
    h = e.codes_grib_new_from_samples("GRIB2")
    e.codes_set(h, "gridDefinitionTemplateNumber", 30)
    for k, val in dict(
        shapeOfTheEarth=6, Nx=NX, Ny=NY,
        latitudeOfFirstGridPointInDegrees=21.138123,
        longitudeOfFirstGridPointInDegrees=237.280472,
        LaDInDegrees=38.5, LoVInDegrees=262.5,
        Latin1InDegrees=38.5, Latin2InDegrees=38.5,
        DxInMetres=3000.0, DyInMetres=3000.0,
        iScansNegatively=0, jScansPositively=1,
        latitudeOfSouthernPoleInDegrees=0.0, longitudeOfSouthernPoleInDegrees=0.0,
    ).items():
        e.codes_set(h, k, val)
    e.codes_set(h, "discipline", 0)
    e.codes_set(h, "parameterCategory", 1)
    e.codes_set(h, "parameterNumber", number)
    e.codes_set(h, "typeOfFirstFixedSurface", 1)
    e.codes_set(h, "dataDate", 20201214)
    e.codes_set(h, "dataTime", 0)
    e.codes_set(h, "packingType", "grid_complex_spatial_differencing")
    e.codes_set(h, "bitsPerValue", 16)
    e.codes_set(h, "orderOfSpatialDifferencing", 2)
    e.codes_set_values(h, values.ravel())
    assert e.codes_get(h, "dataRepresentationTemplateNumber") == 3
    assert e.codes_get(h, "gridDefinitionTemplateNumber") == 30
    return h


fields = [rain(1, 60, 160.0), rain(2, 25, 45.0)]
offsets = []
with open(out, "wb") as f:
    for k, v in enumerate(fields):
        offsets.append(f.tell())
        h = message(v, 8)
        e.codes_write(h, f)
        e.codes_release(h)
    size = f.tell()
with open(out + ".idx", "w") as f:
    for k, (off, fc) in enumerate(zip(offsets, ["0-12 hour acc fcst", "11-12 hour acc fcst"])):
        f.write(f"{k + 1}:{off}:d=2020121400:APCP:surface:{fc}:\n")
print(f"wrote {out} {size}")
for v in fields:
    print(f"mean {float(v.mean()):.6f}")
