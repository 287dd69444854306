# bench/browser.sh - the "browser" section of bench/run.sh (sourced by it; uses its helpers).
# Not meant to be run on its own.
#
# Generates the ES-module app into ROOT/app (browser_load.py generate), starts every server of
# BROWSER_SERVERS side by side (they are interleaved load by load, so they must all be up),
# and lets browser_load.py measure cold and warm loads in Chromium. nginx gets the
# revalidating config (ETag, Cache-Control: no-cache), devserve its defaults (log on), node
# http-server its -c-1.

section_browser() {  # runs the section; leaves its report in $OUTDIR/browser/report.md
  local s args=() rc
  SECTION=browser; RUNDIR="$OUTDIR/browser"; TSV=/dev/null; ROUND=1   # browser_load.py writes JSON
  mkdir -p "$RUNDIR"
  if ! "$PY" -c 'import playwright.sync_api' 2>/dev/null; then
    echo "**browser section skipped:** $PY cannot import playwright (pip install -e '.[test]')" > "$RUNDIR/report.md"
    return 0
  fi
  if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "**browser section skipped:** no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)" > "$RUNDIR/report.md"
    return 0
  fi
  timeout 120 "$PY" "$BENCH_DIR/browser_load.py" generate "$ROOT/app" 2>> "$RUNDIR/browser.log" ||
    { echo "**browser section skipped:** could not generate the app (see browser/browser.log)" > "$RUNDIR/report.md"; return 0; }
  chmod -R a+rX "$ROOT/app"
  for s in $BROWSER_SERVERS; do
    [[ " $SERVERS " == *" $s "* ]] || continue
    if [ -n "${SKIP_WHY[$s]:-}" ]; then log "browser: skip $s: ${SKIP_WHY[$s]}"; continue; fi
    [ -n "${PORT[$s]:-}" ] || continue
    log "browser: $s on 127.0.0.1:${PORT[$s]}: $(server_cmd "$s" "${PORT[$s]}")"
    start_server "$s" "${PORT[$s]}" || { log "browser: $s did not start"; continue; }
    KEPT_PIDS+=("$SRV_PID"); SRV_PID=""
    args+=(--server "$s=http://127.0.0.1:${PORT[$s]}/app/")
  done
  if [ "${#args[@]}" = 0 ]; then
    echo "**browser section skipped:** none of BROWSER_SERVERS ($BROWSER_SERVERS) could run" > "$RUNDIR/report.md"
    return 0
  fi
  log "browser: $BROWSER_RUNS cold + warm loads per server in Chromium (bounded ${BROWSER_TIMEOUT}s)"
  timeout -k 10 "$BROWSER_TIMEOUT" "$PY" "$BENCH_DIR/browser_load.py" measure --runs "$BROWSER_RUNS" \
    --json "$RUNDIR/results.json" "${args[@]}" > "$RUNDIR/report.md" \
    2> >(tee -a "$RUNDIR/browser.log" >&2)   # progress lines: to the terminal and the log
  rc=$?
  [ "$rc" -le 2 ] || { log "WARN browser_load.py exited $rc (see $RUNDIR/browser.log)"
    echo "**browser section failed** (exit $rc, see browser/browser.log)" >> "$RUNDIR/report.md"; }
  stop_kept
  return "$rc"
}
