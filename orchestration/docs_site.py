"""The operator's docs, served behind Airflow's login: Data Docs, dbt docs, evaluation reports, monitoring reports.

``plugins/shoprank_docs.py`` mounts :func:`create_docs_app` in Airflow's API server (under ``/shoprank``) and adds
a "ShopRank docs" entry to the UI's navigation, so an operator goes from a DAG run to the reports that explain it
without a shell on the machine. The app itself knows nothing of Airflow: the caller passes the dependency that
authenticates a request (Airflow's ``get_user``), which is what makes it testable on its own.

Every file is served from one of a few fixed roots taken from the settings; a path that leaves its root is a 404.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoprank.settings import Settings


def site_roots(settings: Settings) -> dict[str, Path]:
    """URL segment -> folder served under it (whether or not it has been built yet)."""
    from orchestration.experiments import report_dir as experiments_report_dir
    from orchestration.quality_docs import docs_paths

    docs = docs_paths(settings)
    return {
        "data-docs": docs["Great Expectations Data Docs"].parent,
        "dbt-docs": docs["dbt docs"].parent,
        "candidates": settings.home_dir / "models" / "candidates",
        "monitoring": settings.home_dir / "monitoring",
        "quality": settings.quality_dir,  # the gates' JSON results (the dashboard's timeline links them)
        "decisions": settings.home_dir / "models" / "decisions",
        "experiments": experiments_report_dir(settings),  # `shoprank experiment report`
    }


def resolve_file(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names inside ``root`` (a folder means its index.html); None if absent or outside."""
    root = root.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def index_html(settings: Settings) -> str:
    """The landing page: the dashboard (orchestration/dashboard_page.py), then what has been built, newest first,
    as links relative to this page."""
    from orchestration.dashboard_page import render

    roots = site_roots(settings)

    def link(href: str, label: str, exists: bool, hint: str) -> str:
        if exists:
            return f'<li><a href="{html.escape(href)}">{html.escape(label)}</a></li>'
        return f"<li>{html.escape(label)}: not built yet ({html.escape(hint)})</li>"

    docs = [
        link("data-docs/", "Great Expectations Data Docs", (roots["data-docs"] / "index.html").is_file(), "make docs"),
        link("dbt-docs/", "dbt docs (lineage graph)", (roots["dbt-docs"] / "index.html").is_file(), "make docs"),
    ]
    reports = [
        link(f"candidates/{day.name}/report.html", f"{day.name} evaluation report", True, "")
        + (f" <small>({html.escape(day.name)} card: <a href='candidates/{day.name}/candidate.json'>json</a>)</small>")
        for day in sorted(roots["candidates"].glob("*"), reverse=True)
        if (day / "report.html").is_file()
    ]
    monitoring = [
        f"<li>{html.escape(day.name)}: "
        + ", ".join(
            f'<a href="monitoring/{day.name}/{f.name}">{html.escape(f.stem)}</a>' for f in sorted(day.glob("*.json"))
        )
        + "</li>"
        for day in sorted(roots["monitoring"].glob("*"), reverse=True)
        if day.is_dir()
    ]
    sections: list[tuple[str, list[str]]] = [
        ("Data quality and lineage", docs),
        (
            "Evaluation reports (one per training day)",
            reports or ["<li>none yet: the daily DAG's train task writes them</li>"],
        ),
        ("Monitoring (shoprank_monitor)", monitoring or ["<li>none yet</li>"]),
    ]
    return render(settings, sections)


def create_docs_app(settings: Settings, authenticate: Callable[..., Any]) -> Any:
    """A FastAPI app serving the index and the files under :func:`site_roots`; every route depends on
    ``authenticate`` (which raises 401/403 for an anonymous or invalid caller)."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    app = FastAPI(title="ShopRank docs", dependencies=[Depends(authenticate)], docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return index_html(settings)

    @app.get("/{site}/{relative:path}")
    def site_file(site: str, relative: str) -> FileResponse:
        roots = site_roots(settings)
        if site not in roots:
            raise HTTPException(status_code=404, detail=f"unknown docs site {site!r}; one of {sorted(roots)}")
        path = resolve_file(roots[site], relative)
        if path is None:
            raise HTTPException(
                status_code=404, detail=f"no file {site}/{relative} (docs sites are built by `make docs`)"
            )
        return FileResponse(path)

    return app
