"""The pre-ranker's publish gate: the `train-preranker` step serves a pre-ranker only if it does its job on the holdout.

Its job is to cut ``recall.prerank_candidates`` retrieved items to the ``recall.prerank_keep`` the final ranker sees
without losing what the final ranker would put first, nor the items users click. The gate measures both on the
holdout day, per surface (search: the requests the query_item_match mart has a query for; feed: the others), on up to
``recall.prerank_gate.requests`` requests each:

- the **pool** of a request: its own impressions (their point-in-time rows) plus items drawn from the other items
  shown on the holdout day, up to ``prerank_candidates`` in all. A drawn item's row is the request's user columns
  (user views, category shares) with the item's columns (item views) from its holdout rows, the user x category
  columns from the user's holdout rows in that category (else the "no row" fill, as serving fills it), the derived
  and query columns recomputed as training and serving compute them, and the embedding score from the holdout's ALS;
- **recall of the final ranker's top** ``top`` (20): the share of the final ranker's best ``top`` of the pool (the
  run's candidate, else the champion: :func:`training.preranker.teacher`) that the pre-ranker keeps in its best
  ``prerank_keep`` (ties broken at random);
- **clicks kept**: the share of the requests' clicked impressions the pre-ranker keeps, judged as a ratio to the
  share the final ranker's own best ``prerank_keep`` keeps (the clicks the final ranker would see; without a final
  ranker, to ``keep / pool``, what a random cut keeps).

It is a proxy of serving's funnel: the pool is drawn from the day's shown items rather than retrieved, so a search
pool holds fewer close matches than the text index brings (benchmarks/bench_funnel.py measures the served funnel).
The pre-ranker is published when each judged surface clears ``min_recall_feed`` / ``min_recall_search`` and
``min_clicks_kept_ratio``; a surface with fewer than ``min_requests`` requests is reported, not judged. Without a final
ranker the recall checks cannot run and only the clicks are judged. The decision, with every reason, is logged,
written to ``<preranker_gate_dir>/decisions/<day>.json`` and put in the card (``gate``); a refused model and its card
go to ``<preranker_gate_dir>/refused/<day>/`` and ``CURRENT`` keeps naming the served version.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shoprank import feature_contract as contract
from shoprank import prerank
from shoprank.mart_files import read_mart
from shoprank.model_bundle import ModelBundle
from shoprank.ranking_features import add_derived_features, category_share_columns
from shoprank.settings import Settings

log = logging.getLogger(__name__)

SURFACES = ("feed", "search")
# Pools are scored this many requests at a time (a 1M-event world's 5,000-item pools: ~5,000 rows x 60 columns each).
BATCH_REQUESTS = 20


@dataclass
class GateDecision:
    run_date: str
    published: bool
    reasons: list[str]
    metrics: dict[str, float | None] = field(default_factory=dict)
    reference: str | None = None
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def column_sides(columns: list[str], n_categories: int) -> dict[str, str]:
    """Each stored column's side: ``user`` (user views and the category shares), ``item`` (item and seller views) or
    ``user_category``; columns of no view (computed, keys, labels) are absent."""
    sides: dict[str, str] = {}
    for view in contract.views(n_categories).values():
        side = (
            "user_category"
            if set(view.entities) == {"user", "category"}
            else "user"
            if view.entities == ("user",)
            else "item"
        )
        for name in view.feature_names:
            sides.setdefault(name, side)
    for name in category_share_columns(n_categories):
        sides[name] = "user"
    return {c: sides[c] for c in columns if c in sides}


def pools(holdout: pd.DataFrame, requests: list[str], size: int, n_categories: int, seed: int) -> list[pd.DataFrame]:
    """One frame per request: its impressions' rows (``drawn`` False) and, drawn from the day's other shown items,
    rows built for the request's user (``drawn`` True) up to ``size`` rows; the columns of ``holdout``, with the
    derived columns recomputed on the drawn rows and their query / embedding columns left for the caller."""
    sides = column_sides(list(holdout.columns), n_categories)
    user_cols = [c for c, s in sides.items() if s == "user"]
    item_cols = [c for c, s in sides.items() if s == "item"]
    uc_cols = [c for c, s in sides.items() if s == "user_category"]
    items = holdout.drop_duplicates("item_id").set_index("item_id")[item_cols]
    category = pd.to_numeric(holdout["item_category_id"], errors="coerce")
    user_category = (
        holdout.assign(_category=category).drop_duplicates(["user_id", "_category"]).set_index(["user_id", "_category"])
    )[uc_cols]
    by_request = holdout.groupby("request_id", sort=False).indices
    rng = np.random.default_rng(seed)
    out = []
    for request_id in requests:
        own = holdout.iloc[by_request[request_id]]
        others = items.index[~items.index.isin(own["item_id"])]
        n_drawn = max(0, min(size - len(own), len(others)))
        drawn_ids = others[rng.permutation(len(others))[:n_drawn]]
        drawn = items.loc[drawn_ids].reset_index()
        first = own.iloc[0]
        for column in [*user_cols, "request_id", "user_id", "dt"]:
            drawn[column] = first[column]
        if uc_cols:
            keys = pd.MultiIndex.from_arrays(
                [drawn["user_id"], pd.to_numeric(drawn["item_category_id"], errors="coerce")]
            )
            found = user_category.reindex(keys)
            for column in uc_cols:
                drawn[column] = found[column].to_numpy()
        drawn = add_derived_features(drawn, n_categories)  # the user's affinity, price ratio; the "no row" fill
        drawn = drawn.assign(impression_id=None, relevance=0, label_click=0, drawn=True)
        pool = pd.concat([own.assign(drawn=False), drawn[[c for c in own.columns if c in drawn.columns] + ["drawn"]]])
        out.append(pool.reset_index(drop=True))
    return out


def top_positions(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the best ``n`` scores, ties broken at random (a one-split model's many ties keep no order)."""
    order = rng.permutation(len(scores))
    best = np.argsort(-scores[order], kind="stable")[:n]
    return np.asarray(order[best])


