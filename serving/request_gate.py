"""The request gate: an API body is checked before BentoML parses it (an ASGI middleware on the service).

BentoML 1.4 answers some malformed bodies with a 500 (a ``multipart/form-data`` body without a boundary: its form
parser's error is not turned into a 4xx), documents its 400 body with a string ``detail`` but sends pydantic's list,
and logs every invalid body as an ERROR with a full traceback. The gate answers bad bodies itself, before BentoML:
- 415 when the content type is not JSON (BentoML would pick its multipart, form or pickle parser);
- 413 when the body is larger than ``max_bytes``;
- 400 when the body is not JSON or not a valid request model, naming each field and what is wrong.
Every answer has the OpenAPI document's error shape (``InvalidArgument``: ``error`` and ``detail`` are strings),
plus ``errors``, pydantic's list (``loc``, ``msg``, ``type``) for programs. Each rejection is ONE warning line in the
log, without a traceback. A valid body reaches BentoML unchanged (which validates it again: microseconds).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

log = logging.getLogger("shoprank.serving")

Scope = dict[str, Any]
Message = dict[str, Any]

# Errors named in the ``detail`` string and listed in ``errors`` (a list of 2,000 bad ids would be 2,000 errors).
MAX_DETAIL_ERRORS = 5
MAX_LISTED_ERRORS = 20


class RejectedRequest(Exception):
    def __init__(self, status: int, error: str, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.errors = status, error, detail, errors or []

    def body(self) -> bytes:
        payload: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.errors:
            payload["errors"] = self.errors
        return json.dumps(payload).encode()


def is_json(content_type: str | None) -> bool:
    """No content type (BentoML reads JSON then), ``application/json`` or a ``+json`` type, parameters ignored."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_body(model: type[BaseModel], body: bytes) -> None:
    """Raise :class:`RejectedRequest` (400) when ``body`` is not a valid ``model`` in JSON."""
    try:
        model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        named = [f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in errors]
        more = f" (and {len(named) - MAX_DETAIL_ERRORS} more)" if len(named) > MAX_DETAIL_ERRORS else ""
        detail = "; ".join(named[:MAX_DETAIL_ERRORS]) + more
        listed = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors[:MAX_LISTED_ERRORS]]
        raise RejectedRequest(400, f"invalid request: {detail}", detail, listed) from None


class RequestGate:
    """ASGI middleware: POST bodies of the ``models`` routes are checked (see the module docstring)."""

    def __init__(self, app: Any, models: Mapping[str, type[BaseModel]], max_bytes: int) -> None:
        self.app, self.models, self.max_bytes = app, dict(models), max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        model = self.models.get(scope.get("path", "")) if scope["type"] == "http" else None
        if model is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._checked_body(scope, receive, model)
        except RejectedRequest as rejected:
            log.warning("rejected POST %s: %d %s", scope["path"], rejected.status, rejected.error)
            await _answer(send, rejected)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _checked_body(self, scope: Scope, receive: Any, model: type[BaseModel]) -> bytes:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        content_type = headers.get("content-type")
        if not is_json(content_type):
            raise RejectedRequest(
                415,
                f"unsupported content-type {content_type!r}: send the request body as application/json",
                "content-type must be application/json",
            )
        too_large = RejectedRequest(
            413, f"request body larger than {self.max_bytes} bytes", f"body: at most {self.max_bytes} bytes"
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        check_body(model, body)
        return body


def _replay(body: bytes, receive: Any) -> Any:
    """A ``receive`` that gives the already-read body once, then waits on the real one (for the disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(send: Any, rejected: RejectedRequest) -> None:
    body = rejected.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": rejected.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
