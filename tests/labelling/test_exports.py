"""Label Studio exports are checked before anything reads them: bad ones stop with a message naming the problem."""

from __future__ import annotations

import copy

import pytest

from labelling.exports import ExportError, parse_export


def _export() -> list[dict]:
    return [
        {
            "id": 11,
            "data": {"pair_id": "kite|i000001", "query": "kite"},
            "annotations": [
                {
                    "id": 1,
                    "completed_by": 5,
                    "lead_time": 9.5,
                    "result": [{"from_name": "grade", "type": "choices", "value": {"choices": ["3 exact"]}}],
                },
                {"id": 2, "completed_by": 6, "was_cancelled": True, "result": []},
            ],
        }
    ]


def test_a_good_export_gives_one_judgement_per_annotation_and_skips_cancelled_ones():
    (judgement,) = parse_export(_export(), {11})
    assert (judgement.task_id, judgement.pair_id, judgement.labeller, judgement.grade) == (11, "kite|i000001", "5", 3)
    assert judgement.seconds == 9.5


def _broken(edit) -> list[dict]:
    export = copy.deepcopy(_export())
    edit(export[0])
    return export


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("id"), "has no 'id'"),
        (lambda t: t["data"].pop("pair_id"), "task 11: data.pair_id is missing"),
        (lambda t: t.pop("annotations"), "task 11: 'annotations' is missing"),
        (lambda t: t["annotations"][0].pop("completed_by"), "task 11: annotation 1 has no completed_by"),
        (lambda t: t["annotations"][0].pop("result"), "task 11: annotation 1 has no result"),
        (lambda t: t["annotations"][0]["result"][0]["value"].update(choices=["5 perfect"]), "not one of"),
        (lambda t: t["annotations"][0]["result"][0].update(from_name="other"), "has no 'grade' result"),
    ],
)
def test_an_export_missing_a_field_is_rejected_naming_the_task_and_field(edit, message):
    with pytest.raises(ExportError, match=message):
        parse_export(_broken(edit), {11})


def test_an_export_with_a_task_id_we_never_imported_is_rejected():
    with pytest.raises(ExportError, match="task 11 is unknown"):
        parse_export(_export(), {12, 13})
