"""Marketplace simulator v0: writes the raw data contract (see docs DESIGN.md) and its hidden truth.

The world
---------
Users carry a hidden category affinity (Dirichlet), a price sensitivity and a skewed activity level; items carry a
hidden quality, a category, a price and a *hype* score. A logging policy fills each request's slate by sampling
items in proportion to a noisy popularity (hype), not by true relevance, so a model has room to beat it. The user
clicks an impressed item with

    p_click = sigmoid(bias + w_aff*log(C*affinity[u, cat]) + w_quality*quality - w_price*sens[u]*log(price/ref))
              * position_bias(position),   position_bias(p) = 1 / log2(1 + p)

(search requests add a bonus when the item matches the query's category); a click leads to add-to-cart and a cart
to a purchase with price-dependent probabilities, and a purchase needs stock (inventory sells down with purchases
and restocks now and then).

Determinism
-----------
Output is a pure function of (seed, run_date, sizes): the entity universe depends on the seed only, each day's
randomness on (seed, day). Re-running overwrites the same partitions with identical content. Simulating a
different run_date moves the window, and with it entity creation dates: use one settings home per run_date.

Everything is vectorised with numpy per day; the only Python loops run over days and (for search slates) over
categories.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprank.settings import Settings

TABLES = ("events", "items", "sellers", "inventory", "users")
EVENT_TYPES = ("impression", "click", "add_to_cart", "purchase")
ITEM_TYPES = ("product", "video", "live")
REGIONS = ("na", "eu", "apac", "latam")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
SELLER_TIERS = ("bronze", "silver", "gold")

# Category vocabulary; beyond its length categories reuse a word list with a numeric suffix.
CATEGORY_WORDS: tuple[tuple[str, ...], ...] = (
    ("sneakers", "boots", "sandals", "trainers"),
    ("laptop", "tablet", "keyboard", "monitor"),
    ("lipstick", "serum", "mascara", "moisturiser"),
    ("sofa", "lamp", "rug", "bookshelf"),
    ("novel", "cookbook", "comic", "atlas"),
    ("tent", "backpack", "sleeping-bag", "compass"),
    ("puzzle", "lego", "doll", "kite"),
    ("coffee", "tea", "chocolate", "granola"),
    ("dress", "jacket", "jeans", "sweater"),
    ("headphones", "speaker", "earbuds", "turntable"),
    ("drill", "wrench", "saw", "toolbox"),
    ("yoga-mat", "dumbbell", "bike", "racket"),
)
ADJECTIVES = ("classic", "premium", "compact", "vintage", "eco", "pro", "smart", "deluxe", "mini", "ultra")

# Behaviour model constants (also written to truth/params.json for the oracle).
PARAMS = {
    "bias": -2.0,
    "w_affinity": 0.9,
    "w_quality": 0.7,
    "w_price": 0.6,
    "ref_price": 30.0,
    "search_match_bonus": 0.8,
    "cart_bias": -1.0,
    "buy_bias": 0.3,
    "dirichlet_alpha": 0.25,
    "affinity_floor": 1e-3,
}
HISTORY_DAYS = 60  # the initial catalogue and user base were created up to this many days before the window
INITIAL_USER_SHARE = 0.85
INITIAL_ITEM_SHARE = 0.9
INITIAL_SELLER_SHARE = 0.95
DAY_SECONDS = 86_400
LAST_REQUEST_SECOND = DAY_SECONDS - 3_600  # funnel events (< 1 h later) stay inside the request's day


def category_words(category: int) -> tuple[str, ...]:
    words = CATEGORY_WORDS[category % len(CATEGORY_WORDS)]
    if category < len(CATEGORY_WORDS):
        return words
    return tuple(f"{w}-{category}" for w in words)


def position_bias(position: np.ndarray) -> np.ndarray:
    return 1.0 / np.log2(1.0 + np.asarray(position, dtype=float))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return (prefix + pd.Series(numbers, dtype="int64").astype(str).str.zfill(width)).to_numpy(dtype=object)


def _ts(day: date, seconds: np.ndarray) -> pd.Series:
    """UTC timestamps (microseconds) at ``seconds`` after ``day`` 00:00 (seconds may be negative)."""
    base = np.datetime64(day.isoformat(), "us")
    micros = np.round(np.asarray(seconds, dtype=float) * 1e6).astype("int64")
    return pd.Series(base + micros.astype("timedelta64[us]")).dt.tz_localize("UTC")


# ---- the entity universe (depends on the seed and sizes only) -----------------------------------------------
@dataclass
class World:
    n_categories: int
    # users
    user_created_day: np.ndarray  # day index relative to the window start (<= 0: initial base)
    user_signup_second: np.ndarray  # seconds after that day's midnight
    user_region: np.ndarray
    user_age_band: np.ndarray
    affinity: np.ndarray  # (users, categories), rows sum to 1
    price_sensitivity: np.ndarray
    activity: np.ndarray
    # sellers
    seller_created_day: np.ndarray
    seller_created_second: np.ndarray
    seller_region: np.ndarray
    seller_tier: np.ndarray
    # items
    item_created_day: np.ndarray
    item_created_second: np.ndarray
    item_type: np.ndarray
    item_seller: np.ndarray
    item_category: np.ndarray
    item_price: np.ndarray
    item_title: np.ndarray
    quality: np.ndarray
    hype: np.ndarray
    initial_stock: np.ndarray


def _created_days(rng: np.random.Generator, n: int, initial_share: float, days: int) -> np.ndarray:
    """Creation day per entity: the initial share before the window (-HISTORY_DAYS..-1), the rest on days 1..N-1."""
    n_initial = max(1, int(round(n * initial_share)))
    created = np.empty(n, dtype=np.int64)
    created[:n_initial] = rng.integers(-HISTORY_DAYS, 0, size=n_initial)
    created[n_initial:] = rng.integers(1, days, size=n - n_initial)
    return created


def build_world(settings: Settings) -> World:
    sim = settings.simulator
    rng = np.random.default_rng([sim.seed, 0])
    n_users, n_items, n_sellers, n_cat = sim.users, sim.items, sim.sellers, sim.categories

    affinity = rng.dirichlet(np.full(n_cat, PARAMS["dirichlet_alpha"]), size=n_users)
    affinity = np.maximum(affinity, PARAMS["affinity_floor"])
    affinity /= affinity.sum(axis=1, keepdims=True)

    item_category = rng.choice(n_cat, size=n_items, p=rng.dirichlet(np.full(n_cat, 5.0)))
    category_price = np.exp(rng.uniform(np.log(8.0), np.log(120.0), size=n_cat))
    item_price = np.round(np.maximum(category_price[item_category] * rng.lognormal(0.0, 0.5, n_items), 0.99), 2)
    quality = rng.normal(0.0, 1.0, n_items)
    # Hype (what the logging policy sees) is only weakly related to quality.
    hype = 0.3 * quality + rng.normal(0.0, 1.0, n_items)
    item_type = rng.choice(len(ITEM_TYPES), size=n_items, p=[0.75, 0.18, 0.07])
    seller_weights = rng.pareto(1.5, n_sellers) + 0.1
    item_seller = rng.choice(n_sellers, size=n_items, p=seller_weights / seller_weights.sum())
    adjective = rng.integers(0, len(ADJECTIVES), size=n_items)
    noun = rng.integers(0, 4, size=n_items)
    item_title = np.array(
        [
            f"{ADJECTIVES[a]} {category_words(int(c))[n]}"
            for a, c, n in zip(adjective, item_category, noun, strict=True)
        ],
        dtype=object,
    )
    stock = rng.negative_binomial(2, 2 / (2 + 30), size=n_items).astype(np.int64)
    stock[rng.random(n_items) < 0.08] = 0

    return World(
        n_categories=n_cat,
        user_created_day=_created_days(rng, n_users, INITIAL_USER_SHARE, sim.days),
        user_signup_second=rng.integers(0, DAY_SECONDS, size=n_users),
        user_region=rng.choice(np.array(REGIONS, dtype=object), size=n_users, p=[0.35, 0.3, 0.25, 0.1]),
        user_age_band=rng.choice(np.array(AGE_BANDS, dtype=object), size=n_users),
        affinity=affinity,
        price_sensitivity=rng.uniform(0.2, 1.5, n_users),
        activity=rng.lognormal(0.0, 1.0, n_users),
        seller_created_day=_created_days(rng, n_sellers, INITIAL_SELLER_SHARE, sim.days),
        seller_created_second=rng.integers(0, DAY_SECONDS, size=n_sellers),
        seller_region=rng.choice(np.array(REGIONS, dtype=object), size=n_sellers),
        seller_tier=rng.choice(np.array(SELLER_TIERS, dtype=object), size=n_sellers, p=[0.6, 0.3, 0.1]),
        item_created_day=_created_days(rng, n_items, INITIAL_ITEM_SHARE, sim.days),
        item_created_second=rng.integers(0, DAY_SECONDS, size=n_items),
        item_type=np.array(ITEM_TYPES, dtype=object)[item_type],
        item_seller=item_seller,
        item_category=item_category.astype(np.int64),
        item_price=item_price,
        item_title=item_title,
        quality=quality,
        hype=hype,
        initial_stock=stock,
    )


def click_logit(world: World, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Position-free click logit of (user, item) index pairs on the feed surface."""
    aff = world.affinity[users, world.item_category[items]]
    return (
        PARAMS["bias"]
        + PARAMS["w_affinity"] * np.log(world.n_categories * aff)
        + PARAMS["w_quality"] * world.quality[items]
        - PARAMS["w_price"] * world.price_sensitivity[users] * np.log(world.item_price[items] / PARAMS["ref_price"])
    )


