"""From many noisy labels to one grade per task, with quality control (crowd-kit, krippendorff).

Labels are a frame with crowd-kit's columns ``task``, ``worker``, ``label`` (grade 0-3). Quality control:

- each labeller's accuracy on gold tasks (known grades) and agreement with the others on shared tasks;
- a labeller below ``careless_gold_accuracy`` on gold (chance is 0.25 on four grades) is flagged careless, and
  every labeller gets a weight (the log-odds of their gold accuracy; flagged ones a token weight) that the
  weighted majority vote uses: careless people are down-weighted, not silently trusted;
- Krippendorff's alpha (ordinal) over the labeller x task matrix says how far the crowd agrees beyond chance;
- adaptive overlap: a task gets another label only while its labels disagree (see :func:`needs_more_labels`).
"""

from __future__ import annotations

from typing import Literal

import krippendorff
import numpy as np
import pandas as pd
from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote

Method = Literal["mv", "wmv", "ds", "glad", "mace"]
METHODS: tuple[Method, ...] = ("mv", "wmv", "ds", "glad", "mace")
CARELESS_WEIGHT = 0.05
N_GRADES = 4


def _check(labels: pd.DataFrame) -> pd.DataFrame:
    missing = {"task", "worker", "label"} - set(labels.columns)
    if missing:
        raise ValueError(f"labels need columns task, worker, label; missing {sorted(missing)}")
    if len(labels) == 0:
        raise ValueError("no labels to aggregate")
    bad = ~labels["label"].isin(range(N_GRADES))
    if bad.any():
        raise ValueError(
            f"labels must be grades 0-3; got {sorted(int(v) for v in labels.loc[bad, 'label'].unique())[:5]}"
        )
    return labels[["task", "worker", "label"]].astype({"label": int})


def aggregate(labels: pd.DataFrame, method: Method = "ds", weights: pd.Series | None = None) -> pd.Series:
    """One grade per task. ``wmv`` needs ``weights`` (worker -> weight, e.g. from :func:`labeller_quality`)."""
    data = _check(labels)
    if method == "mv":
        result = MajorityVote().fit_predict(data)
    elif method == "wmv":
        if weights is None:
            raise ValueError("weighted majority vote needs labeller weights")
        result = MajorityVote(default_skill=CARELESS_WEIGHT, on_missing_skill="value").fit_predict(data, weights)
    elif method == "ds":
        result = DawidSkene(n_iter=100).fit_predict(data)
    elif method == "glad":
        result = GLAD(n_iter=60).fit_predict(data)
    elif method == "mace":
        result = MACE(n_restarts=3, n_iter=50, random_state=0).fit_predict(data)
    else:
        raise ValueError(f"unknown aggregation method {method!r}; choose one of {METHODS}")
    return result.astype(int).rename("grade")


def _agreement(data: pd.DataFrame) -> pd.Series:
    """Per worker: the share of their labels equal to the majority of the *other* labels on the same task."""
    counts = data.groupby(["task", "label"]).size().unstack(fill_value=0)
    rows = counts.reindex(data["task"]).to_numpy()
    own = np.zeros_like(rows)
    own[np.arange(len(data)), data["label"].to_numpy()] = 1
    others = rows - own
    has_others = others.sum(axis=1) > 0
    agrees = (others.argmax(axis=1) == data["label"].to_numpy()) & has_others
    frame = pd.DataFrame({"worker": data["worker"].to_numpy(), "agrees": agrees, "shared": has_others})
    shared = frame[frame["shared"]]
    return shared.groupby("worker")["agrees"].mean()


def labeller_quality(labels: pd.DataFrame, gold: pd.Series, careless_gold_accuracy: float) -> pd.DataFrame:
    """Per labeller: labels, gold answered, gold accuracy, agreement, careless flag and weight.

    ``gold`` maps gold task -> known grade. A labeller with no gold answers is judged by agreement instead.
    """
    data = _check(labels)
    on_gold = data[data["task"].isin(gold.index)]
    correct = on_gold["label"].to_numpy() == gold.reindex(on_gold["task"]).to_numpy()
    gold_acc = pd.Series(correct, index=on_gold["worker"].to_numpy()).groupby(level=0).mean()
    gold_n = on_gold.groupby("worker").size()
    quality = pd.DataFrame(
        {
            "labels": data.groupby("worker").size(),
            "gold_answered": gold_n,
            "gold_accuracy": gold_acc,
            "agreement": _agreement(data),
        }
    )
    quality["gold_answered"] = quality["gold_answered"].fillna(0).astype(int)
    evidence = quality["gold_accuracy"].fillna(quality["agreement"])
    quality["careless"] = evidence.fillna(0.0) < careless_gold_accuracy
    # Log-odds of being right against the other three grades; careless labellers keep a token weight.
    acc = evidence.fillna(0.5).clip(0.26, 0.98)
    weight = np.log((N_GRADES - 1) * acc / (1.0 - acc)).clip(lower=0.1)
    quality["weight"] = np.where(quality["careless"], CARELESS_WEIGHT, weight)
    quality.index.name = "worker"
    return quality


def krippendorff_alpha(labels: pd.DataFrame) -> float:
    """Ordinal Krippendorff's alpha of the labeller x task matrix (NaN where a labeller did not label a task)."""
    data = _check(labels)
    matrix = data.pivot_table(index="worker", columns="task", values="label", aggfunc="first")
    if matrix.shape[1] < 2 or matrix.notna().sum(axis=0).max() < 2:
        raise ValueError("Krippendorff's alpha needs at least two tasks with two or more labels")
    return float(
        krippendorff.alpha(
            reliability_data=matrix.to_numpy(dtype=float),
            value_domain=list(range(N_GRADES)),
            level_of_measurement="ordinal",
        )
    )


def needs_more_labels(
    labels: pd.DataFrame,
    weights: pd.Series | None,
    min_labels: int,
    max_labels: int,
    margin: float = 0.34,
    min_weight: float = 1.5,
) -> list:
    """Tasks that should get another label (while below ``max_labels``): fewer than ``min_labels``; labels that
    disagree (the weighted winning grade holds less than ``1 - margin`` of the weight); or, with ``weights``, a
    winning grade backed by less than ``min_weight`` (one careless or weak labeller's word is not enough; one
    labeller right 80% of the time on gold weighs log(3 * 0.8 / 0.2) = 2.5)."""
    data = _check(labels)
    w = data["worker"].map(weights).fillna(1.0) if weights is not None else pd.Series(1.0, index=data.index)
    votes = data.assign(w=w.to_numpy()).groupby(["task", "label"])["w"].sum().unstack(fill_value=0.0)
    share = votes.max(axis=1) / votes.sum(axis=1).replace(0, np.nan)
    count = data.groupby("task").size().reindex(votes.index)
    unsure = (share < 1.0 - margin) | share.isna()
    if weights is not None:
        unsure |= votes.max(axis=1) < min_weight
    pick = (count < min_labels) | (unsure & (count < max_labels))
    return list(votes.index[pick.to_numpy()])
