"""Dagster assets, one module per stage: ``ingest`` (index + features, per category), ``embedding`` (UMAP),
``clustering`` (k sweep, KMeans, mapping), ``evaluation`` (anomalies, predictions, metrics, plots), ``incoming``
(sensor-triggered predictions for new files), ``sections`` (SEG-Y windows and the facies map, per survey)."""

from seis_assets.environment import env

INGEST = "ingest"
EMBEDDING = "embedding"
CLUSTERING = "clustering"
EVALUATION = "evaluation"
INCOMING = "incoming"
SECTIONS = "sections"

# Runs carrying this tag share one slot (see .dagster_home/dagster.yaml): feature extraction saturates the CPU.
HEAVY_TAG = {"seis_assets/heavy": "true"}

# Concurrency pool of the CPU-heavy steps (feature extraction, UMAP): `.dagster_home/dagster.yaml` gives every pool one
# slot, so these never overlap, however a run was launched (sensor, UI, backfill). Predictions use their own pool.
HEAVY_POOL = "seis_heavy"


def feature_step_k8s_tag() -> dict:
    """The feature step's op tag: on Kubernetes (k8s_job_executor, deploy/k8s/) its pod asks for
    ``SEIS_K8S_FEATURE_GPUS`` GPUs (default 1; 0 asks for none, a CPU-only cluster). No effect elsewhere. Read when
    the feature asset is defined, not when this package is imported."""
    gpus = env("SEIS_K8S_FEATURE_GPUS") or "1"
    if gpus == "0":
        return {}
    return {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": gpus}}}}}
