#!/usr/bin/env python3
"""Deterministic benchmark data for bench/run.sh. Run it with the bench venv's python.

    gen_data.py MODE OUTDIR        MODE: smoke | quick | full

Writes into OUTDIR (each dataset is complete once its `.done-NAME` stamp exists, so a rerun only
makes what is missing; the caller keys OUTDIR by mode and DATA_VERSION):
  conus404_daily.zarr/   Zarr v2, CONUS404-shaped: T2 and PREC_ACC_NC (time, y, x) float32,
                         zstd level 9, consolidated .zmetadata, `crs` with grid_mapping, lat/lon
  random/obj{0..3}.bin   pseudo-random bytes (PCG64), the W1/W2 objects
  cog/big.tif            a tiled COG with overviews (gdal_translate -of COG, DEFLATE)
  cogs/cog_NNN.tif       small COGs cut from it, one folder
  hrrr/hrrr.t00z.wrfsfcf12.grib2 (+ .idx)  the two HRRR-like messages of
                         tests/data/grib2/ (eccodes, tests/data/make.py) repeated, with a
                         rewritten wgrib2 inventory
  wrf/t2_YYYY.nc         WRF-CMIP6-shaped: one NetCDF-4 file per year (h5netcdf), T2 (time, y, x)
                         float32 in chunks of one time step, deflate level 4 with shuffle
The 100,000 small objects are not files: bench.py uploads them with lab/s3.py put-many.
Prints the sizes as JSON (the `sizes` of the mode, plus bytes on disk per dataset).
"""

import json
import os
import shutil
import subprocess
import sys

import numcodecs
import numpy as np
import zarr

DATA_VERSION = "v2"  # bump when any generator below changes its output

SIZES = {
    # zarr: (days, ny, nx, chunk); objects: bytes each; cog: side (pixels); W-parameters for bench.py
    "smoke": dict(days=12, ny=203, nx=273, chunk=(6, 70, 70), obj=8 << 20, cog=1024, cogs=10,
                  grib_msgs=4, small=300, wrf_files=3, wrf_steps=6, wrf_ny=40, wrf_nx=50),
    "quick": dict(days=36, ny=1015, nx=1367, chunk=(36, 350, 350), obj=256 << 20, cog=4096,
                  cogs=100, grib_msgs=40, small=1000, wrf_files=20, wrf_steps=73, wrf_ny=160,
                  wrf_nx=200),
    "full": dict(days=365, ny=1015, nx=1367, chunk=(36, 350, 350), obj=1 << 30, cog=16384,
                 cogs=100, grib_msgs=140, small=100_000, wrf_files=20, wrf_steps=1460,
                 wrf_ny=160, wrf_nx=200),
}

FIXTURE_GRIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                            "grib2", "hrrr.t00z.wrfsfcf12.grib2")
# Lambert conformal conic of CONUS404 (WRF), as in the real store's `crs` variable.
CRS_ATTRS = {
    "grid_mapping_name": "lambert_conformal_conic",
    "latitude_of_projection_origin": 39.100006,
    "longitude_of_central_meridian": -97.9,
    "standard_parallel": [30.0, 50.0],
    "earth_radius": 6370000.0,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "long_name": "CRS definition",
}


DATASETS = ("conus404_daily.zarr", "random", "cog", "cogs", "hrrr", "wrf")


def done(out, name):
    return os.path.exists(os.path.join(out, f".done-{name}"))


def mark(out, name):
    open(os.path.join(out, f".done-{name}"), "w").close()


def smooth_field(rng, ny, nx, day):
    """A smooth large-scale pattern that drifts with the day (float64, about -1..1)."""
    y = np.linspace(0, 3 * np.pi, ny)[:, None]
    x = np.linspace(0, 4 * np.pi, nx)[None, :]
    phase = 2 * np.pi * day / 365.0
    return np.sin(y + phase) * np.cos(x - 0.5 * phase) + 0.3 * np.sin(2.1 * x + y)


