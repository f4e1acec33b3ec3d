"""Label Studio on loopback, from its own venv with its own SQLite database: the relevance project, tasks,
labellers' annotations and the export, over its HTTP API; and the daily labelling flow through it.

Needs Label Studio installed (`make labelstudio-install`; `make test-profiles` does it): the venv of
settings.labelling.venv, of this test home, or of the default home. Its first start migrates a fresh database
(minutes on a loaded machine).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from labelling import studio, workflow
from labelling.exports import ExportError
from labelling.studio_client import StudioClient
from producers.simulator import simulate
from shoprank.settings import LabellingSettings, Settings, SimulatorSettings, get_settings

pytestmark = pytest.mark.profiles

RUN_DATE = date(2026, 1, 7)
TINY = {"users": 300, "items": 150, "sellers": 10, "categories": 5, "requests_per_day": 600, "slate_size": 10}


def _installed_venv() -> Path:
    settings = get_settings()
    candidates = [settings.labelling.venv, settings.labelstudio_dir / "venv"]
    candidates.append(settings.model_copy(update={"home": None}).labelstudio_dir / "venv")  # the default home
    for venv in candidates:
        if venv is not None and (venv / "bin" / "label-studio").exists():
            return venv
    pytest.fail("Label Studio is not installed: run `make labelstudio-install` (or make test-profiles)")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory):
    home = Path(tmp_path_factory.mktemp("labelstudio-home"))
    cfg = LabellingSettings(venv=_installed_venv(), daily_budget=12, gold_share=0.2, max_overlap=3)
    settings = Settings(home=home, simulator=SimulatorSettings(**TINY, days=2), labelling=cfg)
    studio.start(settings, timeout=1200)
    yield settings
    studio.stop(settings)


@pytest.fixture()
def client(settings):
    conn = studio.connection(settings)
    with StudioClient(conn.url, conn.token) as http:
        yield http


def test_label_studio_listens_on_loopback_with_its_database_under_the_home(settings):
    conn = studio.connection(settings)
    assert conn.url.startswith("http://127.0.0.1:")
    assert (settings.labelstudio_dir / "data" / "label_studio.sqlite3").stat().st_size > 0


def test_project_tasks_annotations_and_export_round_trip(client):
    project_id = client.create_project("round trip")
    assert client.find_project("round trip") == project_id
    pairs = [
        {"pair_id": "kite|i000001", "query": "kite", "title": "eco kite", "category": "6", "price": "12.50"},
        {"pair_id": "kite|i000002", "query": "kite", "title": "pro lamp", "category": "3", "price": "40.00"},
        {"pair_id": "kite|i000003", "query": "kite", "title": "mini kite live deal", "category": "6", "price": "9"},
    ]
    ids = client.import_tasks(project_id, pairs)
    assert sorted(ids) == sorted(p["pair_id"] for p in pairs)
    alice, bob = client.ensure_user("alice@labellers.test"), client.ensure_user("bob@labellers.test")
    assert client.ensure_user("alice@labellers.test") == alice != bob
    client.add_prediction(ids["kite|i000001"], 3, 0.9, "relevance-model")
    posted = {
        (ids["kite|i000001"], alice, 3, 8.5),
        (ids["kite|i000001"], bob, 2, 14.0),
        (ids["kite|i000002"], alice, 0, 4.25),
        (ids["kite|i000003"], bob, 2, 11.0),
    }
    for task_id, user, grade, seconds in posted:
        client.annotate(task_id, grade, user, seconds)
    judgements = client.export(project_id, set(ids.values()))
    got = {(j.task_id, int(j.labeller), j.grade, j.seconds) for j in judgements}
    assert got == posted
    assert {j.pair_id for j in judgements} == set(ids)
    # An export holding a task this run did not import is refused, naming it.
    with pytest.raises(ExportError, match=f"task {ids['kite|i000003']} is unknown"):
        client.export(project_id, {ids["kite|i000001"], ids["kite|i000002"]})


def test_the_daily_flow_samples_imports_labels_exports_and_aggregates_through_label_studio(settings):
    simulate(settings, RUN_DATE)
    sampled = workflow.sample(settings, RUN_DATE)
    assert sampled["tasks"] >= 10 and sampled["by_stratum"].get("gold", 0) >= 2
    imported = workflow.import_tasks(settings, RUN_DATE)
    assert imported["imported"] == sampled["tasks"]
    labelled = workflow.simulate_labellers(settings, RUN_DATE)
    exported = workflow.export(settings, RUN_DATE)
    assert exported["judgements"] == labelled["annotations"]  # every answer came back out of Label Studio
    report = workflow.aggregate_day(settings, RUN_DATE)
    grades = pd.read_parquet(workflow.grades_path(settings))
    tasks = pd.read_parquet(settings.labels_dir / "tasks" / f"dt={RUN_DATE}" / "tasks.parquet")
    assert set(grades["pair_id"]) == set(tasks.loc[tasks["gold_grade"].isna(), "pair_id"])
    assert grades["grade"].between(0, 3).all() and (grades["n_labels"] >= 1).all()
    assert report["labels"] == labelled["annotations"]
    # Gold went to all twelve labellers; the crowd's 20% careless (2 of 12) are judged on it.
    assert report["labels"] >= 12 * sampled["by_stratum"]["gold"]
