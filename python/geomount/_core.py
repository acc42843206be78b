"""Runs the geomount binary: mounts, unmounts, the catalog and a mount's counters."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Union

from ._options import OptionValue, to_args

#: How long ``geomount mount`` may take to answer. The daemon itself gives up on an unanswered
#: access check after 8 s and reports why; this only bounds a hung process.
START_TIMEOUT = 60.0

StrPath = Union[str, "os.PathLike[str]"]


class MountError(RuntimeError):
    """The daemon could not mount (or unmount); the message is the daemon's own line."""


def binary() -> Path:
    """The geomount binary: the one this environment's scripts folder holds (where the wheel
    installs it), then one on ``PATH``."""
    dirs = [sysconfig.get_path("scripts")]
    with contextlib.suppress(KeyError):
        dirs.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    for d in dirs:
        exe = Path(d) / "geomount"
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
    found = shutil.which("geomount")
    if found is None:
        raise MountError(
            f"the geomount binary is neither in {dirs[0]} nor on PATH: reinstall with pip install geomount"
        )
    return Path(found)


def _run(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary()), *args],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The daemon's error: its last ``geomount: ...`` line on stderr, without the prefix."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("geomount: "):
            return line[len("geomount: ") :]
    return lines[-1] if lines else f"geomount exited with status {proc.returncode}"


def catalog() -> list[dict[str, Any]]:
    """The dataset presets ``geomount.mount(NAME)`` accepts: ``name``, ``description``, ``url``,
    ``bucket``, ``prefix``, ``endpoint`` (``None`` for AWS's own), ``region``,
    ``force_path_style``, ``access`` (``"anonymous"`` or ``"earthdata"``) and ``earthdata_url``."""
    proc = _run(["catalog", "--json"], timeout=START_TIMEOUT)
    if proc.returncode != 0:
        raise MountError(_error_line(proc))
    presets: list[dict[str, Any]] = json.loads(proc.stdout)
    return presets


def stats(path: StrPath) -> dict[str, int]:
    """The request and cache counters of the mount that ``path`` is in (its ``.geomount-stats``
    file): ``get_requests``, ``bytes_fetched``, ``block_hits``, ..."""
    p = Path(path).absolute()
    for d in [p, *p.parents]:
        if os.path.ismount(d):
            try:
                counters: dict[str, int] = json.loads((d / ".geomount-stats").read_text())
            except FileNotFoundError:
                break
            return counters
    raise MountError(f"{path} is not inside a geomount mount")


def unmount(mountpoint: StrPath) -> None:
    """Unmounts ``mountpoint`` (also a stale mount left by a killed daemon)."""
    proc = _run(["unmount", os.fspath(mountpoint)], timeout=START_TIMEOUT)
    if proc.returncode != 0 and os.path.ismount(mountpoint):
        raise MountError(_error_line(proc))


class _Users:
    """Who uses the mount at one mount point, across processes (dask workers on one host mount
    the same path): a JSON file of ``{"source": ..., "users": ["PID:ID", ...]}`` under an
    exclusive lock. The first user mounts; the last one unmounts."""

    def __init__(self, mountpoint: Path) -> None:
        key = hashlib.sha256(os.fsencode(mountpoint)).hexdigest()[:24]
        folder = Path(tempfile.gettempdir()) / f"geomount-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        self.file = folder / f"{key}.json"
        self.lock = folder / f"{key}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        with open(self.lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state: dict[str, Any] = json.loads(self.file.read_text())
            except (FileNotFoundError, ValueError):
                state = {"source": None, "users": []}
            state["users"] = [u for u in state["users"] if _alive(int(u.split(":")[0]))]
            yield state
            if state["users"]:
                self.file.write_text(json.dumps(state))
            else:
                self.file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Mounts entered and not yet exited in this process, unmounted at interpreter exit.
_open: set[Mount] = set()


class Mount:
    """One use of a geomount mount; :func:`mount` makes it. Entering mounts (or joins the same
    source already mounted there by another process) and returns the mount point; exiting
    unmounts once no process uses it any more, and removes a temporary mount point."""

    def __init__(self, source: str, mountpoint: StrPath | None, options: dict[str, OptionValue]):
        self.source = source
        self.args = to_args(options)
        self._requested = None if mountpoint is None else Path(mountpoint).absolute()
        self.path: Path | None = None
        self._temporary = False

    def __enter__(self) -> Path:
        if self.path is not None:
            raise MountError(f"{self.source} is already mounted at {self.path} by this object")
        if self._requested is None:
            mp = Path(tempfile.mkdtemp(prefix="geomount-"))
            self._temporary = True
        else:
            mp = self._requested
            mp.mkdir(parents=True, exist_ok=True)
        try:
            with _Users(mp).locked() as state:
                if state["users"] and state["source"] != self.source:
                    raise MountError(f"{mp} already has {state['source']} mounted")
                if not state["users"]:
                    if state["source"] is not None and os.path.ismount(mp):
                        # Left by users that died without unmounting: start afresh.
                        unmount(mp)
                    self._start(mp)
                state["source"] = self.source
                state["users"].append(self._user())
        except BaseException:
            if self._temporary:
                mp.rmdir()
            raise
        self.path = mp
        _open.add(self)
        return mp

    def _user(self) -> str:
        return f"{os.getpid()}:{id(self)}"

    def _start(self, mp: Path) -> None:
        if os.path.ismount(mp):
            raise MountError(f"{mp} is a mount point already: unmount it first (geomount unmount {mp})")
        proc = _run(["mount", self.source, str(mp), *self.args], timeout=START_TIMEOUT)
        if proc.returncode != 0:
            raise MountError(_error_line(proc))
        # The daemon answers only once the mount does; check that this process sees it too.
        if not os.path.ismount(mp):
            raise MountError(f"geomount mount returned but {mp} is not mounted")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unmount()

    def unmount(self) -> None:
        """Leaves the mount: unmounts it when this was its last user. Safe to call twice."""
        mp = self.path
        if mp is None:
            return
        self.path = None
        _open.discard(self)
        try:
            with _Users(mp).locked() as state:
                state["users"] = [u for u in state["users"] if u != self._user()]
                if not state["users"] and os.path.ismount(mp):
                    unmount(mp)
        finally:
            if self._temporary:
                with contextlib.suppress(OSError):
                    mp.rmdir()


def mount(source: str, mountpoint: StrPath | None = None, **options: OptionValue) -> Mount:
    """Mounts ``source`` (a preset of :func:`catalog`, ``s3://BUCKET[/PREFIX]`` or
    ``file:///ABS/PATH``) read-only, as a context manager that returns the mount point::

        with geomount.mount("s3://bucket/prefix", endpoint_url="https://...") as root:
            ds = xarray.open_zarr(root / "store.zarr")

    ``mountpoint=None`` mounts on a new temporary folder, removed afterwards. The keyword
    options are the flags of ``geomount mount`` (``endpoint_url=``, ``region=``, ``profile=``,
    ``no_sign_request=True``, ``cache_memory="2GiB"``, ...); an unknown one raises
    :class:`TypeError`. A mount that fails raises :class:`MountError` with the daemon's reason.
    The mount is undone on exit from the block, also on an exception or at interpreter exit.
    Credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...) or the options."""
    return Mount(source, mountpoint, options)


@atexit.register
def _unmount_all() -> None:
    for m in list(_open):
        try:
            m.unmount()
        except Exception as e:  # noqa: BLE001 - report every mount, then go on exiting
            print(f"geomount: {e}", file=sys.stderr)
