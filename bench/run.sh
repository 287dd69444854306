#!/usr/bin/env bash
# bench/run.sh - issue 8's one command: devserve vs stdlib `python -m http.server`, node's
# http-server and nginx, same run, same files, loopback only, with ratios and PASS/FAIL targets.
# Three sections, all on by default:
#   files    1 KiB/100 KiB/100 MiB files, listing, RSS, start-up (issue 8; report.py)
#   kinds    one of each request kind a browser sends: GET, If-None-Match, If-Modified-Since,
#            index, 404, Range, listing, HEAD (kinds.sh; report_kinds.py)
#   browser  a 543-file ES-module app loaded cold and warm in Chromium (browser_load.py)
#   proxy    requests through devserve --proxy against the backend direct (proxy.py)
#
# Usage (from anywhere; servers are started with the repo root as cwd):
#   bench/run.sh                                   # all six servers, 8 s runs
#   DURATION=3 bench/run.sh                        # quick mode
#   SECTIONS="kinds browser" bench/run.sh          # only some sections
#   PYTHON=/path/to/venv/bin/python bench/run.sh
#   SERVERS="py10 node devserve" bench/run.sh
#   DEVSERVE_CMD='devserve serve {root} --port {port} --bind 127.0.0.1' bench/run.sh
#
# Env knobs (defaults in brackets):
#   PYTHON    [<repo>/.venv/bin/python if present, else the real interpreter behind python3]
#             one interpreter for every Python server
#   SERVERS   [py10 py11 node nginx devserve devserve-quiet]
#   DEVSERVE_CMD  command template with {port} and {root}
#             [$PYTHON -m devserve serve {root} --port {port} --bind 127.0.0.1];
#             It must stay in the foreground; the PID we start plus its descendants is what
#             gets measured and killed. The server's stdout+stderr (request log) go to a file.
#   DEVSERVE_QUIET_CMD  template for devserve-quiet [DEVSERVE_CMD + " --quiet"]
#   DURATION  [8]  seconds per wrk run;   WARMUP [2]  seconds of 1 KiB load before measuring
#   ROUNDS    [1]  repeat the whole server sequence (reversed order on even rounds); tables
#             then show per-metric medians over rounds
#   BASE_PORT [18180]  py10=+0 py11=+10 devserve=+20 devserve-quiet=+30 node=+40 nginx=+50
#             (next free one if taken)
#   ROOT      [/tmp/devserve-bench-root]  corpus (created if missing)
#   OUTDIR    [/tmp/devserve-bench/<timestamp>]  raw wrk/curl output, server logs, results.tsv
#   WRK_TIMEOUT [10s]  wrk per-request timeout;  STARTUP_TIMEOUT [15]  s to wait for a server
#   LIST_RUNS [20] curl timings of /many/;  LIST_BUDGET [30] s cap on them per server
#   RSS_REQUESTS [10000] requests after the 1 GiB stream;  RSS_MAX [60] s cap on that wrk run
#   NO_INSTALL=1   never run npm/apt-get;  INSTALL_TIMEOUT [300] s per install step
#   SKIP_STARTUP=1 skip the hyperfine start-up section;  STRICT=1 exit 2 if a target FAILs
#   SECTIONS  [files kinds browser proxy]
#   KIND_SERVERS [py10 py11 node nginx devserve]  kinds section (those of SERVERS in this list)
#   BASELINE_RPS  devserve's plain-GET req/s to beat in the kinds section, or BASELINE=path of
#             an earlier run's OUTDIR or kinds/results.tsv (the target SKIPs without either)
#   BROWSER_SERVERS [devserve nginx node]  BROWSER_RUNS [5] loads per server and mode
#   BROWSER_TIMEOUT [900] s cap on the browser section
#
# Only 127.0.0.1 is ever contacted by the benchmark. Only PIDs this script started (and their
# descendants, found by parent PID) are ever signalled. Every wrk/curl/install/helper call is
# time-bounded.
set -u
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python
else PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)  # skip pyenv shims
fi
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
BASE_PORT=${BASE_PORT:-18180}
ROOT=${ROOT:-/tmp/devserve-bench-root}
OUTDIR=${OUTDIR:-/tmp/devserve-bench/$(date +%Y%m%d-%H%M%S)}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-15}
ROUNDS=${ROUNDS:-1}
LIST_RUNS=${LIST_RUNS:-20}
LIST_BUDGET=${LIST_BUDGET:-30}
RSS_REQUESTS=${RSS_REQUESTS:-10000}
RSS_MAX=${RSS_MAX:-60}
INSTALL_TIMEOUT=${INSTALL_TIMEOUT:-300}
SERVERS=${SERVERS:-py10 py11 node nginx devserve devserve-quiet}
SECTIONS=${SECTIONS:-files kinds browser proxy}
KIND_SERVERS=${KIND_SERVERS:-py10 py11 node nginx devserve}
BROWSER_SERVERS=${BROWSER_SERVERS:-devserve nginx node}
BROWSER_RUNS=${BROWSER_RUNS:-5}
BROWSER_TIMEOUT=${BROWSER_TIMEOUT:-900}
[ -n "${DEVSERVE_CMD:-}" ] || DEVSERVE_CMD="$PY -m devserve serve {root} --port {port} --bind 127.0.0.1"
[ -n "${DEVSERVE_QUIET_CMD:-}" ] || DEVSERVE_QUIET_CMD="$DEVSERVE_CMD --quiet"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v wrk >/dev/null || die "wrk is required (apt-get install -y wrk)"
command -v curl >/dev/null || die "curl is required"
"$PY" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null || die "no usable python at PYTHON=$PY"
section_on() { [[ " $SECTIONS " == *" $1 "* ]]; }
for sec in $SECTIONS; do
  case $sec in files|kinds|browser|proxy) ;; *) die "unknown section '$sec' (known: files kinds browser proxy)";; esac
