"""Predictions for files dropped into ``incoming_dir``, launched by ``incoming_files_sensor``.

Each run appends one Parquet part (``warehouse/new_file_predictions/<run_id>.parquet``) and moves the files it
handled to ``incoming_dir/processed/`` (readable) or ``incoming_dir/rejected/`` (with ``<name>.reason.txt``).
"""


import dagster as dg
import pandas as pd

from seis_assets.assets import HEAVY_TAG, INCOMING
from seis_assets.assets._metadata import markdown_preview
from seis_assets.core.predict import FittedModels, archive_files, predict_files
from seis_assets.core.storage import atomic_write_bytes, write_parquet_atomic
from seis_assets.resources import FeatureSettings, SeisPaths

PREDICTIONS_DATASET = "new_file_predictions"


class IncomingFiles(dg.Config):
    """The files this run predicts (the sensor fills it in)."""

    files: list[str]


@dg.asset(
    deps=["kmeans_model", "cluster_mapping", "anomalies"],
    group_name=INCOMING,
    op_tags=HEAVY_TAG,
    kinds={"parquet"},
    description="Category and anomaly score of newly dropped files, appended run by run.",
)
def new_file_predictions(
    context: dg.AssetExecutionContext, config: IncomingFiles, paths: SeisPaths, feature_settings: FeatureSettings
) -> dg.MaterializeResult:
    models = FittedModels.load(paths.models, paths.table("cluster_mapping"))
    predictions, rejected = predict_files(
        config.files, models, key=paths.mat_key, weights_path=feature_settings.weights_path,
        device=feature_settings.device, logger=context.log,
    )
    part = paths.warehouse / PREDICTIONS_DATASET / f"{context.run.run_id}.parquet"
    if len(predictions):
        write_parquet_atomic(predictions, part)
    archive_files(predictions["path"].tolist(), paths.incoming / "processed")
    for row in rejected.itertuples():
        [target] = archive_files([row.path], paths.incoming / "rejected")
        atomic_write_bytes(f"{target}.reason.txt", (row.reason + "\n").encode())
        context.log.warning(f"rejected {row.path}: {row.reason}")
    return dg.MaterializeResult(
        metadata={
            "n_predicted": len(predictions),
            "n_rejected": len(rejected),
            "part": dg.MetadataValue.path(str(part)) if len(predictions) else "",
            "moved_to": dg.MetadataValue.path(str(paths.incoming / "processed")),
            "predictions": dg.MetadataValue.md(
                markdown_preview(predictions[["file_name", "predicted_label", "anomaly_score", "anomaly_percentile"]])
            ),
            "rejected": dg.MetadataValue.md(markdown_preview(rejected)),
        }
    )


def read_new_file_predictions(paths: SeisPaths) -> pd.DataFrame:
    """All appended prediction parts as one table (empty when none)."""
    from seis_assets.core.storage import read_parquet

    folder = paths.warehouse / PREDICTIONS_DATASET
    parts = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not parts:
        return pd.DataFrame()
    return pd.concat([read_parquet(p) for p in parts], ignore_index=True)
