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


#: How a variable's text becomes a setting's value (``seis_assets/resources.py`` converts it): as it is, a number,
#: a path (made absolute; a URL is kept), paths separated by ``:``, or numbers separated by ``,``.
KINDS = ("text", "int", "float", "path", "paths", "floats")


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the setting it feeds (``resource.field``, by the resource's key in the
    definitions, or what it configures), what it means, and the kind of value it holds (:data:`KINDS`)."""

    name: str
    sets: str
    help: str
    kind: str = "text"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        # -- paths (SeisPaths)
        Variable("SEIS_DATA_DIR", "paths.data_dir", "storage root: warehouse/, models/, outputs/, incoming/ (default data)", kind="path"),
        Variable("SEIS_TRAIN_DIR", "paths.train_dir", "the patch folders to cluster (default <data>/train)", kind="path"),
        Variable("SEIS_TEST_DIR", "paths.test_dir", "held-out patch folders (default: test/ beside the train folder)", kind="path"),
        Variable("SEIS_OUTPUT_DIR", "paths.output_dir", "plots, CSVs and the seed's artifacts (default <data>/outputs)", kind="path"),
        Variable("SEIS_INCOMING_DIR", "paths.incoming_dir", "the folder the prediction sensor watches", kind="path"),
        Variable("SEIS_INCOMING_STABLE_S", "paths.incoming_stable_s", "seconds a dropped file must stay unchanged", kind="float"),
        Variable("SEIS_INCOMING_RECHECK_S", "paths.incoming_recheck_s", "seconds a run watches an unreadable dropped file for a change", kind="float"),
        Variable("SEIS_INCOMING_MAX_CHANGING_S", "paths.incoming_max_changing_s", "seconds by which a dropped file must have stopped changing", kind="float"),
        Variable("SEIS_LABELS", "paths.labels", "folders (sub-folders are categories) or none (unlabelled)"),
        Variable("SEIS_SHARD_SIZE", "paths.shard_size", "files per partition of a large folder (0: never split)", kind="int"),
        # -- features (FeatureSettings)
        Variable("SEIS_BACKBONE", "feature_settings.backbone", "auto, resnet50, efficientnet_lite0, texture, +instnorm/+texture"),
        Variable("SEIS_WEIGHTS_PATH", "feature_settings.weights_path", "a ResNet50 state-dict file (no download)", kind="path"),
        Variable("SEIS_INPUT_SIZE", "feature_settings.input_size", "224 or native"),
        Variable("SEIS_RESIZE", "feature_settings.resize", "stretch, pad or crop"),
        Variable("SEIS_ENGINE", "feature_settings.engine", "auto, torch, onnxruntime or openvino"),
        Variable("SEIS_PRECISION", "feature_settings.precision", "auto, fp32 or bf16"),
        Variable("SEIS_ENGINE_CACHE", "the ONNX export cache", "where exported ONNX models are kept when a step names no folder (resnet_features: feature_settings.engine_cache_dir)"),
        # -- analysis (AnalysisSettings)
        Variable("SEIS_K", "analysis.k", "clusters: a number, auto or default"),
        # -- SEG-Y (SegySettings)
        Variable("SEIS_SEGY", "segy_settings.segy", "SEG-Y files or folders to map, separated by ':'", kind="paths"),
        Variable("SEIS_SEGY_MODELS", "segy_settings.models", "patches (the models fitted on the patches) or survey (clusters of the survey's own windows)"),
        Variable("SEIS_SEGY_K", "segy_settings.k", "clusters for models=survey (0: 4, or 16 with units)", kind="int"),
        Variable("SEIS_SEGY_UNITS", "segy_settings.units", "models=survey: n > 0 maps n stratigraphic units per line", kind="int"),
        Variable("SEIS_SEGY_TIE_LINES", "segy_settings.tie_lines", "3-D cubes with units: inlines on each side an inline's units are cut with (default 2; 0: each line on its own)", kind="int"),
        Variable("SEIS_SEGY_STRIDE", "segy_settings.stride", "step between windows in traces and samples (default 11; 33 for large cubes)", kind="int"),
        Variable("SEIS_SEGY_LINE_STEP", "segy_settings.line_step", "3-D cubes: windows on every n-th line, voted onto the lines between (default 1: every line)", kind="int"),
        Variable("SEIS_SEGY_MAP_TIMES_MS", "segy_settings.map_times_ms", "3-D cubes: times (ms) of the map-view time slices, ','-separated", kind="floats"),
        Variable("SEIS_SEGY_PAGE_LINES", "segy_settings.page_lines", "at most this many PDF pages per direction (0: every line)", kind="int"),
        # -- scaling out and scheduling
        Variable("SEIS_DASK_SCHEDULER", "dask.scheduler_address", "tcp://host:8786: feature extraction and survey lines on that Dask cluster; local or local:N: a LocalCluster of N one-thread workers here, for the run"),
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


def variables_of(resource: str) -> dict[str, Variable]:
    """``{field: variable}`` of the variables that set a field of ``resource`` (its key in the definitions, e.g.
    ``paths`` for ``paths.train_dir``)."""
    found = {}
    for variable in VARIABLES.values():
        owner, _, field = variable.sets.partition(".")
        if owner == resource and field:
            found[field] = variable
    return found