done
mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
# Each section writes its raw files into RUNDIR and its rows into TSV: the files section into
# OUTDIR itself (as before sections existed), the others into OUTDIR/<section>/.
SECTION=files
RUNDIR=$OUTDIR
TSV="$OUTDIR/results.tsv"
ROUND=1
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" "$4" >> "$TSV"; }  # round server workload metric value

# ---------------------------------------------------------------- peers (guarded installs)
# node's http-server: `npm install -g http-server` when missing; nginx: Debian's nginx-light
# (or nginx) via apt-get when missing and we are root. Both time-bounded, both skipped with a
# note when they can't be had. NO_INSTALL=1 turns installing off.
# Debian note: where no /usr/sbin/policy-rc.d forbids it, installing nginx starts the system
# service on port 80; this script never uses or stops that service.
wants() { [[ " $SERVERS " == *" $1 "* ]]; }
declare -A SKIP_WHY=()
http_server_bin() { command -v http-server 2>/dev/null; }
nginx_bin() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }
can_apt() { [ -z "${NO_INSTALL:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
APT_UPDATED=""
apt_install() {  # $1 package -> 0 if installed
  local a=(-o DPkg::Lock::Timeout=60 -y -qq --no-install-recommends)
  log "apt-get install $1 (bounded ${INSTALL_TIMEOUT}s)"
  DEBIAN_FRONTEND=noninteractive timeout -k 10 "$INSTALL_TIMEOUT" apt-get install "${a[@]}" "$1" \
    >> "$OUTDIR/install.log" 2>&1 && return 0
  [ -n "$APT_UPDATED" ] && return 1
  APT_UPDATED=1
  timeout -k 10 "$INSTALL_TIMEOUT" apt-get update -qq >> "$OUTDIR/install.log" 2>&1
  DEBIAN_FRONTEND=noninteractive timeout -k 10 "$INSTALL_TIMEOUT" apt-get install "${a[@]}" "$1" \
    >> "$OUTDIR/install.log" 2>&1
}

HTTP_SERVER=$(http_server_bin)
if [ -z "$HTTP_SERVER" ] && { wants node || { section_on files && [ -z "${SKIP_STARTUP:-}" ]; }; }; then
  if [ -n "${NO_INSTALL:-}" ]; then why="http-server not installed (NO_INSTALL set)"
  elif ! command -v npm >/dev/null; then why="http-server not installed and npm not found"
  else
    log "npm install -g http-server (bounded ${INSTALL_TIMEOUT}s)"
    timeout -k 10 "$INSTALL_TIMEOUT" npm install -g --no-audit --no-fund http-server \
      >> "$OUTDIR/install.log" 2>&1 || log "npm install -g http-server failed (see $OUTDIR/install.log)"
    HTTP_SERVER=$(http_server_bin)
    [ -n "$HTTP_SERVER" ] || { p=$(timeout 30 npm prefix -g 2>/dev/null)/bin/http-server; [ -x "$p" ] && HTTP_SERVER=$p; }
    why="npm install -g http-server failed (see install.log)"
  fi
  [ -n "$HTTP_SERVER" ] || { SKIP_WHY[node]=$why; log "node: $why"; }
fi
NGINX=""
if wants nginx; then
  NGINX=$(nginx_bin)
  if [ -z "$NGINX" ]; then
    if can_apt; then
      apt_install nginx-light || apt_install nginx || log "could not install nginx (see $OUTDIR/install.log)"
      NGINX=$(nginx_bin)
      why="apt-get install nginx-light/nginx failed (see install.log)"
    else why="nginx not installed (needs root + apt-get, and NO_INSTALL unset)"
    fi
    [ -n "$NGINX" ] || { SKIP_WHY[nginx]=$why; log "nginx: $why"; }
  fi
fi
if section_on files && [ -z "${SKIP_STARTUP:-}" ] && ! command -v hyperfine >/dev/null && can_apt; then
  apt_install hyperfine || log "could not install hyperfine (start-up section will be skipped)"
fi
# ab (apache2-utils) measures HEAD in the kinds section: wrk and h2load wait for a body after
# a HEAD response and never count one (see README).
if section_on kinds && ! command -v ab >/dev/null && can_apt; then
  apt_install apache2-utils || log "could not install apache2-utils (HEAD kind will be skipped)"
fi

# the kinds and browser sections (functions only; they use the helpers below when called)
source "$BENCH_DIR/kinds.sh"
source "$BENCH_DIR/browser.sh"

# ---------------------------------------------------------------- corpus
SMALL=small-1k.txt; MEDIUM=medium-100k.bin; LARGE=large-100m.bin; HUGE=huge-1g.bin; MANY=many
SMALL_SIZE=1024; MEDIUM_SIZE=$((100 * 1024)); LARGE_SIZE=$((100 * 1024 * 1024)); HUGE_SIZE=$((1024 * 1024 * 1024))
MANY_COUNT=5000
mkdir -p "$ROOT" || die "cannot create $ROOT"
# the 1 KiB file is always there: every server's start-up probe asks for it
[ "$(stat -c %s "$ROOT/$SMALL" 2>/dev/null)" = "$SMALL_SIZE" ] ||
  head -c 2048 /dev/urandom | base64 -w 64 | head -c "$SMALL_SIZE" > "$ROOT/$SMALL"
if section_on files; then
  mkdir -p "$ROOT/$MANY" || die "cannot create $ROOT/$MANY"
  [ "$(stat -c %s "$ROOT/$MEDIUM" 2>/dev/null)" = "$MEDIUM_SIZE" ] ||
    head -c "$MEDIUM_SIZE" /dev/urandom > "$ROOT/$MEDIUM"
  [ "$(stat -c %s "$ROOT/$LARGE" 2>/dev/null)" = "$LARGE_SIZE" ] ||
    head -c "$LARGE_SIZE" /dev/urandom > "$ROOT/$LARGE"
  [ "$(stat -c %s "$ROOT/$HUGE" 2>/dev/null)" = "$HUGE_SIZE" ] ||
    { rm -f "$ROOT/$HUGE"; truncate -s "$HUGE_SIZE" "$ROOT/$HUGE"; }   # sparse is fine
  if [ "$(find "$ROOT/$MANY" -mindepth 1 -maxdepth 1 | wc -l)" -ne "$MANY_COUNT" ]; then
    find "$ROOT/$MANY" -mindepth 1 -maxdepth 1 -delete
    (cd "$ROOT/$MANY" && seq -f 'file-%05g.txt' 1 "$MANY_COUNT" | xargs touch)   # empty files, like peers.sh
  fi
fi
section_on kinds && { write_kinds_corpus || die "cannot write the kinds corpus in $ROOT"; }
chmod -R a+rX "$ROOT"
# read everything once so the first server measured does not pay for filling the page cache
if section_on files; then
  timeout 120 cat "$ROOT/$SMALL" "$ROOT/$MEDIUM" "$ROOT/$LARGE" "$ROOT/$HUGE" > /dev/null
  timeout 30 ls -l "$ROOT/$MANY" > /dev/null
fi

# wrk script for the "N requests" run: alternates the 1 KiB and 100 KiB files; each thread
# stops after WRK_REQS_PER_THREAD responses and appends a line to WRK_DONE_FILE, so the shell
# can end wrk early (SIGINT makes wrk print its summary and exit).
COUNT_LUA="$OUTDIR/count.lua"
cat > "$COUNT_LUA" <<EOF
local paths = {"/$SMALL", "/$MEDIUM"}
local limit = tonumber(os.getenv("WRK_REQS_PER_THREAD") or "5000")
local flag = os.getenv("WRK_DONE_FILE")
local i, n = 0, 0
function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
function response()
  n = n + 1
  if n == limit then
    if flag then local f = io.open(flag, "a"); if f then f:write("done\n"); f:close() end end
    wrk.thread:stop()
  end
end
EOF

# ---------------------------------------------------------------- servers
KNOWN="py10 py11 node nginx devserve devserve-quiet"
server_index() { case $1 in py10) echo 0;; py11) echo 1;; devserve) echo 2;; devserve-quiet) echo 3;; node) echo 4;; nginx) echo 5;; *) return 1;; esac; }
NGX_DIR="$OUTDIR/nginx"
# The files section keeps peers.sh's config (nginx.conf). The kinds and browser sections
# compare revalidation, so their config (nginx-<section>.conf) also sends what devserve sends
# by default: an ETag (nginx's default, spelled out) and Cache-Control: no-cache.
nginx_conf() { if [ "$SECTION" = files ]; then echo "$NGX_DIR/nginx.conf"; else echo "$NGX_DIR/nginx-$SECTION.conf"; fi; }
write_nginx_conf() {  # $1 port; peers.sh's config: sendfile, no access log, autoindex
  local revalidate=""
  [ "$SECTION" = files ] || revalidate="etag on;
  add_header Cache-Control no-cache;"
  mkdir -p "$NGX_DIR"
  cat > "$(nginx_conf)" <<EOF
worker_processes 2;
daemon off;
pid $NGX_DIR/nginx.pid;
error_log $NGX_DIR/error.log warn;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;   # default 1000 would force reconnects at high rates
  client_body_temp_path $NGX_DIR/body;
  proxy_temp_path $NGX_DIR/proxy;
  fastcgi_temp_path $NGX_DIR/fastcgi;
  uwsgi_temp_path $NGX_DIR/uwsgi;
  scgi_temp_path $NGX_DIR/scgi;
  $revalidate
  server { listen 127.0.0.1:$1; root $ROOT; autoindex on; }
}
EOF
}
server_cmd() {  # $1 name, $2 port -> shell command (exec'd, so $! is the server itself)
  local c
  case $1 in
    py10) echo "$PY -m http.server $2 --bind 127.0.0.1 --directory $ROOT" ;;
    py11) echo "$PY -m http.server $2 --bind 127.0.0.1 --directory $ROOT --protocol HTTP/1.1" ;;
    node) echo "$HTTP_SERVER $ROOT -a 127.0.0.1 -p $2 -s -c-1" ;;
    nginx) write_nginx_conf "$2"; echo "$NGINX -p $NGX_DIR -e $NGX_DIR/error.log -c $(nginx_conf)" ;;
    devserve) c=${DEVSERVE_CMD//\{port\}/$2}; echo "${c//\{root\}/$ROOT}" ;;
    devserve-quiet) c=${DEVSERVE_QUIET_CMD//\{port\}/$2}; echo "${c//\{root\}/$ROOT}" ;;
    *) return 1 ;;
  esac
}

