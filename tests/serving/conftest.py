"""A complete, tiny serving world under a temporary SHOPRANK_HOME, built without the simulator or dbt.

Synthetic item/user feature marts with the feature repo's exact schema, a real ``feast apply`` + materialize into
the SQLite online store, and a real (tiny) XGBRanker saved in the BentoML model store with the training contract's
metadata. Everything is session-scoped: built once (~10 s), shared by the in-process and HTTP tests.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from shoprank.mart_files import DAY_PARTITIONED_MARTS, day_file, mart_exists, read_mart
from shoprank.ranking_features import (
    ITEM_FEATURES,
    add_derived_features,
    category_share_columns,
    model_feature_columns,
    model_matrix,
)
from shoprank.settings import Settings, apply_runtime_env, get_settings
from tests.support.processes import ServerFailedToStart, background_server, free_port
from warehouse.publish import publish_snapshot

N_USERS = 50
# POST /admin/reload's token in the test world (settings.serving.admin_token has no default).
ADMIN_TOKEN = "test-admin-token"
N_ITEMS = 200
# The modules of feature_repo/ (data_sources reads the marts' path from the settings when imported): set aside
# during this fixture's `feast apply` so it registers this home's marts, then restored for other tests.
FEATURE_REPO_MODULES = ("data_sources", "entities", "features", "feature_services", "repo_definitions")


@dataclass
class ServingWorld:
    settings: Settings
    env: dict[str, str]
    user_ids: list[str]
    item_ids: list[str]
    model_tag: str


def _snapshots() -> list[pd.Timestamp]:
    today = pd.Timestamp(datetime.now(UTC).date(), tz="UTC")
    return [today - pd.Timedelta(days=2), today - pd.Timedelta(days=1)]


def _as_mart(frame: pd.DataFrame) -> pd.DataFrame:
    """feature_ts as dbt-duckdb writes it (timestamptz, microseconds); Feast's DuckDB store cannot cast ns+tz."""
    return frame.assign(feature_ts=frame["feature_ts"].astype("datetime64[us, UTC]"))


def write_mart(marts: Path, name: str, frame: pd.DataFrame) -> None:
    """Write a synthetic mart as dbt exports it: ``<name>.parquet``, or a day-partitioned mart's day files
    (shoprank/mart_files.py), each with its ``dt`` (the feature day) as the models write it."""
    if name not in DAY_PARTITIONED_MARTS:
        frame.to_parquet(marts / f"{name}.parquet", index=False)
        return
    frame = frame.assign(dt=pd.to_datetime(frame["feature_ts"], utc=True).dt.date)
    (marts / name).mkdir(parents=True, exist_ok=True)
    for day, rows in frame.groupby("dt", sort=True):
        rows.to_parquet(day_file(marts, name, day), index=False)


def make_item_features(rng: np.random.Generator, n_categories: int) -> pd.DataFrame:
    frames = []
    for ts in _snapshots():
        impressions = rng.integers(0, 500, N_ITEMS)
        clicks = rng.binomial(impressions, rng.uniform(0.01, 0.2, N_ITEMS))
        purchases = rng.binomial(clicks, 0.2)
        frames.append(
            pd.DataFrame(
                {
                    "item_id": [f"i{i:06d}" for i in range(N_ITEMS)],
                    "feature_ts": ts,
                    "item_type_code": rng.integers(0, 3, N_ITEMS).astype("int64"),
                    "item_category_id": rng.integers(0, n_categories, N_ITEMS).astype("int64"),
                    "item_seller_id": [f"s{i % 17:06d}" for i in range(N_ITEMS)],
                    "item_price": rng.uniform(1, 200, N_ITEMS),
                    "item_stock_units": rng.integers(0, 100, N_ITEMS).astype(float),
                    "item_age_days": rng.uniform(0, 60, N_ITEMS),
                    "item_impressions_7d": impressions.astype("int64"),
                    "item_clicks_7d": clicks.astype("int64"),
                    "item_purchases_7d": purchases.astype("int64"),
                    "item_ctr_7d": (clicks + 1) / (impressions + 20),
                    "item_cvr_7d": (purchases + 1) / (clicks + 20),
                    "item_is_new": rng.integers(0, 2, N_ITEMS).astype("int64"),
                }
            )
        )
    return _as_mart(pd.concat(frames, ignore_index=True))


