# bench/kinds.sh - the "kinds" section of bench/run.sh (sourced by it; uses its helpers,
# variables and rec/TSV conventions). Not meant to be run on its own.
#
# One load run per request kind a browser sends, per server, on 127.0.0.1:
#   get      GET /small-1k.txt                                      -> 200
#   inm      same + If-None-Match: <that server's own ETag>         -> 304 ("n/a" without ETag)
#   ims      same + If-Modified-Since: <that server's Last-Modified> -> 304
#   index    GET /            (ROOT/index.html)                     -> 200
#   missing  GET /missing.html                                      -> 404
#   range    same file + Range: bytes=0-99                          -> 206
#   listing  GET /sub/        (30 files, no index.html)             -> 200
#   head     HEAD /small-1k.txt                                     -> 200
# Every kind but HEAD runs `wrk -t2 -c32 --latency` for DURATION seconds. HEAD runs
# `ab -k -i -c32 -t DURATION`, because wrk (and h2load 1.52 --h1) wait for the
# Content-Length body after a HEAD response and never count one. Before and after each run
# the status is checked with curl; report_kinds.py flags a cell whose status differs.

KINDS="get inm ims index missing range listing head"
KIND_SUB=sub
KIND_SUB_FILES=30
KIND_INDEX_PAGE='<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>devserve bench</title>
<link rel="icon" href="data:,">
</head>
<body>
<h1>devserve bench root</h1>
<p>GET / in the kinds section of bench/run.sh asks for this page.</p>
<ul>
<li><a href="small-1k.txt">small-1k.txt</a></li>
<li><a href="sub/">sub/</a>: a folder of 30 files without an index</li>
<li><a href="app/">app/</a>: the ES-module app of the browser section</li>
</ul>
</body>
</html>'

write_kinds_corpus() {  # ROOT/index.html for GET /, and ROOT/sub/ with exactly 30 small files
  local i want
  [ "$(cat "$ROOT/index.html" 2>/dev/null)" = "$KIND_INDEX_PAGE" ] ||
    printf '%s\n' "$KIND_INDEX_PAGE" > "$ROOT/index.html" || return 1
  # only our own numbered files (no index.html, so every server answers with a listing)
  want=$(seq -f 'file-%02g.txt' 1 "$KIND_SUB_FILES")
  [ "$(find "$ROOT/$KIND_SUB" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort)" = "$want" ] &&
    return 0
  rm -rf "${ROOT:?}/$KIND_SUB" && mkdir -p "$ROOT/$KIND_SUB" || return 1
  for i in $(seq -w 1 "$KIND_SUB_FILES"); do
    echo "file $i of $KIND_SUB_FILES in the listing kind" > "$ROOT/$KIND_SUB/file-$i.txt" || return 1
  done
}

kind_path() { case $1 in index) echo /;; missing) echo /missing.html;; listing) echo "/$KIND_SUB/";; *) echo "/$SMALL";; esac; }
kind_expect() { case $1 in inm|ims) echo 304;; missing) echo 404;; range) echo 206;; *) echo 200;; esac; }
K_ETAG=""; K_LASTMOD=""   # the current server's validators for /$SMALL (read_validators)
kind_header() {  # the request header a kind adds (empty for none)
  case $1 in
    inm) [ -z "$K_ETAG" ] || echo "If-None-Match: $K_ETAG" ;;
    ims) [ -z "$K_LASTMOD" ] || echo "If-Modified-Since: $K_LASTMOD" ;;
    range) echo "Range: bytes=0-99" ;;
  esac
}
read_validators() {  # $1 url: sets K_ETAG and K_LASTMOD from a HEAD response (empty if absent)
  local h
  h=$(curl -sI --max-time 10 "$1" | tr -d '\r')
  K_ETAG=$(awk 'tolower($1) == "etag:" { sub(/^[^:]*: */, ""); print; exit }' <<< "$h")
  K_LASTMOD=$(awk 'tolower($1) == "last-modified:" { sub(/^[^:]*: */, ""); print; exit }' <<< "$h")
}
kind_status() {  # $1 base url $2 kind -> "status bytes" of one request of that kind
  local hdr args=(-s -o /dev/null --max-time 10 -w '%{http_code} %{size_download}')
  hdr=$(kind_header "$2")
  [ -z "$hdr" ] || args+=(-H "$hdr")
  [ "$2" = head ] && args+=(-I)
  curl "${args[@]}" "$1$(kind_path "$2")"
}

