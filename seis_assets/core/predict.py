"""Predict newly dropped files with one model generation: features -> 50-d UMAP -> cluster -> category + anomaly score.

The models are those of the generation ``models/CURRENT`` names (see :mod:`seis_assets.core.generations`), loaded
once per run; every row records that generation's id. The backbone must be the one the training features were made
with; a different one raises instead of mixing feature spaces. Files are read, embedded and scored in batches of
``batch_size``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
from typing import Sequence

import numpy as np
import pandas as pd
from upath import UPath

from seis_assets.core.generations import Generation
from seis_assets.core.matfiles import PatchLoadError, read_mat_bytes
from seis_assets.core.patches import normalise_patch
from seis_assets.core.qc import qc_table
from seis_assets.core.storage import load_joblib, path_str, read_bytes, read_parquet

PREDICTION_COLUMNS = [
    "path", "file_name", "sha256", "cluster", "predicted_label", "predicted_hungarian", "anomaly_score",
    "anomaly_percentile", "kind", "qc_score", "qc_reason", "novelty_score", "novelty_neighbours", "backbone",
    "predicted_at", "generation", "claim", "prediction_id", "duplicate_of",
]
REJECTED_COLUMNS = ["path", "reason", "may_be_incomplete"]
_HINT = "materialize the recluster job (umap_50d ... model_generation) first"


@dataclasses.dataclass
class FittedModels:
    """Everything a prediction needs, from exactly one model generation."""

    identity: dict
    reducer: object
    kmeans: object
    mapping: pd.DataFrame
    scorer: object
    generation: str = ""

    @classmethod
    def load(cls, generation: Generation) -> "FittedModels":
        identity_file = generation.file("backbone.json")
        if not identity_file.exists():
            raise FileNotFoundError(f"{path_str(identity_file)} is missing: {_HINT}")
        return cls(
            identity=json.loads(identity_file.read_text()),
            reducer=load_joblib(generation.file("umap_reducer.joblib"), hint=_HINT),
            kmeans=load_joblib(generation.file("kmeans_model.joblib"), hint=_HINT),
            mapping=read_parquet(generation.file("cluster_mapping.parquet")),
            scorer=load_joblib(generation.file("anomaly_scorer.joblib"), hint=_HINT),
            generation=generation.id,
        )


def backbone_for_models(identity: dict, weights_path, device: str, logger):
    """The backbone the fitted models' features were made with (their ``backbone.json``), or BackboneMismatchError
    naming what differs: patches, dropped files and SEG-Y windows are embedded only with it."""
    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.feature_table import BackboneMismatchError

    backbone = load_backbone(
        identity["backbone"],
        weights=identity["weights"] if identity["backbone"].startswith("resnet50") else "IMAGENET1K_V1",
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


@dataclasses.dataclass
class Embedder:
    """The fitted models' backbone, set up once, embedding arrays exactly as the models' training features were
    made: same backbone (checked), input size label (``native`` or ``<side>:<resize>``), precision and engine.
    Dropped files and SEG-Y windows both go through it."""

    identity: dict
    backbone: object
    input_size: str
    precision: str
    engine: str
    #: CPU threads of an exported engine's session (None: engines.thread_budget())
    threads: int | None = None
    #: patches per forward pass (None: the engine's default for this backbone and input, engines.batch_size_for)
    batch_size: int | None = None

    @classmethod
    def build(cls, identity: dict, weights_path, device: str, logger, threads: int | None = None,
              batch_size: int | None = None) -> "Embedder":
        from seis_assets.core.engines import resolve_precision

        backbone = backbone_for_models(identity, weights_path, device, logger)
        precision = identity.get("precision", "fp32")
        if precision == "auto":
            precision = resolve_precision(precision, backbone.device)
        return cls(identity, backbone, identity.get("input_size", 224), precision, identity.get("engine", "torch"),
                   threads, batch_size)

    def batch(self) -> int:
        """Patches per forward pass: ``batch_size`` when set, else what ``engines.batch_size_for`` measured fastest
        for this engine, backbone and input size."""
        from seis_assets.core.engines import batch_size_for

        return batch_size_for(self.engine, self.batch_size, self.backbone.device, self.input_size, self.backbone.name,
                              self.precision)

    def features(self, patches) -> np.ndarray:
        """Features (n, dim) of patches in [-1, 1] (a list of 2-D arrays, sizes may differ, or one 3-D stack).

        Raises BackboneMismatchError when the features do not have the models' dimension.
        """
        from seis_assets.core.feature_table import BackboneMismatchError
        from seis_assets.core.features import embed

        dim = int(self.identity["dim"])
        X = np.zeros((len(patches), dim), dtype=np.float32)
        shapes = [p.shape for p in patches]
        for shape in sorted(set(shapes)):
            rows = [i for i, s in enumerate(shapes) if s == shape]
            Y = embed(self.backbone, np.stack([patches[i] for i in rows]), self.input_size, self.precision,
                      engine=self.engine, threads=self.threads)
            if Y.shape[1] != dim:
                raise BackboneMismatchError(f"features of dimension {Y.shape[1]}, the models expect {dim}")
            X[rows] = Y
        return X


def prediction_rows(models: FittedModels, paths: list[str], hashes: list[str], X: np.ndarray,
                    claim: str, now: str, qc_attrs: pd.DataFrame) -> pd.DataFrame:
    """The one place prediction rows are built (columns PREDICTION_COLUMNS; ``duplicate_of`` filled later).

    ``qc_attrs``: :func:`seis_assets.core.qc.qc_table` rows of the same files (raw amplitudes), for the same QC,
    novelty, combined score and kind as the ``anomalies`` table (:func:`seis_assets.core.anomaly.score_anomalies`).
    """
    from seis_assets.core.anomaly import score_anomalies
    from seis_assets.core.report import cluster_labels

    Z = models.reducer.transform(X)
    scores = score_anomalies(models.scorer, Z, X, qc_attrs)
    clusters = np.asarray(models.kmeans.predict(np.asarray(Z, dtype=models.kmeans.cluster_centers_.dtype)), dtype=int)
    majority, hungarian = cluster_labels(models.mapping, "majority"), cluster_labels(models.mapping, "hungarian")
    train_scores = np.sort(models.scorer.training_scores_["anomaly_score"].to_numpy())
    names = [os.path.basename(p) for p in paths]
    table = pd.DataFrame(
        {
            "path": paths,
            "file_name": names,
            "sha256": hashes,
            "cluster": clusters,
            "predicted_label": [majority[c] for c in clusters],
            "predicted_hungarian": [hungarian[c] for c in clusters],
            "anomaly_score": scores["anomaly_score"].to_numpy(),
            # share of training patches less anomalous than this one
            "anomaly_percentile": np.searchsorted(train_scores, scores["anomaly_score"].to_numpy()) / len(train_scores),
            **{c: scores[c].to_numpy() for c in ("kind", "qc_score", "qc_reason", "novelty_score")},
            "novelty_neighbours": scores["novelty_neighbours"].tolist(),
            "backbone": models.identity["backbone"],
            "predicted_at": now,
            "generation": models.generation,
            "claim": claim,
            "prediction_id": [f"{claim}/{n}" for n in names],
            "duplicate_of": None,
        }
    )
    return table[PREDICTION_COLUMNS]


def predict_files(
    files: Sequence[str],
    models: FittedModels,
    *,
    key: str | None = "img",
    weights_path=None,
    device: str = "auto",
    batch_size: int | None = None,
    claim: str = "",
    logger: logging.Logger | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict category and anomaly score for each file, ``batch_size`` files at a time (None: 16).

    Returns
    -------
    predictions : DataFrame with PREDICTION_COLUMNS, one row per readable file
    rejected : DataFrame with path, reason, may_be_incomplete, one row per file that could not be read (never given
        made-up pixels). ``may_be_incomplete``: its bytes did not read as a MAT-file variable, which is also what a
        file still being written gives (see :func:`seis_assets.core.still_writing.settle_unreadable`); False when the
        variable was read but is not a usable patch (NaN, constant, a vector...).
    """
    batch_size = 16 if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    predictor = None
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
    parts, rejected = [], []
    files = [str(f) for f in files]
    for start in range(0, len(files), batch_size):
        ok, hashes, patches, raws = [], [], [], []
        for path in files[start:start + batch_size]:
            try:
                data, raw = _read_dropped(path, key)
            except PatchLoadError as exc:
                rejected.append({"path": path, "reason": exc.reason, "may_be_incomplete": True})
                continue
            try:
                patches.append(normalise_patch(raw, name=path_str(path)))
            except PatchLoadError as exc:
                rejected.append({"path": path, "reason": exc.reason, "may_be_incomplete": False})
                continue
            raws.append(raw)
            ok.append(path)
            hashes.append(hashlib.sha256(data).hexdigest())
        if not ok:
            continue
        if predictor is None:
            predictor = Embedder.build(models.identity, weights_path, device, logger)
        parts.append(prediction_rows(models, ok, hashes, predictor.features(patches), claim, now, qc_table(ok, raws)))
        if logger is not None:
            logger.info(f"predicted {min(start + batch_size, len(files))}/{len(files)} file(s)")
    rejected_df = pd.DataFrame(rejected, columns=REJECTED_COLUMNS)
    if not parts:
        return pd.DataFrame(columns=PREDICTION_COLUMNS), rejected_df
    return pd.concat(parts, ignore_index=True), rejected_df


