"""The cluster path is validated, not just written: manifests against Kubernetes' schemas, compose by its CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
MANIFESTS = sorted((INFRA / "k8s").glob("*.yaml"))


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifests_validate_strictly_against_the_schema(path: Path):
    import kubernetes_validate

    for document in _documents(path):
        kubernetes_validate.validate(document, desired_version="1.33", strict=True)


def test_a_broken_manifest_is_caught():
    import kubernetes_validate

    deployment = next(d for d in _documents(INFRA / "k8s" / "ranker.yaml") if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, desired_version="1.33", strict=True)


def test_every_workload_takes_its_settings_from_the_shared_config_and_secret():
    deployment = next(d for d in _documents(INFRA / "k8s" / "ranker.yaml") if d["kind"] == "Deployment")
    env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": "shoprank-config"}} in env_from
    assert {"secretRef": {"name": "shoprank-secrets"}} in env_from
    config = _documents(INFRA / "k8s" / "config.yaml")[0]
    assert config["data"]["SHOPRANK_PROFILE"] == "cluster"
    assert not any("PASSWORD" in key or "TOKEN" in key for key in config["data"]), "secrets belong in the Secret"


def test_airflow_chart_values_use_a_distributed_executor_and_an_external_database():
    values = yaml.safe_load((INFRA / "helm" / "airflow-values.yaml").read_text())
    assert values["executor"] in {"KubernetesExecutor", "CeleryExecutor", "CeleryKubernetesExecutor"}
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"]


def test_compose_file_is_valid_and_publishes_only_on_loopback():
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is installed by `make test` (scripts/system-deps.sh)"
    env = {**os.environ, "POSTGRES_PASSWORD": "x", "AIRFLOW_ADMIN_PASSWORD": "x", "SERVING_ADMIN_TOKEN": "x"}
    done = subprocess.run(
        [compose, "-f", str(INFRA / "docker-compose.yaml"), "config"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    for name, service in rendered["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_compose_refuses_to_start_without_its_secrets():
    compose = shutil.which("docker-compose")
    assert compose
    env = {k: v for k, v in os.environ.items() if k not in {"POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"}}
    done = subprocess.run(
        [compose, "-f", str(INFRA / "docker-compose.yaml"), "config"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr
