"""The same dbt models build on Spark (the `spark` target: dbt-spark's session method, `local[2]`), from the Spark
venv as a dbt subprocess: every model, data test and unit test passes, and the build-area files equal the DuckDB
build of the same raw data frame for frame (rows, order, column types).

Needs the Spark venv (`make spark-install`; `make test-profiles` does it): settings.spark.venv, of this test home, or
of the default home. Without it the test fails and says how to install it. Spark starts slowly: one build.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.mart_files import mart_files, read_mart
from shoprank.settings import Settings
from warehouse import spark
from warehouse.build import EXPORTED_MARTS, build_warehouse

from .conftest import RUN_DATE, TINY

pytestmark = [pytest.mark.profiles, pytest.mark.timeout(2400)]  # a loaded machine slows Spark's many small jobs


def _installed_venv(settings: Settings) -> Path:
    candidates = [spark.venv_dir(settings), spark.venv_dir(settings.model_copy(update={"home": None}))]
    for venv in candidates:
        if (venv / "bin" / "dbt").exists():
            return venv
    pytest.fail(f"no Spark venv with dbt at {', '.join(map(str, candidates))}: run `make spark-install`")


@pytest.fixture(scope="module")
def spark_warehouse(warehouse: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    home = tmp_path_factory.mktemp("spark-home")
    (home / "raw").symlink_to(warehouse["settings"].raw_dir)
    settings = Settings(home=home, simulator=TINY, dbt_target="spark")
    venv = _installed_venv(settings)
    settings = settings.model_copy(update={"spark": settings.spark.model_copy(update={"venv": venv})})
    return settings, build_warehouse(settings, RUN_DATE)


def test_every_model_and_test_passes_on_spark(spark_warehouse: tuple[Settings, dict]) -> None:
    settings, build = spark_warehouse
    assert build["target"] == "spark"
    assert build["resource_types"]["model"] >= 26 and build["resource_types"]["unit_test"] >= 4
    assert build["resource_types"]["test"] > 60  # 68 data tests: not-null columns and value checks one test per model
    assert set(build["statuses"]) <= {"success", "pass"}
    # Spark's tables and metastore under the test's home; no DuckDB file, no part files left behind.
    assert (settings.spark_dir / "warehouse" / f"{settings.spark.schema_name}.db" / "user_features").is_dir()
    assert (settings.spark_dir / "metastore_db").is_dir()
    assert not settings.warehouse_path.exists()
    assert not list((settings.marts_build_dir / spark.PARTS_DIR).iterdir())


def test_exported_marts_equal_the_duckdb_exports(warehouse: dict, spark_warehouse: tuple[Settings, dict]) -> None:
    """Spark's build writes the same build-area files as DuckDB's post-hooks: same rows, order and column types,
    so the gates, Feast, training and serving read them whichever warehouse built them."""
    duckdb_marts: Path = warehouse["settings"].marts_build_dir
    settings, build = spark_warehouse
    assert set(build["exports"]["marts"]) == set(EXPORTED_MARTS)
    for name in EXPORTED_MARTS:
        first, duckdb_first = mart_files(settings.marts_build_dir, name)[0], mart_files(duckdb_marts, name)[0]
        assert pq.read_schema(first).types == pq.read_schema(duckdb_first).types, name
        expected = read_mart(duckdb_marts, name)
        got = read_mart(settings.marts_build_dir, name)
        assert len(got) == build["exports"]["marts"][name] > 0, name
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, obj=name)
