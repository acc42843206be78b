"""GDAL's reading of a Zarr time step's COG vs the zarr-python slice (north-up) and the grid."""
import sys

import numpy as np
from osgeo import gdal

tif, npy, west, north, d = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:6])
gdal.UseExceptions()
cog = gdal.Open(tif)
want = np.load(npy)
got = cog.GetRasterBand(1).ReadAsArray()
assert got.shape == want.shape, (got.shape, want.shape)
# The store's y runs south to north; the COG is north-up.
assert np.array_equal(got, want[::-1], equal_nan=True), tif
gt = cog.GetGeoTransform()
assert max(abs(a - b) for a, b in zip(gt, (west, d, 0, north, 0, -d))) < 1e-6, gt
proj4 = cog.GetSpatialRef().ExportToProj4()
for token in ("+proj=lcc", "+lat_1=30", "+lat_2=50", "+lat_0=39.1", "+lon_0=-97.9", "+R=6370000"):
    assert token in proj4, (token, proj4)
print(tif, "ok", gt[0], gt[3])
