"""`make bench-scale`: every step of `shoprank run` at 1M and 10M events, each its own process; printed, never asserted.

For each size, in a fresh home under var/bench-scale/ (or $SHOPRANK_HOME/bench-scale): the run day D, then the
incremental next day D+1 (simulate D+1 into the same home, every step again). Each step is `shoprank <step>
--run-date ...` as a subprocess, so its wall time, CPU time and peak RSS (os.wait4: that child's own rusage, its
waited-for children included) are the step's alone. The memory budget (settings.resources.memory_budget_gib,
--budget-gib) is passed to every step; the table marks a step whose peak RSS went above it. The issue-13 targets:
no step above 6 GiB, the whole run under 15 minutes at 10M events and under 3 minutes at 1M.

The machine may be shared: CPU time is printed beside wall time (the load-free figure), and the load average before
and after each size says how busy it was.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1_000_000, 10_000_000)
LARGE = 30_000_000


@dataclass
class Measure:
    wall: float
    cpu: float
    peak_mib: float
    ok: bool


def steps() -> list[str]:
    from orchestration.pipeline import STEPS

    return list(STEPS)


def run_step(step: str, day: date, env: dict[str, str], events: int, logs: Path) -> Measure:
    """One step as its own process; output to ``logs/<day>-<step>.log``."""
    cmd = [sys.executable, "-m", "orchestration.cli", step, "--run-date", day.isoformat()]
    if step == "simulate":
        cmd += ["--events", str(events)]
    log = logs / f"{day}-{step}.log"
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    ok = os.waitstatus_to_exitcode(status) == 0
    if not ok:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        print(f"    {step} {day} failed (exit {os.waitstatus_to_exitcode(status)}), log {log}:", flush=True)
        print("\n".join(f"      {t}" for t in tail), flush=True)
    return Measure(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, ok)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min, {os.cpu_count()} cores)"


def bench_size(
    events: int, base: Path, run_date: date, budget_gib: float, reuse: bool
) -> dict[str, dict[str, Measure]]:
    home = base / f"events-{events}"
    if home.exists() and not reuse:
        shutil.rmtree(home)
    logs = home / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SHOPRANK_HOME": str(home),
        "SHOPRANK_SIMULATOR__EVENTS": str(events),
        "SHOPRANK_RESOURCES__MEMORY_BUDGET_GIB": str(budget_gib),
    }
    env.pop("SHOPRANK_WAREHOUSE_MEMORY_LIMIT", None)  # the budget sizes DuckDB, unless set on purpose below
    print(f"\n{events:,} events, home {home}; {load()}", flush=True)
    results: dict[str, dict[str, Measure]] = {}
    for label, day in (("day", run_date), ("next day", run_date + timedelta(days=1))):
        results[label] = {}
        for step in steps():
            measure = run_step(step, day, env, events, logs)
            results[label][step] = measure
            print(
                f"    {label:<8} {step:<16} {measure.wall:7.1f} s wall {measure.cpu:7.1f} s CPU"
                f" {measure.peak_mib:8,.0f} MiB peak",
                flush=True,
            )
            if not measure.ok:
                return results
    print(f"  done; {load()}", flush=True)
    return results


def next_day_share(results: dict[str, dict[str, Measure]], step: str = "build-warehouse") -> tuple[float, float] | None:
    """The next day's wall and CPU time of ``step`` as shares of the first day's (all history): issue 13 wants the
    incremental build-warehouse at most a third. None unless both days ran the step to the end."""
    first, next_day = results.get("day", {}).get(step), results.get("next day", {}).get(step)
    if first is None or next_day is None or not (first.ok and next_day.ok) or first.wall <= 0 or first.cpu <= 0:
        return None
    return next_day.wall / first.wall, next_day.cpu / first.cpu


def table(events: int, results: dict[str, dict[str, Measure]], budget_gib: float) -> None:
    budget_mib = budget_gib * 1024
    labels = list(results)
    print(
        f"\n{events:,} events, per step: wall s, CPU s, peak RSS MiB (* above the {budget_gib:g} GiB budget, ! failed)"
    )
    print(f"  {'':<16}" + "".join(f" | {label:<28}" for label in labels))
    print(f"  {'step':<16}" + "".join(f" | {'wall':>7} {'CPU':>7} {'peak MiB':>11} " for _ in labels))
    for step in steps():
        cells = []
        for label in labels:
            m = results[label].get(step)
            if m is None:
                cells.append(f" | {'-':>7} {'-':>7} {'-':>11} ")
                continue
            mark = "!" if not m.ok else "*" if m.peak_mib > budget_mib else " "
            cells.append(f" | {m.wall:7.1f} {m.cpu:7.1f} {m.peak_mib:11,.0f}{mark}")
        print(f"  {step:<16}{''.join(cells)}")
    totals = []
    for label in labels:
        done = results[label].values()
        peak = max((m.peak_mib for m in done), default=0.0)
        totals.append(f" | {sum(m.wall for m in done):7.1f} {sum(m.cpu for m in done):7.1f} {peak:11,.0f} ")
    print(f"  {'total (max)':<16}{''.join(totals)}")
    share = next_day_share(results)
    if share is not None:
        print(f"  next day's build-warehouse: {share[0]:.2f} of the first day's wall, {share[1]:.2f} of its CPU")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=list(SIZES), help="sizes (default 1M and 10M)")
    parser.add_argument("--with-30m", action="store_true", help=f"also {LARGE:,} events (long: an hour or more)")
    parser.add_argument("--budget-gib", type=float, default=6.0, help="SHOPRANK_RESOURCES__MEMORY_BUDGET_GIB per step")
    parser.add_argument("--run-date", type=date.fromisoformat, default=date(2026, 1, 7))
    parser.add_argument("--reuse", action="store_true", help="keep an existing home (default: start fresh)")
    args = parser.parse_args(argv)
    sizes = [*args.events, *([LARGE] if args.with_30m else [])]
    base = Path(os.environ.get("SHOPRANK_HOME", ROOT / "var")) / "bench-scale"
    print(f"bench-scale: every step of `shoprank run` as its own process, {sizes} events, budget {args.budget_gib} GiB")
    every = {events: bench_size(events, base, args.run_date, args.budget_gib, args.reuse) for events in sizes}
    for events, results in every.items():
        table(events, results, args.budget_gib)


if __name__ == "__main__":
    main()
