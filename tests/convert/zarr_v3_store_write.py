"""Writes two CF Zarr v3 stores with xarray/zarr-python 3 (`zarr_format=3`, consolidated):
`blosc.zarr` (blosc lz4 with bit shuffle for T2, blosc zstd with byte shuffle for x and y)
`zstd.zarr` (zstd, zarr-python 3's default) and `shard.zarr` (zstd inner chunks in
`sharding_indexed` shards), and `plain.zarr` (zstd, not consolidated). T2(time, y, x) on a Lambert conformal grid whose y runs
south to north, chunks that split the plane unevenly, hourly CF time, a `crs` grid-mapping
variable. Saves each step's zarr-python slice as <store>_T2_<label>.npy beside the stores,
and prints the labels and the grid's corner (west, north)."""
import sys

import numpy as np
import zarr

from cf_lcc import cf_lcc
from zarr.codecs import BloscCodec, ZstdCodec

out = sys.argv[1]
nt, ny, nx, d = 2, 200, 300, 3000.0
ds, x, y, times = cf_lcc(nt, ny, nx, d, -450000.0, -300000.0, 11, "3h")
time_enc = {"units": "hours since 1979-10-01", "calendar": "proleptic_gregorian",
            "dtype": "int64"}
for name, comp in [
    ("blosc", BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")),
    ("zstd", ZstdCodec(level=5)),
    ("shard", ZstdCodec(level=5)),
    ("plain", ZstdCodec(level=5)),
]:
    enc = {"T2": {"chunks": (1, 64, 128), "compressors": [comp]}, "time": dict(time_enc)}
    if name == "shard":
        # Shards of 2 x 2 x 2 inner chunks; the plane's edge shards are partly empty.
        enc["T2"]["shards"] = (2, 128, 256)
    if name == "blosc":
        for c in ("x", "y"):
            enc[c] = {"compressors": [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]}
    store = f"{out}/{name}.zarr"
    # `plain.zarr`: no consolidated metadata, only each array's own zarr.json.
    ds.to_zarr(store, zarr_format=3, consolidated=name != "plain", encoding=enc, mode="w")
    meta = zarr.open_group(store, mode="r", use_consolidated=False)["T2"].metadata.to_dict()
    print(name, "codecs", [c["name"] for c in meta["codecs"]])
    arr = zarr.open_group(store, mode="r", use_consolidated=False)["T2"]
    for t in range(nt):
        np.save(f"{out}/{name}_T2_{times[t]:%Y-%m-%dT%H%M}.npy", arr[t])
print("labels", " ".join(f"{t:%Y-%m-%dT%H%M}" for t in times))
print("corner", x[0] - d / 2, y[-1] + d / 2)
