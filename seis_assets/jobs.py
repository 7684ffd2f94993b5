"""Jobs: ingest one category, re-cluster everything, predict dropped files."""

import dagster as dg

from seis_assets.assets import CLUSTERING, EMBEDDING, EVALUATION, HEAVY_TAG, INCOMING, INGEST, SECTIONS

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
    description="Fit UMAP and KMeans on all categories' features, then metrics, anomalies and plots.",
)

predict_incoming_job = dg.define_asset_job(
    "predict_incoming_job",
    selection=dg.AssetSelection.groups(INCOMING),
    description="Predict the files the incoming sensor found.",
)

segy_job = dg.define_asset_job(
    "segy_job",
    selection=dg.AssetSelection.groups(SECTIONS),
    tags=HEAVY_TAG,
    description="Cut one SEG-Y survey into windows, classify them, paint the facies map (partitioned by survey).",
)
