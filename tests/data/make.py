#!/usr/bin/env python3
"""Writes the test fixtures of tests/data/ with the producers of the real datasets, and beside
each one a JSON of what that producer reads back from it (the tests compare against these, not
against numbers copied into the tests). Deterministic: the same library versions give the same
bytes, which `--check` verifies.

    ~/.cache/geomount-lab/venv/bin/python tests/data/make.py           # rewrite tests/data/
    ~/.cache/geomount-lab/venv/bin/python tests/data/make.py --check   # compare, change nothing

Needs the lab venv (eccodes, xarray, zarr, numcodecs, h5netcdf, h5py, numpy: lab/install.sh) and
GDAL's `gdal_translate` (Debian gdal-bin). README.md in this folder lists the files.
"""

import filecmp
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings

import eccodes
import numcodecs
import numpy as np
import pandas as pd
import xarray as xr
import zarr

HERE = os.path.dirname(os.path.abspath(__file__))


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


def f64_bits(v):
    """The IEEE-754 bits of a float64, so that Rust compares exact values."""
    return struct.unpack("<Q", struct.pack("<d", float(v)))[0]


# ------------------------------------------------------------------------------------- GRIB2

HRRR = "hrrr.t00z.wrfsfcf12.grib2"
NY, NX = 1059, 1799  # the HRRR CONUS grid


def precipitation(seed, storms, threshold):
    """A precipitation-like field on the HRRR grid: elongated rain areas (sums of rotated
    Gaussians) above a threshold, zero elsewhere."""
    j, i = np.mgrid[0:NY, 0:NX].astype(float)
    rng = np.random.default_rng(seed)
    f = np.zeros((NY, NX))
    for _ in range(storms):
        cy, cx = rng.uniform(0, NY), rng.uniform(0, NX)
        sy, sx = rng.uniform(20, 70), rng.uniform(50, 220)
        th, amp = rng.uniform(0, np.pi), rng.uniform(10, 80)
        dy, dx = j - cy, i - cx
        u = dx * np.cos(th) + dy * np.sin(th)
        v = -dx * np.sin(th) + dy * np.cos(th)
        f += amp * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return np.maximum(0.0, f - threshold)


def hrrr_message(step, decimals, values):
    """One HRRR-like APCP message as NCEP writes it: grid template 3.30 (Lambert conformal,
    HRRR's CONUS grid on a sphere of radius 6371229 m), product template 4.8 (accumulation over
    `step` hours), data representation 5.3 (complex packing, 2nd-order spatial differencing,
    decimal scale `decimals`, binary scale 0), no bitmap."""
    h = eccodes.codes_grib_new_from_samples("GRIB2")
    keys = [
        ("centre", 7), ("subCentre", 0), ("tablesVersion", 2), ("localTablesVersion", 1),
        ("significanceOfReferenceTime", 1), ("dataDate", 20201214), ("dataTime", 0),
        ("productionStatusOfProcessedData", 0), ("typeOfProcessedData", 1),
        ("gridDefinitionTemplateNumber", 30), ("shapeOfTheEarth", 6), ("Nx", NX), ("Ny", NY),
        ("latitudeOfFirstGridPointInDegrees", 21.138123),
        ("longitudeOfFirstGridPointInDegrees", 237.280472), ("resolutionAndComponentFlags", 8),
        ("LaDInDegrees", 38.5), ("LoVInDegrees", 262.5), ("DxInMetres", 3000.0),
        ("DyInMetres", 3000.0), ("projectionCentreFlag", 0), ("scanningMode", 64),
        ("Latin1InDegrees", 38.5), ("Latin2InDegrees", 38.5),
        ("latitudeOfSouthernPoleInDegrees", 0.0), ("longitudeOfSouthernPoleInDegrees", 0.0),
        ("discipline", 0), ("productDefinitionTemplateNumber", 8), ("parameterCategory", 1),
        ("parameterNumber", 8), ("typeOfGeneratingProcess", 2),
        ("generatingProcessIdentifier", 83), ("typeOfFirstFixedSurface", 1),
        ("typeOfStatisticalProcessing", 1), ("indicatorOfUnitOfTimeRange", 1),
        ("stepRange", step), ("bitmapPresent", 0),
        ("packingType", "grid_complex_spatial_differencing"), ("orderOfSpatialDifferencing", 2),
        ("bitsPerValue", 16), ("decimalScaleFactor", decimals),
        # Keep the decimal scale (binary scale 0), as NCEP packs, instead of eccodes' own.
        ("optimizeScaleFactor", 1),
    ]
    for k, v in keys:
        eccodes.codes_set(h, k, v)
    eccodes.codes_set_values(h, values.ravel())
    msg = eccodes.codes_get_message(h)
    eccodes.codes_release(h)
    return msg


