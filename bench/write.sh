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
if [[ -n ${BENCH_GEOMOUNT:-} ]]; then
  bin=$BENCH_GEOMOUNT
else
  cargo build --release --quiet
  bin=target/release/geomount
fi
copy=$(mktemp /tmp/gm-bench-bin.XXXXXX)
trap 'rm -f -- "$copy"' EXIT
cp "$bin" "$copy"
chmod 755 "$copy"
"$LAB_HOME/venv/bin/python" bench/write.py --geomount "$copy" "$@"
