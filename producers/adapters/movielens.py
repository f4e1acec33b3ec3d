"""MovieLens-100K onto the raw data contract, so the same dbt models, suites and training run on real data.

The data is never committed (its licence forbids redistribution): :func:`fetch` runs
``pip download --no-deps recbole==1.2.1`` into ``<home>/downloads`` and unzips ``recbole/dataset_example/ml-100k/``
from the wheel.

Mapping: :data:`MAPPING` on the generic adapter (:mod:`producers.adapters.interactions`, whose docstring states
the shared rules: slates, funnel offsets, entity creation times, validation). What is MovieLens-specific:
- ratings 1-5 (``rating:float``, compared as floats): >= 4 is a click, 5 an add-to-cart and a purchase.
- users: ``u<id:06d>``; age -> age band; region ``na`` (US data).
- items: every movie is a ``product`` ``i<id:06d>``; category_id = index of its first genre in :data:`GENRES`
  (run with ``SHOPRANK_SIMULATOR__CATEGORIES=19``; a movie without a genre goes to ``unknown``, which is ml-100k's
  own genre 0); title = the movie title; price by release year (older films are cheaper: 3.99 before 1980, 6.99
  before 1995, 9.99 after).
- sellers: one per release decade (``s<decade index:06d>``, a stand-in for studios).
- inventory: digital goods never sell out: a daily 00:00 snapshot of 1000 units per existing movie.

Real traffic is bursty: a day can hold several times the previous days' median of events, which the raw volume
band (settings.quality.volume_band_low/high, 0.5x-2x for the simulator) flags; widen it for this data set.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from producers.adapters.interactions import import_interactions
from producers.adapters.mapping import (
    CategoryMapping,
    InteractionMapping,
    ItemColumns,
    RatingRule,
    TimestampColumn,
    UserColumns,
)
from shoprank.settings import Settings, get_settings

RECBOLE = "recbole==1.2.1"
MEMBER_DIR = "recbole/dataset_example/ml-100k/"
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
STOCK_UNITS = 1000
# ml-100k's columns and rules on the generic adapter (producers.adapters.interactions).
MAPPING = InteractionMapping(
    user="user_id",
    item="item_id",
    timestamp=TimestampColumn(column="timestamp", unit="s"),
    rating=RatingRule(column="rating", click_at=4, purchase_at=5, scale=(1, 5)),
    items=ItemColumns(category="genre", price="price", title="movie_title", seller="seller"),
    users=UserColumns(age="age", region="region"),
    category=CategoryMapping(labels=list(GENRES), unknown_label="unknown"),  # ml-100k's own "unknown" genre: id 0
    id_width=6,
    stock_units=STOCK_UNITS,
)


def fetch(downloads: Path) -> Path:
    """The ml-100k folder under ``downloads``: pip-downloads the recbole wheel and unzips it if absent."""
    target = downloads / "ml-100k"
    if (target / "ml-100k.inter").exists():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("recbole-1.2.1-*.whl"))
    if not wheels:
        pip = [sys.executable, "-m", "pip"] if _has_pip() else [shutil.which("pip") or "pip"]
        subprocess.run([*pip, "download", "--no-deps", RECBOLE, "-d", str(downloads)], check=True)
        wheels = sorted(downloads.glob("recbole-1.2.1-*.whl"))
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        for member in wheel.namelist():
            if member.startswith(MEMBER_DIR) and not member.endswith("/"):
                (target / Path(member).name).write_bytes(wheel.read(member))
    return target


def _has_pip() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


def _read(folder: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(folder / f"ml-100k.{name}", sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def _items(folder: Path) -> pd.DataFrame:
    """ml-100k's movies with the attributes the mapping reads: first genre, price and seller by release year."""
    movies = _read(folder, "item")
    year = pd.to_numeric(movies["release_year"], errors="coerce").fillna(1990).astype(np.int64)
    decade = (year // 10) * 10
    return pd.DataFrame(
        {
            "item_id": movies["item_id"],
            "genre": movies["class"].str.split().str[0],  # missing: the mapping's explicit unknown category
            "price": np.select([year < 1980, year < 1995], [3.99, 6.99], 9.99),
            "seller": pd.Index(sorted(decade.unique())).get_indexer(decade),
            "movie_title": movies["movie_title"],
        }
    )


def _users(folder: Path) -> pd.DataFrame:
    users = _read(folder, "user")
    return pd.DataFrame({"user_id": users["user_id"], "age": users["age"], "region": "na"})


def convert(folder: Path, settings: Settings, days: int | None = None) -> dict:
    """Write the raw contract for MovieLens-100K into ``settings.raw_dir`` (its tables are replaced).

    ``days`` keeps only the ratings of the last ``days`` days (as if the log started there): a cheaper warehouse.
    """
    inter = _read(folder, "inter")
    if days is not None:
        day = pd.to_numeric(inter["timestamp"]) // 86_400
        inter = inter[day > day.max() - days]
    summary = import_interactions(settings, inter, MAPPING, items=_items(folder), users=_users(folder))
    funnel = summary["funnel"]
    summary["ratings"] = {"ratings": funnel["impression"], "clicks": funnel["click"], "purchases": funnel["purchase"]}
    return summary


def main() -> None:
    """`make data-movielens`: fetch into <home>/downloads and convert (optional argument: keep the last N days)."""
    settings = get_settings()
    folder = fetch(settings.home_dir / "downloads")
    print(convert(folder, settings, int(sys.argv[1]) if len(sys.argv) > 1 else None))


if __name__ == "__main__":
    main()
