"""Which arm a user is in: deterministic hash bucketing, the same in every process, worker and restart.

A user's bucket in an experiment is sha256(salt + ":" + user_id) read as a number in [0, 1); the arms take
consecutive slices of [0, 1) by their shares, in the file's order. Each experiment has its own salt, so buckets in
different experiments (and therefore layers) are independent; one experiment runs per layer at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from serving.experiments.config import Arm, Experiment, ExperimentsConfig

_SCALE = float(1 << 64)


def bucket(user_id: str, salt: str) -> float:
    """The user's position in [0, 1) under ``salt``: the first 8 bytes of sha256 as an unsigned integer / 2**64."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_for(experiment: Experiment, user_id: str) -> Arm:
    """The arm whose slice of [0, 1) holds the user's bucket."""
    point, edge = bucket(user_id, experiment.salt), 0.0
    for arm in experiment.arms:
        edge += arm.share
        if point < edge:
            return arm
    return experiment.arms[-1]  # shares summing to 1 - epsilon: the last arm takes the rounding


@dataclass(frozen=True)
class Assignment:
    experiment: str
    layer: str
    arm: Arm


def assign(config: ExperimentsConfig | None, user_id: str, now: datetime) -> list[Assignment]:
    """The user's arm in every experiment running at ``now``, one per layer, in the file's order."""
    if config is None:
        return []
    return [Assignment(e.name, e.layer, arm_for(e, user_id)) for e in config.experiments if e.running(now)]
