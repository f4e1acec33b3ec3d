"""The operator's docs site (served inside Airflow by plugins/shoprank_docs.py): what it lists and what it serves."""

from __future__ import annotations

import json
from pathlib import Path

from orchestration.docs_site import index_html, resolve_file, site_roots
from shoprank.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


def test_resolve_file_serves_files_and_folder_indexes_inside_the_root(tmp_path: Path):
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "index.html").write_text("<p>sub</p>")
    (root / "page.html").write_text("<p>page</p>")
    assert resolve_file(root, "page.html") == (root / "page.html").resolve()
    assert resolve_file(root, "sub") == (root / "sub" / "index.html").resolve()
    assert resolve_file(root, "missing.html") is None
    assert resolve_file(root, "") is None  # the root has no index.html


def test_resolve_file_refuses_paths_that_leave_the_root(tmp_path: Path):
    root = tmp_path / "site"
    root.mkdir()
    (tmp_path / "secret.json").write_text("{}")
    (root / "link").symlink_to(tmp_path / "secret.json")
    assert resolve_file(root, "../secret.json") is None
    assert resolve_file(root, str(tmp_path / "secret.json")) is None  # an absolute path replaces the root
    assert resolve_file(root, "link") is None  # a symlink out of the root


def test_index_lists_reports_newest_first_and_names_the_champion(tmp_path: Path):
    settings = _settings(tmp_path)
    candidates = site_roots(settings)["candidates"]
    for day in ("2026-01-05", "2026-01-07", "2026-01-06"):
        (candidates / day).mkdir(parents=True)
        (candidates / day / "report.html").write_text(day)
    (candidates / "2026-01-08").mkdir()  # training failed before writing its report: not listed
    monitoring = site_roots(settings)["monitoring"] / "2026-01-07"
    monitoring.mkdir(parents=True)
    (monitoring / "feature_drift.json").write_text("{}")
    registry = settings.home_dir / "models" / "registry.json"
    registry.write_text(json.dumps({"champion": "shoprank_ranker:abc", "stack": ["shoprank_ranker:abc"]}))

    page = index_html(settings)

    positions = [page.index(f"candidates/{day}/report.html") for day in ("2026-01-07", "2026-01-06", "2026-01-05")]
    assert positions == sorted(positions)
    assert "candidates/2026-01-08/" not in page
    assert 'href="monitoring/2026-01-07/feature_drift.json"' in page
    assert "champion model: <b>shoprank_ranker:abc</b>" in page
    assert "Data Docs: not built yet" in page
