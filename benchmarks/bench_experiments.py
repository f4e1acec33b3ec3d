"""`make bench-experiments`: the experiment analysis proved on the simulator, offline (no server). Printed, never
asserted.

Users are the simulator's world (producers/simulator.py, default sizes); each request draws a user in proportion to
activity, 200 random candidates, and shows the top k of a ranker; the simulator's hidden truth (click_logit,
position_bias, purchase_given_click, as orchestration/replay.py) decides clicks and purchases. Arms are assigned
with the service's bucketing (serving/experiments/assignment.py) and analysed with quality/experiments/analysis.py
(tea-tasting, CUPED on a pre-period served by popularity).

The rankers are stand-ins of known quality, not trained models: ``popularity`` (an item's mean click probability
over users, the same list for everyone), ``model`` (the user's true click logit plus N(0, 1) noise) and for the
ranker versions ``v1`` (noise sd 2.0) vs ``v3`` (noise sd 1.2).

(a) A/A: one policy for both arms, N analyses each over users resampled with replacement and a fresh salt: the
    share of p < 0.05 per metric (expected ~5%);
(b) model vs popularity: effect and direction per metric;
(c) v1 vs v3: requests an A/B test needs for 80% power on CTR (from a pilot's standard error) vs a team-draft
    interleaving's requests for 80% power of the binomial test (from the pilot's preference share and ties).

``--live N`` first runs (b) for the champion vs a served popularity arm and the trained ranker_v1 vs ranker_v3, and
(c), through the live service (benchmarks/bench_experiments_live.py), N requests, with what the simulator's truth
expects per arm and per interleaving team.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import norm

from producers.simulator import World, build_world, click_logit, position_bias, purchase_given_click
from quality.experiments.analysis import OUTCOMES, PRE, analyse, interleaving_preference
from serving.experiments.assignment import bucket
from serving.experiments.interleaving import credit, team_draft
from shoprank.settings import Settings

Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (users (R,), candidates (R, C)) -> scores (R, C)
N_CANDIDATES, K = 200, 20


def rankers(world: World, rng: np.random.Generator) -> dict[str, Ranker]:
    sample = rng.choice(len(world.activity), 500, replace=False)
    items = np.arange(len(world.quality))
    pop = np.array([np.mean(1 / (1 + np.exp(-click_logit(world, sample, np.full(500, i))))) for i in items])

    def noisy(sd: float) -> Ranker:
        def score(users: np.ndarray, cands: np.ndarray) -> np.ndarray:
            truth = click_logit(world, np.repeat(users, cands.shape[1]), cands.ravel()).reshape(cands.shape)
            return truth + rng.normal(0, sd, cands.shape)

        return score

    return {"popularity": lambda users, cands: pop[cands], "model": noisy(1.0), "v1": noisy(2.0), "v3": noisy(1.2)}


def serve(world: World, users: np.ndarray, ranker: Ranker, rng: np.random.Generator) -> pd.DataFrame:
    """One request per entry of ``users``: per request impressions, clicks, purchases and GMV."""
    cands = rng.integers(0, len(world.quality), (len(users), N_CANDIDATES))
    top = np.take_along_axis(cands, np.argsort(-ranker(users, cands), axis=1)[:, :K], axis=1)
    clicked, purchased = _respond(world, users, top, rng)
    gmv = (purchased * world.item_price[top]).sum(axis=1)
    return pd.DataFrame(
        {"user": users, "impressions": K, "clicks": clicked.sum(1), "purchases": purchased.sum(1), "gmv": gmv}
    )


def _respond(world: World, users: np.ndarray, shown: np.ndarray, rng: np.random.Generator):
    flat_users, flat_items = np.repeat(users, shown.shape[1]), shown.ravel()
    logit = click_logit(world, flat_users, flat_items).reshape(shown.shape)
    p_click = 1 / (1 + np.exp(-logit)) * position_bias(np.arange(1, shown.shape[1] + 1))[None, :]
    p_cart, p_buy = (p.reshape(shown.shape) for p in purchase_given_click(world, flat_users, flat_items))
    draws = rng.random((2, *shown.shape))
    clicked = draws[0] < p_click
    return clicked, clicked & (draws[1] < p_cart * p_buy)


def requests_of(world: World, n: int, rng: np.random.Generator) -> np.ndarray:
    weights = world.activity / world.activity.sum()
    return rng.choice(len(weights), n, p=weights)


def per_user(requests: pd.DataFrame) -> pd.DataFrame:
    grouped = requests.groupby("user").agg(
        requests=("clicks", "size"),
        impressions=("impressions", "sum"),
        clicks=("clicks", "sum"),
        purchases=("purchases", "sum"),
        gmv=("gmv", "sum"),
    )
    return grouped


def with_pre(users: pd.DataFrame, pre: pd.DataFrame) -> pd.DataFrame:
    pre = pre.add_suffix(PRE)
    return users.join(pre, how="left").fillna(0).reset_index()


def aa_test(world: World, rng: np.random.Generator, ranker: Ranker, n_requests: int, runs: int) -> dict[str, float]:
    pre = per_user(serve(world, requests_of(world, n_requests, rng), ranker, rng))
    during = per_user(serve(world, requests_of(world, n_requests, rng), ranker, rng))
    users = with_pre(during, pre)
    hits = {"ctr": 0, "purchases_per_request": 0, "gmv_per_user": 0, "srm": 0}
    for run in range(runs):
        sample = users.iloc[rng.integers(0, len(users), len(users))].reset_index(drop=True)
        # a user drawn twice counts as two users, each hashed to its own arm
        sample["user"] = [f"u{u}#{i}" for i, u in enumerate(sample["user"])]
        salt = f"aa-{run}"
        sample["arm"] = np.where([bucket(u, salt) < 0.5 for u in sample["user"]], "A", "B")
        result = analyse(sample, "aa", {"A": 0.5, "B": 0.5}, power=False)
        for metric in result.comparisons[0].metrics:
            hits[metric.metric] += metric.pvalue < 0.05
        hits["srm"] += result.srm_pvalue < 0.05
    return {name: count / runs for name, count in hits.items()}


def ab_test(world: World, rng: np.random.Generator, control: Ranker, treatment: Ranker, n_requests: int):
    """Each user is in one arm (hash bucketing); the arm's ranker serves its requests."""
    salt = "ab-bench"
    pre = per_user(serve(world, requests_of(world, n_requests, rng), control, rng))
    reqs = requests_of(world, n_requests, rng)
    arm = np.array([bucket(f"u{u}", salt) < 0.5 for u in range(len(world.activity))])[reqs]
    served = pd.concat([serve(world, reqs[~arm], control, rng), serve(world, reqs[arm], treatment, rng)])
    users = with_pre(per_user(served), pre)
    users["arm"] = np.where([bucket(f"u{u}", salt) < 0.5 for u in users["user"]], "treatment", "control")
    return analyse(
        users[["arm", *OUTCOMES, *(f"{c}{PRE}" for c in OUTCOMES)]], "ab", {"control": 0.5, "treatment": 0.5}
    )


