"""Marketplace simulator: writes the raw data contract (shoprank/raw_contract.py) and, apart from it, the hidden truth.

The world
---------
Users carry long-term interests (a Dirichlet category affinity), a price sensitivity and a skewed activity level.
Sellers own items of three types: products, short videos and live streams; a video or live stream *promotes* a
product (same category and price; a purchase from it sells the promoted product's stock). Items carry a hidden
quality, a category, a price, a title (adjective + category noun) and a *hype* score the logging policy sees.
Every day new users, sellers and items arrive (cold start: new items start with low hype, new users without history).

A day
-----
Each request belongs to a user and carries a short-term *intent* category: a day anchor drawn from the user's
affinity at their first request of the day, which drifts to a fresh draw on later visits. With
``simulator.session_requests`` > 1 a user's requests come in *visits* (sessions): bursts of a few requests a minute or
two apart, within which the intent persists (it switches to a fresh draw with probability
``simulator.session_intent_switch`` per request); with 1 every request is a visit of its own, spread uniformly over
the day (docs/simulator.md). 20% of requests are
searches whose query is the intent category's noun (sometimes with an adjective), i.e. words of item titles. The
slate comes from the policy (default: sampling ∝ a noisy popularity, category- and word-boosted for search; or any
``policy`` callable scoring sampled candidates). The user clicks with

    p_click = sigmoid(bias + w_aff*log(C*affinity[u, cat]) + w_quality*quality - w_price*sens[u]*log(price/ref)
                      + w_intent*[cat == intent] + search_match_bonus*[search, cat == intent]
                      + text_match_bonus*[search, title has the query noun]) * position_bias(position),
    position_bias(p) = 1 / log2(1 + p)

then adds to cart (price-dependent; impossible when the product is out of stock at the start of the day) and buys
(price-dependent; a purchase needs the whole quantity still in stock, in time order). Stock sells down with
purchases and low-stock products restock now and then.

Determinism and anchoring
-------------------------
The calendar starts at ``settings.simulator.start_date`` (day index 0). Entities arriving on day d, and day d's
randomness, come from generators seeded by (seed, d): partitions of day D are a pure function of (seed, D, sizes)
and of the stock evolved from the start. A run for ``run_date`` writes the events and inventory of the ``days``
days ending there, plus any missing entity partitions since the start (the start day holds the initial base);
partitions before the window that exist are left alone. The stock at the end of every simulated day is
checkpointed under the truth folder, so the next day's run resumes instead of replaying the calendar.

Everything is vectorised with numpy/pyarrow per day; Python loops run over days and (search) query groups.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shoprank.raw_contract import (
    AGE_BANDS,
    ENTITY_TABLES,
    EVENT_TYPES,
    ITEM_TYPES,
    REGIONS,
    SCHEMAS,
    SELLER_TIERS,
    TABLES,
    partition_path,
    write_partition,
)
from shoprank.settings import Settings, SimulatorSettings

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
TITLE_SUFFIX = {"product": "", "video": " review video", "live": " live deal"}

# Behaviour model constants (also written to truth/params.json for the oracle).
PARAMS = {
    "bias": -2.3,
    "w_affinity": 0.9,
    "w_quality": 0.7,
    "w_price": 0.6,
    "w_intent": 0.6,
    "ref_price": 30.0,
    "search_match_bonus": 0.5,
    "text_match_bonus": 0.4,
    "cart_bias": -1.0,
    "buy_bias": 0.3,
    "dirichlet_alpha": 0.25,
    "affinity_floor": 1e-3,
    "intent_drift": 0.35,
    "search_share": 0.2,
    "new_item_hype_penalty": 0.7,
}
HISTORY_DAYS = 60  # the initial base was created up to this many days before the start date
INITIAL_SHARE = {"users": 0.88, "sellers": 0.95, "items": 0.9}
DAILY_ARRIVALS = {"users": 0.04, "sellers": 0.0125, "items": 0.025}  # of the size setting, each day after the start
ID_WIDTH = {"users": 6, "sellers": 4, "items": 6}
ID_PREFIX = {"users": "u", "sellers": "s", "items": "i"}
DAY_SECONDS = 86_400
LAST_REQUEST_SECOND = DAY_SECONDS - 3_600  # funnel events (< 1 h later) stay inside the request's day
# Seconds (uniform ranges) from an impression to its click, a click to its cart, a cart to its purchase. The replay
# with feedback (orchestration/session_replay.py) reports its users' events with the same delays, so the session
# features it serves see the clock training saw.
CLICK_DELAY_SECONDS = (2.0, 120.0)
CART_DELAY_SECONDS = (10.0, 600.0)
BUY_DELAY_SECONDS = (30.0, 1_800.0)
EVENTS_PER_IMPRESSION = 1.07  # impressions plus clicks, carts and purchases, for sizing --events
# A policy scores candidate rows (request_id, user_id, item_id, surface, query, candidate_rank); higher ranks first.
Policy = Callable[[pd.DataFrame], np.ndarray]
# A server answers each request (rows request_id, user_id, surface, query) with the item ids it shows, best first:
# the closed loop (producers/served_day.py) lets a deployed policy, not the simulator, choose what users see.
Server = Callable[[pd.DataFrame], list[list[str]]]


def category_words(category: int) -> tuple[str, ...]:
    words = CATEGORY_WORDS[category % len(CATEGORY_WORDS)]
    if category < len(CATEGORY_WORDS):
        return words
    return tuple(f"{w}-{category}" for w in words)


def position_bias(position: np.ndarray) -> np.ndarray:
    return 1.0 / np.log2(1.0 + np.asarray(position, dtype=float))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    padded = pc.utf8_lpad(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, padded, "")


def _ts(day: date, seconds: np.ndarray) -> pa.Array:
    """UTC timestamps (microseconds) at ``seconds`` after ``day`` 00:00 (seconds may be negative)."""
    base = np.datetime64(day.isoformat(), "us").astype(np.int64)
    micros = base + np.round(np.asarray(seconds, dtype=float) * 1e6).astype(np.int64)
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"))


def effective_sizes(sim: SimulatorSettings) -> SimulatorSettings:
    """Sizes after ``events``: requests per day for that many events over the window, and a world to match."""
    if not sim.events:
        return sim
    per_day = sim.events / sim.days
    requests = max(10, math.ceil(per_day / (sim.slate_size * EVENTS_PER_IMPRESSION)))
    return sim.model_copy(
        update={
            "requests_per_day": requests,
            "users": max(sim.users, requests),
            "items": max(sim.items, requests // 3),
            "sellers": max(sim.sellers, requests // 60),
        }
    )


# ---- the entity universe ----------------------------------------------------------------------------------------
@dataclass
class World:
    """Every entity that exists up to the world's horizon; index i is the entity with id number i."""

    n_categories: int
    # users
    user_created_day: np.ndarray  # day index relative to the start date (< 0: initial base)
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
    seller_weight: np.ndarray
    # items
    item_created_day: np.ndarray
    item_created_second: np.ndarray
    item_type: np.ndarray
    item_seller: np.ndarray
    item_category: np.ndarray
    item_price: np.ndarray
    item_noun: np.ndarray  # index into category_words(category): the title's searchable word
    item_title: np.ndarray
    quality: np.ndarray
    hype: np.ndarray
    initial_stock: np.ndarray
    promoted_item: np.ndarray  # the product a video / live stream promotes; the item itself for products


