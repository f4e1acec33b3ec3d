"""How much of a user's long-term category taste one window of history identifies: estimators against the truth.

On a simulated home (raw events and truth; no warehouse needed), for the last day's impressions, each estimator of
the user's taste for the item's category is computed from the events strictly before that day and scored two ways:

- its correlation with the true ``log(C * affinity)`` over the day's impressions;
- NDCG@10 of the day's slates ranked by the truth's feed click probability with ``w_aff * log(C * affinity)``
  replaced by the estimate (the items' quality and price and the user's price sensitivity stay the true ones): what a
  ranker that knew everything but the tastes exactly could reach with that estimator. ``worth`` is the share of the
  gap between the prior (taste unknown) and the truth that the estimate closes, and ``of truth`` its NDCG@10 over the
  truth's: the oracle ratio (issue 14) a ranker knowing everything but the tastes would reach with that estimator.

Estimators: the prior (no taste), the click share (``user_category_affinity``), a Dirichlet posterior of the
category shares on the click counts, and shoprank/taste.py (``uc_taste_30d``: clicks against impressions times the
population CTR, Gamma prior fitted over the window). Prints figures; asserts nothing. Example:

    SHOPRANK_HOME=var/bench .venv/bin/python -m benchmarks.bench_taste
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from benchmarks.common import bench_settings
from shoprank.taste import category_taste, digamma, population_ctr, prior_shape
from training.evaluate import ndcg_at_k


def _counts(frame: pd.DataFrame, users: pd.Index, n_categories: int) -> np.ndarray:
    counts = frame.groupby(["user_id", "category_id"]).size().unstack(fill_value=0)
    return counts.reindex(index=users, columns=range(n_categories), fill_value=0).to_numpy(dtype=float)


def main() -> None:
    settings = bench_settings()
    truth_dir = settings.truth_dir
    params = json.loads((truth_dir / "params.json").read_text())
    n_cat, w_aff = int(params["n_categories"]), float(params["w_affinity"])
    events = pd.read_parquet(settings.raw_dir / "events", columns=["event_ts", "event_type", "user_id", "item_id"])
    items = pd.read_parquet(settings.raw_dir / "items", columns=["item_id", "category_id"]).drop_duplicates("item_id")
    events = events.merge(items, on="item_id").assign(day=lambda f: f["event_ts"].dt.date)
    day = events["day"].max()
    history = events[events["day"] < day]
    users = pd.Index(sorted(events["user_id"].unique()))
    impressions = _counts(history[history["event_type"] == "impression"], users, n_cat)
    clicks = _counts(history[history["event_type"] == "click"], users, n_cat)

    ctr = population_ctr(clicks, impressions, fallback=0.05)  # dbt var fallback_ctr_prior
    shown = impressions > 0
    shape = prior_shape(clicks[shown], impressions[shown], ctr)
    alpha = float(params["dirichlet_alpha"])  # the simulator's own prior: the Dirichlet row's best case
    estimates = {
        "prior (taste unknown)": np.zeros_like(clicks),
        "click share": np.log(n_cat * np.maximum(clicks / np.maximum(clicks.sum(1, keepdims=True), 1), 1e-3)),
        "Dirichlet(0.25) on clicks": np.log(n_cat)
        + digamma(alpha + clicks)
        - digamma(n_cat * alpha + clicks.sum(1, keepdims=True)),
        "uc_taste_30d (taste.py)": category_taste(clicks, impressions, ctr, shape) / w_aff,
    }

    raw = pd.read_parquet(settings.raw_dir / "events", columns=["event_type", "request_id", "item_id", "event_ts"])
    raw = raw[raw["event_ts"].dt.date == day]
    shown_today = raw[raw["event_type"] == "impression"][["request_id", "item_id"]]
    labels = raw[raw["event_type"] != "impression"].groupby(["request_id", "item_id"]).size().rename("relevance")
    rows = shown_today.merge(labels.reset_index(), how="left").fillna({"relevance": 0})
    rows = rows.merge(items, on="item_id")
    shown_to = pd.read_parquet(truth_dir / "impressions" / f"dt={day.isoformat()}", columns=["request_id", "user_id"])
    rows = rows.merge(shown_to.drop_duplicates("request_id"), on="request_id")
    true_users = pd.read_parquet(truth_dir / "users.parquet").set_index("user_id")
    true_items = pd.read_parquet(truth_dir / "items.parquet").set_index("item_id")
    affinity = true_users.loc[rows["user_id"], [f"affinity_{c:02d}" for c in range(n_cat)]].to_numpy()
    category = rows["category_id"].to_numpy(dtype=int)
    true_log = np.log(n_cat * affinity[np.arange(len(rows)), category])
    rest = (
        params["bias"]
        + params["w_quality"] * true_items.loc[rows["item_id"], "quality"].to_numpy()
        - params["w_price"]
        * true_users.loc[rows["user_id"], "price_sensitivity"].to_numpy()
        * np.log(true_items.loc[rows["item_id"], "price"].to_numpy() / params["ref_price"])
    )
    user_row = users.get_indexer(rows["user_id"])

    def ndcg(log_taste: np.ndarray) -> float:
        scored = rows.assign(score=rest + w_aff * log_taste)
        return ndcg_at_k(scored, "score", 10)

    truth_ndcg, prior_ndcg = ndcg(true_log), ndcg(np.zeros(len(rows)))
    print(f"home {settings.home_dir}, day {day}: {len(rows):,} impressions")
    per_user = clicks.sum() / len(users)
    print(f"history before it: {per_user:.1f} clicks per user, fitted prior shape {shape:.3f}, CTR {ctr:.4f}")
    print(f"{'estimator':<28} {'corr':>6} {'NDCG@10':>8} {'worth':>6} {'of truth':>8}")
    print(f"{'truth (taste known)':<28} {1.0:>6.3f} {truth_ndcg:>8.4f} {1.0:>6.2f} {1.0:>8.3f}")
    for name, estimate in estimates.items():
        values = estimate[user_row, category]
        corr = float(np.corrcoef(values, true_log)[0, 1]) if values.std() > 0 else float("nan")
        score = ndcg(values)
        worth = (score - prior_ndcg) / (truth_ndcg - prior_ndcg)
        print(f"{name:<28} {corr:>6.3f} {score:>8.4f} {worth:>6.2f} {score / truth_ndcg:>8.3f}")


if __name__ == "__main__":
    main()