def iso(date, time):
    d, t = f"{date:08d}", f"{time:04d}"
    return f"{d[:4]}-{d[4:6]}-{d[6:]}T{t[:2]}:{t[2:]}:00Z"


def grib_reference(path, idx_offsets):
    """What eccodes reads from each message of the file at `path`."""
    out = []
    with open(path, "rb") as f:
        n = 0
        while True:
            h = eccodes.codes_grib_new_from_file(f)
            if h is None:
                break
            g = lambda k: eccodes.codes_get(h, k)  # noqa: E731
            vals = eccodes.codes_get_values(h)
            lats = eccodes.codes_get_array(h, "latitudes")
            lons = eccodes.codes_get_array(h, "longitudes")
            out.append({
                "idx_offset": idx_offsets[n],
                "offset": int(g("offset")),
                "length": g("totalLength"),
                "discipline": g("discipline"),
                "parameterCategory": g("parameterCategory"),
                "parameterNumber": g("parameterNumber"),
                "shortName": g("shortName"),
                "stepRange": g("stepRange"),
                "reference_time": iso(g("dataDate"), g("dataTime")),
                "valid_time": iso(g("validityDate"), g("validityTime")),
                "gridDefinitionTemplateNumber": g("gridDefinitionTemplateNumber"),
                "dataRepresentationTemplateNumber": g("dataRepresentationTemplateNumber"),
                "orderOfSpatialDifferencing": g("orderOfSpatialDifferencing"),
                "decimalScaleFactor": g("decimalScaleFactor"),
                "bitmapPresent": g("bitmapPresent"),
                "Nx": g("Nx"),
                "Ny": g("Ny"),
                "DxInMetres": g("DxInMetres"),
                "DyInMetres": g("DyInMetres"),
                "lat0": float(lats[0]),
                "lon0": float(lons[0]),
                "count": int(vals.size),
                "min": float(vals.min()),
                "max": float(vals.max()),
                "mean": float(vals.mean()),
                "sum": float(vals.sum()),
            })
            eccodes.codes_release(h)
            n += 1
    return out


def make_grib(out):
    d = os.path.join(out, "grib2")
    os.makedirs(d, exist_ok=True)
    total = np.round(1.4 * precipitation(1214, 14, 8.0), 2)
    share = precipitation(1215, 14, 0.0)
    last_hour = np.round(0.8 * total * share / share.max(), 3)
    msgs = [("0-12", hrrr_message("0-12", 2, total)),
            ("11-12", hrrr_message("11-12", 3, last_hour))]
    # One byte after each message, counted into the next one by the inventory: readers must
    # find each message by its "GRIB" marker and section 0 length, not assume they abut.
    data, lines = b"", []
    for n, (step, msg) in enumerate(msgs):
        lines.append(f"{n + 1}:{len(data)}:d=2020121400:APCP:surface:{step} hour acc fcst:")
        data += msg + b"G"
    path = os.path.join(d, HRRR)
    with open(path, "wb") as f:
        f.write(data)
    with open(path + ".idx", "w") as f:
        f.write("\n".join(lines) + "\n")
    offsets = [int(line.split(":")[1]) for line in lines]
    write_json(path + ".json", {"file": HRRR, "size": len(data),
                                "messages": grib_reference(path, offsets)})


# --------------------------------------------------------------------- wgrib2 inventories

