#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need, starts the lab's S3 servers
# (Garage, moto) on loopback, runs every tier (unit tests and the lab tier, which mounts real FUSE
# filesystems and checks them with real clients), and always stops the servers it started.
#   scripts/test.sh [extra cargo test args, e.g. a test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

lab/install.sh

# A lab of our own, so concurrent runs never share servers.
run_dir=$(mktemp -d /tmp/geomount-test.XXXXXX)
export LAB_STATE=$run_dir/lab
cleanup() {
  lab/lab.sh stop || true
  rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM
env_file=$(lab/lab.sh start)
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a

cargo build --features lab-tests --all-targets
# Mount-heavy tests run two at a time: the machine has 2 cores.
cargo test --features lab-tests -- --test-threads="${TEST_THREADS:-2}" "$@"

# The benchmark harness at tiny sizes (its own lab and proxy), so that it never rots: it fails if
# any workload cell fails or disagrees with the local reference. Skipped when a filter is given.
if (($# == 0)) || [[ ${BENCH_SMOKE:-} == 1 ]]; then
  BENCH_GEOMOUNT=${CARGO_TARGET_DIR:-target}/debug/geomount bench/run.sh --smoke
fi