def interleave(world: World, rng: np.random.Generator, a: Ranker, b: Ranker, n_requests: int):
    """Team-draft interleaving of A's and B's top k on the same candidates; clicks credited per team."""
    users = requests_of(world, n_requests, rng)
    cands = rng.integers(0, len(world.quality), (n_requests, N_CANDIDATES))
    tops = [np.take_along_axis(cands, np.argsort(-r(users, cands), axis=1)[:, :K], axis=1) for r in (a, b)]
    shown = np.empty((n_requests, K), dtype=int)
    teams = []
    for r in range(n_requests):
        merged = team_draft([str(i) for i in tops[0][r]], [str(i) for i in tops[1][r]], K, r)
        shown[r] = [int(i) for i in merged.items]
        teams.append(merged.team_of())
    clicked, _ = _respond(world, users, shown, rng)
    winners = []
    for r in range(n_requests):
        wa, wb = credit(teams[r], [str(i) for i in shown[r][clicked[r]]])
        winners.append("A" if wa > wb else "B" if wb > wa else None)
    return interleaving_preference(winners)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="A/A analyses")
    parser.add_argument("--requests", type=int, default=6000, help="requests per simulated period")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live", type=int, default=0, help="also v1 vs v3 through the live service, N requests")
    parser.add_argument("--live-only", action="store_true", help="only the live part")
    args = parser.parse_args()
    if args.live:
        from benchmarks.bench_experiments_live import live, print_live

        print_live(live(args.live, args.seed), args.live)
        if args.live_only:
            return
        print("\nOFFLINE (stand-in rankers on the simulator's truth, no service):")
    rng = np.random.default_rng(args.seed)
    world = build_world(Settings(home=tempfile.mkdtemp(prefix="bench-experiments-")))
    policies = rankers(world, rng)
    print(f"world: {len(world.activity)} users, {len(world.quality)} items; k={K} of {N_CANDIDATES} candidates")

    started = time.perf_counter()
    fpr = aa_test(world, rng, policies["model"], args.requests, args.runs)
    print(f"\n(a) A/A, {args.runs} analyses of resampled users ({args.requests} requests), alpha 5%, CUPED:")
    for name, rate in fpr.items():
        print(f"    false-positive rate {name:<22} {rate:6.1%}")
    print(f"    ({time.perf_counter() - started:.0f} s)")

    result = ab_test(world, rng, policies["popularity"], policies["model"], args.requests)
    print(f"\n(b) model vs popularity (A/B, {args.requests} requests; SRM p = {result.srm_pvalue:.2f}):")
    for m in result.comparisons[0].metrics:
        print(
            f"    {m.metric:<22} popularity {m.control:8.4f}  model {m.treatment:8.4f}  {m.rel_effect:+7.1%} "
            f"[{m.rel_ci_lower:+.1%}, {m.rel_ci_upper:+.1%}]  p={m.pvalue:.2g}"
        )

    z = norm.ppf(0.975) + norm.ppf(0.8)
    pilot = args.requests * 4
    ab = ab_test(world, rng, policies["v1"], policies["v3"], pilot)
    ctr = ab.metric("treatment", "ctr")
    se = (ctr.rel_ci_upper - ctr.rel_ci_lower) / (2 * norm.ppf(0.975))
    ab_needed = pilot * (z * se / ctr.rel_effect) ** 2 if ctr.rel_effect > 0 else float("inf")
    tdi = interleave(world, rng, policies["v1"], policies["v3"], pilot)
    assert tdi.share_b is not None
    decided = (tdi.wins_a + tdi.wins_b) / tdi.requests
    p = tdi.share_b
    n_decided = ((norm.ppf(0.975) * 0.5 + norm.ppf(0.8) * np.sqrt(p * (1 - p))) / (p - 0.5)) ** 2
    tdi_needed = n_decided / decided if p > 0.5 else float("inf")
    print(f"\n(c) v1 vs v3, pilot of {pilot} requests each:")
    print(f"    A/B: CTR {ctr.rel_effect:+.1%} (se {se:.1%}): ~{ab_needed:,.0f} requests for 80% power")
    print(
        f"    interleaving: v3 preferred in {p:.1%} of decided requests ({decided:.0%} decided, p={tdi.pvalue:.2g}): "
        f"~{tdi_needed:,.0f} requests for 80% power"
    )
    print(f"    interleaving needs {ab_needed / tdi_needed:.1f}x fewer requests")


if __name__ == "__main__":
    main()
