"""``python -m geomount ARGS``: runs the geomount binary of this environment with ARGS."""

import os
import sys

from ._core import binary


def main() -> None:
    exe = str(binary())
    os.execv(exe, [exe, *sys.argv[1:]])


if __name__ == "__main__":
    main()
