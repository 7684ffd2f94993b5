"""Resources pointing the pipeline at a temporary data folder."""

from pathlib import Path

import dagster as dg

from seis_assets.definitions import ALL_ASSETS, build_resources
from seis_assets.checks import ALL_CHECKS
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import AnalysisSettings, FeatureSettings, SeisPaths

INGEST_KEYS = ["raw_mat_index", "quarantine", "resnet_features", "qc_attributes"]
ANALYSIS_KEYS = ["umap_50d", "umap_2d", "k_sweep", "kmeans_model", "cluster_mapping", "anomalies", "predictions",
                 "assignments",
                 "metrics", "plots", "model_generation"]


#: Seconds a prediction run here re-checks a dropped file that fails to read (the default is claims.RECHECK_S)
INCOMING_RECHECK_S = 0.5


def paths_for(root: Path, train: Path | None = None) -> SeisPaths:
    return SeisPaths(
        train_dir=str(train or root / "train"),
        test_dir=str(root / "test"),
        output_dir=str(root / "outputs"),
        data_dir=str(root),
        incoming_dir=str(root / "incoming"),
        incoming_recheck_s=INCOMING_RECHECK_S,
    )


def resources_for(root: Path, backbone: str = "texture", train: Path | None = None, **analysis) -> dict:
    return build_resources(
        paths_for(root, train),
        feature_settings=FeatureSettings(backbone=backbone, input_size="native"),
        analysis=AnalysisSettings(**{"umap_n_neighbors": 8, "k_sweep_max": 6, **analysis}),
    )


def materialize_all(root: Path, instance: dg.DagsterInstance, categories, resources: dict):
    """Ingest every category, then the analysis assets with their checks; returns the analysis result."""
    instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, list(categories))
    for category in categories:
        result = dg.materialize(
            ALL_ASSETS, selection=INGEST_KEYS, partition_key=category, resources=resources, instance=instance
        )
        assert result.success
    return dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS], selection=dg.AssetSelection.assets(*ANALYSIS_KEYS), resources=resources,
        instance=instance, raise_on_error=False,
    )
