"""What the service serves with, loaded as one immutable bundle so a reload swaps it atomically.

:func:`load_state` builds a new bundle; on reload, a model that fails to load (corrupt, missing) or a feature
service the store does not know leaves the previous model, reader and rules in the new bundle, with the error;
so does a recall index version (shoprank/recall.py) or a pre-ranker (shoprank/prerank.py) that fails to load.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from serving.candidates import RetrievalIndex
from serving.events import load_user_ids
from serving.experiments.config import ExperimentConfigError, ExperimentsConfig, load_experiments
from serving.experiments.popularity import POPULARITY, popularity_bundle
from serving.item_cache import ItemCache, ItemView
from serving.online_features import OnlineFeatureReader
from serving.ranking import servable_columns_missing
from serving.relevance import ServedRelevance, load_relevance
from serving.retrieval import PopularityIndex
from serving.rules.config import RulesConfig, load_rules
from shoprank.item_priors import ItemPriors, load_priors
from shoprank.model_bundle import ModelBundle, load_bundle, load_champion
from shoprank.prerank import PreRanker, load_preranker
from shoprank.query_relevance import COLUMN as RELEVANCE_COLUMN
from shoprank.ranking_features import ITEM_FEATURES, QUERY_FEATURES
from shoprank.recall import RecallIndex, load_recall_index
from shoprank.session import SESSION_QUERY_COLUMNS
from shoprank.settings import Settings

log = logging.getLogger("shoprank.serving")


@dataclass(frozen=True)
class ServingState:
    champion: ModelBundle | None = None
    reader: OnlineFeatureReader | None = None
    items: ItemCache = field(default_factory=ItemCache.empty)
    popularity: PopularityIndex = field(default_factory=PopularityIndex)
    retrieval: RetrievalIndex = field(default_factory=RetrievalIndex)
    # Text and learned recall (the build-retrieval step's indexes); empty until one is built.
    recall: RecallIndex = field(default_factory=RecallIndex)
    # The learned cold-start prior and each item's history (training/cold_start_prior.py); empty until trained.
    priors: ItemPriors = field(default_factory=ItemPriors)
    # The funnel's pre-ranker (training/preranker.py); None: today's path. Its last load error, if the load failed.
    preranker: PreRanker | None = None
    preranker_error: str | None = None
    rules: RulesConfig | None = None
    # The users the published user_features mart knows (POST /events flags others).
    user_ids: frozenset[str] = frozenset()
    load_error: str | None = None
    errors: tuple[str, ...] = ()
    # Running experiments (serving/experiments.yaml) and what their arms serve with, loaded beside the champion:
    # per model tag its bundle and reader, per rules file its rules. An invalid file: no experiment, the error kept.
    experiments: ExperimentsConfig | None = None
    arm_models: dict[str, tuple[ModelBundle, OnlineFeatureReader]] = field(default_factory=dict)
    arm_rules: dict[str, RulesConfig] = field(default_factory=dict)
    # Per interleaving arm (its two tags), one reader of both models' feature services: the slate reads once.
    interleave_readers: dict[tuple[str, str], OnlineFeatureReader] = field(default_factory=dict)
    experiments_error: str | None = None
    # The newest query-item relevance model version (ranker_v3_relevance's feature; serving/relevance.py).
    relevance: ServedRelevance = field(default_factory=ServedRelevance)

    def n_categories(self, settings: Settings) -> int:
        return self.champion.n_categories if self.champion else settings.simulator.categories


def needs_titles(champion: ModelBundle | None) -> bool:
    """Whether the model scores with a request-time query match (the request's, or the session's last search query:
    both need the items' titles)."""
    wanted = {*QUERY_FEATURES, RELEVANCE_COLUMN, *SESSION_QUERY_COLUMNS}
    return champion is not None and bool(set(champion.feature_columns) & wanted)


class UnservableModel(ValueError):
    """The model's feature columns are not all provided by its feature service."""


def check_servable(champion: ModelBundle, reader: OnlineFeatureReader) -> None:
    """Refuse a model whose card names a feature column the feature service cannot provide (stored in one of its
    views, or computed per request): it would score on NaN without anyone noticing."""
    item_columns = [*ITEM_FEATURES, *(f for view in reader.item_views for f in view.features)]
    missing = servable_columns_missing(
        champion.feature_columns, item_columns, reader.user_feature_names, reader.category_feature_names
    )
    if missing:
        raise UnservableModel(
            f"model {champion.tag} needs columns {missing} that feature service {reader.feature_service} "
            "does not provide"
        )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _one_thread(champion: ModelBundle) -> None:
    """Predict on one thread: requests already run in parallel, and OpenMP threads per 500-row predict contend for
    the cores (measured 2.5x slower on a 2-core box)."""
    for model in champion.models():
        set_params = getattr(model, "set_params", None)
        if callable(set_params):
            set_params(n_jobs=1)


def served_item_views(
    champion: ModelBundle | None,
    reader: OnlineFeatureReader | None,
    arm_models: dict[str, tuple[ModelBundle, OnlineFeatureReader]],
) -> tuple[list[ItemView], bool]:
    """The item-side views and whether titles are needed for every model served: the champion and the arms'."""
    readers = [r for r in [reader, *(r for _, r in arm_models.values())] if r is not None]
    views = list({view.name: view for r in readers for view in r.item_views}.values())
    return views, any(needs_titles(m) for m in [champion, *(m for m, _ in arm_models.values())])


def load_items(
    settings: Settings, new_seller_days: float, views: Sequence[ItemView] = (), titles: bool = False
) -> tuple[ItemCache, PopularityIndex, RetrievalIndex]:
    """The item cache (item_features plus the serving feature service's item-side ``views``; with ``titles``, the
    catalogue's titles from the raw items table, which no mart carries), popularity and retrieval.

    The marts pointer is resolved once, and every file of the load read from that published snapshot: a publish
    during the load cannot mix two snapshots. The views' paths (Feast's sources, through the pointer) follow it."""
    pointer = settings.marts_export_dir
    marts = pointer.resolve()
    views = [replace(view, path=marts / view.path.name) if view.path.parent == pointer else view for view in views]
    items = ItemCache.from_marts(marts, new_seller_days, views)
    if titles or settings.recall.prerank:  # the pre-ranker's query match reads them too
        items = items.with_titles(pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "title"]))
    popularity = PopularityIndex.from_items(items)
    return items, popularity, RetrievalIndex.build(items, marts)


