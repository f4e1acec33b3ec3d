"""ranker_v3 vs ranker_v4 (session features) on a built home: holdout NDCG@10 overall / feed / search, oracle ratio.

Needs a home run through `feast-apply` (simulate, validate-raw, build-warehouse, validate-marts, check-drift, publish,
feast-apply). Builds the v4 training frame once (v3's columns are a subset), then trains each ranker on it with
training's own `train_on_frame`, for each session gap given (SHOPRANK_SESSION__GAP_SECONDS is the default one).
``--ablate`` also trains v4 with the category-standing columns added in session 5 blanked (NaN: no split can use
them), i.e. session 4's v4 on the same frame; ``--ablate-taste`` also v4 with the long-term taste (uc_taste_30d,
shoprank/taste.py) blanked the same way. Prints figures; asserts nothing. Example:

    SHOPRANK_HOME=var/bench .venv/bin/python -m benchmarks.bench_session --gaps 1800 14400 --ablate
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from benchmarks.common import bench_settings, line
from producers.simulator import (
    CLICK_DELAY_SECONDS,
    PARAMS,
    _requests,
    _sigmoid,
    build_world,
    click_logit,
    effective_sizes,
    position_bias,
)
from shoprank.feature_contract import COMPUTED
from training.dataset import add_slice_flags, build_training_frame
from training.evaluate import ndcg_at_k
from training.session_dataset import add_session_features, epoch_seconds
from training.train import HOLDOUT_FILE, candidate_dir, train_on_frame

SESSION_COLUMNS = [
    *COMPUTED["session_user"].columns,
    *COMPUTED["session_candidate"].columns,
    *COMPUTED["session_query"].columns,
]
# The candidate's category against the session's other categories (recency rank, most clicked, shown / CTR).
STANDING_COLUMNS = ["session_cat_recency_rank", "session_cat_is_top", "session_cat_impressions", "session_cat_ctr"]
TASTE_COLUMNS = ["uc_taste_30d"]  # the user's long-term category taste (shoprank/taste.py)
ABLATIONS = {"-standing": STANDING_COLUMNS, "-taste": TASTE_COLUMNS}


def surfaces(settings) -> pd.Series:  # type: ignore[no-untyped-def]
    """request_id -> surface (feed / search), from the raw events."""
    events = ds.dataset(settings.raw_dir / "events", format="parquet", partitioning="hive")
    table = events.to_table(columns=["request_id", "surface"], filter=ds.field("event_type") == "impression")
    return table.to_pandas().drop_duplicates("request_id").set_index("request_id")["surface"]


def holdout_figures(settings, run_date, surface: pd.Series) -> dict[str, float]:  # type: ignore[no-untyped-def]
    scored = pd.read_parquet(candidate_dir(settings, run_date) / HOLDOUT_FILE)
    scored["surface"] = scored["request_id"].map(surface)
    out = {}
    for name, rows in (("all", scored), *scored.groupby("surface")):
        out[f"model {name}"] = ndcg_at_k(rows, "model_score", 10)
        out[f"oracle {name}"] = ndcg_at_k(rows, "oracle_score", 10)
    out["ratio"] = out["model all"] / out["oracle all"]
    return out


# ---- the observable oracle: the best ranking any model could give, short of seeing the request's intent ----------
def _visits(settings, day: date) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """request_id -> visit number of ``day``, re-drawn with the simulator's own generator (its first draws of the
    day are the requests: producers.simulator._simulate_day)."""
    sim = effective_sizes(settings.simulator)
    world = build_world(settings, day)
    index = (day - sim.start_date).days
    rng = np.random.default_rng([sim.seed, 1, index])
    _, _, session = _requests(rng, world, np.nonzero(world.user_created_day < index)[0], sim)
    if session is None:  # no visits: every request is one of its own
        session = np.arange(sim.requests_per_day)
    stamp = day.strftime("%Y%m%d")
    return {f"r{stamp}{k:07d}": int(s) for k, s in enumerate(session)}


def _click_likelihood(
    base: np.ndarray, category: np.ndarray, bias: np.ndarray, seen_click: np.ndarray, waited: np.ndarray, n: int
) -> np.ndarray:
    """P(what was seen of one feed slate by now | intent = c), per category c: a click seen has probability
    p_c = sigmoid(base + w_intent*[cat == c]) * position_bias; no click seen yet, 1 - p_c * P(delay <= waited)."""
    p = _sigmoid(base[:, None] + PARAMS["w_intent"] * (category[:, None] == np.arange(n)[None, :])) * bias[:, None]
    lo, hi = CLICK_DELAY_SECONDS
    reached = np.clip((waited - lo) / (hi - lo), 0.0, 1.0)[:, None]
    likely = np.where(seen_click[:, None], p, 1.0 - p * reached)
    return np.exp(np.log(np.maximum(likely, 1e-300)).sum(axis=0))


def observable_oracle(settings, holdout: pd.DataFrame) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Per holdout row (request_id, item_id), two position-free expected click probabilities under the hidden truth:

    - ``observable_score``: the truth's p_click with the request's intent replaced by its posterior given everything
      before the request: the user's true long-term affinity, price sensitivity and the items' true quality (static
      parameters a model can at best learn), the true visit boundaries, and the user's events of the day strictly
      before the request (earlier requests' queries, impressions, clicks seen so far and clicks not seen yet, each
      slate's click likelihood under each intent). The posterior is exact for the simulator's intent process (a day
      anchor drawn from the affinity; a visit opens on it or, with probability intent_drift, on a fresh draw; within a
      visit the intent switches to a fresh draw with probability session_intent_switch): a forward filter over the
      pair (anchor, intent). A search's query names its intent, so a search row keeps the oracle's value.
    - ``static_score``: the same without the session (the intent's prior, the affinity): the ceiling of daily features.
    - ``no_affinity_score``: the static score with the user's long-term affinity unknown too (marginalised over its
      Dirichlet prior, jointly with the intent it draws; a search's query weighs its category's affinity up): how
      much of the oracle is knowing the user's tastes. A sample of the prior, not an exact integral.
    """
    n_cat = settings.simulator.categories
    world = build_world(settings, settings.default_run_date)
    prior = np.random.default_rng(0).dirichlet(np.full(n_cat, PARAMS["dirichlet_alpha"]), size=max(1, 1200 // n_cat))
    prior = np.maximum(prior, PARAMS["affinity_floor"])
    prior = (prior / prior.sum(axis=1, keepdims=True)).ravel()  # one category's affinity, exchangeable draws
    log_prior = PARAMS["w_affinity"] * np.log(n_cat * prior)
    requests = pd.unique(holdout["request_id"])
    days = sorted({date(int(r[1:5]), int(r[5:7]), int(r[7:9])) for r in requests})
    drift, switch = PARAMS["intent_drift"], settings.simulator.session_intent_switch
    out: dict[tuple[str, str], tuple[float, float, float]] = {}
    for day in days:
        truth = pd.read_parquet(settings.truth_dir / "impressions" / f"dt={day.isoformat()}")
        events = pd.read_parquet(
            settings.raw_dir / "events" / f"dt={day.isoformat()}",
            columns=["event_ts", "event_type", "request_id", "item_id", "surface"],
        )
        stamps = epoch_seconds(events["event_ts"])
        shown = events[events["event_type"] == "impression"].assign(ts=stamps[events["event_type"] == "impression"])
        clicks = events[events["event_type"] == "click"].assign(click_ts=stamps[events["event_type"] == "click"])
        slots = truth.merge(shown[["request_id", "item_id", "ts", "surface"]], on=["request_id", "item_id"])
        slots = slots.merge(clicks[["request_id", "item_id", "click_ts"]], on=["request_id", "item_id"], how="left")
        users = slots["user_id"].str[1:].astype(int).to_numpy()
        items = slots["item_id"].str[1:].astype(int).to_numpy()
        slots["base"] = click_logit(world, users, items)
        slots["category"] = world.item_category[items]
        slots["bias"] = position_bias(slots["position"].to_numpy(dtype=float))
        visit = _visits(settings, day)
        slots["visit"] = slots["request_id"].map(visit)
        wanted = set(requests)
        for user_id, rows in slots.groupby("user_id", sort=False):
            affinity = world.affinity[int(str(user_id)[1:])]
            slates = [g for _, g in rows.groupby("request_id", sort=False)]
            slates.sort(key=lambda g: float(g["ts"].min()))
            for k, target in enumerate(slates):
                request_id = str(target["request_id"].iloc[0])
                if request_id not in wanted:
                    continue
                now = float(target["ts"].min())
                belief = np.diag(affinity)  # (anchor, intent) at the user's first request of the day
                for j in range(k + 1):
                    if j > 0:  # into request j: the same visit, or a new one
                        anchor = belief.sum(axis=1)
                        if slates[j]["visit"].iloc[0] == slates[j - 1]["visit"].iloc[0]:
                            belief = (1 - switch) * belief + switch * anchor[:, None] * affinity[None, :]
                        else:
                            belief = anchor[:, None] * ((1 - drift) * np.eye(n_cat) + drift * affinity[None, :])
                    if j == k:
                        break
                    seen = slates[j][slates[j]["ts"] < now]
                    if seen.empty:
                        continue
                    if seen["surface"].iloc[0] == "search":  # the query names the intent
                        likelihood = (np.arange(n_cat) == int(seen["intent_category"].iloc[0])).astype(float)
                    else:
                        click_ts = seen["click_ts"].to_numpy(dtype=float)
                        likelihood = _click_likelihood(
                            seen["base"].to_numpy(),
                            seen["category"].to_numpy(),
                            seen["bias"].to_numpy(),
                            click_ts < now,  # NaN (no click): False
                            now - seen["ts"].to_numpy(),
                            n_cat,
                        )
                    belief = belief * likelihood[None, :]
                    belief = belief / belief.sum()
                posterior = belief.sum(axis=0)
                base, category = target["base"].to_numpy(), target["category"].to_numpy()
                with_intent, without = _sigmoid(base + PARAMS["w_intent"]), _sigmoid(base)
                if target["surface"].iloc[0] == "search":
                    observable = target["p_click"].to_numpy()
                else:
                    observable = posterior[category] * with_intent + (1 - posterior[category]) * without
                static = affinity[category] * with_intent + (1 - affinity[category]) * without
                # the affinity unknown: the logit without its affinity term, plus each prior draw's
                own = base - PARAMS["w_affinity"] * np.log(n_cat * affinity[category])
                logits = own[:, None] + log_prior[None, :]
                if target["surface"].iloc[0] == "search":  # the request's own query is known without a session
                    static = observable
                    asked = category == int(target["intent_category"].iloc[0])
                    bonus = asked * (PARAMS["w_intent"] + PARAMS["search_match_bonus"])
                    bonus = bonus + PARAMS["text_match_bonus"] * target["text_match"].to_numpy(dtype=float)
                    p = _sigmoid(logits + bonus[:, None])
                    weights = np.where(asked[:, None], prior[None, :], 1.0)  # P(affinity | intent = its category)
                    no_affinity = (p * weights).sum(axis=1) / weights.sum(axis=1)
                else:
                    p_in, p_out = _sigmoid(logits + PARAMS["w_intent"]), _sigmoid(logits)
                    no_affinity = (prior[None, :] * p_in + (1 - prior[None, :]) * p_out).mean(axis=1)
                for item, o, s, a in zip(target["item_id"], observable, static, no_affinity, strict=True):
                    out[(request_id, str(item))] = (float(o), float(s), float(a))
    keys = list(zip(holdout["request_id"].astype(str), holdout["item_id"].astype(str), strict=True))
    values = np.array([out.get(key, (np.nan,) * 3) for key in keys], dtype=float).reshape(len(keys), 3)
    names = ["observable_score", "static_score", "no_affinity_score"]
    return pd.DataFrame(values, columns=names, index=holdout.index)


def ceiling_figures(settings, run_date, surface: pd.Series) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """NDCG@10 (all / feed / search) of the oracle, the observable oracle and the static one on the holdout."""
    scored = pd.read_parquet(candidate_dir(settings, run_date) / HOLDOUT_FILE)
    scored["surface"] = scored["request_id"].map(surface)
    scored = scored.join(observable_oracle(settings, scored))
    if scored[["observable_score", "static_score", "no_affinity_score"]].isna().any().any():
        raise ValueError("holdout rows without a truth impression: the observable oracle needs the simulator's truth")
    out = {}
    for name, rows in (("all", scored), *scored.groupby("surface")):
        for column in ("oracle_score", "observable_score", "static_score", "no_affinity_score"):
            out[f"{column} {name}"] = ndcg_at_k(rows, column, 10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", type=float, nargs="*", help="session gaps (seconds) to train v4 with")
    parser.add_argument("--ablate", action="store_true", help="also v4 without the category-standing columns")
    parser.add_argument(
        "--ablate-taste",
        action="store_true",
        help="also v4 without the long-term taste column (a no-op while uc_taste_30d is not a model column)",
    )
    parser.add_argument("--skip-v3", action="store_true", help="v4 only (v3's figures known from an earlier run)")
    parser.add_argument("--query", action="store_true", help="also ranker_v4_query (v4 + the last search query)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the oracle ceilings (known from a run)")
    args = parser.parse_args()
    settings = bench_settings()
    run_date = settings.default_run_date
    surface = surfaces(settings)
    started = time.perf_counter()
    frame = add_slice_flags(settings, build_training_frame(settings, run_date, "ranker_v4"))
    line("v4 training frame", f"{len(frame):,} rows in {time.perf_counter() - started:.1f} s")

    runs: list[tuple[str, float | None]] = [] if args.skip_v3 else [("ranker_v3", None)]
    if args.ablate:
        runs.append(("ranker_v4 -standing", None))
    if args.ablate_taste:
        runs.append(("ranker_v4 -taste", None))
    runs += [("ranker_v4", gap) for gap in (args.gaps or [settings.session.gap_seconds])]
    if args.query:
        runs.append(("ranker_v4_query", None))
    print(f"home {settings.home_dir}, seed {settings.simulator.seed}, run date {run_date}")
    print(f"{'ranker':<22} {'NDCG@10':>8} {'feed':>7} {'search':>7} {'ratio':>7}   oracle all/feed/search")
    for label_service, gap in runs:
        service = label_service.split()[0]
        run_settings = settings.model_copy(
            update={"training": settings.training.model_copy(update={"feature_service": service})}
        )
        blanked = ABLATIONS[label_service.split()[1]] if label_service != service else []
        run_frame = frame.assign(**dict.fromkeys(blanked, float("nan"))) if blanked else frame
        if gap is not None and gap != settings.session.gap_seconds:
            run_settings = run_settings.model_copy(
                update={"session": settings.session.model_copy(update={"gap_seconds": gap})}
            )
            started = time.perf_counter()
            run_frame = add_session_features(run_settings, frame.drop(columns=SESSION_COLUMNS), service)
            line(f"session replay, gap {gap:.0f} s", f"{time.perf_counter() - started:.1f} s")
        train_on_frame(run_settings, run_date, run_frame)
        f = holdout_figures(run_settings, run_date, surface)
        label = label_service if gap is None else f"{service} gap {gap:.0f}s"
        print(
            f"{label:<22} {f['model all']:>8.3f} {f['model feed']:>7.3f} {f['model search']:>7.3f} "
            f"{f['ratio']:>7.3f}   {f['oracle all']:.3f}/{f['oracle feed']:.3f}/{f['oracle search']:.3f}",
            flush=True,
        )
    if args.no_ceiling:
        return
    started = time.perf_counter()
    c = ceiling_figures(settings, run_date, surface)  # the holdout's rows are the same for every ranker
    for label, column in (
        ("oracle", "oracle_score"),
        ("observable oracle", "observable_score"),
        ("static oracle", "static_score"),
        ("oracle, affinity prior", "no_affinity_score"),
    ):
        ratio = c[f"{column} all"] / c["oracle_score all"]
        print(
            f"{label:<22} {c[f'{column} all']:>8.3f} {c[f'{column} feed']:>7.3f} {c[f'{column} search']:>7.3f} "
            f"{ratio:>7.3f}",
            flush=True,
        )
    line("observable oracle", f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
