#!/usr/bin/env bash
# bench/run.sh — the benchmark lab: the users' workloads W1-W6 and W9 (README of the issue, BENCHMARKS.md)
# with geomount and its peers side by side, every client going through the labproxy (latency,
# faults, per-kind request counts) in front of a private Garage.
#
#   bench/run.sh [--smoke|--quick|--full] [--delay-ms 0|20|80] [options]
#     --smoke       tiny data, a minute or two; prints the tables, does not write BENCHMARKS.md
#                   (scripts/test.sh runs it; exit 1 if any cell fails)
#     --quick       the default: reduced sizes, under 5 minutes once the data is cached
#     --full        the sizes of the issue (1 GiB objects, >= 1 GB Zarr, 100,000 objects, ...)
#     --delay-ms N  the proxy's delay before each response (default 20; profiles 0 and 80)
#     --proxy-flag F   extra labproxy flag, repeatable (e.g. --proxy-flag=--fail-503=0.01)
#     --workloads W1seq,W1par,W2,W3,W4,W5,W6,W9   a subset;  --clients geomount,local,...  a subset
#     --write / --no-write   update BENCHMARKS.md or not (default: write unless --smoke)
#     --keep-work   keep the work directory (logs, results.json)
#
# Environment: BENCH_GEOMOUNT=path measures that binary instead of building the working tree
# (release). Data is generated once per mode into ~/.cache/geomount-lab/bench-data/MODE-VERSION
# (bench/gen_data.py). Needs root (FUSE mounts, fadvise of the local copy) and lab/install.sh's
# tools, including the bench venv (~/.cache/geomount-lab/bench-venv: xarray, zarr, s3fs, eccodes).
# Everything it starts (lab, proxy, mounts, daemons) is stopped by PID and unmounted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

args=() mode=quick
for arg in "$@"; do
  case $arg in
    --smoke | --quick | --full) mode=${arg#--} ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done
((EUID == 0)) || { echo "bench: needs root (FUSE mounts)" >&2; exit 1; }

lab/install.sh >/dev/null
LAB_HOME=${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null) ]] \
  || rev+="+uncommitted"
# shellcheck source=bench/measured_binary.sh
source bench/measured_binary.sh

"$LAB_HOME/bench-venv/bin/python" bench/bench.py --mode "$mode" --geomount "$copy" \
  --geomount-rev "$rev" --command "bench/run.sh $*" "${args[@]}"
