#!/usr/bin/env bash
# The decay target's long run (issue 9): the lifecycle mix against a fresh PostgreSQL database
# for DURATION seconds (default 1800) in 60 s windows, with the tables vacuumed as production's
# autovacuum would (this machine kind's cluster runs with autovacuum off, and dead row versions
# then pile up until every read visits them: docs/benchmarks.md). Prints the per-minute rates,
# the last minute against the first, and the server's highest RSS.
#
#   tools/long-run.sh                  # 30 minutes, VACUUM (ANALYZE) every 60 s
#   VACUUM_EVERY=0 tools/long-run.sh   # without vacuuming, as the earlier runs were
#   AUTOVACUUM=on VACUUM_EVERY=0 tools/long-run.sh
#                                      # PostgreSQL's own autovacuum, switched on for the run
#                                      # (ALTER SYSTEM + reload) and restored afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib.sh

DURATION=${DURATION:-1800}
CONNECTIONS=${CONNECTIONS:-16}
VACUUM_EVERY=${VACUUM_EVERY:-60}
AUTOVACUUM=${AUTOVACUUM:-}
PORT=${PORT:-18080}

build
work=$(mktemp -d)
url=$(fresh_pg gridcall_long_run)
vacuum_pid=
rss_pid=
autovacuum_before=
cleanup() {
    if [ -n "$autovacuum_before" ]; then
        psql "$PGURL_BASE/postgres" -qc "ALTER SYSTEM SET autovacuum = $autovacuum_before" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    fi
    [ -n "$vacuum_pid" ] && kill "$vacuum_pid" 2>/dev/null || true
    [ -n "$rss_pid" ] && kill "$rss_pid" 2>/dev/null || true
    stop_server
    psql "$PGURL_BASE/postgres" -qc "DROP DATABASE IF EXISTS gridcall_long_run WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$AUTOVACUUM" ]; then
    autovacuum_before=$(psql "$PGURL_BASE/postgres" -Atc 'show autovacuum')
    psql "$PGURL_BASE/postgres" -qc "ALTER SYSTEM SET autovacuum = $AUTOVACUUM" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
fi
start_server "$url" "$PORT" "$work"
say "server pid $SERVER_PID on $url; autovacuum is $(psql "$url" -Atc 'show autovacuum')"
if [ "$VACUUM_EVERY" -gt 0 ]; then
    (
        while sleep "$VACUUM_EVERY"; do
            start=$(date +%s.%N)
            psql "$url" -qc "VACUUM (ANALYZE)" 2>>"$work/vacuum.log" || true
            echo "vacuum $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s" >>"$work/vacuum.log"
        done
    ) &
    vacuum_pid=$!
fi
(
    while sleep 10; do
        awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null >>"$work/rss.kb" || true
    done
) &
rss_pid=$!

say "mix, $CONNECTIONS connections, $DURATION s, 60 s windows, vacuum every ${VACUUM_EVERY}s"
load mix --url "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" --duration "$DURATION" --window 60 >"$work/mix.out" 2>&1
grep -E '^(writes/s per|RESULT)' "$work/mix.out" || tail -20 "$work/mix.out"
python3 - "$work/mix.out" "$DURATION" <<'EOF'
import re, sys
m = re.search(r"^RESULT .*\bwindows=([0-9.,]+)", open(sys.argv[1]).read(), re.M)
# Whole minutes only: the load tool's last window is the run's remainder, a few seconds long.
rates = [float(x) for x in m.group(1).split(",") if x][: int(sys.argv[2]) // 60] if m else []
if len(rates) >= 10:
    first, last = sum(rates[:5]) / 5, sum(rates[-5:]) / 5
    print(f"first five minutes {first:.0f}/s, last five {last:.0f}/s: {last / first:.0%}")
if rates:
    print(f"first minute {rates[0]:.0f}/s, last {rates[-1]:.0f}/s: {rates[-1] / rates[0]:.0%} of the first (target: within 10 %)")
    print(f"lowest {min(rates):.0f}/s ({min(rates) / rates[0]:.0%}), highest {max(rates):.0f}/s")
EOF
echo "server RSS, highest 10 s sample: $(sort -n "$work/rss.kb" | tail -1) kB"
[ -f "$work/vacuum.log" ] && echo "vacuums: $(grep -c '^vacuum' "$work/vacuum.log"), longest $(sort -k2 -n "$work/vacuum.log" | awk '/^vacuum/ {v=$2} END {print v}') s"
psql "$url" -Atc "select relname, n_live_tup, n_dead_tup from pg_stat_user_tables order by n_dead_tup desc limit 4"