def hrrr_products(forecast):
    """(variable, level, forecast) of an HRRR wrfsfc file's messages, in wgrib2's spelling;
    `var discipline=...` is how wgrib2 names a parameter its tables do not know."""
    fc = "anl" if forecast == 0 else f"{forecast} hour fcst"
    win = "0-0 day" if forecast == 0 else f"{forecast - 1}-{forecast} hour"
    unknown = lambda d, c, p: f"var discipline={d} center=7 local_table=1 parmcat={c} parm={p}"  # noqa: E731
    out = [("REFC", "entire atmosphere", fc), ("RETOP", "cloud top", fc),
           (unknown(0, 16, 201), "entire atmosphere", fc), ("VIL", "entire atmosphere", fc),
           ("VIS", "surface", fc)]
    out += [("REFD", lev, fc) for lev in ("1000 m above ground", "4000 m above ground",
                                          "263 K level")]
    out.append(("GUST", "surface", fc))
    for mb, names in ((250, "UV"), (300, "UV"), (500, "HTDUV"), (700, "HTDWUV"),
                      (850, "HTDUV"), (925, "TDUV"), (1000, "TDUV")):
        full = {"H": "HGT", "T": "TMP", "D": "DPT", "W": "DZDT", "U": "UGRD", "V": "VGRD"}
        out += [(full[c], f"{mb} mb", fc) for c in names]
    out += [("MAXUVV", "100-1000 mb above ground", f"{win} max fcst"),
            ("MAXDVV", "100-1000 mb above ground", f"{win} max fcst"),
            ("DZDT", "0.5-0.8 sigma layer", f"{win} ave fcst"), ("MSLMA", "mean sea level", fc),
            ("HGT", "1000 mb", fc), ("MAXREF", "1000 m above ground", f"{win} max fcst"),
            ("REFD", "263 K level", f"{win} max fcst")]
    for layer in ("5000-2000", "2000-0", "3000-0"):
        out += [("MXUPHL", f"{layer} m above ground", f"{win} max fcst"),
                ("MNUPHL", f"{layer} m above ground", f"{win} min fcst")]
    out += [("RELV", f"{layer} m above ground", f"{win} max fcst") for layer in ("2000-0", "1000-0")]
    out += [("HAIL", lev, f"{win} max fcst") for lev in ("entire atmosphere", "0.1 sigma level",
                                                         "surface")]
    out += [("TCOLG", "entire atmosphere (considered as a single layer)", f"{win} max fcst"),
            ("LTNGSD", "1 m above ground", fc), ("LTNGSD", "2 m above ground", fc),
            ("LTNG", "entire atmosphere", fc), ("UGRD", "80 m above ground", fc),
            ("VGRD", "80 m above ground", fc)]
    out += [(v, "surface", fc) for v in ("PRES", "HGT", "TMP")]
    out += [("ASNOW", "surface", f"{win} acc fcst"), ("MSTAV", "0 m underground", fc)]
    out += [(v, "surface", fc) for v in ("CNWAT", "WEASD", "SNOWC", "SNOD")]
    out += [(v, "2 m above ground", fc) for v in ("TMP", "POT", "SPFH", "DPT", "RH")]
    out += [("MASSDEN", "8 m above ground", fc), ("UGRD", "10 m above ground", fc),
            ("VGRD", "10 m above ground", fc)]
    out += [(v, "10 m above ground", f"{win} max fcst") for v in ("WIND", "MAXUW", "MAXVW")]
    out += [(v, "surface", fc) for v in ("CPOFP", "PRATE")]
    out += [(v, "surface", f"{win} acc fcst") for v in ("APCP", "WEASD", "FROZR", "FRZR",
                                                        "SSRUN", "BGRUN")]
    out += [(v, "surface", fc) for v in ("CSNOW", "CICEP", "CFRZR", "CRAIN", "SFCR", "FRICV",
                                         "SHTFL", "LHTFL", "VEG")]
    out += [(unknown(2, 0, p), "surface", fc) for p in (231, 232)]
    out += [(v, "surface", fc) for v in ("LAI", "GFLUX", "VGTYP")]
    out += [("LFTX", "500-1000 mb", fc), ("CAPE", "surface", fc), ("CIN", "surface", fc)]
    col = "entire atmosphere (considered as a single layer)"
    out += [(v, col, fc) for v in ("PWAT", "AOTK", "COLMD")]
    out += [(v, "entire atmosphere", fc) for v in ("TCOLW", "TCOLI")]
    out += [("TCDC", "boundary layer cloud layer", fc), ("LCDC", "low cloud layer", fc),
            ("MCDC", "middle cloud layer", fc), ("HCDC", "high cloud layer", fc),
            ("TCDC", "entire atmosphere", fc), ("HGT", "cloud ceiling", fc),
            ("HGT", "cloud base", fc), ("PRES", "cloud base", fc), ("PRES", "cloud top", fc),
            ("HGT", "cloud top", fc), ("ULWRF", "top of atmosphere", fc)]
    out += [(v, "surface", fc) for v in ("DSWRF", "DLWRF", "USWRF", "ULWRF", "CFNSF", "VBDSF",
                                         "VDDSF")]
    out += [("USWRF", "top of atmosphere", fc), ("HLCY", "3000-0 m above ground", fc),
            ("HLCY", "1000-0 m above ground", fc), ("USTM", "0-6000 m above ground", fc),
            ("VSTM", "0-6000 m above ground", fc)]
    for layer in ("0-1000", "0-6000"):
        out += [(v, f"{layer} m above ground", fc) for v in ("VUCSH", "VVCSH")]
    for lev in ("0C isotherm", "highest tropospheric freezing level"):
        out += [(v, lev, fc) for v in ("HGT", "RH", "PRES")]
    out += [("HGT", "263 K level", fc), ("HGT", "253 K level", fc)]
    out += [("4LFTX", "180-0 mb above ground", fc), ("CAPE", "180-0 mb above ground", fc),
            ("CIN", "180-0 mb above ground", fc), ("HPBL", "surface", fc),
            ("HGT", "level of adiabatic condensation from sfc", fc)]
    for layer in ("90-0", "255-0"):
        out += [(v, f"{layer} mb above ground", fc) for v in ("CAPE", "CIN")]
    out += [("HGT", "equilibrium level", fc), ("PLPL", "255-0 mb above ground", fc),
            ("CAPE", "0-3000 m above ground", fc), ("HGT", "level of free convection", fc),
            (unknown(0, 7, 204), "surface", fc), (unknown(0, 7, 206), "0-500 m above ground", fc),
            ("LAYTH", "261 K level - 256 K level", fc),
            (unknown(0, 7, 205), "0-3000 m above ground", fc), ("RHPW", "entire atmosphere", fc),
            ("LAND", "surface", fc), ("ICEC", "surface", fc)]
    out += [(v, "top of atmosphere", fc) for v in ("SBT123", "SBT124", "SBT113", "SBT114")]
    return out


