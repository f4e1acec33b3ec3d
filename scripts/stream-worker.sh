#!/usr/bin/env bash
# The services profile's stream worker in the background, like `make services-up` starts its servers:
# `scripts/stream-worker.sh start|stop|status`. `make stream-worker` runs it in the foreground instead.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
eval "$($BIN/shoprank env)"
STATE_DIR="$SHOPRANK_HOME/services"; LOG_DIR="$SHOPRANK_HOME/logs"; mkdir -p "$STATE_DIR" "$LOG_DIR"
PID_FILE="$STATE_DIR/stream-worker.pid"

running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

case "${1:-}" in
    start)
        if running; then echo "==> [stream-worker] already running (pid $(cat "$PID_FILE"))"; exit 0; fi
        nohup $BIN/shoprank stream-worker >> "$LOG_DIR/stream-worker.log" 2>&1 &
        echo $! > "$PID_FILE"
        echo "==> [stream-worker] started (pid $!, log: $LOG_DIR/stream-worker.log)" ;;
    stop)
        if running; then
            kill -TERM "$(cat "$PID_FILE")"  # finishes its batch, acknowledges, exits
            for _ in $(seq 1 30); do running || break; sleep 0.5; done
            echo "==> [stream-worker] stopped"
        fi
        rm -f "$PID_FILE" ;;
    status) running && echo "stream-worker: up (pid $(cat "$PID_FILE"))" || echo "stream-worker: down" ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
