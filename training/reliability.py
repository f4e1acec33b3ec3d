"""Is a holdout big and varied enough for its metrics to mean anything? Warnings for the candidate's card.

Training never fails on a small or degenerate holdout (few requests, no click, only clicks, missing baseline
scores, constant features): it finishes, its metrics that cannot be computed are undefined (null), and these
warnings go into the card. The gate refuses a holdout below ``training.gate.min_holdout_requests_with_click``.
"""

from __future__ import annotations

import math

import pandas as pd


def requests_with_click(frame: pd.DataFrame) -> int:
    """Requests with at least one clicked (relevant) impression: the requests NDCG is averaged over."""
    label = "label_click" if "label_click" in frame.columns else "relevance"
    clicked = pd.to_numeric(frame[label], errors="coerce").fillna(0) > 0
    return int(clicked.groupby(frame["request_id"]).max().sum())


def constant_features(frame: pd.DataFrame, feature_columns: list[str]) -> list[str]:
    """Features with a single value (or none) over ``frame``: the trees cannot split on them."""
    return [c for c in feature_columns if c in frame.columns and frame[c].nunique(dropna=True) <= 1]


def holdout_warnings(
    holdout: pd.DataFrame,
    score_columns: dict[str, str],
    metrics: dict[str, float],
    train: pd.DataFrame,
    feature_columns: list[str],
    min_requests_with_click: int,
) -> list[str]:
    """Plain-language warnings about ``holdout`` (scored: it has every column of ``score_columns``) and ``train``."""
    warnings = []
    requests, clicked = holdout["request_id"].nunique(), requests_with_click(holdout)
    if clicked < min_requests_with_click:
        warnings.append(
            f"holdout has {clicked} requests with a click (of {requests}), below the minimum "
            f"{min_requests_with_click} (training.gate.min_holdout_requests_with_click): metrics are not reliable "
            "and the gate will not promote this model"
        )
    if requests == 1:
        warnings.append("holdout has a single request")
    label = holdout["label_click"] if "label_click" in holdout.columns else holdout["relevance"] > 0
    if len(holdout) and bool((label > 0).all()):
        warnings.append("every holdout impression is a click: there is nothing to rank and click AUC is undefined")
    for name, column in score_columns.items():
        missing = int(holdout[column].isna().sum())
        if missing:
            warnings.append(f"{name} scores are missing for {missing} of {len(holdout)} holdout rows (ranked last)")
    constant = constant_features(train, feature_columns)
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
