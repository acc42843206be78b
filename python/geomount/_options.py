"""The keyword options of :func:`geomount.mount`, one per flag of ``geomount mount``.

``endpoint_url="http://..."`` becomes ``--endpoint-url http://...``; a switch such as
``no_sign_request=True`` becomes ``--no-sign-request`` (``False`` or ``None`` leaves a flag out).
The table follows ``src/cli.rs`` and ``src/resolve.rs``; the wheel's test checks it against
``geomount mount --help``.
"""

from __future__ import annotations

import os

OptionValue = str | int | bool | os.PathLike[str] | None

#: Flag name (without ``--``) -> whether it takes a value (``False``: a switch).
FLAGS: dict[str, bool] = {
    # Where the source is and how requests are signed.
    "endpoint-url": True,
    "region": True,
    "force-path-style": False,
    "no-sign-request": False,
    "credentials-file": True,
    "profile": True,
    "earthdata-url": True,
    # The mount.
    "allow-other": False,
    "noexec": False,
    "uid": True,
    "gid": True,
    "file-mode": True,
    "dir-mode": True,
    "metadata-ttl": True,
    "cache-memory": True,
    "cache-dir": True,
    "cache-disk": True,
    "request-timeout": True,
    "threads": True,
    "log-file": True,
    "no-convert": False,
    # Writes (``read_write=True``).
    "read-write": False,
    "write-back": True,
    "no-delete": False,
    "staging-dir": True,
    "staging-max": True,
}

#: Flags of ``geomount mount`` that are not options, and why.
NOT_OPTIONS: dict[str, str] = {
    "foreground": "the context manager runs the daemon in the background and waits for it",
    "config": "a config file's tree is mounted with the command line: geomount mount --config",
    "help": "not a mount setting",
}


def to_args(options: dict[str, OptionValue]) -> list[str]:
    """The command-line flags for ``options``; an unknown option raises :class:`TypeError`."""
    args: list[str] = []
    for key, value in options.items():
        flag = key.replace("_", "-")
        if flag not in FLAGS:
            why = f" ({NOT_OPTIONS[flag]})" if flag in NOT_OPTIONS else ""
            raise TypeError(f"geomount.mount() got an unexpected option {key!r}{why}")
        if value is None or value is False:
            continue
        if not FLAGS[flag]:
            if value is not True:
                raise TypeError(f"option {key!r} is a switch: pass True or False, not {value!r}")
            args.append(f"--{flag}")
        elif isinstance(value, bool):
            raise TypeError(f"option {key!r} takes a value, not {value!r}")
        else:
            args += [f"--{flag}", os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return args
