"""Start a server in the background, wait until it answers, and always stop it and its children.

Used by the tests, the benchmarks and the demo path, which all run real servers (BentoML, Airflow) on loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerFailedToStart(RuntimeError):
    pass


@contextlib.contextmanager
def background_server(
    command: Sequence[str],
    ready_url: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ready_timeout: float = 90.0,
    stop_timeout: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group; yield once ``ready_url`` answers 200; then stop the whole group.

    The group is signalled (not just the process), so supervisors such as BentoML's or Airflow's never leave
    workers behind. A server that exits or stays unready raises :class:`ServerFailedToStart` with its log's tail.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise ServerFailedToStart(f"exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailedToStart(f"not ready in {ready_timeout:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield process
    finally:
        _stop_group(process, stop_timeout)


def _stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"