def hrrr_subhourly():
    """The 15-minute messages of an HRRR wrfsubhf00 file (analysis time)."""
    fc, ave, acc = "anl", "0-0 day ave fcst", "0-0 day acc fcst"
    out = [("REFC", "entire atmosphere", fc), ("RETOP", "cloud top", fc),
           ("var discipline=0 center=7 local_table=1 parmcat=16 parm=201", "entire atmosphere", fc),
           ("VIL", "entire atmosphere", fc), ("VIS", "surface", fc),
           ("REFD", "1000 m above ground", fc), ("REFD", "4000 m above ground", fc),
           ("GUST", "surface", fc), ("UPHL", "5000-2000 m above ground", fc),
           ("UGRD", "80 m above ground", fc), ("VGRD", "80 m above ground", fc),
           ("PRES", "surface", fc), ("HGT", "surface", fc)]
    out += [(v, "2 m above ground", fc) for v in ("TMP", "SPFH", "DPT")]
    out += [(v, "10 m above ground", fc) for v in ("UGRD", "VGRD")]
    out += [(v, "10 m above ground", ave) for v in ("WIND", "UGRD", "VGRD")]
    out += [(v, "surface", ave) for v in ("DSWRF", "VBDSF")]
    out += [(v, "surface", fc) for v in ("CPOFP", "PRATE")]
    out += [(v, "surface", acc) for v in ("APCP", "WEASD", "FROZR")]
    out += [(v, "surface", fc) for v in ("CSNOW", "CICEP", "CFRZR", "CRAIN")]
    out += [(v, "entire atmosphere", fc) for v in ("TCOLW", "TCOLI")]
    out += [("HGT", lev, fc) for lev in ("cloud ceiling", "cloud base", "cloud top")]
    out += [("ULWRF", "top of atmosphere", fc)]
    out += [(v, "surface", fc) for v in ("DSWRF", "DLWRF", "USWRF", "ULWRF", "VBDSF", "VDDSF")]
    out += [("USWRF", "top of atmosphere", fc)]
    out += [(v, "top of atmosphere", fc) for v in ("SBT123", "SBT124", "SBT113", "SBT114")]
    return out


