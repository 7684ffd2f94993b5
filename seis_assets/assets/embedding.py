"""UMAP embeddings of all categories' features: 50-d for clustering and anomaly scores, 2-d for the plots.

Both reducers are fitted on the training patches only and persisted in the run's model generation (``data/models``;
``model_generation`` copies them under the seed's names to ``data/outputs/umap_reducer.joblib`` /
``umap_reducer_2d.joblib`` when it switches) so test patches and newly dropped files are embedded with ``transform``.
"""


import json

import dagster as dg
import numpy as np
import pandas as pd

from seis_assets.assets import EMBEDDING, HEAVY_POOL, HEAVY_TAG
from seis_assets.core.dataset import combine_feature_tables, embedding_frame, stack_vectors
from seis_assets.core.feature_table import read_identity
from seis_assets.core.reduce import fit_on_train
from seis_assets.core.storage import atomic_write_bytes, save_joblib_atomic
from seis_assets.resources import AnalysisSettings, SeisPaths

BACKBONE_FILE = "backbone.json"


def _fit_and_embed(context, meta: pd.DataFrame, X: np.ndarray, n_components: int, analysis: AnalysisSettings,
                   standardize: bool = False):
    return fit_on_train(
        X, (meta["split"] == "train").to_numpy(), n_components,
        n_neighbors=analysis.umap_n_neighbors, min_dist=analysis.umap_min_dist,
        pca_components=analysis.pca_components or None, standardize=standardize, random_state=analysis.seed,
        parallel=analysis.umap_parallel, large_n=analysis.umap_large_n,
        logger=context.log,
    )


def _settings_metadata(reducer) -> dict:
    return {f"umap_{k}": dg.MetadataValue.text(str(v)) for k, v in sorted(reducer.settings_.items())}


@dg.asset(
    ins={"resnet_features": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    io_manager_key="parquet_io_manager",
    group_name=EMBEDDING,
    op_tags=HEAVY_TAG,
    pool=HEAVY_POOL,
    kinds={"umap", "parquet"},
    description="50-d UMAP of every patch's features (fitted on train, test transformed). Clustering space.",
)
def umap_50d(
    context: dg.AssetExecutionContext,
    resnet_features: dict[str, pd.DataFrame],
    paths: SeisPaths,
    analysis: AnalysisSettings,
) -> pd.DataFrame:
    features = combine_feature_tables(resnet_features)
    reducer, Z = _fit_and_embed(context, features.meta, features.X, 50, analysis, features.standardize)
    save_joblib_atomic(reducer, paths.model("umap_reducer.joblib"))
    # the files' key-value metadata carry what the rows cannot: which backbone was asked for, and why it fell back
    recorded = [read_identity(paths.table("resnet_features", c)) or {} for c in sorted(resnet_features)]
    identity = dict(
        recorded[0],
        **features.identity,
        dim=int(features.X.shape[1]),
        fallback_reason=next((r["fallback_reason"] for r in recorded if r.get("fallback_reason")), None),
    )
    atomic_write_bytes(paths.model(BACKBONE_FILE), json.dumps(identity, indent=2).encode())
    counts = features.meta.groupby(["split", "category"]).size().rename("n").reset_index()
    context.add_output_metadata(
        {
            "n_train": int((features.meta.split == "train").sum()),
            "n_test": int((features.meta.split == "test").sum()),
            "backbone": identity["backbone"],
            "weights": str(identity["weights"]),
            "feature_dim": identity["dim"],
            "counts": dg.MetadataValue.md(counts.to_markdown(index=False)),
            **_settings_metadata(reducer),
        }
    )
    return embedding_frame(features.meta, Z)


@dg.asset(
    io_manager_key="parquet_io_manager",
    group_name=EMBEDDING,
    kinds={"umap", "parquet"},
    description="2-d UMAP of the 50-d embedding, for the scatter plots only (never for scores).",
)
def umap_2d(
    context: dg.AssetExecutionContext, umap_50d: pd.DataFrame, paths: SeisPaths, analysis: AnalysisSettings
) -> pd.DataFrame:
    reducer, Z = _fit_and_embed(context, umap_50d, stack_vectors(umap_50d["embedding"]), 2, analysis)
    save_joblib_atomic(reducer, paths.model("umap_reducer_2d.joblib"))
    context.add_output_metadata({"n": len(umap_50d), **_settings_metadata(reducer)})
    return embedding_frame(umap_50d, Z)
