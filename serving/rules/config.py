"""The rules file (serving/rules.yaml) as typed settings: one versioned file, validated when the service loads it."""

from __future__ import annotations

from pathlib import Path

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class ColdStartRules(_Section):
    max_per_category: int = Field(3, ge=1)
    segment_bonus: float = Field(1.0, ge=0)


class ExplorationRules(_Section):
    max_share: float = Field(0.2, ge=0, le=1)
    prior_strength: float = Field(50.0, gt=0)
    new_seller_days: float = Field(14.0, ge=0)


class SupplyDemandRules(_Section):
    remove_out_of_stock: bool = True
    min_daily_sales: float = Field(0.1, gt=0)
    low_stock_cover_days: float = Field(2.0, ge=0)
    low_stock_penalty: float = Field(1.0, ge=0)
    overstock_cover_days: float = Field(60.0, ge=0)
    overstock_min_units: float = Field(50.0, ge=0)
    overstock_boost: float = Field(0.3, ge=0)
    max_per_seller: int = Field(3, ge=1)
    new_seller_min_items: int = Field(1, ge=0)


class LearnedExplorationRules(_Section):
    """Thompson sampling from the learned cold-start prior (serving/rules/learned_exploration.py); off unless set."""

    enabled: bool = False
    budget: float = Field(0.15, ge=0, le=1)
    prior_strength: float = Field(30.0, gt=0)
    cvr_prior_strength: float = Field(5.0, gt=0)
    graduate_impressions: float = Field(300.0, gt=0)
    # New sellers' items take the budget's slots before new items of established sellers (a seller with no sale
    # yet has no history to fall back on; a new item of a known seller has the seller's).
    new_sellers_first: bool = False


class SellerFloorRules(_Section):
    """A per-seller exposure floor over a new seller's first days (serving/rules/seller_floor.py); off unless set."""

    enabled: bool = False
    days: float = Field(7.0, gt=0)  # sellers younger than this (oldest item's age, days) are held to the floor
    min_impressions: int = Field(20, ge=0)  # impressions a day across all requests, the seller's items together
    max_slots: int = Field(1, ge=0)  # floor slots per slate (bottom of the top k)
    # Where a floor item is shown: 0 at the displaced item's place (the bottom of the top k); n >= 1 at rank n, the
    # items from there down moving one place (a click at rank 5 is 1.7x as likely as at rank 20 in the simulator).
    rank: int = Field(0, ge=0)
    # A needy seller's item is a floor candidate only within the first max_candidate_rank places of this request's
    # order (the ranker's score after the earlier rules), so the floor's impressions go to the requests whose users
    # the model thinks likely to click it; 0 = anywhere in the candidates.
    max_candidate_rank: int = Field(0, ge=0)
    # Spread the floor over the day: a seller is due min_impressions x (the day's requests so far / yesterday's),
    # so the floor is not met by the first requests of the day alone. Without yesterday's count: the whole floor.
    pace: bool = True


class PacingRules(_Section):
    """Exposure paced by days of cover (serving/rules/pacing.py); off unless set."""

    enabled: bool = False
    min_daily_sales: float = Field(0.1, gt=0)
    horizon_days: float = Field(3.0, gt=0)
    max_penalty: float = Field(1.0, ge=0)
    target_cover_days: float = Field(30.0, gt=0)
    max_boost: float = Field(0.5, ge=0)


class MixingRules(_Section):
    surfaces: list[str] = Field(default_factory=lambda: ["feed"])
    min_share: dict[str, float] = Field(default_factory=dict)


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    cold_start: ColdStartRules = ColdStartRules()
    exploration: ExplorationRules = ExplorationRules()
    supply_demand: SupplyDemandRules = SupplyDemandRules()
    mixing: MixingRules = MixingRules()
    learned_exploration: LearnedExplorationRules = LearnedExplorationRules()
    pacing: PacingRules = PacingRules()
    seller_floor: SellerFloorRules = SellerFloorRules()


def load_rules(path: Path) -> RulesConfig:
    return RulesConfig.model_validate(yaml.safe_load(Path(path).read_text()))
