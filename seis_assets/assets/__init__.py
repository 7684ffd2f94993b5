"""Dagster assets, one module per stage: ``ingest`` (index + features, per category), ``embedding`` (UMAP),
``clustering`` (k sweep, KMeans, mapping), ``evaluation`` (anomalies, predictions, metrics, plots), ``incoming``
(sensor-triggered predictions for new files)."""

INGEST = "ingest"
EMBEDDING = "embedding"
CLUSTERING = "clustering"
EVALUATION = "evaluation"
INCOMING = "incoming"

# Runs carrying this tag share one slot (see .dagster_home/dagster.yaml): feature extraction saturates the CPU.
HEAVY_TAG = {"seis_assets/heavy": "true"}

# Concurrency pool of the CPU-heavy steps (feature extraction, UMAP): `.dagster_home/dagster.yaml` gives every pool one
# slot, so these never overlap, however a run was launched (sensor, UI, backfill). Predictions use their own pool.
HEAVY_POOL = "seis_heavy"
