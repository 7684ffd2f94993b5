"""Jobs: ingest one category, re-cluster everything, predict dropped files."""

import dagster as dg

from seis_assets.assets import CLUSTERING, EMBEDDING, EVALUATION, HEAVY_TAG, INCOMING, INGEST, SECTIONS

#: Dagster run retries (enabled in .dagster_home/dagster.yaml) for prediction runs: a killed or failed run is
#: re-executed with the same claim; rows already written are kept, so no file gets a second row.
PREDICT_RUN_TAGS = {
    "dagster/max_retries": "2",
    "dagster/retry_strategy": "ALL_STEPS",
    # run monitoring fails a prediction run that hangs (its files stay claimed and are retried)
    "dagster/max_runtime_seconds": "1800",
}

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups(INGEST),
    tags=HEAVY_TAG,
    description="Index one category folder and extract its features (only new or changed files).",
)

recluster_job = dg.define_asset_job(
    "recluster_job",
    selection=dg.AssetSelection.groups(EMBEDDING, CLUSTERING, EVALUATION),
    tags=HEAVY_TAG,
    description=(
        "Fit UMAP and KMeans on all categories' features, then metrics, anomalies and plots; model_generation "
        "switches predictions to the new models at the end."
    ),
)

predict_incoming_job = dg.define_asset_job(
    "predict_incoming_job",
    selection=dg.AssetSelection.groups(INCOMING),
    tags=PREDICT_RUN_TAGS,
    # one step: no subprocess that re-imports torch; the run worker itself predicts
    executor_def=dg.in_process_executor,
    description="Predict the files the incoming sensor claimed.",
)

segy_job = dg.define_asset_job(
    "segy_job",
    selection=dg.AssetSelection.groups(SECTIONS),
    tags=HEAVY_TAG,
    description="Cut one SEG-Y survey into windows, classify them, paint the facies map (partitioned by survey).",
)