def inventory(products, date, seed, colon_every=0):
    """A wgrib2 inventory (`n:offset:d=YYYYMMDDHH:VAR:LEVEL:FORECAST:`) of messages of
    plausible sizes. Every `colon_every`-th line lacks the trailing colon, as inventories
    rewritten by other tools do."""
    rng = np.random.default_rng(seed)
    lines, offset = [], 0
    for n, (var, level, fc) in enumerate(products, 1):
        line = f"{n}:{offset}:d={date}:{var}:{level}:{fc}:"
        if colon_every and n % colon_every == 0:
            line = line[:-1]
        lines.append(line)
        # Most HRRR messages are 0.1-1.4 MB; precipitation types are a few hundred bytes.
        offset += int(rng.integers(180, 400)) if rng.random() < 0.05 else int(
            rng.integers(100_000, 1_400_000))
    return "\n".join(lines) + "\n"


def make_idx(out):
    d = os.path.join(out, "idx")
    os.makedirs(d, exist_ok=True)
    sfc = hrrr_products(0)
    assert len(sfc) == 170, len(sfc)  # the message count of HRRR's wrfsfcf00 files
    subh = hrrr_subhourly()
    assert len(subh) == 49, len(subh)
    with open(os.path.join(d, "hrrr.t01z.wrfsfcf00.grib2.idx"), "w") as f:
        f.write(inventory(sfc, 2022101401, 1))
    with open(os.path.join(d, "hrrr.t01z.wrfsubhf00.grib2.idx"), "w") as f:
        f.write(inventory(subh, 2022101401, 2, colon_every=7))


# ----------------------------------------------------------------------------------- COGs

def raw_vrt(path, bands, nodata=None):
    """A GDAL VRT over the raw little-endian bytes of `bands` (bands, rows, columns)."""
    nb, ny, nx = bands.shape
    dtype = {"uint8": "Byte", "uint16": "UInt16", "float32": "Float32"}[str(bands.dtype)]
    bands.astype(bands.dtype.newbyteorder("<")).tofile(path + ".bin")
    size = bands.dtype.itemsize
    nd = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
    xml = [f'<VRTDataset rasterXSize="{nx}" rasterYSize="{ny}">']
    for b in range(nb):
        xml.append(
            f'  <VRTRasterBand dataType="{dtype}" band="{b + 1}" subClass="VRTRawRasterBand">{nd}\n'
            f'    <SourceFilename relativetoVRT="1">{os.path.basename(path)}.bin</SourceFilename>\n'
            f"    <ImageOffset>{b * nx * ny * size}</ImageOffset><PixelOffset>{size}</PixelOffset>"
            f"<LineOffset>{nx * size}</LineOffset><ByteOrder>LSB</ByteOrder>\n"
            "  </VRTRasterBand>")
    xml.append("</VRTDataset>")
    with open(path + ".vrt", "w") as f:
        f.write("\n".join(xml) + "\n")
    return path + ".vrt"


def make_cogs(out):
    d = os.path.join(out, "cog")
    os.makedirs(d, exist_ok=True)
    cog = ["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=YES",
           "-co", "BLOCKSIZE=128"]
    with tempfile.TemporaryDirectory() as tmp:
        # Three bands of bytes (pixel-interleaved), 512x512: two overview levels.
        y, x = np.mgrid[0:512, 0:512] / 512.0
        rgb = np.stack([127 + 100 * np.sin(4 * x + 2 * np.sin(3 * y)) * np.cos(3 * y),
                        127 + 100 * np.sin(5 * y + np.cos(3 * x)),
                        127 + 120 * np.cos(4 * (x + y)) * np.sin(3 * x)]).astype("u1")
        vrt = raw_vrt(os.path.join(tmp, "ovr"), rgb)
        subprocess.run(cog + ["-a_srs", "EPSG:4326", "-a_ullr", "-10", "10", "10", "-10", vrt,
                              os.path.join(d, "cog_ovr.tif")], check=True)
        # A float32 gradient, 600x400, in Web Mercator.
        y, x = np.mgrid[0:400, 0:600]
        vrt = raw_vrt(os.path.join(tmp, "gradient"), (0.5 * x + 0.25 * y).astype("f4")[None])
        subprocess.run(cog + ["-a_srs", "EPSG:3857", "-a_ullr", "0", "400000", "600000", "0",
                              vrt, os.path.join(d, "cog_gradient.tif")], check=True)
        # UInt16 with nodata 0 outside an ellipse, 512x384, in UTM 33N.
        y, x = np.mgrid[0:384, 0:512]
        v = (1000 + 800 * np.sin(x / 37.0) * np.cos(y / 23.0)).astype("u2")
        v[np.hypot((x - 256) / 256, (y - 192) / 192) > 1] = 0
        vrt = raw_vrt(os.path.join(tmp, "nodata"), v[None], nodata=0)
        subprocess.run(cog + ["-a_nodata", "0", "-a_srs", "EPSG:32633", "-a_ullr", "500000",
                              "4600000", "524000", "4582000", vrt,
                              os.path.join(d, "cog_nodata.tif")], check=True)


