"""Every environment variable seis_assets reads, in one table, and the one function that reads them.

Settings live in the Dagster resources (``seis_assets/resources.py``) and can be changed in the launchpad; the
variables below only override their defaults when the definitions load (or, for the last group, configure the
machine a run lands on). Nothing else in the package reads ``os.environ`` for a ``SEIS_`` name: a test checks it.
The README's settings table lists the same names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the setting it feeds (``resource.field`` or what it configures), and
    what it means."""

    name: str
    sets: str
    help: str


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        # -- paths (SeisPaths)
        Variable("SEIS_DATA_DIR", "paths.data_dir", "storage root: warehouse/, models/, outputs/, incoming/ (default data)"),
        Variable("SEIS_TRAIN_DIR", "paths.train_dir", "the patch folders to cluster (default <data>/train)"),
        Variable("SEIS_TEST_DIR", "paths.test_dir", "held-out patch folders (default: test/ beside the train folder)"),
        Variable("SEIS_OUTPUT_DIR", "paths.output_dir", "plots, CSVs and the seed's artifacts (default <data>/outputs)"),
        Variable("SEIS_INCOMING_DIR", "paths.incoming_dir", "the folder the prediction sensor watches"),
        Variable("SEIS_INCOMING_STABLE_S", "paths.incoming_stable_s", "seconds a dropped file must stay unchanged"),
        Variable("SEIS_LABELS", "paths.labels", "folders (sub-folders are categories) or none (unlabelled)"),
        Variable("SEIS_SHARD_SIZE", "paths.shard_size", "files per partition of a large folder (0: never split)"),
        # -- features (FeatureSettings)
        Variable("SEIS_BACKBONE", "feature_settings.backbone", "auto, resnet50, efficientnet_lite0, texture, +instnorm/+texture"),
        Variable("SEIS_WEIGHTS_PATH", "feature_settings.weights_path", "a ResNet50 state-dict file (no download)"),
        Variable("SEIS_INPUT_SIZE", "feature_settings.input_size", "224 or native"),
        Variable("SEIS_RESIZE", "feature_settings.resize", "stretch, pad or crop"),
        Variable("SEIS_ENGINE", "feature_settings.engine", "auto, torch, onnxruntime or openvino"),
        Variable("SEIS_ENGINE_CACHE", "feature_settings.engine_cache_dir", "where exported ONNX models are kept"),
        # -- analysis (AnalysisSettings)
        Variable("SEIS_K", "analysis_settings.k", "clusters: a number, auto or default"),
        # -- SEG-Y (SegySettings)
        Variable("SEIS_SEGY", "segy_settings.segy", "SEG-Y files or folders to map, separated by ':'"),
        # -- scaling out and scheduling
        Variable("SEIS_DASK_SCHEDULER", "dask.scheduler_address", "tcp://host:8786: feature extraction on that Dask cluster"),
        Variable("SEIS_EXECUTOR", "the runs' executor", "default, or k8s (one pod per step)"),
        Variable("SEIS_K8S_EXECUTOR_CONFIG", "the runs' executor", "a run-config file for the k8s executor"),
        Variable("SEIS_K8S_FEATURE_GPUS", "the feature step's pod", "GPUs the feature step asks for on Kubernetes (default 1)"),
        Variable("SEIS_RECLUSTER_CRON", "recluster_schedule", "cron of the re-clustering schedule (default 0 3 * * *)"),
        Variable("SEIS_RECLUSTER_SCHEDULE", "recluster_schedule", "on: the schedule starts running (default off)"),
        Variable("SEIS_THREADS", "the forward pass", "CPU threads of one heavy run (default: cores / SEIS_CONCURRENT_RUNS)"),
        Variable("SEIS_CONCURRENT_RUNS", "the forward pass", "heavy runs sharing the machine (default 1)"),
    )
}


def env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the registered variable ``name``, or None when it is unset or empty.

    ``environ`` replaces ``os.environ`` (tests). Raises KeyError for a name missing from :data:`VARIABLES`, so a
    new variable cannot be read without being listed.
    """
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a registered environment variable: add it to seis_assets.environment.VARIABLES")
    value = (os.environ if environ is None else environ).get(name)
    return value if value else None
