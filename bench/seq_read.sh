#!/usr/bin/env bash
# bench/seq_read.sh — cold sequential read of one big object from one Garage bucket, through
# geomount, rclone mount (--vfs-cache-mode off and full), s3fs-fuse and a parallel ranged-GET
# baseline; then geomount's warm re-read against a page-cached local copy. Prints a table of
# medians and ratios against the peers measured in the same run, and writes it into BENCHMARKS.md.
# Times are never asserted: targets are reported as met or missed, the exit status is 0 either way.
#
#   bench/seq_read.sh            full run: 1 GiB object, 3 runs per client, updates BENCHMARKS.md
#   bench/seq_read.sh --smoke    64 MiB, 1 run per client, prints only (CI: well under a minute
#                                once geomount is built and the lab installed)
#   options: --write / --no-write  force updating BENCHMARKS.md or not
#
# Settings (environment):
#   BENCH_SIZE      object size: bytes or NKiB/NMiB/NGiB (default 1GiB; 64MiB with --smoke)
#   BENCH_RUNS      runs per client, the median is reported (default 3; 1 with --smoke)
#   BENCH_CLIENTS   subset/order of: geomount rclone-off rclone-full s3fs get-baseline
#                   (default all; the local-disk references always run)
#   BENCH_BS        dd block size of the reader (default 256K)
#   BENCH_GET_THREADS, BENCH_GET_PART   baseline concurrency and part size (default 8, 8MiB)
#   BENCH_GEOMOUNT_ARGS  extra `geomount mount` options (default: none, i.e. --cache-memory 1GiB)
#   BENCH_SERVER_CACHE   warm (default): after dropping the page cache, re-read Garage's data dir
#                   so only the client side is cold (Garage's disk is not what is measured); cold:
#                   leave Garage's data out of the page cache too
#   BENCH_REV       build and measure this commit (git archive, no checkout) instead of the
#                   working tree; its build dir is BENCH_TARGET_DIR (default
#                   ~/.cache/geomount-bench/target, so later runs only rebuild geomount itself)
#   BENCH_KEEP_WORK=1    keep the work directory (logs, raw results) for inspection
#   LAB_STATE       lab state dir (default /tmp/gm-lab-bench); a lab already running there is
#                   reused and left running, otherwise it is started and stopped here
#
# Needs root (drop_caches, FUSE mounts), lab/install.sh's tools, rclone, s3fs, fusermount3.
# Each cold run: drop the page cache, (re-warm Garage's data), fresh mount (fresh daemon, empty
# rclone cache dir), then `dd if=MP/KEY of=/dev/null bs=$BENCH_BS` timed. Runs are interleaved
# round-robin across clients so slow drifts in machine load hit every client alike.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ arguments and settings
SMOKE=0
WRITE=
ARGS=("$@")
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --write) WRITE=1 ;;
    --no-write) WRITE=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (see --help)" ;;
  esac
done
if ((SMOKE)); then
  SIZE_SPEC=${BENCH_SIZE:-64MiB} RUNS=${BENCH_RUNS:-1} WRITE=${WRITE:-0}
else
  SIZE_SPEC=${BENCH_SIZE:-1GiB} RUNS=${BENCH_RUNS:-3} WRITE=${WRITE:-1}
fi
read -r -a CLIENTS <<<"${BENCH_CLIENTS:-geomount rclone-off rclone-full s3fs get-baseline}"
BS=${BENCH_BS:-256K}
GET_THREADS=${BENCH_GET_THREADS:-8}
GET_PART=${BENCH_GET_PART:-8MiB}
read -r -a GEOMOUNT_ARGS <<<"${BENCH_GEOMOUNT_ARGS:-}"
SERVER_CACHE=${BENCH_SERVER_CACHE:-warm}
export LAB_STATE=${LAB_STATE:-/tmp/gm-lab-bench}
BENCH_TARGET_DIR=${BENCH_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/geomount-bench/target}

to_bytes() {
  local s=$1 n unit
  [[ $s =~ ^([0-9]+)(|B|KiB|MiB|GiB)$ ]] || die "bad size '$s' (bytes or NKiB/NMiB/NGiB)"
  n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
  case $unit in
    KiB) echo $((n << 10)) ;; MiB) echo $((n << 20)) ;; GiB) echo $((n << 30)) ;; *) echo "$n" ;;
  esac
}
SIZE=$(to_bytes "$SIZE_SPEC")
((SIZE > 0)) || die "BENCH_SIZE must be positive"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ $SERVER_CACHE == warm || $SERVER_CACHE == cold ]] || die "BENCH_SERVER_CACHE: warm or cold"
for c in "${CLIENTS[@]}"; do
  case $c in geomount | rclone-off | rclone-full | s3fs | get-baseline) ;; *) die "unknown client '$c'" ;; esac
