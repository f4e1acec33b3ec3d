"""What the operator's dashboard shows, read from the home's files only (no Airflow, no model store, no service).

Every function takes the settings and returns plain data: the champion and its card, the last days' gate outcomes
(raw, marts, drift, publish, promotion), the holdout NDCG of each day's challenger and of the champion next to the
popularity and oracle lines, feature drift per feature per day, and the service's online metrics. The page
(orchestration/dashboard_page.py) and ``shoprank status`` render them; a file a run has not written yet is simply
absent from the answer, and a file that cannot be parsed shows as an error rather than breaking the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoprank.gate_records import drift_report_path, marts_results_path
from shoprank.model_bundle import read_registry
from shoprank.settings import Settings

GATES = ("raw", "marts", "drift", "publish", "promotion")
# Outcomes, worst last: what a gate's cell says.
PASSED, WARNED, REFUSED, QUARANTINED, ERROR, RUNNING, NOT_RUN = (
    "passed",
    "warned",
    "refused",
    "quarantined",
    "error",
    "running",
    "not run",
)
CARD_FILE = "candidate.json"  # training.train.CARD_FILE (the top reads the stage's file, it does not import it)
MANIFEST = "manifest.json"  # warehouse.publish.MANIFEST


@dataclass
class Outcome:
    status: str
    reason: str = ""
    link: str | None = None  # a report relative to the docs site (e.g. "quality/raw-2026-01-07.json")


@dataclass
class DayRun:
    day: str
    gates: dict[str, Outcome] = field(default_factory=dict)


def _read(path: Path) -> dict[str, Any] | None:
    """A JSON file's object; None when absent; ``{"_unreadable": why}`` when it cannot be parsed."""
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as err:
        return {"_unreadable": f"{path.name}: {err}"}


def _failures(failures: list[dict[str, Any]], limit: int = 3) -> str:
    """The failed expectations, as a short line: ``table: expectation`` (and the error when there is one)."""
    seen: list[str] = []
    for f in failures:
        text = f"{f.get('table')}: {f.get('expectation')}"
        if f.get("exception"):
            text += f" ({str(f['exception'])[:120]})"
        if text not in seen:
            seen.append(text)
    more = f" and {len(seen) - limit} more" if len(seen) > limit else ""
    return "; ".join(seen[:limit]) + more


def raw_outcome(settings: Settings, day: str) -> Outcome:
    link = f"quality/raw-{day}.json"
    result = _read(settings.quality_dir / f"raw-{day}.json")
    if result is None:
        return Outcome(NOT_RUN)
    if "_unreadable" in result:
        return Outcome(ERROR, result["_unreadable"], link)
    status = result.get("status")
    if status == "passed" or (status is None and result.get("success") is True):
        return Outcome(PASSED, "; ".join(result.get("notes", [])), link)
    if status == "running":
        return Outcome(RUNNING, f"started {result.get('started_at')} (or died without a result)", link)
    if status == "error":
        return Outcome(ERROR, str(result.get("error", "")), link)
    reason = _failures(result.get("failures", []))
    quarantined = result.get("quarantined") or {}
    if quarantined:
        return Outcome(QUARANTINED, f"{', '.join(sorted(quarantined))} moved to quarantine; failed {reason}", link)
    return Outcome(REFUSED, reason, link)


def marts_outcome(settings: Settings, day: str) -> Outcome:
    link = f"quality/marts-{day}.json"
    result = _read(marts_results_path(settings, _date(day)))
    if result is None:
        return Outcome(NOT_RUN)
    if "_unreadable" in result:
        return Outcome(ERROR, result["_unreadable"], link)
    if result.get("success") is True:
        return Outcome(PASSED, "", link)
    return Outcome(REFUSED, _failures(result.get("failures", [])), link)


def drift_outcome(settings: Settings, day: str) -> Outcome:
    link = f"quality/drift-{day}.json"
    result = _read(drift_report_path(settings, _date(day)))
    if result is None:
        return Outcome(NOT_RUN)
    if "_unreadable" in result:
        return Outcome(ERROR, result["_unreadable"], link)
    features = result.get("features", {})

    def psi(names: list[str]) -> str:
        return ", ".join(f"{n} (PSI {features.get(n, {}).get('psi')})" for n in names)

    if result.get("success") is True:
        warned = result.get("warned", [])
        return Outcome(WARNED, f"warn: {psi(warned)}", link) if warned else Outcome(PASSED, "", link)
    return Outcome(REFUSED, f"blocked: {psi(result.get('blocked', []))}", link)


