"""Data Docs (Great Expectations) and dbt docs, built under the settings home; `make docs` calls build_docs.

This module imports nothing heavy at the top: the DAG file reads :func:`docs_paths` at parse time.
"""

from __future__ import annotations

from pathlib import Path

from shoprank.settings import Settings, get_settings


def docs_paths(settings: Settings | None = None) -> dict[str, Path]:
    """Where each docs site's landing page is (whether or not it has been built yet)."""
    settings = settings or get_settings()
    gx_site = settings.quality_dir / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site"
    return {
        "Great Expectations Data Docs": gx_site / "index.html",
        "dbt docs": settings.dbt_artifacts_dir / "index.html",
    }


def build_data_docs(settings: Settings) -> Path:
    """Rebuild the GX Data Docs site from every stored validation result (validation runs also rebuild it)."""
    from quality.runner import get_context

    get_context(settings).build_data_docs()
    return docs_paths(settings)["Great Expectations Data Docs"]


def build_dbt_docs(settings: Settings) -> Path:
    """`dbt docs generate` into the settings' dbt target folder (needs a built warehouse for the catalog)."""
    from dbt.cli.main import dbtRunner

    from shoprank.settings import apply_runtime_env
    from warehouse.build import _release_duckdb, dbt_args

    apply_runtime_env(settings)
    settings.ensure_dirs()
    try:
        result = dbtRunner().invoke(["docs", *dbt_args(settings, "generate"), "--quiet"])
    finally:
        _release_duckdb()
    if not result.success:
        raise RuntimeError(f"dbt docs generate failed: {result.exception}")
    return docs_paths(settings)["dbt docs"]


def build_docs(settings: Settings | None = None) -> dict[str, str]:
    settings = settings or get_settings()
    return {
        "Great Expectations Data Docs": str(build_data_docs(settings)),
        "dbt docs": str(build_dbt_docs(settings)),
    }


def main() -> None:
    """Build both sites and print where to open them (`make docs`)."""
    for name, path in build_docs().items():
        print(f"{name}: file://{path}")
