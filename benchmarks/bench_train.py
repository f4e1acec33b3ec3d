"""Training throughput: XGBoost LambdaMART vs LightGBM lambdarank on the same synthetic training rows.

    python -m benchmarks.bench_train                       # 1M and 10M rows, 100 trees each
    python -m benchmarks.bench_train --rows 1000000 --trees 50

Rows follow the ranker's feature schema (shoprank.ranking_features.model_feature_columns) with realistic
marginals (heavy-tailed counts, smoothed rates, log-normal prices, cold-start flags) and graded relevance drawn
from a hidden utility, in slates of 20 per request. Generated chunk by chunk in float32, so 10M rows take about
0.8 GB. Prints one line per library and size: fit seconds, rows x trees per second, holdout NDCG@10 (10% of
requests held out). Hyperparameters mirror settings.training (depth 6 ~ 63 leaves, learning rate 0.1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from shoprank.ranking_features import model_feature_columns

SLATE = 20
CHUNK_REQUESTS = 50_000


def _chunk(rng: np.random.Generator, requests: int, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = requests * SLATE
    user = lambda values: np.repeat(values, SLATE)  # noqa: E731 - one value per request, broadcast to its slate
    cold = user(rng.random(requests) < 0.08)
    user_impressions = np.where(cold, 0, user(rng.negative_binomial(2, 0.02, requests)))
    user_ctr = user(rng.beta(2, 30, requests))
    user_avg_price = np.where(cold, np.nan, user(rng.lognormal(3.3, 0.6, requests)))
    item_impressions = rng.negative_binomial(1, 0.005, rows)
    item_ctr = rng.beta(2, 35, rows)
    item_cvr = rng.beta(2, 10, rows)
    price = rng.lognormal(3.3, 0.8, rows)
    affinity = rng.beta(0.6, 4, rows)
    values = {
        "user_impressions_30d": user_impressions,
        "user_clicks_30d": rng.binomial(user_impressions, user_ctr),
        "user_purchases_30d": rng.binomial(rng.binomial(user_impressions, user_ctr), 0.15),
        "user_ctr_30d": user_ctr,
        "user_avg_click_price_30d": user_avg_price,
        "user_is_cold_start": cold,
        "item_type_code": rng.choice(3, rows, p=[0.8, 0.15, 0.05]),
        "item_category_id": rng.integers(0, 12, rows),
        "item_price": price,
        "item_stock_units": rng.poisson(40, rows),
        "item_age_days": rng.exponential(30, rows),
        "item_impressions_7d": item_impressions,
        "item_clicks_7d": rng.binomial(item_impressions, item_ctr),
        "item_purchases_7d": rng.binomial(rng.binomial(item_impressions, item_ctr), item_cvr),
        "item_ctr_7d": item_ctr,
        "item_cvr_7d": item_cvr,
        "item_is_new": rng.random(rows) < 0.05,
        "user_category_affinity": affinity,
        "price_to_user_avg": price / user_avg_price,
    }
    features = np.column_stack([np.asarray(values[c], dtype=np.float32) for c in columns])
    log_price_gap = np.nan_to_num(np.abs(np.log(price / user_avg_price)), nan=0.5)
    utility = -3.0 + 25 * item_ctr + 3 * affinity - 0.6 * log_price_gap + rng.gumbel(0, 0.7, rows)
    click = rng.random(rows) < 1 / (1 + np.exp(-utility))
    cart = click & (rng.random(rows) < 2 * item_cvr)
    purchase = cart & (rng.random(rows) < 0.5)
    relevance = np.select([purchase, cart, click], [3, 2, 1], 0).astype(np.float32)
    return features, relevance


def make_rows(n_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    columns = model_feature_columns()
    requests = n_rows // SLATE
    features = np.empty((requests * SLATE, len(columns)), dtype=np.float32)
    relevance = np.empty(requests * SLATE, dtype=np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, requests, CHUNK_REQUESTS):
        size = min(CHUNK_REQUESTS, requests - start)
        x, y = _chunk(rng, size, columns)
        features[start * SLATE : (start + size) * SLATE] = x
        relevance[start * SLATE : (start + size) * SLATE] = y
    return features, relevance


def ndcg_at_10(scores: np.ndarray, relevance: np.ndarray) -> float:
    """Mean NDCG@10 over equal-size slates with at least one relevant item (exponential gain)."""
    s, r = scores.reshape(-1, SLATE), relevance.reshape(-1, SLATE)
    keep = r.max(axis=1) > 0
    s, r = s[keep], r[keep]
    discount = 1 / np.log2(np.arange(2, 12))
    gains = np.exp2(r) - 1
    dcg = (np.take_along_axis(gains, np.argsort(-s, axis=1, kind="stable")[:, :10], axis=1) * discount).sum(axis=1)
    idcg = (-np.sort(-gains, axis=1)[:, :10] * discount).sum(axis=1)
    return float((dcg / idcg).mean())


def bench(n_rows: int, trees: int) -> list[dict]:
    import lightgbm as lgb
    import xgboost as xgb

    started = time.perf_counter()
    x, y = make_rows(n_rows)
    generated = time.perf_counter() - started
    split = int(len(y) // SLATE * 0.9) * SLATE
    train_groups = split // SLATE
    results = []

    dtrain = xgb.DMatrix(x[:split], label=y[:split], qid=np.repeat(np.arange(train_groups), SLATE))
    params = {"objective": "rank:ndcg", "tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": 2}
    t0 = time.perf_counter()
    booster = xgb.train(params, dtrain, num_boost_round=trees)
    fit = time.perf_counter() - t0
    results.append(
        {"library": "xgboost", "fit_s": fit, "ndcg": ndcg_at_10(booster.predict(xgb.DMatrix(x[split:])), y[split:])}
    )
    del dtrain, booster

    ranker = lgb.LGBMRanker(
        objective="lambdarank", n_estimators=trees, num_leaves=63, learning_rate=0.1, n_jobs=2, verbose=-1
    )
    t0 = time.perf_counter()
    ranker.fit(x[:split], y[:split], group=np.full(train_groups, SLATE))
    fit = time.perf_counter() - t0
    results.append({"library": "lightgbm", "fit_s": fit, "ndcg": ndcg_at_10(ranker.predict(x[split:]), y[split:])})
    for result in results:
        result.update(rows=split, trees=trees, generate_s=generated, rows_trees_per_s=split * trees / result["fit_s"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated training-set sizes")
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()
    print(f"{'rows':>11} {'trees':>5}  {'library':<9} {'fit s':>8} {'rows*trees/s':>14} {'NDCG@10':>8}")
    for n_rows in (int(v) for v in args.rows.split(",")):
        for r in bench(n_rows, args.trees):
            print(
                f"{r['rows']:>11,} {r['trees']:>5}  {r['library']:<9} {r['fit_s']:>8.1f} "
                f"{r['rows_trees_per_s']:>14,.0f} {r['ndcg']:>8.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
