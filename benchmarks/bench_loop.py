"""`make bench-loop`: the four policies over N served days of the closed-loop marketplace (orchestration/loop.py).
Printed, never asserted.

The warm-up (the logged history and the daily pipeline on it, the first champion) is the same for every policy:
it is built once (`shoprank loop --warm-up`, in ``--out``/_warm, or reused with ``--warm-home``) and each policy
runs as its own `shoprank loop --warm-home` process from a copy of it, in its own home under ``--out``, with the
same seed and small world (so they face the same users, requests, arrivals and restocks), ``--jobs`` at a time.
Then the table (with regret against the oracle and the issue's acceptance checks against model-only), the HTML
report with the charts (cumulative GMV, coverage, new-seller survival) and the bench's own run time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestration.loop import cadence
from orchestration.loop_policies import POLICIES
from orchestration.loop_report import format_table, load_run, verdicts, with_regret, write_report

# A small world: few sellers, so a new seller (about one a day) gets listings of its own and survival can be judged.
# The drift gate warns but does not block: switching from the logging policy to a served one moves the impressions'
# feature distributions by design (user_category_affinity's PSI exceeds 1 on the first served day).
SMALL_WORLD = {
    "SHOPRANK_SIMULATOR__DAYS": "5",
    "SHOPRANK_SIMULATOR__USERS": "400",
    "SHOPRANK_SIMULATOR__SELLERS": "20",
    "SHOPRANK_SIMULATOR__ITEMS": "300",
    "SHOPRANK_SIMULATOR__REQUESTS_PER_DAY": "400",
    "SHOPRANK_TRAINING__N_ESTIMATORS": "40",
    "SHOPRANK_QUALITY__DRIFT_BLOCK_PSI": "100",
    "SHOPRANK_QUALITY__BUILD_DATA_DOCS": "false",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument(
        "--retrain-every",
        type=int,
        default=7,
        help="days between retrainings (production: 1; 0: never, the warm-up's champion serves every day)",
    )
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="an extra run NAME=POLICY:SECTION.KEY=VALUE,... (e.g. lean=learned:mixing.enabled=false)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="policies run at once")
    parser.add_argument(
        "--survival-days",
        type=int,
        default=7,
        help="new-seller survival window (loop.survival_days; runs < 2x it judge few)",
    )
    parser.add_argument("--out", type=Path, default=None, help="a directory for the homes and the report")
    parser.add_argument("--warm-home", type=Path, default=None, help="reuse the warm-up built there by a bench run")
    parser.add_argument(
        "--collect", action="store_true", help="run nothing: summarize the runs under --out over the days they served"
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="shoprank-bench-loop-"))
    out.mkdir(parents=True, exist_ok=True)  # a new --out (and its parents) is created, not required
    runs_to_do: dict[str, tuple[str, list[str]]] = {p: (p, []) for p in args.policies.split(",") if p}
    for variant in args.variant:
        name, _, spec = variant.partition("=")
        policy, _, settings = spec.partition(":")
        runs_to_do[name] = (policy, [s for s in settings.split(",") if s])
    policies = list(runs_to_do)
    extra_env = {"SHOPRANK_LOOP__SURVIVAL_DAYS": str(args.survival_days)}
    started = time.perf_counter()
    print(
        f"bench-loop: {', '.join(policies)} over {args.days} served days, {cadence(args.retrain_every, args.days)}, "
        f"world {SMALL_WORLD}, homes under {out}",
        flush=True,
    )
    pending = list(policies)
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    failed = []
    if args.collect:
        pending = []
        os.environ.update(extra_env)
        _collect(out, policies)
    else:
        warm_home = args.warm_home or _warm_up(out, {**os.environ, **SMALL_WORLD, **extra_env})
    while pending or running:
        while pending and len(running) < args.jobs:
            policy = pending.pop(0)
            home = out / policy
            home.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **SMALL_WORLD, **extra_env, "SHOPRANK_HOME": str(home)}
            log = (out / f"{policy}.log").open("w")
            kind, rule_settings = runs_to_do[policy]
            command = [str(Path(sys.executable).parent / "shoprank"), "loop", "--policy", kind, "--name", policy]
            command += ["--days", str(args.days), "--retrain-every", str(args.retrain_every)]
            command += ["--warm-home", str(warm_home)]
            command += [arg for setting in rule_settings for arg in ("--rule", setting)]
            running[policy] = (subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log)
            print(f"  started {policy} (log {out / f'{policy}.log'})", flush=True)
        time.sleep(5)
        for policy, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()  # type: ignore[attr-defined]
                del running[policy]
                status = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode})"
                if process.returncode:
                    failed.append(policy)
                print(f"  {policy} {status} at {time.perf_counter() - started:.0f} s", flush=True)
    runs = {p: load_run(out / p / "loop" / p) for p in policies if p not in failed}
    summaries = with_regret({p: s for p, (s, _) in runs.items()})
    print()
    print(format_table(summaries))
    print()
    for name, checks in verdicts(summaries).items():
        print(f"{name}: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in checks.items()))
    elapsed = time.perf_counter() - started
    note = (
        f"{len(summaries)} policies x {args.days} served days; {cadence(args.retrain_every, args.days)}; "
        f"world {SMALL_WORLD}; bench run time {elapsed:.0f} s"
    )
    report = write_report(out / "loop-report.html", summaries, {p: items for p, (_, items) in runs.items()}, note)
    print(f"\nreport: {report}")
    print(f"bench-loop run time: {elapsed:.0f} s" + (f" (failed: {', '.join(failed)})" if failed else ""))


def _warm_up(out: Path, env: dict[str, str]) -> Path:
    """The shared warm-up, built once in ``out``/_warm (its log beside it)."""
    home = out / "_warm"
    started = time.perf_counter()
    with (out / "_warm.log").open("w") as log:
        command = [str(Path(sys.executable).parent / "shoprank"), "loop", "--policy", "rules", "--warm-up"]
        subprocess.run(
            command, env={**env, "SHOPRANK_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT, check=True
        )
    print(f"  shared warm-up built in {time.perf_counter() - started:.0f} s (log {out / '_warm.log'})", flush=True)
    return home


def _collect(out: Path, names: list[str]) -> None:
    """Summaries of (possibly unfinished) runs from the raw partitions of the days each one served."""
    from datetime import timedelta

    from orchestration.loop import write_summary
    from shoprank.settings import Settings

    for name in names:
        os.environ.update({**SMALL_WORLD, "SHOPRANK_HOME": str(out / name)})
        settings = Settings()
        warm = settings.default_run_date
        served = 0
        while (settings.raw_dir / "events" / f"dt={(warm + timedelta(days=served + 1)).isoformat()}").exists():
            served += 1
        summary = write_summary(settings, name, warm, served, 0, None)
        print(f"  {name}: {served} served days collected (cumulative GMV {summary['cumulative_gmv']:.0f})")


if __name__ == "__main__":
    main()