def snapshots(settings: Settings) -> list[dict[str, Any]]:
    """The kept published snapshots' manifests, oldest first (``current`` marks the one the pointer names)."""
    pointer = settings.marts_export_dir
    current = pointer.resolve() if pointer.exists() else None
    found = []
    for manifest_path in sorted(settings.marts_snapshots_dir.glob(f"*/{MANIFEST}")):
        manifest = _read(manifest_path)
        if manifest and "_unreadable" not in manifest:
            found.append({**manifest, "current": manifest_path.parent.resolve() == current})
    return sorted(found, key=lambda m: (str(m.get("run_date")), str(m.get("published_at"))))


def publish_outcome(settings: Settings, day: str, gates: dict[str, Outcome], kept: list[dict[str, Any]]) -> Outcome:
    published = [m for m in kept if m.get("run_date") == day]
    if published:
        current = " (serving now)" if any(m["current"] for m in published) else ""
        return Outcome(PASSED, f"snapshot {published[-1].get('snapshot')}{current}")
    blocking = [name for name in ("marts", "drift") if gates[name].status not in (PASSED, WARNED)]
    if blocking:
        return Outcome(NOT_RUN, f"{blocking[0]} gate did not pass" if gates[blocking[0]].status != NOT_RUN else "")
    return Outcome(NOT_RUN, "no snapshot of this day kept (not published, or pruned)")


def decisions(settings: Settings) -> dict[str, dict[str, Any]]:
    """The promotion gate's last decision per run day (decision files are ``<day>__<tag>.json``)."""
    latest: dict[str, dict[str, Any]] = {}
    for path in (settings.home_dir / "models" / "decisions").glob("*__*.json"):
        day = path.name.split("__", 1)[0]
        decision = _read(path)
        if decision is None or "_unreadable" in decision or day == "manual":
            continue
        if day not in latest or str(decision.get("decided_at")) >= str(latest[day].get("decided_at")):
            latest[day] = {**decision, "path": f"decisions/{path.name}"}
    return latest


def promotion_outcome(decision: dict[str, Any] | None) -> Outcome:
    if decision is None:
        return Outcome(NOT_RUN)
    reasons = [str(r) for r in decision.get("reasons", [])]
    if decision.get("promoted"):
        return Outcome(PASSED, f"promoted {decision.get('challenger')}: {reasons[0] if reasons else ''}")
    failing = [r for r in reasons if "FAIL" in r or r.startswith("refused")] or reasons
    return Outcome(REFUSED, f"kept {decision.get('champion')}: {'; '.join(failing[:2])}")


def _date(day: str) -> Any:
    from datetime import date

    return date.fromisoformat(day)


def run_days(settings: Settings) -> list[str]:
    """Every day some run left a record for, oldest first."""
    days: set[str] = set()
    for prefix in ("raw", "marts", "drift"):
        days.update(p.stem.removeprefix(f"{prefix}-") for p in settings.quality_dir.glob(f"{prefix}-*.json"))
    days.update(p.name for p in (settings.home_dir / "models" / "candidates").glob("*") if p.is_dir())
    days.update(decisions(settings))
    days.update(p.name.removeprefix("dt=") for p in settings.quarantine_dir.glob("*/dt=*"))
    valid = []
    for day in days:
        try:
            _date(day[:10])
        except ValueError:
            continue
        valid.append(day[:10])
    return sorted(set(valid))


def timeline(settings: Settings, last: int = 14) -> list[DayRun]:
    """The last ``last`` days, newest first, with each gate's outcome and why."""
    kept, decided = snapshots(settings), decisions(settings)
    runs = []
    for day in run_days(settings)[-last:][::-1]:
        gates = {
            "raw": raw_outcome(settings, day),
            "marts": marts_outcome(settings, day),
            "drift": drift_outcome(settings, day),
        }
        gates["publish"] = publish_outcome(settings, day, gates, kept)
        gates["promotion"] = promotion_outcome(decided.get(day))
        runs.append(DayRun(day, gates))
    return runs


