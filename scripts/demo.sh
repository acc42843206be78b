#!/usr/bin/env bash
# First run on a fresh machine: installs FUSE and geomount, then mounts the built-in sample
# dataset (generated locally, no network needed) and prints what to try.
#   scripts/demo.sh [MOUNTPOINT]     (default ./geomount-demo)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v fusermount3 >/dev/null; then
  echo "demo: installing fuse3"
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq fuse3 >/dev/null
fi

echo "demo: building and installing geomount (cargo install --path .)"
cargo install --locked --quiet --path .
bin="${CARGO_HOME:-$HOME/.cargo}/bin/geomount"

mp=${1:-geomount-demo}
if [[ -d $mp ]] && mountpoint -q "$mp"; then
  echo "demo: $mp is already mounted; unmounting it first"
  "$bin" unmount "$mp"
fi
exec "$bin" demo "$mp"
