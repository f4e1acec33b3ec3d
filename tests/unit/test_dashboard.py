"""The operator's dashboard data, read from a hand-made home: each day's gates, the champion, NDCG and drift series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestration.dashboard import (
    champion,
    drift_series,
    ndcg_series,
    online_series,
    quarantined,
    timeline,
)
from orchestration.docs_site import index_html
from shoprank.settings import Settings, get_settings
from tests.support.processes import free_port

D1, D2, D3 = "2026-01-05", "2026-01-06", "2026-01-07"
TAG = "shoprank_ranker:abc"


def _write(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def _failure(table: str, expectation: str) -> dict[str, Any]:
    return {"suite": f"raw.{table}", "table": table, "partition": f"dt={D2}", "expectation": expectation}


def _drift(day: str, psi: float, blocked: list[str]) -> dict[str, Any]:
    status = "block" if blocked else "ok"
    return {
        "run_date": day,
        "success": not blocked,
        "blocked": blocked,
        "warned": [],
        "features": {"item_ctr_7d": {"psi": psi, "status": status}, "user_clicks_30d": {"psi": 0.01}},
    }


def _home(tmp_path: Path) -> Settings:
    """Day 1 promoted; day 2 raw events quarantined; day 3 blocked by drift."""
    settings = Settings(home=tmp_path)
    quality = settings.quality_dir
    _write(quality / f"raw-{D1}.json", {"run_date": D1, "success": True, "status": "passed", "notes": []})
    _write(quality / f"marts-{D1}.json", {"run_date": D1, "success": True, "failures": []})
    _write(quality / f"drift-{D1}.json", _drift(D1, 0.02, []))
    _write(
        quality / f"raw-{D2}.json",
        {
            "run_date": D2,
            "success": False,
            "status": "failed",
            "quarantined": {"events": str(settings.quarantine_dir / "events" / f"dt={D2}")},
            "failures": [_failure("events", "expect_column_values_to_be_unique")],
        },
    )
    _write(
        settings.quarantine_dir / "events" / f"dt={D2}" / "validation.json",
        {
            "quarantined_at": "2026-01-07T01:00:00+00:00",
            "failures": [_failure("events", "expect_column_values_to_be_unique")],
        },
    )
    _write(quality / f"raw-{D3}.json", {"run_date": D3, "success": True, "status": "passed", "notes": []})
    _write(quality / f"marts-{D3}.json", {"run_date": D3, "success": True, "failures": []})
    _write(quality / f"drift-{D3}.json", _drift(D3, 0.41, ["item_ctr_7d"]))

    snapshot = settings.marts_snapshots_dir / f"{D1}-0123456789ab"
    _write(snapshot / "manifest.json", {"run_date": D1, "snapshot": snapshot.name, "published_at": "t", "files": {}})
    settings.marts_export_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.marts_export_dir.symlink_to(snapshot)

    candidate = settings.home_dir / "models" / "candidates" / D1
    metrics = {"model_ndcg@10": 0.5, "popularity_ndcg@10": 0.31, "oracle_ndcg@10": 0.59}
    _write(candidate / "candidate.json", {"run_date": D1, "feature_service": "ranker_v3", "metrics": metrics})
    _write(candidate / "registered.json", {"tag": TAG})
    _write(
        settings.home_dir / "models" / "decisions" / f"{D1}__shoprank_ranker_abc.json",
        {
            "challenger": TAG,
            "champion": None,
            "promoted": True,
            "reasons": ["no champion yet: the challenger must beat the popularity baseline"],
            "metrics": {"challenger_ndcg@10": 0.5},
            "decided_at": "2026-01-06T02:00:00+00:00",
        },
    )
    _write(
        settings.home_dir / "models" / "registry.json",
        {"champion": TAG, "stack": [TAG], "events": [{"action": "promote", "tag": TAG, "at": "x", "reasons": ["ok"]}]},
    )
    _write(
        settings.home_dir / "monitoring" / D1 / "online_metrics.json",
        {"requests": 120, "degraded_share": 0.05, "latency_ms": {"p50": 11.0, "p95": 40.0}, "new_item_share": 0.1},
    )
    return settings


def test_timeline_shows_each_gate_s_outcome_with_its_reason(tmp_path: Path):
    runs = {run.day: run.gates for run in timeline(_home(tmp_path))}

    assert list(runs) == [D3, D2, D1]  # newest first
    assert {name: g.status for name, g in runs[D1].items()} == dict.fromkeys(
        ("raw", "marts", "drift", "publish", "promotion"), "passed"
    )
    assert f"snapshot {D1}-0123456789ab (serving now)" in runs[D1]["publish"].reason
    assert TAG in runs[D1]["promotion"].reason

    assert runs[D2]["raw"].status == "quarantined"
    assert "events: expect_column_values_to_be_unique" in runs[D2]["raw"].reason
    assert runs[D2]["marts"].status == "not run" and runs[D2]["promotion"].status == "not run"

    assert runs[D3]["drift"].status == "refused"
    assert "item_ctr_7d (PSI 0.41)" in runs[D3]["drift"].reason
    assert runs[D3]["publish"].status == "not run" and "drift gate did not pass" in runs[D3]["publish"].reason


def test_a_refused_promotion_shows_the_failing_comparison(tmp_path: Path):
    settings = _home(tmp_path)
    _write(
        settings.home_dir / "models" / "decisions" / f"{D3}__shoprank_ranker_def.json",
        {
            "challenger": "shoprank_ranker:def",
            "champion": TAG,
            "promoted": False,
            "reasons": ["ndcg@10 0.4000 vs champion 0.5000 (needs > 0.5050): FAIL", "slice new_item: pass"],
            "metrics": {"challenger_ndcg@10": 0.4, "champion_ndcg@10": 0.5},
            "decided_at": "2026-01-08T02:00:00+00:00",
        },
    )
    promotion = {run.day: run.gates["promotion"] for run in timeline(settings)}[D3]
    assert promotion.status == "refused"
    assert promotion.reason == f"kept {TAG}: ndcg@10 0.4000 vs champion 0.5000 (needs > 0.5050): FAIL"


def test_champion_series_and_quarantine(tmp_path: Path):
    settings = _home(tmp_path)

    best = champion(settings)
    assert best is not None and best["tag"] == TAG and best["run_date"] == D1
    assert best["card"]["feature_service"] == "ranker_v3"

    assert ndcg_series(settings) == [
        {"day": D1, "challenger": 0.5, "popularity": 0.31, "oracle": 0.59, "champion": None, "promoted": True}
    ]
    assert drift_series(settings)["item_ctr_7d"] == [(D1, 0.02), (D3, 0.41)]
    assert online_series(settings)[0]["requests"] == 120
    [entry] = quarantined(settings)
    assert (entry["table"], entry["dt"]) == ("events", D2)
    assert "expect_column_values_to_be_unique" in entry["reason"]


def test_an_empty_home_renders_and_a_damaged_result_shows_as_an_error(tmp_path: Path):
    settings = Settings(home=tmp_path)
    assert timeline(settings) == [] and champion(settings) is None
    index_html(settings)  # nothing built yet: the page still renders
    _write(settings.quality_dir / f"raw-{D1}.json", {})
    (settings.quality_dir / f"raw-{D1}.json").write_text("{not json")
    [run] = timeline(settings)
    assert run.gates["raw"].status == "error" and f"raw-{D1}.json" in run.gates["raw"].reason


def test_the_page_shows_the_timeline_charts_and_quarantine(tmp_path: Path):
    page = index_html(_home(tmp_path))
    assert "champion model: <b>shoprank_ranker:abc</b>" in page
    assert "class='gate quarantined'" in page and "class='gate refused'" in page
    assert "item_ctr_7d (PSI 0.41)" in page
    assert page.count("<svg") >= 3  # NDCG, drift and online charts, inline
    assert "href='quality/drift-2026-01-07.json'" in page


def test_status_table_names_quarantine_champion_refusals_and_an_unreachable_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from orchestration.cli import app

    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path))
    monkeypatch.setenv("SHOPRANK_SERVING__PORT", str(free_port()))  # nothing listens there
    get_settings.cache_clear()
    try:
        _home(tmp_path)
        result = CliRunner().invoke(app, ["status"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stdout.splitlines() if "│" in line
    }
    assert rows["quarantined partitions"] == f"events dt={D2}"
    assert rows["champion"] == f"{TAG}, trained {D1}, holdout NDCG@10 0.5000"
    assert rows["published snapshot"].startswith(f"{D1}-0123456789ab")
    assert rows[f"gates {D3}"].startswith("raw passed, marts passed, drift refused (blocked: item_ctr_7d (PSI 0.41))")
    assert rows["ranking service"].startswith("unreachable at http://127.0.0.1:")


EXPERIMENTS_YAML = """
version: "t.1"
experiments:
  - name: rules-on-off
    layer: rules
    salt: s1
    start: 2026-01-01T00:00:00Z
    arms:
      - {name: control, share: 0.5}
      - {name: no-rules, share: 0.5, rules: false}
  - name: old-test
    layer: other
    salt: s2
    start: 2025-01-01T00:00:00Z
    stop: 2025-02-01T00:00:00Z
    arms:
      - {name: control, share: 0.5}
      - {name: treatment, share: 0.5, rules: false}