def make_user_features(rng: np.random.Generator, n_categories: int) -> pd.DataFrame:
    frames = []
    for ts in _snapshots():
        impressions = rng.integers(0, 300, N_USERS)
        clicks = rng.binomial(impressions, 0.1)
        shares = rng.dirichlet(np.ones(n_categories), N_USERS)
        frame = pd.DataFrame(
            {
                "user_id": [f"u{i:06d}" for i in range(N_USERS)],
                "feature_ts": ts,
                "user_impressions_30d": impressions.astype("int64"),
                "user_clicks_30d": clicks.astype("int64"),
                "user_purchases_30d": rng.binomial(clicks, 0.2).astype("int64"),
                "user_ctr_30d": (clicks + 1) / (impressions + 20),
                "user_avg_click_price_30d": rng.uniform(5, 150, N_USERS),
                "user_is_cold_start": (impressions == 0).astype("int64"),
            }
        )
        for c, column in enumerate(category_share_columns(n_categories)):
            frame[column] = shares[:, c]
        frames.append(frame)
    return _as_mart(pd.concat(frames, ignore_index=True))


# A (user, category) pair that had impressions in the older snapshot's window but none in the newest: the mart's
# newest snapshot has no row for it, while the online store still holds the older row. Serving must read it as
# absent (zero), as training's point-in-time join does.
STALE_PAIR = ("u000003", 1)
TITLE_WORDS = (("pro", "eco", "mini"), ("kite", "rug", "lamp", "boots", "tent"))


def make_window_marts(
    rng: np.random.Generator, users: pd.DataFrame, items: pd.DataFrame, n_categories: int
) -> dict[str, pd.DataFrame]:
    """ranker_v3's marts in the dbt models' shapes: user_window_features, item_window_features (dense, one row per
    entity and snapshot) and user_category_features (sparse: pairs with impressions only; see STALE_PAIR)."""
    from shoprank.ranking_features import ITEM_WINDOW_FEATURES, USER_CATEGORY_FEATURES, USER_WINDOW_FEATURES

    user_ids, item_ids = sorted(users["user_id"].unique()), sorted(items["item_id"].unique())
    frames: dict[str, list[pd.DataFrame]] = {"user_window_features": [], "item_window_features": []}
    pairs = []
    for ts in _snapshots():
        window = pd.DataFrame({"user_id": user_ids, "feature_ts": ts})
        for name in USER_WINDOW_FEATURES:
            window[name] = (
                rng.uniform(0, 1, len(user_ids))
                if "rate" in name or "ctr" in name
                else rng.integers(0, 9, len(user_ids))
            )
        window["user_days_since_active"] = np.where(
            rng.random(len(user_ids)) < 0.2, np.nan, rng.integers(1, 5, len(user_ids))
        )
        frames["user_window_features"].append(window)
        window = pd.DataFrame({"item_id": item_ids, "feature_ts": ts})
        for name in ITEM_WINDOW_FEATURES:
            window[name] = (
                rng.uniform(0, 1, len(item_ids))
                if "_cat" in name or "trend" in name or "cover" in name
                else rng.integers(0, 50, len(item_ids))
            )
        frames["item_window_features"].append(window)
        latest = ts == _snapshots()[-1]
        for user_id in user_ids:
            for category in range(n_categories):
                stale = (user_id, category) == STALE_PAIR
                if (stale and not latest) or (not stale and rng.random() < 0.5):
                    row = {"user_id": user_id, "category_id": category, "feature_ts": ts}
                    row.update({name: float(rng.integers(1, 20)) for name in USER_CATEGORY_FEATURES})
                    row.update({"uc_ctr_30d": rng.uniform(0, 0.5), "uc_click_share_30d": rng.uniform(0, 1)})
                    row["uc_taste_30d"] = rng.normal(-1.0, 1.0)  # stored and served, model column or not
                    if stale:
                        row["uc_clicks_30d"] = 99.0
                    pairs.append(row)
    marts = {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}
    marts["user_category_features"] = pd.DataFrame(pairs).astype(
        {name: "int64" for name in ("uc_impressions_30d", "uc_clicks_30d", "uc_purchases_30d")}
    )
    return {name: _as_mart(frame) for name, frame in marts.items()}