def _block_size(kind: str, total: int, day: int) -> int:
    if day == 0:
        return max(2, round(total * INITIAL_SHARE[kind]))
    return max(1, round(total * DAILY_ARRIVALS[kind]))


def _created(rng: np.random.Generator, n: int, day: int) -> np.ndarray:
    return rng.integers(-HISTORY_DAYS, 0, size=n) if day == 0 else np.full(n, day, dtype=np.int64)


def _user_block(sim: SimulatorSettings, day: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([sim.seed, 10, day])
    n = _block_size("users", sim.users, day)
    affinity = rng.dirichlet(np.full(sim.categories, PARAMS["dirichlet_alpha"]), size=n)
    affinity = np.maximum(affinity, PARAMS["affinity_floor"])
    affinity /= affinity.sum(axis=1, keepdims=True)
    return {
        "user_created_day": _created(rng, n, day),
        "user_signup_second": rng.integers(0, DAY_SECONDS, size=n),
        "user_region": rng.choice(np.array(REGIONS, dtype=object), size=n, p=[0.35, 0.3, 0.25, 0.1]),
        "user_age_band": rng.choice(np.array(AGE_BANDS, dtype=object), size=n),
        "affinity": affinity,
        "price_sensitivity": rng.uniform(0.2, 1.5, n),
        "activity": rng.lognormal(0.0, 1.0, n),
    }


def _seller_block(sim: SimulatorSettings, day: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([sim.seed, 11, day])
    n = _block_size("sellers", sim.sellers, day)
    return {
        "seller_created_day": _created(rng, n, day),
        "seller_created_second": rng.integers(0, DAY_SECONDS, size=n),
        "seller_region": rng.choice(np.array(REGIONS, dtype=object), size=n),
        "seller_tier": rng.choice(np.array(SELLER_TIERS, dtype=object), size=n, p=[0.6, 0.3, 0.1]),
        "seller_weight": rng.pareto(1.5, n) + 0.1,
    }


def _item_block(
    sim: SimulatorSettings, day: int, sellers: dict[str, np.ndarray], products: np.ndarray, first_index: int
) -> dict[str, np.ndarray]:
    """Items created on ``day``; ``products`` indexes the products that exist before this block."""
    world_rng = np.random.default_rng([sim.seed, 0])  # category-level constants, the same every day
    category_share = world_rng.dirichlet(np.full(sim.categories, 5.0))
    category_price = np.exp(world_rng.uniform(np.log(8.0), np.log(120.0), size=sim.categories))
    rng = np.random.default_rng([sim.seed, 12, day])
    n = _block_size("items", sim.items, day)
    category = rng.choice(sim.categories, size=n, p=category_share).astype(np.int64)
    price = np.round(np.maximum(category_price[category] * rng.lognormal(0.0, 0.5, n), 0.99), 2)
    quality = rng.normal(0.0, 1.0, n)
    # Hype (what the logging policy sees) is weakly related to quality; new arrivals start unknown (low).
    hype = 0.3 * quality + rng.normal(0.0, 1.0, n) - (PARAMS["new_item_hype_penalty"] if day > 0 else 0.0)
    item_type = rng.choice(len(ITEM_TYPES), size=n, p=[0.75, 0.18, 0.07])
    weights = sellers["seller_weight"]
    seller = rng.choice(len(weights), size=n, p=weights / weights.sum())
    adjective = rng.integers(0, len(ADJECTIVES), size=n)
    noun = rng.integers(0, 4, size=n)
    stock = rng.negative_binomial(2, 2 / (2 + 30), size=n).astype(np.int64)
    stock[rng.random(n) < 0.08] = 0
    # Videos and live streams promote a product: an earlier one, or a product of this block.
    own_products = first_index + np.nonzero(item_type == 0)[0]
    pool = np.concatenate([products, own_products])
    promoted = np.arange(first_index, first_index + n)
    media = item_type != 0
    picks = pool[rng.integers(0, len(pool), size=n)]
    promoted[media] = picks[media]
    # A promotion copies the product's category, price, noun and adjective (resolved by the caller for earlier ones).
    return {
        "item_created_day": _created(rng, n, day),
        "item_created_second": rng.integers(0, DAY_SECONDS, size=n),
        "item_type": np.array(ITEM_TYPES, dtype=object)[item_type],
        "item_seller": seller,
        "item_category": category,
        "item_price": price,
        "item_noun": noun,
        "item_adjective": adjective,
        "quality": quality,
        "hype": hype,
        "initial_stock": np.where(media, 0, stock),
        "promoted_item": promoted,
    }


def build_world(settings: Settings, through: date | None = None) -> World:
    """The world of every entity created up to ``through`` (default: the settings' run date)."""
    sim = effective_sizes(settings.simulator)
    horizon = max(0, ((through or settings.default_run_date) - sim.start_date).days)
    users = [_user_block(sim, d) for d in range(horizon + 1)]
    sellers: dict[str, np.ndarray] = {}
    items: dict[str, np.ndarray] = {}
    for d in range(horizon + 1):
        block = _seller_block(sim, d)
        sellers = {k: np.concatenate([sellers[k], v]) if sellers else v for k, v in block.items()}
        n_items = len(items["quality"]) if items else 0
        products = np.nonzero(items["item_type"] == "product")[0] if items else np.empty(0, dtype=np.int64)
        iblock = _item_block(sim, d, sellers, products, n_items)
        items = {k: np.concatenate([items[k], v]) if items else v for k, v in iblock.items()}
        # Promotions copy their product's attributes (the product may be in this block: fill products first).
        source = items["promoted_item"][n_items:]
        for key in ("item_category", "item_price", "item_noun", "item_adjective"):
            items[key][n_items:] = items[key][source]
    user_arrays = {k: np.concatenate([b[k] for b in users]) for k in users[0]}
    for kind, n in (("users", len(user_arrays["activity"])), ("items", len(items["quality"]))):
        if n >= 10 ** ID_WIDTH[kind]:
            raise ValueError(f"{n} {kind} do not fit the {ID_WIDTH[kind]}-digit ids of the raw contract")
    adjective = items.pop("item_adjective")
    suffix = np.array([TITLE_SUFFIX[t] for t in ITEM_TYPES], dtype=object)
    vocabulary = np.array([list(category_words(c)) for c in range(sim.categories)], dtype=object)
    title = (
        np.array(ADJECTIVES, dtype=object)[adjective]
        + " "
        + vocabulary[items["item_category"], items["item_noun"]]
        + suffix[pd.Index(ITEM_TYPES).get_indexer(items["item_type"])]
    )
    names = {f.name for f in fields(World)}
    data = {**user_arrays, **sellers, **items, "item_title": title}
    return World(n_categories=sim.categories, **{k: v for k, v in data.items() if k in names})


def click_logit(world: World, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Position-free, intent-free click logit of (user, item) index pairs on the feed surface."""
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


# ---- one day ----------------------------------------------------------------------------------------------------
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


@dataclass
class Day:
    """One simulated day: the raw events, the hidden per-impression truth and the event counts."""

    events: pa.Table
    truth: pa.Table
    counts: dict[str, int]


def _intents(
    rng: np.random.Generator, world: World, req_user: np.ndarray, session: np.ndarray | None = None, switch: float = 0.0
) -> np.ndarray:
    """Short-term intent per request (rows in time order).

    Each visit (session) starts on the user's day anchor (their first draw of the day) or, with probability
    ``intent_drift``, on a fresh draw from their affinity; within a visit each later request keeps the previous
    request's intent, or with probability ``switch`` moves to a fresh draw. Without sessions every request is a
    visit of its own (the anchor or a fresh draw, independently per request).
    """
    cum_aff = np.cumsum(world.affinity[req_user], axis=1)
    draws = (rng.random(len(req_user))[:, None] > cum_aff).sum(axis=1).clip(0, world.n_categories - 1)
    _, first, inverse = np.unique(req_user, return_index=True, return_inverse=True)
    anchor = draws[first[inverse]]
    start = np.where(rng.random(len(req_user)) < PARAMS["intent_drift"], draws, anchor)
    if session is None:
        return start
    # In session order (stable: time order within a visit), the intent is the value at the latest switch point;
    # a visit's first request is always one, so the running maximum never crosses into the previous visit.
    order = np.argsort(session, kind="stable")
    opens = np.ones(len(order), dtype=bool)
    opens[1:] = session[order][1:] != session[order][:-1]
    switches = opens | (rng.random(len(order)) < switch)
    value = np.where(opens, start[order], draws[order])
    latest = np.maximum.accumulate(np.where(switches, np.arange(len(order)), 0))
    intent = np.empty_like(start)
    intent[order] = value[latest]
    return intent


def _requests(
    rng: np.random.Generator, world: World, eligible: np.ndarray, sim: SimulatorSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(user, second, session) of the day's requests, in time order (session None: one visit per request).

    Without sessions (``session_requests`` 1) requests are spread uniformly over the day, each by a user drawn by
    activity. With sessions, a visit's user is drawn by activity, it starts uniformly over the day and holds a
    geometric number of requests (mean ``session_requests``), exponential gaps (mean ``request_gap_seconds``) apart:
    what browsing looks like, a burst of requests, then nothing for hours.
    """
    n_req = sim.requests_per_day
    weights = world.activity[eligible] / world.activity[eligible].sum()
    if sim.session_requests <= 1:
        req_user = eligible[rng.choice(len(eligible), size=n_req, p=weights)]
        return req_user, np.sort(rng.uniform(0, LAST_REQUEST_SECOND, n_req)), None
    lengths = rng.geometric(1.0 / sim.session_requests, size=n_req)  # n_req visits always cover n_req requests
    n_sessions = int(np.searchsorted(np.cumsum(lengths), n_req)) + 1
    lengths = lengths[:n_sessions]
    lengths[-1] -= int(lengths.sum()) - n_req
    session = np.repeat(np.arange(n_sessions), lengths)
    opens = np.r_[0, np.cumsum(lengths)[:-1]]
    gaps = rng.exponential(sim.request_gap_seconds, n_req)
    gaps[opens] = 0.0
    offset = np.cumsum(gaps)
    offset -= np.repeat(offset[opens], lengths)  # seconds since the visit's first request
    duration = np.maximum.reduceat(offset, opens)
    start = rng.uniform(0, np.maximum(LAST_REQUEST_SECOND - duration, 0.0))  # a visit ends before the cut-off
    second = np.minimum(np.repeat(start, lengths) + offset, LAST_REQUEST_SECOND)
    user = eligible[rng.choice(len(eligible), size=n_sessions, p=weights)]
    order = np.argsort(second, kind="stable")
    return user[session][order], second[order], session[order]


def _slates(
    rng: np.random.Generator,
    world: World,
    live_items: np.ndarray,
    is_search: np.ndarray,
    query_cat: np.ndarray,
    query_noun: np.ndarray,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Logging-policy candidates, (request_row, item) in request then rank order: noisy popularity sampling."""
    base_w = np.exp(world.hype[live_items] + rng.normal(0.0, 0.3, len(live_items)))
    req_parts, item_parts = [], []
    feed_rows = np.nonzero(~is_search)[0]
    if len(feed_rows):
        rows, items = _sample_slates(rng, base_w, len(feed_rows), size)
        req_parts.append(feed_rows[rows])
        item_parts.append(live_items[items])
    search_key = np.where(is_search, query_cat * 8 + query_noun, -1)
    for key in np.unique(search_key[is_search]):
        key_rows = np.nonzero(search_key == key)[0]
        cat_match = world.item_category[live_items] == key // 8
        word_match = cat_match & (world.item_noun[live_items] == key % 8)
        w = base_w * np.where(cat_match, 10.0, 1.0) * np.where(word_match, 3.0, 1.0)
        rows, items = _sample_slates(rng, w, len(key_rows), size)
        req_parts.append(key_rows[rows])
        item_parts.append(live_items[items])
    slot_req = np.concatenate(req_parts)
    slot_item = np.concatenate(item_parts)
    order = np.argsort(slot_req, kind="stable")  # keeps draw order (= rank) within a request
    return slot_req[order], slot_item[order]


def _rank_with_policy(
    policy: Policy,
    slot_req: np.ndarray,
    slot_item: np.ndarray,
    context: dict[str, pa.Array],
    slate_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep each request's ``slate_size`` best candidates by the policy's score, best first."""
    starts = np.searchsorted(slot_req, slot_req, side="left")
    candidates = pd.DataFrame(
        {
            "request_id": context["request_id"].take(pa.array(slot_req)).to_numpy(zero_copy_only=False),
            "user_id": context["user_id"].take(pa.array(slot_req)).to_numpy(zero_copy_only=False),
            "item_id": context["item_ids"].take(pa.array(slot_item)).to_numpy(zero_copy_only=False),
            "surface": context["surface"].take(pa.array(slot_req)).to_numpy(zero_copy_only=False),
            "query": context["query"].take(pa.array(slot_req)).to_numpy(zero_copy_only=False),
            "candidate_rank": np.arange(len(slot_req)) - starts + 1,
        }
    )
    scores = np.asarray(policy(candidates), dtype=float)
    if scores.shape != (len(candidates),):
        raise ValueError(f"policy returned {scores.shape} scores for {len(candidates)} candidates")
    order = np.lexsort((np.arange(len(scores)), -scores, slot_req))
    slot_req, slot_item = slot_req[order], slot_item[order]
    rank = np.arange(len(slot_req)) - np.searchsorted(slot_req, slot_req, side="left")
    keep = rank < slate_size
    return slot_req[keep], slot_item[keep]


def served_slots(slates: list[list[str]], live_items: np.ndarray, slate_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(request_row, item) pairs in rank order from served item ids: ids the world does not hold (or that are not
    live yet) and repeats are dropped, each slate keeps its first ``slate_size`` items."""
    live = np.zeros(int(live_items.max()) + 1 if len(live_items) else 0, dtype=bool)
    live[live_items] = True
    req_parts, item_parts = [], []
    for row, slate in enumerate(slates):
        shown = [x for x in dict.fromkeys(_index_of(i) for i in slate) if 0 <= x < len(live) and live[x]]
        shown = shown[:slate_size]
        req_parts.append(np.full(len(shown), row, dtype=np.int64))
        item_parts.append(np.asarray(shown, dtype=np.int64))
    if not req_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(req_parts), np.concatenate(item_parts)


def _index_of(entity_id: str) -> int:
    """The entity index behind a simulator id (i000042 -> 42); -1 for an id the simulator did not mint."""
    digits = str(entity_id)[1:]
    return int(digits) if digits.isdigit() else -1


def _simulate_day(
    sim: SimulatorSettings,
    world: World,
    day_index: int,
    day: date,
    stock: np.ndarray,
    ids: dict[str, pa.Array],
    policy: Policy | None = None,
    server: Server | None = None,
) -> Day:
    """Events and hidden impression truth of one day; ``stock`` (start of day) is decremented in place."""
    rng = np.random.default_rng([sim.seed, 1, day_index])
    n_req = sim.requests_per_day
    stamp = day.strftime("%Y%m%d")

    # Requests: users signed up before today, weighted by activity, in visits (sessions) when set; in time order.
    eligible = np.nonzero(world.user_created_day < day_index)[0]
    req_user, req_second, req_session = _requests(rng, world, eligible, sim)
    intent = _intents(rng, world, req_user, req_session, sim.session_intent_switch)
    is_search = rng.random(n_req) < PARAMS["search_share"]
    query_cat = np.where(is_search, intent, -1)
    query_noun = rng.integers(0, 4, n_req)
    query_adj = np.where(rng.random(n_req) < 0.3, rng.integers(0, len(ADJECTIVES), n_req), -1)
    vocabulary = np.array([list(category_words(c)) for c in range(world.n_categories)], dtype=object)
    query_text = vocabulary[intent, query_noun]
    with_adj = query_adj >= 0
    query_text[with_adj] = np.array(ADJECTIVES, dtype=object)[query_adj[with_adj]] + " " + query_text[with_adj]
    req_ids = pc.binary_join_element_wise(f"r{stamp}", _ids("", np.arange(n_req), 7), "")
    req_query = pa.array(np.where(is_search, query_text, None), type=pa.string())
    req_surface = pa.array(np.where(is_search, "search", "feed").astype(object), type=pa.string())

    live_items = np.nonzero(world.item_created_day < day_index)[0]
    if server is not None:
        requests = pd.DataFrame(
            {
                "request_id": req_ids.to_numpy(zero_copy_only=False),
                "user_id": ids["users"].take(pa.array(req_user)).to_numpy(zero_copy_only=False),
                "surface": req_surface.to_numpy(zero_copy_only=False),
                "query": req_query.to_numpy(zero_copy_only=False),
            }
        )
        slot_req, slot_item = served_slots(server(requests), live_items, sim.slate_size)
    elif policy is None:
        slot_req, slot_item = _slates(rng, world, live_items, is_search, query_cat, query_noun, sim.slate_size)
    else:
        slot_req, slot_item = _slates(rng, world, live_items, is_search, query_cat, query_noun, 2 * sim.slate_size)
        context = {
            "request_id": req_ids,
            "user_id": ids["users"].take(pa.array(req_user)),
            "item_ids": ids["items"],
            "surface": req_surface,
            "query": req_query,
        }
        slot_req, slot_item = _rank_with_policy(policy, slot_req, slot_item, context, sim.slate_size)
    position = np.arange(len(slot_req)) - np.searchsorted(slot_req, slot_req, side="left") + 1
    slot_user = req_user[slot_req]
    n_slots = len(slot_req)

    # Behaviour.
    slot_search = is_search[slot_req]
    cat_match = world.item_category[slot_item] == intent[slot_req]
    text_match = slot_search & cat_match & (world.item_noun[slot_item] == query_noun[slot_req])
    logit = (
        click_logit(world, slot_user, slot_item)
        + PARAMS["w_intent"] * cat_match
        + PARAMS["search_match_bonus"] * (slot_search & cat_match)
        + PARAMS["text_match_bonus"] * text_match
    )
    p_click_free = _sigmoid(logit)
    p_click = p_click_free * position_bias(position)
    holder = world.promoted_item[slot_item]  # whose stock a purchase sells
    p_cart, p_buy = purchase_given_click(world, slot_user, slot_item)
    p_cart = p_cart * (stock[holder] > 0)  # "sold out" at the start of the day: nothing to add to the cart
    clicked = rng.random(n_slots) < p_click
    carted = clicked & (rng.random(n_slots) < p_cart)
    wants = carted & (rng.random(n_slots) < p_buy)
    quantity = np.where(rng.random(n_slots) < 0.85, 1, rng.integers(2, 4, n_slots))

    imp_second = req_second[slot_req] + rng.uniform(0.0, 1.0, n_slots) * 0.5
    click_second = imp_second + rng.uniform(*CLICK_DELAY_SECONDS, n_slots)
    cart_second = click_second + rng.uniform(*CART_DELAY_SECONDS, n_slots)
    buy_second = cart_second + rng.uniform(*BUY_DELAY_SECONDS, n_slots)

    # Stock: purchases in time order, each needs the whole quantity still in stock.
    buy_idx = np.nonzero(wants)[0]
    buy_idx = buy_idx[np.argsort(buy_second[buy_idx], kind="stable")]
    buy_holder = holder[buy_idx]
    cum = pd.Series(quantity[buy_idx]).groupby(buy_holder).cumsum().to_numpy()
    ok = cum <= stock[buy_holder]
    bought = np.zeros(n_slots, dtype=bool)
    bought[buy_idx[ok]] = True
    np.subtract.at(stock, buy_holder[ok], quantity[buy_idx[ok]])

    # Events in time order.
    masks = (np.ones(n_slots, dtype=bool), clicked, carted, bought)
    seconds = (imp_second, click_second, cart_second, buy_second)
    slot = np.concatenate([np.nonzero(m)[0] for m in masks])
    etype = np.concatenate([np.full(int(m.sum()), k, dtype=np.int8) for k, m in enumerate(masks)])
    second = np.concatenate([s[m] for s, m in zip(seconds, masks, strict=True)])
    order = np.lexsort((slot, second))
    slot, etype, second = slot[order], etype[order], second[order]
    is_imp, is_buy = etype == 0, etype == 3
    take_req = pa.array(slot_req[slot])
    events = pa.table(
        {
            "event_id": _ids(f"e{stamp}", np.arange(len(slot)), 9),
            "event_ts": _ts(day, second),
            "event_type": pa.array(np.array(EVENT_TYPES, dtype=object)[etype], type=pa.string()),
            "user_id": ids["users"].take(pa.array(slot_user[slot])),
            "item_id": ids["items"].take(pa.array(slot_item[slot])),
            "request_id": req_ids.take(take_req),
            "position": pa.array(position[slot], type=pa.int64(), mask=~is_imp),
            "surface": req_surface.take(take_req),
            "query": req_query.take(take_req),
            "price": pa.array(world.item_price[slot_item[slot]], type=pa.float64()),
            "quantity": pa.array(quantity[slot], type=pa.int64(), mask=~is_buy),
        },
        schema=SCHEMAS["events"],
    )
    truth = pa.table(
        {
            "request_id": req_ids.take(pa.array(slot_req)),
            "item_id": ids["items"].take(pa.array(slot_item)),
            "user_id": ids["users"].take(pa.array(slot_user)),
            "position": pa.array(position, type=pa.int64()),
            "p_click": p_click_free,  # position-free: the click probability at position 1
            "position_bias": position_bias(position),
            "p_purchase": p_click_free * p_cart * p_buy,
            "intent_category": intent[slot_req],
            "text_match": text_match,
        }
    )
    counts = {name: int(np.count_nonzero(etype == k)) for k, name in enumerate(EVENT_TYPES)}
    return Day(events=events, truth=truth, counts=counts)


def _restock(sim: SimulatorSettings, world: World, day_index: int, stock: np.ndarray) -> None:
    """Start of day: some low-stock products that exist get a delivery."""
    rng = np.random.default_rng([sim.seed, 2, day_index])
    # Items are numbered in creation order: the existing ones are a prefix, whatever the world's horizon.
    n = int(np.count_nonzero(world.item_created_day < day_index))
    products = world.promoted_item[:n] == np.arange(n)
    low = np.nonzero(products & (stock[:n] <= 2) & (rng.random(n) < 0.35))[0]
    stock[low] += rng.negative_binomial(2, 2 / 32, size=len(low)) + 5


# ---- writing ----------------------------------------------------------------------------------------------------
def _entity_tables(world: World, start: date, day_index: int, ids: dict[str, pa.Array]) -> dict[str, pa.Table]:
    """Users, sellers and items of partition ``day_index`` (0 holds the initial base)."""

    def pick(created: np.ndarray) -> np.ndarray:
        return np.nonzero(created <= 0)[0] if day_index == 0 else np.nonzero(created == day_index)[0]

    def created_ts(created: np.ndarray, seconds: np.ndarray, idx: np.ndarray) -> pa.Array:
        return _ts(start, created[idx] * DAY_SECONDS + seconds[idx])

    def strings(values: np.ndarray) -> pa.Array:
        return pa.array(values, type=pa.string())

    u, s, i = pick(world.user_created_day), pick(world.seller_created_day), pick(world.item_created_day)
    return {
        "users": pa.table(
            {
                "user_id": ids["users"].take(pa.array(u)),
                "signup_ts": created_ts(world.user_created_day, world.user_signup_second, u),
                "region": strings(world.user_region[u]),
                "age_band": strings(world.user_age_band[u]),
            }
        ),
        "sellers": pa.table(
            {
                "seller_id": ids["sellers"].take(pa.array(s)),
                "created_ts": created_ts(world.seller_created_day, world.seller_created_second, s),
                "region": strings(world.seller_region[s]),
                "tier": strings(world.seller_tier[s]),
            }
        ),
        "items": pa.table(
            {
                "item_id": ids["items"].take(pa.array(i)),
                "item_type": strings(world.item_type[i]),
                "seller_id": ids["sellers"].take(pa.array(world.item_seller[i])),
                "category_id": pa.array(world.item_category[i], type=pa.int64()),
                "price": pa.array(world.item_price[i], type=pa.float64()),
                "title": strings(world.item_title[i]),
                "created_ts": created_ts(world.item_created_day, world.item_created_second, i),
            }
        ),
    }


def world_ids(world: World) -> dict[str, pa.Array]:
    """Every entity's raw-contract id, by kind (index i is the entity with id number i)."""
    return {
        kind: _ids(ID_PREFIX[kind], np.arange(len(created)), ID_WIDTH[kind])
        for kind, created in (
            ("users", world.user_created_day),
            ("sellers", world.seller_created_day),
            ("items", world.item_created_day),
        )
    }


def window(settings: Settings, run_date: date) -> list[date]:
    start = run_date - timedelta(days=settings.simulator.days - 1)
    return [start + timedelta(days=k) for k in range(settings.simulator.days)]


def _state_dir(settings: Settings, sim: SimulatorSettings) -> Path:
    """Stock checkpoints, keyed by everything that shapes the world except the window length."""
    key = json.dumps(sim.model_dump(mode="json", exclude={"days", "events"}), sort_keys=True)
    return settings.truth_dir / "state" / hashlib.sha256(key.encode()).hexdigest()[:12]


def _resume(state_dir: Path, sim: SimulatorSettings, world: World, first_day: int) -> tuple[int, np.ndarray]:
    """(next day to simulate, stock at its start before restocking): the latest checkpoint before ``first_day``."""
    for d in range(first_day - 1, -1, -1):
        path = state_dir / f"stock-{(sim.start_date + timedelta(days=d)).isoformat()}.npy"
        if path.exists():
            saved = np.load(path)
            stock = world.initial_stock.copy()
            stock[: len(saved)] = saved  # items created since then start with their initial stock
            return d + 1, stock
    return 0, world.initial_stock.copy()


def simulate(settings: Settings, run_date: date, policy: Policy | None = None) -> dict:
    """Write raw partitions for the ``settings.simulator.days`` days ending at ``run_date`` and the hidden truth.

    ``policy`` (optional) scores each request's sampled candidates to pick the slate (see :data:`Policy`); the
    default logging policy samples by noisy popularity. Returns a summary: the days written, rows per table and
    the click-through rate.
    """
    sim = effective_sizes(settings.simulator)
    days = window(settings, run_date)
    first_index = (days[0] - sim.start_date).days
    if first_index < 0:
        raise ValueError(f"the window starts on {days[0]}, before the simulator's start date {sim.start_date}")
    last_index = (run_date - sim.start_date).days
    world = build_world(settings, run_date)
    ids = world_ids(world)
    raw_dir, truth_dir = settings.raw_dir, settings.truth_dir
    rows = dict.fromkeys(TABLES, 0)
    counts = dict.fromkeys(EVENT_TYPES, 0)

    # Entity partitions since the start: the window's are (re)written, earlier ones only when missing.
    for d in range(last_index + 1):
        day = sim.start_date + timedelta(days=d)
        in_window = d >= first_index
        missing = [t for t in ENTITY_TABLES if not partition_path(raw_dir, t, day).exists()]
        if not in_window and not missing:
            continue
        for table, frame in _entity_tables(world, sim.start_date, d, ids).items():
            if in_window or table in missing:
                write_partition(frame, partition_path(raw_dir, table, day), SCHEMAS[table])
            if in_window:
                rows[table] += frame.num_rows

    state_dir = _state_dir(settings, sim)
    next_day, stock = _resume(state_dir, sim, world, first_index)
    for d in range(next_day, last_index + 1):
        day = sim.start_date + timedelta(days=d)
        if d > 0:
            _restock(sim, world, d, stock)
        in_window = d >= first_index
        if in_window:
            existing = np.nonzero(world.item_created_day < d)[0]
            inventory = pa.table(
                {
                    "item_id": ids["items"].take(pa.array(existing)),
                    "snapshot_ts": _ts(day, np.zeros(len(existing))),
                    "stock_units": pa.array(stock[world.promoted_item[existing]], type=pa.int64()),
                }
            )
            write_partition(inventory, partition_path(raw_dir, "inventory", day), SCHEMAS["inventory"])
            rows["inventory"] += inventory.num_rows
        simulated = _simulate_day(sim, world, d, day, stock, ids, policy if in_window else None)
        if in_window:
            write_partition(simulated.events, partition_path(raw_dir, "events", day))
            write_partition(simulated.truth, truth_dir / "impressions" / f"dt={day.isoformat()}" / "part-0.parquet")
            rows["events"] += simulated.events.num_rows
            for name, n in simulated.counts.items():
                counts[name] += n
        if policy is None or not in_window:  # a replayed policy's stock is not the logged world's
            state_dir.mkdir(parents=True, exist_ok=True)
            np.save(state_dir / f"stock-{day.isoformat()}.npy", stock)

    _write_truth(truth_dir, world, ids)
    return {
        "run_date": run_date.isoformat(),
        "days": [d.isoformat() for d in days],
        "rows": rows,
        "events": counts,
        "ctr": counts["click"] / max(counts["impression"], 1),
        "raw_dir": str(raw_dir),
    }


def _write_truth(truth_dir: Path, world: World, ids: dict[str, pa.Array]) -> None:
    n_cat = world.n_categories
    truth_users = pa.table(
        {
            "user_id": ids["users"],
            "price_sensitivity": world.price_sensitivity,
            "activity": world.activity,
            **{f"affinity_{c:02d}": world.affinity[:, c] for c in range(n_cat)},
        }
    )
    truth_items = pa.table(
        {
            "item_id": ids["items"],
            "quality": world.quality,
            "hype": world.hype,
            "category_id": world.item_category,
            "price": world.item_price,
            "item_type": pa.array(world.item_type, type=pa.string()),
            "promoted_item_id": ids["items"].take(pa.array(world.promoted_item)),
        }
    )
    write_partition(truth_users, truth_dir / "users.parquet")
    write_partition(truth_items, truth_dir / "items.parquet")
    (truth_dir / "params.json").write_text(
        json.dumps({**PARAMS, "n_categories": n_cat, "position_bias": "1/log2(1+position)"}, indent=2)
    )
