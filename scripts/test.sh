#!/usr/bin/env bash
# The one test command (README, CI): checks formatting and lints (`cargo fmt --check`, clippy
# with -D warnings), installs what the tests need, starts the lab's S3 servers (Garage, moto) on
# loopback, runs every tier (unit tests and the lab tier, which mounts real FUSE filesystems and
# checks them with real clients; with FUZZ_SECONDS=N also each fuzz target for N s, fuzz/run.sh),
# and always stops the servers it started. The fixtures are the
# repository's own (tests/data). When ../shared/fixtures exists beside the checkout, a full run
# also runs the corpus check over those real files (tests/corpus.rs) and says how many it
# checked; an absent corpus is reported as not run, never as passed.
#   scripts/test.sh [extra cargo test args, e.g. a test name filter]
#   CORPUS=1 scripts/test.sh FILTER    also runs the corpus check with a filter given
set -euo pipefail
cd "$(dirname "$0")/.."

run_dir=$(mktemp -d /tmp/geomount-test.XXXXXX)
build_pid=
fuzz_pid=
cleanup() {
  [[ -z $build_pid ]] || kill "$build_pid" 2>/dev/null || true
  [[ -z $fuzz_pid ]] || kill "$fuzz_pid" 2>/dev/null || true
  [[ ! -f $run_dir/lab/.geomount-lab ]] || LAB_STATE=$run_dir/lab lab/lab.sh stop || true
  rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

if ! cargo fmt --check >"$run_dir/fmt.log" 2>&1; then
  cat "$run_dir/fmt.log" >&2
  echo "test: cargo fmt --check failed (run cargo fmt)" >&2
  exit 1
fi

# Lints, then the build, while the lab installs: on a fresh machine both are long compiles with
# serial stretches, and they use separate target dirs, so overlapping them fills both cores.
lint_and_build() {
  cargo clippy --all-targets --features lab-tests -- -D warnings ||
    { echo "test: cargo clippy --all-targets --features lab-tests -- -D warnings failed"; return 1; }
  cargo build --features lab-tests --all-targets || { echo "test: cargo build failed"; return 1; }
}
lint_and_build >"$run_dir/build.log" 2>&1 &
build_pid=$!
# The fuzz targets (their own target dir, in the lab cache) only when asked: on a fresh machine
# their build alone took 28 min beside the others, which CI's time cannot hold.
if [[ -n ${FUZZ_SECONDS:-} ]]; then
  lab/install.sh cargo-fuzz
  FUZZ_PROFILE=${FUZZ_PROFILE:-dev} fuzz/run.sh "$FUZZ_SECONDS" >"$run_dir/fuzz.log" 2>&1 &
  fuzz_pid=$!
fi
lab/install.sh
if ! wait "$build_pid"; then
  build_pid=
  cat "$run_dir/build.log" >&2
  exit 1
fi
build_pid=
tail -n 1 "$run_dir/build.log"
if [[ -z $fuzz_pid ]]; then
  echo "fuzz: not run (FUZZ_SECONDS=10 scripts/test.sh runs each target for 10 s; RELIABILITY.md)"
elif ! wait "$fuzz_pid"; then
  fuzz_pid=
  grep -v '^ *Compiling ' "$run_dir/fuzz.log" >&2
  echo "test: fuzz/run.sh failed (a crash file is named above)" >&2
  exit 1
else
  fuzz_pid=
  grep '^fuzz: ' "$run_dir/fuzz.log"
fi

# A lab of our own, so concurrent runs never share servers.
export LAB_STATE=$run_dir/lab
env_file=$(lab/lab.sh start)
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a

# Mount-heavy tests run two at a time: the machine has 2 cores.
cargo test --features lab-tests -- --test-threads="${TEST_THREADS:-2}" "$@"

# The lab proxy's own tests (a separate workspace; its target dir is the lab install's).
if (($# == 0)); then
  CARGO_TARGET_DIR=${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}/proxy-target \
    cargo test --locked --manifest-path lab/proxy/Cargo.toml
fi

# The corpus check over the real sample files beside the checkout, when they are there.
corpus=../shared/fixtures
if (($# > 0)) && [[ ${CORPUS:-} != 1 ]]; then
  corpus_result="corpus: not run (a test filter was given; CORPUS=1 runs it too)"
elif [[ ! -d $corpus ]]; then
  corpus_result="corpus: $corpus absent, corpus check not run"
else
  corpus_abs=$(cd "$corpus" && pwd -P)
  GEOMOUNT_CORPUS=$corpus_abs cargo test --features lab-tests --test corpus -- --ignored \
    --nocapture 2>&1 | tee "$run_dir/corpus.log"
  corpus_result=$(grep -m 1 '^corpus: checked [0-9]* files from ' "$run_dir/corpus.log") ||
    { echo "test: the corpus check printed no count" >&2; exit 1; }
  corpus_result=${corpus_result/from $corpus_abs/from $corpus}
fi
echo "$corpus_result"

# The benchmark harness at tiny sizes (its own lab and proxy), so that it never rots: it fails if
# any workload cell fails or disagrees with the local reference. Skipped when a filter is given.
if (($# == 0)) || [[ ${BENCH_SMOKE:-} == 1 ]]; then
  BENCH_GEOMOUNT=${CARGO_TARGET_DIR:-target}/debug/geomount bench/run.sh --smoke
  echo "$corpus_result"
fi
