"""The feature contract is the one declaration: Feast's views, sources and services, the model's columns and the
exported marts all follow it. Adding a view = its dbt mart + a declaration here (docs/architecture.md)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from shoprank import feature_contract as contract
from shoprank.feature_contract import Feature, Ranker, View
from shoprank.mart_files import DAY_PARTITIONED_MARTS, mart_path
from shoprank.settings import get_settings

FEATURE_REPO_MODULES = [
    "feature_repo.entities",
    "feature_repo.data_sources",
    "feature_repo.features",
    "feature_repo.on_demand",
    "feature_repo.feature_services",
    "feature_repo.repo_definitions",
]

# The example of docs/architecture.md "Add a feature view": a seller x day window view, and a ranker reading it.
SELLER_WINDOW = View(
    name="seller_window_features",
    entities=("seller",),
    features=(Feature("seller_clicks_1d", "int64"), Feature("seller_gmv_1d", "float64")),
    description="Yesterday's clicks and GMV of the seller's items.",
)
RANKER_EXAMPLE = Ranker("ranker_example", ("user_features", "item_features", "derived", "seller_window_features"), "x")


def _definitions() -> dict[str, object]:
    modules = [importlib.reload(importlib.import_module(name)) for name in FEATURE_REPO_MODULES]
    return {obj.name: obj for obj in modules[-1].DEFINITIONS}


@pytest.fixture
def with_example_view(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    declared = contract.views
    monkeypatch.setattr(contract, "views", lambda n: {**declared(n), SELLER_WINDOW.name: SELLER_WINDOW})
    monkeypatch.setitem(contract.RANKERS, RANKER_EXAMPLE.name, RANKER_EXAMPLE)
    yield
    monkeypatch.undo()
    _definitions()  # the feature_repo modules as declared again


def test_feast_definitions_follow_the_contract() -> None:
    definitions = _definitions()
    for view in contract.views(get_settings().simulator.categories).values():
        feast_view = definitions[view.name]
        assert [f.name for f in feast_view.features] == view.feature_names
        assert feast_view.ttl.days == view.ttl_days
        assert list(feast_view.entities) == list(view.entities)
        marts = get_settings().marts_export_dir
        assert feast_view.batch_source.path == str(mart_path(marts, view.mart))
        # a day-partitioned mart's source is its folder of day files (shoprank/mart_files.py)
        folder = view.mart in DAY_PARTITIONED_MARTS
        assert feast_view.batch_source.path.endswith(view.mart if folder else f"{view.mart}.parquet")
    for name in contract.RANKERS:
        service = definitions[name]
        assert [p.name for p in service.feature_view_projections] == contract.service_views(name)


def test_a_declared_view_reaches_feast_the_service_and_the_model_columns(with_example_view: None) -> None:
    definitions = _definitions()
    view = definitions["seller_window_features"]
    assert [f.name for f in view.features] == ["seller_clicks_1d", "seller_gmv_1d"]
    assert view.batch_source.path.endswith("seller_window_features.parquet")
    service = definitions["ranker_example"]
    assert [p.name for p in service.feature_view_projections][-1] == "seller_window_features"
    columns = contract.feature_columns_for("ranker_example", 5)
    assert columns[-2:] == ["seller_clicks_1d", "seller_gmv_1d"]
    assert "seller_window_features" in contract.exported_views()


def test_model_columns_leave_out_stored_only_features() -> None:
    columns = contract.feature_columns_for("ranker_v2", 5)
    assert "item_seller_id" not in columns and "seller_impressions_7d" not in columns
    assert "user_cat_share_00" not in columns
    assert columns.index("user_category_affinity") < columns.index("seller_age_days")


def test_unknown_ranker_names_the_declared_ones() -> None:
    with pytest.raises(KeyError, match="ranker_v1"):
        contract.feature_columns_for("ranker_v9", 5)
