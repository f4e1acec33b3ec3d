"""The one typed settings object. Every path, host and knob in ShopRank derives from here.

Values come from, in order: environment variables prefixed ``SHOPRANK_`` (nested with ``__``), a ``.env`` file in
the working directory (ignored by git), then the defaults below. ``SHOPRANK_PROFILE`` selects the profile.
Nothing here touches the disk at import time; :meth:`Settings.ensure_dirs` creates folders when a step needs them.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository checkout this package lives in (editable install). Override with SHOPRANK_PROJECT_ROOT.
_DEFAULT_PROJECT_ROOT = Path(__file__).resolve().parents[1]

Profile = Literal["local", "services", "cluster"]

# Telemetry of every tool in the stack is off: nothing phones home from a pipeline run.
TELEMETRY_OFF = {
    "BENTOML_DO_NOT_TRACK": "true",
    "FEAST_USAGE": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


class SimulatorSettings(BaseModel):
    """Size and shape of the simulated marketplace (see shoprank.simulator)."""

    seed: int = 42
    days: int = Field(7, ge=2, description="days of history written, ending at the run's day")
    users: int = Field(2000, ge=10)
    sellers: int = Field(100, ge=2)
    items: int = Field(1000, ge=20)
    categories: int = Field(12, ge=2, le=99)
    requests_per_day: int = Field(2000, ge=10)
    slate_size: int = Field(20, ge=2)


class TrainingSettings(BaseModel):
    """Ranker hyperparameters and evaluation choices; code reads them, never hard-codes them."""

    model_name: str = "shoprank_ranker"
    feature_service: str = "ranker_v1"
    holdout_days: int = Field(1, ge=1, description="the last N days of examples are the holdout")
    # The first simulated days have no history behind them (every user cold, every count zero): skip them.
    burn_in_days: int = Field(1, ge=0)
    n_estimators: int = 200
    max_depth: int = 6
    learning_rate: float = 0.1
    ndcg_k: int = 10
    seed: int = 7


class ServingSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 3000
    default_k: int = Field(10, ge=1)
    max_k: int = Field(100, ge=1)
    max_candidates: int = Field(2000, ge=1)
    # Without candidates in the request, the service ranks the N most popular items (retrieval v0).
    default_candidate_count: int = Field(500, ge=1)


class AirflowSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    parallelism: int = 4


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHOPRANK_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    profile: Profile = "local"
    project_root: Path = _DEFAULT_PROJECT_ROOT
    # Everything generated (data, warehouse, feature store, models, Airflow home, reports) lives under here.
    home: Path | None = None
    # The simulated calendar ends here when no run date is given (the DAG passes its own logical date).
    default_run_date: date = date(2026, 1, 7)

    feast_project: str = "shoprank"
    dbt_target: str | None = None

    simulator: SimulatorSettings = SimulatorSettings()
    training: TrainingSettings = TrainingSettings()
    serving: ServingSettings = ServingSettings()
    airflow: AirflowSettings = AirflowSettings()

    # ---- derived paths -------------------------------------------------------------------------------------
    @property
    def home_dir(self) -> Path:
        return (self.home or self.project_root / "var").resolve()

    @property
    def raw_dir(self) -> Path:
        """Immutable raw partitions: <raw_dir>/<table>/dt=YYYY-MM-DD/part-0.parquet."""
        return self.home_dir / "raw"

    @property
    def truth_dir(self) -> Path:
        """The simulator's hidden truth; nothing in the pipeline reads it (evaluation only)."""
        return self.home_dir / "truth"

    @property
    def warehouse_path(self) -> Path:
        return self.home_dir / "warehouse" / "shoprank.duckdb"

    @property
    def marts_export_dir(self) -> Path:
        """Parquet copies of the marts that Feast reads as its offline sources."""
        return self.home_dir / "warehouse" / "marts"

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_root / "dbt_project"

    @property
    def dbt_target_name(self) -> str:
        return self.dbt_target or {"local": "duckdb", "services": "duckdb", "cluster": "spark"}[self.profile]

    @property
    def dbt_artifacts_dir(self) -> Path:
        return self.home_dir / "dbt" / "target"

    @property
    def feature_repo_dir(self) -> Path:
        return self.project_root / "feature_repo"

    @property
    def feast_registry_path(self) -> Path:
        return self.home_dir / "feast" / "registry.db"

    @property
    def feast_online_path(self) -> Path:
        return self.home_dir / "feast" / "online_store.db"

    @property
    def model_store_dir(self) -> Path:
        """BENTOML_HOME: the local model store."""
        return self.home_dir / "bentoml"

    @property
    def quality_dir(self) -> Path:
        """Validation results and Data Docs."""
        return self.home_dir / "quality"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def airflow_home(self) -> Path:
        return self.home_dir / "airflow"

    @property
    def dags_dir(self) -> Path:
        return self.project_root / "dags"

    def ensure_dirs(self) -> None:
        for path in (
            self.raw_dir,
            self.truth_dir,
            self.warehouse_path.parent,
            self.marts_export_dir,
            self.dbt_artifacts_dir,
            self.feast_registry_path.parent,
            self.model_store_dir,
            self.quality_dir,
            self.reports_dir,
            self.airflow_home,
        ):
            path.mkdir(parents=True, exist_ok=True)

    def runtime_env(self) -> dict[str, str]:
        """Environment every tool of the stack needs, derived from these settings.

        Exported by :func:`apply_runtime_env` for in-process libraries, and passed to subprocesses (dbt, Airflow,
        BentoML) so that they all see the same paths.
        """
        env = dict(TELEMETRY_OFF)
        env.update(
            {
                "SHOPRANK_PROFILE": self.profile,
                "SHOPRANK_HOME": str(self.home_dir),
                "SHOPRANK_PROJECT_ROOT": str(self.project_root),
                "SHOPRANK_RAW_DIR": str(self.raw_dir),
                "SHOPRANK_WAREHOUSE_PATH": str(self.warehouse_path),
                "SHOPRANK_MARTS_EXPORT_DIR": str(self.marts_export_dir),
                "SHOPRANK_N_CATEGORIES": str(self.simulator.categories),
                "SHOPRANK_FEAST_PROJECT": self.feast_project,
                "SHOPRANK_FEAST_REGISTRY_PATH": str(self.feast_registry_path),
                "SHOPRANK_FEAST_ONLINE_PATH": str(self.feast_online_path),
                "DBT_PROFILES_DIR": str(self.dbt_project_dir),
                "DBT_TARGET_PATH": str(self.dbt_artifacts_dir),
                "DBT_LOG_PATH": str(self.home_dir / "dbt" / "logs"),
                "BENTOML_HOME": str(self.model_store_dir),
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_dir),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": str(self.airflow.parallelism),
                "AIRFLOW__API__HOST": self.airflow.host,
                "AIRFLOW__API__PORT": str(self.airflow.port),
                "AIRFLOW__API__BASE_URL": f"http://{self.airflow.host}:{self.airflow.port}",
            }
        )
        return env


def apply_runtime_env(settings: Settings) -> None:
    """Export :meth:`Settings.runtime_env` into this process (libraries read BENTOML_HOME etc. from os.environ)."""
    os.environ.update(settings.runtime_env())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached). Tests that change the environment call ``get_settings.cache_clear()``."""
    return Settings()