def evaluate(
    settings: Settings,
    holdout: pd.DataFrame,
    search_requests: set[str],
    prerank_score: Callable[[np.ndarray], np.ndarray],
    final: ModelBundle | None,
    complete: Callable[[pd.DataFrame], pd.DataFrame],
) -> dict[str, float | None]:
    """The gate's figures on ``holdout`` (rows with every column of the final ranker's feature service, when there
    is one). ``complete`` fills a pool's pre-ranker request columns (embedding score, query match) for its drawn
    rows; ``prerank_score`` scores a pre-ranker matrix."""
    cfg = settings.recall
    gate = cfg.prerank_gate
    n_categories = settings.simulator.categories
    rng = np.random.default_rng(settings.training.seed)
    request_ids = holdout["request_id"].drop_duplicates()
    metrics: dict[str, float | None] = {}
    for surface in SURFACES:
        on_surface = request_ids[request_ids.isin(search_requests) == (surface == "search")].tolist()
        chosen = [on_surface[i] for i in sorted(rng.permutation(len(on_surface))[: gate.requests])]
        recalls: list[float] = []
        clicked = kept_clicks = final_kept_clicks = pool_rows = kept_rows = 0
        for start in range(0, len(chosen), BATCH_REQUESTS):
            some = chosen[start : start + BATCH_REQUESTS]
            batch = pools(holdout, some, cfg.prerank_candidates, n_categories, settings.training.seed + start)
            frame = complete(pd.concat(batch, ignore_index=True))
            scores = prerank_score(frame[prerank.FEATURES].to_numpy(dtype=np.float32, na_value=np.nan))
            reference = final.score(frame) if final is not None else None
            offset = 0
            for pool in batch:
                span = slice(offset, offset + len(pool))
                offset += len(pool)
                keep = min(cfg.prerank_keep, len(pool))
                kept = top_positions(scores[span], keep, rng)
                pool_rows += len(pool)
                kept_rows += keep
                clicks = np.flatnonzero(pool["label_click"].to_numpy(dtype=float) > 0)
                clicked += len(clicks)
                kept_clicks += int(np.isin(clicks, kept).sum())
                if reference is not None:
                    top = top_positions(reference[span], min(gate.top, len(pool)), rng)
                    recalls.append(float(np.isin(top, kept).mean()))
                    final_cut = top_positions(reference[span], keep, rng)
                    final_kept_clicks += int(np.isin(clicks, final_cut).sum())
        metrics[f"{surface}_requests"] = float(len(chosen))
        metrics[f"{surface}_pool_mean"] = pool_rows / len(chosen) if chosen else None
        metrics[f"{surface}_random_keep_share"] = kept_rows / pool_rows if pool_rows else None
        metrics[f"{surface}_recall_top{gate.top}"] = float(np.mean(recalls)) if recalls else None
        metrics[f"{surface}_clicks"] = float(clicked)
        metrics[f"{surface}_clicks_kept"] = kept_clicks / clicked if clicked else None
        final_kept = final_kept_clicks / clicked if clicked and recalls else None
        metrics[f"{surface}_final_ranker_clicks_kept"] = final_kept
        # what the cut keeps of the clicks against what the final ranker's own cut keeps (without one: a random cut)
        versus = final_kept if recalls else metrics[f"{surface}_random_keep_share"]
        metrics[f"{surface}_clicks_kept_ratio"] = kept_clicks / clicked / versus if clicked and versus else None
    return metrics


