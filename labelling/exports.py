"""Label Studio's JSON export, checked: every task known, every annotation a grade from the scale, by a labeller.

A bad export stops here with a message naming the task and the field, before aggregation or a model reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GRADE_CHOICES = ("0 off-topic", "1 related", "2 close", "3 exact")


class ExportError(ValueError):
    """The export is not what the relevance project produces; the message says which task and field."""


@dataclass(frozen=True)
class Judgement:
    task_id: int
    pair_id: str
    labeller: str
    grade: int
    seconds: float


def _labeller(annotation: dict[str, Any], task_id: int) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if who in (None, ""):
        raise ExportError(f"task {task_id}: annotation {annotation.get('id')} has no completed_by (labeller)")
    return str(who)


def _grade(annotation: dict[str, Any], task_id: int) -> int:
    results = annotation.get("result")
    if not isinstance(results, list) or not results:
        raise ExportError(f"task {task_id}: annotation {annotation.get('id')} has no result")
    for item in results:
        if item.get("from_name") == "grade":
            choices = (item.get("value") or {}).get("choices") or []
            if len(choices) != 1 or choices[0] not in GRADE_CHOICES:
                raise ExportError(f"task {task_id}: grade {choices!r} is not one of {list(GRADE_CHOICES)}")
            return GRADE_CHOICES.index(choices[0])
    raise ExportError(f"task {task_id}: annotation {annotation.get('id')} has no 'grade' result")


def parse_export(tasks: Iterable[dict[str, Any]], known_task_ids: set[int]) -> list[Judgement]:
    """Judgements of an export; raises :class:`ExportError` on a task id not imported by us, a task without
    ``pair_id``, an annotation without a labeller or a grade. Cancelled (skipped) annotations are left out."""
    out: list[Judgement] = []
    for task in tasks:
        if not isinstance(task, dict) or "id" not in task:
            raise ExportError(f"an exported task has no 'id': {str(task)[:200]}")
        task_id = int(task["id"])
        if task_id not in known_task_ids:
            raise ExportError(f"task {task_id} is unknown: it was not imported by this labelling run")
        pair_id = (task.get("data") or {}).get("pair_id")
        if not pair_id:
            raise ExportError(f"task {task_id}: data.pair_id is missing")
        if "annotations" not in task:
            raise ExportError(f"task {task_id}: 'annotations' is missing")
        for annotation in task["annotations"]:
            if annotation.get("was_cancelled"):
                continue
            seconds = annotation.get("lead_time")
            out.append(
                Judgement(
                    task_id=task_id,
                    pair_id=str(pair_id),
                    labeller=_labeller(annotation, task_id),
                    grade=_grade(annotation, task_id),
                    seconds=float(seconds) if seconds is not None else float("nan"),
                )
            )
    return out
