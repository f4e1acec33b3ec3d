"""The model registry: every candidate goes into the BentoML model store; the champion is a pointer we own.

BentoML labels are fixed once a model is saved, so "which model serves" cannot be a label. It is
``<home>/models/registry.json``::

    {"champion": "shoprank_ranker:abc", "stack": ["shoprank_ranker:old", "shoprank_ranker:abc"],
     "events": [{"action": "promote", "tag": ..., "at": ..., "reasons": [...]}, ...]}

``stack`` is the line of champions (the last one serves); rollback pops it. Writes are atomic (temp file +
rename), so a reader (serving's /admin/reload) never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoprank.model_bundle import champion_tag, read_registry, registry_path
from shoprank.settings import Settings, apply_runtime_env
from training.train import CARD_FILE, CTR_MODEL_FILE, CVR_MODEL_FILE, HOLDOUT_FILE, MODEL_FILE, REPORT_FILE

log = logging.getLogger(__name__)

REGISTERED_FILE = "registered.json"


# ---- the model store ---------------------------------------------------------------------------------------------
def register_candidate(settings: Settings, candidate: Path) -> dict[str, Any]:
    """Save the candidate at ``candidate`` to the model store as a challenger; return its tag and metrics.

    The ranker is the saved model (``.predict`` over ``feature_columns``); the CTR and CVR models, when trained,
    ride along as custom objects ``ctr_model`` / ``cvr_model`` (metadata ``objective`` says which score serves).
    """
    apply_runtime_env(settings)
    import bentoml

    card = _freeze_artifacts(settings, candidate, json.loads((candidate / CARD_FILE).read_text()))
    ranker, classifiers = load_candidate_models(candidate)
    custom_objects = {f"{name}_model": model for name, model in classifiers.items()}
    saved = bentoml.xgboost.save_model(
        settings.training.model_name,
        ranker,
        labels={
            "feature_service": card["feature_service"],
            "run_date": card["run_date"],
            "objective": card.get("objective", "ndcg"),
            "role": "challenger",
        },
        metadata=model_store_metadata(card),
        custom_objects=custom_objects or None,
    )
    tag = str(saved.tag)
    (candidate / REGISTERED_FILE).write_text(json.dumps({"tag": tag}))
    log.info("registered %s (challenger) with metrics %s", tag, {k: card["metrics"].get(k) for k in _headline(card)})
    return {"tag": tag, "metrics": card["metrics"], "report": card.get("report_path")}


def load_candidate_models(candidate: Path) -> tuple[Any, dict[str, Any]]:
    """A candidate folder's saved models: the ranker, and the CTR / CVR models trained beside it (keys ``ctr``,
    ``cvr``; absent when not trained)."""
    from xgboost import XGBClassifier, XGBRanker

    ranker = XGBRanker()
    ranker.load_model(candidate / MODEL_FILE)
    classifiers: dict[str, Any] = {}
    for name, file in (("ctr", CTR_MODEL_FILE), ("cvr", CVR_MODEL_FILE)):
        if (candidate / file).exists():
            classifiers[name] = XGBClassifier()
            classifiers[name].load_model(candidate / file)
    return ranker, classifiers


def model_store_metadata(card: dict[str, Any]) -> dict[str, Any]:
    """The card as BentoML accepts it: no None anywhere (a metric undefined on a day, e.g. a slice without a click,
    is left out rather than stored as null, which BentoML's metadata validator rejects)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [clean(v) for v in value if v is not None]
        return value

    return clean(card)


def _freeze_artifacts(settings: Settings, candidate: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Copy the holdout rows and the report out of the candidate folder (the next training of the same day
    overwrites it) into ``<home>/models/artifacts/<day>__<token>/``; the card then points there for good."""
    out = settings.home_dir / "models" / "artifacts" / f"{card['run_date']}__{secrets.token_hex(4)}"
    out.mkdir(parents=True)
    for key, file in (("holdout_path", HOLDOUT_FILE), ("report_path", REPORT_FILE)):
        if (candidate / file).exists():
            shutil.copy2(candidate / file, out / file)
            card[key] = str(out / file)
    (out / CARD_FILE).write_text(json.dumps(card, indent=2))
    return card


def _headline(card: dict[str, Any]) -> list[str]:
    return [k for k in card["metrics"] if k.endswith("_ndcg@10") and not k.startswith("slice_")]


def registered_tag(candidate: Path) -> str:
    path = candidate / REGISTERED_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the register step first")
    return str(json.loads(path.read_text())["tag"])


def list_models(settings: Settings) -> list[dict[str, Any]]:
    """Registered models, newest first, with their holdout metrics and which one is champion."""
    apply_runtime_env(settings)
    import bentoml

    champion = champion_tag(settings)
    models = sorted(bentoml.models.list(settings.training.model_name), key=lambda m: m.info.creation_time)
    return [
        {
            "tag": str(m.tag),
            "champion": str(m.tag) == champion,
            "created": m.info.creation_time.isoformat(),
            "metrics": m.info.metadata.get("metrics"),
            "train_window": m.info.metadata.get("train_window"),
            "holdout_window": m.info.metadata.get("holdout_window"),
            "warnings": m.info.metadata.get("warnings", []),
            "report": m.info.metadata.get("report_path"),
        }
        for m in reversed(models)
    ]


# ---- the champion pointer (read in shoprank/model_bundle.py, written here under a lock) ------------------------
def _write_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the serving process reads it
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[dict[str, Any]]:
    """Read-modify-write of the registry under an exclusive lock (the DAG and an operator may act at once)."""
    lock_path = registry_path(settings).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registry = read_registry(settings)
        yield registry
        _write_atomic(registry_path(settings), registry)


def _event(action: str, tag: str | None, **details: Any) -> dict[str, Any]:
    return {"action": action, "tag": tag, "at": datetime.now(UTC).isoformat(), **details}


def set_champion(settings: Settings, tag: str, reasons: list[str]) -> dict[str, Any]:
    """Make ``tag`` the champion (pushed on the stack; the previous one stays for rollback)."""
    with _locked(settings) as registry:
        previous = registry.get("champion")
        if previous != tag:
            registry["stack"] = [*registry.get("stack", []), tag]
        registry["champion"] = tag
        registry["events"] = [*registry.get("events", []), _event("promote", tag, previous=previous, reasons=reasons)]
    log.info("champion: %s -> %s (%s)", previous, tag, "; ".join(reasons))
    return {"champion": tag, "previous": previous}


def record_refusal(settings: Settings, tag: str, reasons: list[str]) -> None:
    with _locked(settings) as registry:
        event = _event("refuse", tag, champion=registry.get("champion"), reasons=reasons)
        registry["events"] = [*registry.get("events", []), event]


def rollback(settings: Settings, reason: str = "manual rollback") -> dict[str, Any]:
    """Retire the current champion and restore the one before it."""
    with _locked(settings) as registry:
        stack = list(registry.get("stack", []))
        if len(stack) < 2:
            raise ValueError(f"nothing to roll back to: the champion history is {stack}")
        retired = stack.pop()
        registry.update(stack=stack, champion=stack[-1])
        event = _event("rollback", stack[-1], retired=retired, reasons=[reason])
        registry["events"] = [*registry.get("events", []), event]
    log.warning("rollback: champion %s retired, %s restored (%s)", retired, stack[-1], reason)
    return {"champion": stack[-1], "retired": retired}
