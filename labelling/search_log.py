"""(query, item) pairs from the search log: what shoppers searched, what the ranker showed them where, what they
clicked; with the item's title, category, price and type as the labelling task shows them.

Reads the raw events contract (impressions and clicks of the ``search`` surface). The hidden truth is joined only
by :func:`with_truth`, for gold questions and simulated labellers: never by sampling or the relevance model.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from labelling.grades import difficulty, true_grades
from shoprank.settings import Settings


def _events(settings: Settings, days: list[date] | None) -> pd.DataFrame:
    root = settings.raw_dir / "events"
    paths = sorted(root.glob("dt=*/*.parquet"))
    if days is not None:
        wanted = {f"dt={d.isoformat()}" for d in days}
        paths = [p for p in paths if p.parent.name in wanted]
    if not paths:
        raise FileNotFoundError(f"no raw events under {root} for {days or 'any day'}: run `shoprank simulate` first")
    columns = ["event_type", "request_id", "item_id", "position", "surface", "query"]
    frames = [pd.read_parquet(p, columns=columns, filters=[("surface", "=", "search")]) for p in paths]
    return pd.concat(frames, ignore_index=True)


def _items(settings: Settings) -> pd.DataFrame:
    items = pd.read_parquet(
        settings.raw_dir / "items", columns=["item_id", "title", "category_id", "price", "item_type"]
    )
    return items.drop_duplicates("item_id", keep="last").set_index("item_id")


def search_pairs(settings: Settings, days: list[date] | None = None) -> pd.DataFrame:
    """One row per (query, item) shown on a search: impressions, clicks, best and mean position, one request id
    it was shown under, how many requests the query had, and the item's shown attributes."""
    events = _events(settings, days)
    imps = events[events["event_type"] == "impression"]
    clicks = events[events["event_type"] == "click"]
    pairs = imps.groupby(["query", "item_id"], as_index=False).agg(
        impressions=("request_id", "size"),
        best_position=("position", "min"),
        mean_position=("position", "mean"),
        request_id=("request_id", "first"),
    )
    clicked = clicks.groupby(["query", "item_id"]).size().rename("clicks")
    pairs = pairs.join(clicked, on=["query", "item_id"]).fillna({"clicks": 0})
    pairs["clicks"] = pairs["clicks"].astype(int)
    pairs["query_requests"] = pairs["query"].map(imps.groupby("query")["request_id"].nunique())
    pairs = pairs.join(_items(settings), on="item_id", how="inner")
    pairs["pair_id"] = pairs["query"] + "|" + pairs["item_id"]
    return pairs.reset_index(drop=True)


def with_truth(settings: Settings, pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` plus the hidden intent of the request, the true grade and the difficulty of judging it."""
    truth = pd.read_parquet(settings.truth_dir / "impressions", columns=["request_id", "intent_category"])
    intent = truth.drop_duplicates("request_id").set_index("request_id")["intent_category"]
    out = pairs.assign(intent_category=pairs["request_id"].map(intent))
    if out["intent_category"].isna().any():
        missing = out.loc[out["intent_category"].isna(), "request_id"].head(3).tolist()
        raise ValueError(f"requests without hidden truth (e.g. {missing}): simulate the same days again")
    grades = true_grades(out)
    return out.assign(true_grade=grades, difficulty=difficulty(out, grades), relevant=(grades >= 2).astype(np.int8))
