"""Which Dagster executor runs the steps of a run: the default (in-process / multiprocess), or one Kubernetes
Job per step.

``SEIS_EXECUTOR=k8s`` (set in the code location's environment on the cluster) selects dagster-k8s's
``k8s_job_executor``; ``SEIS_K8S_EXECUTOR_CONFIG`` may name a run-config file whose ``execution.config`` becomes
its default configuration (``deploy/k8s/executor.yaml``). Unset, nothing changes. Where feature extraction itself
runs (here or on a Dask cluster) is the ``dask`` resource's business, not the executor's.
"""

from __future__ import annotations

import yaml

from seis_assets.environment import env

EXECUTORS = ("default", "k8s")


def executor_from_env():
    """The executor named by ``SEIS_EXECUTOR`` (None = Dagster's default)."""
    name = env("SEIS_EXECUTOR") or "default"
    if name not in EXECUTORS:
        raise ValueError(f"SEIS_EXECUTOR={name!r}: choose one of {EXECUTORS}")
    if name == "default":
        return None
    try:  # imported here: dagster-k8s is an optional dependency (the k8s extra)
        from dagster_k8s import k8s_job_executor
    except ImportError as e:
        raise ImportError("SEIS_EXECUTOR=k8s needs dagster-k8s: pip install 'seis_assets[k8s]'") from e
    config_file = env("SEIS_K8S_EXECUTOR_CONFIG")
    if not config_file:
        return k8s_job_executor
    with open(config_file) as handle:
        run_config = yaml.safe_load(handle) or {}
    try:
        config = run_config["execution"]["config"]
    except (KeyError, TypeError):
        raise ValueError(f"{config_file}: expected a run config with execution: config: ...") from None
    return k8s_job_executor.configured(config, name="k8s_job_executor")
