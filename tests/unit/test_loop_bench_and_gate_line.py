"""`make bench-loop`'s --out is created when new, and a loop's retraining day logs the champion gate's decision
(so a GMV jump after a retraining can be traced to a promoted model, or to none)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_loop
from orchestration import loop, pipeline


def _fake_warm_up(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The warm-up's `shoprank loop --warm-up` is faked (it runs the daily pipeline: minutes, not a unit test's
    budget); any other subprocess.run (matplotlib's fc-list probe on a cold font cache) runs for real."""
    warm_ups: list[list[str]] = []
    real_run = subprocess.run

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        if "--warm-up" not in command:
            return real_run(command, **kwargs)
        warm_ups.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bench_loop.subprocess, "run", fake_run)
    return warm_ups


def test_bench_loop_creates_a_new_out_directory_and_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_ups = _fake_warm_up(monkeypatch)
    out = tmp_path / "not" / "yet" / "there"
    monkeypatch.setattr(sys, "argv", ["bench_loop", "--out", str(out), "--policies", "", "--days", "1"])
    bench_loop.main()
    assert warm_ups and "--warm-up" in warm_ups[0]
    assert (out / "_warm.log").exists() and (out / "loop-report.html").exists()


def _decision(promoted: bool, challenger: float, champion: float, reasons: list[str]) -> dict[str, Any]:
    return {
        "challenger": "ranker_v3:new",
        "champion": "ranker_v3:old",
        "promoted": promoted,
        "reasons": reasons,
        "metrics": {
            "challenger_ndcg@10": challenger,
            "champion_ndcg@10": champion,
            "slice_new_items_challenger_ndcg@10": 0.9,
        },
        "refusal": None,
    }


def test_the_gate_line_says_promote_or_keep_with_both_holdout_scores() -> None:
    promoted = loop.gate_line(_decision(True, 0.4321, 0.4012, ["ndcg@10 0.4321 vs champion 0.4012: pass"]))
    assert promoted.startswith("gate PROMOTE ranker_v3:new")
    assert "holdout ndcg@10 0.4321 vs champion 0.4012" in promoted
    kept = loop.gate_line(
        _decision(False, 0.3900, 0.4012, ["ndcg@10 0.3900 vs champion 0.4012: FAIL", "slice x: pass"])
    )
    assert kept.startswith("gate KEEP") and "0.3900 vs champion 0.4012" in kept and "FAIL" in kept
    assert "slice x" not in kept
    refused = {**_decision(False, 0.5, 0.4, ["refused"]), "refusal": "holdout_too_small"}
    assert "refused: holdout_too_small" in loop.gate_line(refused)
    assert loop.gate_line(None) == "gate: no decision"


def test_daily_steps_hand_back_the_promote_result_only_on_retraining_days(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def step(name: str) -> Any:
        def run(day: date) -> dict[str, Any]:
            ran.append(name)
            return {"step": name, "day": day.isoformat()}

        return run

    monkeypatch.setattr(pipeline, "STEPS", {n: step(n) for n in ("simulate", "build-warehouse", "train", "promote")})
    day = date(2026, 1, 9)
    results: dict[str, Any] = {}
    timings = loop.daily_steps(day, retrain=True, warm_up=False, results=results)
    assert set(timings) == {"build-warehouse", "train", "promote"}  # simulate is the served day's, not the loop's
    assert results["promote"] == {"step": "promote", "day": "2026-01-09"}
    results = {}
    loop.daily_steps(day, retrain=False, warm_up=False, results=results)
    assert set(results) == {"build-warehouse"} and ran.count("promote") == 1


def test_a_cadence_of_zero_or_of_the_whole_run_never_retrains_and_says_so() -> None:
    assert [n for n in range(1, 29) if loop.retrains_on(n, 7)] == [7, 14, 21, 28]
    assert not any(loop.retrains_on(n, 0) for n in range(1, 29))
    for every in (0, 28, 40):  # day 28 is the last served day: no pipeline runs after it
        assert "no retraining" in loop.cadence(every, 28) and "champion serves every day" in loop.cadence(every, 28)
    assert loop.cadence(7, 28) == "pipeline daily, retraining every 7 day(s) (production: 1)"


def test_the_bench_prints_a_fixed_champion_cadence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_warm_up(monkeypatch)
    argv = ["bench_loop", "--out", str(tmp_path / "out"), "--policies", "", "--days", "28", "--retrain-every", "0"]
    monkeypatch.setattr(sys, "argv", argv)
    bench_loop.main()
    assert "over 28 served days, pipeline daily, no retraining (--retrain-every 0" in capsys.readouterr().out
