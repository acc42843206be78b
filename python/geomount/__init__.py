"""geomount: mount S3 buckets and their Zarr, COG, GRIB2 and NetCDF datasets as a local read-only
folder, from Python.

    import geomount, xarray as xr
    with geomount.mount("s3://bucket/prefix", endpoint_url="https://...") as root:
        ds = xr.open_zarr(root / "store.zarr")

Everything runs through the ``geomount`` binary that the wheel installs; this package has no S3
code of its own. ``python -m geomount ARGS`` runs the binary with ARGS.
"""

from importlib.metadata import PackageNotFoundError, version

from ._core import Mount, MountError, binary, catalog, mount, stats, unmount
from ._options import FLAGS

try:
    __version__ = version("geomount")
except PackageNotFoundError:  # a source checkout, not installed
    __version__ = "0+unknown"

__all__ = ["FLAGS", "Mount", "MountError", "binary", "catalog", "mount", "stats", "unmount"]
