"""The train step's ranker fit in one process vs through xgboost.dask (training/dask_fit.py), on the same chunks.

    python -m benchmarks.bench_dask_train                          # 4 days x 10,000 requests of 5, 50 trees
    python -m benchmarks.bench_dask_train --requests-per-day 50000 --workers 2

The rows are tests/model/test_small_data.tiny_world's (the ranker's feature columns, relevance from a hidden
utility), written as the train step's chunks. The Dask cluster runs on loopback: `--workers` workers of one thread
each, in their own processes (as `dask worker` runs them). Prints for each engine: wall seconds, CPU seconds of
this process and its reaped children (the Dask workers' CPU is counted once the cluster closes), rows x trees per
wall second, and the holdout NDCG@10 of the two models, beside the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import line


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-per-day", type=int, default=10_000)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from distributed import LocalCluster

    from shoprank.ranking_features import feature_columns_for, model_matrix
    from shoprank.settings import get_settings
    from tests.model.test_small_data import tiny_world
    from training.chunks import frame_to_chunks, split_days
    from training.dask_fit import fit_engine
    from training.evaluate import evaluate_holdout
    from training.streaming import IN_PROCESS, fit_ranker_chunks

    settings = get_settings()
    trees = {"n_estimators": args.trees, "min_trees": args.trees, "early_stopping_rounds": args.trees}
    cfg = settings.training.model_copy(update=trees)
    frame = tiny_world(settings, requests_per_day=args.requests_per_day, seed=5)
    columns = feature_columns_for(cfg.feature_service, settings.simulator.categories)
    with tempfile.TemporaryDirectory() as scratch:
        chunked = frame_to_chunks(frame, Path(scratch) / "set", rows_per_chunk=50_000)
        fit_days, validation_days, holdout_days = split_days(chunked.days, 1, 1, 1)
        fit, validation = chunked.on_days(fit_days), chunked.on_days(validation_days)
        rows = sum(chunk.rows for chunk in [*fit, *validation])
        holdout = frame[frame["dt"].isin(holdout_days)]
        print(f"== bench-dask-train: {rows:,} training rows, {args.trees} trees, load {os.getloadavg()[0]:.1f}")
        scores = {}
        for name in ("in-process", "xgboost.dask"):
            started, cpu = time.perf_counter(), _cpu()
            if name == "in-process":
                model, _ = fit_ranker_chunks(cfg, fit, validation, columns, IN_PROCESS)
            else:
                with LocalCluster(
                    n_workers=args.workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
                ) as cluster:
                    dask_cfg = cfg.model_copy(update={"dask_scheduler_address": cluster.scheduler_address})
                    cluster_up = time.perf_counter()
                    with fit_engine(dask_cfg) as engine:
                        model, _ = fit_ranker_chunks(dask_cfg, fit, validation, columns, engine)
                    fitted = time.perf_counter() - cluster_up
            wall = time.perf_counter() - started
            if name == "in-process":
                fitted = wall
            scores[name] = model.predict(model_matrix(holdout, columns))
            line(
                f"{name}: ranker fit",
                f"{fitted:.1f} s wall ({wall:.1f} s with the cluster's start), {_cpu() - cpu:.1f} s CPU, "
                f"{rows * args.trees / fitted / 1e6:.2f}M rows x trees/s (load {os.getloadavg()[0]:.1f})",
            )
        metrics = evaluate_holdout(holdout.assign(**scores), {name: name for name in scores}, cfg.ndcg_k)
        line("holdout NDCG@10", ", ".join(f"{name} {metrics[f'{name}_ndcg@10']:.4f}" for name in scores))


if __name__ == "__main__":
    main()