def purchase_given_click(world: World, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p_cart | click, p_purchase | cart): dearer items convert less, for price-sensitive users more so."""
    log_price = np.log(world.item_price[items] / PARAMS["ref_price"])
    sens = world.price_sensitivity[users]
    p_cart = _sigmoid(PARAMS["cart_bias"] + 0.4 * world.quality[items] - 0.5 * sens * log_price)
    p_buy = _sigmoid(PARAMS["buy_bias"] - 0.6 * sens * log_price)
    return p_cart, p_buy


# ---- one day -------------------------------------------------------------------------------------------------
def _sample_slates(
    rng: np.random.Generator, weights: np.ndarray, n_requests: int, slate_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Slates sampled without replacement ∝ weights (successive sampling): returns (request_row, item) pairs.

    Draws with replacement and keeps each row's first occurrences, which is exactly successive sampling without
    replacement, so earlier positions go to higher-weight items. Every slate has min(slate_size, items) items.
    """
    slate_size = min(slate_size, int((weights > 0).sum()))
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    rows_out = np.empty((n_requests, slate_size), dtype=np.int64)
    pending = np.arange(n_requests)
    n_draws = slate_size * 4
    while len(pending):
        draws = np.searchsorted(cdf, rng.random((len(pending), n_draws)), side="right")
        draws = np.minimum(draws, len(weights) - 1)
        flat_keys = (np.arange(len(pending))[:, None] * len(weights) + draws).ravel()
        first_flat = np.zeros(flat_keys.shape, dtype=bool)
        first_flat[np.unique(flat_keys, return_index=True)[1]] = True
        first = first_flat.reshape(len(pending), n_draws)
        rank = np.cumsum(first, axis=1)
        full = rank[:, -1] >= slate_size
        rows, cols = np.nonzero(first & (rank <= slate_size) & full[:, None])  # row-major: draw order
        rows_out[pending[full]] = draws[rows, cols].reshape(-1, slate_size)
        # Rows that drew fewer than slate_size distinct items (concentrated weights) draw again, longer.
        pending = pending[~full]
        n_draws *= 4
        if n_draws > slate_size * 4**5:  # pathological weights: finish the stragglers uniformly
            cdf = np.cumsum(weights > 0, dtype=float)
            cdf /= cdf[-1]
    return np.repeat(np.arange(n_requests), slate_size), rows_out.ravel()


