"""Monitoring arithmetic and the online-metrics report over real parquet logs."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from orchestration.pipeline import run_date_of_asset_events
from quality.monitoring import online_metrics
from shoprank.exposure import gini
from shoprank.settings import Settings


def test_gini_is_zero_for_equal_exposure_and_grows_with_concentration():
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert gini([1, 2, 3]) < gini([0, 1, 5])
    assert gini([]) == 0.0


def test_asset_triggered_runs_process_the_newest_day_their_events_carry():
    events = [{"run_date": "2026-01-06"}, {"run_date": "2026-01-07"}, {}]
    assert run_date_of_asset_events(events) == date(2026, 1, 7)
    settings = Settings()
    assert run_date_of_asset_events([{}], settings) == settings.default_run_date


def test_online_metrics_summarise_the_days_logs(tmp_path):
    settings = Settings(home=tmp_path)
    day = date(2026, 1, 7)
    requests_dir = settings.serving_logs_dir / "requests" / "dt=2026-01-07"
    events_dir = settings.serving_logs_dir / "events" / "dt=2026-01-07"
    requests_dir.mkdir(parents=True)
    events_dir.mkdir(parents=True)
    pd.DataFrame(
        {"degraded": [False, True, False, False], "latency_ms": [5.0, 9.0, 7.0, 100.0], "model_version": ["m:1"] * 4}
    ).to_parquet(requests_dir / "part-a.parquet")
    pd.DataFrame({"item_id": ["a", "a", "b", "c"]}).to_parquet(events_dir / "part-a.parquet")
    settings.marts_export_dir.mkdir(parents=True)
    pd.DataFrame(
        {"item_id": ["a", "b", "c"], "item_seller_id": ["s1", "s1", "s2"], "item_is_new": [0, 0, 1]}
    ).to_parquet(settings.marts_export_dir / "item_features.parquet")

    report = online_metrics(settings, day)
    assert report["requests"] == 4
    assert report["degraded_share"] == 0.25
    assert report["latency_ms"]["p50"] == 8.0
    assert report["impressions"] == 4 and report["distinct_items"] == 3
    assert report["new_item_share"] == 0.25
    assert report["seller_exposure_gini"] == pytest.approx(gini([3, 1]), abs=1e-4)


def test_online_metrics_without_logs_say_so(tmp_path):
    report = online_metrics(Settings(home=tmp_path), date(2026, 1, 7))
    assert report["requests"] == 0 and "no request log" in report["note"]


def test_score_drift_scores_the_champions_holdout_in_batches_as_the_whole_frame(tmp_path):
    """The reference scores read batch by batch (77 rows at a time) are the whole frame's, so the PSI is too."""
    import numpy as np

    from quality.drift import psi
    from quality.monitoring import holdout_scores

    rng = np.random.default_rng(5)
    holdout = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.exponential(size=1000), "request_id": "r"})
    holdout.loc[::50, "a"] = np.nan
    holdout.to_parquet(tmp_path / "holdout.parquet", index=False)

    def score(frame: pd.DataFrame) -> np.ndarray:
        return (frame["a"] * 2 + frame["b"]).to_numpy()

    batched = holdout_scores(tmp_path / "holdout.parquet", score, batch_rows=77)
    np.testing.assert_array_equal(batched, score(holdout))
    current = pd.Series(rng.normal(0.3, 1.0, 400))
    assert psi(pd.Series(batched), current, 10) == psi(pd.Series(score(holdout)), current, 10) > 0
