"""What to label each day: a stratified sample of search pairs, active-learning picks, gold questions mixed in.

Stratified: cells of query frequency (head / torso / tail terciles of requests per query) x the ranker's position
(settings.labelling.position_strata, e.g. 1-3, 4-10, 11+), the budget split evenly over the cells that have pairs
(a cell short of pairs hands its share to the others). Active: pairs where the relevance model is least certain
(P(relevant) near 0.5) or disagrees with clicks (clicked but scored irrelevant, or scored relevant but shown and
never clicked). Gold: pairs with a known grade, drawn evenly over grades, labelled by everyone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprank.settings import LabellingSettings


def strata(pairs: pd.DataFrame, position_cuts: tuple[int, ...]) -> pd.Series:
    """Each pair's cell, e.g. ``head/pos<=3``."""
    freq = pairs["query_requests"].rank(method="first", pct=True)
    band = np.select([freq <= 1 / 3, freq <= 2 / 3], ["tail", "torso"], "head")
    edges = sorted(position_cuts)
    labels = [f"pos<={edges[0]}"] + [f"pos{a + 1}-{b}" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f"pos>{edges[-1]}")
    pos_band = np.searchsorted(edges, pairs["best_position"].to_numpy(), side="left")
    return pd.Series(band, index=pairs.index) + "/" + pd.Series(np.array(labels)[pos_band], index=pairs.index)


def stratified(pairs: pd.DataFrame, n: int, position_cuts: tuple[int, ...], rng: np.random.Generator) -> pd.DataFrame:
    """``n`` pairs (or all, if fewer) spread evenly over the strata cells."""
    if n <= 0 or pairs.empty:
        return pairs.iloc[:0].assign(stratum=pd.Series(dtype=str))
    cells = strata(pairs, position_cuts)
    groups = {k: rng.permutation(v.to_numpy()) for k, v in pairs.groupby(cells).groups.items()}
    picked: list = []
    # Round robin over the cells: even shares, and a small cell's leftover goes to the others.
    while len(picked) < min(n, len(pairs)):
        for key in sorted(groups):
            if groups[key].size and len(picked) < n:
                picked.append(groups[key][0])
                groups[key] = groups[key][1:]
    out = pairs.loc[picked]
    return out.assign(stratum=cells.loc[picked].to_numpy())


def active_picks(pairs: pd.DataFrame, scores: np.ndarray, n: int) -> pd.DataFrame:
    """The ``n`` pairs the model is least sure of or most at odds with clicks about."""
    if n <= 0 or pairs.empty:
        return pairs.iloc[:0]
    uncertainty = 1.0 - 2.0 * np.abs(scores - 0.5)
    clicked = (pairs["clicks"].to_numpy() > 0).astype(float)
    shown_on_top = (pairs["best_position"].to_numpy() <= 3) & (clicked == 0)
    disagreement = np.where(clicked > 0, 1.0 - scores, np.where(shown_on_top, scores, 0.0))
    priority = np.maximum(uncertainty, disagreement)
    order = np.argsort(-priority, kind="stable")[:n]
    return pairs.iloc[order].assign(stratum="active", model_score=scores[order])


def gold_questions(gold_pool: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` gold pairs (with ``gold_grade``), as even over the grades as the pool allows."""
    if n <= 0 or gold_pool.empty:
        return gold_pool.iloc[:0]
    by_grade = {g: rng.permutation(idx.to_numpy()) for g, idx in gold_pool.groupby("gold_grade").groups.items()}
    picked: list = []
    while len(picked) < min(n, len(gold_pool)):
        for g in sorted(by_grade):
            if by_grade[g].size and len(picked) < n:
                picked.append(by_grade[g][0])
                by_grade[g] = by_grade[g][1:]
    return gold_pool.loc[picked].assign(stratum="gold")


def daily_sample(
    pairs: pd.DataFrame,
    cfg: LabellingSettings,
    seed: int,
    scores: np.ndarray | None = None,
    gold_pool: pd.DataFrame | None = None,
    already_labelled: set[str] | None = None,
) -> pd.DataFrame:
    """The day's tasks within ``cfg.daily_budget``: active picks (when a model's ``scores`` are given), gold, and
    the rest stratified. Pairs labelled before are not sampled again. Column ``stratum`` says why each was picked."""
    rng = np.random.default_rng(seed)
    fresh = ~pairs["pair_id"].isin(already_labelled or set())
    pool = pairs[fresh]
    pool_scores = scores[fresh.to_numpy()] if scores is not None else None
    n_gold = int(round(cfg.daily_budget * cfg.gold_share)) if gold_pool is not None else 0
    n_active = int(round(cfg.daily_budget * cfg.active_share)) if pool_scores is not None else 0
    active = active_picks(pool, pool_scores, n_active) if pool_scores is not None else pool.iloc[:0]
    rest = pool.drop(index=active.index)
    n_strat = cfg.daily_budget - n_gold - len(active)
    parts = [stratified(rest, n_strat, cfg.position_strata, rng), active]
    if gold_pool is not None:
        parts.append(gold_questions(gold_pool, n_gold, rng))
    sample = pd.concat([p for p in parts if len(p)], ignore_index=True)
    return sample.drop_duplicates("pair_id").reset_index(drop=True)
