"""Policy replay: the simulator's users ask the served ranking (over HTTP) for feeds; the simulator's hidden truth
decides what they click and buy. Compares, on the same requests:

- ``model+rules``: POST /rank as applications call it;
- ``model``: POST /rank with ``"apply_rules": false`` (the champion's order only);
- ``popularity``: the top k by ``item_clicks_7d`` of the item_features mart (the service's fallback order).

Per policy: CTR, clicks / purchases / GMV per request, exposure share of new items and of new sellers' items,
the Gini coefficient of impressions over sellers, and impressions of out-of-stock items (stock from the mart's
latest snapshot, sold down by the replay's own purchases). Users are drawn in proportion to their simulated
activity; every policy sees the same users and the same random draws (common random numbers), so differences come
from the rankings. The truth must belong to the settings' simulator world (same seed and sizes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from producers.simulator import PARAMS, World, build_world, click_logit, position_bias, purchase_given_click
from serving.item_cache import ItemCache
from shoprank.exposure import gini
from shoprank.settings import Settings

log = logging.getLogger(__name__)

POLICIES = ("model+rules", "model", "popularity")


@dataclass
class PolicyStats:
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    purchases: int = 0
    gmv: float = 0.0
    new_item_impressions: int = 0
    new_seller_impressions: int = 0
    out_of_stock_impressions: int = 0
    failed_requests: int = 0
    degraded_responses: int = 0
    seller_impressions: dict[str, int] = field(default_factory=dict)


def _index(item_or_user_id: str) -> int | None:
    """Simulator ids are a letter and the entity's index (u000042 → 42)."""
    try:
        return int(item_or_user_id[1:])
    except ValueError:
        return None


def simulate_response(
    world: World, user: int, items: list[int], rng: np.random.Generator, intent: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(clicked, purchased) for a slate shown in this order to ``user``, from the simulator's hidden truth; with an
    ``intent`` category, its items get the simulator's ``w_intent`` (a feed request of a visit with that intent)."""
    users = np.full(len(items), user)
    idx = np.asarray(items, dtype=int)
    logit = click_logit(world, users, idx)
    if intent is not None:
        logit = logit + PARAMS["w_intent"] * (world.item_category[idx] == intent)
    p_click = 1 / (1 + np.exp(-logit)) * position_bias(np.arange(1, len(idx) + 1))
    p_cart, p_buy = purchase_given_click(world, users, idx)
    draws = rng.random((2, len(idx)))
    clicked = draws[0] < p_click
    purchased = clicked & (draws[1] < p_cart * p_buy)
    return clicked, purchased


def replay(
    settings: Settings,
    url: str,
    n_requests: int = 200,
    k: int = 20,
    seed: int = 0,
    timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Run the replay and return one row of online metrics per policy (see the module docstring)."""
    world = build_world(settings)
    items = ItemCache.from_marts(settings.marts_export_dir)
    rows = np.arange(len(items))
    ids = np.asarray(items.all_ids(), dtype=object)
    is_new = dict(zip(ids, items.column("item_is_new", rows) == 1, strict=True))
    seller_of = dict(zip(ids, items.seller[:-1], strict=True))
    new_seller = dict(zip(ids, items.seller_is_new[:-1], strict=True))
    price = dict(zip(ids, np.nan_to_num(items.column("item_price", rows)), strict=True))
    initial_stock = dict(zip(ids, items.column("item_stock_units", rows), strict=True))
    clicks_7d = np.nan_to_num(items.column("item_clicks_7d", rows))
    popular = [str(i) for i in ids[np.lexsort((ids, -clicks_7d))][:k]]

    rng = np.random.default_rng(seed)
    existing_users = np.flatnonzero(world.user_created_day < settings.simulator.days)
    weights = world.activity[existing_users] / world.activity[existing_users].sum()
    users = rng.choice(existing_users, size=n_requests, p=weights)

    stats = {policy: PolicyStats() for policy in POLICIES}
    stock = {policy: dict(initial_stock) for policy in POLICIES}
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for r, user in enumerate(users):
            user_id = f"u{user:06d}"
            request_id = f"replay-{seed}-{r}"
            for policy in POLICIES:
                s = stats[policy]
                s.requests += 1
                if policy == "popularity":
                    slate = popular
                else:
                    body = {
                        "user_id": user_id,
                        "k": k,
                        "request_id": request_id,
                        "apply_rules": policy == "model+rules",
                    }
                    response = client.post("/rank", json=body)
                    if response.status_code != 200:
                        s.failed_requests += 1
                        continue
                    data = response.json()
                    s.degraded_responses += bool(data["degraded"])
                    slate = [item["item_id"] for item in data["items"]]
                n_world = len(world.quality)
                known = [(i, x) for i, x in ((i, _index(i)) for i in slate) if x is not None and 0 <= x < n_world]
                clicked, purchased = simulate_response(
                    world, int(user), [x for _, x in known], np.random.default_rng([seed, r])
                )
                for (item_id, _), bought in zip(known, purchased, strict=True):
                    units = stock[policy].get(item_id, np.nan)
                    out = bool(units <= 0)
                    s.impressions += 1
                    s.out_of_stock_impressions += out
                    s.new_item_impressions += bool(is_new.get(item_id, True))
                    s.new_seller_impressions += bool(new_seller.get(item_id, False))
                    seller = seller_of.get(item_id, "")
                    s.seller_impressions[seller] = s.seller_impressions.get(seller, 0) + 1
                    if bought and not out:  # nothing to sell when out of stock
                        s.purchases += 1
                        s.gmv += price.get(item_id, 0.0)
                        stock[policy][item_id] = units - 1
                s.clicks += int(clicked.sum())
            if progress:
                progress(r + 1)

    all_sellers = sorted(set(seller_of.values()) - {""})
    table = []
    for policy, s in stats.items():
        per_seller = np.array([s.seller_impressions.get(x, 0) for x in all_sellers])
        table.append(
            {
                "policy": policy,
                "requests": s.requests,
                "ctr": s.clicks / max(s.impressions, 1),
                "clicks_per_request": s.clicks / max(s.requests, 1),
                "purchases_per_request": s.purchases / max(s.requests, 1),
                "gmv_per_request": s.gmv / max(s.requests, 1),
                "new_item_share": s.new_item_impressions / max(s.impressions, 1),
                "new_seller_share": s.new_seller_impressions / max(s.impressions, 1),
                "seller_gini": gini(per_seller),
                "out_of_stock_impressions": s.out_of_stock_impressions,
                "degraded": s.degraded_responses,
                "failed": s.failed_requests,
            }
        )
    return pd.DataFrame(table).set_index("policy")


def format_table(table: pd.DataFrame) -> str:
    """The replay's table as fixed-width text (policies as columns, metrics as rows)."""
    formats = {
        "requests": "{:.0f}",
        "ctr": "{:.4f}",
        "clicks_per_request": "{:.3f}",
        "purchases_per_request": "{:.4f}",
        "gmv_per_request": "{:.2f}",
        "new_item_share": "{:.3f}",
        "new_seller_share": "{:.3f}",
        "seller_gini": "{:.3f}",
        "out_of_stock_impressions": "{:.0f}",
        "degraded": "{:.0f}",
        "failed": "{:.0f}",
    }
    policies = list(table.index)
    lines = [f"{'metric':<26}" + "".join(f"{p:>14}" for p in policies)]
    for metric, fmt in formats.items():
        lines.append(f"{metric:<26}" + "".join(f"{fmt.format(table.loc[p, metric]):>14}" for p in policies))
    return "\n".join(lines)
