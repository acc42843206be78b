#!/usr/bin/env python3
"""One benchmark workload, one client, run twice (cold, then warm) in one process. Run it with
the bench venv's python; bench.py calls it with one JSON argument:

    {"workload": "W1seq", "params": {...},
     "access": {"kind": "path", "root": DIR}                       # a mount or the local copy
             | {"kind": "s3", "endpoint": URL, "region": R, "bucket": B, "prefix": P,
                "key_id": ID, "secret": S, "client": "baseline|fsspec|vsis3|download|herbie"},
     "proxy": URL or null, "rss_pid": PID or null, "reps": 2}

Each workload is a list of parts; each part of each repetition is timed on its own, with the
proxy's counters reset before it and read after it. Prints one JSON object:
    {"reps": [[{"part": NAME, "wall": s, "check": ..., "stats": {...}, "rss_kib": N}, ...], ...]}
`check` is a value every client must agree on (bench.py compares it with the local copy's):
bytes read, a digest of the bytes, rounded sums of decoded values, counts of entries.
Peak RSS: VmHWM of rss_pid (the FUSE daemon) if given, else the max of this process's and its
children's ru_maxrss.
"""

import concurrent.futures
import glob
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

READ = 256 << 10  # W1's read size


# ---------------------------------------------------------------- access
class Access:
    def __init__(self, spec):
        self.spec = spec
        self.kind = spec["kind"]
        self.client = spec.get("client", "path")
        self._s3 = None

    def path(self, rel):
        return os.path.join(self.spec["root"], rel)

    def key(self, rel):
        return self.spec["prefix"] + rel

    @property
    def s3(self):
        if self._s3 is None:
            import boto3
            from botocore.config import Config
            sp = self.spec
            self._s3 = boto3.client(
                "s3", endpoint_url=sp["endpoint"], region_name=sp["region"],
                aws_access_key_id=sp["key_id"], aws_secret_access_key=sp["secret"],
                config=Config(s3={"addressing_style": "path"}, max_pool_connections=16,
                              retries={"max_attempts": 3, "mode": "standard"},
                              request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"))
        return self._s3

    def get(self, rel, start=None, length=None):
        kw = {"Bucket": self.spec["bucket"], "Key": self.key(rel)}
        if start is not None:
            kw["Range"] = f"bytes={start}-{start + length - 1}"
        return self.s3.get_object(**kw)["Body"].read()

    def size(self, rel):
        if self.kind == "path":
            return os.path.getsize(self.path(rel))
        return self.s3.head_object(Bucket=self.spec["bucket"], Key=self.key(rel))["ContentLength"]

    def pread(self, rel, start, length):
        if self.kind == "path":
            with open(self.path(rel), "rb") as f:
                return os.pread(f.fileno(), length, start)
        return self.get(rel, start, length)

    def gdal_env(self):
        sp = self.spec
        host = sp["endpoint"].split("://", 1)[1]
        return dict(os.environ, AWS_S3_ENDPOINT=host, AWS_HTTPS="NO", AWS_VIRTUAL_HOSTING="FALSE",
                    AWS_REGION=sp["region"], AWS_ACCESS_KEY_ID=sp["key_id"],
                    AWS_SECRET_ACCESS_KEY=sp["secret"], GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")

    def gdal_name(self, rel):
        if self.kind == "path":
            return self.path(rel)
        return f"/vsis3/{self.spec['bucket']}/{self.key(rel)}"


# ---------------------------------------------------------------- W1: sequential reads
def read_file_seq(path):
    buf = bytearray(READ)
    n = 0
    with open(path, "rb", buffering=0) as f:
        while (got := f.readinto(buf)):
            n += got
    return n


def baseline_get(acc, rels, threads=8, part=8 << 20):
    """The parallel ranged-GET baseline: parts of all objects on `threads` threads."""
    jobs = []
    for rel in rels:
        size = acc.size(rel)
        jobs += [(rel, off, min(part, size - off)) for off in range(0, size, part)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return sum(len(b) for b in pool.map(lambda j: acc.get(*j), jobs))


def w1(acc, objs):
    if acc.client == "baseline":
        return baseline_get(acc, objs)
    with concurrent.futures.ThreadPoolExecutor(len(objs)) as pool:
        return sum(pool.map(lambda r: read_file_seq(acc.path(r)), objs))


def w1_seq(acc, p):
    return [("seq 256KiB reads", lambda: w1(acc, ["random/obj0.bin"]))]


def w1_par(acc, p):
    return [("4 readers, 4 objects", lambda: w1(acc, [f"random/obj{i}.bin" for i in range(4)]))]


# ---------------------------------------------------------------- W2: random reads
def w2(acc, p):
    size = p["obj_size"]

    def part(read_size, count, obj):
        # One object per read size, so no part starts with what an earlier one left cached.
        rel = f"random/obj{obj}.bin"
        offsets = np.random.default_rng(obj).integers(0, size - read_size, count)

        def go():
            h = hashlib.sha256()
            if acc.kind == "path":
                with open(acc.path(rel), "rb", buffering=0) as f:
                    for off in offsets:
                        h.update(os.pread(f.fileno(), read_size, int(off)))
            else:
                for off in offsets:
                    h.update(acc.get(rel, int(off), read_size))
            return h.hexdigest()[:16]
        return (f"{count} x {read_size >> 10} KiB", go)
    return [part(4 << 10, p["n4k"], 1), part(64 << 10, p["n64k"], 2), part(1 << 20, p["n1m"], 3)]


# ---------------------------------------------------------------- W3: xarray on the Zarr store
def open_zarr(acc):
    import xarray as xr
    if acc.kind == "path":
        return xr.open_zarr(acc.path("conus404_daily.zarr"), consolidated=True)
    sp = acc.spec
    url = f"s3://{sp['bucket']}/{acc.key('conus404_daily.zarr')}"
    return xr.open_zarr(url, consolidated=True, storage_options={
        "endpoint_url": sp["endpoint"], "key": sp["key_id"], "secret": sp["secret"],
        "client_kwargs": {"region_name": sp["region"]}})


def w3(acc, p):
    import xarray  # noqa: F401  (imported before timing: not part of any client's cost)
    import zarr  # noqa: F401
    if acc.kind == "s3":
        import s3fs  # noqa: F401
    rng = np.random.default_rng(3)

    def point():
        ds = open_zarr(acc)
        y, x = ds.sizes["y"] // 3, ds.sizes["x"] // 2
        return round(float(ds.T2.isel(y=y, x=x).values.astype("float64").sum()), 2)

    def field():
        ds = open_zarr(acc)
        v = ds.T2.isel(time=ds.sizes["time"] // 2).values
        return round(float(v.astype("float64").sum()), 0)

    def patches():
        ds = open_zarr(acc)
        side, days = p["patch"], min(30, ds.sizes["time"])
        total = 0.0
        for _ in range(p["patches"]):
            y0 = int(rng.integers(0, ds.sizes["y"] - side))
            x0 = int(rng.integers(0, ds.sizes["x"] - side))
            t0 = int(rng.integers(0, ds.sizes["time"] - days + 1))
            v = ds.PREC_ACC_NC.isel(time=slice(t0, t0 + days), y=slice(y0, y0 + side),
                                    x=slice(x0, x0 + side)).values
            total += float(v.astype("float64").sum())
        return round(total, 0)
    # T2 for the point and the field, PREC_ACC_NC for the patches: a mount's cold patches must not
    # find the field's chunks cached (in quick mode one time chunk holds every day).
    return [("T2 point time series", point), ("T2 one day's field", field),
            (f"PREC {p['patches']} patches {p['patch']}x{p['patch']} x 30 days", patches)]


# ---------------------------------------------------------------- W4: GDAL
def w4(acc, p):
    env = os.environ if acc.kind == "path" else acc.gdal_env()
    tmp = tempfile.mkdtemp(prefix="gm-w4-")
    rng = np.random.default_rng(4)

    def windows():
        side, w = p["cog_side"], p["window"]
        h = hashlib.sha256()
        for i in range(p["windows"]):
            x, y = (int(v) for v in rng.integers(0, side - w, 2))
            out = os.path.join(tmp, f"w{i}.tif")
            subprocess.run(["gdal_translate", "-q", "-srcwin", str(x), str(y), str(w), str(w),
                            acc.gdal_name("cog/big.tif"), out], check=True, env=env)
            # The pixels, not the file: GDAL stamps nothing path-dependent in them.
            with open(out, "rb") as f:
                h.update(str(os.path.getsize(out)).encode())
                h.update(f.read()[-w * w * 4:])
            os.remove(out)
        return h.hexdigest()[:16]

    def infos():
        sizes = 0
        for i in range(p["infos"]):
            out = subprocess.run(["gdalinfo", acc.gdal_name(f"cogs/cog_{i:03d}.tif")], check=True,
                                 env=env, capture_output=True, text=True).stdout
            sizes += out.count("Size is 256, 256")
        return sizes
    return [(f"gdal_translate -srcwin, {p['windows']} windows", windows),
            (f"gdalinfo of {p['infos']} of the {p['cogs']} COGs in one folder", infos)]


# ---------------------------------------------------------------- W5: one GRIB2 field
GRIB = "hrrr/hrrr.t00z.wrfsfcf12.grib2"


def decode_mean(message):
    import eccodes
    h = eccodes.codes_new_from_message(message)
    try:
        return round(float(eccodes.codes_get_array(h, "values").mean()), 5)
    finally:
        eccodes.codes_release(h)


def message_range(idx_text, number):
    lines = [ln.split(":") for ln in idx_text.splitlines() if ln.strip()]
    start = int(lines[number - 1][1])
    end = int(lines[number][1]) if number < len(lines) else None
    return start, end


def w5(acc, p):
    import eccodes  # noqa: F401  (imported before timing)
    number = p["grib_msgs"] // 2 + 1  # a "11-12 hour acc" message in the middle of the file

    def field():
        if acc.client == "download":  # fetch the whole file, then let eccodes find the message
            import eccodes
            with tempfile.NamedTemporaryFile(prefix="gm-w5-") as tmp:
                acc.s3.download_fileobj(acc.spec["bucket"], acc.key(GRIB), tmp)
                tmp.flush()
                with open(tmp.name, "rb") as f:
                    for _ in range(number):
                        h = eccodes.codes_grib_new_from_file(f)
                        msg = eccodes.codes_get_message(h)
                        eccodes.codes_release(h)
            return decode_mean(msg)
        # Herbie-style: read the inventory, then only the message's byte range
        if acc.kind == "path":
            idx = open(acc.path(GRIB + ".idx")).read()
        else:
            idx = acc.get(GRIB + ".idx").decode()
        start, end = message_range(idx, number)
        end = end if end is not None else acc.size(GRIB)
        return decode_mean(acc.pread(GRIB, start, end - start))
    return [(f"message {number} of {p['grib_msgs']} via .idx", field)]


# ---------------------------------------------------------------- W6: listing
def w6(acc, p):
    d = acc.path("small")

    def ls():
        out = subprocess.run(["ls", "-l", d], check=True, capture_output=True, text=True).stdout
        return len(out.splitlines()) - 1  # "total N"

    def find():
        out = subprocess.run(["find", d], check=True, capture_output=True, text=True).stdout
        return len(out.splitlines())
    return [("ls -l", ls), ("find", find)]


# ---------------------------------------------------------------- W9: NetCDF-4 files, one per year
def open_wrf(acc):
    import xarray as xr
    if acc.kind == "path":
        files = sorted(glob.glob(acc.path("wrf/*.nc")))
        return xr.open_mfdataset(files, engine="h5netcdf", combine="by_coords")
    import s3fs
    sp = acc.spec
    fs = s3fs.S3FileSystem(endpoint_url=sp["endpoint"], key=sp["key_id"], secret=sp["secret"],
                           client_kwargs={"region_name": sp["region"]})
    files = sorted(fs.glob(f"{sp['bucket']}/{acc.key('wrf/*.nc')}"))
    return xr.open_mfdataset([fs.open(f) for f in files], engine="h5netcdf", combine="by_coords")


def w9(acc, p):
    import dask  # noqa: F401  (imported before timing)
    import h5netcdf  # noqa: F401
    import xarray  # noqa: F401
    if acc.kind == "s3":
        import s3fs  # noqa: F401

    def with_point(ds):
        y, x = ds.sizes["y"] // 3, ds.sizes["x"] // 2
        return ds, y, x

    def open_all():
        ds = open_wrf(acc)
        return [int(ds.sizes["time"]), ds.T2.dims]

    def point():
        ds, y, x = with_point(open_wrf(acc))
        return round(float(ds.T2.isel(y=y, x=x).values.astype("float64").sum()), 2)

    def day(ds):  # the middle step: a field from one file
        return round(float(ds.T2.isel(time=ds.sizes["time"] // 2).values.astype("float64")
                           .sum()), 2)

    def field():
        return day(open_wrf(acc))
    if acc.client == "geomount-views":
        # geomount's folder view: the same files as one Zarr store, on a mount of its own.
        def view():
            return xarray.open_zarr(acc.path("wrf.zarr"), consolidated=True)

        def open_view():
            ds = view()
            return [int(ds.sizes["time"]), ds.T2.dims]

        def point_view():
            ds, y, x = with_point(view())
            return round(float(ds.T2.isel(y=y, x=x).values.astype("float64").sum()), 2)

        def field_view():
            return day(view())
        return [("open_zarr wrf.zarr", open_view), ("T2 point series via wrf.zarr", point_view),
                ("one day's T2 field via wrf.zarr", field_view)]
    return [("open_mfdataset", open_all), ("T2 point time series", point),
            ("one day's T2 field", field)]


WORKLOADS = {"W1seq": w1_seq, "W1par": w1_par, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6,
             "W9": w9}


def proxy_call(proxy, path, method="GET"):
    req = urllib.request.Request(proxy + path, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def peak_rss_kib(pid):
    if pid:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def main():
    spec = json.loads(sys.argv[1])
    acc = Access(spec["access"])
    if acc.kind == "s3" and acc.client in ("baseline", "download", "herbie"):
        acc.s3  # the boto3 client is set up before timing, as a mount is
    proxy = spec.get("proxy")
    reps = []
    for _ in range(spec.get("reps", 2)):
        rows = []
        for name, fn in WORKLOADS[spec["workload"]](acc, spec["params"]):
            if proxy:
                proxy_call(proxy, "/__proxy/reset", "POST")
            t0 = time.perf_counter()
            check = fn()
            wall = time.perf_counter() - t0
            stats = proxy_call(proxy, "/__proxy/stats") if proxy else None
            rows.append({"part": name, "wall": round(wall, 4), "check": check, "stats": stats,
                         "rss_kib": peak_rss_kib(spec.get("rss_pid"))})
        reps.append(rows)
    print(json.dumps({"reps": reps}))


if __name__ == "__main__":
    main()
