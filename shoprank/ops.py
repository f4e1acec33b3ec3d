"""Operator plumbing: Airflow's login and metadata DB, and the databases of the `services` profile."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

from shoprank.settings import Settings

log = logging.getLogger(__name__)


def ensure_airflow_login(settings: Settings) -> str:
    """Write Airflow's simple-auth password file; return the admin password.

    The password is settings.airflow.admin_password when set (from the environment, never the repo); otherwise the
    one already in the file, otherwise a new random one. The file is readable by its owner only.
    """
    path = settings.airflow_passwords_file
    user = settings.airflow.admin_user
    if settings.airflow.admin_password is not None:
        password = settings.airflow.admin_password.get_secret_value()
    elif path.exists():
        password = json.loads(path.read_text()).get(user) or secrets.token_urlsafe(12)
    else:
        password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({user: password}))
    path.chmod(0o600)
    return password


def ensure_postgres_database(settings: Settings, database: str) -> bool:
    """Create ``database`` on the services profile's PostgreSQL if missing; True when it was created."""
    import psycopg
    from psycopg import sql

    admin_url = settings.services.postgres_url("postgres", driver="postgresql")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
        log.info("created database %s", database)
        return True


def init_airflow(settings: Settings) -> dict[str, str]:
    """Everything Airflow needs before it starts: home, login, metadata DB (created on PostgreSQL), migrations."""
    settings.ensure_dirs()
    ensure_airflow_login(settings)
    if settings.profile == "services":
        ensure_postgres_database(settings, settings.services.airflow_database)
    env = {**os.environ, **settings.runtime_env()}
    log_path = settings.airflow_home / "db-migrate.log"
    with log_path.open("w") as out:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env, stdout=out, stderr=out
        )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed; see {log_path}")
    return {
        "airflow_home": str(settings.airflow_home),
        "metadata_db": env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:{settings.airflow_home}/airflow.db"),
        "login_user": settings.airflow.admin_user,
        "password_file": str(settings.airflow_passwords_file),
    }