# ---------------------------------------------------------------- process helpers (PID-only)
descendants() { local c; for c in $(pgrep -P "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done; }
tree() { echo "$1"; descendants "$1"; }
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {  # utime+stime of the process tree (stat fields 14,15; comm may contain spaces)
  local p t=0 v
  for p in $(tree "$1"); do v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}'); t=$((t + ${v:-0})); done
  echo "$t"
}
sum_status_kb() {  # $1 field (VmHWM/VmRSS), $2 root pid -> kB summed over the tree
  local p t=0 v
  for p in $(tree "$2"); do v=$(awk -v f="$1:" '$1==f{print $2}' "/proc/$p/status" 2>/dev/null); t=$((t + ${v:-0})); done
  echo "$t"
}
# Noise detection. machine_ticks prints "busy total" jiffies summed over all CPUs, where busy
# is user+nice+system (irq/softirq left out: loopback traffic we cause is accounted there).
# own_ticks is utime+stime of this shell's reaped descendants (wrk, curl, helpers).
machine_ticks() { awk '/^cpu /{print $2+$3+$4, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
own_ticks() { sed 's/.*) //' "/proc/$$/stat" | awk '{print $14+$15}'; }
other_pct() {  # $1 "busy total" before, $2 after, $3 ticks of ours in between -> % of the machine
  awk -v a="$1" -v b="$2" -v o="$3" 'BEGIN{split(a,x," "); split(b,y," "); t=y[2]-x[2]
    v = t ? (y[1]-x[1]-o)/t*100 : 0; printf "%.0f", v < 0 ? 0 : v}'
}
cpu_busy_pct() {  # whole-machine CPU busy % over $1 seconds while nothing of ours runs
  local a; a=$(machine_ticks); sleep "$1"; other_pct "$a" "$(machine_ticks)" 0
}
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }  # not a zombie
reset_hwm() { local p; for p in $(tree "$1"); do echo 5 > "/proc/$p/clear_refs" 2>/dev/null; done; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
listener_pids() {  # pids listening on 127.0.0.1:$1 (needs ss; empty if unknown)
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

SRV_PID=""
start_server() {  # $1 name, $2 port
  local name=$1 port=$2 cmd i p mine
  cmd=$(server_cmd "$name" "$port") || return 1
  echo "$cmd" > "$RUNDIR/$name.cmd"
  (cd "$REPO" && exec bash -c "exec $cmd") >"$RUNDIR/r$ROUND.$name.server.log" 2>&1 &
  SRV_PID=$!
  for i in $(seq 1 $((STARTUP_TIMEOUT * 10))); do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/$SMALL"; then
      # make sure the listener is ours and not something that grabbed the port meanwhile
      if command -v ss >/dev/null && [ -n "$(listener_pids "$port")" ]; then
        mine=0
        for p in $(listener_pids "$port"); do tree "$SRV_PID" | grep -qx "$p" && mine=1; done
        [ "$mine" = 1 ] || { log "$name: port $port answered, but not by our process"; stop_server; return 1; }
      fi
      return 0
    fi
    alive "$SRV_PID" || break
    sleep 0.1
  done
  log "$name did not come up on 127.0.0.1:$port. Command: $cmd"
  log "---- last lines of $RUNDIR/r$ROUND.$name.server.log ----"
  tail -n 25 "$RUNDIR/r$ROUND.$name.server.log" >&2
  stop_server; return 1
}
stop_tree() {  # $1 a server PID we started: TERM its tree, KILL what is left after 5 s
  local pids i; pids=$(tree "$1")
  kill -TERM $pids 2>/dev/null
  for i in $(seq 1 50); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
  kill -KILL $pids 2>/dev/null
  wait "$1" 2>/dev/null
}
stop_server() { [ -z "$SRV_PID" ] || stop_tree "$SRV_PID"; SRV_PID=""; }
KEPT_PIDS=()   # servers that run side by side (browser section), stopped by stop_kept
stop_kept() { local p; for p in "${KEPT_PIDS[@]}"; do stop_tree "$p"; done; KEPT_PIDS=(); }
WRK_PID=""
cleanup() { [ -n "$WRK_PID" ] && kill -TERM "$WRK_PID" 2>/dev/null; stop_server; stop_kept; }
trap 'cleanup; exit 130' INT TERM
trap 'cleanup' EXIT

# ---------------------------------------------------------------- measurement helpers
parse_wrk() {  # $1 file $2 server $3 workload -> TSV rows (wrk units: us/ms/s/m; 1024-based sizes)
  awk -v r="$ROUND" -v s="$2" -v w="$3" '
    function ms(x){ if (x ~ /us$/) return x/1000; if (x ~ /ms$/) return x+0; if (x ~ /m$/) return x*60000; if (x ~ /h$/) return x*3600000; if (x ~ /s$/) return x*1000; return x }
    function bytes(x){ if (x ~ /TB$/) return x*1024^4; if (x ~ /GB$/) return x*1024^3; if (x ~ /MB$/) return x*1024^2; if (x ~ /KB$/) return x*1024; return x+0 }
    function out(m, v){ printf "%s\t%s\t%s\t%s\t%s\n", r, s, w, m, v }
    /Requests\/sec:/ { out("rps", $2) }
    /Transfer\/sec:/ { out("mibps", bytes($2) / 1048576) }
    / requests in .* read$/ { out("requests", $1); out("bytes", sprintf("%.0f", bytes($(NF-1)))); out("secs", ms($4) / 1000) }
    /^ +50% / { out("p50ms", ms($2)) }
    /^ +99% / { out("p99ms", ms($2)) }
    /Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx/ { non2xx = $NF }
    END { out("sock_errors", err + 0); out("non2xx", non2xx + 0) }' "$1" >> "$TSV"
}
# meter_start / meter_stop bracket one load-generator run and record the server tree's CPU
# and the CPU that neither the server nor our own children used (somebody else's load).
meter_start() { M_C0=$(cpu_ticks "$SRV_PID"); M_O0=$(own_ticks); M_M0=$(machine_ticks); M_T0=$(date +%s%N); }
meter_stop() {  # $1 server $2 workload
  local c1 t1 m1 o1
  m1=$(machine_ticks); o1=$(own_ticks); c1=$(cpu_ticks "$SRV_PID"); t1=$(date +%s%N)
  rec "$1" "$2" other_pct "$(other_pct "$M_M0" "$m1" $((c1 - M_C0 + o1 - M_O0)))"
  rec "$1" "$2" cpu_s "$(awk -v c=$((c1 - M_C0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", c / hz}')"
  rec "$1" "$2" cpu_pct "$(awk -v c=$((c1 - M_C0)) -v hz="$CLK_TCK" -v ns=$((t1 - M_T0)) 'BEGIN{printf "%.0f", c / hz / (ns / 1e9) * 100}')"
}
run_wrk() {  # $1 server $2 workload $3 threads $4 conns $5 url [$6 stop after this many requests [$7 header]]
  local f="$RUNDIR/r$ROUND.$1.$2.wrk" total=${6:-0} done_file deadline hdr=()
  [ -n "${7:-}" ] && hdr=(-H "$7")
  meter_start
  if [ "$total" -gt 0 ]; then
    # counted run: wrk's -d is only the upper bound (RSS_MAX); each thread stops itself after
    # its share, and we SIGINT wrk (our own child, by PID) once every thread has reported.
    done_file="$RUNDIR/r$ROUND.$1.$2.done"; : > "$done_file"
    WRK_DONE_FILE=$done_file WRK_REQS_PER_THREAD=$(((total + $3 - 1) / $3)) \
      wrk -t"$3" -c"$4" -d"${RSS_MAX}s" --timeout "$WRK_TIMEOUT" --latency -s "$COUNT_LUA" "$5" > "$f" 2>&1 &
    WRK_PID=$!
    deadline=$((SECONDS + RSS_MAX + 30))
    while alive "$WRK_PID"; do
      if [ "$(wc -l < "$done_file")" -ge "$3" ]; then kill -INT "$WRK_PID" 2>/dev/null; break; fi
      if [ "$SECONDS" -ge "$deadline" ]; then kill -KILL "$WRK_PID" 2>/dev/null; break; fi
      sleep 0.1
    done
    wait "$WRK_PID" 2>/dev/null; WRK_PID=""
  else
    timeout -k 5 $((DURATION + 30)) wrk -t"$3" -c"$4" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" \
      --latency "${hdr[@]}" "$5" > "$f" 2>&1
  fi
  meter_stop "$1" "$2"
  parse_wrk "$f" "$1" "$2"
}
check_get() {  # $1 server $2 url $3 expected file -> records "ok" / what went wrong
  local got
  got=$(curl -s -o "$OUTDIR/check.body" --max-time 60 -w '%{http_code}:%{size_download}' "$2")
  if [ "${got%%:*}" = 200 ] && cmp -s "$OUTDIR/check.body" "$3"; then rec "$1" check "${3##*/}" ok
  else rec "$1" check "${3##*/}" "bad($got)"; log "WARN $1 GET ${2##*/} -> $got (content mismatch or error)"; fi
  rm -f "$OUTDIR/check.body"
}
check_listing() {  # $1 server $2 url: 200 and both the first and the last name are listed
  local got f="$OUTDIR/r$ROUND.$1.listing.html"
  got=$(curl -s -o "$f" --max-time 30 -w '%{http_code}:%{size_download}' "$2")
  rec "$1" listing bytes "${got#*:}"
  if [ "${got%%:*}" = 200 ] && grep -q 'file-00001\.txt' "$f" && grep -q "file-0*${MANY_COUNT}\.txt" "$f"; then
    rec "$1" check listing ok
  else rec "$1" check listing "bad($got)"; log "WARN $1 GET /$MANY/ -> $got (not a full listing)"; fi
}
time_listing() {  # $1 server $2 url: LIST_RUNS sequential curl timings (fresh connection each)
  local i t0=$SECONDS f="$OUTDIR/r$ROUND.$1.listing.times"
  : > "$f"
  for i in $(seq 1 "$LIST_RUNS"); do
    curl -s -o /dev/null --max-time 20 -w '%{http_code} %{time_total}\n' "$2" >> "$f"
    [ $((SECONDS - t0)) -ge "$LIST_BUDGET" ] && break
  done
  rec "$1" listing failed_runs "$(awk '$1 != 200' "$f" | wc -l)"
  awk '$1 == 200 { print $2 * 1000 }' "$f" | sort -g | awk -v r="$ROUND" -v s="$1" '{ a[NR] = $1 }
    function out(m, v){ printf "%s\t%s\tlisting\t%s\t%s\n", r, s, m, v }
    END { n = NR; out("runs", n)
          if (n) { m = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
                   out("median_ms", sprintf("%.2f", m)); out("min_ms", sprintf("%.2f", a[1])) } }' >> "$TSV"
}

# ---------------------------------------------------------------- the run
{
  echo "date: $(date -Is)"
  echo "host: nproc=$(nproc) kernel=$(uname -r) cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
  echo "python: $PY ($("$PY" -V 2>&1))"
  echo "wrk: $(wrk --version 2>&1 | head -n 1)"
  [ -n "$HTTP_SERVER" ] && echo "node: $(timeout 10 node --version 2>&1) http-server $(timeout 10 "$HTTP_SERVER" -v 2>&1 | head -n 1)"
  [ -n "$NGINX" ] && echo "nginx: $(timeout 10 "$NGINX" -v 2>&1 | head -n 1)"
  echo "repo: $REPO @ $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty)')"
  section_on kinds && echo "ab: $(ab -V 2>&1 | head -n 1)"
  section_on browser && echo "chromium: $(timeout 10 "${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null | head -n 1)"
  echo "SECTIONS=$SECTIONS DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS SERVERS=$SERVERS"
  section_on kinds && echo "KIND_SERVERS=$KIND_SERVERS BASELINE_RPS=${BASELINE_RPS:-} BASELINE=${BASELINE:-}"
  section_on browser && echo "BROWSER_SERVERS=$BROWSER_SERVERS BROWSER_RUNS=$BROWSER_RUNS"
  echo "DEVSERVE_CMD=$DEVSERVE_CMD"
  echo "DEVSERVE_QUIET_CMD=$DEVSERVE_QUIET_CMD"
} > "$OUTDIR/meta.txt"
log "python=$PY duration=${DURATION}s sections='$SECTIONS' servers='$SERVERS' out=$OUTDIR"

# ports are picked once, so every round and section uses the same port per server; a server
# that can't run gets its reason in SKIP_WHY, which each section records in its own results
declare -A PORT=()
used_ports=" "
run_list=""
for s in $SERVERS; do
  idx=$(server_index "$s") || { log "unknown server '$s' (known: $KNOWN)"; continue; }
  if [ -n "${SKIP_WHY[$s]:-}" ]; then log "skip $s: ${SKIP_WHY[$s]}"; continue; fi
  port=$((BASE_PORT + idx * 10))
  for _ in $(seq 1 10); do
    if [[ $used_ports == *" $port "* ]] || port_in_use "$port"; then port=$((port + 1)); else break; fi
  done
  if port_in_use "$port"; then
    SKIP_WHY[$s]="no free port near $((BASE_PORT + idx * 10))"; log "skip $s: no free port"; continue
  fi
  used_ports="$used_ports$port "; PORT[$s]=$port; run_list="$run_list $s"
done

bench_server() {  # $1 name: start, check, warm up, measure, stop
  local s=$1 port=${PORT[$1]} base code size speed got c0 c1
  # CPU used by everything else on the machine just before we start (nothing of ours runs)
  rec "$s" env bg_busy_pct "$(cpu_busy_pct 1)"
  log "round $ROUND: $s on 127.0.0.1:$port: $(server_cmd "$s" "$port")"
  start_server "$s" "$port" || { rec "$s" start failed 1; return 1; }
  base="http://127.0.0.1:$port"
  rec "$s" start port "$port"
  rec "$s" idle rss_kb "$(sum_status_kb VmRSS "$SRV_PID")"
  check_get "$s" "$base/$SMALL" "$ROOT/$SMALL"
  check_get "$s" "$base/$MEDIUM" "$ROOT/$MEDIUM"
  check_get "$s" "$base/$LARGE" "$ROOT/$LARGE"
  check_listing "$s" "$base/$MANY/"

  timeout -k 5 $((WARMUP + 20)) wrk -t2 -c32 -d"${WARMUP}s" "$base/$SMALL" > "$OUTDIR/r$ROUND.$s.warmup.wrk" 2>&1
  log "  1 KiB @32 conns";   run_wrk "$s" small_c32 2 32 "$base/$SMALL"
  log "  1 KiB @1 conn";     run_wrk "$s" small_c1 1 1 "$base/$SMALL"
  log "  100 KiB @32 conns"; run_wrk "$s" medium_c32 2 32 "$base/$MEDIUM"
  log "  100 MiB @4 conns";  run_wrk "$s" large_c4 2 4 "$base/$LARGE"
  log "  /$MANY/ listing ($MANY_COUNT files, $LIST_RUNS curl timings)"
  time_listing "$s" "$base/$MANY/"

  log "  1 GiB stream, then $RSS_REQUESTS requests (RSS)"
  sleep 0.5                       # let in-flight large responses drain
  reset_hwm "$SRV_PID"            # VmHWM := current RSS, so later reads are peaks from here on
  rec "$s" huge rss_before_kb "$(sum_status_kb VmRSS "$SRV_PID")"
  c0=$(cpu_ticks "$SRV_PID")
  got=$(curl -s -o /dev/null --max-time 120 -w '%{http_code} %{size_download} %{speed_download}' "$base/$HUGE")
  c1=$(cpu_ticks "$SRV_PID")
  read -r code size speed <<< "${got:-000 0 0}"
  rec "$s" huge peak_rss_kb "$(sum_status_kb VmHWM "$SRV_PID")"
  rec "$s" huge http "$code"
  rec "$s" huge bytes "$size"
  rec "$s" huge mibps "$(awk -v b="$speed" 'BEGIN{printf "%.1f", b / 1048576}')"
  rec "$s" huge cpu_s "$(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", c / hz}')"
  echo "$got" > "$OUTDIR/r$ROUND.$s.huge.curl"
  [ "$code" = 200 ] && [ "$size" = "$HUGE_SIZE" ] || log "WARN $s 1 GiB stream -> $got"
  rec "$s" counted target "$RSS_REQUESTS"
  run_wrk "$s" counted 2 32 "$base/" "$RSS_REQUESTS"
  sleep 0.2
  rec "$s" after rss_kb "$(sum_status_kb VmRSS "$SRV_PID")"
  rec "$s" after hwm_kb "$(sum_status_kb VmHWM "$SRV_PID")"
  stop_server
}

