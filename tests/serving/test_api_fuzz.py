"""Property-based fuzzing of the real server against its own OpenAPI document (BentoML's ``GET /docs.json``).

schemathesis generates valid and invalid requests (positive and negative modes) for every operation of the document,
sends them over HTTP to the serving world's `bentoml serve`, and checks each answer: never a server error, a status
code the document lists, the documented content type, and a body that matches the documented schema. Bounded: at
most ``MAX_EXAMPLES`` examples per operation and mode, derandomized (a failure reproduces).

schemathesis's pytest integration (``schemathesis.pytest.from_fixture``) fails on pytest 9 (it reads a private
``_nodeid``), so each operation's strategy is driven by hypothesis directly (``APIOperation.as_strategy``).
"""

from __future__ import annotations

from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.timeout(300)

MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OURS = {"POST /rank", "POST /explain", "POST /admin/reload", "GET /model", "GET /ready-details"}


def _fuzz(operation: Any, mode: GenerationMode, base_url: str) -> None:
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,  # a request's latency is not under test here
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)

    run()


def test_api_answers_as_its_openapi_document_says(server_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server_url}/docs.json", timeout=10)
    results = list(schema.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)], "the document has operations schemathesis cannot read"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert {operation.label for operation in operations} >= OURS
    failures = {}
    for operation in operations:
        for mode in GenerationMode:
            try:
                _fuzz(operation, mode, server_url)
            except hypothesis.errors.Unsatisfiable:  # nothing to make invalid (no body, free-form headers)
                assert mode is GenerationMode.NEGATIVE, operation.label
            # collected, so that every operation is fuzzed, then all failures reported (schemathesis raises its
            # failures as a BaseExceptionGroup)
            except (Exception, BaseExceptionGroup) as exc:
                failures[f"{operation.label} ({mode})"] = exc
    assert not failures, "\n\n".join(f"{label}: {exc}" for label, exc in failures.items())
