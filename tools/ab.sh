#!/usr/bin/env bash
# Two server binaries compared in the same minutes: each round runs A, then B, each on a fresh
# PostgreSQL database, with the same load; prints each run's rate, p99 and the machine's CPU
# per write (from /proc/stat, all cores). The machine's speed drifts (docs/benchmarks.md), so
# only pairs made this way say anything about a change.
#
#     tools/ab.sh OLD_BINARY NEW_BINARY          # ROUNDS=3 SECS=20 SCENARIOS="create mix"
#     DB=sqlite tools/ab.sh OLD NEW              # each run on a new SQLite file instead
cd "$(dirname "$0")/.."
. tools/lib.sh
[ $# -eq 2 ] || { echo "usage: tools/ab.sh BINARY_A BINARY_B" >&2; exit 2; }
rounds=${ROUNDS:-3}
secs=${SECS:-20}
scenarios=${SCENARIOS:-"create mix"}
backend=${DB:-postgres}
port=18195
build_load
work=$(mktemp -d /tmp/gridcall-ab.XXXXXX)
cleanup() {
    stop_server
    for db in gc_ab_a gc_ab_b; do
        psql "$PGURL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
busy() { awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat; }
for round in $(seq 1 "$rounds"); do
    for which in a b; do
        if [ "$which" = a ]; then GRIDCALL=$1; else GRIDCALL=$2; fi
        if [ "$backend" = sqlite ]; then
            rm -rf "$work/$which"
            mkdir -p "$work/$which"
            url=$work/$which/gridcall.db
        else
            url=$(fresh_pg "gc_ab_$which")
        fi
        start_server "$url" "$port" "$work/$which"
        for scenario in $scenarios; do
            load "$scenario" --url "http://127.0.0.1:$port" --connections 16 --duration "$secs" >"$work/$which.$scenario" 2>&1 &
            pid=$!
            # CPU from the start of the measured window (after logins and warm-up) to the end.
            wait_measuring "$work/$which.$scenario"
            before=$(busy)
            wait "$pid"
            after=$(busy)
            writes=$(result writes_per_s "$work/$which.$scenario")
            cpu=$(python3 -c "print(f'{($after-$before)*1000/$(getconf CLK_TCK)/($writes*$secs):.2f}')")
            echo "round $round ${which^^} $scenario: $writes writes/s, p99 $(result p99_ms "$work/$which.$scenario") ms, machine CPU $cpu ms a write"
        done
        stop_server
    done
done
