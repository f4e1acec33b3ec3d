#!/usr/bin/env bash
# `make demo`: run shoprank_daily end to end with `airflow dags test`, serve the new model, rank one feed, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
eval "$($BIN/shoprank env)"
RUN_DATE=$($BIN/python -c 'from shoprank.settings import get_settings; print(get_settings().default_run_date)')
LOGICAL_DATE=$($BIN/python -c "import datetime; print(datetime.date.fromisoformat('$RUN_DATE') + datetime.timedelta(days=1))")
PORT=$($BIN/python -c 'from shoprank.settings import get_settings; print(get_settings().serving.port)')
LOG_DIR="$SHOPRANK_HOME/logs"; mkdir -p "$LOG_DIR"
started=$SECONDS

echo "==> [demo] airflow dags test shoprank_daily $LOGICAL_DATE (processes $RUN_DATE; log: $LOG_DIR/dag-test.log)"
if ! $BIN/airflow dags test shoprank_daily "$LOGICAL_DATE" > "$LOG_DIR/dag-test.log" 2>&1; then
    tail -40 "$LOG_DIR/dag-test.log"; echo "==> [demo] the DAG run failed (full log above)"; exit 1
fi
STATE=$($BIN/airflow dags state shoprank_daily "$LOGICAL_DATE" 2>/dev/null | tail -1)
echo "==> [demo] DAG run finished in $((SECONDS - started)) s with state: $STATE; registered models:"
$BIN/shoprank models 2>/dev/null | head -20

echo "==> [demo] starting the ranking service on 127.0.0.1:$PORT (log: $LOG_DIR/serve.log, console: serve-console.log)"
$BIN/shoprank serve > "$LOG_DIR/serve-console.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
    curl -fs "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1 && break
    kill -0 $SERVER 2>/dev/null || { tail -30 "$LOG_DIR/serve-console.log"; exit 1; }
    sleep 1
done
echo "==> [demo] POST /rank for user u000001, k=10"
$BIN/shoprank rank --user-id u000001 --k 10
echo "==> [demo] done in $((SECONDS - started)) s; the service is stopped. 'make serve' keeps it up, 'make airflow' opens the UI."
