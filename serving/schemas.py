"""Request and response models of the ranking API.

Limits (``k``, the candidate list's length) come from ``settings.serving`` when this module is imported, so they
appear in the OpenAPI schema and pydantic enforces them. An invalid request is rejected before BentoML parses it
(serving/request_gate.py) with HTTP 400 and a body matching the OpenAPI document's ``InvalidArgument``:
``{"error": "invalid request: k: ...", "detail": "k: Input should be ...", "errors": [{"loc": ["k"], "msg": ...}]}``.

BentoML's OpenAPI document is OpenAPI 3.0 and keeps only the first branch of a top-level ``anyOf``, so ``str | None``
would be documented as a plain string while the server answers ``null``: every model here describes optional values
with OpenAPI 3.0's ``nullable`` instead (:func:`openapi_nullable`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from shoprank.settings import get_settings

_LIMITS = get_settings().serving

EntityId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Surface = Literal["feed", "search"]
ContextValue = str | int | float | bool


def openapi_nullable(schema: dict[str, Any]) -> None:
    """Rewrite, in place and recursively, ``anyOf: [X, {type: null}]`` as X with ``nullable: true`` (OpenAPI 3.0)."""
    for value in schema.values():
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, dict):
                openapi_nullable(child)
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches:
        return
    others = [b for b in branches if b != {"type": "null"}]
    del schema["anyOf"]
    if len(others) > 1:
        schema["anyOf"] = others
    elif "$ref" in others[0]:
        schema["allOf"] = others
    else:
        schema.update(others[0])
    schema["nullable"] = True


class ApiModel(BaseModel):
    """A model of the API: documented for OpenAPI 3.0 (see the module docstring)."""

    model_config = ConfigDict(json_schema_extra=lambda schema, _: openapi_nullable(schema))


class RankRequest(ApiModel):
    """One ranking request: rank ``candidate_ids`` (or, without them, retrieved candidates) for ``user_id``."""

    model_config = ConfigDict(extra="forbid")

    user_id: EntityId = Field(description="The shopper; unknown ids are served as cold-start users.")
    surface: Surface = Field("feed", description="Where the list is shown: 'feed', or 'search' (needs a query).")
    query: Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)] | None = Field(
        None, validate_default=True, description="The search query; required when surface is 'search'."
    )
    context: dict[Annotated[str, StringConstraints(max_length=64)], ContextValue] | None = Field(
        None,
        max_length=32,
        description="Request context, e.g. {'category_id': 3} (the segment of cold-start users), device, page. "
        "Numbers must be finite.",
        json_schema_extra={"properties": {"category_id": {"type": "integer", "minimum": 0}}},
    )
    candidate_ids: list[EntityId] | None = Field(
        None,
        max_length=_LIMITS.max_candidates,
        description="Items to rank. Omitted: the service retrieves its own. Duplicates are ranked once.",
    )
    k: int = Field(_LIMITS.default_k, ge=1, le=_LIMITS.max_k, description="How many items to return.")
    apply_rules: bool = Field(
        True, description="False: the model's order only (no business rules), for replays and A/B comparisons."
    )
    request_id: EntityId | None = Field(
        None, description="The caller's id for this request (logged; seeds exploration). Generated when omitted."
    )

    @field_validator("query")
    @classmethod
    def _search_needs_a_query(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("surface") == "search" and not value:
            raise ValueError("a search request needs a non-empty query")
        return value

    @field_validator("context")
    @classmethod
    def _context_values_are_finite(cls, value: dict[str, ContextValue] | None) -> dict[str, ContextValue] | None:
        for key, item in (value or {}).items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"context.{key} must be a finite number, got {item}")
        category = (value or {}).get("category_id")
        if category is not None and (
            isinstance(category, bool | str) or category < 0 or category != int(category)  # type: ignore[operator]
        ):
            raise ValueError(f"context.category_id must be a category id (an integer >= 0), got {category!r}")
        return value

    def segment_category(self) -> int | None:
        value = (self.context or {}).get("category_id")
        return None if value is None else int(value)


class RankedItem(ApiModel):
    item_id: str
    score: float
    rank: int = Field(ge=1)
    reason: str = Field(description="Why the item is here: 'model', 'popular-fallback' or the last rule that moved it.")
    reasons: list[str] = Field(default_factory=list, description="Every rule that moved the item, in order.")
    ranker: str | None = Field(
        None, description="In an interleaved slate: the ranker that contributed the item, 'A' or 'B' (see interleaved)."
    )


class RankResponse(ApiModel):
    user_id: str
    request_id: str
    model_version: str | None = Field(description="The BentoML tag of the model that scored the list.")
    feature_service: str | None
    rules_version: str | None = Field(None, description="version of serving/rules.yaml (None: rules not applied)")
    degraded: bool = Field(description="True when a fallback was used; degraded_reasons says which.")
    degraded_reasons: list[str] = Field(default_factory=list)
    items: list[RankedItem]
    experiment: str | None = Field(
        None, description="The running experiment the user is in (serving/experiments.yaml)."
    )
    arm: str | None = Field(None, description="The user's arm in that experiment (a hash of user id and salt).")
    assignments: dict[str, str] = Field(default_factory=dict, description="The user's arm in every running experiment.")
    interleaved: list[str | None] | None = Field(
        None, description="An interleaving arm's two model tags, [A, B]; each item's ranker names its contributor."
    )


class ExplainedItem(RankedItem):
    features: dict[str, float | None] = Field(description="The model's input features for this item (NaN: None).")
    contributions: dict[str, float] = Field(
        default_factory=dict, description="XGBoost pred_contribs per feature, plus 'bias' (they sum to the margin)."
    )
    model_score: float | None = Field(None, description="The model's score before any rule.")
    retrieval_source: str | None = None
    prerank_score: float | None = Field(None, description="The pre-ranker's score (None: no pre-ranking stage).")


class ExplainResponse(RankResponse):
    items: list[ExplainedItem]  # type: ignore[assignment]
    removed: dict[str, list[str]] = Field(default_factory=dict, description="Items a rule removed, with reasons.")


class ModelInfo(ApiModel):
    model_version: str | None
    feature_service: str | None
    run_date: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    feature_columns: list[str] = Field(default_factory=list)
    popular_pool_size: int
    load_error: str | None = None
    rules_version: str | None = None
    item_cache_snapshot: str | None = None
    experiments_version: str | None = None
    experiments: list[str] = Field(default_factory=list, description="The experiments declared (running or not).")
    experiments_error: str | None = Field(None, description="Why the experiments file was refused (none run).")
    relevance_model_version: str | None = Field(
        None, description="The query-item relevance model version loaded (its last labelling day); None: none yet."
    )


class ReloadResponse(ApiModel):
    reloaded: bool
    model_version: str | None
    previous_model_version: str | None
    error: str | None = None
    item_cache_size: int
    rules_version: str | None


class ReadyDetails(ApiModel):
    ready: bool
    model_loaded: bool
    feature_store_reachable: bool
    item_cache_size: int
    detail: str | None = None


class HTTPErrorBody(ApiModel):
    """The body of a FastAPI route's error (e.g. /admin/reload's 401 and 403)."""

    detail: str


# ---- POST /events ---------------------------------------------------------------------------------------------
EventType = Literal["impression", "click", "add_to_cart", "purchase"]


class EventIn(ApiModel):
    """One behaviour event, in the raw events contract's columns (shoprank/raw_contract.py SCHEMAS["events"]; a
    test pins the two together). ``event_ts`` must carry a time zone."""

    model_config = ConfigDict(extra="forbid")

    event_id: EntityId = Field(description="The caller's unique id: a re-sent event is counted once.")
    event_ts: AwareDatetime = Field(description="When it happened, ISO 8601 with a time zone.")
    event_type: EventType
    user_id: EntityId
    item_id: EntityId
    request_id: EntityId | None = Field(None, description="The /rank request whose list showed the item.")
    position: int | None = Field(None, ge=1, le=10_000, description="1-based position in that list.")
    surface: Surface | None = None
    query: Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)] | None = None
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    quantity: int | None = Field(None, ge=1, le=10_000, description="Units bought (purchases).")


class EventsRequest(ApiModel):
    """A batch of events: ``{"events": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=_LIMITS.max_events_per_call)


class EventRejection(ApiModel):
    index: int = Field(description="The event's position in the request's list (0-based).")
    event_id: str
    field: str = Field(description="What is wrong: 'event_ts' (outside the accepted window) or 'event_id'.")
    reason: str


class EventsResponse(ApiModel):
    accepted: int
    rejected: int
    rejections: list[EventRejection] = Field(default_factory=list)
    unknown_user_ids: list[str] = Field(
        default_factory=list, description="Accepted, but not in the published user marts (new or mistyped)."
    )
    unknown_item_ids: list[str] = Field(default_factory=list, description="Accepted, but not in the item cache.")
    session_path: str = Field(description="Where accepted events went: 'embedded' or 'redis'.")
    degraded_reasons: list[str] = Field(
        default_factory=list, description="e.g. the stream is down: events are in the raw log and queued for it."
    )
