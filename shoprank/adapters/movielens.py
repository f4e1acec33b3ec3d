"""MovieLens-100K onto the raw data contract, so the same dbt models, suites and training run on real data.

The data is never committed (its licence forbids redistribution): :func:`fetch` runs
``pip download --no-deps recbole==1.2.1`` into ``<home>/downloads`` and unzips ``recbole/dataset_example/ml-100k/``
from the wheel.

Mapping (documented in README.md too)
-------------------------------------
- requests: each user's ratings of one UTC day, in timestamp order, cut into slates of ``slate_size`` movies; one
  request per slate, surface ``feed``, no query. Request id ``r<YYYYMMDD><user:06d><slate:03d>``.
- events: every rated movie is an impression at its slate position (event_ts = rating time); rating >= 4 adds a
  click one second later; rating 5 adds an add-to-cart and a purchase (quantity 1) two and three seconds later.
  Unrated movies are never shown: MovieLens only logs what a user chose to rate (a biased, self-selected log).
- users: ``u<id:06d>``, signed up one hour before their first rating; age → age band; region ``na`` (US data).
- items: every movie is a ``product`` ``i<id:06d>``; category_id = index of its first genre in :data:`GENRES`
  (run with ``SHOPRANK_SIMULATOR__CATEGORIES=19``); title = the movie title; price by release year (older
  films are cheaper: 3.99 before 1980, 6.99 before 1995, 9.99 after); created one hour before the first rating.
- sellers: one per release decade (``s<decade index:04d>``, a stand-in for studios), created with their first movie.
- inventory: digital goods never sell out: a daily 00:00 snapshot of 1000 units per existing movie.
- partitions: every table gets one per day from the first rating day to the last (entity tables may be empty).

Real traffic is bursty: a day can hold several times the previous days' median of events, which the raw volume
band (settings.quality.volume_band_low/high, 0.5x-2x for the simulator) flags; widen it for this data set.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.settings import Settings, get_settings
from shoprank.simulator import SCHEMAS, TABLES, _write, partition_path

RECBOLE = "recbole==1.2.1"
MEMBER_DIR = "recbole/dataset_example/ml-100k/"
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
AGE_BANDS = ((24, "18-24"), (34, "25-34"), (44, "35-44"), (54, "45-54"), (200, "55+"))
STOCK_UNITS = 1000
HOUR_US = 3_600 * 10**6


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


def _day_of(micros: np.ndarray) -> np.ndarray:
    return micros // (86_400 * 10**6)


def convert(folder: Path, settings: Settings, days: int | None = None) -> dict:
    """Write the raw contract for MovieLens-100K into ``settings.raw_dir`` (its tables are replaced).

    ``days`` keeps only the ratings of the last ``days`` days (as if the log started there): a cheaper warehouse.
    """
    if settings.simulator.categories < len(GENRES):
        raise ValueError(f"MovieLens needs {len(GENRES)} categories: set SHOPRANK_SIMULATOR__CATEGORIES=19")
    inter = _read(folder, "inter")
    ratings = pd.DataFrame(
        {
            "user": inter["user_id"].astype(np.int64),
            "movie": inter["item_id"].astype(np.int64),
            "rating": inter["rating"].astype(float).astype(np.int64),
            "ts": inter["timestamp"].astype(float).astype(np.int64) * 10**6,
        }
    ).sort_values(["user", "ts", "movie"], kind="stable", ignore_index=True)
    ratings["day"] = _day_of(ratings["ts"].to_numpy())
    if days is not None:
        ratings = ratings[ratings["day"] > ratings["day"].max() - days].reset_index(drop=True)
    # Keep every event inside its day (the funnel adds up to 3 s after the impression).
    day_end = (ratings["day"] + 1) * 86_400 * 10**6 - 4 * 10**6
    ratings["ts"] = np.minimum(ratings["ts"], day_end)
    # Slates: a user's ratings of one day, in time order, cut into slate_size chunks.
    size = settings.simulator.slate_size
    rank = ratings.groupby(["user", "day"]).cumcount().to_numpy()
    ratings["position"] = rank % size + 1
    ratings["slate"] = rank // size

    for table in TABLES:  # the home holds one dataset at a time
        shutil.rmtree(settings.raw_dir / table, ignore_errors=True)

    movies = _read(folder, "item")
    movies["movie"] = movies["item_id"].astype(np.int64)
    first_seen = ratings.groupby("movie")["ts"].min()
    movies = movies[movies["movie"].isin(first_seen.index)].copy()
    year = pd.to_numeric(movies["release_year"], errors="coerce").fillna(1990).astype(np.int64)
    movies["price"] = np.select([year < 1980, year < 1995], [3.99, 6.99], 9.99)
    genre = movies["class"].str.split().str[0].fillna("unknown")
    movies["category_id"] = pd.Index(GENRES).get_indexer(genre).clip(0)
    decade = (year // 10) * 10
    movies["seller"] = pd.Index(sorted(decade.unique())).get_indexer(decade)
    movies["created"] = first_seen.reindex(movies["movie"]).to_numpy() - HOUR_US
    users = _read(folder, "user")
    users["user"] = users["user_id"].astype(np.int64)
    users["signup"] = ratings.groupby("user")["ts"].min().reindex(users["user"]).to_numpy() - HOUR_US
    users = users[users["signup"].notna()]

    def ts(micros: pd.Series | np.ndarray) -> pd.Series:
        return pd.Series(pd.to_datetime(np.asarray(micros, dtype=np.int64), unit="us", utc=True))

    def ids(prefix: str, numbers: pd.Series | np.ndarray, width: int) -> pd.Series:
        return prefix + pd.Series(np.asarray(numbers)).astype(str).str.zfill(width)

    age = users["age"].astype(np.int64)
    entities = {
        "users": pd.DataFrame(
            {
                "user_id": ids("u", users["user"], 6),
                "signup_ts": ts(users["signup"]),
                "region": "na",
                "age_band": np.select([age <= b for b, _ in AGE_BANDS], [band for _, band in AGE_BANDS], "55+").astype(
                    object
                ),
            }
        ),
        "items": pd.DataFrame(
            {
                "item_id": ids("i", movies["movie"], 6),
                "item_type": "product",
                "seller_id": ids("s", movies["seller"], 4),
                "category_id": movies["category_id"].to_numpy(dtype=np.int64),
                "price": movies["price"].to_numpy(dtype=float),
                "title": movies["movie_title"].to_numpy(dtype=object),
                "created_ts": ts(movies["created"]),
            }
        ),
    }
    seller_created = movies.groupby("seller")["created"].min()
    entities["sellers"] = pd.DataFrame(
        {
            "seller_id": ids("s", seller_created.index, 4),
            "created_ts": ts(seller_created.to_numpy()),
            "region": "na",
            "tier": "gold",
        }
    )
    first_day = date.fromordinal(date(1970, 1, 1).toordinal() + int(ratings["day"].min()))
    last_day = date.fromordinal(date(1970, 1, 1).toordinal() + int(ratings["day"].max()))
    ts_column = {"users": "signup_ts", "items": "created_ts", "sellers": "created_ts"}
    rows = dict.fromkeys(TABLES, 0)
    for table, frame in entities.items():
        created = frame[ts_column[table]].dt.date
        # Every table has a partition every day (the raw contract), empty on days nothing was created.
        day = min(created.min(), first_day)
        while day <= last_day:
            part = frame[created == day].reset_index(drop=True)
            _write(part, partition_path(settings.raw_dir, table, day), SCHEMAS[table])
            rows[table] += len(part)
            day += timedelta(days=1)

    item_created = pd.Series(movies["created"].to_numpy(), index=movies["movie"].to_numpy())
    for offset in range((last_day - first_day).days + 1):
        day = first_day + timedelta(days=offset)
        day_number = (day - date(1970, 1, 1)).days
        midnight = day_number * 86_400 * 10**6
        existing = item_created[item_created < midnight].index.to_numpy()
        inventory = pd.DataFrame(
            {
                "item_id": ids("i", existing, 6),
                "snapshot_ts": ts(np.full(len(existing), midnight)),
                "stock_units": np.full(len(existing), STOCK_UNITS, dtype=np.int64),
            }
        )
        _write(inventory, partition_path(settings.raw_dir, "inventory", day), SCHEMAS["inventory"])
        rows["inventory"] += len(inventory)
        today = ratings[ratings["day"] == day_number]
        events = _events(today, day, dict(zip(movies["movie"], movies["price"], strict=True)))
        _write(events, partition_path(settings.raw_dir, "events", day), SCHEMAS["events"])
        rows["events"] += len(events)
    counts = {"ratings": len(ratings), "clicks": int((ratings["rating"] >= 4).sum())}
    counts["purchases"] = int((ratings["rating"] == 5).sum())
    return {"first_day": first_day.isoformat(), "last_day": last_day.isoformat(), "rows": rows, "ratings": counts}


def _events(today: pd.DataFrame, day: date, price: dict[int, float]) -> pd.DataFrame:
    stamp = day.strftime("%Y%m%d")
    base = pd.DataFrame(
        {
            "user_id": "u" + today["user"].astype(str).str.zfill(6),
            "item_id": "i" + today["movie"].astype(str).str.zfill(6),
            "request_id": "r"
            + stamp
            + today["user"].astype(str).str.zfill(6)
            + today["slate"].astype(str).str.zfill(3),
            "price": today["movie"].map(price).astype(float),
            "ts": today["ts"],
            "position": today["position"],
            "rating": today["rating"],
        }
    )
    parts = [base.assign(event_type="impression", quantity=pd.NA)]
    for offset, event_type, keep in ((1, "click", 4), (2, "add_to_cart", 5), (3, "purchase", 5)):
        picked = base[base["rating"] >= keep].assign(event_type=event_type, position=pd.NA)
        picked["ts"] = picked["ts"] + offset * 10**6
        picked["quantity"] = 1 if event_type == "purchase" else pd.NA
        parts.append(picked)
    events = pd.concat(parts, ignore_index=True).sort_values(["ts", "request_id", "item_id"], ignore_index=True)
    return pd.DataFrame(
        {
            "event_id": "e" + stamp + pd.Series(np.arange(len(events))).astype(str).str.zfill(9),
            "event_ts": pd.to_datetime(events["ts"].to_numpy(dtype=np.int64), unit="us", utc=True),
            "event_type": events["event_type"],
            "user_id": events["user_id"],
            "item_id": events["item_id"],
            "request_id": events["request_id"],
            "position": pd.array(events["position"], dtype="Int64"),
            "surface": "feed",
            "query": pd.Series([None] * len(events), dtype=object),
            "price": events["price"],
            "quantity": pd.array(events["quantity"], dtype="Int64"),
        }
    )


def main() -> None:
    """`make data-movielens`: fetch into <home>/downloads and convert (optional argument: keep the last N days)."""
    settings = get_settings()
    folder = fetch(settings.home_dir / "downloads")
    print(convert(folder, settings, int(sys.argv[1]) if len(sys.argv) > 1 else None))


if __name__ == "__main__":
    main()
