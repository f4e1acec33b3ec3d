"""A labelling session: simulated labellers work through tasks with adaptive overlap, gold questions mixed in.

Every labeller answers every gold task (so each has a measured accuracy); real tasks first get
``initial_overlap`` labels from distinct labellers, then rounds add one label to each task whose labels disagree
(:func:`labelling.aggregation.needs_more_labels`, weights from gold) until they agree or reach ``max_overlap``.
``route_hard`` sends tasks that look hard (promotions, adjectives, an unsure model) to the labellers with the best
gold accuracy so far. Each answer goes to ``post`` too (the Label Studio client posts it as that user's annotation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from labelling.aggregation import labeller_quality, needs_more_labels
from labelling.labellers import Labeller, answer

Post = Callable[[str, Labeller, int, float], None]


def observable_difficulty(tasks: pd.DataFrame, scores: np.ndarray | None = None) -> np.ndarray:
    """What a coordinator can see of a task's difficulty (never the truth): promotion, adjective, model doubt."""
    title = tasks["title"].fillna("").astype(str)
    promotion = title.str.endswith((" review video", " live deal")).to_numpy()
    adjective = tasks["query"].fillna("").astype(str).str.contains(" ").to_numpy()
    doubt = 1.0 - 2.0 * np.abs(scores - 0.5) if scores is not None else np.zeros(len(tasks))
    return 0.3 * promotion + 0.2 * adjective + 0.5 * doubt


class Session:
    def __init__(
        self,
        crowd: list[Labeller],
        seed: int,
        careless_gold_accuracy: float,
        post: Post | None = None,
    ) -> None:
        self.crowd = crowd
        self.rng = np.random.default_rng(seed)
        self.threshold = careless_gold_accuracy
        self.post = post
        self.rows: list[tuple[str, str, int, float, bool]] = []

    @property
    def labels(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["task", "worker", "label", "seconds", "suggested"])

    def _answer(self, task: pd.Series, labeller: Labeller, suggestion: int | None) -> None:
        grade, seconds = answer(labeller, int(task["true_grade"]), float(task["difficulty"]), self.rng, suggestion)
        self.rows.append((str(task["pair_id"]), labeller.labeller_id, grade, seconds, suggestion is not None))
        if self.post is not None:
            self.post(str(task["pair_id"]), labeller, grade, seconds)

    def quality(self, gold: pd.Series) -> pd.DataFrame:
        labels = self.labels
        return labeller_quality(labels, gold, self.threshold) if len(labels) else pd.DataFrame()

    def _pick(self, done: set[str], hard: bool, quality: pd.DataFrame, route_hard: bool) -> Labeller | None:
        free = [lab for lab in self.crowd if lab.labeller_id not in done]
        if not free:
            return None
        if route_hard and hard and len(quality):
            acc = quality["gold_accuracy"].reindex([lab.labeller_id for lab in free]).fillna(0.0).to_numpy()
            best = np.argsort(-acc)[: max(1, len(free) // 3)]  # the most reliable third of those still free
            return free[int(self.rng.choice(best))]
        return free[int(self.rng.integers(len(free)))]

    def run(
        self,
        tasks: pd.DataFrame,
        gold: pd.Series,
        initial_overlap: int,
        max_overlap: int,
        suggestions: dict[str, int] | None = None,
        hard: set[str] | None = None,
        route_hard: bool = False,
    ) -> pd.DataFrame:
        """Label ``tasks`` (pair_id, true_grade, difficulty); ``gold`` maps gold pair ids -> known grade.
        Returns every label (task, worker, label, seconds, suggested)."""
        by_id = tasks.set_index("pair_id", drop=False)
        suggestions = suggestions or {}
        hard = hard or set()
        for pair_id in gold.index:  # gold first: every labeller's accuracy is known before routing
            if pair_id in by_id.index:
                for labeller in self.crowd:
                    self._answer(by_id.loc[pair_id], labeller, None)
        real = [p for p in by_id.index if p not in gold.index]
        done: dict[str, set[str]] = {p: set() for p in real}
        quality = self.quality(gold)
        for pair_id in real:
            for _ in range(initial_overlap):
                self._assign(by_id.loc[pair_id], done, quality, suggestions, hard, route_hard)
        for _ in range(max_overlap - initial_overlap):
            quality = self.quality(gold)
            labels = self.labels
            weights = quality["weight"] if len(quality) else None
            more = needs_more_labels(labels[labels["task"].isin(real)], weights, initial_overlap, max_overlap)
            if not more:
                break
            for pair_id in more:
                self._assign(by_id.loc[pair_id], done, quality, suggestions, hard, route_hard)
        return self.labels

    def _assign(
        self,
        task: pd.Series,
        done: dict[str, set[str]],
        quality: pd.DataFrame,
        suggestions: dict[str, int],
        hard: set[str],
        route_hard: bool,
    ) -> None:
        pair_id = str(task["pair_id"])
        labeller = self._pick(done[pair_id], pair_id in hard, quality, route_hard)
        if labeller is None:
            return
        done[pair_id].add(labeller.labeller_id)
        self._answer(task, labeller, suggestions.get(pair_id))
