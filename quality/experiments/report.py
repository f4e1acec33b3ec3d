"""The experiments report: one HTML page, per experiment its arms, SRM status, effects with intervals, power,
guardrails, the interleaving preference and the decision rule's verdict."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd

from quality.experiments.analysis import Analysis, InterleavingResult


@dataclass(frozen=True)
class ExperimentReport:
    name: str
    window: str
    analysis: Analysis | None
    interleaving: InterleavingResult | None
    guardrails: pd.DataFrame
    users_in_several_arms: int
    note: str = ""

    def decision(self) -> str:
        """Ship a treatment only with a sound split and a significant GMV-per-user gain and no significant loss on
        CTR or purchases per request; otherwise keep the control."""
        a = self.analysis
        if a is None or not a.comparisons:
            return "no data yet"
        if not a.srm_ok:
            return f"invalid: sample ratio mismatch (p = {a.srm_pvalue:.2g}); fix the assignment before reading"
        winners = []
        for comparison in a.comparisons:
            by_name = {m.metric: m for m in comparison.metrics}
            gmv = by_name["gmv_per_user"]
            losses = [m.metric for m in comparison.metrics if m.significant and m.effect < 0]
            if gmv.significant and gmv.effect > 0 and not losses:
                winners.append((gmv.rel_effect, comparison.treatment))
        if not winners:
            return f"keep {a.comparisons[0].control}: no arm wins on GMV per user without a loss"
        return f"ship {max(winners)[1]}: significant GMV-per-user gain, no significant loss"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "window": self.window,
            "analysis": self.analysis.to_dict() if self.analysis else None,
            "interleaving": self.interleaving.to_dict() if self.interleaving else None,
            "guardrails": self.guardrails.to_dict(orient="records"),
            "users_in_several_arms": self.users_in_several_arms,
            "decision": self.decision(),
            "note": self.note,
        }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"


def _section(report: ExperimentReport) -> str:
    e = html.escape
    parts = [f"<h2>{e(report.name)}</h2><p>{e(report.window)}. <b>Decision:</b> {e(report.decision())}</p>"]
    if report.note:
        parts.append(f"<p>{e(report.note)}</p>")
    a = report.analysis
    if a is not None:
        status = "ok" if a.srm_ok else "MISMATCH"
        arms = ", ".join(f"{e(k)}: {v} users" for k, v in a.arms.items())
        parts.append(f"<p>Arms: {arms}. SRM: {status} (p = {a.srm_pvalue:.3g}).")
        parts.append(f" Users seen in several arms (left out): {report.users_in_several_arms}.</p>")
        rows = "".join(
            f"<tr><td>{e(c.treatment)} vs {e(c.control)}</td><td>{e(m.metric)}</td><td>{m.control:.4g}</td>"
            f"<td>{m.treatment:.4g}</td><td>{_pct(m.rel_effect)}</td><td>[{_pct(m.rel_ci_lower)}, "
            f"{_pct(m.rel_ci_upper)}]</td><td>{m.pvalue:.3g}</td><td>{'yes' if m.significant else 'no'}</td>"
            f"<td>{'–' if m.rel_mde is None else f'{m.rel_mde:.1%}'}</td></tr>"
            for c in a.comparisons
            for m in c.metrics
        )
        parts.append(
            "<table><tr><th>comparison</th><th>metric</th><th>control</th><th>treatment</th><th>effect</th>"
            "<th>95% CI</th><th>p</th><th>significant</th><th>MDE (80% power)</th></tr>" + rows + "</table>"
        )
    i = report.interleaving
    if i is not None:
        parts.append(
            f"<p>Interleaving: {i.requests} requests, A wins {i.wins_a}, B wins {i.wins_b}, ties {i.ties}; "
            f"B's share {_pct(i.share_b) if i.share_b is None else f'{i.share_b:.1%}'}"
            + ("" if i.pvalue is None else f" [{i.ci_lower:.1%}, {i.ci_upper:.1%}], binomial p = {i.pvalue:.3g}")
            + "</p>"
        )
    if len(report.guardrails):
        parts.append("<h3>Guardrails</h3>" + report.guardrails.to_html(index=False, float_format="%.3f"))
    return "".join(parts)


def render(reports: list[ExperimentReport], title: str) -> str:
    body = "".join(_section(r) for r in reports) or "<p>No experiment declared in serving/experiments.yaml.</p>"
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
