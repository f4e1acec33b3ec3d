"""Progress for the CLI's long steps: a live status line (spinner, stage, elapsed time) on a terminal, and one log
line per stage anywhere else (Airflow task logs, CI, a pipe), so nothing meant for a screen lands in a file.

The status goes to stderr, shown only when stderr is a terminal: ``shoprank train > result.json`` still shows it,
and the step's JSON on stdout stays clean either way.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

log = logging.getLogger("shoprank.progress")


def _redirect_logging(stream: TextIO) -> list[tuple[logging.StreamHandler[TextIO], TextIO]]:
    """Point the root logger's terminal handlers at ``stream`` (rich's proxy above the live line), so a step's log
    lines scroll above the status instead of tearing it; returns what to restore."""
    swapped = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stderr__, sys.__stdout__):
            previous = handler.setStream(stream)
            if previous is not None:
                swapped.append((handler, previous))
    return swapped


@contextmanager
def stage(name: str, step: int | None = None, of: int | None = None, stream: TextIO | None = None) -> Iterator[None]:
    """Run the body as one stage: ``[step/of] name`` with a spinner and elapsed time on a terminal, then a
    ✓/✗ line with its duration; off a terminal, one log line when it ends (done or failed, with the duration)."""
    stream = stream if stream is not None else sys.stderr
    label = f"[{step}/{of}] {name}" if step is not None and of is not None else name
    started = time.perf_counter()
    if not stream.isatty():
        try:
            yield
        except BaseException:
            log.info("stage %s failed after %.1f s", label, time.perf_counter() - started)
            raise
        log.info("stage %s done in %.1f s", label, time.perf_counter() - started)
        return

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=stream)
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn())
    ok = False
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            restore = _redirect_logging(sys.stderr)  # rich has replaced sys.stderr with its proxy by now
            try:
                progress.add_task(label, total=None)
                yield
                ok = True
            finally:
                for handler, previous in restore:
                    handler.setStream(previous)
    finally:
        elapsed = time.perf_counter() - started
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        console.print(f"{mark} {escape(label)} {'done' if ok else 'failed'} in {elapsed:.1f} s", highlight=False)
