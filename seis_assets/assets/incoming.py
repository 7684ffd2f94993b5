"""Predictions for files dropped into ``incoming_dir``, launched by ``incoming_files_sensor`` (or by hand).

Each run owns one *claim* (``incoming/.claims/<claim>/``, see :mod:`seis_assets.core.claims`), writes its rows to
``warehouse/new_file_predictions/<claim>.parquet`` and moves its files to ``incoming/processed/`` (readable) or
``incoming/rejected/`` (with ``<name>.reason.txt``); a file that fails to read but is still being written goes back
to ``incoming/`` instead (:func:`seis_assets.core.still_writing.settle_unreadable`). A retry of the run (Dagster run
retries, same claim) keeps the rows already written for files it finds archived and predicts only the rest, so no
file gets two rows.
"""


import logging
import os
import time

import dagster as dg
import pandas as pd

from seis_assets.assets import INCOMING
from seis_assets.assets._metadata import markdown_preview
from seis_assets.core.claims import PROCESSED_DIR, REJECTED_DIR, release, take_over, write_reason
from seis_assets.core.generations import require_serving_generation
from seis_assets.core.predict import (
    PREDICTION_COLUMNS, REJECTED_COLUMNS, FittedModels, archive_files, mark_duplicates, predict_files,
)
from seis_assets.core.still_writing import settle_unreadable, watch_rejected
from seis_assets.core.storage import path_str, read_parquet, write_parquet_atomic
from seis_assets.resources import FeatureSettings, SeisPaths

PREDICTIONS_DATASET = "new_file_predictions"
log = logging.getLogger("seis_assets.incoming")
#: Concurrency pool of prediction runs (.dagster_home/dagster.yaml): one at a time, beside any re-clustering.
PREDICT_POOL = "seis_predict"
CLAIM_TAG = "seis_assets/claim"


class IncomingFiles(dg.Config):
    """The files this run predicts (the sensor fills both in).

    files: paths in ``incoming_dir`` (or in its ``.claims/<claim>/`` folder); anything else is refused.
    claim: the claim id; empty = this run's root run id (a run launched by hand claims its files itself).
    """

    files: list[str]
    claim: str = ""


def _earlier_rows(paths: SeisPaths, claim: str) -> pd.DataFrame:
    """``sha256, prediction_id, predicted_at`` of every row of the other claims (for ``duplicate_of``)."""
    cols = ["sha256", "prediction_id", "predicted_at"]
    folder = paths.warehouse / PREDICTIONS_DATASET
    frames = []
    for part in sorted(folder.glob("*.parquet")) if folder.exists() else []:
        if part.stem == claim:
            continue
        try:
            frames.append(read_parquet(part, columns=cols))
        except Exception as exc:  # a part written before rows had ids: it cannot be pointed at
            log.info(f"{part.name} has no prediction ids ({type(exc).__name__}); not used for duplicate_of")
    return pd.concat(frames, ignore_index=True).dropna() if frames else pd.DataFrame(columns=cols)


def _reject_or_send_back(context, paths: SeisPaths, claim: str, rejected: pd.DataFrame) -> tuple[pd.DataFrame, int, dict]:
    """``path, reason`` of the files to reject, how many went back to ``incoming/`` (still being written), and the
    claim entries of the rejected files to keep watching in ``rejected/`` (:func:`watch_rejected`)."""
    unread = rejected[rejected["may_be_incomplete"].astype(bool)]
    settled = settle_unreadable(paths.incoming, claim, dict(zip(unread["path"], unread["reason"])),
                                recheck_s=paths.incoming_recheck_s, max_changing_s=paths.incoming_max_changing_s)
    for old, new, why in settled.returned:
        context.log.info(f"{os.path.basename(old)} is still being written ({why}): moved back to {new}, to be "
                         "claimed again once it is stable")
    back = {old for old, _, _ in settled.returned}
    reasons = {**dict(zip(rejected["path"], rejected["reason"])), **settled.rejected}
    kept = [p for p in rejected["path"] if p not in back]
    table = pd.DataFrame({"path": kept, "reason": [reasons[p] for p in kept]}, columns=["path", "reason"])
    return table, len(back), settled.watch


