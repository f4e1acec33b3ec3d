"""The aggregate step's served relevance model: one version per labelling day, trained only on grades of that day
and before, saved with a card, and read by the days after it (never by its own day)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from labelling.workflow import train_served_model
from shoprank import query_relevance
from shoprank.settings import Settings

D1, D2 = date(2026, 1, 5), date(2026, 1, 6)


def _grades() -> pd.DataFrame:
    rows = []
    for day, n in ((D1, 40), (D2, 25)):
        for i in range(n):
            noun = ("kite", "rug")[i % 2]
            title = f"pro {noun}" if i % 3 else f"eco {noun} live deal"
            grade = 3 if noun == "kite" and i % 3 else (2 if noun == "kite" else 0)
            rows.append(("pro kite", f"i{day.day}{i:03d}", title, i % 2, 10.0 + i, grade, day.isoformat()))
    frame = pd.DataFrame(rows, columns=["query", "item_id", "title", "category_id", "price", "grade", "day"])
    return frame.assign(pair_id=frame["query"] + "|" + frame["item_id"])


def test_a_version_per_labelling_day_from_that_day_and_before(tmp_path) -> None:
    settings = Settings(home=tmp_path)
    grades = _grades()
    assert train_served_model(settings, grades, D1) == D1.isoformat()
    card = query_relevance.card(settings, D1)
    assert card["trained_on_pairs"] == 40 and card["labels_through"] == D1.isoformat()  # D2's grades not seen
    assert card["features"] == list(query_relevance.SERVED_FEATURES)
    assert query_relevance.version_for_day(settings, D1) is None  # a day never reads its own labels
    assert query_relevance.version_for_day(settings, D2) == D1
    train_served_model(settings, grades, D2)
    assert query_relevance.card(settings, D2)["trained_on_pairs"] == 65
    assert query_relevance.version_for_day(settings, D2 + timedelta(days=1)) == D2
    model, version = query_relevance.load_latest(settings)
    assert version == D2
    titles = [query_relevance.parse("pro kite"), query_relevance.parse("pro rug")]
    exact, off = query_relevance.score_pairs(model, "pro kite", titles, [0, 1], [12.0, 12.0])
    assert exact > 0.5 > off
    assert np.isnan(query_relevance.score_pairs(model, None, titles, [0, 1], [1.0, 1.0])).all()  # no query: feed
    assert np.isnan(query_relevance.score_pairs(None, "pro kite", titles, [0, 1], [1.0, 1.0])).all()  # no model


def test_one_grade_only_saves_no_version(tmp_path) -> None:
    settings = Settings(home=tmp_path)
    grades = _grades().assign(grade=0)
    assert train_served_model(settings, grades, D1) is None
    assert query_relevance.versions(settings) == []
    assert query_relevance.load_latest(settings) is None
