"""Writes a CF Zarr v2 store with xarray / zarr-python in which each variable is the same
T2(time, y, x) field (see cf_lcc.py) through another numcodecs compressor or filter chain:
every one the Zarr -> COG view decodes, and some it cannot (lzma raw and SHA-256 check, and a
codec registered here only); and a v3 store of some of them as zarr-python 3 names them
(`numcodecs.*`), with a SHA-256 lzma and a `transpose` it cannot make. Saves each listed
variable's zarr-python slices as <var>_<t>.npy (v3: v3_<var>_<t>.npy) beside the stores; prints the variable names it expects listed and unlisted, and
the grid's corner (west, north)."""
import lzma
import sys
import warnings

import numcodecs
import numpy as np
import zarr
from numcodecs.abc import Codec
from zarr.codecs import TransposeCodec
from zarr.codecs import numcodecs as zn

from cf_lcc import cf_lcc


class Reverse(Codec):
    """A codec no reader but this script knows: the bytes reversed."""

    codec_id = "test_reverse"

    def encode(self, buf):
        return bytes(numcodecs.compat.ensure_bytes(buf))[::-1]

    def decode(self, buf, out=None):
        dec = bytes(numcodecs.compat.ensure_bytes(buf))[::-1]
        return numcodecs.compat.ndarray_copy(dec, out)


numcodecs.register_codec(Reverse)

out = sys.argv[1]
nt, ny, nx, d = 2, 40, 60, 3000.0
ds, x, y, times = cf_lcc(nt, ny, nx, d, -900000.0, -300000.0, 11, "D")
t2 = ds["T2"]
filled = t2.fillna(281.25)
B = numcodecs.Blosc
# name: (field, compressor, filters)
listed = {
    "zlib": (t2, numcodecs.Zlib(level=3), None),
    "gzip": (t2, numcodecs.GZip(level=5), None),
    "zstd": (t2, numcodecs.Zstd(level=7), None),
    "bz2": (t2, numcodecs.BZ2(level=9), None),
    "lz4": (t2, numcodecs.LZ4(acceleration=2), None),
    "lzma": (t2, numcodecs.LZMA(), None),
    "lzma_crc32": (t2, numcodecs.LZMA(check=lzma.CHECK_CRC32, preset=9), None),
    "lzma_alone": (t2, numcodecs.LZMA(format=lzma.FORMAT_ALONE), None),
    "blosc_lz4": (t2, B(cname="lz4", clevel=5, shuffle=B.SHUFFLE), None),
    "blosc_lz4hc": (t2, B(cname="lz4hc", clevel=5, shuffle=B.BITSHUFFLE), None),
    "blosc_zstd": (t2, B(cname="zstd", clevel=5, shuffle=B.BITSHUFFLE), None),
    "blosc_zlib": (t2, B(cname="zlib", clevel=5, shuffle=B.NOSHUFFLE), None),
    "blosc_blosclz": (t2, B(cname="blosclz", clevel=5, shuffle=B.SHUFFLE), None),
    "shuffle": (t2, numcodecs.Zlib(level=1), [numcodecs.Shuffle(elementsize=4)]),
    "delta": (filled, numcodecs.Zstd(level=1), [numcodecs.Delta(dtype="<f4")]),
    "fixedscaleoffset": (filled, numcodecs.BZ2(level=1), [
        numcodecs.FixedScaleOffset(offset=200, scale=100, dtype="<f4", astype="<u2")]),
    "quantize": (t2, numcodecs.LZ4(), [numcodecs.Quantize(digits=2, dtype="<f4")]),
    "bitround": (t2, numcodecs.Zstd(level=3), [numcodecs.BitRound(keepbits=8)]),
    "astype": (t2.astype("float64"), numcodecs.Zlib(level=1), [
        numcodecs.AsType(encode_dtype="<f4", decode_dtype="<f8")]),
    "delta_shuffle_lzma": (filled, numcodecs.LZMA(preset=1), [
        numcodecs.Delta(dtype="<f4"), numcodecs.Shuffle(elementsize=4)]),
    "delta_astype": (filled.astype("float64"), numcodecs.Zlib(level=1), [
        numcodecs.Delta(dtype="<f8", astype="<f4")]),
    "crc32_zstd": (t2, numcodecs.Zstd(level=1), [numcodecs.CRC32()]),
    "adler32": (t2, numcodecs.Adler32(), None),
    "fletcher32_crc32c": (t2, numcodecs.CRC32C(), [numcodecs.Fletcher32()]),
    "jenkins_lookup3": (t2, numcodecs.JenkinsLookup3(), None),
}
unlisted = {
    "lzma_raw": (t2, numcodecs.LZMA(format=lzma.FORMAT_RAW,
                                    filters=[{"id": lzma.FILTER_LZMA2, "preset": 1}]), None),
    "lzma_sha256": (t2, numcodecs.LZMA(check=lzma.CHECK_SHA256), None),
    "reverse": (t2, Reverse(), None),
}
enc = {}
data = {}
for name, (field, comp, filters) in {**listed, **unlisted}.items():
    data[name] = field.rename(name)
    enc[name] = {"chunks": (1, 16, 25), "compressors": [comp], "filters": filters}
