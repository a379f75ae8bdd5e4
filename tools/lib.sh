# Shared by tools/*.sh: build, start and stop a gridcall server for benchmarks and drills.
# Source it; it expects to run from the repository root.
set -euo pipefail

PGURL_BASE=${PGURL_BASE:-postgres://postgres@127.0.0.1:5432}
# The server (and the peer) get core 1, the load tool (and pgbench) core 0; PostgreSQL floats
# (TOOLING.md: they share 2 cores, pin them). SERVER_CPUS=0,1 lets the server (and the peer) use
# either core, as PostgreSQL does: pinned, the server cannot use the time core 0 has left
# (docs/benchmarks.md, thirteenth session).
SERVER_CPUS=${SERVER_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-0}
ADMIN_PASSWORD=${GRIDCALL_LOAD_ADMIN_PASSWORD:-Load-admin-pass-1}
export GRIDCALL_LOAD_ADMIN_PASSWORD=$ADMIN_PASSWORD

say() { echo "== $*" >&2; }

# Builds the release server and the load tool; sets GRIDCALL and LOAD.
build() {
    say "building (release)"
    cargo build --release --quiet
    GRIDCALL=target/release/gridcall
    build_load
}

# Builds the load tool (benches/load.rs) alone; sets LOAD.
build_load() {
    cargo bench --bench load --no-run --quiet 2>/dev/null || cargo bench --bench load --no-run
    LOAD=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="load" and m.get("executable"):
        print(m["executable"])')
    [ -x "$LOAD" ] || { echo "load tool not built" >&2; exit 1; }
}

# fresh_pg NAME: drops and creates database NAME; prints its URL.
fresh_pg() {
    psql "$PGURL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
    psql "$PGURL_BASE/postgres" -qc "CREATE DATABASE $1" >/dev/null
    echo "$PGURL_BASE/$1"
}

# start_server DATABASE_URL PORT WORKDIR: starts gridcall (admin created first), waits until
# it answers; sets SERVER_PID.
start_server() {
    local url=$1 port=$2 dir=$3
    mkdir -p "$dir"
    export DATABASE_URL=$url GRIDCALL__MAIL__DIR=$dir/mail GRIDCALL__SERVER__BIND=127.0.0.1:$port
    if ! echo "$ADMIN_PASSWORD" | $GRIDCALL user create --username admin --role admin --password-stdin >/dev/null 2>>"$dir/server.log"; then
        say "admin exists already (or could not be made); see $dir/server.log"
    fi
    taskset -c "$SERVER_CPUS" $GRIDCALL serve >>"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$port"
}

wait_ready() {
    for _ in $(seq 1 300); do
        if curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "server on port $1 did not become ready" >&2
    return 1
}

stop_server() {
    if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}

# load ARGS…: runs the load tool on its core.
load() {
    taskset -c "$LOAD_CPUS" "$LOAD" "$@"
}

# result KEY FILE: a value from the RESULT line of a load tool's output.
result() {
    grep '^RESULT' "$2" | tail -1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# wait_measuring FILE: waits until the load tool writing FILE has set up and started measuring.
wait_measuring() {
    for _ in $(seq 1 600); do
        grep -q '^measuring' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the load tool did not start measuring" >&2
    return 1
}
