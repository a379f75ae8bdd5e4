#!/usr/bin/env bash
# Crash drill: kill -9 of the server during load, then a restart. Passes when every order whose
# create was answered 2xx is there, whole (its events, its status as its last transition event
# says, its timers), on the database given.
#
#     tools/drill-kill.sh sqlite
#     tools/drill-kill.sh postgres          # a fresh database gc_drill on 127.0.0.1:5432
cd "$(dirname "$0")/.."
. tools/lib.sh
db=${1:-sqlite}
work=$(mktemp -d /tmp/gridcall-drill.XXXXXX)
trap 'stop_server; rm -rf "$work"' EXIT
build
case $db in
    sqlite) url=$work/drill.db ;;
    postgres) url=$(fresh_pg gc_drill) ;;
    *) echo "usage: $0 sqlite|postgres" >&2; exit 2 ;;
esac
port=18181
start_server "$url" "$port" "$work"
say "load (lifecycle mix) for 20 s; the server is killed with SIGKILL 8 s into it"
load mix --url "http://127.0.0.1:$port" --duration 20 --tolerate-errors --acked "$work/acked" >"$work/load.out" 2>&1 &
load_pid=$!
wait_measuring "$work/load.out"
sleep 8
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
say "killed; restarting"
sleep 1
start_server "$url" "$port" "$work"
wait $load_pid || true
grep -E '^(mix|RESULT)' "$work/load.out" >&2 || cat "$work/load.out" >&2
acked=$(wc -l <"$work/acked")
say "$acked orders were acknowledged; verifying each after the restart"
if load verify --url "http://127.0.0.1:$port" --acked "$work/acked" >"$work/verify.out" 2>&1; then
    tail -2 "$work/verify.out" >&2
    echo "PASS drill-kill $db: $acked acknowledged orders, none lost or half-applied"
else
    cat "$work/verify.out" >&2
    echo "FAIL drill-kill $db"
    exit 1
fi
if [ "$db" = postgres ]; then psql "$PGURL_BASE/postgres" -qc "DROP DATABASE gc_drill WITH (FORCE)"; fi
