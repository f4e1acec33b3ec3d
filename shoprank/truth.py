"""The simulator's hidden truth, read: the best ranking any model could give (the oracle) and the true click and
purchase probabilities behind it.

The simulator writes the truth under ``<home>/truth/`` (users' latent preferences, items' latent quality, every
logged impression's true probabilities, and ``params.json``, the funnel's parameters); nothing in the pipeline
reads it except evaluation, which measures how close a model comes to the oracle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---- the oracle: the best possible ranking under the hidden truth ----------------------------------------------
def oracle_scores(truth_dir: Path, frame: pd.DataFrame, target: str = "p_click") -> np.ndarray:
    """True (position-free) ``p_click`` or ``p_purchase`` for each row of ``frame``, in its order.

    Rows with ``request_id`` and ``item_id`` are looked up among the logged impressions (intent and search bonuses
    included); rows not found there, or frames without ``request_id``, fall back to the feed-surface probability
    (no intent known) computed from the latent preferences of ``user_id`` and ``item_id``. Unknown users or items
    give NaN.
    """
    if target not in ("p_click", "p_purchase"):
        raise ValueError(f"target must be p_click or p_purchase, not {target!r}")
    truth_dir = Path(truth_dir)
    out = np.full(len(frame), np.nan)
    if "request_id" in frame.columns:
        impressions = pd.read_parquet(truth_dir / "impressions", columns=["request_id", "item_id", target])
        keyed = frame[["request_id", "item_id"]].astype(str).reset_index(drop=True)
        merged = keyed.merge(impressions.astype({"request_id": str, "item_id": str}), how="left")
        out = merged[target].to_numpy(dtype=float)
    missing = np.isnan(out)
    if missing.any() and {"user_id", "item_id"} <= set(frame.columns):
        out[missing] = _latent_scores(truth_dir, frame.loc[missing, ["user_id", "item_id"]], target)
    return out


def oracle(truth_dir: Path, candidates: pd.DataFrame, target: str = "p_click") -> pd.DataFrame:
    """``candidates`` ranked by their true probability: per ``request_id`` if present, best first (``oracle_rank``)."""
    scored = candidates.assign(oracle_score=oracle_scores(truth_dir, candidates, target))
    keys = ["request_id"] if "request_id" in scored.columns else []
    scored = scored.sort_values([*keys, "oracle_score"], ascending=[True] * len(keys) + [False], kind="stable")
    rank = scored.groupby(keys).cumcount() + 1 if keys else pd.Series(np.arange(1, len(scored) + 1), scored.index)
    return scored.assign(oracle_rank=rank).reset_index(drop=True)


def _latent_scores(truth_dir: Path, pairs: pd.DataFrame, target: str) -> np.ndarray:
    params = json.loads((truth_dir / "params.json").read_text())
    users = pd.read_parquet(truth_dir / "users.parquet").set_index("user_id")
    items = pd.read_parquet(truth_dir / "items.parquet").set_index("item_id")
    aff_cols = sorted(c for c in users.columns if c.startswith("affinity_"))
    u = users.reindex(pairs["user_id"].astype(str))
    i = items.reindex(pairs["item_id"].astype(str))
    known = u["price_sensitivity"].notna().to_numpy() & i["quality"].notna().to_numpy()
    cat = i["category_id"].fillna(0).to_numpy(dtype=int)
    aff = u[aff_cols].to_numpy(dtype=float)[np.arange(len(pairs)), cat]
    sens = u["price_sensitivity"].to_numpy(dtype=float)
    log_price = np.log(i["price"].to_numpy(dtype=float) / params["ref_price"])
    quality = i["quality"].to_numpy(dtype=float)
    p_click = _sigmoid(
        params["bias"]
        + params["w_affinity"] * np.log(len(aff_cols) * aff)
        - params["w_price"] * sens * log_price
        + params["w_quality"] * quality
    )
    result = p_click
    if target == "p_purchase":
        p_cart = _sigmoid(params["cart_bias"] + 0.4 * quality - 0.5 * sens * log_price)
        p_buy = _sigmoid(params["buy_bias"] - 0.6 * sens * log_price)
        result = p_click * p_cart * p_buy
    return np.where(known, result, np.nan)
