"""The closed loop's policies: what answers the simulated users' requests (a :data:`producers.simulator.Server`).

- ``model-only``: the deployed ranking service with ``apply_rules`` false (the champion's order);
- ``rules``: the deployed service with today's rules (serving/rules.yaml);
- ``learned``: the deployed service with the learned cold start and pacing switched on (a rules file of its own);
- ``oracle``: the simulator's hidden truth: expected GMV per impression (true click, cart and buy probabilities
  times the price) over every live item in stock; the ceiling regret is measured against.

The service's policies call the RankingService's own /rank code path in process (retrieval, features, model score,
rules), loaded from the loop's home and reloaded after each day's pipeline, as a deployment would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml  # type: ignore[import-untyped]

from producers.simulator import (
    PARAMS,
    World,
    category_words,
    click_logit,
    effective_sizes,
    purchase_given_click,
)
from shoprank.raw_contract import partition_path
from shoprank.settings import Settings

if TYPE_CHECKING:
    from serving.service import RankingService

POLICIES = ("model-only", "rules", "learned", "oracle")
SERVICE_POLICIES = ("model-only", "rules", "learned")
Server = Callable[[pd.DataFrame], list[list[str]]]


def policy_rules(settings: Settings, policy: str, overrides: dict | None = None) -> dict:
    """The rules file a policy serves with: today's file, with the learned cold start and pacing on for
    ``learned``, and ``overrides`` ({section: {key: value}}) on top; the version says which variant it is."""
    rules = yaml.safe_load(settings.rules_file.read_text())
    if policy == "learned":
        rules["learned_exploration"] = {**rules.get("learned_exploration", {}), "enabled": True}
        rules["pacing"] = {**rules.get("pacing", {}), "enabled": True}
        rules["exploration"] = {**rules.get("exploration", {}), "enabled": False}  # the learned one replaces it
    for section, values in (overrides or {}).items():
        rules[section] = {**rules.get(section, {}), **values}
    if policy == "learned" or overrides:
        rules["version"] = f"{rules['version']}+loop-{policy}"
    return rules


def write_policy_rules(settings: Settings, policy: str, path: Path, overrides: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(policy_rules(settings, policy, overrides), sort_keys=False))
    return path


def service_server(service: RankingService, apply_rules: bool, k: int) -> Server:
    """Each request through the service's /rank path (in process), the served item ids in order."""
    from serving.schemas import RankRequest

    def serve(requests: pd.DataFrame) -> list[list[str]]:
        slates = []
        for row in requests.itertuples(index=False):
            search = row.surface == "search" and bool(row.query)
            request = RankRequest(
                user_id=row.user_id,
                k=k,
                request_id=row.request_id,
                surface="search" if search else "feed",
                query=row.query if search else None,
                apply_rules=apply_rules,
            )
            slates.append([item.item_id for item in service.rank(request).items])
        return slates

    return serve


def _query_category(world: World, query: str | None) -> int:
    """The category whose words name the query's noun (-1 for a feed request)."""
    if not query:
        return -1
    noun = str(query).split()[-1]
    for category in range(world.n_categories):
        if noun in category_words(category):
            return category
    return -1


def oracle_server(settings: Settings, world: World, day: date, k: int) -> Server:
    """Best expected GMV first, from the hidden truth, over the live items with stock at the start of ``day``."""
    sim = effective_sizes(settings.simulator)
    day_index = (day - sim.start_date).days
    live = np.flatnonzero(world.item_created_day < day_index)
    inventory = pd.read_parquet(partition_path(settings.raw_dir, "inventory", day), columns=["item_id", "stock_units"])
    stock = pd.Series(inventory["stock_units"].to_numpy(), index=inventory["item_id"].str[1:].astype(int))
    live = live[stock.reindex(live).fillna(0).to_numpy() > 0]
    item_ids = np.array([f"i{i:06d}" for i in live], dtype=object)

    def serve(requests: pd.DataFrame) -> list[list[str]]:
        users = requests["user_id"].str[1:].astype(int).to_numpy()
        slates = []
        for user, surface, query in zip(users, requests["surface"], requests["query"], strict=True):
            items = live
            logit = click_logit(world, np.full(len(items), user), items)
            if surface == "search":
                match = world.item_category[items] == _query_category(world, query)
                logit = logit + (PARAMS["w_intent"] + PARAMS["search_match_bonus"]) * match
            p_cart, p_buy = purchase_given_click(world, np.full(len(items), user), items)
            value = world.item_price[items] * p_cart * p_buy / (1 + np.exp(-logit))
            top = np.argsort(-value, kind="stable")[:k]
            slates.append(list(item_ids[top]))
        return slates

    return serve
