"""The true relevance grade of a (query, item) pair, from the simulator's hidden truth, and how hard it is to judge.

A search query is the noun of the request's hidden *intent* category (sometimes with an adjective); an item's title
is "adjective noun" plus " review video" / " live deal" for promotions. The grade (0-3, the guidelines' scale):

- 3 exact: the item is in the intent category, its title has the query's noun, the query's adjective (if any)
  matches, and it is the product itself;
- 2 close: the noun matches but the adjective differs, or it is a video / live stream promoting that product;
- 1 related: the intent category, another noun (a "boots" item for "sneakers");
- 0 off-topic: another category.

Difficulty (0-1) is what makes a person slow and error-prone: borderline grades (1 and 2) more than the extremes,
promotions (is a review video "the product"?) and adjectives (which are easy to overlook).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprank.query_relevance import PROMOTION_SUFFIXES

GRADES = (0, 1, 2, 3)
__all__ = ["GRADES", "PROMOTION_SUFFIXES", "difficulty", "is_promotion", "true_grades"]


def _words(text: pd.Series) -> pd.DataFrame:
    """The (adjective, noun) of a query or a title without its promotion suffix."""
    bare = text.fillna("").astype(str)
    for suffix in PROMOTION_SUFFIXES:
        bare = bare.str.removesuffix(suffix)
    parts = bare.str.split(" ")
    noun = parts.str[-1]
    adjective = parts.map(lambda p: p[0] if len(p) > 1 else "")
    return pd.DataFrame({"adjective": adjective, "noun": noun}, index=text.index)


def is_promotion(title: pd.Series) -> pd.Series:
    return title.fillna("").astype(str).str.endswith(PROMOTION_SUFFIXES)


def true_grades(pairs: pd.DataFrame) -> np.ndarray:
    """Grades of ``pairs`` with columns query, title, category_id (the item's) and intent_category (the hidden
    intent of the request the pair was logged under)."""
    q, t = _words(pairs["query"]), _words(pairs["title"])
    same_category = pairs["category_id"].to_numpy() == pairs["intent_category"].to_numpy()
    same_noun = same_category & (q["noun"] == t["noun"]).to_numpy()
    adjective_ok = ((q["adjective"] == "") | (q["adjective"] == t["adjective"])).to_numpy()
    product = ~is_promotion(pairs["title"]).to_numpy()
    grade = np.where(same_noun, np.where(adjective_ok & product, 3, 2), np.where(same_category, 1, 0))
    return grade.astype(int)


def difficulty(pairs: pd.DataFrame, grades: np.ndarray) -> np.ndarray:
    """0 (obvious) .. 1 (hard to judge) per pair; see the module docstring."""
    has_adjective = (_words(pairs["query"])["adjective"] != "").to_numpy()
    borderline = np.isin(grades, (1, 2))
    score = 0.1 + 0.4 * borderline + 0.3 * is_promotion(pairs["title"]).to_numpy() + 0.2 * has_adjective
    return np.clip(score, 0.0, 1.0)