out_ds = ds.drop_vars("T2").assign(data)
store = f"{out}/codecs.zarr"
out_ds.to_zarr(store, zarr_format=2, consolidated=True, encoding=enc, mode="w")
group = zarr.open_group(store, mode="r")
for name in listed:
    for t in range(nt):
        np.save(f"{out}/{name}_{t}.npy", group[name][t])
print("listed", " ".join(sorted(listed)))
print("unlisted", " ".join(sorted(unlisted)))

# Zarr v3: numcodecs as zarr-python 3 names them (`numcodecs.*`), array-to-array before the
# `bytes` serializer, bytes-to-bytes after it.
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
listed3 = {
    "lzma": (t2, [zn.LZMA()], None),
    "bz2_lz4": (t2, [zn.BZ2(level=3), zn.LZ4()], None),
    "zlib": (t2, [zn.Zlib(level=1)], None),
    "shuffle_zstd": (t2, [zn.Shuffle(elementsize=4), zn.Zstd(level=3)], None),
    "delta": (filled, [zn.LZMA(preset=1)], [zn.Delta(dtype="<f4")]),
    "fixedscaleoffset": (filled, [zn.BZ2()], [
        zn.FixedScaleOffset(offset=200, scale=100, dtype="<f4", astype="<u2")]),
    "quantize": (t2, [zn.Zstd()], [zn.Quantize(digits=2, dtype="<f4")]),
}
unlisted3 = {
    "lzma_sha256": (t2, [zn.LZMA(check=lzma.CHECK_SHA256)], None),
    "transpose": (t2, [zn.Zlib()], [TransposeCodec(order=(0, 2, 1))]),
}
enc = {}
data = {}
for name, (field, comps, filters) in {**listed3, **unlisted3}.items():
    data[name] = field.rename(name)
    enc[name] = {"chunks": (1, 16, 25), "compressors": comps}
    if filters:
        enc[name]["filters"] = filters
store = f"{out}/codecs3.zarr"
ds.drop_vars("T2").assign(data).to_zarr(store, zarr_format=3, consolidated=True,
                                          encoding=enc, mode="w")
group = zarr.open_group(store, mode="r")
for name in listed3:
    for t in range(nt):
        np.save(f"{out}/v3_{name}_{t}.npy", group[name][t])
print("listed3", " ".join(sorted(listed3)))
print("unlisted3", " ".join(sorted(unlisted3)))
print("labels", " ".join(f"{t:%Y-%m-%d}" for t in times))
print("corner", x[0] - d / 2, y[-1] + d / 2)
