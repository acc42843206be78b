# Sourced by bench/run.sh and bench/write.sh: sets `copy` to a private copy of the geomount binary
# to measure (BENCH_GEOMOUNT, else a release build of the working tree), removed on exit, so a
# rebuild in the tree during the run cannot change what is measured.
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
