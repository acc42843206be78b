"""The dask recipe: the same source mounted at the same path on every worker.

    from dask.distributed import Client
    import geomount, geomount.dask, xarray as xr

    client = Client(...)
    path = "/tmp/era5"
    client.register_plugin(geomount.dask.MountPlugin("s3://bucket/era5", path, endpoint_url=...))
    with geomount.mount("s3://bucket/era5", path, endpoint_url=...):  # the client reads metadata
        ds = xr.open_zarr(f"{path}/store.zarr", chunks={"time": 24})
        print(ds.t2m.mean().compute())

Workers (and the client) on one host share one mount; the last one to leave unmounts it. Each
worker unmounts on teardown (when it closes or the plugin is unregistered).
"""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin

from ._core import Mount, StrPath
from ._options import OptionValue, to_args


class MountPlugin(WorkerPlugin):  # type: ignore[misc]  # distributed has no type hints here
    """A worker plugin that mounts ``source`` at ``mountpoint`` on every worker, with the
    options of :func:`geomount.mount`; an unknown option raises :class:`TypeError` here, on the
    client."""

    def __init__(self, source: str, mountpoint: StrPath, **options: OptionValue) -> None:
        to_args(options)
        self.source = source
        self.mountpoint = mountpoint
        self.options = options
        self.name = f"geomount:{mountpoint}"
        self._mount: Mount | None = None

    def setup(self, worker: Any) -> None:
        self._mount = Mount(self.source, self.mountpoint, self.options)
        self._mount.__enter__()

    def teardown(self, worker: Any) -> None:
        if self._mount is not None:
            self._mount.unmount()
            self._mount = None
