"""A step given a tiny memory budget fails naming the budget, never by the kernel's OOM killer.

The gates aggregate in DuckDB capped at the budget's DuckDB share (shoprank.resources): at 5 MiB of budget DuckDB
cannot even spill its way through, raises "Out of Memory", and the step says which setting to raise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quality.drift import check_drift
from quality.raw import validate_raw
from quality.validate import validate_marts
from shoprank.resources import MemoryBudgetError
from shoprank.settings import Settings
from warehouse.build import WarehouseBuildError, build_warehouse

from .conftest import RUN_DATE, TINY

TINY_BUDGET = 0.005  # GiB: DuckDB memory_limit 3 MiB


def test_the_gates_fail_naming_the_budget(copied_home: Settings) -> None:
    copied_home.quality.build_data_docs = False
    copied_home.resources.memory_budget_gib = TINY_BUDGET
    for gate in (validate_marts, check_drift):
        with pytest.raises(MemoryBudgetError, match=f"memory_budget_gib = {TINY_BUDGET}") as error:
            gate(copied_home, RUN_DATE)
        assert "SHOPRANK_RESOURCES__MEMORY_BUDGET_GIB" in str(error.value) and "3MiB" in str(error.value)
    copied_home.resources.memory_budget_gib = 1.0  # the same steps within an ordinary budget
    assert validate_marts(copied_home, RUN_DATE)["success"] and check_drift(copied_home, RUN_DATE)["success"]


def test_the_cli_step_exits_with_the_budget_in_its_message(copied_home: Settings) -> None:
    """As Airflow and `shoprank run` call it: the budget from the environment, an ordinary non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    env |= {
        "SHOPRANK_HOME": str(copied_home.home_dir),
        "SHOPRANK_RESOURCES__MEMORY_BUDGET_GIB": str(TINY_BUDGET),
        "SHOPRANK_QUALITY__BUILD_DATA_DOCS": "false",
        **{f"SHOPRANK_SIMULATOR__{k.upper()}": str(v) for k, v in TINY.model_dump().items()},
    }
    shoprank = Path(sys.executable).with_name("shoprank")
    done = subprocess.run(
        [str(shoprank), "check-drift", "--run-date", RUN_DATE.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "MemoryBudgetError" in done.stderr and f"memory_budget_gib = {TINY_BUDGET}" in done.stderr


def test_the_raw_gate_records_a_budget_error_not_a_data_failure(copied_home: Settings) -> None:
    """Out of budget is the gate's own error (status error, nothing quarantined), and it names the setting."""
    copied_home.quality.build_data_docs = False
    copied_home.resources.memory_budget_gib = TINY_BUDGET
    with pytest.raises(MemoryBudgetError, match="memory_budget_gib"):
        validate_raw(copied_home, RUN_DATE)
    result = json.loads((copied_home.quality_dir / f"raw-{RUN_DATE}.json").read_text())
    assert result["status"] == "error" and "memory_budget_gib" in result["error"]
    assert not copied_home.quarantine_dir.exists()


def test_a_dbt_build_out_of_budget_names_the_budget_and_a_small_one_finishes(copied_home: Settings) -> None:
    """dbt's DuckDB is capped by the profile (config_options, given once when the database opens). At 12 MiB the
    build spills and still runs out: it fails naming the budget; with the spill folder re-SET on every cursor (the
    profile's old `settings`) it failed instead with DuckDB's "Cannot switch temporary directory". At 61 MiB the
    same first build finishes."""
    copied_home.resources.memory_budget_gib = 0.02
    with pytest.raises(MemoryBudgetError, match="memory_budget_gib = 0.02") as error:
        build_warehouse(copied_home, RUN_DATE)
    assert isinstance(error.value, WarehouseBuildError) and "12MiB" in str(error.value)
    assert "Out of Memory" in str(error.value) and "Cannot switch temporary directory" not in str(error.value)
    copied_home.resources.memory_budget_gib = 0.1
    build = build_warehouse(copied_home, RUN_DATE)
    assert build["statuses"].get("success", 0) > 0 and set(build["statuses"]) <= {"success", "pass"}
