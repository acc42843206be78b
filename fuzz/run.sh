#!/usr/bin/env bash
# fuzz/run.sh — builds every fuzz target (cargo-fuzz, libFuzzer, AddressSanitizer) and runs each
# for SECONDS on its seed corpus (fuzz/seed.sh), one at a time, with -rss_limit_mb=512 (a
# hostile length field that makes a parser allocate more than that is a crash). Exits non-zero
# naming every target that crashed and its crash file. Prints one line per target with the
# executions run; FUZZ_SUMMARY=FILE also writes them there (target, runs, seconds, result).
#   fuzz/run.sh [SECONDS [TARGET...]]     default 10 s, every target; 0 builds only
# FUZZ_PROFILE=dev builds without optimizations (a build in a fraction of the time, for the
# short runs of the test command; each execution is slower); the default is cargo-fuzz's
# optimized build, for long runs.
# Needs cargo-fuzz (lab/install.sh cargo-fuzz) and a nightly toolchain (`cargo +nightly`);
# without one, the default toolchain with RUSTC_BOOTSTRAP=1. Build dir: $FUZZ_TARGET_DIR, else
# $GEOMOUNT_LAB/fuzz-target (the lab cache, kept across clones).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-10}
shift || true
lab=${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}
target_dir=${FUZZ_TARGET_DIR:-$lab/fuzz-target}
export PATH=$lab/cargo-fuzz/bin:$PATH

say() { printf 'fuzz: %s\n' "$*"; }
command -v cargo-fuzz >/dev/null || { say "cargo-fuzz not found: run lab/install.sh cargo-fuzz" >&2; exit 1; }

if rustup run nightly rustc --version >/dev/null 2>&1; then
  cargo=(cargo +nightly)
else
  cargo=(cargo)
  export RUSTC_BOOTSTRAP=1
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

profile=${FUZZ_PROFILE:-release}
timeout=$([[ $profile == dev ]] && echo 120 || echo 30)
build=(fuzz build --target-dir "$target_dir")
case $profile in
  release) ;;
  dev) build+=(--dev) ;;
  *) say "FUZZ_PROFILE must be release or dev, not '$profile'" >&2; exit 1 ;;
esac
start=$SECONDS
"${cargo[@]}" "${build[@]}" >&2
say "built ${#targets[@]} targets in $((SECONDS - start)) s"
# libFuzzer reads -max_total_time=0 as no limit.
((seconds > 0)) || exit 0
./seed.sh "$PWD/corpus" >/dev/null

bin_dir=$target_dir/x86_64-unknown-linux-gnu/$([[ $profile == dev ]] && echo debug || echo release)
failed=()
for t in "${targets[@]}"; do
  mkdir -p "artifacts/$t" "corpus/$t"
  log=artifacts/$t/last-run.log
  rc=0
  # -timeout: an input that takes this long is a hang, reported as a crash (longer without
  # optimizations: the COG encoder's inputs take seconds each there).
  "$bin_dir/$t" "corpus/$t" -max_total_time="$seconds" -rss_limit_mb=512 -timeout="$timeout" \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  if ((rc == 0)); then
    result=ok
  else
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    result="CRASH (exit $rc) ${crash:+fuzz/$crash}"
    failed+=("$t: ${crash:+fuzz/$crash} (log fuzz/$log)")
    grep -m 5 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" >&2 || true
  fi
  say "$(printf '%-15s %10s runs in %4s s  %s' "$t" "${runs:-?}" "${took:-$seconds}" "$result")"
  [[ -z ${FUZZ_SUMMARY:-} ]] || printf '%s\t%s\t%s\t%s\n' "$t" "${runs:-?}" "${took:-$seconds}" "$result" >>"$FUZZ_SUMMARY"
done

if ((${#failed[@]} > 0)); then
  say "${#failed[@]} target(s) crashed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
say "${#targets[@]} targets, ${seconds} s each, no crash ($((SECONDS - start)) s with the build)"