def write_catalogue(raw_dir: Path, items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The raw items table's titles (the service's query match reads them): ``<adjective> <noun>``."""
    item_ids = sorted(items["item_id"].unique())
    adjectives, nouns = TITLE_WORDS
    titles = [f"{rng.choice(adjectives)} {rng.choice(nouns)}" for _ in item_ids]
    catalogue = pd.DataFrame({"item_id": item_ids, "title": titles})
    folder = raw_dir / "items" / f"dt={_snapshots()[0].date()}"
    folder.mkdir(parents=True, exist_ok=True)
    catalogue.to_parquet(folder / "part-0.parquet", index=False)
    return catalogue


@functools.lru_cache(maxsize=16)
def newest_snapshot(marts: Path, mart: str) -> pd.DataFrame:
    """A mart's rows of its newest snapshot (feature_ts dropped), its file or day files; read once per mart."""
    rows = read_mart(marts, mart)
    return rows[rows["feature_ts"] == rows["feature_ts"].max()].drop(columns=["feature_ts", "dt"], errors="ignore")


def offline_user_features(marts: Path, user_id: str, n_categories: int) -> dict[str, object]:
    """What the point-in-time join gives for ``user_id`` just after the newest snapshot, straight from the marts: the
    user views' scalars and, per user x category feature, a tuple by category (None: no row in that snapshot)."""
    from shoprank.feature_contract import views

    out: dict[str, object] = {}
    for mart in ("user_features", "user_window_features"):
        rows = newest_snapshot(marts, mart)
        out.update(rows[rows["user_id"] == user_id].drop(columns="user_id").iloc[0].to_dict())
    pairs = newest_snapshot(marts, "user_category_features")
    by_category = pairs[pairs["user_id"] == user_id].set_index("category_id")
    for name in views(n_categories)["user_category_features"].feature_names:  # stored-only columns too
        out[name] = tuple(by_category[name].get(c) for c in range(n_categories))
    return out


def offline_item_features(marts: Path, item_ids: list[str]) -> pd.DataFrame:
    """The items' newest item_features and item_window_features rows, indexed by item_id."""
    frames = [newest_snapshot(marts, mart).set_index("item_id") for mart in ("item_features", "item_window_features")]
    joined = frames[0].join(frames[1].drop(columns=[c for c in frames[1].columns if c in frames[0].columns]))
    return joined.reindex(item_ids).rename_axis("item_id")


def train_tiny_ranker(rng: np.random.Generator, users: pd.DataFrame, items: pd.DataFrame, n_categories: int):
    """A real XGBRanker on synthetic requests: relevance follows item CTR and the user's category affinity."""
    from xgboost import XGBRanker

    rows = []
    for request in range(120):
        user = users.sample(1, random_state=int(rng.integers(1 << 31))).iloc[0]
        slate = items.sample(10, random_state=int(rng.integers(1 << 31))).copy()
        for column in users.columns.drop(["user_id", "feature_ts"]):
            slate[column] = user[column]
        slate["request_id"] = request
        rows.append(slate)
    frame = add_derived_features(pd.concat(rows, ignore_index=True), n_categories)
    utility = frame["item_ctr_7d"] * 10 + frame["user_category_affinity"] * 3 + rng.normal(0, 0.3, len(frame))
    frame["relevance"] = (utility > utility.quantile(0.8)).astype(int)
    ranker = XGBRanker(objective="rank:ndcg", n_estimators=20, max_depth=3, tree_method="hist", n_jobs=1)
    ranker.fit(model_matrix(frame, model_feature_columns()), frame["relevance"], qid=frame["request_id"])
    return ranker


