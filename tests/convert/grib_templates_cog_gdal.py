"""GDAL's reading of a converted COG vs GDAL's reading of the source GRIB2 (corners within
1 m; for a geographic grid 1e-6 degree, modulo 360 with GDAL's columns rolled back where it
moves a 0..360 grid to -180..180, values equal there), vs eccodes' extent (geographic), and
vs the Zarr view's values. Usage: TIF GRIB NPY JSON [gdal-wrong] (the last when GDAL's GRIB
driver misplaces the grid, as 3.6 does for i scanning westward)."""
import json
import sys

import numpy as np
from osgeo import gdal, osr

tif, grib, npy, meta = sys.argv[1:5]
gdal_wrong = len(sys.argv) > 5
meta = json.load(open(meta))
gdal.UseExceptions()
gdal.SetConfigOption("GRIB_NORMALIZE_UNITS", "NO")  # GDAL would give temperatures in Celsius
cog, src = gdal.Open(tif), gdal.Open(grib)
w, h = cog.RasterXSize, cog.RasterYSize
assert (w, h) == (src.RasterXSize, src.RasterYSize), ((w, h), src.RasterXSize)
gt, sgt = cog.GetGeoTransform(), src.GetGeoTransform()
assert gt[2] == 0 and gt[4] == 0 and gt[5] < 0, gt


def corners(t):
    return [(t[0] + i * t[1], t[3] + j * t[5]) for i in (0, w) for j in (0, h)]


if meta["geographic"]:
    assert cog.GetSpatialRef().IsGeographic()
    west, north = gt[0], gt[3]
    east, south = west + w * gt[1], north + h * gt[5]
    for k in ("west", "east", "north", "south"):
        assert abs(locals()[k] - meta[k]) < 1e-6, (k, locals()[k], meta[k])
    if not gdal_wrong:
        # GDAL moves a global 0..360 grid's columns to start at -180; the COG keeps the
        # source's order. Same latitudes, and longitudes equal modulo 360 once GDAL's columns
        # are rolled back, with the same values there.
        assert abs(gt[1] - sgt[1]) < 1e-9 and abs(gt[5] - sgt[5]) < 1e-9, (gt, sgt)
        assert abs(gt[3] - sgt[3]) < 1e-6, (gt, sgt)
        shift = ((gt[0] - sgt[0]) % 360.0) / gt[1]
        roll = round(shift)
        assert abs(shift - roll) * gt[1] < 1e-6, (gt, sgt)
        if roll % w:
            assert abs(w * gt[1] - 360.0) < 1e-6, "only a global grid may be rolled"
        ref = np.roll(src.GetRasterBand(1).ReadAsArray(), -roll, axis=1)
        nd = src.GetRasterBand(1).GetNoDataValue()
        ref = np.where(ref == nd, np.nan, ref) if nd is not None else ref
        got = cog.GetRasterBand(1).ReadAsArray()
        assert np.allclose(got, ref, rtol=1e-5, equal_nan=True), "values at the same lon/lat"
        print("gdal roll", roll)
else:
    cs, ss = cog.GetSpatialRef(), src.GetSpatialRef()
    for s in (cs, ss):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_src = osr.CoordinateTransformation(cs, ss)
    for a, b in zip(corners(gt), corners(sgt)):
        x, y, _ = to_src.TransformPoint(a[0], a[1])
        assert abs(x - b[0]) < 1 and abs(y - b[1]) < 1, ((x, y), b)
got = cog.GetRasterBand(1).ReadAsArray()
zarr = np.load(npy)
if meta["flip_rows"]:
    zarr = zarr[::-1]
if meta["flip_cols"]:
    zarr = zarr[:, ::-1]
assert np.array_equal(got, zarr, equal_nan=True), tif
assert np.isnan(cog.GetRasterBand(1).GetNoDataValue())
print("ok", tif, corners(gt)[0])
