"""GDAL's reading of a converted COG vs GDAL's reading of the source GRIB2 and the Zarr view."""
import sys

import numpy as np
from osgeo import gdal

tif, grib, npy, name = sys.argv[1:5]
gdal.UseExceptions()
cog = gdal.Open(tif)
src = gdal.Open(grib)
gt, sgt = cog.GetGeoTransform(), src.GetGeoTransform()
w, h = cog.RasterXSize, cog.RasterYSize
assert (w, h) == (src.RasterXSize, src.RasterYSize), ((w, h), src.RasterXSize)


def corners(t):
    return [(t[0] + i * t[1], t[3] + j * t[5]) for i in (0, w) for j in (0, h)]


for a, b in zip(corners(gt), corners(sgt)):
    assert abs(a[0] - b[0]) < 1 and abs(a[1] - b[1]) < 1, (a, b)
cs, ss = cog.GetSpatialRef(), src.GetSpatialRef()
assert cs.IsSame(ss) or cs.ExportToProj4() == ss.ExportToProj4(), (cs.ExportToProj4(), ss.ExportToProj4())
got = cog.GetRasterBand(1).ReadAsArray()
zarr = np.load(npy)
# The Zarr runs south to north as the GRIB2 does; the COG is north-up.
assert np.array_equal(got, zarr[::-1], equal_nan=True), name
ref = src.GetRasterBand(1 if "0_12" in name else 2).ReadAsArray()
assert np.allclose(got, ref, rtol=1e-5, atol=1e-6), name
print(name, "ok", corners(gt)[0])