parse_ab() {  # $1 ab output $2 ab -e csv $3 server $4 workload -> TSV rows like parse_wrk's
  awk -v r="$ROUND" -v s="$3" -v w="$4" '
    function out(m, v){ printf "%s\t%s\t%s\t%s\t%s\n", r, s, w, m, v }
    /^Complete requests:/ { out("requests", $3) }
    /^Failed requests:/ { out("sock_errors", $3) }
    /^Non-2xx responses:/ { non2xx = $3 }
    /^Keep-Alive requests:/ { out("keepalive", $3) }
    /^Requests per second:/ { out("rps", $4) }
    /^Time taken for tests:/ { out("secs", $5) }
    /^Total transferred:/ { out("bytes", $3) }
    END { out("non2xx", non2xx + 0) }' "$1" >> "$TSV"
  # ab -e: "percent,ms" rows 0..100 (ab does not correct for coordinated omission)
  awk -F, -v r="$ROUND" -v s="$3" -v w="$4" '
    $1 == 50 { printf "%s\t%s\t%s\tp50ms\t%s\n", r, s, w, $2 }
    $1 == 99 { printf "%s\t%s\t%s\tp99ms\t%s\n", r, s, w, $2 }' "$2" >> "$TSV" 2>/dev/null
}
run_ab_head() {  # $1 server $2 workload $3 url: HEAD at 32 keep-alive connections (ab -k -i)
  local f="$RUNDIR/r$ROUND.$1.$2.ab" csv="$RUNDIR/r$ROUND.$1.$2.ab.csv"
  local slog="$RUNDIR/r$ROUND.$1.server.log" logged0 logged1
  # ab keeps a record per request up to -n: a cap well above any rate seen here
  logged0=$(grep -c "HEAD /$SMALL " "$slog")
  meter_start
  timeout -k 5 $((DURATION + 30)) ab -k -i -r -q -c 32 -s 10 -t "$DURATION" \
    -n $((DURATION * 250000)) -e "$csv" "$3" > "$f" 2>&1
  meter_stop "$1" "$2"
  parse_ab "$f" "$csv" "$1" "$2"
  # Cross-check for servers that log requests (devserve, python): the HEAD lines written
  # during the run. ab stops with up to 32 requests in flight, so the log may count more.
  sleep 0.5
  logged1=$(grep -c "HEAD /$SMALL " "$slog")
  [ "$logged1" -gt 0 ] && rec "$1" "$2" logged $((logged1 - logged0))
}

client_gave_up() {  # $1 wrk/ab output without a rate -> one line saying why
  # e.g. ab waiting for a close that never comes: "apr_pollset_poll: The timeout specified..."
  local line
  line=$(grep -m1 -o 'apr_[a-z_]*: .*' "$1")
  [ -n "$line" ] || line=$(grep -m1 '^Complete requests:' "$1")
  [ -n "$line" ] || line=$(tail -n 1 "$1")
  printf '%s' "$line" | tr -d '\r' | tr '\t' ' ' | cut -c1-120
}

bench_kinds_server() {  # $1 name: start, read validators, check + measure + re-check each kind
  local s=$1 port=${PORT[$1]} base kind want got hdr out
  rec "$s" env bg_busy_pct "$(cpu_busy_pct 1)"
  log "kinds, round $ROUND: $s on 127.0.0.1:$port: $(server_cmd "$s" "$port")"
  start_server "$s" "$port" || { rec "$s" start failed 1; return 1; }
  base="http://127.0.0.1:$port"
  rec "$s" start port "$port"
  read_validators "$base/$SMALL"
  rec "$s" validators etag "${K_ETAG:-none}"
  rec "$s" validators last_modified "${K_LASTMOD:-none}"
  timeout -k 5 $((WARMUP + 20)) wrk -t2 -c32 -d"${WARMUP}s" "$base/$SMALL" > "$RUNDIR/r$ROUND.$s.warmup.wrk" 2>&1
  for kind in $KINDS; do
    want=$(kind_expect "$kind")
    rec "$s" "$kind" expect "$want"
    case $kind in
      inm) [ -n "$K_ETAG" ] || { rec "$s" "$kind" na "sends no ETag"; continue; } ;;
      ims) [ -n "$K_LASTMOD" ] || { rec "$s" "$kind" na "sends no Last-Modified"; continue; } ;;
      head) command -v ab >/dev/null || { rec "$s" "$kind" na "ab not installed"; continue; } ;;
    esac
    log "  $kind: $(kind_path "$kind") $(kind_header "$kind") -> $want"
    got=$(kind_status "$base" "$kind")
    rec "$s" "$kind" status "${got%% *}"
    rec "$s" "$kind" check_bytes "${got#* }"
    [ "${got%% *}" = "$want" ] || log "  WARN $s $kind -> ${got%% *}, expected $want (cell flagged)"
    if [ "$kind" = head ]; then
      run_ab_head "$s" "$kind" "$base$(kind_path "$kind")"
      out="$RUNDIR/r$ROUND.$s.$kind.ab"
    else
      hdr=$(kind_header "$kind")
      run_wrk "$s" "$kind" 2 32 "$base$(kind_path "$kind")" 0 "$hdr"
      out="$RUNDIR/r$ROUND.$s.$kind.wrk"
    fi
    grep -q -e '^Requests/sec:' -e '^Requests per second:' "$out" ||
      rec "$s" "$kind" client_error "$(client_gave_up "$out")"
    got=$(kind_status "$base" "$kind")
    rec "$s" "$kind" status_after "${got%% *}"
  done
  stop_server
}

section_kinds() {  # runs the section; leaves its report in $OUTDIR/kinds/report.md
  local s order list=""
  SECTION=kinds; RUNDIR="$OUTDIR/kinds"; TSV="$RUNDIR/results.tsv"
  mkdir -p "$RUNDIR" && : > "$TSV"
  ROUND=1
  for s in $SERVERS; do
    [[ " $KIND_SERVERS " == *" $s "* ]] || continue
    if [ -n "${SKIP_WHY[$s]:-}" ]; then rec "$s" start skipped "${SKIP_WHY[$s]}"
    elif [ -n "${PORT[$s]:-}" ]; then list="$list $s"; fi
  done
  for ROUND in $(seq 1 "$ROUNDS"); do
    order=$list
    [ $((ROUND % 2)) = 0 ] && order=$(printf '%s\n' $list | tac | tr '\n' ' ')
    for s in $order; do bench_kinds_server "$s"; done
  done
  timeout 60 "$PY" "$BENCH_DIR/report_kinds.py" "$TSV" > "$RUNDIR/report.md"
}