def champion(settings: Settings) -> dict[str, Any] | None:
    """The champion's tag, when and why it was promoted, and its candidate card (found by the tag recorded at
    registration, ``registered.json``); None before the first promotion."""
    registry = read_registry(settings)
    tag = registry.get("champion")
    if not tag:
        return None
    promoted = [e for e in registry.get("events", []) if e.get("tag") == tag and e.get("action") == "promote"]
    card, day = None, None
    for folder in sorted((settings.home_dir / "models" / "candidates").glob("*"), reverse=True):
        registered = _read(folder / "registered.json")
        if registered and registered.get("tag") == tag:
            card, day = _read(folder / CARD_FILE), folder.name
            break
    return {
        "tag": tag,
        "run_date": day,
        "promoted_at": promoted[-1].get("at") if promoted else None,
        "reasons": promoted[-1].get("reasons", []) if promoted else [],
        "card": card if card and "_unreadable" not in card else None,
        "line": list(registry.get("stack", [])),
    }


def preranker_text(settings: Settings) -> str:
    """The served pre-ranker (the version ``CURRENT`` names under ``settings.preranker_dir``) and the pre-ranker gate's
    last decision (training/preranker_gate.py writes ``<preranker_gate_dir>/decisions/<day>.json``)."""
    pointer = settings.preranker_dir / "CURRENT"  # shoprank.prerank.CURRENT
    served = pointer.read_text().strip() if pointer.exists() else ""
    text = f"serving {served}" if served else "none serving (today's path)"
    paths = sorted((settings.preranker_gate_dir / "decisions").glob("*.json"))
    last = _read(paths[-1]) if paths else None
    if last is None:
        return text
    if "_unreadable" in last:
        return f"{text}; last gate decision unreadable: {last['_unreadable']}"
    reasons = [str(r) for r in last.get("reasons", [])]
    if last.get("published"):
        return f"{text}; gate {last.get('run_date')}: published"
    failing = [r for r in reasons if "FAIL" in r] or reasons
    return f"{text}; gate {last.get('run_date')}: REFUSED ({'; '.join(failing[:2])})"


def ndcg_series(settings: Settings) -> list[dict[str, Any]]:
    """Per training day, oldest first: holdout NDCG@k of the day's challenger, popularity and the oracle (from its
    card), the champion's on the same holdout (from the gate's decision), and whether the challenger was promoted."""
    k = settings.training.ndcg_k
    decided = decisions(settings)
    series = []
    for folder in sorted((settings.home_dir / "models" / "candidates").glob("*")):
        card = _read(folder / CARD_FILE)
        if not card or "_unreadable" in card:
            continue
        metrics = card.get("metrics", {})
        decision = decided.get(folder.name, {})
        series.append(
            {
                "day": folder.name,
                "challenger": metrics.get(f"model_ndcg@{k}"),
                "popularity": metrics.get(f"popularity_ndcg@{k}"),
                "oracle": metrics.get(f"oracle_ndcg@{k}"),
                "champion": (decision.get("metrics") or {}).get(f"champion_ndcg@{k}"),
                "promoted": bool(decision.get("promoted")),
            }
        )
    return series


def drift_series(settings: Settings) -> dict[str, list[tuple[str, float]]]:
    """Feature -> [(day, PSI)] over every drift report (the gate's), oldest first."""
    series: dict[str, list[tuple[str, float]]] = {}
    for path in sorted(settings.quality_dir.glob("drift-*.json")):
        report = _read(path)
        if not report or "_unreadable" in report:
            continue
        day = path.stem.removeprefix("drift-")
        for name, feature in (report.get("features") or {}).items():
            if isinstance(feature, dict) and feature.get("psi") is not None:
                series.setdefault(name, []).append((day, float(feature["psi"])))
    return series


def online_series(settings: Settings) -> list[dict[str, Any]]:
    """Per monitored day, oldest first: the service's online metrics (monitoring/<day>/online_metrics.json)."""
    rows = []
    for path in sorted((settings.home_dir / "monitoring").glob("*/online_metrics.json")):
        report = _read(path)
        if report and "_unreadable" not in report:
            rows.append({"day": path.parent.name, **report})
    return rows


def quarantined(settings: Settings) -> list[dict[str, Any]]:
    """Partitions in quarantine now (quality.quarantine.list_quarantined, tolerant of a damaged result file)."""
    from quality.quarantine import RESULT_FILE

    entries = []
    for folder in sorted(settings.quarantine_dir.glob("*/dt=*")):
        if not folder.is_dir():
            continue
        result = _read(folder / RESULT_FILE) or {}
        entries.append(
            {
                "table": folder.parent.name,
                "dt": folder.name.removeprefix("dt="),
                "quarantined_at": result.get("quarantined_at"),
                "reason": _failures(result.get("failures", [])) or result.get("_unreadable", ""),
            }
        )
    return entries


