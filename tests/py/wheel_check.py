"""wheel_check.py COMMAND ...: the Python half of tests/wheel.rs, run by the fresh venv's python
(the geomount package from the wheel). Each command prints one JSON object for the Rust test to
assert on; the S3 settings come from the environment (WHEEL_ENDPOINT, WHEEL_REGION and the AWS_*
keys).

  make DIR                   writes DIR/store.zarr (xarray, consolidated metadata)
  about                      the package's version, file, binary and option table
  unknown                    the TypeErrors of an unknown option (mount and MountPlugin)
  read SOURCE LOCAL          the context manager: reads SOURCE/store.zarr, compares with LOCAL;
                             then an exception inside a second block
  wrong SOURCE               the MountError of a mount that fails, and how long it took
  dask SOURCE LOCAL MP       MountPlugin on a two-process LocalCluster: a mean through MP
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import geomount
import numpy as np
import xarray as xr
from geomount._options import NOT_OPTIONS


def options() -> dict[str, Any]:
    return {"endpoint_url": os.environ["WHEEL_ENDPOINT"], "region": os.environ["WHEEL_REGION"]}


def mounted(p: Path) -> bool:
    """`mountpoint -q`, the command's own answer."""
    return subprocess.run(["mountpoint", "-q", str(p)], check=False).returncode == 0


def make(folder: str) -> dict[str, Any]:
    rng = np.random.default_rng(18)
    ds = xr.Dataset(
        {"t2": (("time", "y", "x"), rng.normal(280.0, 10.0, (12, 40, 50)).astype("float32"))},
        coords={"time": np.arange(12), "y": np.linspace(30, 50, 40), "x": np.linspace(-120, -70, 50)},
    )
    ds.t2.encoding["chunks"] = (3, 20, 25)
    ds.to_zarr(Path(folder) / "store.zarr", mode="w", consolidated=True)
    return {"mean": float(ds.t2.mean())}


def about() -> dict[str, Any]:
    return {
        "version": geomount.__version__,
        "file": geomount.__file__,
        "binary": str(geomount.binary()),
        "flags": geomount.FLAGS,
        "not_options": sorted(NOT_OPTIONS),
        "catalog": [p["name"] for p in geomount.catalog()],
    }


def unknown() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        geomount.mount("s3://bucket", bogus_option=1)
    except TypeError as e:
        out["mount"] = str(e)
    try:
        geomount.mount("s3://bucket", foreground=True)
    except TypeError as e:
        out["foreground"] = str(e)
    try:
        geomount.mount("s3://bucket", no_sign_request="yes")
    except TypeError as e:
        out["switch"] = str(e)
    from geomount.dask import MountPlugin

    try:
        MountPlugin("s3://bucket", "/tmp/x", cache_mem="1GiB")
    except TypeError as e:
        out["plugin"] = str(e)
    return out


class Boom(Exception):
    pass


def read(source: str, local: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with geomount.mount(source, **options(), cache_memory="64MiB", cache_disk=0) as root:
        out["root"] = str(root)
        out["mounted_inside"] = mounted(root)
        a = xr.open_zarr(Path(local) / "store.zarr").load()
        b = xr.open_zarr(root / "store.zarr").load()
        out["identical"] = bool(a.identical(b))
        out["equal"] = bool(np.array_equal(a.t2.values, b.t2.values))
        out["mean"] = float(b.t2.mean())
        out["stats"] = geomount.stats(root / "store.zarr")
    out["mounted_after"] = mounted(root)
    out["root_exists_after"] = root.exists()
    try:
        with geomount.mount(source, **options(), cache_disk=0) as root2:
            out["root2"] = str(root2)
            out["mounted_inside2"] = mounted(root2)
            raise Boom("inside the block")
    except Boom as e:
        out["raised"] = str(e)
    out["mounted_after2"] = mounted(root2)
    return out


def wrong(source: str) -> dict[str, Any]:
    start = time.monotonic()
    try:
        with geomount.mount(source, **options(), cache_disk=0):
            return {"error": None}
    except geomount.MountError as e:
        return {"error": str(e), "seconds": time.monotonic() - start}


def dask(source: str, local: str, mp: str) -> dict[str, Any]:
    from dask.distributed import Client, LocalCluster, get_task_stream
    from geomount.dask import MountPlugin

    out: dict[str, Any] = {}
    store = Path(mp) / "store.zarr"
    chunks = {"time": 3}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        client.register_plugin(MountPlugin(source, mp, **options(), cache_disk=0))
        out["worker_pids"] = sorted(client.run(os.getpid).values())
        out["workers_mounted"] = sorted(client.run(os.path.ismount, mp).values())
        # The client opens the metadata; on this host it joins the workers' mount.
        with geomount.mount(source, mp, **options(), cache_disk=0):
            t2 = xr.open_zarr(store, chunks=chunks).t2
            out["chunks"] = t2.data.npartitions
            with get_task_stream(client) as tasks:
                remote = t2.mean().compute()
            out["task_workers"] = len({t["worker"] for t in tasks.data})
            out["tasks"] = len(tasks.data)
            out["stats"] = geomount.stats(mp)
        local_mean = xr.open_zarr(Path(local) / "store.zarr", chunks=chunks).t2.mean().compute()
        out["mean"] = float(remote)
        out["local_mean"] = float(local_mean)
        out["mounted_before_close"] = mounted(Path(mp))
    out["mounted_after_close"] = mounted(Path(mp))
    return out


def main() -> None:
    cmd, args = sys.argv[1], sys.argv[2:]
    result = {"make": make, "about": about, "unknown": unknown, "read": read, "wrong": wrong, "dask": dask}[
        cmd
    ](*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
