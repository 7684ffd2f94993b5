"""Dagster assets, one module per stage: ``ingest`` (index + features, per category), ``embedding`` (UMAP),
``clustering`` (k sweep, KMeans, mapping), ``evaluation`` (anomalies, predictions, metrics, plots), ``incoming``
(sensor-triggered predictions for new files), ``sections`` (SEG-Y windows and the facies map, per survey)."""

import os

INGEST = "ingest"
EMBEDDING = "embedding"
CLUSTERING = "clustering"
EVALUATION = "evaluation"
INCOMING = "incoming"
SECTIONS = "sections"

# Runs carrying this tag share one slot (see .dagster_home/dagster.yaml): feature extraction saturates the CPU.
HEAVY_TAG = {"seis_assets/heavy": "true"}

# On Kubernetes (k8s_job_executor, deploy/k8s/) the feature step's pod asks for a GPU; no effect elsewhere.
# SEIS_K8S_FEATURE_GPUS (default 1) sets how many, 0 asks for none (a CPU-only cluster).
_FEATURE_GPUS = os.environ.get("SEIS_K8S_FEATURE_GPUS", "1")
FEATURE_STEP_K8S_TAG = (
    {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": _FEATURE_GPUS}}}}}
    if _FEATURE_GPUS not in ("", "0")
    else {}
)

# Concurrency pool of the CPU-heavy steps (feature extraction, UMAP): `.dagster_home/dagster.yaml` gives every pool one
# slot, so these never overlap, however a run was launched (sensor, UI, backfill). Predictions use their own pool.
HEAVY_POOL = "seis_heavy"
