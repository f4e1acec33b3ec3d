"""Label Studio over its HTTP API (httpx, no SDK): the relevance project, tasks, labellers, annotations, export.

Each labeller is a Label Studio user the admin creates; their annotations are posted with ``completed_by`` set to
that user and ``lead_time`` (seconds spent), as the labelling UI would. Pre-labels are predictions with a model
version. The export is checked by :func:`labelling.exports.parse_export` before anything downstream reads it.
"""

from __future__ import annotations

from typing import Any

import httpx

from labelling.exports import GRADE_CHOICES, Judgement, parse_export

# The task shows the query, the item's title, category, price and an image placeholder; one 0-3 grade.
LABEL_CONFIG = """<View>
  <Header value="Query: $query"/>
  <Image name="image" value="$image" maxWidth="160px"/>
  <Text name="title" value="$title"/>
  <Text name="category" value="Category: $category"/>
  <Text name="price" value="Price: $price"/>
  <Choices name="grade" toName="title" choice="single" required="true" showInline="false">
{choices}
  </Choices>
</View>""".format(choices="\n".join(f'    <Choice value="{c}"/>' for c in GRADE_CHOICES))

GUIDELINES = """<h3>How relevant is this item to the shopper's search?</h3>
<p>Judge the item against what the query asks for, not whether you like it, its price or its photo.</p>
<ul>
<li><b>3 exact</b>: the item is what the query names (same product word, and the same adjective when the query
has one), and it is the product itself.</li>
<li><b>2 close</b>: the same product word but another adjective, or a review video / live deal of that product.</li>
<li><b>1 related</b>: the same kind of thing (category), another product ("boots" for "sneakers").</li>
<li><b>0 off-topic</b>: another category altogether.</li>
</ul>
<p>When unsure between two grades, pick the lower one. Some tasks are checks with a known answer.</p>"""

# A grey square: the simulator has no photos; the layout keeps the place a photo takes.
IMAGE_PLACEHOLDER = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='120' height='120'>"
    "<rect width='120' height='120' fill='%23ddd'/></svg>"
)


class StudioError(RuntimeError):
    """Label Studio answered with an error; the message carries its status and body."""


class StudioClient:
    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Token {token}"}, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> StudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise StudioError(f"{method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    # ---- project ---------------------------------------------------------------------------------------------
    def create_project(self, title: str) -> int:
        body = {
            "title": title,
            "description": "Search relevance of (query, item) pairs on a 0-3 scale",
            "label_config": LABEL_CONFIG,
            "expert_instruction": GUIDELINES,
            "show_instruction": True,
            "maximum_annotations": 10,  # overlap is decided by the adaptive rule, not by Label Studio
        }
        return int(self._call("POST", "/api/projects", json=body)["id"])

    def find_project(self, title: str) -> int | None:
        found = self._call("GET", "/api/projects", params={"title": title, "page_size": 100})
        for project in found.get("results", found) if isinstance(found, dict) else found:
            if project["title"] == title:
                return int(project["id"])
        return None

    # ---- tasks -----------------------------------------------------------------------------------------------
    def import_tasks(self, project_id: int, pairs: list[dict[str, Any]]) -> dict[str, int]:
        """Import one task per pair (``pair_id`` plus the shown fields); returns pair_id -> task id."""
        tasks = [{"data": {"image": IMAGE_PLACEHOLDER, **pair}} for pair in pairs]
        answer = self._call(
            "POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"}, json=tasks
        )
        ids = answer.get("task_ids") or []
        if len(ids) != len(pairs):
            raise StudioError(f"imported {len(pairs)} tasks, Label Studio returned {len(ids)} task ids")
        return {str(pair["pair_id"]): int(task_id) for pair, task_id in zip(pairs, ids, strict=True)}

    def add_prediction(self, task_id: int, grade: int, score: float, model_version: str) -> None:
        """A pre-label: the model's suggested grade, shown to the labeller in the task."""
        self._call(
            "POST",
            "/api/predictions",
            json={"task": task_id, "result": _grade_result(grade), "score": score, "model_version": model_version},
        )

    # ---- labellers and annotations ---------------------------------------------------------------------------
    def users(self) -> dict[int, str]:
        """User id -> email of everyone in the organisation (the export names labellers by id)."""
        users = self._call("GET", "/api/users", params={"page_size": 1000})
        return {int(u["id"]): str(u.get("email")) for u in (users if isinstance(users, list) else users["results"])}

    def ensure_user(self, email: str) -> int:
        for user_id, known in self.users().items():
            if known == email:
                return user_id
        username = email.split("@")[0]
        return int(self._call("POST", "/api/users", json={"email": email, "username": username})["id"])

    def annotate(self, task_id: int, grade: int, user_id: int, seconds: float) -> int:
        body = {"result": _grade_result(grade), "completed_by": user_id, "lead_time": round(float(seconds), 3)}
        return int(self._call("POST", f"/api/tasks/{task_id}/annotations", json=body)["id"])

    # ---- export ----------------------------------------------------------------------------------------------
    def export_raw(self, project_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON"}))

    def export(self, project_id: int, known_task_ids: set[int]) -> list[Judgement]:
        """Every annotation of the project, checked (see labelling.exports)."""
        return parse_export(self.export_raw(project_id), known_task_ids)


def _grade_result(grade: int) -> list[dict[str, Any]]:
    return [
        {
            "from_name": "grade",
            "to_name": "title",
            "type": "choices",
            "value": {"choices": [GRADE_CHOICES[int(grade)]]},
        }
    ]
