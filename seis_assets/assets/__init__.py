"""Dagster assets, one module per stage: ``ingest`` (index + features, per category), ``embedding`` (UMAP),
``clustering`` (k sweep, KMeans, mapping), ``evaluation`` (anomalies, predictions, metrics, plots), ``incoming``
(sensor-triggered predictions for new files), ``sections`` (SEG-Y windows and the facies map, per survey)."""

INGEST = "ingest"
EMBEDDING = "embedding"
CLUSTERING = "clustering"
EVALUATION = "evaluation"
INCOMING = "incoming"
SECTIONS = "sections"

# Runs carrying this tag share one slot (see .dagster_home/dagster.yaml): feature extraction saturates the CPU.
HEAVY_TAG = {"seis_assets/heavy": "true"}
