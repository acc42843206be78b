#!/usr/bin/env bash
# packaging/build-deb.sh — build the Debian package with cargo-deb: a release build, the man pages
# and shell completions generated from the CLI definition (`geomount generate-assets`), then
# `cargo deb --no-build`. Prints the path of the .deb.
#   packaging/build-deb.sh [extra cargo-deb args, e.g. --output DIR]
# cargo-deb: $CARGO_DEB, else the one lab/install.sh caches, else `cargo-deb` on PATH
# (`cargo install cargo-deb`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb=${CARGO_DEB:-${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}/cargo-deb/bin/cargo-deb}
[[ -x $cargo_deb ]] || cargo_deb=$(command -v cargo-deb) \
  || { echo "build-deb: cargo-deb not found: run lab/install.sh or cargo install cargo-deb" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-target}

cargo build --release --locked >&2
rm -rf "$target/release/assets"
"$target/release/geomount" generate-assets "$target/release/assets"
# --strip: the release profile keeps line tables for profiling; the package does not need them.
"$cargo_deb" --no-build --strip "$@" | tail -n 1
