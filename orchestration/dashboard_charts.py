"""The dashboard's charts, drawn server-side with matplotlib as inline SVG (no JavaScript, no CDN: the page works
inside Airflow's UI on a machine without internet). Each function takes the series orchestration.dashboard builds
and returns an ``<svg>`` string, or "" when there is nothing to draw."""

from __future__ import annotations

import io
from typing import Any

# Airflow's UI palette (its blue, greys) so the charts sit with the rest of the page.
BLUE, ORANGE, GREY, GREEN, RED = "#017cee", "#f29d49", "#8a94a6", "#2f9e44", "#e03131"


def _svg(fig: Any, name: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    # Text as text (small, selectable); a salt per chart keeps the ids of several inline SVGs on one page distinct.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float = 7.5, height: float = 2.8) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in the API server's threads

    fig = Figure(figsize=(width, height), dpi=100)
    fig.patch.set_alpha(0)
    return fig


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e6e8eb", linewidth=0.8)
    ax.tick_params(labelsize=8)
    ax.set_axisbelow(True)


def _days(labels: list[str]) -> list[str]:
    return [day[5:] for day in labels]  # MM-DD: the year is in the table


def ndcg_chart(series: list[dict[str, Any]], k: int) -> str:
    """Holdout NDCG@k per training day: the challenger, the champion on the same holdout, popularity, the oracle."""
    if not series:
        return ""
    fig = _figure()
    ax = fig.add_subplot()
    x = list(range(len(series)))

    def line(key: str, **style: Any) -> None:
        points = [(i, row[key]) for i, row in zip(x, series, strict=True) if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), **style)

    line("oracle", color=GREY, linestyle=":", marker="^", markersize=4, label="oracle")
    line("challenger", color=BLUE, marker="o", markersize=4, label="challenger (day's model)")
    line("champion", color=GREEN, marker="s", markersize=4, linestyle="--", label="champion, same holdout")
    line("popularity", color=ORANGE, linestyle="--", marker="v", markersize=4, label="popularity")
    promoted = [
        (i, row["challenger"]) for i, row in zip(x, series, strict=True) if row["promoted"] and row["challenger"]
    ]
    if promoted:
        ax.scatter(*zip(*promoted, strict=True), s=90, marker="*", color=GREEN, zorder=5, label="promoted")
    ax.set_xticks(x, _days([row["day"] for row in series]))
    ax.set_ylabel(f"NDCG@{k}", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: never over a line
    _style(ax)
    return _svg(fig, "ndcg")


def drift_chart(series: dict[str, list[tuple[str, float]]], warn: float, block: float, top: int = 12) -> str:
    """PSI per feature per day as a heat map (the ``top`` features by their worst PSI), cells annotated."""
    if not series:
        return ""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    days = sorted({day for points in series.values() for day, _ in points})
    features = sorted(series, key=lambda name: -max(psi for _, psi in series[name]))[:top]
    grid = [[float("nan")] * len(days) for _ in features]
    for row, name in enumerate(features):
        for day, psi in series[name]:
            grid[row][days.index(day)] = psi
    fig = _figure(width=max(4.5, 2.6 + 0.6 * len(days)), height=0.9 + 0.28 * len(features))
    ax = fig.add_subplot()
    cmap = ListedColormap(["#e7f5ff", "#fff3bf", "#ffc9c9"]).with_extremes(bad="#f1f3f5")
    ax.imshow(grid, aspect="auto", cmap=cmap, norm=BoundaryNorm([0, warn, block, 1e9], 3))
    for row, values in enumerate(grid):
        for col, psi in enumerate(values):
            if psi == psi:  # not NaN
                ax.text(col, row, f"{psi:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(days)), _days(days))
    ax.set_yticks(range(len(features)), features)
    ax.tick_params(labelsize=7, length=0)
    ax.spines[:].set_visible(False)
    ax.set_title(f"PSI vs the training window (warn {warn}, block {block})", fontsize=8, loc="left")
    return _svg(fig, "drift")


def online_chart(rows: list[dict[str, Any]]) -> str:
    """Per monitored day: requests (bars) and degraded share; latency p50/p95; new-item share of impressions."""
    rows = [row for row in rows if row.get("requests")]
    if not rows:
        return ""
    fig = _figure(width=9, height=2.6)
    x = list(range(len(rows)))
    labels = _days([row["day"] for row in rows])
    traffic, latency, exposure = fig.subplots(1, 3)
    traffic.bar(x, [row["requests"] for row in rows], color=BLUE, alpha=0.8)
    traffic.set_title("requests (bars), degraded share", fontsize=8, loc="left")
    degraded = traffic.twinx()
    degraded.plot(x, [row.get("degraded_share", 0) for row in rows], color=RED, marker="o", markersize=3)
    degraded.set_ylim(0, 1)
    degraded.tick_params(labelsize=7)
    for key, color in (("p50", BLUE), ("p95", ORANGE), ("p99", RED)):
        values = [(row.get("latency_ms") or {}).get(key) for row in rows]
        if any(v is not None for v in values):
            latency.plot(x, values, color=color, marker="o", markersize=3, label=key)
    latency.set_title("latency (ms)", fontsize=8, loc="left")
    latency.legend(fontsize=7, frameon=False)
    for key, color, label in (("new_item_share", GREEN, "new items"), ("new_seller_share", ORANGE, "new sellers")):
        values = [row.get(key) for row in rows]
        if any(v is not None for v in values):
            exposure.plot(x, values, color=color, marker="o", markersize=3, label=label)
    exposure.set_title("share of impressions", fontsize=8, loc="left")
    exposure.legend(fontsize=7, frameon=False)
    for ax in (traffic, latency, exposure):
        ax.set_xticks(x, labels)
        _style(ax)
    fig.tight_layout()
    return _svg(fig, "online")