@dg.asset(
    deps=["model_generation"],
    group_name=INCOMING,
    pool=PREDICT_POOL,
    kinds={"parquet"},
    description="Category and anomaly score of newly dropped files, one Parquet part per claim.",
)
def new_file_predictions(
    context: dg.AssetExecutionContext, config: IncomingFiles, paths: SeisPaths, feature_settings: FeatureSettings
) -> dg.MaterializeResult:
    claim = config.claim or context.run.root_run_id or context.run.run_id
    # refuses paths outside incoming_dir before touching anything; claims files dropped straight into incoming/
    owned, handled = take_over(paths.incoming, config.files, claim)
    for name in handled:
        context.log.info(f"{name}: already handled (no longer in {paths.incoming}); nothing to do")
    part = paths.warehouse / PREDICTIONS_DATASET / f"{claim}.parquet"
    # a retry: rows written by an earlier attempt stay; their files were archived already or are archived now
    done = read_parquet(part) if part.exists() else pd.DataFrame(columns=PREDICTION_COLUMNS)
    todo = [f for f in owned if f not in set(done["path"])]

    generation = require_serving_generation(paths.models)
    predictions, rejected = pd.DataFrame(columns=PREDICTION_COLUMNS), pd.DataFrame(columns=REJECTED_COLUMNS)
    if todo:
        models = FittedModels.load(generation)
        context.log.info(f"predicting {len(todo)} file(s) of claim {claim} with model generation {models.generation}")
        predictions, rejected = predict_files(
            todo, models, key=paths.mat_key, weights_path=feature_settings.weights_path,
            device=feature_settings.device, batch_size=feature_settings.batch_size, claim=claim, logger=context.log,
        )
        predictions = mark_duplicates(predictions, _earlier_rows(paths, claim))
    table = pd.concat([done, predictions], ignore_index=True) if len(done) else predictions
    if len(predictions):
        write_parquet_atomic(table, part)  # rows first: a crash after this point re-archives, never re-predicts
    archive_files([f for f in table["path"] if f in set(owned)], paths.incoming / PROCESSED_DIR)
    rejected, n_back, watch = _reject_or_send_back(context, paths, claim, rejected)
    for row in rejected.itertuples():
        [target] = archive_files([row.path], paths.incoming / REJECTED_DIR)
        write_reason(target, row.reason)
        if row.path in watch:  # unreadable and young: back to incoming/ if its writer goes on (revive_rejected)
            watch_rejected(target, watch[row.path], time.time())
        context.log.warning(f"rejected {row.path}: {row.reason}")
    release(paths.incoming, claim)
    return dg.MaterializeResult(
        metadata={
            "claim": claim,
            "generation": generation.id,
            "n_predicted": len(predictions),
            "n_kept_from_earlier_attempt": len(done),
            "n_rejected": len(rejected),
            "n_still_being_written": n_back,
            "n_already_handled": len(handled),
            "n_duplicates": int(predictions["duplicate_of"].notna().sum()) if len(predictions) else 0,
            "part": dg.MetadataValue.path(path_str(part)) if len(table) else "",
            "moved_to": dg.MetadataValue.path(path_str(paths.incoming / PROCESSED_DIR)),
            "predictions": dg.MetadataValue.md(
                markdown_preview(predictions[["file_name", "predicted_label", "anomaly_score", "duplicate_of"]])
            ),
            "rejected": dg.MetadataValue.md(markdown_preview(rejected)),
        }
    )


def read_new_file_predictions(paths: SeisPaths) -> pd.DataFrame:
    """All appended prediction parts as one table (empty when none)."""
    folder = paths.warehouse / PREDICTIONS_DATASET
    parts = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not parts:
        return pd.DataFrame()
    return pd.concat([read_parquet(p) for p in parts], ignore_index=True)
