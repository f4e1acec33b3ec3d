"""The pipeline's deploy step: ask the running ranking service to load the current champion (POST /admin/reload).

Never fails the run because of the service: no service listening, no admin token configured, a refused token or
a reload that kept the previous model are all reported in the step's summary (the XCom) and logged.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from shoprank.settings import Settings

log = logging.getLogger(__name__)


def deploy(settings: Settings, timeout: float = 60.0) -> dict[str, Any]:
    url = settings.serving.base_url
    token = settings.serving.admin_token
    if token is None or not token.get_secret_value():
        log.warning("deploy skipped: SHOPRANK_SERVING__ADMIN_TOKEN is not set")
        return {"status": "skipped", "detail": "no admin token configured", "url": url}
    try:
        response = httpx.post(
            f"{url}/admin/reload",
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            timeout=timeout,
        )
    except httpx.TransportError as exc:
        log.info("deploy: no service running at %s (%s)", url, exc)
        return {"status": "no service running", "url": url}
    if response.status_code != 200:
        log.error("deploy: %s answered %s: %s", url, response.status_code, response.text[:500])
        return {"status": "refused", "http_status": response.status_code, "url": url}
    body = response.json()
    status = "reloaded" if body.get("reloaded") else "kept previous model"
    (log.info if body.get("reloaded") else log.error)("deploy: %s (%s)", status, body)
    return {"status": status, "url": url, **body}
