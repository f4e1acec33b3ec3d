"""bm25s vs tantivy over the same catalogue (part of `make bench-retrieval`): build time and peak memory (each build
in its own process), index size on disk, query latency and search recall of the holdout's clicks (text alone).

    .venv/bin/python -m benchmarks.bench_text --build ENGINE OUT   (one build; prints seconds and peak RSS)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import line

ENGINES = ("bm25s", "tantivy")


def build_one(engine: str, out: Path) -> None:
    """Build ``engine``'s text index of the home's catalogue into ``out`` and print {seconds, peak_rss_mib}."""
    from retrieval.build import build_text, catalogue
    from shoprank.settings import get_settings

    items = catalogue(get_settings())
    __import__(engine)  # the library's import is not the build
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    build_text(items, out, engine)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (out / "manifest.json").write_text(json.dumps({"text": {"engine": engine, "items": len(items)}}))
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak, "rss_before_mib": before, "items": len(items)}))


def _size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def run(requests: pd.DataFrame, n: int) -> None:
    """Build both engines, then search every holdout search request's query with each."""
    from shoprank.recall import _load_text

    searches = requests[(requests["surface"] == "search") & requests["query"].map(lambda q: isinstance(q, str))]
    with tempfile.TemporaryDirectory(prefix="bench-text-") as tmp:
        for engine in ENGINES:
            out = Path(tmp) / engine
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_text", "--build", engine, str(out)],
                check=True,
                capture_output=True,
                text=True,
            )
            built = json.loads(done.stdout.strip().splitlines()[-1])
            started = time.perf_counter()
            index = _load_text(out, engine)
            load = time.perf_counter() - started
            latencies, hits100, hits_n, total = [], 0, 0, 0
            for request in searches.itertuples():
                started = time.perf_counter()
                found = index.search(request.query, n)
                latencies.append((time.perf_counter() - started) * 1000)
                first = set(found[:100])
                every = set(found)
                for item in request.clicked:
                    total += 1
                    hits100 += item in first
                    hits_n += item in every
            line(
                f"text {engine}: build ({built['items']} items)",
                f"{built['seconds']:.2f} s, peak RSS {built['peak_rss_mib']:.0f} MiB "
                f"(imports {built['rss_before_mib']:.0f}), {_size_mib(out):.2f} MiB on disk, load {load:.2f} s",
            )
            line(
                f"text {engine}: query p50 / p99 ({len(latencies)})",
                f"{np.percentile(latencies, 50):.2f} / {np.percentile(latencies, 99):.2f} ms; "
                f"clicked R@100 {hits100 / max(total, 1):.3f}  R@{n} {hits_n / max(total, 1):.3f}",
            )


def main(argv: list[str]) -> Any:
    if len(argv) == 3 and argv[0] == "--build":
        return build_one(argv[1], Path(argv[2]))
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