def _simulate_day(
    settings: Settings, world: World, day_index: int, day: date, stock: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events and hidden impression truth of one day; ``stock`` (start of day) is decremented in place."""
    sim = settings.simulator
    rng = np.random.default_rng([sim.seed, 1, day.toordinal()])
    n_cat = world.n_categories
    stamp = day.strftime("%Y%m%d")

    # Requests: eligible users signed up before today; activity is skewed.
    eligible_users = np.nonzero(world.user_created_day < day_index)[0]
    user_w = world.activity[eligible_users]
    req_user = eligible_users[rng.choice(len(eligible_users), size=sim.requests_per_day, p=user_w / user_w.sum())]
    req_second = np.sort(rng.uniform(0, LAST_REQUEST_SECOND, sim.requests_per_day))
    is_search = rng.random(sim.requests_per_day) < 0.2
    # A search query names a category the user likes (drawn from their affinity).
    cum_aff = np.cumsum(world.affinity[req_user], axis=1)
    query_cat = (rng.random(sim.requests_per_day)[:, None] > cum_aff).sum(axis=1).clip(0, n_cat - 1)
    query_cat = np.where(is_search, query_cat, -1)
    query_word = rng.integers(0, len(CATEGORY_WORDS[0]), sim.requests_per_day)

    # Logging policy: a noisy popularity over items created before today.
    live_items = np.nonzero(world.item_created_day < day_index)[0]
    noisy_hype = world.hype[live_items] + rng.normal(0.0, 0.3, len(live_items))
    base_w = np.exp(noisy_hype)
    slot_req_parts, slot_item_parts = [], []
    feed_rows = np.nonzero(~is_search)[0]
    if len(feed_rows):
        rows, items = _sample_slates(rng, base_w, len(feed_rows), sim.slate_size)
        slot_req_parts.append(feed_rows[rows])
        slot_item_parts.append(live_items[items])
    for cat in np.unique(query_cat[is_search]):
        cat_rows = np.nonzero(query_cat == cat)[0]
        w = base_w * np.where(world.item_category[live_items] == cat, 30.0, 1.0)
        rows, items = _sample_slates(rng, w, len(cat_rows), sim.slate_size)
        slot_req_parts.append(cat_rows[rows])
        slot_item_parts.append(live_items[items])
    slot_req = np.concatenate(slot_req_parts)
    slot_item = np.concatenate(slot_item_parts)
    order = np.argsort(slot_req, kind="stable")  # keeps draw order (= position) within a request
    slot_req, slot_item = slot_req[order], slot_item[order]
    starts = np.searchsorted(slot_req, slot_req, side="left")
    position = np.arange(len(slot_req)) - starts + 1
    slot_user = req_user[slot_req]

    # Behaviour.
    logit = click_logit(world, slot_user, slot_item)
    logit = logit + PARAMS["search_match_bonus"] * (world.item_category[slot_item] == query_cat[slot_req])
    p_click_free = _sigmoid(logit)
    p_click = p_click_free * position_bias(position)
    p_cart, p_buy = purchase_given_click(world, slot_user, slot_item)
    clicked = rng.random(len(slot_req)) < p_click
    carted = clicked & (rng.random(len(slot_req)) < p_cart)
    wants = carted & (rng.random(len(slot_req)) < p_buy)
    quantity = np.where(rng.random(len(slot_req)) < 0.85, 1, rng.integers(2, 4, len(slot_req)))

    imp_second = req_second[slot_req] + rng.uniform(0.0, 1.0, len(slot_req)) * 0.5
    click_second = imp_second + rng.uniform(2, 120, len(slot_req))
    cart_second = click_second + rng.uniform(10, 600, len(slot_req))
    buy_second = cart_second + rng.uniform(30, 1_800, len(slot_req))

    # Stock: purchases in time order, each needs the whole quantity still in stock at the start of day.
    buy_idx = np.nonzero(wants)[0]
    buy_idx = buy_idx[np.argsort(buy_second[buy_idx], kind="stable")]
    buy_items = slot_item[buy_idx]
    cum = pd.Series(quantity[buy_idx]).groupby(buy_items).cumsum().to_numpy()
    ok = cum <= stock[buy_items]
    bought = np.zeros(len(slot_req), dtype=bool)
    bought[buy_idx[ok]] = True
    np.subtract.at(stock, buy_items[ok], quantity[buy_idx[ok]])

    # Events frame.
    req_ids = np.array([f"r{stamp}"], dtype=object) + pd.Series(slot_req).astype(str).str.zfill(7).to_numpy(
        dtype=object
    )
    parts = []
    for event_type, mask, seconds in (
        ("impression", np.ones(len(slot_req), dtype=bool), imp_second),
        ("click", clicked, click_second),
        ("add_to_cart", carted, cart_second),
        ("purchase", bought, buy_second),
    ):
        idx = np.nonzero(mask)[0]
        parts.append(
            pd.DataFrame(
                {
                    "second": seconds[idx],
                    "event_type": event_type,
                    "slot": idx,
                }
            )
        )
    ev = pd.concat(parts, ignore_index=True).sort_values(["second", "slot"], kind="stable", ignore_index=True)
    slot = ev["slot"].to_numpy()
    etype = ev["event_type"].to_numpy()
    is_imp = etype == "impression"
    is_buy = etype == "purchase"
    search_slot = is_search[slot_req[slot]]
    vocabulary = np.array([list(category_words(c)) for c in range(n_cat)], dtype=object)  # (categories, words)
    req_query = vocabulary[np.maximum(query_cat, 0), query_word]
    query = np.where(search_slot, req_query[slot_req[slot]], None)
    events = pd.DataFrame(
        {
            "event_id": _ids(f"e{stamp}", np.arange(len(ev)), 9),
            "event_ts": _ts(day, ev["second"].to_numpy()),
            "event_type": etype.astype(object),
            "user_id": _ids("u", slot_user[slot], 6),
            "item_id": _ids("i", slot_item[slot], 6),
            "request_id": req_ids[slot],
            "position": pd.array(np.where(is_imp, position[slot], 0), dtype="Int64"),
            "surface": np.where(search_slot, "search", "feed").astype(object),
            "query": query,
            "price": world.item_price[slot_item[slot]].astype("float64"),
            "quantity": pd.array(np.where(is_buy, quantity[slot], 0), dtype="Int64"),
        }
    )
    events.loc[~is_imp, "position"] = pd.NA
    events.loc[~is_buy, "quantity"] = pd.NA

    truth = pd.DataFrame(
        {
            "request_id": req_ids,
            "item_id": _ids("i", slot_item, 6),
            "user_id": _ids("u", slot_user, 6),
            "position": position.astype("int64"),
            "p_click": p_click_free,  # position-free: the click probability at position 1
            "position_bias": position_bias(position),
            "p_purchase": p_click_free * p_cart * p_buy,
        }
    )
    return events, truth


# ---- writing -------------------------------------------------------------------------------------------------
SCHEMAS: dict[str, pa.Schema] = {
    "events": pa.schema(
        [
            ("event_id", pa.string()),
            ("event_ts", pa.timestamp("us", tz="UTC")),
            ("event_type", pa.string()),
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("request_id", pa.string()),
            ("position", pa.int64()),
            ("surface", pa.string()),
            ("query", pa.string()),
            ("price", pa.float64()),
            ("quantity", pa.int64()),
        ]
    ),
    "items": pa.schema(
        [
            ("item_id", pa.string()),
            ("item_type", pa.string()),
            ("seller_id", pa.string()),
            ("category_id", pa.int64()),
            ("price", pa.float64()),
            ("title", pa.string()),
            ("created_ts", pa.timestamp("us", tz="UTC")),
        ]
    ),
    "sellers": pa.schema(
        [
            ("seller_id", pa.string()),
            ("created_ts", pa.timestamp("us", tz="UTC")),
            ("region", pa.string()),
            ("tier", pa.string()),
        ]
    ),
    "inventory": pa.schema(
        [
            ("item_id", pa.string()),
            ("snapshot_ts", pa.timestamp("us", tz="UTC")),
            ("stock_units", pa.int64()),
        ]
    ),
    "users": pa.schema(
        [
            ("user_id", pa.string()),
            ("signup_ts", pa.timestamp("us", tz="UTC")),
            ("region", pa.string()),
            ("age_band", pa.string()),
        ]
    ),
}


def _write(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # atomic: readers never see half a partition


def partition_path(raw_dir: Path, table: str, day: date) -> Path:
    return raw_dir / table / f"dt={day.isoformat()}" / "part-0.parquet"


def _entity_frames(world: World, window_start: date, day_index: int) -> dict[str, pd.DataFrame]:
    """Users, sellers and items of partition ``day_index`` (0 holds the initial base)."""

    def pick(created: np.ndarray) -> np.ndarray:
        return np.nonzero(created <= 0)[0] if day_index == 0 else np.nonzero(created == day_index)[0]

    def created_ts(created: np.ndarray, seconds: np.ndarray, idx: np.ndarray) -> pd.Series:
        return _ts(window_start, created[idx] * DAY_SECONDS + seconds[idx])

    u = pick(world.user_created_day)
    s = pick(world.seller_created_day)
    i = pick(world.item_created_day)
    return {
        "users": pd.DataFrame(
            {
                "user_id": _ids("u", u, 6),
                "signup_ts": created_ts(world.user_created_day, world.user_signup_second, u),
                "region": world.user_region[u],
                "age_band": world.user_age_band[u],
            }
        ),
        "sellers": pd.DataFrame(
            {
                "seller_id": _ids("s", s, 4),
                "created_ts": created_ts(world.seller_created_day, world.seller_created_second, s),
                "region": world.seller_region[s],
                "tier": world.seller_tier[s],
            }
        ),
        "items": pd.DataFrame(
            {
                "item_id": _ids("i", i, 6),
                "item_type": world.item_type[i],
                "seller_id": _ids("s", world.item_seller[i], 4),
                "category_id": world.item_category[i],
                "price": world.item_price[i],
                "title": world.item_title[i],
                "created_ts": created_ts(world.item_created_day, world.item_created_second, i),
            }
        ),
    }


def window(settings: Settings, run_date: date) -> list[date]:
    start = run_date - timedelta(days=settings.simulator.days - 1)
    return [start + timedelta(days=k) for k in range(settings.simulator.days)]


def simulate(settings: Settings, run_date: date) -> dict:
    """Write raw partitions for the ``settings.simulator.days`` days ending at ``run_date`` and the hidden truth.

    Returns a summary: the days written, rows per table and the click-through rate.
    """
    days = window(settings, run_date)
    world = build_world(settings)
    raw_dir, truth_dir = settings.raw_dir, settings.truth_dir
    rows = dict.fromkeys(TABLES, 0)
    counts = dict.fromkeys(EVENT_TYPES, 0)
    stock = world.initial_stock.copy()
    restock_rng = np.random.default_rng([settings.simulator.seed, 2])

    for k, day in enumerate(days):
        # Start of day: restock some low-stock items, then snapshot the items that exist.
        if k > 0:
            low = (stock <= 2) & (restock_rng.random(len(stock)) < 0.35)
            stock[low] += restock_rng.negative_binomial(2, 2 / 32, size=int(low.sum())) + 5
        existing = np.nonzero(world.item_created_day < k)[0]
        inventory = pd.DataFrame(
            {
                "item_id": _ids("i", existing, 6),
                "snapshot_ts": _ts(day, np.zeros(len(existing))),
                "stock_units": stock[existing].astype("int64"),
            }
        )
        frames = _entity_frames(world, days[0], k)
        frames["inventory"] = inventory
        events, truth = _simulate_day(settings, world, k, day, stock)
        frames["events"] = events
        for table in TABLES:
            _write(frames[table], partition_path(raw_dir, table, day), SCHEMAS[table])
            rows[table] += len(frames[table])
        _write(truth, truth_dir / "impressions" / f"dt={day.isoformat()}" / "part-0.parquet")
        for event_type, n in events["event_type"].value_counts().items():
            counts[str(event_type)] += int(n)

    n_cat = world.n_categories
    truth_users = pd.DataFrame(
        {
            "user_id": _ids("u", np.arange(len(world.activity)), 6),
            "price_sensitivity": world.price_sensitivity,
            "activity": world.activity,
            **{f"affinity_{c:02d}": world.affinity[:, c] for c in range(n_cat)},
        }
    )
    truth_items = pd.DataFrame(
        {
            "item_id": _ids("i", np.arange(len(world.quality)), 6),
            "quality": world.quality,
            "hype": world.hype,
            "category_id": world.item_category,
            "price": world.item_price,
        }
    )
    _write(truth_users, truth_dir / "users.parquet")
    _write(truth_items, truth_dir / "items.parquet")
    (truth_dir / "params.json").write_text(
        json.dumps({**PARAMS, "n_categories": n_cat, "position_bias": "1/log2(1+position)"}, indent=2)
    )
    return {
        "run_date": run_date.isoformat(),
        "days": [d.isoformat() for d in days],
        "rows": rows,
        "events": counts,
        "ctr": counts["click"] / max(counts["impression"], 1),
        "raw_dir": str(raw_dir),
    }


# ---- the oracle ----------------------------------------------------------------------------------------------
def oracle_scores(truth_dir: Path, frame: pd.DataFrame, target: str = "p_click") -> np.ndarray:
    """True (position-free) ``p_click`` or ``p_purchase`` for each row of ``frame``, in its order.

    Rows with ``request_id`` and ``item_id`` are looked up among the logged impressions (search bonus included);
    rows not found there, or frames without ``request_id``, fall back to the feed-surface probability computed from
    the latent preferences of ``user_id`` and ``item_id``. Unknown users or items give NaN.
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


def _latent_scores(truth_dir: Path, pairs: pd.DataFrame, target: str) -> np.ndarray:
    users = pd.read_parquet(truth_dir / "users.parquet").set_index("user_id")
    items = pd.read_parquet(truth_dir / "items.parquet").set_index("item_id")
    aff_cols = sorted(c for c in users.columns if c.startswith("affinity_"))
    u = users.reindex(pairs["user_id"].astype(str))
    i = items.reindex(pairs["item_id"].astype(str))
    known = u["price_sensitivity"].notna().to_numpy() & i["quality"].notna().to_numpy()
    cat = i["category_id"].fillna(0).to_numpy(dtype=int)
    aff = u[aff_cols].to_numpy(dtype=float)[np.arange(len(pairs)), cat]
    sens = u["price_sensitivity"].to_numpy(dtype=float)
    log_price = np.log(i["price"].to_numpy(dtype=float) / PARAMS["ref_price"])
    quality = i["quality"].to_numpy(dtype=float)
    p_click = _sigmoid(
        PARAMS["bias"]
        + PARAMS["w_affinity"] * np.log(len(aff_cols) * aff)
        - PARAMS["w_price"] * sens * log_price
        + PARAMS["w_quality"] * quality
    )
    result = p_click
    if target == "p_purchase":
        p_cart = _sigmoid(PARAMS["cart_bias"] + 0.4 * quality - 0.5 * sens * log_price)
        p_buy = _sigmoid(PARAMS["buy_bias"] - 0.6 * sens * log_price)
        result = p_click * p_cart * p_buy
    return np.where(known, result, np.nan)
