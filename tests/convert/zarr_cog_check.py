"""GDAL's reading of a Zarr step's COG vs the zarr-python slice (rows flipped north-up, as
float32, which the COG holds), its geotransform, and PROJ tokens of its CRS.
Arguments: TIF NPY WEST NORTH DX DY [TOKEN ...]."""
import sys

import numpy as np
from osgeo import gdal

tif, npy = sys.argv[1], sys.argv[2]
west, north, dx, dy = map(float, sys.argv[3:7])
tokens = sys.argv[7:]
gdal.UseExceptions()
cog = gdal.Open(tif)
want = np.load(npy)[::-1].astype("float32")
got = cog.GetRasterBand(1).ReadAsArray()
assert got.shape == want.shape, (got.shape, want.shape)
assert np.array_equal(got, want, equal_nan=True), (tif, np.nanmax(np.abs(got - want)))
gt = cog.GetGeoTransform()
want_gt = (west, dx, 0, north, 0, -dy)
assert max(abs(a - b) for a, b in zip(gt, want_gt)) < 1e-6 * max(1.0, abs(dx)), (gt, want_gt)
proj4 = cog.GetSpatialRef().ExportToProj4()
for token in tokens:
    assert token in proj4, (token, proj4)
print(tif, "ok", gt[0], gt[3])
