"""dbt's log for the in-process build, written by a dbtRunner callback instead of dbt's own two loggers.

dbt's stdout and file loggers format and secret-scrub every event (each scrub walks ``os.environ``) before their
level check drops it, so at the default levels the thousands of debug events a build fires were formatted for
nothing: 0.8 s of the 10M next day's GIL time, 0.5 s of its wall (py-spy, docs/scale.md "Session 14"). The build
turns dbt's loggers off (``--log-level none --log-level-file none``) and hands this callback to dbtRunner, which
drops an event below the level first and formats only what it writes: the lines dbt's own loggers wrote at
``settings.dbt_log_level_file`` to ``<home>/dbt/logs/dbt.log`` (rotated as dbt rotates it), and errors to stdout
(what ``--quiet`` printed).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

LEVELS = {"debug": 10, "test": 10, "info": 20, "warn": 30, "error": 40, "none": 100}
# dbt's own rotation of dbt.log (dbt.events.logging: log_file_max_bytes, backupCount)
LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
SECRET_ENV_PREFIX = "DBT_ENV_SECRET"  # dbt_common.constants: values dbt never writes to a log
# the arguments that turn dbt's own loggers off (this callback writes the log instead)
DBT_LOGGERS_OFF = ["--log-level", "none", "--log-level-file", "none"]


class DbtEventLog:
    """A dbtRunner callback: dbt's events at ``file_level`` or above to ``log_dir/dbt.log``, errors to ``stdout``."""

    def __init__(self, log_dir: Path, file_level: str, stdout: TextIO | None = None) -> None:
        self.file_level = LEVELS[file_level]
        self.stdout = stdout or sys.stdout
        self.secrets = [v for k, v in os.environ.items() if k.startswith(SECRET_ENV_PREFIX) and v.strip()]
        self.handler: RotatingFileHandler | None = None
        if self.file_level < LEVELS["none"]:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.handler = RotatingFileHandler(
                log_dir / "dbt.log", maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
            )
        self.started = False

    def __call__(self, event: Any) -> None:
        """One dbt EventMsg (``event.info``: level, msg, ts, thread)."""
        if not self.started and self.handler is not None:  # dbt's header line of each invocation
            self.started = True
            self._write_file(f"\n\n{'=' * 30} {datetime.now(UTC):%H:%M:%S.%f} | {event.info.invocation_id} {'=' * 30}")
        level = LEVELS.get(event.info.level, LEVELS["info"])
        if level < self.file_level and level < LEVELS["error"]:
            return  # the common case, before any formatting
        text = self._scrub(event.info.msg)
        if level >= self.file_level and self.handler is not None:
            ts = event.info.ts.ToDatetime()  # a protobuf Timestamp, UTC
            self._write_file(f"{ts:%H:%M:%S.%f} [{event.info.level:<5}] [{event.info.thread}]: {text}")
        if level >= LEVELS["error"]:
            print(text, file=self.stdout, flush=True)

    def close(self) -> None:
        if self.handler is not None:
            self.handler.close()
            self.handler = None

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "*****")
        return text

    def _write_file(self, line: str) -> None:
        assert self.handler is not None
        self.handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