def load_recall(settings: Settings, previous: RecallIndex) -> tuple[RecallIndex, str | None]:
    """The recall index CURRENT names, or ``previous`` with the error when it cannot be loaded."""
    try:
        return load_recall_index(settings.recall_dir), None
    except Exception as exc:
        log.exception("recall index unreadable; keeping version %s", previous.version)
        return previous, _error(exc)


def load_prerank(settings: Settings, previous: PreRanker | None) -> tuple[PreRanker | None, str | None]:
    """The pre-ranker CURRENT names, or ``previous`` (None: no pre-ranking) with the error when it cannot load."""
    try:
        return load_preranker(settings.preranker_dir), None
    except Exception as exc:
        log.exception("pre-ranker unreadable; keeping %s", previous.version if previous else "no pre-ranking")
        return previous, _error(exc)


def reopen_reader(settings: Settings, reader: OnlineFeatureReader) -> OnlineFeatureReader:
    """The same feature service(s) on a freshly opened feature store: a new online-store connection (an SQLite
    connection whose file was truncated or replaced keeps failing, even once the file is back). A union reader
    (an interleaving arm's) comes back as the union of its parts, reopened on one store."""
    from shoprank.feature_store import get_feature_store

    store = get_feature_store(settings)
    parts = reader.parts or (reader,)
    return OnlineFeatureReader.union([OnlineFeatureReader(store, r.feature_service, r.n_categories) for r in parts])


def load_state(settings: Settings, previous: ServingState | None = None) -> ServingState:
    """Load the champion, its feature reader, the rules, the item cache and the retrieval index.

    Without ``previous`` (start-up) a failed part is left empty and the service degrades; with it (reload) a
    failed part keeps the previous one.
    """
    errors: list[str] = []
    champion, reader, load_error = (previous.champion, previous.reader, None) if previous else (None, None, None)
    try:
        from shoprank.feature_store import get_feature_store

        new_champion = load_champion(settings)
        _one_thread(new_champion)
        champion, reader = new_champion, None
        new_reader = OnlineFeatureReader(
            get_feature_store(settings), new_champion.feature_service, new_champion.n_categories
        )
        check_servable(new_champion, new_reader)
        reader = new_reader
    except Exception as exc:
        load_error = _error(exc)
        errors.append(f"model: {load_error}")
        log.exception("model or feature store could not be loaded")
        if previous is not None:  # keep serving what served before
            champion, reader = previous.champion, previous.reader
        elif isinstance(exc, UnservableModel):
            champion = None
        elif champion is not None and reader is None:
            load_error = f"feature store: {load_error}"
    rules = previous.rules if previous else None
    try:
        rules = load_rules(settings.rules_file)
    except Exception as exc:
        errors.append(f"rules: {_error(exc)}")
        log.exception("rules file %s invalid; keeping the previous rules", settings.rules_file)
    experiments: ExperimentsConfig | None = None
    arm_models: dict[str, tuple[ModelBundle, OnlineFeatureReader]] = {}
    arm_rules: dict[str, RulesConfig] = {}
    interleave_readers: dict[tuple[str, str], OnlineFeatureReader] = {}
    experiments_error: str | None = None
    try:
        experiments, arm_models, arm_rules, interleave_readers = load_experiment_arms(settings, champion, reader)
    except Exception as exc:
        experiments_error = _error(exc)
        errors.append(f"experiments: {experiments_error}")
        log.error("experiments file %s refused; serving without experiments: %s", settings.experiments_file, exc)
    new_seller_days = rules.exploration.new_seller_days if rules else 14.0
    views, titles = served_item_views(champion, reader, arm_models)
    try:
        items, popularity, retrieval = load_items(settings, new_seller_days, views, titles)
    except Exception as exc:
        errors.append(f"items: {_error(exc)}")
        log.exception("item_features mart unreadable")
        if previous is not None:
            items, popularity, retrieval = previous.items, previous.popularity, previous.retrieval
        else:
            items, popularity, retrieval = ItemCache.empty(), PopularityIndex(), RetrievalIndex()
    recall, recall_error = load_recall(settings, previous.recall if previous is not None else RecallIndex())
    priors = previous.priors if previous is not None else ItemPriors()
    try:
        priors = load_priors(settings.cold_start_prior_path)
    except Exception as exc:
        errors.append(f"priors: {_error(exc)}")
    if recall_error:
        errors.append(f"recall: {recall_error}")
    preranker, preranker_error = load_prerank(settings, previous.preranker if previous is not None else None)
    if preranker_error:
        errors.append(f"preranker: {preranker_error}")
    relevance = load_relevance(settings, previous.relevance if previous is not None else None)
    if relevance.error:
        errors.append(f"relevance: {relevance.error}")
    try:
        user_ids = load_user_ids(settings.marts_export_dir)
    except Exception as exc:
        errors.append(f"users: {_error(exc)}")
        user_ids = previous.user_ids if previous is not None else frozenset()
    return ServingState(
        champion=champion,
        reader=reader,
        items=items,
        popularity=popularity,
        retrieval=retrieval,
        recall=recall,
        priors=priors,
        preranker=preranker,
        preranker_error=preranker_error,
        rules=rules,
        user_ids=user_ids,
        load_error=load_error,
        errors=tuple(errors),
        experiments=experiments,
        arm_models=arm_models,
        arm_rules=arm_rules,
        interleave_readers=interleave_readers,
        experiments_error=experiments_error,
        relevance=relevance,
    )


