#!/usr/bin/env bash
# `make airflow`: Airflow's API server (UI), scheduler, DAG processor and triggerer (and, on the cluster profile's
# CeleryExecutor, two Celery workers), in the foreground; Ctrl-C stops all.
# Not `airflow standalone`: its log servers listen on every interface (ports 8793/8794). With the LocalExecutor the
# API server reads task logs from the local disk, so the log servers are skipped and everything stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PATH="$PWD/$BIN:$PATH"
eval "$($BIN/shoprank env)"
LOG_DIR="$AIRFLOW_HOME/logs/processes"; mkdir -p "$LOG_DIR"
USER_NAME=$($BIN/python -c 'from shoprank.settings import get_settings; print(get_settings().airflow.admin_user)')

pids=()
dask_started=""
stop() {  # Dask before the wait: its processes have their own sessions, and a caller may not wait for Airflow's exit
    kill "${pids[@]}" 2>/dev/null || true
    if [ -n "$dask_started" ]; then $BIN/python -m orchestration.dask_cluster down || true; fi
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# The cluster profile's train step fits through xgboost.dask: a Dask scheduler + workers on loopback (make dask-up;
# one already answering is used), its address exported into the settings before the workers that run `train` start.
# An address already set in the environment (a real cluster) wins.
read -r PROFILE_NAME DASK_ADDRESS < <($BIN/python -c 'from shoprank.settings import get_settings
s = get_settings(); print(s.profile, s.training.dask_scheduler_address or "-")')
if [ "$PROFILE_NAME" = "cluster" ] && [ "$DASK_ADDRESS" = "-" ]; then
    $BIN/python -m orchestration.dask_cluster status | grep -q "dask: down" && dask_started=1
    dask_env=$($BIN/python -m orchestration.dask_cluster up)  # an assignment, so set -e stops on a failed start
    eval "$dask_env"
    echo "==> [airflow] train fits through xgboost.dask at $SHOPRANK_TRAINING__DASK_SCHEDULER_ADDRESS"
fi

# On the CeleryExecutor every component runs through orchestration/celery_compat.py (celery 5.7 vs the provider).
if [ "$AIRFLOW__CORE__EXECUTOR" = "CeleryExecutor" ]; then
    airflow() { "$BIN/python" -m orchestration.celery_compat "$@"; }
fi
airflow api-server --host "$AIRFLOW__API__HOST" --port "$AIRFLOW__API__PORT" --workers 1 > "$LOG_DIR/api-server.log" 2>&1 &
pids+=($!)
airflow scheduler --skip-serve-logs > "$LOG_DIR/scheduler.log" 2>&1 & pids+=($!)
airflow dag-processor > "$LOG_DIR/dag-processor.log" 2>&1 & pids+=($!)
airflow triggerer --skip-serve-logs > "$LOG_DIR/triggerer.log" 2>&1 & pids+=($!)
# CeleryExecutor (the cluster profile): its two workers, as orchestration/airflow_ops.celery_worker_commands says.
if [ "$AIRFLOW__CORE__EXECUTOR" = "CeleryExecutor" ]; then
    n=0
    while IFS= read -r command; do
        n=$((n + 1)); eval "$command" > "$LOG_DIR/celery-worker-$n.log" 2>&1 & pids+=($!)
    done < <($BIN/python -c 'import shlex; from orchestration.airflow_ops import celery_worker_commands as c
from shoprank.settings import get_settings
print("\n".join(shlex.join(command) for command in c(get_settings())))')
    echo "==> [airflow] CeleryExecutor: $n workers (broker $AIRFLOW__CELERY__BROKER_URL)"
fi

echo "==> [airflow] starting (logs: $LOG_DIR)"
for _ in $(seq 1 90); do
    curl -fs "$AIRFLOW__API__BASE_URL/api/v2/version" > /dev/null 2>&1 && break
    sleep 1
done
echo "==> [airflow] UI: $AIRFLOW__API__BASE_URL  user: $USER_NAME  password: in $AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
echo "==> [airflow] backfill: make backfill START=YYYY-MM-DD END=YYYY-MM-DD (runs start once shoprank_daily is unpaused)"
echo "==> [airflow] Ctrl-C stops it"
wait -n "${pids[@]}"
echo "==> [airflow] a component exited; stopping the rest (see $LOG_DIR)"