# ---------------------------------------------------------------- start-up time
# `python -m http.server --help`, `devserve --help`, a devserve completion request and node's
# `http-server --help` (hyperfine, from Debian's package). startup.labels names each command
# for report.py; startup.skipped says why the section is missing.
startup_times() {
  if [ -n "${SKIP_STARTUP:-}" ]; then echo "SKIP_STARTUP set" > "$OUTDIR/startup.skipped"
  elif ! command -v hyperfine >/dev/null; then echo "hyperfine not installed" > "$OUTDIR/startup.skipped"
  else
    DS_BIN=$(dirname "$PY")/devserve
    [ -x "$DS_BIN" ] || DS_BIN="$PY -m devserve"
    cmds=("$PY -m http.server --help" "$DS_BIN --help"
          "env _DEVSERVE_COMPLETE=complete_bash COMP_WORDS='devserve se' COMP_CWORD=1 $DS_BIN")
    labels="py-help devserve-help devserve-complete"
    if [ -n "$HTTP_SERVER" ]; then cmds+=("$HTTP_SERVER --help"); labels="$labels node-help"
    else echo "${SKIP_WHY[node]:-http-server not installed}" > "$OUTDIR/startup.node-skipped"; fi
    echo "$labels" > "$OUTDIR/startup.labels"
    log "start-up times (hyperfine)"
    (cd "$REPO" && timeout -k 5 300 hyperfine -N --warmup 3 --runs 20 \
      --export-json "$OUTDIR/startup.json" "${cmds[@]}" > "$OUTDIR/startup.txt" 2>&1) ||
      { log "WARN hyperfine failed (see $OUTDIR/startup.txt)"; echo "hyperfine failed (see startup.txt)" > "$OUTDIR/startup.skipped"; }
  fi
}

