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


# ---- the cluster profile: the same processes as `make airflow PROFILE=cluster`, settings by their real names ----

AIRFLOW_COMPONENTS = {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
COMPOSE_SECRETS = {"POSTGRES_PASSWORD": "x", "AIRFLOW_ADMIN_PASSWORD": "x", "SERVING_ADMIN_TOKEN": "x"}


def _deployments(name: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _documents(INFRA / "k8s" / name) if d["kind"] == "Deployment"}


def _after_compat(command: list[str] | str) -> list[str]:
    """The airflow arguments of a process run as `python -m orchestration.celery_compat <args>`."""
    import shlex

    words = shlex.split(command) if isinstance(command, str) else command
    return words[words.index("orchestration.celery_compat") + 1 :]


def _cluster_settings(monkeypatch: pytest.MonkeyPatch):
    """Settings as a cluster pod sees them: built from the ConfigMap's variables."""
    from shoprank.settings import Settings

    for key, value in _documents(INFRA / "k8s" / "config.yaml")[0]["data"].items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def _rendered_compose(profile: str) -> dict:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is installed by `make test` (scripts/system-deps.sh)"
    env = {**os.environ, **COMPOSE_SECRETS, "SHOPRANK_PROFILE": profile, "COMPOSE_PROFILES": profile}
    done = subprocess.run(
        [compose, "-f", str(INFRA / "docker-compose.yaml"), "config"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _setting_exists(variable: str) -> bool:
    """Whether SHOPRANK_A__B names settings field a.b (pydantic-settings: prefix SHOPRANK_, nested with __)."""
    from pydantic import BaseModel

    from shoprank.settings import Settings

    model: type[BaseModel] = Settings
    parts = variable.removeprefix("SHOPRANK_").lower().split("__")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if depth < len(parts) - 1:
            annotation = field.annotation
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_setting_lookup_tells_a_real_setting_from_a_misspelt_one():
    assert _setting_exists("SHOPRANK_AIRFLOW__WORKER_CONCURRENCY")
    assert not _setting_exists("SHOPRANK_AIRFLOW__WORKERS_CONCURRENCY")
    assert not _setting_exists("SHOPRANK_PROFILE__X")


def test_every_shoprank_variable_the_manifests_set_is_a_setting():
    import re

    config = INFRA / "k8s" / "config.yaml"
    variables = set(_documents(config)[0]["data"])
    variables |= set(re.findall(r"--from-literal=(SHOPRANK_\w+)=", config.read_text()))  # the Secret's keys
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        variables |= set(re.findall(r"key: (SHOPRANK_\w+)", path.read_text()))  # secretKeyRef
    for profile in ("services", "cluster"):
        for service in _rendered_compose(profile)["services"].values():
            variables |= {key for key in service.get("environment", {}) if key.startswith("SHOPRANK_")}
    assert "SHOPRANK_SERVICES__POSTGRES_PASSWORD" in variables
    unknown = sorted(v for v in variables if not _setting_exists(v))
    assert not unknown, f"not fields of shoprank/settings.py: {unknown}"


def test_kubernetes_runs_airflow_celery_as_make_airflow_cluster_does(monkeypatch: pytest.MonkeyPatch):
    from orchestration.airflow_ops import celery_worker_commands

    settings = _cluster_settings(monkeypatch)
    assert settings.profile == "cluster" and settings.airflow_executor == "CeleryExecutor"
    deployments = _deployments("airflow.yaml")
    assert set(deployments) >= AIRFLOW_COMPONENTS
    workers = {name: d for name, d in deployments.items() if name.startswith("airflow-worker-")}
    commands = {
        name: _after_compat(d["spec"]["template"]["spec"]["containers"][0]["args"][0]) for name, d in workers.items()
    }
    expected = [_after_compat(command) for command in celery_worker_commands(settings)]
    assert sorted(commands.values()) == sorted(expected)
    dbt = next(name for name, words in commands.items() if words[words.index("--queues") + 1] == "dbt")
    assert workers[dbt]["spec"]["replicas"] == 1, "the dbt worker is the warehouse's single writer"
    for deployment in deployments.values():
        env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "shoprank-config"}} in env_from
        assert {"secretRef": {"name": "shoprank-secrets"}} in env_from
    services = {
        d["metadata"]["name"]
        for d in _documents(INFRA / "k8s" / "postgres.yaml") + _documents(INFRA / "k8s" / "redis.yaml")
        if d["kind"] == "Service"
    }
    assert settings.services.postgres_host.split(".")[0] in services
    assert settings.services.redis_host.split(".")[0] in services


def test_dask_workers_reach_the_scheduler_service():
    deployments = _deployments("dask.yaml")
    scheduler_service = next(d for d in _documents(INFRA / "k8s" / "dask.yaml") if d["kind"] == "Service")
    port = next(p["port"] for p in scheduler_service["spec"]["ports"] if p["name"] == "scheduler")
    worker = deployments["dask-worker"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert worker[:2] == ["dask", "worker"]
    assert worker[2] == f"tcp://{scheduler_service['metadata']['name']}.shoprank.svc.cluster.local:{port}"
    scheduler = deployments["dask-scheduler"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert scheduler[scheduler.index("--port") + 1] == str(port)
    assert deployments["dask-worker"]["spec"]["replicas"] >= 2


def test_the_cluster_profile_trains_on_the_deployed_dask_scheduler(monkeypatch: pytest.MonkeyPatch):
    """Kubernetes: the ConfigMap's scheduler address is dask.yaml's Service. Compose: the worker that runs the train
    task (the training queue) has the dask-scheduler's address; the services profile, without Dask, fits in one
    process."""
    settings = _cluster_settings(monkeypatch)
    service = next(d for d in _documents(INFRA / "k8s" / "dask.yaml") if d["kind"] == "Service")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "scheduler")
    assert (
        settings.training.dask_scheduler_address
        == f"tcp://{service['metadata']['name']}.shoprank.svc.cluster.local:{port}"
    )

    cluster = _rendered_compose("cluster")["services"]
    scheduler = cluster["dask-scheduler"]["command"]
    trainer = cluster["airflow-worker-training"]
    address = trainer["environment"]["SHOPRANK_TRAINING__DASK_SCHEDULER_ADDRESS"]
    assert address == f"tcp://dask-scheduler:{scheduler[scheduler.index('--port') + 1]}"
    assert "dask-scheduler" in trainer["depends_on"]
    queues = trainer["command"][-1].split("--queues ")[1].split()[0].split(",")
    assert settings.airflow.training_queue in queues
    services = _rendered_compose("services")["services"]
    everywhere = [s for s in services.values() if "cluster" not in s.get("profiles", [])]
    variable = "SHOPRANK_TRAINING__DASK_SCHEDULER_ADDRESS"
    assert everywhere and not any(variable in s.get("environment", {}) for s in everywhere)


def test_compose_cluster_profile_adds_the_celery_workers_and_dask(monkeypatch: pytest.MonkeyPatch):
    from orchestration.airflow_ops import celery_worker_commands
    from shoprank.settings import Settings

    services = _rendered_compose("services")["services"]
    cluster = _rendered_compose("cluster")["services"]
    only_cluster = {name for name, service in cluster.items() if "cluster" in service.get("profiles", [])}
    assert only_cluster == {
        "airflow-worker-dbt",
        "airflow-worker-training",
        "dask-scheduler",
        "dask-worker",
        "spark-master",
        "spark-worker",
    }
    assert set(services) >= AIRFLOW_COMPONENTS
    assert all(
        s["environment"]["SHOPRANK_PROFILE"] == "cluster"
        for s in cluster.values()
        if "environment" in s and "SHOPRANK_HOME" in s["environment"]
    )
    assert services["airflow-scheduler"]["environment"]["SHOPRANK_PROFILE"] == "services"
    monkeypatch.setenv("SHOPRANK_PROFILE", "cluster")
    expected = sorted(_after_compat(command) for command in celery_worker_commands(Settings()))
    workers = sorted(
        _after_compat(cluster[name]["command"][-1])
        for name in only_cluster
        if "worker-" in name and name.startswith("airflow")
    )
    assert workers == expected
    dask_worker = cluster["dask-worker"]["command"]
    assert (
        dask_worker[2]
        == "tcp://dask-scheduler:"
        + cluster["dask-scheduler"]["command"][cluster["dask-scheduler"]["command"].index("--port") + 1]
    )


# ---- the cluster profile's warehouse: dbt-spark's driver in the dbt worker, a Spark standalone master + workers ----


def _dockerfile_env() -> dict[str, str]:
    """The variables infra/Dockerfile's one-line ENV instructions set (what every container of the image has)."""
    import shlex

    env: dict[str, str] = {}
    for line in (INFRA / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV ") and not line.rstrip().endswith("\\"):
            env |= dict(word.split("=", 1) for word in shlex.split(line[4:]))
    return env


def _bytes(size: str) -> int:
    """A JVM memory size ("6g", "512m") in bytes."""
    return int(size[:-1]) * {"k": 2**10, "m": 2**20, "g": 2**30}[size[-1].lower()]


def _container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _home_claim(deployment: dict, home: Path) -> str:
    """The claim of the volume mounted at ``home`` (the shared home every ShopRank pod mounts)."""
    (mount,) = [m for m in _container(deployment)["volumeMounts"] if Path(m["mountPath"]) == home]
    spec = deployment["spec"]["template"]["spec"]
    return next(v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if v["name"] == mount["name"])


def test_kubernetes_builds_the_warehouse_on_the_deployed_spark_master(monkeypatch: pytest.MonkeyPatch):
    """The ConfigMap selects the spark target and spark.yaml's master Service; the master and workers run the
    image's Spark venv (the one the settings name), the workers mount the home the executors write under (the dbt
    worker's claim), the driver advertises its pod IP, and an executor fits a worker."""
    settings = _cluster_settings(monkeypatch)
    assert settings.dbt_target_name == "spark"
    service = next(d for d in _documents(INFRA / "k8s" / "spark.yaml") if d["kind"] == "Service")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "master")
    url = f"spark://{service['metadata']['name']}.shoprank.svc.cluster.local:{port}"
    assert settings.spark.master == url

    spark = _deployments("spark.yaml")
    master, worker = _container(spark["spark-master"])["command"], _container(spark["spark-worker"])["command"]
    assert master[1] == "org.apache.spark.deploy.master.Master" and master[master.index("--port") + 1] == str(port)
    assert worker[1:3] == ["org.apache.spark.deploy.worker.Worker", url]
    assert spark["spark-worker"]["spec"]["replicas"] >= 2
    image = _dockerfile_env()
    assert settings.spark.venv == Path(image["SHOPRANK_SPARK__VENV"])
    assert image["SPARK_HOME"].startswith(f"{settings.spark.venv}/")
    assert "shoprank spark-install" in (INFRA / "Dockerfile").read_text()
    assert master[0] == worker[0] == f"{settings.spark.venv}/bin/spark-class"
    for command, deployment in ((master, spark["spark-master"]), (worker, spark["spark-worker"])):
        assert command[command.index("--host") + 1] == "$(POD_IP)"
        assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in _container(deployment)[
            "env"
        ]

    dbt = _deployments("airflow.yaml")["airflow-worker-dbt"]
    assert _home_claim(spark["spark-worker"], settings.home_dir) == _home_claim(dbt, settings.home_dir)
    assert {"name": "SPARK_LOCAL_HOSTNAME", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in _container(
        dbt
    )["env"]
    chart = yaml.safe_load(yaml.safe_load((INFRA / "helm" / "airflow-values.yaml").read_text())["extraEnv"])
    assert {"name": "SPARK_LOCAL_HOSTNAME", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in chart
    assert _bytes(settings.spark.executor_memory) <= _bytes(worker[worker.index("--memory") + 1])
    assert _bytes(settings.spark.driver_memory) < _bytes(_container(dbt)["resources"]["limits"]["memory"][:-1])


def test_compose_cluster_profile_builds_the_warehouse_on_its_spark_master(monkeypatch: pytest.MonkeyPatch):
    """Compose: the dbt worker's settings select the spark target and the spark-master service, the workers join
    that master and mount the home; on the services profile the target stays PostgreSQL."""
    from shoprank.settings import Settings

    cluster = _rendered_compose("cluster")["services"]
    master = cluster["spark-master"]["command"]
    url = f"spark://spark-master:{master[master.index('--port') + 1]}"
    dbt = cluster["airflow-worker-dbt"]
    assert "spark-master" in dbt["depends_on"]
    assert dbt["environment"]["SPARK_LOCAL_HOSTNAME"] == "airflow-worker-dbt"  # executors reach the driver by it
    worker = cluster["spark-worker"]["command"][-1]
    assert f"org.apache.spark.deploy.worker.Worker {url} " in worker
    assert master[0] == worker.split()[1] == f"{_dockerfile_env()['SHOPRANK_SPARK__VENV']}/bin/spark-class"
    home = dbt["environment"]["SHOPRANK_HOME"]
    assert any(volume.split(":")[1] == home for volume in cluster["spark-worker"]["volumes"])

    seen = {**_dockerfile_env(), **dbt["environment"]}  # as the dbt worker's container sees them
    for key, value in seen.items():
        if key.startswith("SHOPRANK_"):
            monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.profile == "cluster" and settings.dbt_target_name == "spark" and settings.spark.master == url
    worker_memory = worker.split("--memory ")[1].split()[0]
    assert _bytes(settings.spark.executor_memory) <= _bytes(worker_memory)

    scheduler = _rendered_compose("services")["services"]["airflow-scheduler"]
    for key, value in scheduler["environment"].items():
        if key.startswith("SHOPRANK_"):
            monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("SHOPRANK_SPARK__MASTER")
    assert Settings().dbt_target_name == "postgres"
