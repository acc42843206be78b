#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need, starts the lab's S3 servers
# (Garage, moto) on loopback, runs every tier (unit tests and the lab tier, which mounts real FUSE
# filesystems and checks them with real clients), and always stops the servers it started.
#   scripts/test.sh [extra cargo test args, e.g. a test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

run_dir=$(mktemp -d /tmp/geomount-test.XXXXXX)
build_pid=
cleanup() {
  [[ -z $build_pid ]] || kill "$build_pid" 2>/dev/null || true
  [[ ! -f $run_dir/lab/.geomount-lab ]] || LAB_STATE=$run_dir/lab lab/lab.sh stop || true
  rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

# The project builds while the lab installs: on a fresh machine both are long compiles with
# serial stretches, and they use separate target dirs, so overlapping them fills both cores.
cargo build --features lab-tests --all-targets >"$run_dir/build.log" 2>&1 &
build_pid=$!
lab/install.sh
if ! wait "$build_pid"; then
  build_pid=
  cat "$run_dir/build.log" >&2
  echo "test: cargo build failed" >&2
  exit 1
fi
build_pid=
tail -n 1 "$run_dir/build.log"

# A lab of our own, so concurrent runs never share servers.
export LAB_STATE=$run_dir/lab
env_file=$(lab/lab.sh start)
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a

# Mount-heavy tests run two at a time: the machine has 2 cores.
cargo test --features lab-tests -- --test-threads="${TEST_THREADS:-2}" "$@"

# The benchmark harness at tiny sizes (its own lab and proxy), so that it never rots: it fails if
# any workload cell fails or disagrees with the local reference. Skipped when a filter is given.
if (($# == 0)) || [[ ${BENCH_SMOKE:-} == 1 ]]; then
  BENCH_GEOMOUNT=${CARGO_TARGET_DIR:-target}/debug/geomount bench/run.sh --smoke
fi
