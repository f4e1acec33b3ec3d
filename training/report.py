"""The per-run evaluation report: one self-contained HTML file (plots embedded as PNG) beside the candidate.

Plots: NDCG@k by slice for every scorer, feature importance (gain), the CTR model's calibration curve, and the
distribution of model scores for clicked vs. not clicked holdout rows.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from training.human_eval import NO_JUDGED_PAIRS


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _ndcg_by_slice(metrics: dict[str, Any], scorers: list[str], k: int) -> Any:
    import matplotlib.pyplot as plt

    slices = [
        "all",
        *sorted(
            {
                key[len("slice_") : -len("_requests")]
                for key in metrics
                if key.startswith("slice_") and key.endswith("_requests")
            }
        ),
    ]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(len(scorers), 1)
    for n, scorer in enumerate(scorers):
        values = []
        for name in slices:
            key = f"{scorer}_ndcg@{k}" if name == "all" else f"slice_{name}_{scorer}_ndcg@{k}"
            value = metrics.get(key)
            values.append(0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else value)
        ax.bar([i + n * width for i in range(len(slices))], values, width=width, label=scorer)
    ax.set_xticks([i + width * (len(scorers) - 1) / 2 for i in range(len(slices))], slices)
    ax.set_ylabel(f"NDCG@{k}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Holdout NDCG by slice")
    return fig


def _importance(importance: dict[str, float]) -> Any:
    import matplotlib.pyplot as plt

    top = list(importance.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top) + 1))
    ax.barh([name for name, _ in top], [value for _, value in top])
    ax.set_xlabel("gain")
    ax.set_title("Ranker feature importance")
    return fig


def _calibration(calibration: dict[str, list[float]]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    predicted, observed = calibration["predicted"], calibration["observed"]
    top = max([*predicted, *observed, 1e-6])
    ax.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect")
    ax.plot(predicted, observed, marker="o", label="CTR model")
    ax.set_xlabel("predicted click rate")
    ax.set_ylabel("observed click rate")
    ax.legend(fontsize=8)
    ax.set_title("Calibration (holdout)")
    return fig


def _score_distribution(scored: pd.DataFrame) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    clicked = scored["label_click"] == 1 if "label_click" in scored else scored["relevance"] > 0
    for rows, label in ((~clicked, "not clicked"), (clicked, "clicked")):
        if rows.any():  # a degenerate holdout (no click, only clicks) has one group only
            ax.hist(scored.loc[rows, "model_score"], bins=50, alpha=0.6, density=True, label=label)
    ax.set_xlabel("model score")
    ax.legend(fontsize=8)
    ax.set_title("Score distribution (holdout)")
    return fig


def _judged_section(metrics: dict[str, Any], scorers: list[str], k: int) -> str:
    """Click NDCG@k next to NDCG@k on human-judged search pairs (training/human_eval.py), per scorer."""
    title = f"<h2>Search NDCG@{k}: human-judged pairs next to clicks</h2>"
    if not metrics.get("judged_requests"):
        return f"{title}<p>{NO_JUDGED_PAIRS}: no labelled (query, item) pair of the holdout's searches yet.</p>"

    def cell(value: Any) -> str:
        return "undefined" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"

    rows = "".join(
        f"<tr><td>{html.escape(scorer)}</td><td>{cell(metrics.get(f'{scorer}_ndcg@{k}'))}</td>"
        f"<td>{cell(metrics.get(f'judged_{scorer}_ndcg@{k}'))}</td></tr>"
        for scorer in scorers
    )
    pairs = int(metrics.get("judged_pairs") or 0)
    stands_on = f"{int(metrics['judged_requests'])} search requests, {pairs} judged pairs"
    return (
        f"{title}<p>Human NDCG@{k}: {stands_on} (aggregated grades 0-3 as gains, judged items only).</p>"
        f"<table><tr><th>scorer</th><th>click NDCG@{k} (all requests)</th><th>human NDCG@{k}</th></tr>{rows}</table>"
    )


def write_report(path: Path, card: dict[str, Any], scored: pd.DataFrame, score_columns: dict[str, str]) -> Path:
    """Render the card and the plots into ``path`` (HTML, no external files)."""
    import matplotlib

    matplotlib.use("Agg")
    metrics = card["metrics"]
    # MAP is computed at the configured cutoff only: it names k.
    k = next(int(key.split("@")[1]) for key in metrics if key.startswith("model_map@"))
    figures = {"NDCG by slice": _ndcg_by_slice(metrics, list(score_columns), k)}
    if card.get("feature_importance"):
        figures["Feature importance"] = _importance(card["feature_importance"])
    if card.get("calibration"):
        figures["Calibration"] = _calibration(card["calibration"])
    figures["Score distribution"] = _score_distribution(scored)

    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{'undefined' if value is None else f'{value:.4f}'}</td></tr>"
        for key, value in metrics.items()
    )
    facts = {
        key: card.get(key)
        for key in (
            "run_date",
            "feature_service",
            "objective",
            "train_window",
            "validation_window",
            "holdout_window",
            "train_rows",
            "holdout_rows",
            "holdout_requests",
            "holdout_requests_with_click",
            "negative_sample_rate",
            "ranker_sample_rate",
            "code_version",
        )
    }
    judged = _judged_section(metrics, list(score_columns), k)
    fact_rows = "".join(f"<tr><td>{html.escape(k_)}</td><td>{html.escape(str(v))}</td></tr>" for k_, v in facts.items())
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in card.get("warnings") or [])
    warning_list = f"<h2>Warnings</h2><ul class='warn'>{warnings}</ul>" if warnings else ""
    images = "".join(
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{_png(fig)}'/>"
        for title, fig in figures.items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>ShopRank evaluation {html.escape(card['run_date'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 10px}table{border-collapse:collapse}"
        "tr:nth-child(even){background:#f3f3f3}.warn{color:#a40000}</style></head><body>"
        f"<h1>Evaluation report — run {html.escape(card['run_date'])}</h1>"
        f"<table>{fact_rows}</table>{warning_list}{judged}{images}"
        f"<h2>Holdout metrics</h2><table>{rows}</table></body></html>"
    )
    path.write_text(page)
    return path
