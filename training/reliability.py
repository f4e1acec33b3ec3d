"""Is a holdout big and varied enough for its metrics to mean anything? Warnings for the candidate's card.

Training never fails on a small or degenerate holdout (few requests, no click, only clicks, missing baseline
scores, constant features): it finishes, its metrics that cannot be computed are undefined (null), and these
warnings go into the card. The gate refuses a holdout below ``training.gate.min_holdout_requests_with_click``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def requests_with_click(frame: pd.DataFrame) -> int:
    """Requests with at least one clicked (relevant) impression: the requests NDCG is averaged over."""
    label = "label_click" if "label_click" in frame.columns else "relevance"
    clicked = pd.to_numeric(frame[label], errors="coerce").fillna(0) > 0
    return int(clicked.groupby(frame["request_id"]).max().sum())


def constant_features(frame: pd.DataFrame, feature_columns: list[str]) -> list[str]:
    """Features with a single value (or none) over ``frame``: the trees cannot split on them."""
    return [c for c in feature_columns if c in frame.columns and frame[c].nunique(dropna=True) <= 1]


@dataclass
class HoldoutSummary:
    """What the warnings need to know about a holdout; summaries of chunks of whole requests add up."""

    rows: int = 0
    requests: int = 0
    requests_with_click: int = 0
    clicked_rows: int = 0
    missing_scores: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, holdout: pd.DataFrame, score_columns: dict[str, str]) -> HoldoutSummary:
        label = holdout["label_click"] if "label_click" in holdout.columns else holdout["relevance"] > 0
        return cls(
            rows=len(holdout),
            requests=int(holdout["request_id"].nunique()),
            requests_with_click=requests_with_click(holdout),
            clicked_rows=int((pd.to_numeric(label, errors="coerce") > 0).sum()),
            missing_scores={name: int(holdout[column].isna().sum()) for name, column in score_columns.items()},
        )

    def __add__(self, other: HoldoutSummary) -> HoldoutSummary:
        names = dict.fromkeys([*self.missing_scores, *other.missing_scores])
        return HoldoutSummary(
            rows=self.rows + other.rows,
            requests=self.requests + other.requests,
            requests_with_click=self.requests_with_click + other.requests_with_click,
            clicked_rows=self.clicked_rows + other.clicked_rows,
            missing_scores={n: self.missing_scores.get(n, 0) + other.missing_scores.get(n, 0) for n in names},
        )


class ConstantTracker:
    """constant_features over chunks: a feature is constant when its non-missing values have one value or none."""

    def __init__(self, feature_columns: list[str]) -> None:
        self.feature_columns = feature_columns
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}

    def add(self, frame: pd.DataFrame) -> None:
        for column in self.feature_columns:
            if column not in frame.columns:
                continue
            values = pd.to_numeric(frame[column], errors="coerce").dropna()
            if len(values):
                self.low[column] = min(self.low.get(column, np.inf), float(values.min()))
                self.high[column] = max(self.high.get(column, -np.inf), float(values.max()))

    def constant(self, present: set[str]) -> list[str]:
        return [c for c in self.feature_columns if c in present and self.low.get(c) == self.high.get(c)]


def holdout_warnings(
    holdout: pd.DataFrame,
    score_columns: dict[str, str],
    metrics: dict[str, float],
    train: pd.DataFrame,
    feature_columns: list[str],
    min_requests_with_click: int,
) -> list[str]:
    """Plain-language warnings about ``holdout`` (scored: it has every column of ``score_columns``) and ``train``."""
    summary = HoldoutSummary.of(holdout, score_columns)
    constant = constant_features(train, feature_columns)
    return summary_warnings(summary, metrics, constant, feature_columns, min_requests_with_click)


def summary_warnings(
    summary: HoldoutSummary,
    metrics: dict[str, float],
    constant: list[str],
    feature_columns: list[str],
    min_requests_with_click: int,
) -> list[str]:
    """The warnings of a holdout summary and the features constant over the training days."""
    warnings = []
    requests, clicked = summary.requests, summary.requests_with_click
    if clicked < min_requests_with_click:
        warnings.append(
            f"holdout has {clicked} requests with a click (of {requests}), below the minimum "
            f"{min_requests_with_click} (training.gate.min_holdout_requests_with_click): metrics are not reliable "
            "and the gate will not promote this model"
        )
    if requests == 1:
        warnings.append("holdout has a single request")
    if summary.rows and summary.clicked_rows == summary.rows:
        warnings.append("every holdout impression is a click: there is nothing to rank and click AUC is undefined")
    for name, missing in summary.missing_scores.items():
        if missing:
            warnings.append(f"{name} scores are missing for {missing} of {summary.rows} holdout rows (ranked last)")
    if constant and len(constant) == len(feature_columns):
        warnings.append("every feature is constant over the training days: the ranker cannot learn anything")
    elif constant:
        shown = ", ".join(constant[:8]) + (", ..." if len(constant) > 8 else "")
        warnings.append(
            f"{len(constant)} of {len(feature_columns)} features are constant over the training days: {shown}"
        )
    undefined = sorted(k for k, v in metrics.items() if not k.startswith("slice_") and not math.isfinite(v))
    if undefined:
        shown = ", ".join(undefined[:8]) + (", ..." if len(undefined) > 8 else "")
        warnings.append(f"{len(undefined)} holdout metrics are undefined (recorded as null): {shown}")
    return warnings
