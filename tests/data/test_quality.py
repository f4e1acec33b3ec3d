"""The mart suites pass on clean marts and name what broke on corrupted ones."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from quality.validate import DataQualityError, validate_marts
from shoprank.mart_files import mart_files, read_mart
from shoprank.settings import Settings
from tests.support.marts import write_mart_rows

from .conftest import RUN_DATE


def test_clean_marts_pass(warehouse: dict) -> None:
    settings: Settings = warehouse["settings"]
    summary = validate_marts(settings, RUN_DATE)
    assert summary["success"]
    assert set(summary["tables"]) == {
        "training_examples",
        "item_features",
        "user_features",
        "point_in_time",
        "user_item_funnel",
    }
    assert all(t["failed"] == 0 and t["rows"] > 0 for t in summary["tables"].values())
    results = json.loads((settings.quality_dir / f"marts-{RUN_DATE}.json").read_text())
    assert results["success"] and results["results"]["training_examples"]["success"]


def test_corrupted_marts_fail_with_names_and_values(copied_home: Settings) -> None:
    marts = copied_home.marts_build_dir
    items = pd.read_parquet(marts / "item_features.parquet")
    items.loc[items.index[:2], "item_price"] = -3.5
    items.to_parquet(marts / "item_features.parquet", index=False)
    day_file = mart_files(marts, "training_examples")[-1]  # the newest day's file: a duplicated impression in it
    examples = pd.read_parquet(day_file)
    examples = pd.concat([examples, examples.head(1)], ignore_index=True)
    examples.to_parquet(day_file, index=False)

    with pytest.raises(DataQualityError) as error:
        validate_marts(copied_home, RUN_DATE)
    message = str(error.value)
    assert "marts.item_features" in message and "item_price" in message and "-3.5" in message
    assert "marts.training_examples" in message and "impression_id" in message
    failed = {(f["table"], f["expectation"]) for f in error.value.failures}
    assert ("item_features", "expect_column_values_to_be_between") in failed
    assert ("training_examples", "expect_column_values_to_be_unique") in failed
    results = json.loads((copied_home.quality_dir / f"marts-{RUN_DATE}.json").read_text())
    assert results["success"] is False


def test_the_next_day_judges_only_the_partitions_its_run_rewrote(copied_home: Settings) -> None:
    """With the day before passed, the gate judges feature days D..D+1 and impression days D-1..D: a fault in an
    older partition was the earlier gate's to catch; the same fault in the run's partitions still fails."""
    from datetime import timedelta

    copied_home.quality.build_data_docs = False
    day_before = RUN_DATE - timedelta(days=1)
    copied_home.quality_dir.mkdir(parents=True, exist_ok=True)
    (copied_home.quality_dir / f"marts-{day_before}.json").write_text(json.dumps({"success": True}))
    marts = copied_home.marts_build_dir
    users = read_mart(marts, "user_features")
    old = users["dt"] < RUN_DATE
    users.loc[users.index[old][:3], "user_ctr_30d"] = 1.7
    write_mart_rows(marts, "user_features", users)

    summary = validate_marts(copied_home, RUN_DATE)
    next_day = RUN_DATE + timedelta(days=1)
    assert summary["window"]["partitions"] == {
        "training_examples": f"dt={day_before}..{RUN_DATE}",
        "item_features": f"dt={RUN_DATE}..{next_day}",
        "user_features": f"dt={RUN_DATE}..{next_day}",
    }
    assert summary["tables"]["user_features"]["rows"] == int((~old).sum())
    examples = read_mart(marts, "training_examples", ["dt"])
    assert summary["tables"]["training_examples"]["rows"] == int((examples["dt"] >= day_before).sum())

    users.loc[users.index[~old][:3], "user_ctr_30d"] = 1.7
    write_mart_rows(marts, "user_features", users)
    with pytest.raises(DataQualityError, match=f"user_features dt={RUN_DATE}..{next_day}.*1.7"):
        validate_marts(copied_home, RUN_DATE)
