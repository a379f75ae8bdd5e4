#!/usr/bin/env bash
# One run of every throughput figure of docs/benchmarks.md, on this machine, in one go:
#   1. PostgreSQL's own ceiling: pgbench doing one order's writes (tools/pgbench-create.sql),
#      before and after gridcall's PostgreSQL runs (the ratios use the mean);
#   2. gridcall on PostgreSQL and on SQLite, each from an empty database: creates, the
#      lifecycle mix (with a supervisor's live stream), and the surge;
#   3. the decay: creates on a database pre-seeded with a year (1,000,000 orders) and the
#      ratio to the empty database (SEEDED_PG_URL / SEEDED_SQLITE name seeded databases;
#      SEED=1 seeds them first with `gridcall seed`, ~9 min on PostgreSQL, ~12 on SQLite);
#   4. the peer, django-helpdesk, in a throwaway virtualenv (tools/peer-helpdesk.sh), driven
#      by the same load tool with the same connections, on both databases.
# The load tool and pgbench run on core 0, the server (and the peer) on core 1; PostgreSQL
# floats (SERVER_CPUS=0,1 lets the server and the peer float too, see tools/lib.sh). The server's
# resident memory is sampled every 0.5 s. Everything it makes is removed at the end.
#
#     tools/bench.sh                       # ~15 min; SECONDS_PER_RUN=30 CONNECTIONS=16
#     SEEDED_PG_URL=postgres://postgres@127.0.0.1:5432/year1 SEEDED_SQLITE=/tmp/y1.db tools/bench.sh
#     ONLY=pg tools/bench.sh               # pg | sqlite | peer
cd "$(dirname "$0")/.."
. tools/lib.sh
secs=${SECONDS_PER_RUN:-30}
conns=${CONNECTIONS:-16}
surge_calls=${SURGE_CALLS:-10000}
surge_secs=${SURGE_SECONDS:-60}
only=${ONLY:-all}
work=$(mktemp -d /tmp/gridcall-bench.XXXXXX)
summary=$work/summary
peer_dir=/tmp/gridcall-bench-peer
cleanup() {
    stop_server
    [ -n "${SAMPLER_PID:-}" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    tools/peer-helpdesk.sh stop --dir "$peer_dir" >/dev/null 2>&1 || true
    for db in gc_bench_ceiling gc_bench_pg; do
        psql "$PGURL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
build
: >"$summary"
row() { printf '%-44s %s\n' "$1" "$2" | tee -a "$summary" >&2; }

# Samples the server's RSS (kB) into $work/rss.max until stopped.
sample_rss() {
    (max=0; while kill -0 "$SERVER_PID" 2>/dev/null; do
        r=$(ps -o rss= -p "$SERVER_PID" 2>/dev/null | tr -d ' ' || echo 0)
        [ -n "$r" ] && [ "$r" -gt "$max" ] && max=$r && echo "$max" >"$work/rss.max"
        sleep 0.5
    done) &
    SAMPLER_PID=$!
}

# run_gridcall LABEL URL: creates, mix and surge against a server on URL's database.
run_gridcall() {
    local label=$1 url=$2 port=18190
    : >"$work/rss.max"
    start_server "$url" "$port" "$work/$label"
    sample_rss
    load create --url "http://127.0.0.1:$port" --connections "$conns" --duration "$secs" >"$work/$label.create" 2>&1
    row "$label creates/s (empty db)" "$(result creates_per_s "$work/$label.create") (p99 $(result p99_ms "$work/$label.create") ms; windows $(result windows "$work/$label.create"))"
    load mix --url "http://127.0.0.1:$port" --connections "$conns" --duration "$secs" --watch >"$work/$label.mix" 2>&1
    row "$label mix state-changing req/s" "$(result writes_per_s "$work/$label.mix") (p99 $(result p99_ms "$work/$label.mix") ms; stream p99 $(result stream_p99_ms "$work/$label.mix") ms, max $(result stream_max_ms "$work/$label.mix"), missing $(result stream_missing "$work/$label.mix"))"
    grep -A20 '^endpoint' "$work/$label.mix" | sed -n '1,/^mix/p' >&2
    load surge --url "http://127.0.0.1:$port" --calls "$surge_calls" --seconds "$surge_secs" --watch >"$work/$label.surge" 2>&1
    row "$label surge ($surge_calls calls / $surge_secs s)" "$(grep '^surge:' "$work/$label.surge" | head -1 | cut -c1-200)"
    row "$label surge answers" "p50 $(result p50_ms "$work/$label.surge") ms, p99 $(result p99_ms "$work/$label.surge") ms, failed $(result failed "$work/$label.surge"), stream p99 $(result stream_p99_ms "$work/$label.surge") ms"
    stop_server
    kill "$SAMPLER_PID" 2>/dev/null || true
    row "$label server RSS max" "$(($(cat "$work/rss.max" 2>/dev/null || echo 0) / 1024)) MB"
}

# run_seeded LABEL URL EMPTY_RATE: creates on a seeded database; prints the ratio.
run_seeded() {
    local label=$1 url=$2 empty=$3 port=18191
    start_server "$url" "$port" "$work/$label-seeded"
    load create --url "http://127.0.0.1:$port" --connections "$conns" --duration "$secs" >"$work/$label.seeded" 2>&1
    stop_server
    local seeded
    seeded=$(result creates_per_s "$work/$label.seeded")
    row "$label creates/s (1,000,000 orders seeded)" "$seeded (windows $(result windows "$work/$label.seeded"))"
    row "$label decay ratio seeded/empty" "$(python3 -c "print(f'{$seeded/$empty:.2f}')")"
}

seed_if_asked() { # seed_if_asked URL
    if [ "${SEED:-0}" = 1 ]; then
        say "seeding a year into $1"
        DATABASE_URL=$1 GRIDCALL__MAIL__DIR=$work/seed-mail $GRIDCALL seed --orders 1000000 --until "$(date -u +%Y-%m-%dT%H:00:00Z)" >&2
    fi
}

# ceiling LABEL: pgbench with one order's writes on a fresh database; prints its tx/s.
ceiling() {
    local url user
    url=$(fresh_pg gc_bench_ceiling)
    DATABASE_URL=$url $GRIDCALL migrate >/dev/null 2>&1
    psql "$url" -qc "INSERT INTO areas (code, name, region_class, backup_area_codes, calendar, created_at, updated_at) VALUES ('PGB', 'pgbench', 'urban', '[]', 'cn', now(), now())" >/dev/null
    echo "$ADMIN_PASSWORD" | DATABASE_URL=$url $GRIDCALL user create --username pgbench --role agent --password-stdin >/dev/null 2>&1
    user=$(psql "$url" -Atc "SELECT id FROM users WHERE username = 'pgbench'")
    taskset -c "$LOAD_CPUS" pgbench -n -M prepared -c "$conns" -j 2 -T "$secs" -f tools/pgbench-create.sql -D area=PGB -D "user=$user" "$url" >"$work/pgbench-$1.out" 2>&1
    sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench-$1.out" | head -1
}

if [ "$only" = all ] || [ "$only" = pg ]; then
    # The machine's speed drifts by up to half within an hour (docs/benchmarks.md): the
    # ceiling is measured before and after gridcall's runs, and the ratios use their mean.
    say "PostgreSQL ceiling (pgbench, $conns clients, $secs s), before"
    before=$(ceiling before)
    row "PostgreSQL pgbench ceiling tx/s, before" "$before"
    run_gridcall pg "$(fresh_pg gc_bench_pg)"
    say "PostgreSQL ceiling, after"
    after=$(ceiling after)
    row "PostgreSQL pgbench ceiling tx/s, after" "$after"
    ceiling=$(python3 -c "print(f'{($before+$after)/2:.1f}')")
    row "PostgreSQL pgbench ceiling, mean" "$ceiling"
    empty=$(result creates_per_s "$work/pg.create")
    row "pg creates / ceiling" "$(python3 -c "print(f'{$empty/$ceiling:.2f}')") (target >= 0.70; against before only $(python3 -c "print(f'{$empty/$before:.2f}')"))"
    row "pg mix req/s / ceiling" "$(python3 -c "print(f'{$(result writes_per_s "$work/pg.mix")/$ceiling:.2f}')") (target >= 0.50; against after only $(python3 -c "print(f'{$(result writes_per_s "$work/pg.mix")/$after:.2f}')"))"
    if [ -n "${SEEDED_PG_URL:-}" ]; then
        seed_if_asked "$SEEDED_PG_URL"
        run_seeded pg "$SEEDED_PG_URL" "$empty"
    fi
fi
if [ "$only" = all ] || [ "$only" = sqlite ]; then
    run_gridcall sqlite "$work/bench.db"
    if [ -n "${SEEDED_SQLITE:-}" ]; then
        seed_if_asked "$SEEDED_SQLITE"
        run_seeded sqlite "$SEEDED_SQLITE" "$(result creates_per_s "$work/sqlite.create")"
    fi
fi
if [ "$only" = all ] || [ "$only" = peer ]; then
    for db in postgres sqlite; do
        say "django-helpdesk on $db"
        args=(--dir "$peer_dir" --port 18199 --db "$db")
        [ "$db" = postgres ] && args+=(--pg-url "$PGURL_BASE/gc_bench_peer")
        eval "$(PEER_CPUS=$SERVER_CPUS tools/peer-helpdesk.sh start "${args[@]}")"
        load helpdesk --url "$HELPDESK_URL" --token "$HELPDESK_TOKEN" --queue "$HELPDESK_QUEUE" --connections "$conns" --duration "$secs" >"$work/peer-$db.out" 2>&1 || cat "$work/peer-$db.out" >&2
        tools/peer-helpdesk.sh stop --dir "$peer_dir" >/dev/null 2>&1
        row "django-helpdesk $db tickets/s" "$(result creates_per_s "$work/peer-$db.out") (p99 $(result p99_ms "$work/peer-$db.out") ms, failed $(result failed "$work/peer-$db.out"))"
        ours=$work/$([ "$db" = postgres ] && echo pg || echo sqlite).create
        if [ -f "$ours" ]; then
            row "gridcall / django-helpdesk on $db" "$(python3 -c "print(f'{$(result creates_per_s "$ours")/$(result creates_per_s "$work/peer-$db.out"):.1f}x')") (target >= 20x)"
        fi
    done
fi
echo
echo "== summary (SECONDS_PER_RUN=$secs, CONNECTIONS=$conns, $(nproc) cores; server on core $SERVER_CPUS, load on core $LOAD_CPUS)"
cat "$summary"
