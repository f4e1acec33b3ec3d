"""The closed loop's comparison: a fixed-width table of policies and an HTML report with server-side SVG charts
(cumulative GMV, catalogue coverage, new-seller survival), from each policy's ``<home>/loop/<policy>/`` output.

The acceptance test of a rule setting (issue 17): day-1 CTR at most 2% below model-only, more cumulative GMV than
model-only over the run, and new-seller survival at least double model-only's.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from orchestration.dashboard_charts import BLUE, GREEN, GREY, ORANGE, RED, _figure, _style, _svg

COLOURS = {"model-only": GREY, "rules": ORANGE, "learned": BLUE, "oracle": GREEN}
ROWS = {
    "cumulative_gmv": "{:.0f}",
    "regret_vs_oracle": "{:.0f}",
    "purchases": "{:.0f}",
    "ctr_day1": "{:.4f}",
    "ctr_mean": "{:.4f}",
    "coverage_impressed": "{:.3f}",
    "coverage_sold": "{:.3f}",
    "new_items_top_decile": "{:.0f}",
    "new_seller_survival": "{:.3f}",
    "new_sellers_judged": "{:.0f}",
    "seller_gini": "{:.3f}",
    "oos_impressions": "{:.0f}",
    "wall_seconds": "{:.0f}",
}


def load_run(loop_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """(summary, per-day item rows) a policy's run wrote."""
    return json.loads((loop_dir / "summary.json").read_text()), pd.read_parquet(loop_dir / "items_by_day.parquet")


def with_regret(summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each summary plus ``regret_vs_oracle`` (the oracle's cumulative GMV minus the policy's), when it ran."""
    oracle = summaries.get("oracle", {}).get("cumulative_gmv")
    return {
        name: {**s, "regret_vs_oracle": (oracle - s["cumulative_gmv"]) if oracle is not None else float("nan")}
        for name, s in summaries.items()
    }


def verdicts(summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, bool]]:
    """Per rule policy: the issue's three conditions against model-only."""
    base = summaries.get("model-only")
    if base is None:
        return {}
    out = {}
    for name, s in summaries.items():
        if name in ("model-only", "oracle"):
            continue
        out[name] = {
            "day1_ctr_cost_le_2pct": s["ctr_day1"] >= 0.98 * base["ctr_day1"],
            "beats_model_only_gmv": s["cumulative_gmv"] > base["cumulative_gmv"],
            "survival_at_least_double": s["new_seller_survival"] >= 2 * base["new_seller_survival"]
            and s["new_seller_survival"] > 0,
        }
    return out


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    names = list(summaries)
    lines = [f"{'metric':<24}" + "".join(f"{n:>14}" for n in names)]
    for metric, fmt in ROWS.items():
        cells = []
        for n in names:
            value = summaries[n].get(metric)
            cells.append(f"{fmt.format(value) if value is not None else '-':>14}")
        lines.append(f"{metric:<24}" + "".join(cells))
    return "\n".join(lines)


def _coverage_by_day(items: pd.DataFrame) -> pd.Series:
    """Distinct items shown so far, per day (the catalogue the loop has explored)."""
    first_seen = items[items["impressions"] > 0].groupby("item_id")["day"].min()
    return first_seen.value_counts().sort_index().cumsum()


def cumulative_gmv_chart(runs: dict[str, pd.DataFrame]) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    for name, items in runs.items():
        gmv = items.groupby("day")["gmv"].sum().sort_index().cumsum()
        ax.plot(range(1, len(gmv) + 1), gmv.to_numpy(), color=COLOURS.get(name, RED), marker="o", ms=3, label=name)
    ax.set_xlabel("served day", fontsize=8)
    ax.set_ylabel("cumulative GMV", fontsize=8)
    _style(ax)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _svg(fig, "loop-gmv")


def coverage_chart(runs: dict[str, pd.DataFrame]) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    for name, items in runs.items():
        seen = _coverage_by_day(items)
        ax.plot(range(1, len(seen) + 1), seen.to_numpy(), color=COLOURS.get(name, RED), marker="o", ms=3, label=name)
    ax.set_xlabel("served day", fontsize=8)
    ax.set_ylabel("distinct items shown so far", fontsize=8)
    _style(ax)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _svg(fig, "loop-coverage")


def survival_chart(summaries: dict[str, dict[str, Any]]) -> str:
    fig = _figure(height=2.4)
    ax = fig.add_subplot()
    names = list(summaries)
    values = [summaries[n]["new_seller_survival"] for n in names]
    ax.bar(names, values, color=[COLOURS.get(n, RED) for n in names])
    for i, n in enumerate(names):
        label = f"{summaries[n]['new_sellers_surviving']}/{summaries[n]['new_sellers_judged']}"
        ax.annotate(label, (i, values[i]), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("new sellers with a sale in 7 days", fontsize=8)
    _style(ax)
    return _svg(fig, "loop-survival")


def write_report(path: Path, summaries: dict[str, dict[str, Any]], runs: dict[str, pd.DataFrame], note: str) -> Path:
    """The HTML report: the note (sizes, cadence, run time), the table, the verdicts and the three charts."""
    checks = verdicts(summaries)
    verdict_rows = "".join(
        f"<tr><td>{html.escape(n)}</td>" + "".join(f"<td>{'yes' if ok else 'no'}</td>" for ok in v.values()) + "</tr>"
        for n, v in checks.items()
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ShopRank closed loop</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} pre{{background:#f6f8fa;padding:1em}}
td,th{{padding:0 1em;text-align:left}}</style></head><body>
<h1>Closed-loop marketplace: policies over {max((s["served_days"] for s in summaries.values()), default=0)} days</h1>
<p>{html.escape(note)}</p>
<pre>{html.escape(format_table(summaries))}</pre>
<h2>Acceptance (against model-only)</h2>
<table><tr><th>policy</th><th>day-1 CTR cost &le; 2%</th><th>beats model-only GMV</th><th>survival &ge; 2x</th></tr>
{verdict_rows}</table>
<h2>Cumulative GMV</h2>{cumulative_gmv_chart(runs)}
<h2>Catalogue coverage</h2>{coverage_chart(runs)}
<h2>New-seller survival</h2>{survival_chart(summaries)}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
