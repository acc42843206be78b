#!/usr/bin/env bash
# bench/write.sh — W7, writes (bench/write.py): cp of a large file and rsync of small files into
# the bucket through geomount --read-write, rclone (--vfs-cache-mode writes), s3fs-fuse and boto3,
# through the 20 ms labproxy. Prints a table; BENCHMARKS.md records it by hand with the command.
#
#   bench/write.sh [--mode quick|full|smoke] [--clients geomount,rclone,s3fs,direct] [--runs N]
#
# BENCH_GEOMOUNT=path measures that binary instead of building the working tree (release).
set -euo pipefail
cd "$(dirname "$0")/.."
((EUID == 0)) || { echo "bench: needs root (FUSE mounts)" >&2; exit 1; }
lab/install.sh >/dev/null
LAB_HOME=${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}
# shellcheck source=bench/measured_binary.sh
source bench/measured_binary.sh
"$LAB_HOME/venv/bin/python" bench/write.py --geomount "$copy" "$@"
