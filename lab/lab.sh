#!/usr/bin/env bash
# lab/lab.sh — the geomount test lab: one Garage node (signed S3, SigV4) and one moto server
# (accepts unsigned requests), on free loopback ports. Run lab/install.sh first.
#
#   lab/lab.sh start     start both under $LAB_STATE; print the env file path on stdout.
#                        Reuses a lab that is already running there; cleans up after itself on failure.
#   lab/lab.sh stop      stop both (by the PIDs recorded in $LAB_STATE), remove $LAB_STATE
#   lab/lab.sh env       print the env file path ($LAB_STATE/env); fails if the lab is not running
#
# Private instances, e.g. for fault tests that stop and restart a server (do not stop the shared
# lab: other tests use it). DIR is created if needed; remove it (rm -rf) when done.
#   lab/lab.sh garage-start DIR   first call: new Garage (ports, key, buckets) in DIR; later calls
#                                 restart it on the same ports with its data. Writes DIR/env.
#   lab/lab.sh garage-stop DIR    stop it (data kept)
#   lab/lab.sh moto-start DIR [PORT]  moto on PORT (default: free port, same one on restart); moto is
#                                 in memory, so a restart comes back with an empty $MOTO_BUCKET.
#   lab/lab.sh moto-stop DIR
#   lab/lab.sh proxy-start DIR UPSTREAM [FLAG...]  the labproxy (lab/proxy/README.md) in front of
#                                 UPSTREAM (e.g. $GARAGE_ENDPOINT) on a free port; FLAGs go to the
#                                 proxy (--delay-ms 20, --fail-503 0.1, ...). Writes DIR/env.
#   lab/lab.sh proxy-stop DIR
#
# Env files hold lines `export NAME=value` (values never contain spaces or quotes):
#   GARAGE_ENDPOINT GARAGE_REGION GARAGE_KEY_ID GARAGE_SECRET GARAGE_BUCKET GARAGE_BENCH_BUCKET
#   GARAGE_ADMIN_ENDPOINT GARAGE_ADMIN_TOKEN GARAGE_PID GARAGE_DIR      (DIR/env of garage-start)
#   MOTO_ENDPOINT MOTO_BUCKET MOTO_PID MOTO_DIR                         (DIR/env of moto-start)
#   PROXY_ENDPOINT PROXY_PID PROXY_DIR                                  (DIR/env of proxy-start)
#   LAB_VENV LAB_STATE LAB_PROXY_BIN                                                 ($LAB_STATE/env: all of these)
#
# Settings: LAB_STATE (default /tmp/geomount-lab-state), GEOMOUNT_LAB (tools, default
# ~/.cache/geomount-lab), GARAGE_LOG (garage's RUST_LOG, default garage=info),
# LAB_READY_TIMEOUT (seconds, default 30), LAB_KEEP_ON_FAILURE=1 (keep a failed start for debugging).
# Logs: DIR/garage.log, DIR/setup.log, DIR/moto.log ($LAB_STATE/garage and $LAB_STATE/moto).
#
# Notes: Garage wants region "garage" in the SigV4 scope and an x-amz-content-sha256 header (curl:
#   --aws-sigv4 aws:amz:garage:s3 --user ID:SECRET -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD').
#   The moto bucket gets an allow-all bucket policy (without it anonymous GET/HEAD of an object is
#   403). Unsigned curl uploads to moto need -H 'Content-Type: application/octet-stream': a form
#   body is swallowed by flask and stored empty.
set -euo pipefail

LAB_HOME=${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}
LAB_STATE=${LAB_STATE:-/tmp/geomount-lab-state}
GARAGE=$LAB_HOME/garage/bin/garage
VENV=$LAB_HOME/venv
PROXY_BIN=$LAB_HOME/proxy-target/release/geomount-labproxy
READY_TIMEOUT=${LAB_READY_TIMEOUT:-30}
GARAGE_REGION=garage
GARAGE_BUCKETS=(geomount-test geomount-bench)
MOTO_BUCKET=geomount-anon
MARKER=.geomount-lab

say() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }

