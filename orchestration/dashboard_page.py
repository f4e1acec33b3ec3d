"""The operator's dashboard as one HTML page (served by orchestration/docs_site.py inside Airflow's UI): the champion,
the last days' gates, NDCG and drift over time, online metrics, quarantine, then the links to the detailed reports.
Everything it shows comes from orchestration.dashboard; the charts from orchestration.dashboard_charts."""

from __future__ import annotations

import html
from typing import Any

from orchestration import dashboard as data
from orchestration.dashboard_charts import drift_chart, ndcg_chart, online_chart
from shoprank.settings import Settings

# Quiet, close to Airflow 3's own look (system font, its blue, light cards); follows the browser's dark mode.
STYLE = """
:root { --fg:#1a202c; --muted:#5f6b7a; --line:#e2e8f0; --card:#fff; --bg:#f7f9fb; --blue:#017cee; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e2e8f0; --muted:#a0aec0; --line:#2d3748; --card:#1a202c; --bg:#11151c; }
  svg text { fill: #e2e8f0 !important; }
}
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; padding: 20px 24px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 0 0 10px; }
a { color: var(--blue); text-decoration: none; } a:hover { text-decoration: underline; }
.sub { color: var(--muted); margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 12px; margin-bottom: 16px; }
.card, section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
section { margin-bottom: 16px; overflow-x: auto; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 16px; font-weight: 600; word-break: break-all; }
.card .detail { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
.gate { display: inline-block; border-radius: 10px; padding: 1px 8px; font-size: 12px; font-weight: 600;
        white-space: nowrap; }
td:first-child { white-space: nowrap; }
.gate.passed { background: #d3f9d8; color: #2b8a3e; } .gate.warned { background: #fff3bf; color: #946300; }
.gate.refused, .gate.error { background: #ffe3e3; color: #c92a2a; }
.gate.quarantined { background: #ffe8cc; color: #d9480f; }
.gate.running, .gate.not-run { background: #f1f3f5; color: #868e96; }
.reason { display: block; color: var(--muted); font-size: 11px; max-width: 260px; }
svg { max-width: 100%; height: auto; }
ul { margin: 4px 0 8px; padding-left: 20px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _e(value if value is not None else "n/a")


def _card(label: str, value: str, detail: str = "") -> str:
    return (
        f"<div class='card'><div class='label'>{_e(label)}</div><div class='value'>{value}</div>"
        f"<div class='detail'>{detail}</div></div>"
    )


def _cards(settings: Settings) -> str:
    best = data.champion(settings)
    k = settings.training.ndcg_k
    if best is None:
        champion = _card("Champion", "none yet", "the daily run's promote task names one")
    else:
        metrics = (best["card"] or {}).get("metrics", {})
        detail = (
            f"trained {_e(best['run_date'])}, {_e((best['card'] or {}).get('feature_service'))}; NDCG@{k} "
            f"{_fmt(metrics.get(f'model_ndcg@{k}'))} (popularity {_fmt(metrics.get(f'popularity_ndcg@{k}'))}, "
            f"oracle {_fmt(metrics.get(f'oracle_ndcg@{k}'))})"
        )
        if best["run_date"]:
            detail += f" &middot; <a href='candidates/{_e(best['run_date'])}/report.html'>report</a>"
        champion = _card("Champion", _e(best["tag"]), detail)
    current = [m for m in data.snapshots(settings) if m["current"]]
    snapshot = (
        _card("Published marts", _e(current[-1].get("snapshot")), f"published {_e(current[-1].get('published_at'))}")
        if current
        else _card("Published marts", "none yet", "publish runs after the mart and drift gates")
    )
    held = data.quarantined(settings)
    quarantine = _card(
        "Quarantined partitions", str(len(held)), ", ".join(f"{_e(q['table'])} {_e(q['dt'])}" for q in held[:4])
    )
    latest = _card("Latest raw day", _e(data.latest_raw_day(settings) or "none"), f"profile {_e(settings.profile)}")
    return f"<div class='cards'>{champion}{snapshot}{quarantine}{latest}</div>"


def _timeline(settings: Settings, last: int) -> str:
    runs = data.timeline(settings, last)
    if not runs:
        return "<p class='sub'>No run has left a record yet.</p>"

    def cell(outcome: data.Outcome) -> str:
        badge = f"<span class='gate {outcome.status.replace(' ', '-')}'>{_e(outcome.status)}</span>"
        if outcome.link:
            badge = f"<a href='{_e(outcome.link)}'>{badge}</a>"
        reason = f"<span class='reason'>{_e(outcome.reason)}</span>" if outcome.reason else ""
        return f"<td title='{_e(outcome.reason)}'>{badge}{reason}</td>"

    head = "".join(f"<th>{_e(g)}</th>" for g in data.GATES)
    rows = "".join(
        f"<tr><td><b>{_e(run.day)}</b></td>{''.join(cell(run.gates[g]) for g in data.GATES)}</tr>" for run in runs
    )
    return f"<table><tr><th>day</th>{head}</tr>{rows}</table>"


def _online_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='sub'>No online metrics yet: shoprank_monitor writes them from the service's logs.</p>"
    latest = rows[-1]
    latency = latest.get("latency_ms") or {}
    cells = {
        "day": latest["day"],
        "requests": latest.get("requests"),
        "degraded share": latest.get("degraded_share"),
        "latency p50 / p95 ms": f"{_fmt(latency.get('p50'))} / {_fmt(latency.get('p95'))}",
        "new-item share": latest.get("new_item_share"),
        "new-seller share": latest.get("new_seller_share"),
        "seller exposure Gini": latest.get("seller_exposure_gini"),
    }
    head = "".join(f"<th>{_e(k)}</th>" for k in cells)
    return f"<table><tr>{head}</tr><tr>{''.join(f'<td>{_fmt(v)}</td>' for v in cells.values())}</tr></table>"


def _experiments(settings: Settings) -> str:
    found = data.experiments(settings)
    report = found["report"]
    link = f"<p><a href='{_e(report)}'>Experiments report of {_e(found['report_day'])}</a></p>" if report else ""
    if found["error"]:
        return f"<p><span class='gate error'>error</span> {_e(found['error'])}</p>{link}"
    if not found["experiments"]:
        return f"<p class='sub'>No experiment declared in serving/experiments.yaml.</p>{link}"
    rows = "".join(
        f"<tr><td><b>{_e(e['name'])}</b></td><td>{_e(e['layer'])}</td>"
        f"<td><span class='gate {'passed' if e['running'] else 'not-run'}'>"
        f"{'running' if e['running'] else 'not running'}</span></td>"
        f"<td>{_e(e['start'] or 'open')} &rarr; {_e(e['stop'] or 'open')}</td><td>{_e(', '.join(e['arms']))}</td>"
        f"<td>{_e(e['verdict'] or 'no report yet')}</td></tr>"
        for e in found["experiments"]
    )
    head = "<tr><th>experiment</th><th>layer</th><th>now</th><th>window (UTC)</th><th>arms</th><th>verdict</th></tr>"
    return f"<table>{head}{rows}</table>{link}"


def _section(title: str, body: str, note: str = "") -> str:
    note = f"<p class='sub'>{note}</p>" if note else ""
    return f"<section><h2>{_e(title)}</h2>{note}{body}</section>"


def render(settings: Settings, links: list[tuple[str, list[str]]], last: int = 14) -> str:
    """The whole page; ``links``: (title, list items) sections of detailed reports, shown last."""
    k = settings.training.ndcg_k
    q = settings.quality
    ndcg = ndcg_chart(data.ndcg_series(settings), k) or "<p class='sub'>No trained model yet.</p>"
    drift = drift_chart(data.drift_series(settings), q.drift_warn_psi, q.drift_block_psi)
    online_rows = data.online_series(settings)
    held = data.quarantined(settings)
    quarantine = (
        "<table><tr><th>table</th><th>day</th><th>since</th><th>failed</th></tr>"
        + "".join(
            f"<tr><td>{_e(e['table'])}</td><td>{_e(e['dt'])}</td><td>{_e(e['quarantined_at'])}</td>"
            f"<td>{_e(e['reason'])}</td></tr>"
            for e in held
        )
        + "</table>"
        if held
        else "<p class='sub'>Nothing in quarantine.</p>"
    )
    champion = data.champion(settings)
    sections = [
        _section(
            f"Daily runs (last {last})",
            _timeline(settings, last),
            "Each gate's outcome and why; a badge links to the gate's JSON result.",
        ),
        _section(f"Holdout NDCG@{k}", ndcg, "Each day's challenger, the champion on the same holdout (from the gate)."),
        _section("Feature drift", drift or "<p class='sub'>No drift report yet.</p>"),
        _section("Online metrics", online_chart(online_rows) + _online_table(online_rows)),
        _section("Experiments", _experiments(settings), "serving/experiments.yaml; `shoprank experiment report`."),
        _section("Quarantine", quarantine, "Release a fixed partition: <code>shoprank quarantine release</code>."),
        *(_section(title, f"<ul>{''.join(items)}</ul>") for title, items in links),
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ShopRank</title>"
        f"<style>{STYLE}</style></head><body><h1>ShopRank</h1>"
        f"<p class='sub'>Profile <b>{_e(settings.profile)}</b>, home <code>{_e(settings.home_dir)}</code>; "
        f"champion model: <b>{_e(champion['tag'] if champion else 'none yet')}</b>.</p>"
        f"{_cards(settings)}{''.join(sections)}</body></html>"
    )
