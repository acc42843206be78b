#!/usr/bin/env bash
# lab/install.sh — install the geomount test lab's tools. Idempotent: a rerun with everything
# cached only checks and exits.
#
#   Debian packages: fuse3 libfuse3-dev pkg-config gdal-bin python3-gdal rclone s3fs curl python3-venv
#                    systemd (systemd-analyze, for verifying the units)
#                    (apt-get update + install only when one is missing; build-essential if no cc/make)
#   Garage:          cargo install garage $GARAGE_VERSION (sqlite, bundled-libs)
#                    -> $GEOMOUNT_LAB/garage/bin/garage (build log $GEOMOUNT_LAB/garage-build.log)
#   cargo-deb:       cargo install cargo-deb $CARGO_DEB_VERSION -> $GEOMOUNT_LAB/cargo-deb/bin/cargo-deb
#                    (builds the Debian package in tests/service.rs; log $GEOMOUNT_LAB/cargo-deb-build.log)
#   cargo-fuzz:      cargo install cargo-fuzz $CARGO_FUZZ_VERSION -> $GEOMOUNT_LAB/cargo-fuzz/bin/cargo-fuzz
#                    (builds and runs the fuzz targets, fuzz/run.sh; log $GEOMOUNT_LAB/cargo-fuzz-build.log)
#   labproxy:        cargo build --release of lab/proxy (the loopback latency/fault/counting proxy)
#                    -> $GEOMOUNT_LAB/proxy-target/release/geomount-labproxy (log $GEOMOUNT_LAB/proxy-build.log)
#   bench venv:      $GEOMOUNT_LAB/bench-venv with s3fs (fsspec) xarray zarr numcodecs numpy eccodes
#                    h5netcdf h5py dask and
#                    the boto3 matching s3fs's pinned botocore (bench/run.sh; kept apart from the
#                    test venv because s3fs's aiobotocore pins an older botocore than its boto3)
#   Python venv:     $GEOMOUNT_LAB/venv with moto[server] boto3 xarray zarr h5netcdf h5py netCDF4 (the
#                    NetCDF-as-Zarr tests write with both engines) dask numpy eccodes,
#                    maturin (builds the wheel in tests/wheel.rs) and distributed (its dask recipe)
#                    (venv made by ${LAB_PYTHON:-python3})
#
# GEOMOUNT_LAB defaults to ~/.cache/geomount-lab. Needs root (or sudo) for apt, and cargo on PATH.
#   lab/install.sh [COMPONENT...]   only these (cargo-fuzz); default: everything above
set -euo pipefail

LAB_HOME=${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}
GARAGE_VERSION=2.5.0
CARGO_DEB_VERSION=3.8.0
CARGO_FUZZ_VERSION=0.13.2
APT_PACKAGES=(fuse3 libfuse3-dev pkg-config gdal-bin python3-gdal rclone s3fs curl python3-venv systemd rsync)
PY_PACKAGES=('moto[server]' boto3 xarray zarr h5netcdf h5py netCDF4 dask numpy eccodes maturin distributed)
PY_CHECK='import moto.server, boto3, xarray, zarr, h5netcdf, h5py, netCDF4, dask, numpy, eccodes, maturin, distributed; eccodes.codes_get_api_version()'

