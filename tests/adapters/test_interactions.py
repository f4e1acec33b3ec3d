"""The generic interactions adapter: any table, any rating scale or event types, validated before the home changes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from producers.adapters import interactions as adapter
from producers.adapters.interactions import ImportValidationError, import_interactions
from producers.adapters.mapping import InteractionMapping
from producers.simulator import SCHEMAS, TABLES
from shoprank.settings import Settings, SimulatorSettings, get_settings

DAY = 1_767_225_600  # 2026-01-01 00:00 UTC, epoch seconds


def _settings(tmp_path: Path, categories: int = 12) -> Settings:
    return Settings(home=tmp_path / "home", simulator=SimulatorSettings(categories=categories))


def _events(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.raw_dir / "events")


def _funnel(settings: Settings) -> dict[str, int]:
    return _events(settings)["event_type"].value_counts().to_dict()


def _ratings_csv(tmp_path: Path) -> Path:
    """Ten-point scale, other column names, timestamps as ISO strings."""
    rows = [
        ("alice", "sku-1", "2026-01-01T10:00:00", "6.5", "shoes"),  # below click_at 7
        ("alice", "sku-2", "2026-01-01T10:01:00", "7", "shoes"),  # click
        ("bob", "sku-1", "2026-01-02T09:00:00", "9.5", "shoes"),  # click + cart + purchase (purchase_at 9.5)
        ("bob", "sku-3", "2026-01-02T09:05:00", "9.4", "hats"),  # click only: fractions are not truncated
    ]
    path = tmp_path / "ratings.csv"
    pd.DataFrame(rows, columns=["member", "product", "when", "stars", "dept"]).to_csv(path, index=False)
    return path


CSV_MAPPING = {
    "user": "member",
    "item": "product",
    "timestamp": {"column": "when", "unit": None},
    "rating": {"column": "stars", "click_at": 7, "purchase_at": 9.5, "scale": [1, 10]},
    "items": {"category": "dept"},
}


def test_csv_ratings_on_a_ten_point_scale(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    summary = import_interactions(settings, _ratings_csv(tmp_path), InteractionMapping.model_validate(CSV_MAPPING))
    assert _funnel(settings) == {"impression": 4, "click": 3, "add_to_cart": 1, "purchase": 1}
    assert summary["first_day"] == "2026-01-01" and summary["last_day"] == "2026-01-02"
    for table in TABLES:
        for path in sorted((settings.raw_dir / table).glob("dt=*/part-0.parquet")):
            assert pq.read_schema(path).remove_metadata().equals(SCHEMAS[table]), path
    events = _events(settings)
    assert set(events["user_id"]) == {"ualice", "ubob"} and set(events["item_id"]) == {"isku-1", "isku-2", "isku-3"}
    impressions = events[events["event_type"] == "impression"].sort_values("event_ts")
    assert impressions["position"].tolist() == [1, 2, 1, 2]  # a user's day, in time order, is one slate
    assert (events["event_ts"].dt.date.astype(str) == events["dt"].astype(str)).all()
    # categories: sorted labels, then the explicit unknown
    assert summary["categories"]["ids"] == {"hats": 0, "shoes": 1, "unknown": 2}


def test_parquet_ratings_with_fractional_thresholds(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    frame = pd.DataFrame(
        {
            "uid": [1, 1, 2, 2, 3],
            "iid": [10, 11, 10, 12, 11],
            "ts_ms": [(DAY + 60 * k) * 1000 for k in range(5)],
            "score": [3.4, 3.5, 4.49, 4.5, 5.0],  # 0.5-5 scale: click at 3.5, purchase at 4.5
        }
    )
    path = tmp_path / "ratings.parquet"
    frame.to_parquet(path)
    mapping = InteractionMapping.model_validate(
        {
            "user": "uid",
            "item": "iid",
            "timestamp": {"column": "ts_ms", "unit": "ms"},
            "rating": {"column": "score", "click_at": 3.5, "purchase_at": 4.5, "scale": [0.5, 5]},
            "id_width": 4,
        }
    )
    import_interactions(settings, path, mapping)
    assert _funnel(settings) == {"impression": 5, "click": 4, "add_to_cart": 2, "purchase": 2}
    events = _events(settings)
    assert sorted(events["user_id"].unique()) == ["u0001", "u0002", "u0003"]
    items = pd.read_parquet(settings.raw_dir / "items")
    assert (items["category_id"] == 0).all()  # no category column: every item is the unknown category (id 0 of 1)


def test_event_types_map_onto_the_funnel(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    frame = pd.DataFrame(
        {
            "visitor": ["v1", "v1", "v1", "v1", "v2", "v2", "v3"],
            "itemid": ["a", "a", "a", "b", "b", "b", "c"],
            "timestamp": [DAY + s for s in (0, 10, 20, 30, 40, 50, 60)],
            "event": ["view", "addtocart", "transaction", "view", "transaction", "transaction", "wishlist"],
        }
    )
    mapping = InteractionMapping.model_validate(
        {
            "user": "visitor",
            "item": "itemid",
            "event_type": {
                "column": "event",
                "values": {"view": "impression", "addtocart": "add_to_cart", "transaction": "purchase"},
                "unmapped": "ignore",
            },
        }
    )
    summary = import_interactions(settings, frame, mapping)
    # v1/a collapses into one interaction reaching purchase; v2/b: a purchase implies its impression, click, cart
    assert _funnel(settings) == {"impression": 3, "click": 2, "add_to_cart": 2, "purchase": 2}
    events = _events(settings)
    purchases = events[events["event_type"] == "purchase"].set_index("user_id")["quantity"]
    assert purchases.to_dict() == {"uv1": 1, "uv2": 2}  # two transaction rows of one day: quantity 2
    assert summary["counts"]["events_ignored"] == 1 and summary["counts"]["same_day_repeats_merged"] == 3
    clicks = events[events["event_type"] != "impression"]
    shown = events[events["event_type"] == "impression"].set_index(["request_id", "item_id"])["event_ts"]
    for _, row in clicks.iterrows():  # every outcome follows its impression in the same request
        assert row["event_ts"] > shown[(row["request_id"], row["item_id"])]


def test_unknown_and_missing_categories_get_the_explicit_unknown_id(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    frame = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "u"],
            "item_id": ["p1", "p2", "p3", "p4"],
            "timestamp": [DAY + k for k in range(4)],
            "rating": [5, 5, 5, 5],
        }
    )
    items = pd.DataFrame({"item_id": ["p1", "p2", "p3", "p4"], "genre": ["Drama", "Comedy", "Opera", None]})
    mapping = InteractionMapping.model_validate(
        {
            "rating": {"click_at": 4},
            "items": {"category": "genre"},
            "category": {"labels": ["Comedy", "Drama"], "unknown_label": "other"},
        }
    )
    summary = import_interactions(settings, frame, mapping, items=items)
    ids = pd.read_parquet(settings.raw_dir / "items").set_index("item_id")["category_id"].to_dict()
    assert ids == {"ip1": 1, "ip2": 0, "ip3": 2, "ip4": 2}  # never silently 0: Opera and None -> "other" (2)
    assert summary["categories"]["unknown_id"] == 2 and summary["categories"]["n_categories"] == 3
    assert summary["counts"]["items_unlisted_category"] == 1 and summary["counts"]["items_missing_category"] == 1
    assert summary["build_with"] == {"SHOPRANK_SIMULATOR__CATEGORIES": 3}


def _base() -> tuple[pd.DataFrame, dict]:
    frame = pd.DataFrame(
        {
            "user_id": ["1", "2", "3"],
            "item_id": ["7", "8", "9"],
            "timestamp": [str(DAY), str(DAY + 5), str(DAY + 9)],
            "rating": ["4", "5", "2.5"],
            "category": ["a", "b", "c"],
            "price": ["9.99", "5", "1"],
        }
    )
    mapping = {"rating": {"click_at": 4, "purchase_at": 5, "scale": [1, 5]}, "items": {"category": "category"}}
    return frame, mapping


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame, dict], None]:
    def change(frame: pd.DataFrame, _: dict) -> None:
        frame.loc[row, column] = value

    return change


BAD_INPUTS: dict[str, tuple[Callable[[pd.DataFrame, dict], None], str]] = {
    "missing column": (lambda f, m: m.update(user="customer"), "missing column(s) user -> 'customer'"),
    "null key": (_set("item_id", 1, None), "column 'item_id': 1 null key(s)"),
    "bad timestamp": (_set("timestamp", 2, "yesterday"), "timestamp column 'timestamp': not a number (epoch s)"),
    "timestamp out of range": (
        lambda f, m: m.update(timestamp={"unit": "ms"}),  # seconds read as milliseconds: January 1970
        "timestamp column 'timestamp': outside [1990-01-01",
    ),
    "future timestamp": (_set("timestamp", 0, str(4_102_444_800)), "timestamp column 'timestamp': outside"),
    "bad rating": (_set("rating", 0, "five"), "rating column 'rating': not a number: 1 row(s), e.g. ['five']"),
    "rating off the scale": (_set("rating", 1, "10"), "rating column 'rating': outside the scale (1.0, 5.0)"),
    "unmapped event type": (
        lambda f, m: (
            f.insert(0, "kind", ["view", "buy", "share"]),
            m.pop("rating"),
            m.update(event_type={"column": "kind", "values": {"view": "impression", "buy": "purchase"}}),
        ),
        "event_type column 'kind': value(s) not in the mapping's `values` ['buy', 'view']: 1 row(s), "
        "counts {'share': 1}",
    ),
    "bad price": (
        lambda f, m: (f.__setitem__("price", ["9.99", "free", "-1"]), m["items"].update(price="price")),
        "price column 'price': not a number > 0: 2 row(s), e.g. ['free', '-1']",
    ),
    "duplicates refused": (
        lambda f, m: (
            f.loc.__setitem__((2, ["user_id", "item_id", "timestamp"]), ["1", "7", str(DAY)]),
            m.update(duplicates="error"),
        ),
        "interactions: 1 duplicate row(s) on ['user_id', 'item_id', 'timestamp']",
    ),  # fmt: skip
    "too many categories": (
        lambda f, m: f.__setitem__("category", [f"c{k}" for k in range(3)]),
        "4 categories, more than settings.simulator.categories=3 (set SHOPRANK_SIMULATOR__CATEGORIES=4",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_each_validation_error_names_the_column_and_bad_values(case: str, tmp_path: Path) -> None:
    frame, mapping = _base()
    change, message = BAD_INPUTS[case]
    change(frame, mapping)
    with pytest.raises(ImportValidationError) as error:
        import_interactions(_settings(tmp_path, categories=3), frame, InteractionMapping.model_validate(mapping))
    assert message in str(error.value)
    assert not (tmp_path / "home" / "raw").exists()  # validation happens before the home is touched


def test_duplicate_item_keys_and_unlisted_labels_are_refused(tmp_path: Path) -> None:
    frame, mapping = _base()
    items = pd.DataFrame({"item_id": ["7", "7", "9"], "category": ["a", "b", "zzz"]})
    mapping["category"] = {"labels": ["a", "b"], "on_unknown": "error"}
    with pytest.raises(ImportValidationError) as error:
        import_interactions(_settings(tmp_path), frame, InteractionMapping.model_validate(mapping), items=items)
    assert "items column 'item_id': duplicate keys (one row per key): 2 row(s), e.g. ['7']" in str(error.value)


def _raw_digest(settings: Settings) -> dict[str, str]:
    return {
        str(path.relative_to(settings.raw_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(settings.raw_dir.rglob("*"))
        if path.is_file()
    }


def test_a_failed_import_leaves_the_raw_data_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    frame, mapping = _base()
    import_interactions(settings, frame, InteractionMapping.model_validate(mapping))
    before = _raw_digest(settings)
    assert any(name.startswith("events/") for name in before)

    bad = frame.assign(timestamp=["not a time"] * 3)  # fails validation
    with pytest.raises(ImportValidationError):
        import_interactions(settings, bad, InteractionMapping.model_validate(mapping))
    assert _raw_digest(settings) == before

    written = []

    def crash_after_two(*args: object, **kwargs: object) -> None:  # a crash half-way through writing
        if len(written) == 2:
            raise OSError("disk full")
        written.append(args)
        original(*args, **kwargs)  # type: ignore[arg-type]

    original = adapter.write_partition
    monkeypatch.setattr(adapter, "write_partition", crash_after_two)
    later = frame.assign(timestamp=[str(DAY + 86_400 * 3)] * 3)
    with pytest.raises(OSError, match="disk full"):
        import_interactions(settings, later, InteractionMapping.model_validate(mapping))
    assert _raw_digest(settings) == before
    assert [p.name for p in settings.raw_dir.parent.iterdir() if p.name.startswith(".raw-")] == []


def test_cli_import_with_a_mapping_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.cli import app

    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "user: member\nitem: product\ntimestamp: {column: when, unit: null}\nitems: {category: dept}\n"
        "rating: {column: stars, click_at: 7, purchase_at: 9.5, scale: [1, 10]}\n"
    )
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(app, ["import-interactions", str(_ratings_csv(tmp_path)), "--mapping", str(mapping)])
        assert ok.exit_code == 0, ok.output
        bad = runner.invoke(
            app, ["import-interactions", str(_ratings_csv(tmp_path)), "--mapping", str(mapping), "--click-at", "11"]
        )
        assert bad.exit_code == 2 and "thresholds must satisfy click_at <= cart_at <= purchase_at" in bad.output
    finally:
        get_settings.cache_clear()


@pytest.fixture()
def restore_env() -> Iterator[None]:
    saved = dict(os.environ)  # build_warehouse exports the home's paths
    yield
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


def test_a_small_generic_import_builds_with_dbt(tmp_path: Path, restore_env: None) -> None:
    from warehouse.build import build_warehouse

    settings = _settings(tmp_path, categories=3)
    rows = []
    for day in range(4):  # 4 days, 12 users, 9 items in 2 labelled categories + unknown
        for user in range(12):
            for k in range(3):
                item = (user + k + day) % 9
                rows.append(
                    (f"m{user}", f"p{item}", (DAY + day * 86_400 + user * 600 + k * 60) * 1000, (user + item) % 5 + 1)
                )
    frame = pd.DataFrame(rows, columns=["member", "product", "ms", "stars"])
    items = pd.DataFrame({"product": [f"p{i}" for i in range(9)], "kind": ["x", "y", None] * 3, "cost": [2.5] * 9})
    mapping = InteractionMapping.model_validate(
        {
            "user": "member",
            "item": "product",
            "timestamp": {"column": "ms", "unit": "ms"},
            "rating": {"column": "stars", "click_at": 4, "purchase_at": 5},
            "items": {"category": "kind", "price": "cost"},
        }
    )
    summary = import_interactions(settings, frame, mapping, items=items)
    build = build_warehouse(settings, date.fromisoformat(summary["last_day"]))
    assert build["statuses"].get("success", 0) + build["statuses"].get("pass", 0) == build["nodes"]
    examples = pd.read_parquet(Path(build["marts"]["training_examples"]))
    assert len(examples) == len(frame) and examples["label_click"].sum() == summary["funnel"]["click"]
    item_features = pd.read_parquet(Path(build["marts"]["item_features"]))
    assert set(item_features["item_category_id"]) == {0, 1, 2}
