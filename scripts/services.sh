#!/usr/bin/env bash
# `make services-up` / `make services-down`: PostgreSQL and Redis on loopback for the `services` profile.
# Installs them with apt-get where absent (Debian/Ubuntu, as root), starts what is not running, and remembers what it
# started so that `down` stops only that (a server that was already running is left alone).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
read -r PG_HOST PG_PORT PG_USER REDIS_HOST REDIS_PORT HOME_DIR < <($BIN/python -c '
from shoprank.settings import get_settings
s = get_settings(); v = s.services
print(v.postgres_host, v.postgres_port, v.postgres_user, v.redis_host, v.redis_port, s.home_dir)')
STATE_DIR="$HOME_DIR/services"; mkdir -p "$STATE_DIR"

apt_install() {
    echo "==> [services] apt-get install $*"
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null
}

postgres_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
redis_ready() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

postgres_up() {
    if postgres_ready; then echo "==> [services] PostgreSQL already on $PG_HOST:$PG_PORT"; return; fi
    command -v pg_ctlcluster > /dev/null || apt_install postgresql
    local version; version=$(ls /etc/postgresql | sort -V | tail -1)
    local conf="/etc/postgresql/$version/main"
    # Loopback only; local development trusts loopback connections (no password in the repo).
    sed -i "s/^#\?listen_addresses.*/listen_addresses = '$PG_HOST'/" "$conf/postgresql.conf"
    grep -q "shoprank-loopback" "$conf/pg_hba.conf" || \
        sed -i "1i host all all $PG_HOST/32 trust # shoprank-loopback" "$conf/pg_hba.conf"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    touch "$STATE_DIR/postgres.started"
    for _ in $(seq 1 30); do postgres_ready && break; sleep 1; done
    postgres_ready && echo "==> [services] PostgreSQL started on $PG_HOST:$PG_PORT"
}

redis_up() {
    if redis_ready; then echo "==> [services] Redis already on $REDIS_HOST:$REDIS_PORT"; return; fi
    command -v redis-server > /dev/null || apt_install redis-server
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no \
        --pidfile "$STATE_DIR/redis.pid" --logfile "$STATE_DIR/redis.log"
    touch "$STATE_DIR/redis.started"
    for _ in $(seq 1 30); do redis_ready && break; sleep 0.5; done
    redis_ready && echo "==> [services] Redis started on $REDIS_HOST:$REDIS_PORT"
}

down() {
    if [ -f "$STATE_DIR/redis.started" ]; then
        redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown nosave > /dev/null 2>&1 || true
        rm -f "$STATE_DIR/redis.started"; echo "==> [services] Redis stopped"
    fi
    if [ -f "$STATE_DIR/postgres.started" ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main stop || true
        rm -f "$STATE_DIR/postgres.started"; echo "==> [services] PostgreSQL stopped"
    fi
    echo "==> [services] down (servers this script did not start were left running)"
}

case "${1:-}" in
    up) postgres_up; redis_up ;;
    down) down ;;
    status) postgres_ready && echo "postgres: up" || echo "postgres: down"; redis_ready && echo "redis: up" || echo "redis: down" ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
