"""Holdout metrics aggregated over request chunks equal the in-memory evaluation of the same scored rows."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from training.chunks import frame_to_chunks, read_chunk
from training.evaluate import calibration_table, evaluate_holdout
from training.streaming_eval import HoldoutAccumulator, exact_calibration_table, holdout_aucs

SCORES = {"model": "model_score", "popularity": "item_clicks_7d", "random": "random_score"}


def scored_holdout(requests: int = 300, slate: int = 8, seed: int = 3) -> pd.DataFrame:
    """Scored rows of ``requests`` slates: graded relevance, purchases, slice flags, tied and missing scores."""
    rng = np.random.default_rng(seed)
    rows = requests * slate
    request = np.repeat(np.arange(requests), slate)
    relevance = rng.choice([0, 0, 0, 0, 1, 2], size=rows)
    relevance[request % 7 == 0] = 0  # some requests without a click
    frame = pd.DataFrame(
        {
            "request_id": [f"r{n:05d}" for n in request],
            "impression_id": [f"m{n:06d}" for n in range(rows)],
            "item_id": [f"i{n:03d}" for n in rng.integers(0, 120, rows)],
            "dt": date(2026, 1, 7),
            "relevance": relevance,
            "label_click": (relevance > 0).astype(int),
            "label_purchase": (relevance > 1).astype(int),
            "item_price": rng.uniform(1, 100, rows),
            "model_score": relevance + rng.normal(0, 1.5, rows),
            "item_clicks_7d": rng.integers(0, 5, rows).astype(float),  # many ties
            "random_score": rng.random(rows),
            "ctr_score": np.clip(0.2 * relevance + rng.uniform(0, 0.5, rows), 0, 1),
            "user_is_cold_start": (request % 5 == 0).astype(float),
            "item_is_new": (rng.random(rows) < 0.05).astype(float),
            "seller_is_new": np.where(rng.random(rows) < 0.5, np.nan, 0.0),
        }
    )
    frame.loc[frame.index[::11], "item_clicks_7d"] = np.nan  # items without a snapshot: ranked last
    return frame


def test_streamed_metrics_equal_in_memory_metrics(tmp_path: Path) -> None:
    frame = scored_holdout()
    chunked = frame_to_chunks(frame, tmp_path / "chunks", rows_per_chunk=150)
    assert len(chunked.chunks) > 10
    accumulator = HoldoutAccumulator(dict(SCORES), k=10)
    for chunk in chunked.chunks:
        accumulator.add(read_chunk(chunk))
    path = tmp_path / "holdout.parquet"
    pd.concat([read_chunk(c) for c in chunked.chunks], ignore_index=True).to_parquet(path)
    with duckdb.connect() as con:
        streamed = accumulator.metrics(holdout_aucs(con, path, SCORES, ["label_click", "label_purchase"]))
        streamed_table = exact_calibration_table(con, path, "label_click", "ctr_score")

    expected = evaluate_holdout(frame, SCORES, k=10)
    assert list(streamed) == list(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(streamed[key]), key
        else:
            assert abs(streamed[key] - value) <= 1e-9, (key, streamed[key], value)
    assert expected["slice_new_seller_requests"] == 0  # an empty slice is reported, undefined, as before
    table = calibration_table(frame["label_click"], frame["ctr_score"])
    np.testing.assert_allclose(streamed_table.to_numpy(dtype=float), table.to_numpy(dtype=float), rtol=0, atol=1e-12)
