"""The ranking service's log: one size-bounded file, rotated, per home.

BentoML's server logging sends every line (access log, warnings, tracebacks) to stdout, which `make demo` and
operators redirect to a file that grows without bound. :func:`configure_service_logging`, called in the server's
worker (a startup hook of the service), adds a RotatingFileHandler at ``settings.service_log_file`` with BentoML's
format and trace filter to the root and ``bentoml`` loggers, and leaves only errors on the console.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from shoprank.settings import Settings

# The loggers BentoML's server config gives a console handler; ``bentoml`` does not propagate to the root.
_LOGGERS = ("", "bentoml")


class _ServiceLogHandler(RotatingFileHandler):
    """Marks the handler this module added, so a second call adds none."""


def configure_service_logging(settings: Settings) -> Path | None:
    """Send the service's log lines (INFO and up; ``shoprank`` loggers at INFO) to a rotated file; the console
    handlers keep ERROR and up. Returns the file, or None when ``service_log_max_bytes`` is 0 (nothing changed)."""
    cfg = settings.serving
    if cfg.service_log_max_bytes == 0:
        return None
    path = settings.service_log_file
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    if any(isinstance(h, _ServiceLogHandler) for logger in loggers for h in logger.handlers):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _ServiceLogHandler(
        path, maxBytes=cfg.service_log_max_bytes, backupCount=cfg.service_log_backups, encoding="utf-8"
    )
    handler.setLevel(logging.INFO)
    console = [
        h
        for logger in loggers
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    if console:  # BentoML's format needs its filter (it adds the trace and component fields)
        handler.setFormatter(console[0].formatter)
        for log_filter in console[0].filters:
            handler.addFilter(log_filter)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    for stream in console:
        stream.setLevel(max(stream.level, logging.ERROR))
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("shoprank").setLevel(logging.INFO)
    return path
