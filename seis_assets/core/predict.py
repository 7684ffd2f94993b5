"""Predict newly dropped files with the fitted models: features -> 50-d UMAP -> cluster -> category + anomaly score.

The models are the ones the last re-clustering fitted (``data/models``). The backbone must be the one the training
features were made with; a different one raises instead of mixing feature spaces.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import shutil
from typing import Sequence

import numpy as np
import pandas as pd
from upath import UPath

from seis_assets.core.backbones import load_backbone
from seis_assets.core.features import BackboneMismatchError, embed, resolve_precision
from seis_assets.core.anomaly import score_anomalies
from seis_assets.core.matfiles import PatchLoadError, file_sha256, load_patch, read_mat_array
from seis_assets.core.qc import qc_table
from seis_assets.core.report import cluster_labels
from seis_assets.core.storage import load_joblib, read_parquet

PREDICTION_COLUMNS = [
    "path", "file_name", "sha256", "cluster", "predicted_label", "predicted_hungarian", "anomaly_score",
    "anomaly_percentile", "kind", "qc_score", "qc_reason", "novelty_score", "novelty_neighbours", "backbone",
    "predicted_at",
]
_HINT = "materialize the recluster job (umap_50d ... metrics) first"


@dataclasses.dataclass
class FittedModels:
    """Everything a prediction needs, as the last re-clustering left it."""

    identity: dict
    reducer: object
    kmeans: object
    mapping: pd.DataFrame
    scorer: object

    @classmethod
    def load(cls, models_dir: str | UPath, mapping_path: str | UPath) -> "FittedModels":
        models = UPath(models_dir)
        identity_file = models / "backbone.json"
        if not identity_file.exists():
            raise FileNotFoundError(f"{identity_file} is missing: {_HINT}")
        return cls(
            identity=json.loads(identity_file.read_text()),
            reducer=load_joblib(models / "umap_reducer.joblib", hint=_HINT),
            kmeans=load_joblib(models / "kmeans_model.joblib", hint=_HINT),
            mapping=read_parquet(mapping_path),
            scorer=load_joblib(models / "anomaly_scorer.joblib", hint=_HINT),
        )


def _backbone_for(identity: dict, weights_path, device: str, logger):
    backbone = load_backbone(
        identity["backbone"], weights=identity["weights"] if identity["backbone"] == "resnet50" else "IMAGENET1K_V1",
        weights_path=weights_path, device=device, logger=logger,
    )
    diffs = [
        f"{key} {identity[key]!r} (models) != {backbone.identity.get(key)!r} (now)"
        for key in ("backbone", "weights", "weights_sha256")
        if identity.get(key) is not None and str(identity[key]) != str(backbone.identity.get(key))
    ]
    if diffs:
        raise BackboneMismatchError(
            "the fitted models do not match the backbone available now: " + "; ".join(diffs)
            + ". Re-cluster with the current backbone, or supply the original weights (weights_path)."
        )
    return backbone


def predict_files(
    files: Sequence[str],
    models: FittedModels,
    *,
    key: str | None = "img",
    weights_path=None,
    device: str = "auto",
    logger: logging.Logger | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict category and anomaly score for each file.

    Returns
    -------
    predictions : DataFrame with PREDICTION_COLUMNS, one row per readable file
    rejected : DataFrame with path, reason, one row per file that could not be read (never given made-up pixels)
    """
    ok, patches, rejected = [], [], []
    for path in files:
        try:
            patches.append(load_patch(path, key))
            ok.append(str(path))
        except PatchLoadError as exc:
            rejected.append({"path": str(path), "reason": exc.reason})
    rejected_df = pd.DataFrame(rejected, columns=["path", "reason"])
    if not ok:
        return pd.DataFrame(columns=PREDICTION_COLUMNS), rejected_df

    identity = models.identity
    backbone = _backbone_for(identity, weights_path, device, logger)
    precision = resolve_precision(identity["precision"], backbone.device) if identity["precision"] == "auto" else identity["precision"]
    input_size = identity["input_size"]  # a label: "native" or "<side>:<resize>" (features.input_spec)
    X = np.zeros((len(ok), int(identity["dim"])), dtype=np.float32)
    shapes = [p.shape for p in patches]
    for shape in sorted(set(shapes)):
        rows = [i for i, s in enumerate(shapes) if s == shape]
        X[rows] = embed(backbone, np.stack([patches[i] for i in rows]), input_size, precision)

    Z = models.reducer.transform(X)
    # the same scoring as the anomalies table (QC from the raw amplitudes, novelty, combined score, kind)
    scores = score_anomalies(models.scorer, Z, X, qc_table(ok, (read_mat_array(p, key) for p in ok)))
    clusters = np.asarray(models.kmeans.predict(np.asarray(Z, dtype=models.kmeans.cluster_centers_.dtype)), dtype=int)
    majority, hungarian = cluster_labels(models.mapping, "majority"), cluster_labels(models.mapping, "hungarian")
    train_scores = np.sort(models.scorer.training_scores_["anomaly_score"].to_numpy())
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    predictions = pd.DataFrame(
        {
            "path": ok,
            "file_name": [os.path.basename(p) for p in ok],
            "sha256": [file_sha256(p) for p in ok],
            "cluster": clusters,
            "predicted_label": [majority[c] for c in clusters],
            "predicted_hungarian": [hungarian[c] for c in clusters],
            "anomaly_score": scores["anomaly_score"].to_numpy(),
            # share of training patches less anomalous than this one
            "anomaly_percentile": np.searchsorted(train_scores, scores["anomaly_score"].to_numpy()) / len(train_scores),
            **{c: scores[c].to_numpy() for c in ("kind", "qc_score", "qc_reason", "novelty_score")},
            "novelty_neighbours": scores["novelty_neighbours"].tolist(),
            "backbone": identity["backbone"],
            "predicted_at": now,
        }
    )
    return predictions[PREDICTION_COLUMNS], rejected_df


def archive_files(files: Sequence[str], folder: str | UPath) -> list[str]:
    """Move ``files`` into ``folder`` (created if needed); a name already there gets a numeric suffix.

    Returns the new paths. Nothing is overwritten.
    """
    dest = UPath(folder)
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    for f in files:
        src = UPath(f)
        target = dest / src.name
        n = 1
        while target.exists():
            target = dest / f"{src.stem}.{n}{src.suffix}"
            n += 1
        if src.protocol in ("", "file") and target.protocol in ("", "file"):
            shutil.move(str(src), str(target))
        else:
            src.fs.mv(src.path, target.path)
        moved.append(str(target))
    return moved