# ----------------------------------------------------------------------------------- Zarr

def summary(ds):
    """Per-variable shape, first and last value and mean, as tests/py/xr_compare.py prints."""
    def scalar(v):
        return str(v) if v.dtype.kind in "mM" else v.item()

    return {
        "sizes": dict(ds.sizes),
        "vars": {
            k: {
                "shape": list(v.shape),
                "first": scalar(v.values.flat[0]),
                "last": scalar(v.values.flat[-1]),
                "mean": float(np.nanmean(v.values)) if v.dtype.kind in "fiu" else None,
            }
            for k, v in ds.variables.items()
        },
    }


def make_zarr(out):
    d = os.path.join(out, "zarr")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "dataset_3d.zarr")
    shutil.rmtree(path, ignore_errors=True)
    nt, ny, nx = 2, 300, 640
    chunks = (1, 128, 256)  # partial chunks at the y and x edges
    # A ramp from 0 to 1000 over the whole array, on a 2**-20 grid (so that blosc has both
    # runs and literals to decode).
    ramp = np.linspace(0.0, 1000.0, nt * ny * nx).reshape(nt, ny, nx)
    values = np.round(ramp * 2.0**20) / 2.0**20
    y = -80.0 + (160.0 / ny) * np.arange(ny)  # south to north
    x = -170.0 + (340.0 / nx) * np.arange(nx)
    ds = xr.Dataset(
        {"dataset": (("time", "y", "x"), values, {"valid_min": 0.0, "valid_max": 1000.0})},
        coords={"time": pd.to_datetime(["2022-01-01", "2023-01-01"]), "y": y, "x": x})
    # xarray's encoding with zarr-python 2 (blosc lz4, byte shuffle) on every variable.
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE, blocksize=0)
    enc = {k: {"compressors": [blosc]} for k in ds.variables}
    enc["dataset"]["chunks"] = chunks
    enc["time"].update({"units": "days since 2022-01-01 00:00:00",
                        "calendar": "proleptic_gregorian", "dtype": "int64"})
    ds.to_zarr(path, zarr_format=2, consolidated=True, encoding=enc, mode="w")

    g = zarr.open_group(path, mode="r")
    arr = g["dataset"]
    samples = []
    grid = [math.ceil(s / c) for s, c in zip(arr.shape, arr.chunks)]
    for ci in ([0, 0, 0], [0, 1, 2], [1, grid[1] - 1, grid[2] - 1]):
        start = [i * c for i, c in zip(ci, arr.chunks)]
        rows = min(arr.chunks[1], arr.shape[1] - start[1])
        cols = min(arr.chunks[2], arr.shape[2] - start[2])
        for r, c in ((0, 0), (0, 1), (rows // 2, cols // 3), (rows - 1, cols - 1)):
            v = arr[start[0], start[1] + r, start[2] + c]
            samples.append({"chunk": ".".join(map(str, ci)),
                            "index": r * arr.chunks[2] + c, "bits": f64_bits(v)})
    coords = {k: [f64_bits(v) for v in g[k][:]] for k in ("time",)}
    coords.update({k: [f64_bits(g[k][0]), f64_bits(g[k][-1])] for k in ("y", "x")})
    back = xr.open_zarr(path, consolidated=True).load()
    write_json(os.path.join(d, "dataset_3d.json"), {
        "array": "dataset", "shape": list(arr.shape), "chunks": list(arr.chunks),
        # Raw stored values: all of `time`, the first and last of `y` and `x`.
        "samples": samples, "coords": coords,
        "labels": [f"{t:%Y-%m-%d}" for t in pd.to_datetime(back["time"].values)],
        "xarray": summary(back),
    })


# -------------------------------------------------------------------------------- NetCDF-4

def make_netcdf(out):
    d = os.path.join(out, "netcdf")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "air.nc")
    # Shaped as xarray's air temperature tutorial subset: 6-hourly air(time, lat, lon) packed as
    # int16 with a scale factor, float32 coordinates and time.
    nt, nlat, nlon = 124, 11, 21
    rng = np.random.default_rng(1410)
    lat = (75.0 - 2.5 * np.arange(nlat)).astype("f4")
    lon = (200.0 + 2.5 * np.arange(nlon)).astype("f4")
    t = np.arange(nt)[:, None, None]
    la, lo = lat[None, :, None], lon[None, None, :]
    air = (273.15 + 25 * np.cos(np.deg2rad(la) * 1.5) - 20 * (la > 60)
           + 4 * np.sin(2 * np.pi * t / 4) + 3 * np.sin(np.deg2rad(lo) * 3 + t / 20.0)
           + rng.normal(0, 1.5, (nt, nlat, nlon)))
    ds = xr.Dataset(
        {"air": (("time", "lat", "lon"), np.round(air, 2).astype("f4"),
                 {"long_name": "4xDaily Air temperature at sigma level 995", "units": "degK",
                  "precision": 2, "GRIB_id": 11, "GRIB_name": "TMP", "var_desc": "Air temperature",
                  "level_desc": "Surface", "statistic": "Individual Obs"})},
        coords={"lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north",
                                     "axis": "Y"}),
                "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east",
                                     "axis": "X"}),
                "time": ("time", pd.date_range("2014-10-01", periods=nt, freq="6h"))},
        attrs={"Conventions": "COARDS",
               "title": "4x daily air temperature (synthetic, geomount tests)"})
    ds = ds[["lat", "lon", "time", "air"]]  # coordinates stored first, as netCDF-C does
    enc = {"air": {"dtype": "int16", "scale_factor": 0.01, "_FillValue": None},
           "time": {"units": "hours since 1800-01-01", "dtype": "float32",
                    "calendar": "standard"},
           "lat": {"_FillValue": None}, "lon": {"_FillValue": None}}
    # xarray's h5netcdf writer; a 16 KiB metadata block keeps every object header and the
    # dimension-scale references (written at close) ahead of the data, as netCDF-C lays out.
    store = xr.backends.H5NetCDFStore.open(path, mode="w",
                                           driver_kwds={"meta_block_size": 16384})
    with warnings.catch_warnings():
        # Packing floats as int16 without a _FillValue is intended: the data has no NaN.
        warnings.simplefilter("ignore", xr.SerializationWarning)
        ds.dump_to_store(store, encoding=enc)
    store.close()

    import h5py

    storage = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                assert obj.chunks is None, name  # all contiguous
                storage.append({"name": name, "offset": obj.id.get_offset(),
                                "size": obj.id.get_storage_size()})
        f.visititems(visit)
    storage.sort(key=lambda s: s["offset"])
    back = xr.open_dataset(path, engine="h5netcdf").load()
    write_json(os.path.join(d, "air.json"), {
        "size": os.path.getsize(path), "storage": storage, "xarray": summary(back)})


