#!/usr/bin/env bash
# The supervisor board's end-to-end test (issue 12): installs Debian's chromium and
# playwright-core (pinned in tests/dashboard/package-lock.json) when missing, then runs
# tests/dashboard/board.mjs against a real gridcall on a temporary SQLite database (or the
# fresh PostgreSQL database named by E2E_DATABASE_URL).
#
#   tools/dashboard-e2e.sh                              # target/debug/gridcall, no screenshots
#   GRIDCALL=target/release/gridcall SHOTS=docs/dashboard SEED_ORDERS=20000 tools/dashboard-e2e.sh
#                                     # screenshots over a seeded history (docs/dashboard/*.png)
set -euo pipefail
cd "$(dirname "$0")/.."

GRIDCALL=${GRIDCALL:-target/debug/gridcall}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

need=()
[ -x "$CHROMIUM" ] || need+=(chromium)
# a Chinese font, so that the board's labels render (in the screenshots too)
fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk' || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -d tests/dashboard/node_modules/playwright-core ]; then
    echo "== installing playwright-core (npm ci)"
    (cd tests/dashboard && npm ci --no-audit --no-fund --silent)
fi
[ -x "$GRIDCALL" ] || cargo build --quiet

args=(--bin "$GRIDCALL" --chromium "$CHROMIUM")
[ -n "${SHOTS:-}" ] && args+=(--shots "$SHOTS")
[ -n "${SEED_ORDERS:-}" ] && args+=(--seed-orders "$SEED_ORDERS")
[ -n "${E2E_DATABASE_URL:-}" ] && args+=(--database-url "$E2E_DATABASE_URL")
node tests/dashboard/board.mjs "${args[@]}"