say() { printf 'lab/install: %s\n' "$*"; }
die() { printf 'lab/install: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$LAB_HOME"
# One install at a time per cache directory (parallel CI jobs on one machine).
exec 9>"$LAB_HOME/install.lock"
flock 9

install_apt() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
    missing+=(build-essential)
  fi
  if ((${#missing[@]} == 0)); then
    say "apt: all packages present"
    return
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
    sudo=(sudo)
  fi
  say "apt: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

install_garage() {
  local bin=$LAB_HOME/garage/bin/garage log=$LAB_HOME/garage-build.log
  if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
    say "garage: $bin present"
    return
  fi
  command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain first"
  say "garage: building $GARAGE_VERSION (about 10 min on 2 cores; log: $log)"
  local start=$SECONDS
  # opt-level 1: Garage is the lab's test server, not the product; it serves loopback requests
  # fast enough at -O1 and builds in much less time than at the release default (-O3).
  if ! CARGO_TARGET_DIR=$LAB_HOME/garage-target CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
      cargo install --locked garage \
      --version "$GARAGE_VERSION" --no-default-features --features sqlite,bundled-libs \
      --root "$LAB_HOME/garage" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "garage build failed (full log: $log)"
  fi
  say "garage: built in $((SECONDS - start)) s"
}

install_cargo_deb() {
  local bin=$LAB_HOME/cargo-deb/bin/cargo-deb log=$LAB_HOME/cargo-deb-build.log
  if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    say "cargo-deb: $bin present"
    return
  fi
  command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain first"
  say "cargo-deb: building $CARGO_DEB_VERSION (a few minutes; log: $log)"
  if ! CARGO_TARGET_DIR=$LAB_HOME/cargo-deb-target cargo install --locked cargo-deb \
      --version "$CARGO_DEB_VERSION" --root "$LAB_HOME/cargo-deb" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "cargo-deb build failed (full log: $log)"
  fi
  rm -rf "$LAB_HOME/cargo-deb-target"
}

install_cargo_fuzz() {
  local bin=$LAB_HOME/cargo-fuzz/bin/cargo-fuzz log=$LAB_HOME/cargo-fuzz-build.log
  if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    say "cargo-fuzz: $bin present"
    return
  fi
  command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain first"
  say "cargo-fuzz: building $CARGO_FUZZ_VERSION (a few minutes; log: $log)"
  if ! CARGO_TARGET_DIR=$LAB_HOME/cargo-fuzz-target cargo install --locked cargo-fuzz \
      --version "$CARGO_FUZZ_VERSION" --root "$LAB_HOME/cargo-fuzz" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "cargo-fuzz build failed (full log: $log)"
  fi
  rm -rf "$LAB_HOME/cargo-fuzz-target"
}

install_proxy() {
  local log=$LAB_HOME/proxy-build.log
  command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain first"
  # cargo itself decides whether anything changed; an up-to-date build takes a second.
  if ! CARGO_TARGET_DIR=$LAB_HOME/proxy-target cargo build --release --locked \
      --manifest-path "$(dirname "$0")/proxy/Cargo.toml" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "labproxy build failed (full log: $log)"
  fi
  say "labproxy: $LAB_HOME/proxy-target/release/geomount-labproxy ready"
}

install_venv() {
  local venv=$LAB_HOME/venv
  if [[ -x $venv/bin/python && -x $venv/bin/moto_server ]] && "$venv/bin/python" -c "$PY_CHECK" 2>/dev/null; then
    say "venv: $venv ready"
    return
  fi
  if [[ ! -x $venv/bin/python ]]; then
    say "venv: creating $venv"
    "${LAB_PYTHON:-python3}" -m venv "$venv" || die "cannot create venv with ${LAB_PYTHON:-python3}"
  fi
  say "venv: pip install ${PY_PACKAGES[*]}"
  "$venv/bin/python" -m pip install -q "${PY_PACKAGES[@]}" || die "pip install failed"
  "$venv/bin/python" -c "$PY_CHECK" || die "venv packages installed but do not import"
}

install_bench_venv() {
  local venv=$LAB_HOME/bench-venv botocore
  local check='import s3fs, fsspec, boto3, xarray, zarr, numcodecs, numpy, eccodes, h5netcdf, h5py, dask, pandas; eccodes.codes_get_api_version()'
  if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    say "bench venv: $venv ready"
    return
  fi
  [[ -x $venv/bin/python ]] || "${LAB_PYTHON:-python3}" -m venv "$venv" || die "cannot create $venv"
  say "bench venv: pip install s3fs xarray zarr numcodecs numpy eccodes h5netcdf h5py dask boto3"
  "$venv/bin/python" -m pip install -q s3fs xarray zarr numcodecs numpy eccodes h5netcdf h5py dask \
    || die "pip install failed"
  botocore=$("$venv/bin/python" -c 'import botocore; print(botocore.__version__)')
  "$venv/bin/python" -m pip install -q "boto3==$botocore" || die "pip install boto3==$botocore failed"
  "$venv/bin/python" -c "$check" || die "bench venv packages installed but do not import"
}

if (($# > 0)); then
  for component in "$@"; do
    case $component in
      cargo-fuzz) install_cargo_fuzz ;;
      *) die "unknown component '$component' (cargo-fuzz)" ;;
    esac
  done
  exit 0
fi

install_apt
install_garage
install_cargo_deb
install_cargo_fuzz
install_proxy
install_venv
install_bench_venv
[[ -e /dev/fuse ]] || say "warning: /dev/fuse is missing; FUSE tests will fail"
say "ready: GEOMOUNT_LAB=$LAB_HOME"
