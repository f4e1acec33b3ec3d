"""Open the Feast feature store of the active profile (training and serving read through it).

The repo's ``feature_store.yaml`` reads its paths from the environment that :func:`apply_runtime_env` exports, so
these functions and a ``feast`` CLI run from ``feature_repo/`` act on the same registry and online store.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from shoprank.settings import Settings, apply_runtime_env

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

YAML_FILE = "feature_store.yaml"


def feature_store_yaml(settings: Settings) -> Path:
    """feature_store.yaml for `local`; feature_store.<profile>.yaml for another profile when the repo has one."""
    profiled = settings.feature_repo_dir / f"feature_store.{settings.profile}.yaml"
    return profiled if settings.profile != "local" and profiled.exists() else settings.feature_repo_dir / YAML_FILE


def use_budgeted_offline_engine(settings: Settings) -> None:
    """Make the step's budgeted DuckDB connection (shoprank.resources) the engine of Feast's DuckDB offline store.

    That store runs its queries on ibis's default backend, which ibis otherwise opens without a memory limit or
    spill directory: materialize and historical retrieval then grew past the step's budget and failed with DuckDB's
    own message. One connection per budget and spill directory, reused by later stores of the process."""
    import ibis

    from shoprank.resources import duckdb_connect

    key = (settings.duckdb_memory_limit, str(settings.duckdb_temp_dir))
    if _OFFLINE_ENGINE.get("key") == key:
        return
    ibis.options.default_backend = ibis.duckdb.from_connection(duckdb_connect(settings))
    _OFFLINE_ENGINE["key"] = key


_OFFLINE_ENGINE: dict[str, tuple[str, str]] = {}


def get_feature_store(settings: Settings) -> FeatureStore:
    from feast import FeatureStore

    apply_runtime_env(settings)
    settings.feast_registry_path.parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(settings.feature_repo_dir), fs_yaml_file=feature_store_yaml(settings))
