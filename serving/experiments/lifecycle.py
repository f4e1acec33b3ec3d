"""Starting and stopping experiments: operators' start/stop times, recorded in a state file under the home.

The versioned experiments file (serving/experiments.yaml) stays the source of truth for what an experiment is (its
layer, salt and arms); when it runs is an operator's act, so `shoprank experiment start|stop NAME` records it in
``settings.experiments_state_file``::

    {"experiments": {"v1-vs-v3": {"start": "2026-12-01T09:00:00+00:00", "stop": null}},
     "events": [{"action": "start", "experiment": "v1-vs-v3", "at": ..., "file_version": "2026.11.1"}, ...]}

Recorded times replace the declared start/stop when the file is loaded (config.load_experiments), before
validation: a start that would overlap another experiment of the same layer is refused, and the state is not
written. The service reads both on load, so a change takes effect on its next reload (POST /admin/reload).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class ExperimentStateError(ValueError):
    """A start/stop that cannot apply: unknown experiment, already running, not running."""


def read_state(state_file: Path | None) -> dict[str, Any]:
    if state_file is None or not Path(state_file).exists():
        return {"experiments": {}, "events": []}
    state = json.loads(Path(state_file).read_text())
    state.setdefault("experiments", {})
    state.setdefault("events", [])
    return dict(state)


def apply_state(raw: Any, state: Path | dict[str, Any] | None) -> Any:
    """The experiments file's parsed YAML with each recorded start/stop in place of the declared one. Names the
    state records that the file no longer declares are ignored (the file decides which experiments exist)."""
    recorded = (state if isinstance(state, dict) else read_state(state))["experiments"]
    if not recorded or not isinstance(raw, dict) or not isinstance(raw.get("experiments"), list):
        return raw
    experiments = []
    for experiment in raw["experiments"]:
        times = recorded.get(experiment.get("name")) if isinstance(experiment, dict) else None
        experiments.append({**experiment, "start": times["start"], "stop": times["stop"]} if times else experiment)
    return {**raw, "experiments": experiments}


@contextlib.contextmanager
def _locked(state_file: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write under an exclusive lock; the new state is written atomically (the service may read it)."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with state_file.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_state(state_file)
        yield state
        fd, tmp = tempfile.mkstemp(dir=state_file.parent, prefix=f".{state_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(state, handle, indent=2)
            os.chmod(tmp, 0o644)
            os.replace(tmp, state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _change(
    experiments_file: Path,
    state_file: Path,
    name: str,
    action: str,
    now: datetime | None,
    until: datetime | None = None,
) -> dict[str, Any]:
    from pydantic import ValidationError

    from serving.experiments.config import ExperimentsConfig, load_experiments

    now = now or datetime.now(UTC)
    with _locked(Path(state_file)) as state:
        config = load_experiments(experiments_file, state_file)
        known = {e.name: e for e in config.experiments}
        if name not in known:
            raise ExperimentStateError(
                f"unknown experiment {name!r}: {experiments_file} declares {sorted(known) or 'none'}"
            )
        experiment = known[name]
        running = experiment.running(now)
        if action == "start":
            if running:
                raise ExperimentStateError(f"{name} is already running (since {experiment.start or 'always'})")
            # A declared stop still ahead is kept; one already past would stop the experiment at once.
            stop = until or (experiment.stop if experiment.stop and experiment.stop > now else None)
            if stop is not None and stop <= now:
                raise ExperimentStateError(f"cannot start {name}: --until {stop.isoformat()} is not after now")
            times = {"start": now.isoformat(), "stop": stop.isoformat() if stop else None}
        else:
            if not running:
                raise ExperimentStateError(f"{name} is not running (start {experiment.start}, stop {experiment.stop})")
            times = {"start": experiment.start.isoformat() if experiment.start else None, "stop": now.isoformat()}
        candidate = {**state, "experiments": {**state["experiments"], name: times}}
        # Validate the file with the new times before recording them (e.g. a start overlapping the layer's other
        # experiment); ExperimentConfigError names the conflict and nothing is written.
        import yaml  # type: ignore[import-untyped]

        raw = yaml.safe_load(Path(experiments_file).read_text())
        try:
            ExperimentsConfig.model_validate(apply_state(raw, candidate))
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ExperimentStateError(f"cannot {action} {name}: {problems}") from None
        event = {"action": action, "experiment": name, "at": now.isoformat(), "file_version": config.version, **times}
        state["experiments"] = candidate["experiments"]
        state["events"] = [*state["events"], event]
    return {"experiment": name, "action": action, **times, "file_version": config.version, "state": str(state_file)}


def start_experiment(
    experiments_file: Path, state_file: Path, name: str, now: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Start ``name`` now, until ``until`` (default: a declared stop still ahead, else until stopped); refused if
    unknown, running, or overlapping another experiment of its layer."""
    return _change(experiments_file, state_file, name, "start", now, until)


def stop_experiment(experiments_file: Path, state_file: Path, name: str, now: datetime | None = None) -> dict[str, Any]:
    """Stop ``name`` now (its start stays recorded, so the report keeps analysing its window); refused if unknown
    or not running."""
    return _change(experiments_file, state_file, name, "stop", now)
