"""The pipeline's deploy step: reloads a running service, and never fails the run when there is none."""

from __future__ import annotations

from pydantic import SecretStr

from serving.deploy import deploy
from tests.support.processes import free_port

from .conftest import ADMIN_TOKEN, ServingWorld


def _with(world: ServingWorld, url: str, token: str | None):  # noqa: ANN202
    serving = world.settings.serving.model_copy(update={"url": url, "admin_token": SecretStr(token) if token else None})
    return world.settings.model_copy(update={"serving": serving})


def test_deploy_reloads_the_running_service(server_url: str, serving_world: ServingWorld) -> None:
    result = deploy(_with(serving_world, server_url, ADMIN_TOKEN))
    assert result["status"] == "reloaded" and result["model_version"] == serving_world.model_tag


def test_deploy_reports_instead_of_failing(server_url: str, serving_world: ServingWorld) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    assert deploy(_with(serving_world, nobody, ADMIN_TOKEN))["status"] == "no service running"
    assert deploy(_with(serving_world, server_url, None))["status"] == "skipped"
    refused = deploy(_with(serving_world, server_url, "wrong-token"))
    assert refused["status"] == "refused" and refused["http_status"] == 403