def write_retrieval_marts(marts: Path, items: pd.DataFrame) -> None:
    """The retrieval marts' shape (dbt_project/models/marts/retrieval_*.sql) on the synthetic catalogue:
    user u000000 recently clicked i000000 and i000001, whose co-visitation neighbours are i000100..i000104."""
    snapshot = items["feature_ts"].max().date()
    pd.DataFrame(
        {
            "item_id": ["i000000"] * 3 + ["i000001"] * 2,
            "neighbour_item_id": ["i000100", "i000101", "i000102", "i000103", "i000104"],
            "co_visits": [5, 4, 3, 2, 1],
            "neighbour_rank": [1, 2, 3, 1, 2],
            "snapshot_date": snapshot,
        }
    ).to_parquet(marts / "retrieval_covisitation.parquet", index=False)
    pd.DataFrame(
        {
            "user_id": ["u000000", "u000000"],
            "item_id": ["i000000", "i000001"],
            "last_click_ts": items["feature_ts"].max(),
            "recency_rank": [1, 2],
            "snapshot_date": snapshot,
        }
    ).to_parquet(marts / "retrieval_user_recent.parquet", index=False)
    pd.DataFrame(
        {
            "item_id": ["i000150", "i000151"],
            "category_id": [0, 1],
            "clicks_1d": [9, 8],
            "clicks_prev": [1, 1],
            "trend_score": [5.0, 4.0],
            "trend_rank": [1, 1],
            "snapshot_date": snapshot,
        }
    ).to_parquet(marts / "retrieval_trending.parquet", index=False)


def write_other_views(rng: np.random.Generator, items: pd.DataFrame, marts: Path) -> None:
    """Synthetic rows for any other feature view of the repo (e.g. sellers) whose mart file is missing from
    ``marts``, from the view's own schema, so `feast apply` + materialize work whatever views the repo grows."""
    from feast import Entity, FeatureView

    from feature_repo.repo_definitions import DEFINITIONS

    keys = {"seller_id": sorted(items["item_seller_id"].unique())}
    join_keys = {d.name: [d.join_key] for d in DEFINITIONS if isinstance(d, Entity)}
    for view in DEFINITIONS:
        source = getattr(getattr(view, "batch_source", None), "path", "")
        name = Path(source).name.removesuffix(".parquet")
        if not isinstance(view, FeatureView) or not source or mart_exists(marts, name):
            continue
        (join_key,) = [key for entity in view.entities for key in join_keys[entity]]
        ids = keys.get(join_key, [f"{join_key[0]}{i:06d}" for i in range(10)])
        frames = []
        for ts in _snapshots():
            frame = pd.DataFrame({join_key: ids, "feature_ts": ts})
            for feature in view.features:
                kind = str(feature.dtype)
                frame[feature.name] = (
                    rng.integers(0, 10, len(ids)).astype("int64")
                    if "Int" in kind
                    else (rng.uniform(0, 1, len(ids)) if "Float" in kind else "x")
                )
            frames.append(frame)
        write_mart(marts, name, _as_mart(pd.concat(frames, ignore_index=True)))