"""


def _with_experiments(tmp_path: Path) -> Settings:
    """The hand-made home, plus an experiments file (one running, one over) and the daily report of D1 and D3."""
    settings = _home(tmp_path)
    experiments_file = tmp_path / "experiments.yaml"
    experiments_file.write_text(EXPERIMENTS_YAML)
    settings.serving.experiments_path = experiments_file
    reports = settings.reports_dir / "experiments"
    for day, verdict in ((D1, "no data yet"), (D3, "keep control: no arm wins on GMV per user without a loss")):
        _write(
            reports / f"{day}.json", {"run_date": day, "experiments": [{"name": "rules-on-off", "decision": verdict}]}
        )
        (reports / f"{day}.html").write_text(f"<h1>experiments {day}</h1>")
    return settings


def test_running_experiments_show_with_the_latest_report_s_verdict_and_link(tmp_path: Path):
    from datetime import UTC, datetime

    from orchestration.dashboard import experiments

    settings = _with_experiments(tmp_path)
    found = experiments(settings, now=datetime(2026, 1, 8, tzinfo=UTC))
    assert found["error"] is None
    assert found["report"] == f"experiments/{D3}.html"  # the newest day's report
    by_name = {e["name"]: e for e in found["experiments"]}
    assert by_name["rules-on-off"]["running"] is True and by_name["old-test"]["running"] is False
    assert by_name["rules-on-off"]["arms"] == ["control 50%", "no-rules 50%"]
    assert by_name["rules-on-off"]["verdict"] == "keep control: no arm wins on GMV per user without a loss"
    assert by_name["old-test"]["verdict"] is None  # not in the report

    page = index_html(settings)
    assert f"href='experiments/{D3}.html'" in page
    assert "<b>rules-on-off</b>" in page and "class='gate passed'>running<" in page
    assert "class='gate not-run'>not running<" in page
    # The link resolves to the report file under the docs site's experiments root.
    from orchestration.docs_site import resolve_file, site_roots

    assert (
        resolve_file(site_roots(settings)["experiments"], f"{D3}.html")
        == (settings.reports_dir / "experiments" / f"{D3}.html").resolve()
    )


def test_an_invalid_experiments_file_shows_as_an_error_naming_the_field(tmp_path: Path):
    from orchestration.dashboard import experiments

    settings = _with_experiments(tmp_path)
    assert settings.serving.experiments_path is not None
    settings.serving.experiments_path.write_text(EXPERIMENTS_YAML.replace("share: 0.5}", "share: 0.4}", 1))
    found = experiments(settings)
    assert found["experiments"] == [] and "shares sum to 0.9" in found["error"], found
    assert "shares sum to 0.9" in index_html(settings)