def judge(settings: Settings, metrics: dict[str, float | None], reference: str | None) -> tuple[bool, list[str]]:
    """Publish or not, with every reason."""
    gate = settings.recall.prerank_gate
    ok, reasons = True, []
    clicks_what = "clicks kept over the final ranker's own cut's"
    if reference is None:
        reasons.append("no final ranker (no candidate nor champion): its top cannot be compared; clicks judged alone")
        clicks_what = "clicks kept over a random cut's"
    for surface in SURFACES:
        n = int(metrics.get(f"{surface}_requests") or 0)
        if n < gate.min_requests:
            reasons.append(f"{surface}: {n} holdout requests, below the minimum {gate.min_requests}: not judged")
            continue
        checks = [
            (f"recall of the final ranker's top {gate.top}", metrics.get(f"{surface}_recall_top{gate.top}"),
             gate.min_recall_search if surface == "search" else gate.min_recall_feed),
            (clicks_what, metrics.get(f"{surface}_clicks_kept_ratio"), gate.min_clicks_kept_ratio),
        ]  # fmt: skip
        for what, value, least in checks:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                if what == clicks_what or reference is not None:
                    reasons.append(f"{surface} {what}: not measurable ({n} requests): skipped")
                continue
            passed = value >= least
            ok = ok and passed
            reasons.append(f"{surface} {what} {value:.3f} (needs >= {least:.3f}): " + ("pass" if passed else "FAIL"))
    return ok, reasons


def record(settings: Settings, decision: GateDecision) -> Path:
    """Write the decision to ``<preranker_gate_dir>/decisions/<day>.json`` (a re-run of the day replaces it)."""
    out = settings.preranker_gate_dir / "decisions"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{decision.run_date}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(decision), indent=2))
    tmp.replace(path)
    return path


def latest_decision(settings: Settings) -> dict[str, Any] | None:
    """The newest recorded decision (by run day), or None."""
    paths = sorted((settings.preranker_gate_dir / "decisions").glob("*.json"))
    return json.loads(paths[-1].read_text()) if paths else None


def search_request_ids(settings: Settings) -> set[str]:
    """The requests with a search query (the query_item_match mart's): the gate's search surface."""
    marts = settings.marts_export_dir.resolve()
    return set(read_mart(marts, "query_item_match", ["request_id"])["request_id"].astype(str))