def _read_dropped(path: str, key: str | None) -> tuple[bytes, np.ndarray]:
    """The bytes of a dropped file and its variable as stored (the QC attributes need the raw amplitudes).

    Raises PatchLoadError when they cannot be read as a MAT-file variable (unreadable, empty, truncated, corrupt,
    no such variable): the failures a file that is still being written can give.
    """
    name = path_str(path)
    try:
        data = read_bytes(path)
    except OSError as exc:
        raise PatchLoadError(name, f"cannot read file: {type(exc).__name__}: {exc}") from exc
    return data, read_mat_bytes(data, key, name)


def mark_duplicates(predictions: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """Fill ``duplicate_of``: the ``prediction_id`` of the first earlier row with the same bytes (sha256).

    ``earlier`` holds ``sha256, prediction_id, predicted_at`` of rows already in the table; within ``predictions``
    the first row of a content is the original of the next ones.
    """
    first: dict[str, str] = {}
    if len(earlier):
        for row in earlier.sort_values(["predicted_at", "prediction_id"], kind="stable").itertuples():
            first.setdefault(row.sha256, row.prediction_id)
    out = predictions.copy()
    dup = []
    for row in out.itertuples():
        dup.append(first.get(row.sha256))
        first.setdefault(row.sha256, row.prediction_id)
    out["duplicate_of"] = pd.Series(dup, index=out.index, dtype=object)
    return out


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
