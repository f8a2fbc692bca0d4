#!/usr/bin/env bash
# Screenshot of optuna-dashboard on a design search; writes docs/design_dashboard.png.
#
#   apt-get install -y chromium && pip install optuna-dashboard
#   bash docs/screenshot_dashboard.sh [results/headline_score.db]
#
# Serves a copy of the search's SQLite store (the dashboard may write to it) on 127.0.0.1:PORT
# (default 8123) and has headless Chromium take the picture of its first study.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
store="${1:-results/headline_score.db}"
port="${PORT:-8123}"
work="$(mktemp -d)"
cp "${store}" "${work}/search.db"
optuna-dashboard "sqlite:///${work}/search.db" --host 127.0.0.1 --port "${port}" \
    >"${work}/dashboard.log" 2>&1 &
dashboard_pid=$!
trap 'kill "${dashboard_pid}"' EXIT
for _ in $(seq 60); do
    curl -fs "http://127.0.0.1:${port}/api/studies" >/dev/null && break
    sleep 0.5
done
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="${work}/chromium" --window-size=1400,1000 --virtual-time-budget=15000 \
    --screenshot="${OUT:-docs/design_dashboard.png}" "http://127.0.0.1:${port}/dashboard/studies/1"