# --------------------------------------------------------------------------------- driver

def make_all(out):
    make_grib(out)
    make_idx(out)
    make_cogs(out)
    make_zarr(out)
    make_netcdf(out)
    hdf5 = os.path.join(out, "hdf5")
    os.makedirs(hdf5, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "..", "py", "hdf5_fixtures.py"), hdf5],
                   check=True, stdout=subprocess.DEVNULL)


def differences(a, b):
    cmp = filecmp.dircmp(a, b, ignore=["README.md", "make.py", "__pycache__"])
    out = [f"only in {cmp.left}: {n}" for n in cmp.left_only]
    out += [f"only in {cmp.right}: {n}" for n in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    out += [f"differs: {os.path.join(a, n)}" for n in mismatch + errors]
    for sub in cmp.common_dirs:
        out += differences(os.path.join(a, sub), os.path.join(b, sub))
    return out


def main():
    if sys.argv[1:] == ["--check"]:
        with tempfile.TemporaryDirectory() as tmp:
            make_all(tmp)
            diff = differences(HERE, tmp)
        for line in diff:
            print(line)
        print("fixtures: " + ("differ from a fresh run" if diff else "identical to a fresh run"))
        sys.exit(1 if diff else 0)
    if sys.argv[1:]:
        sys.exit(__doc__)
    make_all(HERE)


if __name__ == "__main__":
    main()