def latest_raw_day(settings: Settings) -> str | None:
    """The newest day with a raw events partition."""
    days = sorted(p.name.removeprefix("dt=") for p in (settings.raw_dir / "events").glob("dt=*") if p.is_dir())
    return days[-1] if days else None


def service_state(settings: Settings, timeout: float = 2.0) -> str:
    """Whether the ranking service answers at settings.serving.base_url: ready, up but not ready, or unreachable."""
    import httpx

    url = settings.serving.base_url
    try:
        ready = httpx.get(f"{url}/readyz", timeout=timeout)
    except httpx.HTTPError as err:
        return f"unreachable at {url} ({type(err).__name__})"
    if ready.status_code == 200:
        return f"ready at {url}"
    return f"up at {url}, not ready (/readyz {ready.status_code}: see /ready-details)"


def status(settings: Settings, days: int = 3) -> list[tuple[str, str]]:
    """``shoprank status``: the home's state as (what, value) rows, for a table."""
    held = quarantined(settings)
    current = [m for m in snapshots(settings) if m["current"]]
    best = champion(settings)
    k = settings.training.ndcg_k
    if best is None:
        champion_text = "none yet"
    else:
        ndcg = ((best["card"] or {}).get("metrics") or {}).get(f"model_ndcg@{k}")
        trained = f", trained {best['run_date']}" if best["run_date"] else ""
        champion_text = best["tag"] + trained + (f", holdout NDCG@{k} {ndcg:.4f}" if ndcg is not None else "")
    rows = [
        ("home", f"{settings.home_dir} (profile {settings.profile})"),
        ("latest raw day", latest_raw_day(settings) or "none"),
        (
            "quarantined partitions",
            "; ".join(f"{q['table']} dt={q['dt']}" for q in held) if held else "none",
        ),
        (
            "published snapshot",
            f"{current[-1].get('snapshot')} (published {current[-1].get('published_at')})" if current else "none",
        ),
        ("champion", champion_text),
    ]
    for run in timeline(settings, days):
        cells = []
        for gate in GATES:
            outcome = run.gates[gate]
            cells.append(
                f"{gate} {outcome.status}"
                + (f" ({outcome.reason[:80]})" if outcome.status in (REFUSED, QUARANTINED, ERROR) else "")
            )
        rows.append((f"gates {run.day}", ", ".join(cells)))
    rows.append(("pre-ranker", preranker_text(settings)))
    rows.append(("ranking service", service_state(settings)))
    return rows


def experiments(settings: Settings, now: Any = None) -> dict[str, Any]:
    """The online experiments (``shoprank experiment status``: serving/experiments.yaml with the operators' starts and
    stops), each marked running or not, with the latest daily report's verdict on it and that report's link
    (relative to the docs site). ``error`` holds why the file could not be read (the service then serves without
    experiments)."""
    from orchestration.experiments import status as experiments_status

    reports = sorted(_experiment_reports(settings).glob("????-??-??.json"))
    latest = _read(reports[-1]) if reports else None
    verdicts = {e.get("name"): e.get("decision") for e in (latest or {}).get("experiments", []) if "name" in e}
    answer: dict[str, Any] = {
        "report": f"experiments/{reports[-1].stem}.html" if reports else None,
        "report_day": reports[-1].stem if reports else None,
        "experiments": [],
        "error": None,
    }
    try:
        declared = experiments_status(settings, now)
    except (OSError, ValueError) as err:  # ExperimentConfigError is a ValueError naming the field
        return {**answer, "error": str(err)}
    for experiment in declared["experiments"]:
        answer["experiments"].append(
            {
                "name": experiment["name"],
                "layer": experiment["layer"],
                "running": experiment["running"],
                "start": experiment["start"],
                "stop": experiment["stop"],
                "arms": [f"{arm['name']} {arm['share']:.0%}" for arm in experiment["arms"]],
                "verdict": verdicts.get(experiment["name"]),
            }
        )
    return answer


def _experiment_reports(settings: Settings) -> Path:
    """Where `shoprank experiment report` writes (orchestration.experiments.report_dir)."""
    from orchestration.experiments import report_dir

    return report_dir(settings)
