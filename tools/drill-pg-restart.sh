#!/usr/bin/env bash
# Crash drill: PostgreSQL stopped for 6 s during load, then started again (this restarts the
# local cluster: run it on a bench machine, not beside other work). Passes when, while the
# database is down, every request is answered 503 (no 500, no hang past the client's 30 s),
# and creates succeed again within 5 s of the database's return, with no process restart.
#
#     tools/drill-pg-restart.sh
cd "$(dirname "$0")/.."
. tools/lib.sh
work=$(mktemp -d /tmp/gridcall-drill.XXXXXX)
trap 'stop_server; rm -rf "$work"' EXIT
cluster=${PG_CLUSTER:-15 main}
build
url=$(fresh_pg gc_drill)
port=18182
start_server "$url" "$port" "$work"
say "load (creates) for 24 s in 1 s windows; PostgreSQL stops 6 s in, for 6 s"
load create --url "http://127.0.0.1:$port" --duration 24 --window 1 --tolerate-errors >"$work/load.out" 2>&1 &
load_pid=$!
wait_measuring "$work/load.out"
sleep 6
down_ms=$(date +%s%3N)
pg_ctlcluster $cluster stop -m fast
sleep 6
pg_ctlcluster $cluster start
back_ms=$(date +%s%3N)
say "PostgreSQL was down for $(((back_ms - down_ms) / 1000)) s"
wait $load_pid || true
grep -E '^(create|failure|writes|RESULT)' "$work/load.out" >&2 || cat "$work/load.out" >&2
t0=$(result t0_ms "$work/load.out")
windows=$(result windows "$work/load.out")
statuses=$(result failed_by_status "$work/load.out")
alive=yes
kill -0 "$SERVER_PID" 2>/dev/null || alive=no
verdict=$(python3 - "$t0" "$down_ms" "$back_ms" "$windows" "$statuses" "$alive" <<'PY'
import sys
t0, down, back = (int(x) for x in sys.argv[1:4])
windows = [int(x) for x in sys.argv[4].split(",")]
statuses = dict(s.split(":") for s in sys.argv[5].split(",") if ":" in s)
alive = sys.argv[6] == "yes"
problems = []
bad = {k: v for k, v in statuses.items() if k != "503"}
if bad:
    problems.append(f"answers other than 503 while the database was away: {bad}")
if not alive:
    problems.append("the server process exited")
# first 1 s window after the return with successful creates
first = next((i for i in range(len(windows)) if t0 + i * 1000 >= back and windows[i] > 0), None)
ok_after = None if first is None else (t0 + first * 1000 - back) / 1000 + 1
if ok_after is None or ok_after > 5:
    problems.append(f"creates resumed {ok_after} s after the return (want <= 5 s)")
print(("PASS" if not problems else "FAIL") + f" drill-pg-restart: 503s {statuses.get('503', 0)}, other failures {bad or 0}, creates succeeding again within {ok_after} s of the return" + "".join("; " + p for p in problems))
PY
)
echo "$verdict"
psql "$PGURL_BASE/postgres" -qc "DROP DATABASE gc_drill WITH (FORCE)" || true
case $verdict in PASS*) exit 0 ;; *) exit 1 ;; esac
