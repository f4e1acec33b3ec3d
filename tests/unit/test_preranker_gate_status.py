"""`shoprank status` names the served pre-ranker and the pre-ranker gate's last decision (training/preranker_gate.py),
and the gate's judgement follows the settings' thresholds per surface."""

from __future__ import annotations

import json
from pathlib import Path

from orchestration.dashboard import preranker_text
from shoprank.settings import Settings
from training.preranker_gate import GateDecision, judge, latest_decision, record


def _settings(home: Path) -> Settings:
    return Settings(home=home)  # type: ignore[call-arg]


def _metrics(feed: float, search: float, clicks: float, requests: float = 200) -> dict[str, float | None]:
    return {
        "feed_requests": requests,
        "search_requests": requests,
        "feed_recall_top20": feed,
        "search_recall_top20": search,
        "feed_clicks_kept_ratio": clicks,
        "search_clicks_kept_ratio": clicks,
    }


def test_status_names_the_served_preranker_and_the_last_refusal(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert preranker_text(settings) == "none serving (today's path)"
    settings.preranker_dir.mkdir(parents=True)
    (settings.preranker_dir / "CURRENT").write_text("2026-01-06")
    published, reasons = judge(settings, _metrics(0.99, 0.95, 0.9), "candidate 2026-01-06")
    assert published
    record(settings, GateDecision("2026-01-06", published, reasons))
    assert preranker_text(settings) == "serving 2026-01-06; gate 2026-01-06: published"
    published, reasons = judge(settings, _metrics(0.99, 0.41, 0.9), "candidate 2026-01-07")
    assert not published
    record(settings, GateDecision("2026-01-07", published, reasons))
    text = preranker_text(settings)
    assert text.startswith("serving 2026-01-06; gate 2026-01-07: REFUSED (search recall of the final ranker's top 20")
    assert "0.410" in text and "feed" not in text  # only the failing check is named
    assert latest_decision(settings)["run_date"] == "2026-01-07"  # type: ignore[index]


def test_the_gate_judges_each_surface_against_its_threshold_and_skips_a_small_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    gate = settings.recall.prerank_gate
    ok, _ = judge(settings, _metrics(gate.min_recall_feed, gate.min_recall_search, gate.min_clicks_kept_ratio), "c")
    assert ok  # the thresholds themselves pass
    for feed, search, clicks in (
        (gate.min_recall_feed - 0.01, 1.0, 1.0),
        (1.0, gate.min_recall_search - 0.01, 1.0),
        (1.0, 1.0, gate.min_clicks_kept_ratio - 0.01),
    ):
        ok, reasons = judge(settings, _metrics(feed, search, clicks), "c")
        assert not ok and sum("FAIL" in r for r in reasons) >= 1
    # too few requests on a surface: not judged, whatever its figures
    ok, reasons = judge(settings, _metrics(0.0, 0.0, 0.0, requests=gate.min_requests - 1), "c")
    assert ok and all("not judged" in r for r in reasons)
    # without a final ranker only the clicks are judged
    metrics = {**_metrics(1.0, 1.0, 0.9), "feed_recall_top20": None, "search_recall_top20": None}
    ok, reasons = judge(settings, metrics, None)
    assert ok and reasons[0].startswith("no final ranker")
    assert json.dumps(reasons)