# On failure, undo what this invocation started or created.
CLEANUP_PIDFILES=()
CLEANUP_PATHS=()
on_exit() {
  local rc=$? f
  ((rc != 0)) || return 0
  [[ -z ${LAB_KEEP_ON_FAILURE:-} ]] || return 0
  for f in "${CLEANUP_PIDFILES[@]}"; do stop_pidfile "$f"; done
  for f in "${CLEANUP_PATHS[@]}"; do rm -rf -- "$f"; done
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# alive PIDFILE: the recorded process runs (not a zombie) and is what the file name says
# (garage.pid -> "garage" in its command line), so a recycled PID is never killed.
alive() {
  local pid name=${1##*/}
  name=${name%.pid}
  [[ -f $1 ]] && pid=$(<"$1") && [[ -r /proc/$pid/cmdline ]] || return 1
  [[ $(sed -E 's/.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$name"
}

stop_pidfile() {
  local file=$1 pid i
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if alive "$file"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$file" || break; sleep 0.1; done
    if alive "$file"; then
      say "pid $pid ignored SIGTERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$file" || break; sleep 0.1; done
    fi
  fi
  wait "$pid" 2>/dev/null || true # reap it if it is our child
  alive "$file" && die "could not stop pid $pid"
  rm -f -- "$file"
}

# wait_ready PIDFILE LOG WHAT CMD...: poll CMD (which must time out by itself) until it succeeds;
# fail early if the server died.
wait_ready() {
  local pidfile=$1 log=$2 what=$3 deadline=$((SECONDS + READY_TIMEOUT))
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ! alive "$pidfile"; then
      tail -n 15 "$log" >&2
      die "$what exited during startup (log: $log)"
    fi
    ((SECONDS < deadline)) || die "$what not ready after ${READY_TIMEOUT}s (log: $log)"
    sleep 0.1
  done
}

free_ports() { # N distinct free loopback TCP ports
  "$VENV/bin/python" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

write_file() { # write_file PATH < content, atomically
  cat >"$1.tmp"
  mv -f -- "$1.tmp" "$1"
}

check_dir() {
  [[ -n $1 && $1 != *[[:space:]\'\"]* ]] || die "bad directory '$1' (no spaces or quotes)"
}

# ---------------------------------------------------------------- Garage
# garage CLI for the instance in $dir (dynamically scoped: set by garage_start)
garage() { timeout 10 "$GARAGE" -c "$dir/garage.toml" "$@"; }

garage_init() { # new instance in $dir (garage_start's local): ports, secrets, config
  local rpc s3 admin
  read -r rpc s3 admin <<<"$(free_ports 3)"
  write_file "$dir/params" <<EOF
GARAGE_S3_PORT=$s3
GARAGE_ADMIN_PORT=$admin
GARAGE_KEY_ID=GK$(hex 12)
GARAGE_SECRET=$(hex 32)
GARAGE_ADMIN_TOKEN=$(hex 16)
EOF
  # shellcheck source=/dev/null
  source "$dir/params"
  write_file "$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "$GARAGE_REGION"
api_bind_addr = "127.0.0.1:$s3"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$GARAGE_ADMIN_TOKEN"
EOF
}

garage_setup() { # layout, key and buckets of a new instance
  local node bucket
  node=$(garage node id -q)
  garage layout assign -z dc1 -c 100G "${node%%@*}"
  garage layout apply --version 1
  garage key import --yes -n geomount-lab "$GARAGE_KEY_ID" "$GARAGE_SECRET"
  for bucket in "${GARAGE_BUCKETS[@]}"; do
    garage bucket create "$bucket"
    garage bucket allow --read --write --owner "$bucket" --key "$GARAGE_KEY_ID"
  done
}

s3_ready() { # a signed ListObjectsV2 on the first bucket succeeds (Garage needs x-amz-content-sha256)
  curl -fsS -o /dev/null --max-time 2 --aws-sigv4 "aws:amz:$GARAGE_REGION:s3" \
    --user "$GARAGE_KEY_ID:$GARAGE_SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://127.0.0.1:$GARAGE_S3_PORT/${GARAGE_BUCKETS[0]}?list-type=2&max-keys=1"
}

garage_start() {
  local dir=$1 new=0 pid
  check_dir "$dir"
  [[ -x $GARAGE ]] || die "no garage at $GARAGE: run lab/install.sh"
  ! alive "$dir/garage.pid" || die "garage already running in $dir"
  [[ -d $dir ]] || CLEANUP_PATHS+=("$dir")
  mkdir -p "$dir"
  if [[ ! -f $dir/params ]]; then
    new=1
    CLEANUP_PATHS+=("$dir/params" "$dir/garage.toml" "$dir/meta" "$dir/data")
    garage_init
  fi
  # shellcheck source=/dev/null
  source "$dir/params"
  RUST_LOG=${GARAGE_LOG:-garage=info} setsid "$GARAGE" -c "$dir/garage.toml" server \
    >>"$dir/garage.log" 2>&1 </dev/null 8>&- &
  pid=$!
  echo "$pid" >"$dir/garage.pid"
  CLEANUP_PIDFILES+=("$dir/garage.pid")
  wait_ready "$dir/garage.pid" "$dir/garage.log" "garage (rpc)" garage status
  if ((new)); then
    garage_setup >>"$dir/setup.log" 2>&1 || { tail -n 15 "$dir/setup.log" >&2; die "garage setup failed"; }
  fi
  wait_ready "$dir/garage.pid" "$dir/garage.log" "garage (s3)" s3_ready
  write_file "$dir/env" <<EOF
export GARAGE_ENDPOINT=http://127.0.0.1:$GARAGE_S3_PORT
export GARAGE_REGION=$GARAGE_REGION
export GARAGE_KEY_ID=$GARAGE_KEY_ID
export GARAGE_SECRET=$GARAGE_SECRET
export GARAGE_BUCKET=${GARAGE_BUCKETS[0]}
export GARAGE_BENCH_BUCKET=${GARAGE_BUCKETS[1]}
export GARAGE_ADMIN_ENDPOINT=http://127.0.0.1:$GARAGE_ADMIN_PORT
export GARAGE_ADMIN_TOKEN=$GARAGE_ADMIN_TOKEN
export GARAGE_PID=$pid
export GARAGE_DIR=$dir
EOF
  say "garage ready: http://127.0.0.1:$GARAGE_S3_PORT (pid $pid)"
}

# ---------------------------------------------------------------- moto
moto_launch() { # moto_launch DIR [PORT]: spawn moto_server, do not wait
  local dir=$1 port=${2:-}
  check_dir "$dir"
  [[ -x $VENV/bin/moto_server ]] || die "no moto_server in $VENV: run lab/install.sh"
  ! alive "$dir/moto.pid" || die "moto already running in $dir"
  [[ -d $dir ]] || CLEANUP_PATHS+=("$dir")
  mkdir -p "$dir"
  if [[ -z $port ]]; then
    if [[ -f $dir/port ]]; then port=$(<"$dir/port"); else port=$(free_ports 1); fi
  fi
  echo "$port" >"$dir/port"
  setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >>"$dir/moto.log" 2>&1 </dev/null 8>&- &
  echo "$!" >"$dir/moto.pid"
  CLEANUP_PIDFILES+=("$dir/moto.pid")
}

moto_ready() { # moto_ready DIR: wait for it, create the bucket, write DIR/env
  local dir=$1 port endpoint
  port=$(<"$dir/port")
  endpoint=http://127.0.0.1:$port
  wait_ready "$dir/moto.pid" "$dir/moto.log" moto curl -fsS -o /dev/null --max-time 2 "$endpoint/moto-api/"
  curl -fsS -o /dev/null --max-time 5 -X PUT "$endpoint/$MOTO_BUCKET" || die "cannot create moto bucket"
  # moto answers anonymous GET/HEAD of an existing object with 403 unless a bucket policy allows
  # it (a public bucket, as on AWS). JSON content type, or flask eats the body as a form.
  curl -fsS -o /dev/null --max-time 5 -X PUT "$endpoint/$MOTO_BUCKET?policy" \
    -H 'Content-Type: application/json' --data-binary @- <<EOF || die "cannot set moto bucket policy"
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
 "Resource": ["arn:aws:s3:::$MOTO_BUCKET", "arn:aws:s3:::$MOTO_BUCKET/*"]}]}
EOF
  write_file "$dir/env" <<EOF
export MOTO_ENDPOINT=$endpoint
export MOTO_BUCKET=$MOTO_BUCKET
export MOTO_PID=$(<"$dir/moto.pid")
export MOTO_DIR=$dir
EOF
  say "moto ready: $endpoint (pid $(<"$dir/moto.pid"))"
}

# ---------------------------------------------------------------- labproxy
proxy_start() { # proxy_start DIR UPSTREAM [FLAG...]
  local dir=$1 upstream=$2 i endpoint=
  shift 2
  check_dir "$dir"
  [[ -x $PROXY_BIN ]] || die "no labproxy at $PROXY_BIN: run lab/install.sh"
  ! alive "$dir/proxy.pid" || die "proxy already running in $dir"
  [[ -d $dir ]] || CLEANUP_PATHS+=("$dir")
  mkdir -p "$dir"
  CLEANUP_PIDFILES+=("$dir/proxy.pid")
  # A start that dies at once is retried: seen rarely under load, with nothing on stderr
  # (its exit status is logged to find out why).
  for attempt in 1 2 3; do
    rm -f -- "$dir/proxy.out"
    setsid "$PROXY_BIN" --upstream "$upstream" --stats-file "$dir/stats.json" "$@" \
      >"$dir/proxy.out" 2>>"$dir/proxy.log" </dev/null 8>&- &
    echo "$!" >"$dir/proxy.pid"
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
      endpoint=$(awk 'NR == 1 && $1 == "listening" { print $2 }' "$dir/proxy.out" 2>/dev/null || true)
      [[ -z $endpoint ]] || break 2
      if ! alive "$dir/proxy.pid"; then
        local rc=0
        wait "$(<"$dir/proxy.pid")" || rc=$?
        cat "$dir/proxy.log" >&2
        say "labproxy exited during startup (attempt $attempt, status $rc)"
        break
      fi
      sleep 0.1
    done
    ! alive "$dir/proxy.pid" || die "labproxy not listening after ${READY_TIMEOUT}s (log: $dir/proxy.log)"
  done
  [[ -n $endpoint ]] || die "labproxy did not start (log: $dir/proxy.log)"
  write_file "$dir/env" <<EOF
export PROXY_ENDPOINT=$endpoint
export PROXY_PID=$(<"$dir/proxy.pid")
export PROXY_DIR=$dir
EOF
  say "labproxy ready: $endpoint -> $upstream (pid $(<"$dir/proxy.pid"))"
}

# ---------------------------------------------------------------- shared lab
write_lab_env() {
  [[ -f $LAB_STATE/$MARKER && -f $LAB_STATE/garage/env && -f $LAB_STATE/moto/env ]] || return 0
  {
    cat "$LAB_STATE/garage/env" "$LAB_STATE/moto/env"
    echo "export LAB_VENV=$VENV"
    echo "export LAB_PROXY_BIN=$PROXY_BIN"
    echo "export LAB_STATE=$LAB_STATE"
  } | write_file "$LAB_STATE/env"
}

lab_running() {
  [[ -f $LAB_STATE/env ]] && alive "$LAB_STATE/garage/garage.pid" && alive "$LAB_STATE/moto/moto.pid"
}

cmd_start() {
  check_dir "$LAB_STATE"
  if lab_running; then
    say "already running in $LAB_STATE"
    echo "$LAB_STATE/env"
    return
  fi
  [[ ! -e $LAB_STATE ]] || cmd_stop
  mkdir -p "$LAB_STATE"
  touch "$LAB_STATE/$MARKER"
  CLEANUP_PATHS+=("$LAB_STATE")
  moto_launch "$LAB_STATE/moto" # boots while Garage is set up
  garage_start "$LAB_STATE/garage"
  moto_ready "$LAB_STATE/moto"
  write_lab_env
  echo "$LAB_STATE/env"
}

cmd_stop() {
  [[ -e $LAB_STATE ]] || { say "nothing to stop in $LAB_STATE"; return; }
  [[ -f $LAB_STATE/$MARKER ]] || die "$LAB_STATE is not a lab state dir; not touching it"
  stop_pidfile "$LAB_STATE/moto/moto.pid"
  stop_pidfile "$LAB_STATE/garage/garage.pid"
  rm -rf -- "$LAB_STATE"
  say "stopped"
}

# Serialise start/stop of the shared lab (parallel tests may all call start). fd 8 is closed in
# the servers, so the lock ends with this script.
lock_lab() {
  exec 8>"$LAB_STATE.lock"
  flock -w 120 8 || die "timed out waiting for $LAB_STATE.lock"
}

case ${1:-} in
  start) lock_lab && cmd_start ;;
  stop) lock_lab && cmd_stop ;;
  env)
    lab_running || die "lab not running in $LAB_STATE (lab/lab.sh start)"
    echo "$LAB_STATE/env"
    ;;
  garage-start)
    garage_start "${2:?usage: lab.sh garage-start DIR}"
    write_lab_env
    ;;
  garage-stop) stop_pidfile "${2:?usage: lab.sh garage-stop DIR}/garage.pid" ;;
  moto-start)
    moto_launch "${2:?usage: lab.sh moto-start DIR [PORT]}" "${3:-}"
    moto_ready "$2"
    write_lab_env
    ;;
  moto-stop) stop_pidfile "${2:?usage: lab.sh moto-stop DIR}/moto.pid" ;;
  proxy-start)
    (($# >= 3)) || die "usage: lab.sh proxy-start DIR UPSTREAM [FLAG...]"
    proxy_start "${@:2}"
    ;;
  proxy-stop) stop_pidfile "${2:?usage: lab.sh proxy-stop DIR}/proxy.pid" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
