"""The DuckDB-built, chunked training set equals Feast's historical retrieval row for row, for every ranker version.

The world is a real simulated home (simulate, dbt, publish, feast apply; tests/model/conftest.py). Feast's
point-in-time join (TTLs, the user x category view on the item's category, on-demand and derived columns, the
query match, the session replay) is the reference; the chunks must hold the same rows with the same model columns,
whole requests per chunk, in request order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprank.feature_contract import RANKERS
from shoprank.ranking_features import feature_columns_for
from shoprank.settings import Settings
from tests.model.conftest import RUN_DATE
from training.chunks import read_chunk
from training.dataset import add_slice_flags, build_training_frame
from training.pit_dataset import build_chunked_training_set

# Columns compared besides the model's: labels, and the slice flags the evaluation reads.
CHECKED = ["relevance", "label_click", "label_purchase", "user_is_cold_start", "item_is_new", "seller_is_new"]


def _numeric(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


@pytest.mark.parametrize("feature_service", sorted(RANKERS))
def test_chunked_duckdb_training_set_equals_feast_historical_retrieval(
    feast_world: Settings, feature_service: str, tmp_path: Path
) -> None:
    settings = feast_world
    feast = add_slice_flags(settings, build_training_frame(settings, RUN_DATE, feature_service))
    chunked = build_chunked_training_set(settings, RUN_DATE, feature_service, tmp_path / "set", rows_per_chunk=700)

    frames = [read_chunk(chunk) for chunk in chunked.chunks]
    assert len(frames) > len(chunked.days), "the test should cut days into several chunks"
    for chunk, frame in zip(chunked.chunks, frames, strict=True):
        assert (pd.to_datetime(frame["dt"]).dt.date == chunk.day).all()
        assert list(frame["request_id"]) == sorted(frame["request_id"])  # ordered by request
    requests = [set(frame["request_id"]) for frame in frames]
    assert sum(map(len, requests)) == len(set().union(*requests))  # no request split across chunks
    duck = pd.concat(frames, ignore_index=True)
    assert [c.day for c in chunked.chunks] == sorted(c.day for c in chunked.chunks)

    feast = feast.sort_values(["request_id", "impression_id"], kind="mergesort").reset_index(drop=True)
    assert list(duck["impression_id"]) == list(feast["impression_id"])
    assert list(duck["request_id"]) == list(feast["request_id"])
    columns = feature_columns_for(feature_service, settings.simulator.categories)
    compared = [*columns, *(c for c in CHECKED if c in feast.columns)]
    assert set(compared) <= set(duck.columns)
    assert (pd.to_datetime(duck["dt"]).dt.date == feast["dt"]).all()
    differing = {
        column: int(
            (~np.isclose(_numeric(duck[column]), _numeric(feast[column]), rtol=0, atol=1e-12, equal_nan=True)).sum()
        )
        for column in compared
    }
    assert {c: n for c, n in differing.items() if n} == {}
    # The point-in-time join found features for most rows (the comparison is not between two empty frames).
    assert duck["item_price"].notna().mean() > 0.9