def gen_zarr(out, s):
    name = "conus404_daily.zarr"
    if done(out, name):
        return
    path = os.path.join(out, name)
    shutil.rmtree(path, ignore_errors=True)
    days, ny, nx, chunk = s["days"], s["ny"], s["nx"], s["chunk"]
    zstd = numcodecs.Zstd(level=9)
    g = zarr.open_group(path, mode="w", zarr_format=2)
    g.attrs.update({"title": "CONUS404-shaped daily test store (synthetic, geomount bench)"})

    def arr(vname, shape, chunks, dtype, dims, attrs, fill=None):
        a = g.create_array(vname, shape=shape, chunks=chunks, dtype=dtype, compressors=zstd,
                           fill_value=fill)
        a.attrs.update({"_ARRAY_DIMENSIONS": list(dims), **attrs})
        return a

    t = arr("time", (days,), (days,), "int64", ["time"],
            {"units": "days since 1979-10-01 00:00:00", "calendar": "proleptic_gregorian",
             "standard_name": "time"})
    t[:] = np.arange(days, dtype="int64") + 15706  # 2022-10-01 onwards
    ys = (np.arange(ny) - ny / 2) * 4000.0
    xs = (np.arange(nx) - nx / 2) * 4000.0
    for n, v in (("y", ys), ("x", xs)):
        a = arr(n, v.shape, v.shape, "float64", [n],
                {"units": "m", "standard_name": f"projection_{n}_coordinate",
                 "long_name": f"{n} coordinate of projection"})
        a[:] = v
    lat = (39.1 + ys[:, None] / 111000.0 + 0 * xs[None, :]).astype("float32")
    lon = (-97.9 + xs[None, :] / 90000.0 + 0 * ys[:, None]).astype("float32")
    for n, v, u in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
        a = arr(n, v.shape, chunk[1:], "float32", ["y", "x"],
                {"units": u, "standard_name": "latitude" if n == "lat" else "longitude"})
        a[:] = v
    crs = arr("crs", (), (), "int32", [], CRS_ATTRS)
    crs[...] = 0
    common = {"grid_mapping": "crs", "coordinates": "lat lon"}
    t2 = arr("T2", (days, ny, nx), chunk, "float32", ["time", "y", "x"],
             {"units": "K", "long_name": "TEMP at 2 M", "description": "daily mean", **common},
             fill=np.nan)
    pr = arr("PREC_ACC_NC", (days, ny, nx), chunk, "float32", ["time", "y", "x"],
             {"units": "mm", "long_name": "Accumulated total grid scale precipitation",
              "description": "daily sum", **common}, fill=np.nan)
    rng = np.random.default_rng(404)
    for t0 in range(0, days, chunk[0]):
        t1 = min(days, t0 + chunk[0])
        temp = np.empty((t1 - t0, ny, nx), "float32")
        prec = np.empty((t1 - t0, ny, nx), "float32")
        for d in range(t0, t1):
            f = smooth_field(rng, ny, nx, d)
            temp[d - t0] = 283.0 + 12.0 * f + rng.normal(0.0, 0.6, (ny, nx))
            p = np.maximum(0.0, 8.0 * f + rng.normal(0.0, 3.0, (ny, nx)) - 4.0)
            prec[d - t0] = np.round(p, 2)
        t2[t0:t1] = temp
        pr[t0:t1] = prec
    zarr.consolidate_metadata(path, zarr_format=2)
    mark(out, name)


def gen_random(out, s):
    if done(out, "random"):
        return
    os.makedirs(os.path.join(out, "random"), exist_ok=True)
    for i in range(4):
        rng = np.random.Generator(np.random.PCG64(20260101 + i))
        with open(os.path.join(out, "random", f"obj{i}.bin"), "wb") as f:
            left = s["obj"]
            while left:
                n = min(left, 64 << 20)
                f.write(rng.bytes(n))
                left -= n
    mark(out, "random")


