"""Request and response models of the ranking API.

Limits (``k``, the candidate list's length) come from ``settings.serving`` when this module is imported, so they
appear in the OpenAPI schema and pydantic enforces them: an invalid request is rejected by BentoML with HTTP 400
and a body ``{"error": "N validation error(s) for ...", "detail": [{"loc": [<field>, ...], "msg": ..., ...}]}``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shoprank.settings import get_settings

_LIMITS = get_settings().serving

EntityId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Surface = Literal["feed", "search"]


class RankRequest(BaseModel):
    """One ranking request: rank ``candidate_ids`` (or, without them, the most popular items) for ``user_id``."""

    model_config = ConfigDict(extra="forbid")

    user_id: EntityId = Field(description="The shopper; unknown ids are served as cold-start users.")
    surface: Surface = Field("feed", description="Where the list is shown.")
    query: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        None, description="The search query (surface 'search'); retrieval v0 does not use it yet."
    )
    candidate_ids: list[EntityId] | None = Field(
        None,
        max_length=_LIMITS.max_candidates,
        description="Items to rank. Omitted: the most popular items (retrieval v0). Duplicates are ranked once.",
    )
    k: int = Field(_LIMITS.default_k, ge=1, le=_LIMITS.max_k, description="How many items to return.")


class RankedItem(BaseModel):
    item_id: str
    score: float
    rank: int = Field(ge=1)
    reason: str = Field(description="Why the item is here: 'model' or 'popular-fallback'.")


class RankResponse(BaseModel):
    user_id: str
    model_version: str | None = Field(description="The BentoML tag of the model that scored the list.")
    feature_service: str | None
    degraded: bool = Field(description="True when a fallback was used; degraded_reasons says which.")
    degraded_reasons: list[str] = Field(default_factory=list)
    items: list[RankedItem]


class ModelInfo(BaseModel):
    model_version: str | None
    feature_service: str | None
    run_date: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    feature_columns: list[str] = Field(default_factory=list)
    popular_pool_size: int
    load_error: str | None = None
