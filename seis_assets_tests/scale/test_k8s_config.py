"""The shipped Kubernetes deployment (deploy/k8s/) checked against Dagster's and dagster-k8s's own config schemas,
and the Kubernetes Jobs it would create built with dagster-k8s (which checks them against the Kubernetes API
models): a misspelled key fails here, not on the cluster."""

import copy
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from seis_assets.assets import feature_step_k8s_tag
from seis_assets.definitions import ALL_ASSETS, build_resources
from seis_assets.executors import executor_from_env
from seis_assets.jobs import ingest_job, predict_incoming_job, recluster_job

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
PG_ENV = {"DAGSTER_PG_HOST": "postgres", "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "secret",
          "DAGSTER_PG_DB": "dagster"}


@pytest.fixture(autouse=True)
def _live_instance():
    """Resolving jobs reads the current instance's defs-state storage; a module-scoped instance of an earlier test
    module (closed by now) can leave a dead one behind, so each test here resolves under its own live instance."""
    with dg.instance_for_test():
        yield


@pytest.fixture
def pg_env(monkeypatch):
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)


def _instance_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())


def _validate_instance(config: dict, folder: Path) -> None:
    """What `dagster` does when it loads the instance, plus the class configs it only checks on first use."""
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config))
    dagster_instance_config(str(folder))  # the instance schema: storage (postgres), run_monitoring, ...
    for section, cls in (("run_launcher", K8sRunLauncher), ("run_coordinator", QueuedRunCoordinator)):
        assert config[section]["class"] == cls.__name__
        result = process_config(cls.config_type(), config[section]["config"])
        if not result.success:
            raise DagsterInvalidConfigError(f"{section} config is invalid", result.errors, config[section])


def test_instance_config_is_valid(pg_env, tmp_path):
    config = _instance_yaml()
    _validate_instance(config, tmp_path)
    assert config["run_launcher"]["module"] == "dagster_k8s"
    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["config"]["tag_concurrency_limits"] == [{"key": "seis_assets/heavy", "limit": 1}]
    # the run pods' resources would build a valid Kubernetes Job
    launcher = config["run_launcher"]["config"]
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image="seis-assets:test", dagster_home=launcher["dagster_home"],
                            instance_config_map=launcher["instance_config_map"]),
        ["dagster", "api", "execute_run"], "run-pod",
        user_defined_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher["run_k8s_config"]),
    )
    assert job.spec.template.spec.containers[0].resources.limits == {"memory": "4Gi"}


@pytest.mark.parametrize(
    "section, path",
    [
        ("run_launcher", ["config", "job_namespce"]),  # misspelled key of the run launcher
        ("run_coordinator", ["config", "max_concurent_runs"]),
        ("storage", ["postgres", "postgres_db", "hostnam"]),
        ("run_monitoring", ["start_timeout_second"]),
    ],
)
def test_a_broken_instance_key_fails(pg_env, tmp_path, section, path):
    config = copy.deepcopy(_instance_yaml())
    node = config[section]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "x"
    with pytest.raises(DagsterInvalidConfigError):
        _validate_instance(config, tmp_path)


def _k8s_jobs(monkeypatch, config_file: Path | None = None) -> dg.Definitions:
    monkeypatch.setenv("SEIS_EXECUTOR", "k8s")
    if config_file:
        monkeypatch.setenv("SEIS_K8S_EXECUTOR_CONFIG", str(config_file))
    return dg.Definitions(assets=ALL_ASSETS, jobs=[ingest_job, recluster_job, predict_incoming_job],
                          resources=build_resources(), executor=executor_from_env())


def test_executor_run_config_is_valid_for_every_job(monkeypatch):
    run_config = yaml.safe_load((DEPLOY / "executor.yaml").read_text())
    defs = _k8s_jobs(monkeypatch)
    for name in ("ingest_job", "recluster_job"):
        job = defs.resolve_job_def(name)
        assert job.executor_def.name == "k8s"
        dg.validate_run_config(job, run_config)
    # predictions stay in one process (latency: one light step), inside the run pod K8sRunLauncher starts
    predict = defs.resolve_job_def("predict_incoming_job")
    assert predict.executor_def.name == "in_process"
    dg.validate_run_config(predict, {"ops": {"new_file_predictions": {"config": {"files": []}}}})
    broken = copy.deepcopy(run_config)
    broken["execution"]["config"]["step_k8s_confg"] = broken["execution"]["config"].pop("step_k8s_config")
    with pytest.raises(DagsterInvalidConfigError):
        dg.validate_run_config(defs.resolve_job_def("ingest_job"), broken)


def test_executor_config_file_becomes_the_default(monkeypatch):
    job = _k8s_jobs(monkeypatch, DEPLOY / "executor.yaml").resolve_job_def("ingest_job")
    dg.validate_run_config(job, {})  # nothing left to give at launch
    monkeypatch.setenv("SEIS_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="SEIS_EXECUTOR"):
        executor_from_env()


def test_only_the_feature_step_asks_for_a_gpu(monkeypatch):
    """Build every step's Kubernetes Job the way k8s_job_executor does (its op tag parsed and validated by
    dagster-k8s, the pod checked against the Kubernetes models)."""
    step_config = yaml.safe_load((DEPLOY / "executor.yaml").read_text())["execution"]["config"]["step_k8s_config"]
    defs = _k8s_jobs(monkeypatch)
    gpus = {}
    for name in ("ingest_job", "recluster_job", "predict_incoming_job"):
        for node in defs.resolve_job_def(name).graph.nodes:
            tag_config = get_user_defined_k8s_config(node.definition.tags)
            for config in (tag_config, UserDefinedDagsterK8sConfig.from_dict(step_config)):
                job = construct_dagster_k8s_job(
                    DagsterK8sJobConfig(job_image="seis-assets:test", dagster_home="/opt/dagster/dagster_home",
                                        instance_config_map="seis-assets-dagster-instance"),
                    ["dagster", "api", "execute_step"], f"step-{node.name}".replace("_", "-"),
                    user_defined_k8s_config=config,
                )
            limits = job.spec.template.spec.containers[0].resources.limits or {}
            assert limits == {"memory": "6Gi"}  # the executor's step config builds a valid pod for every step
            gpus[node.name] = (tag_config.container_config.get("resources", {}).get("limits", {})
                               .get("nvidia.com/gpu"))
    assert {n for n, g in gpus.items() if g} == {"resnet_features"} and gpus["resnet_features"] == "1"
    assert len(gpus) >= 10
    assert json.loads(json.dumps(feature_step_k8s_tag()))  # a plain JSON tag value, as Dagster stores it


@pytest.mark.parametrize("gpus, expected", [("0", None), ("2", "2")])
def test_feature_gpus_setting(gpus, expected):
    """SEIS_K8S_FEATURE_GPUS=0 leaves the GPU out (a cluster without GPUs); another number asks for that many."""
    import os
    import subprocess
    import sys

    code = ("import json; from seis_assets.assets.ingest import resnet_features as a; "
            "print(json.dumps(a.op.tags.get('dagster-k8s/config')))")
    env = {**os.environ, "SEIS_K8S_FEATURE_GPUS": gpus, "PYTHONPATH": str(DEPLOY.parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    tag = json.loads(out.stdout.strip().splitlines()[-1])
    if isinstance(tag, str):  # Dagster stores structured tag values as JSON strings
        tag = json.loads(tag)
    got = tag and tag["container_config"]["resources"]["limits"]["nvidia.com/gpu"]
    assert got == expected
