"""Aggregation and quality control on hand-made label matrices whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelling.aggregation import (
    METHODS,
    aggregate,
    krippendorff_alpha,
    labeller_quality,
    needs_more_labels,
)
from labelling.labellers import Labeller, answer


def _matrix(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


# Six tasks, three good labellers (one slip each on different tasks) and one who always answers 3.
TRUTH = {"t1": 0, "t2": 1, "t3": 2, "t4": 3, "t5": 0, "t6": 2}
SLIPS = {("a", "t2"): 2, ("b", "t3"): 1, ("c", "t5"): 1}


def _hand_made() -> pd.DataFrame:
    rows = [(t, w, SLIPS.get((w, t), g)) for t, g in TRUTH.items() for w in ("a", "b", "c")]
    rows += [(t, "lazy", 3) for t in TRUTH]
    return _matrix(rows)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_recovers_the_known_grades_of_a_hand_made_matrix(method):
    labels = _hand_made()
    quality = labeller_quality(labels, pd.Series({"t1": 0, "t4": 3}), careless_gold_accuracy=0.45)
    result = aggregate(labels, method, quality["weight"])
    assert result.sort_index().to_dict() == TRUTH


def test_majority_vote_counts_votes_and_the_weighted_vote_follows_the_weights():
    # Task x: two labellers say 1, one says 2; with weights the lone, trusted labeller wins.
    labels = _matrix([("x", "p", 1), ("x", "q", 1), ("x", "r", 2)])
    assert aggregate(labels, "mv").loc["x"] == 1
    weights = pd.Series({"p": 0.1, "q": 0.1, "r": 2.0})
    assert aggregate(labels, "wmv", weights).loc["x"] == 2


def test_a_labeller_who_answers_at_random_is_flagged_and_down_weighted():
    rng = np.random.default_rng(3)
    tasks = {f"g{k}": int(rng.integers(0, 4)) for k in range(40)}
    careful = [Labeller(f"w{k}", 0.9, 0.0, 12.0, careless=False) for k in range(4)]
    careless = Labeller("random", 0.9, 0.0, 3.0, careless=True)
    rows = []
    for task, grade in tasks.items():
        for labeller in [*careful, careless]:
            rows.append((task, labeller.labeller_id, answer(labeller, grade, 0.2, rng)[0]))
    labels = _matrix(rows)
    gold = pd.Series(tasks).iloc[:20]
    quality = labeller_quality(labels, gold, careless_gold_accuracy=0.45)
    assert quality["careless"].to_dict() == {"random": True, "w0": False, "w1": False, "w2": False, "w3": False}
    assert quality.loc["random", "weight"] < 0.1 * quality.drop(index="random")["weight"].min()
    assert quality.loc["random", "gold_accuracy"] < 0.45 < quality.drop(index="random")["gold_accuracy"].min()


def test_krippendorff_alpha_is_one_for_perfect_agreement_and_lower_with_a_random_labeller():
    perfect = _matrix([(t, w, g) for t, g in TRUTH.items() for w in ("a", "b")])
    assert krippendorff_alpha(perfect) == pytest.approx(1.0)
    assert krippendorff_alpha(_hand_made()) < 0.8


def test_adaptive_overlap_asks_for_more_labels_only_where_labellers_disagree():
    labels = _matrix([("agree", "a", 2), ("agree", "b", 2), ("split", "a", 1), ("split", "b", 3), ("one", "a", 0)])
    assert needs_more_labels(labels, None, min_labels=2, max_labels=5) == ["one", "split"]
    assert needs_more_labels(labels, None, min_labels=1, max_labels=2) == []  # the cap is reached
    # One label from a labeller with a token weight is not enough; from a trusted one it is.
    single = _matrix([("weak", "careless", 1), ("strong", "expert", 1)])
    weights = pd.Series({"careless": 0.05, "expert": 2.5})
    assert needs_more_labels(single, weights, min_labels=1, max_labels=5) == ["weak"]


def test_labels_outside_the_scale_are_rejected_with_the_bad_values():
    with pytest.raises(ValueError, match=r"grades 0-3; got \[7\]"):
        aggregate(_matrix([("t", "w", 7)]), "mv")