CHAMPION = "champion"  # an arm's model_tag / interleave entry meaning "the serving champion"


def load_experiment_arms(
    settings: Settings, champion: ModelBundle | None, reader: OnlineFeatureReader | None
) -> tuple[
    ExperimentsConfig,
    dict[str, tuple[ModelBundle, OnlineFeatureReader]],
    dict[str, RulesConfig],
    dict[tuple[str, str], OnlineFeatureReader],
]:
    """The experiments file, every model an arm names (with its feature reader, checked servable), every rules
    file, and per interleaving arm one reader of both models' features. A tag the model store does not know, or an
    unreadable rules file, refuses the whole file naming the field."""
    import bentoml

    from shoprank.feature_store import get_feature_store

    config = load_experiments(settings.experiments_file, settings.experiments_state_file)
    models: dict[str, tuple[ModelBundle, OnlineFeatureReader]] = {}
    for tag, where in config.model_tags().items():
        if tag in (CHAMPION, POPULARITY):
            if champion is None or reader is None:
                raise ExperimentConfigError(f"{where}: no champion is serving")
            # popularity: the same list for everyone, through the model path with the champion's reader
            popular = popularity_bundle(champion.feature_service, champion.n_categories)
            models[tag] = (champion, reader) if tag == CHAMPION else (popular, reader)
            continue
        try:
            bento_model = bentoml.models.get(tag)
        except Exception as exc:
            raise ExperimentConfigError(f"{where}: unknown model tag {tag!r} ({type(exc).__name__})") from None
        if champion is not None and reader is not None and str(bento_model.tag) == champion.tag:
            models[tag] = (champion, reader)
            continue
        bundle = load_bundle(bento_model)
        _one_thread(bundle)
        arm_reader = OnlineFeatureReader(get_feature_store(settings), bundle.feature_service, bundle.n_categories)
        check_servable(bundle, arm_reader)
        models[tag] = (bundle, arm_reader)
    rules: dict[str, RulesConfig] = {}
    for i, experiment in enumerate(config.experiments):
        for j, arm in enumerate(experiment.arms):
            if arm.rules_file is not None and str(arm.rules_file) not in rules:
                path = arm.rules_file if arm.rules_file.is_absolute() else settings.project_root / arm.rules_file
                try:
                    rules[str(arm.rules_file)] = load_rules(path)
                except Exception as exc:
                    raise ExperimentConfigError(
                        f"experiments.{i}.arms.{j}.rules_file: {path}: {type(exc).__name__}: {exc}"
                    ) from None
    pairs: dict[tuple[str, str], OnlineFeatureReader] = {}
    for i, experiment in enumerate(config.experiments):
        for j, arm in enumerate(experiment.arms):
            if arm.interleave is not None and arm.interleave not in pairs:
                try:
                    pairs[arm.interleave] = OnlineFeatureReader.union([models[tag][1] for tag in arm.interleave])
                except ValueError as exc:
                    raise ExperimentConfigError(f"experiments.{i}.arms.{j}.interleave: {exc}") from None
    return config, models, rules, pairs
