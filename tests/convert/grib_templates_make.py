"""Writes small GRIB2 files of several grid templates with eccodes (run at test time):
ll.grib2 (3.0, 0..360 longitudes, north to south, a bitmap of missing points), llwrap.grib2
(3.0 crossing 0 degrees, south to north, i scanning west), ps.grib2 (3.20, north polar
stereographic), merc.grib2 (3.10), gaussian.grib2 (3.40) and spaceview.grib2 (3.90), both unsupported. Prints the names."""
import sys

import eccodes as e
import numpy as np

out = sys.argv[1]


def field(nj, ni, seed, missing=True):
    rng = np.random.default_rng(seed)
    v = 250.0 + 40.0 * rng.random((nj, ni))
    if missing:
        v[1, 2] = 9999.0
        v[nj - 1, :3] = 9999.0
    return v


def write(name, h, values, missing=True):
    e.codes_set(h, "bitmapPresent", 1 if missing else 0)
    e.codes_set(h, "missingValue", 9999.0)
    e.codes_set_values(h, values.ravel())
    with open(f"{out}/{name}", "wb") as f:
        e.codes_write(h, f)
    e.codes_release(h)
    print(name)


def sample(name, **keys):
    h = e.codes_grib_new_from_samples(name)
    for k, v in keys.items():
        e.codes_set(h, k, v)
    return h


# 3.0, GFS-like: 0..357 E, 60 N to 30 N (north to south), 3 degree steps.
h = sample("regular_ll_sfc_grib2", Ni=120, Nj=11, latitudeOfFirstGridPointInDegrees=60.0,
           longitudeOfFirstGridPointInDegrees=0.0, latitudeOfLastGridPointInDegrees=30.0,
           longitudeOfLastGridPointInDegrees=357.0, iDirectionIncrementInDegrees=3.0,
           jDirectionIncrementInDegrees=3.0, jScansPositively=0, iScansNegatively=0,
           discipline=0, parameterCategory=0, parameterNumber=0)
write("ll.grib2", h, field(11, 120, 1))

# 3.0 across the prime meridian from the east, south to north: 20 E .. 340 E (= -20), i west.
h = sample("regular_ll_sfc_grib2", Ni=41, Nj=21, latitudeOfFirstGridPointInDegrees=-10.0,
           longitudeOfFirstGridPointInDegrees=20.0, latitudeOfLastGridPointInDegrees=10.0,
           longitudeOfLastGridPointInDegrees=340.0, iDirectionIncrementInDegrees=1.0,
           jDirectionIncrementInDegrees=1.0, jScansPositively=1, iScansNegatively=1,
           discipline=0, parameterCategory=1, parameterNumber=8)
write("llwrap.grib2", h, field(21, 41, 2))

# 3.20: north polar stereographic, 60 N true scale, LoV 249 E, 50 km.
h = sample("polar_stereographic_sfc_grib2", Nx=60, Ny=50,
           latitudeOfFirstGridPointInDegrees=30.0, longitudeOfFirstGridPointInDegrees=200.0,
           LaDInDegrees=60.0, orientationOfTheGridInDegrees=249.0, DxInMetres=50000.0,
           DyInMetres=50000.0, jScansPositively=1, iScansNegatively=0,
           projectionCentreFlag=0, shapeOfTheEarth=6)
write("ps.grib2", h, field(50, 60, 3))

# 3.10: Mercator, true scale at 20 N, 25 km, first point 10 N 250 E.
h = sample("regular_ll_sfc_grib2")
e.codes_set(h, "gridDefinitionTemplateNumber", 10)
for k, v in dict(Ni=80, Nj=60, latitudeOfFirstGridPointInDegrees=10.0,
                 longitudeOfFirstGridPointInDegrees=250.0, LaDInDegrees=20.0,
                 DiInMetres=25000.0, DjInMetres=25000.0, jScansPositively=1,
                 iScansNegatively=0, shapeOfTheEarth=6).items():
    e.codes_set(h, k, v)
e.codes_set_values(h, np.zeros(80 * 60))
# The last point where eccodes's own iterator puts it, so the message is consistent.
lats, lons = e.codes_get_array(h, "latitudes"), e.codes_get_array(h, "longitudes")
e.codes_set(h, "latitudeOfLastGridPointInDegrees", float(lats[-1]))
e.codes_set(h, "longitudeOfLastGridPointInDegrees", float(lons[-1]) % 360.0)
write("merc.grib2", h, field(60, 80, 4))

# 3.40 (Gaussian): latitudes not evenly spaced, refused by geomount.
h = sample("regular_gg_sfc_grib2")
write("gaussian.grib2", h, field(e.codes_get(h, "Nj"), e.codes_get(h, "Ni"), 6, False))

# 3.90 (space view): not supported by geomount.
h = sample("regular_ll_sfc_grib2")
e.codes_set(h, "gridDefinitionTemplateNumber", 90)
write("spaceview.grib2", h, field(e.codes_get(h, "Ny"), e.codes_get(h, "Nx"), 5, False))