section_files() {  # issue 8's workloads; leaves its report in $OUTDIR/report-files.md
  local s order
  SECTION=files; RUNDIR=$OUTDIR; TSV="$OUTDIR/results.tsv"; ROUND=1
  : > "$TSV"
  for s in $SERVERS; do [ -z "${SKIP_WHY[$s]:-}" ] || rec "$s" start skipped "${SKIP_WHY[$s]}"; done
  for ROUND in $(seq 1 "$ROUNDS"); do
    order=$run_list
    # even rounds go backwards so slow drift (thermal, page cache, neighbours) evens out
    [ $((ROUND % 2)) = 0 ] && order=$(printf '%s\n' $run_list | tac | tr '\n' ' ')
    for s in $order; do bench_server "$s"; done
  done
  startup_times
  timeout 60 "$PY" "$BENCH_DIR/report.py" "$TSV" "$OUTDIR" > "$OUTDIR/report-files.md"
}

section_proxy() {  # bench/proxy.py starts its own backend and devserve; report in proxy/report.md
  local rundir="$OUTDIR/proxy"
  mkdir -p "$rundir"
  if ! "$PY" -c 'import uvicorn' 2>/dev/null; then
    echo "**proxy section skipped:** $PY cannot import uvicorn (pip install -e '.[test]')" > "$rundir/report.md"
    return 0
  fi
  log "proxy: devserve --proxy against the backend direct (bench/proxy.py)"
  timeout -k 10 900 "$PY" "$BENCH_DIR/proxy.py" --duration "$DURATION" --outdir "$rundir" \
    --json "$rundir/results.json" > "$rundir/report.md" 2> "$rundir/proxy.log" ||
    { log "WARN bench/proxy.py failed (see $rundir/proxy.log)"; echo "**proxy section failed** (see proxy/proxy.log)" >> "$rundir/report.md"; }
}

# ---------------------------------------------------------------- sections, then one report
# Each report exits 2 under STRICT=1 when one of its targets FAILs; so does this script.
status=0
if section_on files; then section_files || status=$?; fi
if section_on kinds; then section_kinds || status=$?; fi
if section_on browser; then section_browser || status=$?; fi
if section_on proxy; then section_proxy || status=$?; fi
{
  # report.py opens with meta.txt; without the files section it is printed here
  section_on files || printf '```\n%s\n```\n' "$(cat "$OUTDIR/meta.txt")"
  section_on files && cat "$OUTDIR/report-files.md"
  section_on kinds && cat "$OUTDIR/kinds/report.md"
  section_on browser && cat "$OUTDIR/browser/report.md"
  section_on proxy && cat "$OUTDIR/proxy/report.md"
} | tee "$OUTDIR/report.md"
exit "$status"
