"""The services profile's PostgreSQL databases (Airflow metadata, warehouse, Feast registry)."""

from __future__ import annotations

import logging

from shoprank.settings import Settings

log = logging.getLogger(__name__)


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