def gen_cogs(out, s):
    if done(out, "cog"):
        return
    side = s["cog"]
    os.makedirs(os.path.join(out, "cog"), exist_ok=True)
    os.makedirs(os.path.join(out, "cogs"), exist_ok=True)
    raw = os.path.join(out, "cog", "big.bin")
    m = np.lib.format.open_memmap(raw + ".npy", mode="w+", dtype="float32", shape=(side, side))
    rng = np.random.default_rng(5070)
    x = np.linspace(0, 6 * np.pi, side)[None, :]
    for r0 in range(0, side, 1024):
        r1 = min(side, r0 + 1024)
        y = np.linspace(0, 6 * np.pi, side)[r0:r1, None]
        m[r0:r1] = 100.0 * np.sin(y) * np.cos(x) + rng.normal(0, 2.0, (r1 - r0, side))
    m.flush()
    offset = m.offset
    del m
    with open(raw + ".vrt", "w") as f:  # a raw VRT over the .npy payload
        f.write(f"""<VRTDataset rasterXSize="{side}" rasterYSize="{side}">
  <VRTRasterBand dataType="Float32" band="1" subClass="VRTRawRasterBand">
    <SourceFilename relativetoVRT="1">big.bin.npy</SourceFilename>
    <ImageOffset>{offset}</ImageOffset><PixelOffset>4</PixelOffset>
    <LineOffset>{4 * side}</LineOffset><ByteOrder>LSB</ByteOrder>
  </VRTRasterBand>
</VRTDataset>
""")
    big = os.path.join(out, "cog", "big.tif")
    half = side * 2000.0
    run(["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "BLOCKSIZE=512",
         "-co", "NUM_THREADS=ALL_CPUS", "-a_srs", "EPSG:5070",
         "-a_ullr", str(-half), str(half), str(half), str(-half), raw + ".vrt", big])
    os.remove(raw + ".npy")
    os.remove(raw + ".vrt")
    step = max(1, (side - 256) // s["cogs"])
    for i in range(s["cogs"]):
        off = (i * step) % (side - 256)
        run(["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE",
             "-srcwin", str(off), str(off), "256", "256", big,
             os.path.join(out, "cogs", f"cog_{i:03d}.tif")])
    mark(out, "cog")


def gen_grib(out, s):
    if done(out, "grib"):
        return
    os.makedirs(os.path.join(out, "hrrr"), exist_ok=True)
    data = open(FIXTURE_GRIB, "rb").read()
    # Split at the messages' own section 0 lengths (the fixture has a stray byte after each).
    bodies, at = [], data.find(b"GRIB")
    while at >= 0:
        length = int.from_bytes(data[at + 8:at + 16], "big")
        bodies.append(data[at:at + length])
        at = data.find(b"GRIB", at + length)
    assert len(bodies) == 2 and all(b.endswith(b"7777") for b in bodies), "fixture changed"
    msgs = list(zip(bodies, ["APCP:surface:0-12 hour acc fcst", "APCP:surface:11-12 hour acc fcst"]))
    path = os.path.join(out, "hrrr", "hrrr.t00z.wrfsfcf12.grib2")
    lines, offset = [], 0
    with open(path, "wb") as f:
        for n in range(s["grib_msgs"]):
            body, desc = msgs[n % 2]
            f.write(body)
            lines.append(f"{n + 1}:{offset}:d=2020121400:{desc}:")
            offset += len(body)
    with open(path + ".idx", "w") as f:
        f.write("\n".join(lines) + "\n")
    mark(out, "grib")


def gen_wrf(out, s):
    """One NetCDF-4 file per year, as WRF-CMIP6 ships them: the time steps of a year, each one
    HDF5 chunk, so a point's series reads one chunk per step."""
    if done(out, "wrf"):
        return
    import pandas as pd
    import xarray as xr
    d = os.path.join(out, "wrf")
    os.makedirs(d, exist_ok=True)
    ny, nx, steps = s["wrf_ny"], s["wrf_nx"], s["wrf_steps"]
    rng = np.random.default_rng(9)
    for k in range(s["wrf_files"]):
        year = 1980 + k
        times = pd.date_range(f"{year}-01-01", periods=steps, freq=f"{max(1, 8760 // steps)}h")
        t2 = np.empty((steps, ny, nx), dtype="float32")
        for i in range(steps):
            field = 280 + 15 * smooth_field(rng, ny, nx, (k * steps + i) % 365)
            t2[i] = field + rng.normal(0, 0.5, (ny, nx))
        ds = xr.Dataset({"T2": (("time", "y", "x"), t2, {"units": "K"})},
                        coords={"time": times, "y": np.arange(ny) * 4000.0,
                                "x": np.arange(nx) * 4000.0})
        enc = {"T2": {"chunksizes": (1, ny, nx), "zlib": True, "complevel": 4, "shuffle": True}}
        ds.to_netcdf(os.path.join(d, f"t2_{year}.nc"), engine="h5netcdf", encoding=enc)
    mark(out, "wrf")


def run(cmd):
    subprocess.run(cmd, check=True)


def du(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SIZES:
        sys.exit("usage: gen_data.py smoke|quick|full OUTDIR")
    mode, out = sys.argv[1], sys.argv[2]
    s = SIZES[mode]
    os.makedirs(out, exist_ok=True)
    gen_random(out, s)
    gen_grib(out, s)
    gen_cogs(out, s)
    gen_zarr(out, s)
    gen_wrf(out, s)
    on_disk = {d: du(os.path.join(out, d)) for d in DATASETS}
    print(json.dumps({"version": DATA_VERSION, "mode": mode, "sizes": s, "bytes": on_disk}))


if __name__ == "__main__":
    main()
