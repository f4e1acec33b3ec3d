"""Helpers shared by the benchmarks (`make bench`, `make bench-serving`): the bench home, printing, and a
`shoprank serve` process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.processes import background_server, free_port

BENCH_HOME = Path(__file__).resolve().parents[1] / "var" / "bench"


def bench_settings() -> Any:
    """The settings of the bench home (var/bench unless SHOPRANK_HOME says otherwise), directories created."""
    os.environ.setdefault("SHOPRANK_HOME", str(BENCH_HOME))
    from shoprank.settings import apply_runtime_env, get_settings

    settings = get_settings()
    settings.ensure_dirs()
    apply_runtime_env(settings)
    return settings


def line(name: str, value: str) -> None:
    print(f"  {name:<44} {value}", flush=True)


def quantiles_ms(timings: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p95, p99) of timings in ms."""
    q = statistics.quantiles(timings, n=100, method="inclusive")
    return q[49], q[94], q[98]


def fmt_quantiles(timings: Sequence[float]) -> str:
    p50, p95, p99 = quantiles_ms(timings)
    return f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms"


def has_model(settings: Any) -> bool:
    return any((settings.model_store_dir / "models" / settings.training.model_name).glob("*/model.yaml"))


def run_pipeline(settings: Any, skip: Sequence[str] = ("simulate",)) -> dict[str, float]:
    """Every pipeline step (but ``skip``) for the default run date; returns the wall time of each."""
    from orchestration import pipeline

    times = {}
    for name, step in pipeline.STEPS.items():
        if name in skip:
            continue
        started = time.perf_counter()
        step(settings.default_run_date)
        times[name] = time.perf_counter() - started
    return times


@contextlib.contextmanager
def serving_process(
    settings: Any, env: dict[str, str] | None = None, ready_timeout: float = 90.0
) -> Iterator[tuple[str, Any]]:
    """`shoprank serve` on a free loopback port; yields its URL and process once /readyz answers; stopped on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with background_server(
        [str(Path(sys.executable).with_name("shoprank")), "serve", "--port", str(port)],
        ready_url=f"{base}/readyz",
        log_path=settings.home_dir / "bench-serve.log",
        env={**os.environ, **settings.runtime_env(), **(env or {})},
        ready_timeout=ready_timeout,
    ) as process:
        import psutil

        with contextlib.suppress(psutil.Error):  # once ready: BentoML's workers run in sessions of their own too
            for pid in [process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))]:
                share_autogroup_nice(pid)
        yield base, process


def autogroup_nice(path: Path = Path("/proc/self/autogroup")) -> int | None:
    """The scheduling nice of a process's autogroup (``/autogroup-123 nice -10``), None without autogroups."""
    try:
        return int(path.read_text().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


def share_autogroup_nice(pid: int, proc: Path = Path("/proc")) -> None:
    """Give the session of ``pid`` (the server, each of its workers) the bench's autogroup nice. With the kernel's
    autogroups on (sched_autogroup_enabled), ``nice`` ranks a process only inside its session; `shoprank serve` starts
    its own and BentoML's workers one each, so a bench run under ``nice -n -10`` would leave its server at an equal
    share of the cores with every other session. Set the bench's with ``echo -10 > /proc/self/autogroup`` (root)
    first; a bench at the default 0 leaves the server's alone."""
    nice = autogroup_nice(proc / "self" / "autogroup")
    if nice is None or nice == 0:
        return
    with contextlib.suppress(OSError):
        (proc / str(pid) / "autogroup").write_text(str(nice))


@contextlib.contextmanager
def serving(settings: Any, env: dict[str, str] | None = None, ready_timeout: float = 90.0) -> Iterator[str]:
    """`shoprank serve` on a free loopback port; yields its base URL once /readyz answers; stopped on exit."""
    with serving_process(settings, env, ready_timeout) as (base, _process):
        yield base


def time_calls(fn: Callable[[], Any], n: int) -> list[float]:
    """Milliseconds of each of ``n`` calls of ``fn``, after one warm-up call."""
    fn()
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def rank_throughput(base: str, body: dict, concurrency: int, seconds: float) -> float:
    """Requests per second of POST /rank from ``concurrency`` clients, each looping for ``seconds`` (bounded)."""
    import httpx

    def worker(_: int) -> int:
        done = 0
        stop = time.monotonic() + seconds
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.monotonic() < stop:
                client.post("/rank", json=body).raise_for_status()
                done += 1
        return done

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(worker, range(concurrency))) / seconds