done
((EUID == 0)) || die "needs root (drop_caches and FUSE mounts)"
for tool in rclone s3fs fusermount3 mountpoint dd; do
  command -v "$tool" >/dev/null || die "$tool not found (lab/install.sh installs it)"
done

# ------------------------------------------------------------------ state and cleanup
WORK=$(mktemp -d /tmp/gm-bench.XXXXXX)
MP=$WORK/mnt
RESULTS=$WORK/results.tsv
mkdir -p "$MP" "$WORK/logs"
STARTED_LAB=0
CUR_PID=     # daemon of the current mount (geomount, rclone or s3fs)
CUR_NAME=    # its expected command name, checked before any signal (no recycled PIDs)

# pid_is PID NAME: PID runs and its command line mentions NAME
pid_is() {
  [[ -n $1 && -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

# stop_daemon: wait up to 10 s for the current daemon to exit after its unmount, then TERM/KILL it.
stop_daemon() {
  local pid=$CUR_PID i
  [[ -n $pid ]] || return 0
  for ((i = 0; i < 100; i++)); do pid_is "$pid" "$CUR_NAME" || break; sleep 0.1; done
  if pid_is "$pid" "$CUR_NAME"; then
    say "$CUR_NAME (pid $pid) still running after unmount; sending TERM"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do pid_is "$pid" "$CUR_NAME" || break; sleep 0.1; done
    if pid_is "$pid" "$CUR_NAME"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true # reap it if it is our child (rclone, s3fs)
  CUR_PID='' CUR_NAME=''
}

unmount_mp() {
  if mountpoint -q "$MP"; then
    if [[ $CUR_NAME == geomount ]]; then
      "$GEOMOUNT" unmount "$MP" >/dev/null 2>&1 || fusermount3 -u "$MP" 2>/dev/null || true
    else
      fusermount3 -u "$MP" 2>/dev/null || true
    fi
    mountpoint -q "$MP" && { sleep 1; fusermount3 -u "$MP" 2>/dev/null || umount -l "$MP" 2>/dev/null || true; }
  fi
  stop_daemon
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  unmount_mp
  if ((STARTED_LAB)); then lab/lab.sh stop >/dev/null 2>&1 || say "could not stop the lab in $LAB_STATE"; fi
  if [[ -n ${BENCH_KEEP_WORK:-} ]]; then say "work directory kept: $WORK"; else rm -rf -- "$WORK"; fi
  ((rc == 0)) || say "failed (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ build, lab, object
# A private copy of the binary: a rebuild in the tree during the run must not change it between rounds.
GEOMOUNT=$WORK/geomount
if [[ -n ${BENCH_REV:-} ]]; then
  rev=$(git rev-parse --verify --quiet "$BENCH_REV^{commit}") || die "BENCH_REV '$BENCH_REV' is not a commit"
  git_rev=$(git rev-parse --short "$rev")
  say "building geomount $git_rev (release, from git archive; target dir $BENCH_TARGET_DIR)"
  mkdir -p "$WORK/src"
  git archive "$rev" | tar -x -C "$WORK/src"
  CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release --quiet --manifest-path "$WORK/src/Cargo.toml"
  cp "$BENCH_TARGET_DIR/release/geomount" "$GEOMOUNT"
else
  git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ -n $(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    git_rev+=" + uncommitted changes to src (diff sha256 $(git diff HEAD -- src Cargo.toml Cargo.lock | sha256sum | cut -c1-12))"
  fi
  say "building geomount (release, working tree: $git_rev)"
  cargo build --release --quiet
  cp "$ROOT/target/release/geomount" "$GEOMOUNT"
fi

lab/install.sh >/dev/null
if env_file=$(lab/lab.sh env 2>/dev/null); then
  say "reusing the lab running in $LAB_STATE"
else
  STARTED_LAB=1
  env_file=$(lab/lab.sh start)
fi
# Defines GARAGE_ENDPOINT GARAGE_REGION GARAGE_KEY_ID GARAGE_SECRET GARAGE_BENCH_BUCKET GARAGE_PID
# GARAGE_DIR LAB_VENV (lab/lab.sh).
# shellcheck source=/dev/null
source "$env_file"
GARAGE_DIR=${GARAGE_DIR:?} GARAGE_PID=${GARAGE_PID:?}
PY=$LAB_VENV/bin/python
GARAGE_BIN=${GEOMOUNT_LAB:-$HOME/.cache/geomount-lab}/garage/bin/garage
BUCKET=$GARAGE_BENCH_BUCKET
KEY=seq-read/obj-$SIZE.bin
SEED=20260101
s3() { "$PY" lab/s3.py --lab garage --env-file "$env_file" "$@"; }

if [[ $(s3 head "$BUCKET" "$KEY" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["size"])' 2>/dev/null) != "$SIZE" ]]; then
  say "uploading s3://$BUCKET/$KEY ($SIZE bytes)"
  s3 put-bytes "$BUCKET" "$KEY" --size "$SIZE" --seed "$SEED"
fi
LOCAL=$WORK/local.bin # the same bytes on the local disk, for the warm reference
s3 gen-bytes --size "$SIZE" --seed "$SEED" --out "$LOCAL"
sync

# ------------------------------------------------------------------ measuring helpers
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of PID
ticks_s() { awk -v t="$1" -v hz="$TICK" 'BEGIN {printf "%.2f", t / hz}'; }
vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
garage_log_pos() { stat -c %s "$GARAGE_DIR/garage.log"; }
# GETs of our object Garage logged since byte POS of its log (Garage logs one line per request)
garage_gets_since() { tail -c +"$(($1 + 1))" "$GARAGE_DIR/garage.log" | grep -cF " GET /$BUCKET/$KEY" || true; }

drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
  if [[ $SERVER_CACHE == warm ]]; then
    find "$GARAGE_DIR/data" "$GARAGE_DIR/meta" -type f -print0 | xargs -0 -r cat >/dev/null
  fi
}

# timed_read FILE: dd it to /dev/null; sets READ_WALL READ_CPU (dd user+sys, s) READ_BYTES.
timed_read() {
  local out tm
  out=$WORK/logs/dd.out tm=$WORK/logs/dd.time
  # A subshell, so that a trap firing meanwhile does not inherit the 2>"$tm" redirection.
  (TIMEFORMAT='%R %U %S' && time timeout 900 dd if="$1" of=/dev/null bs="$BS" 2>"$out") 2>"$tm" \
    || { cat "$out" >&2; die "reading $1 failed"; }
  read -r READ_WALL u s <"$tm"
  READ_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
  READ_BYTES=$(awk '/copied/ {print $1}' "$out")
  [[ $READ_BYTES == "$SIZE" ]] || die "read $READ_BYTES of $SIZE bytes from $1"
}

mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", b / s / 1e6}'; }

# record CLIENT ROUND WALL GETS RSS_KIB CLIENT_CPU GARAGE_CPU READER_CPU [JSON]
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(mbps "$SIZE" "$3")" "$3" \
    "$4" "$5" "$6" "$7" "$8" "${9:-null}" >>"$RESULTS"
  say "  $1 run $2: $(mbps "$SIZE" "$3") MB/s (${3}s, GETs $4, peak RSS ${5:--} KiB)"
}

wait_mounted() { # wait_mounted NAME: the mount is up, or die if the daemon exited
  local i
  for ((i = 0; i < 200; i++)); do
    mountpoint -q "$MP" && return 0
    pid_is "$CUR_PID" "$CUR_NAME" || die "$CUR_NAME exited before mounting (log: $WORK/logs)"
    sleep 0.1
  done
  die "$CUR_NAME did not mount within 20 s"
}

# ------------------------------------------------------------------ the clients
mount_geomount() {
  local log=$WORK/logs/geomount.log
  : >"$log"
  # A fresh, empty persistent block cache per mount, so a cold run finds nothing on disk.
  rm -rf "$WORK/geomount-cache"
  AWS_ACCESS_KEY_ID=$GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET \
    "$GEOMOUNT" mount "s3://$BUCKET" "$MP" --endpoint-url "$GARAGE_ENDPOINT" \
    --region "$GARAGE_REGION" --log-file "$log" \
    --cache-dir "$WORK/geomount-cache" "${GEOMOUNT_ARGS[@]}"
  CUR_PID=$(grep -o ' pid=[0-9]*' "$log" | tail -n 1 | cut -d= -f2)
  CUR_NAME=geomount
  [[ -n $CUR_PID ]] || die "no pid= in geomount's 'mounted' log line ($log)"
  wait_mounted
}

RCLONE_CONF=$WORK/rclone.conf
(umask 077 && cat >"$RCLONE_CONF" <<EOF
[garage]
type = s3
provider = Other
endpoint = $GARAGE_ENDPOINT
access_key_id = $GARAGE_KEY_ID
secret_access_key = $GARAGE_SECRET
region = $GARAGE_REGION
force_path_style = true
EOF
)
# rclone runs in the foreground as our background job (not --daemon), so its PID is known exactly.
# It refuses AWS_CA_BUNDLE with a plain-http endpoint.
mount_rclone() { # mount_rclone off|full
  local cache_dir=()
  if [[ $1 == full ]]; then
    rm -rf "$WORK/rclone-cache"
    cache_dir=(--cache-dir "$WORK/rclone-cache")
  fi
  env -u AWS_CA_BUNDLE rclone --config "$RCLONE_CONF" mount "garage:$BUCKET" "$MP" --read-only \
    --vfs-cache-mode "$1" "${cache_dir[@]}" --log-file "$WORK/logs/rclone-$1.log" </dev/null &
  CUR_PID=$! CUR_NAME=rclone
  wait_mounted
}

S3FS_PASSWD=$WORK/s3fs.passwd
(umask 077 && echo "$GARAGE_KEY_ID:$GARAGE_SECRET" >"$S3FS_PASSWD")
mount_s3fs() { # defaults (no use_cache): streams from S3; SigV4 with the Garage region
  s3fs "$BUCKET" "$MP" -f -o "url=$GARAGE_ENDPOINT" -o use_path_request_style \
    -o "passwd_file=$S3FS_PASSWD" -o ro -o "endpoint=$GARAGE_REGION" \
    -o "logfile=$WORK/logs/s3fs.log" </dev/null >>"$WORK/logs/s3fs.out" 2>&1 &
  CUR_PID=$! CUR_NAME=s3fs
  wait_mounted
}

# run_mounted CLIENT ROUND: one cold run through a fresh mount (and, for geomount, the warm re-read
# in the same mount). Client CPU and peak RSS are the daemon's, read just before unmounting; for
# geomount the cold CPU is taken before the warm re-read and the GET count is its own counter.
run_mounted() {
  local client=$1 round=$2 log0 g0 gets rss ccpu gcpu wall rcpu extra='{}' stats stats_warm warm_rows=()
  drop_caches
  case $client in
    geomount) mount_geomount ;;
    rclone-off) mount_rclone off ;;
    rclone-full) mount_rclone full ;;
    s3fs) mount_s3fs ;;
  esac
  log0=$(garage_log_pos) g0=$(cpu_ticks "$GARAGE_PID")
  timed_read "$MP/$KEY"
  wall=$READ_WALL rcpu=$READ_CPU
  gcpu=$(ticks_s $(($(cpu_ticks "$GARAGE_PID") - g0)))
  ccpu=$(ticks_s "$(cpu_ticks "$CUR_PID")")
  if [[ $client == geomount ]]; then
    stats=$(tr -d ' \n' <"$MP/.geomount-stats")
    extra="{\"stats\":$stats}"
    gets=$(grep -o '"get_requests":[0-9]*' <<<"$stats" | cut -d: -f2)
    # Warm: a second read of the same file in the same mount (the target), then a third.
    local wlog0 wg0 warm
    for warm in geomount-warm geomount-warm3; do
      wlog0=$(garage_log_pos) wg0=$(cpu_ticks "$GARAGE_PID")
      timed_read "$MP/$KEY"
      warm_rows+=("$warm $round $READ_WALL $(garage_gets_since "$wlog0") $(vmhwm_kib "$CUR_PID") \
$(ticks_s "$(cpu_ticks "$CUR_PID")") $(ticks_s $(($(cpu_ticks "$GARAGE_PID") - wg0))) $READ_CPU")
    done
    stats_warm=$(tr -d ' \n' <"$MP/.geomount-stats")
    extra="{\"stats\":$stats,\"stats_after_warm\":$stats_warm}"
  fi
  rss=$(vmhwm_kib "$CUR_PID")
  unmount_mp
  [[ $client == geomount ]] || gets=$(garage_gets_since "$log0")
  record "$client" "$round" "$wall" "$gets" "$rss" "$ccpu" "$gcpu" "$rcpu" "$extra"
  local row
  for row in "${warm_rows[@]}"; do
    # shellcheck disable=SC2086 # space-separated fields, none empty
    record $row
  done
}

run_baseline() {
  local round=$1 out g0 gcpu
  drop_caches
  g0=$(cpu_ticks "$GARAGE_PID")
  out=$(AWS_ACCESS_KEY_ID=$GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET "$PY" \
    bench/get_baseline.py --endpoint "$GARAGE_ENDPOINT" --region "$GARAGE_REGION" \
    --bucket "$BUCKET" --key "$KEY" --threads "$GET_THREADS" --part "$GET_PART")
  gcpu=$(ticks_s $(($(cpu_ticks "$GARAGE_PID") - g0)))
  "$PY" - "$out" <<'EOF' >"$WORK/logs/baseline.fields"
import json, sys
r = json.loads(sys.argv[1])
print("%.3f" % r["seconds"], r["get_requests"], r["peak_rss_kib"], "%.2f" % r["cpu_seconds"])
EOF
  local wall gets rss ccpu
  read -r wall gets rss ccpu <"$WORK/logs/baseline.fields"
  record get-baseline "$round" "$wall" "$gets" "$rss" "$ccpu" "$gcpu" - "$out"
}

# run_local ROUND: the local copy read cold (page cache dropped), which also puts it in the page
# cache, then read again: the second read, as geomount's warm re-read is (the page LRU treats a
# second touch differently from later ones, so both sides are compared at the same touch).
run_local() {
  local round=$1
  drop_caches
  timed_read "$LOCAL"
  record local-disk "$round" "$READ_WALL" - - - - "$READ_CPU"
  timed_read "$LOCAL"
  record local-pagecache "$round" "$READ_WALL" - - - - "$READ_CPU"
}

# ------------------------------------------------------------------ the run
printf 'client\tround\tmbps\twall_s\tgets\trss_kib\tclient_cpu_s\tgarage_cpu_s\treader_cpu_s\textra\n' >"$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "reading $SIZE bytes, $RUNS run(s) per client: ${CLIENTS[*]} (+ local references)"
for ((round = 1; round <= RUNS; round++)); do
  say "round $round/$RUNS"
  run_local "$round"
  for c in "${CLIENTS[@]}"; do
    case $c in
      get-baseline) run_baseline "$round" ;;
      *) run_mounted "$c" "$round" ;;
    esac
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ report
cmd="bench/seq_read.sh"
((${#ARGS[@]} == 0)) || cmd+=" ${ARGS[*]}"
for v in BENCH_REV BENCH_SIZE BENCH_RUNS BENCH_CLIENTS BENCH_BS BENCH_GET_THREADS BENCH_GET_PART BENCH_GEOMOUNT_ARGS BENCH_SERVER_CACHE; do
  [[ -z ${!v:-} ]] || cmd="$v='${!v}' $cmd"
done
export BM_DATE BM_COMMAND BM_GIT BM_LOAD_BEFORE=$LOAD_BEFORE BM_LOAD_AFTER=$LOAD_AFTER
BM_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') BM_COMMAND=$cmd BM_GIT=$git_rev
BM_SIZE=$SIZE BM_RUNS=$RUNS BM_BS=$BS BM_GET_THREADS=$GET_THREADS BM_GET_PART=$GET_PART \
  BM_GEOMOUNT_ARGS="${GEOMOUNT_ARGS[*]:-}" BM_SERVER_CACHE=$SERVER_CACHE \
  BM_NPROC=$(nproc) BM_CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1) \
  BM_MEMORY=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) \
  BM_KERNEL=$(uname -r) BM_GEOMOUNT="$("$GEOMOUNT" --version | sed "s/^geomount //") @ $git_rev" \
  BM_RCLONE=$(rclone version 2>/dev/null | head -n 1) BM_S3FS=$(s3fs --version 2>/dev/null | head -n 1) \
  BM_GARAGE=$("$GARAGE_BIN" --version 2>/dev/null | head -n 1 | sed "s/^garage //") \
  BM_PYTHON=$("$PY" -c 'import sys, boto3; print("Python %s, boto3 %s" % (sys.version.split()[0], boto3.__version__))') \
  "$PY" -c 'import json, os, sys
m = {k[3:].lower(): v for k, v in os.environ.items() if k.startswith("BM_")}
json.dump(m, open(sys.argv[1], "w"), indent=1)' "$WORK/meta.json"
write_args=()
((WRITE)) && write_args=(--write BENCHMARKS.md)
python3 bench/seq_read_report.py "$RESULTS" "$WORK/meta.json" "${write_args[@]}"
