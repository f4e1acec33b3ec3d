"""Simulated labellers: people with an accuracy, a bias, a speed, some careless, judging the hidden true grade.

A careful labeller gets the true grade with probability ``accuracy * (1 - 0.5 * difficulty)``; a miss is one grade
off (80%) or two (20%), upwards with probability ``(1 + bias) / 2`` (a lenient labeller grades up). A careless
labeller clicks a grade at random, fast. Time per task is the labeller's seconds per task scaled by difficulty
(``0.5 + difficulty``) with log-normal noise.

With a pre-label (a suggested grade) a labeller who disagrees takes the suggestion anyway with probability
``anchoring`` (higher for less accurate people: the accuracy cost), and confirming a suggestion they agree with
takes ``confirm_speedup`` of the time (the speed gain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIRM_SPEEDUP = 0.55  # share of the time a confirmed suggestion takes
OVERRIDE_SLOWDOWN = 1.1  # reading a wrong suggestion and changing it


@dataclass(frozen=True)
class Labeller:
    labeller_id: str
    accuracy: float
    bias: float
    seconds_per_task: float
    careless: bool

    @property
    def anchoring(self) -> float:
        return 0.2 + 0.6 * (1.0 - self.accuracy)


def make_crowd(n: int, careless_share: float, seed: int) -> list[Labeller]:
    """``n`` labellers, ``round(n * careless_share)`` of them careless (the last ones)."""
    rng = np.random.default_rng(seed)
    n_careless = int(round(n * careless_share))
    crowd = []
    for k in range(n):
        careless = k >= n - n_careless
        crowd.append(
            Labeller(
                labeller_id=f"labeller{k:03d}",
                accuracy=float(rng.uniform(0.65, 0.95)),
                bias=float(rng.uniform(-0.6, 0.6)),
                seconds_per_task=float(rng.uniform(3.0, 6.0) if careless else rng.uniform(10.0, 22.0)),
                careless=careless,
            )
        )
    return crowd


def _judge(labeller: Labeller, grade: int, difficulty: float, rng: np.random.Generator) -> int:
    if labeller.careless:
        return int(rng.integers(0, 4))
    if rng.random() < labeller.accuracy * (1.0 - 0.5 * difficulty):
        return int(grade)
    step = 1 if rng.random() < 0.8 else 2
    up = rng.random() < (1.0 + labeller.bias) / 2.0
    guess = grade + step if up else grade - step
    if not 0 <= guess <= 3:  # off the scale: the miss goes the other way
        guess = grade - step if up else grade + step
    return int(np.clip(guess, 0, 3))


def answer(
    labeller: Labeller,
    grade: int,
    difficulty: float,
    rng: np.random.Generator,
    suggestion: int | None = None,
) -> tuple[int, float]:
    """(the grade this labeller gives, seconds it took) for a task of true ``grade`` and ``difficulty``."""
    own = _judge(labeller, grade, difficulty, rng)
    seconds = labeller.seconds_per_task * (0.5 + difficulty) * float(rng.lognormal(0.0, 0.25))
    if labeller.careless:
        seconds = labeller.seconds_per_task * float(rng.lognormal(0.0, 0.2))
    if suggestion is None:
        return own, seconds
    if own == suggestion:
        return own, seconds * CONFIRM_SPEEDUP
    if rng.random() < labeller.anchoring:
        return int(suggestion), seconds * CONFIRM_SPEEDUP  # anchored: accepts the suggestion without re-judging
    return own, seconds * OVERRIDE_SLOWDOWN