@contextlib.contextmanager
def _fresh_feature_repo_modules() -> Iterator[None]:
    names = [*FEATURE_REPO_MODULES, "feature_repo", *(f"feature_repo.{name}" for name in FEATURE_REPO_MODULES)]
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@contextlib.contextmanager
def _bentoml_home(path: Path) -> Iterator[None]:
    """Point BentoML's model store at ``path``, even when an earlier test already fixed BENTOML_HOME in process
    (BentoML resolves its home once, on first use)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    path.mkdir(parents=True, exist_ok=True)
    with (
        BentoMLContainer.bentoml_home.patch(str(path)),
        BentoMLContainer.model_store_dir.patch(str(path / "models")),
        BentoMLContainer.model_store.patch(ModelStore(str(path / "models"))),
    ):
        yield


@pytest.fixture(scope="session")
def serving_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingWorld]:
    import bentoml

    from feature_repo.materialize import apply_feature_repo, materialize

    home = tmp_path_factory.mktemp("shoprank_home")
    cwd = os.getcwd()
    with pytest.MonkeyPatch.context() as mp, contextlib.ExitStack() as stack:
        for key, value in Settings(home=home).runtime_env().items():
            mp.setenv(key, value)
        mp.delenv("SHOPRANK_MODEL_TAG", raising=False)
        mp.setenv("SHOPRANK_SERVING__ADMIN_TOKEN", ADMIN_TOKEN)
        mp.setenv("SHOPRANK_SERVING__LOG_FLUSH_SECONDS", "0.5")
        get_settings.cache_clear()
        settings = get_settings()
        assert settings.home_dir == home.resolve()
        settings.ensure_dirs()
        apply_runtime_env(settings)
        stack.enter_context(_bentoml_home(settings.model_store_dir))
        n_categories = settings.simulator.categories
        rng = np.random.default_rng(0)

        # The marts are written where dbt writes them, then published (no gates judge a synthetic world).
        build = settings.marts_build_dir
        items = make_item_features(rng, n_categories)
        users = make_user_features(rng, n_categories)
        assert set(ITEM_FEATURES) <= set(items.columns)
        items.to_parquet(build / "item_features.parquet", index=False)
        write_mart(build, "user_features", users)
        window_rng = np.random.default_rng(1)  # its own stream: the v1 world's values stay as they were
        for name, mart in make_window_marts(window_rng, users, items, n_categories).items():
            write_mart(build, name, mart)
        write_catalogue(settings.raw_dir, items, window_rng)
        write_retrieval_marts(build, items)

        try:
            with _fresh_feature_repo_modules():
                write_other_views(rng, items, build)
                publish_snapshot(settings, _snapshots()[-1].date(), gates={"synthetic test world": "no gates"})
                apply_feature_repo(settings)
        finally:
            os.chdir(cwd)  # feast's apply_total changes directory
        now = datetime.now(UTC)
        materialize(settings, now - timedelta(days=10), now)

        latest_users = users[users["feature_ts"] == users["feature_ts"].max()]
        latest_items = items[items["feature_ts"] == items["feature_ts"].max()]
        ranker = train_tiny_ranker(rng, latest_users, latest_items, n_categories)
        saved = bentoml.xgboost.save_model(
            settings.training.model_name,
            ranker,
            labels={"stage": "champion", "feature_service": "ranker_v1"},
            metadata={
                "feature_service": "ranker_v1",
                "feature_columns": model_feature_columns(),
                "n_categories": n_categories,
                "metrics": {"ndcg@10": 0.5, "popularity_ndcg@10": 0.4},
                "run_date": now.date().isoformat(),
            },
        )
        stored = bentoml.models.get(saved.tag).path
        assert Path(stored).is_relative_to(settings.model_store_dir), stored
        yield ServingWorld(
            settings=settings,
            env={**os.environ, **settings.runtime_env()},
            user_ids=sorted(users["user_id"].unique()),
            item_ids=sorted(items["item_id"].unique()),
            model_tag=str(saved.tag),
        )
    get_settings.cache_clear()


@contextlib.contextmanager
def bentoml_server(env: dict[str, str], cwd: Path, log_path: Path, ready_timeout: float = 60) -> Iterator[str]:
    """`bentoml serve` on a free loopback port with ``env``; ready when /readyz answers 200; stopped with its
    whole process group on exit.

    Each server gets a BentoML home of its own whose ``models`` links to the store of ``env``'s: `bentoml serve`
    empties its home's Prometheus directory at start, which would wipe the metrics of a server already running on
    the same home (the world's, while a test starts another one)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = log_path.parent / f"bentoml-serve-{port}"
    home.mkdir(parents=True)
    (home / "models").symlink_to(Path(env["BENTOML_HOME"]) / "models")
    env = {**env, "BENTOML_HOME": str(home)}
    command = [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:RankingService"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    try:
        with background_server(command, f"{url}/readyz", log_path, env=env, cwd=cwd, ready_timeout=ready_timeout):
            yield url
    except ServerFailedToStart as err:
        pytest.fail(f"bentoml serve: {err}")


@contextlib.contextmanager
def pinned_model_client(world: ServingWorld, tag: str, name: str, **env: str) -> Iterator[httpx.Client]:
    """An HTTP client on a `bentoml serve` of the world pinned to model ``tag`` (SHOPRANK_MODEL_TAG), with extra
    ``env``; its log is ``<home>/bentoml-<name>.log``."""
    settings = world.settings
    full_env = {**world.env, "SHOPRANK_MODEL_TAG": tag, **env}
    with (
        bentoml_server(full_env, settings.project_root, settings.home_dir / f"bentoml-{name}.log") as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


@pytest.fixture(scope="session")
def server_url(serving_world: ServingWorld) -> Iterator[str]:
    """The serving world's service over HTTP, shared by the HTTP test modules."""
    settings = serving_world.settings
    with bentoml_server(serving_world.env, settings.project_root, settings.home_dir / "bentoml-serve.log") as url:
        yield url


def train_tiny_v3_ranker(settings: Settings, world: ServingWorld, rng: np.random.Generator):
    """A real XGBRanker on ranker_v3's columns, its rows built from the marts like training's (feed and search
    requests): relevance follows the user x category clicks, the 30-day item CTR and the query match."""
    from xgboost import XGBRanker

    from serving.ranking import build_feature_frame
    from shoprank.ranking_features import feature_columns_for, query_title_match, title_words

    n_categories = settings.simulator.categories
    marts = settings.marts_export_dir
    catalogue = pd.read_parquet(settings.raw_dir / "items").set_index("item_id")["title"]
    items = offline_item_features(marts, world.item_ids)
    frames = []
    for request in range(60):
        user_id = str(rng.choice(world.user_ids[:20]))
        ids = [str(i) for i in rng.choice(world.item_ids, 12, replace=False)]
        query = str(catalogue[ids[0]]).split(" ")[1] if request % 2 else None
        match = query_title_match(query, [title_words(catalogue[i]) for i in ids])
        user = offline_user_features(marts, user_id, n_categories)
        frame = build_feature_frame(user, items.loc[ids], ids, n_categories, {"query_title_match": match})
        frames.append(frame.assign(request_id=request))
    frame = pd.concat(frames, ignore_index=True)
    utility = (
        frame["uc_clicks_30d"].fillna(0) / 10
        + frame["item_ctr_30d_cat"] * 3
        + frame["query_title_match"].fillna(0) * 2
        + rng.normal(0, 0.2, len(frame))
    )
    frame["relevance"] = (utility > utility.quantile(0.75)).astype(int)
    columns = feature_columns_for("ranker_v3", n_categories)
    ranker = XGBRanker(objective="rank:ndcg", n_estimators=25, max_depth=3, tree_method="hist", n_jobs=1)
    ranker.fit(model_matrix(frame, columns), frame["relevance"], qid=frame["request_id"])
    return ranker, columns


def save_model_beside(
    world: ServingWorld, suffix: str, ranker: object, feature_service: str, columns: list[str], **extra: object
) -> str:
    """Save ``ranker`` as ``<model_name>_<suffix>`` in the world's model store (so ``<model_name>:latest``, what the
    world's default service loads, stays the v1 model) with the card serving needs; returns its tag.
    ``custom_objects`` in ``extra`` go to BentoML, the rest into the metadata."""
    import bentoml

    settings = world.settings
    custom_objects = extra.pop("custom_objects", None)
    saved = bentoml.xgboost.save_model(
        f"{settings.training.model_name}_{suffix}",
        ranker,
        labels={"stage": "challenger", "feature_service": feature_service},
        custom_objects=custom_objects,
        metadata={
            "feature_service": feature_service,
            "feature_columns": columns,
            "n_categories": settings.simulator.categories,
            "run_date": datetime.now(UTC).date().isoformat(),
            **extra,
        },
    )
    return str(saved.tag)


@pytest.fixture(scope="session")
def v3_model_tag(serving_world: ServingWorld) -> str:
    """A ranker_v3 model in the serving world's model store, under its own name so that `<model_name>:latest` (what
    the world's default service loads) stays the v1 model; a service serves it when pinned with SHOPRANK_MODEL_TAG."""
    ranker, columns = train_tiny_v3_ranker(serving_world.settings, serving_world, np.random.default_rng(3))
    return save_model_beside(serving_world, "v3", ranker, "ranker_v3", columns, metrics={"ndcg@10": 0.6})
