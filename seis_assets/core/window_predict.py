"""Classify scaled SEG-Y windows with the fitted models: features -> 50-d UMAP -> cluster -> category + anomaly score.

The models are :class:`seis_assets.core.predict.FittedModels` (loaded by its public ``load``); windows take the
path the ``.mat`` patches take, only their arrays come from a survey instead of files. The backbone must be the one
the models were fitted with (checked on its identity); a different one raises instead of mixing feature spaces.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from seis_assets.core.anomaly import AnomalyModel, score_anomalies
from seis_assets.core.predict import Embedder
from seis_assets.core.qc import qc_table
from seis_assets.core.report import cluster_labels
from seis_assets.core.segy_windows import (
    DEFAULT_STRIDE,
    SCALINGS,
    SURVEY_PERCENTILE,
    WINDOW_COLUMNS,
    iter_windows,
    scale_window,
    survey_scale,
    window_name,
)

__all__ = ["window_features", "classify_windows", "classify_table", "survey_features"]

#: windows classified per batch by classify_table (features of a batch in memory at a time)
CLASSIFY_BATCH = 16384



def window_features(
    patches: np.ndarray,
    identity: dict,
    *,
    weights_path=None,
    device: str = "auto",
    batch_size: int | None = None,
    logger: logging.Logger | None = None,
) -> np.ndarray:
    """Backbone features of windows (n, H, W) in [-1, 1], made exactly as the models' training features were.

    ``identity`` is the models' ``backbone.json`` (backbone, weights, input size, precision). ``batch_size``: windows
    per forward pass (None: the engine's default for this backbone and input, ``engines.batch_size_for``).

    Raises
    ------
    BackboneMismatchError
        When the backbone available now differs from the one the models were fitted with.
    """
    return _embed_in_batches(Embedder.build(identity, weights_path, device, logger, batch_size=batch_size), patches)


def _embed_in_batches(embedder, patches: np.ndarray) -> np.ndarray:
    patches = np.asarray(patches, dtype=np.float32)
    step = embedder.batch() if embedder.backbone.takes_images else max(len(patches), 1)
    return np.concatenate([embedder.features(patches[i : i + step]) for i in range(0, len(patches), step)])


def classify_windows(X: np.ndarray, models, qc_attrs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cluster, mapped categories and anomaly scores of each window's features.

    Parameters
    ----------
    X : ndarray (n, dim), from :func:`window_features`
    models : :class:`seis_assets.core.predict.FittedModels` (or the same fields fitted on a survey)
    qc_attrs : QC attribute rows of the same windows (:func:`seis_assets.core.qc.qc_table`, from the raw
        amplitudes); required when ``models.scorer`` is an :class:`~seis_assets.core.anomaly.AnomalyModel`, which
        then scores windows exactly as the ``anomalies`` table scores patches (QC, novelty, combined, kind)

    Returns
    -------
    DataFrame (n rows) with cluster, predicted_label (majority mapping), predicted_hungarian, anomaly_score,
    anomaly_percentile (share of training patches less anomalous), and with an AnomalyModel also kind, qc_score,
    qc_reason, novelty_score
    """
    Z = models.reducer.transform(X)
    extra = {}
    if isinstance(models.scorer, AnomalyModel):
        if qc_attrs is None:
            raise ValueError("classify_windows: the models' anomaly model needs the windows' QC attributes (qc_attrs)")
        scores = score_anomalies(models.scorer, Z, X, qc_attrs.reset_index(drop=True))
        s = scores["anomaly_score"].to_numpy()
        train_scores = np.sort(models.scorer.training_scores_["anomaly_score"].to_numpy())
        extra = {c: scores[c].to_numpy() for c in ("kind", "qc_score", "qc_reason", "novelty_score")}
    else:  # a bare embedding scorer (benchmarks): no QC
        scores = models.scorer.score(Z, X) if models.scorer.uses_features else models.scorer.score(Z)
        s = scores["score"].to_numpy()
        train_scores = np.sort(models.scorer.training_scores_["score"].to_numpy())
    clusters = np.asarray(models.kmeans.predict(np.asarray(Z, dtype=models.kmeans.cluster_centers_.dtype)), dtype=int)
    majority, hungarian = cluster_labels(models.mapping, "majority"), cluster_labels(models.mapping, "hungarian")
    return pd.DataFrame(
        {
            "cluster": clusters,
            "predicted_label": [majority[c] for c in clusters],
            "predicted_hungarian": [hungarian[c] for c in clusters],
            "anomaly_score": s,
            "anomaly_percentile": np.searchsorted(train_scores, s) / len(train_scores),
            **extra,
        }
    )


def classify_table(table, models, batch_size: int = CLASSIFY_BATCH) -> pd.DataFrame:
    """:func:`classify_windows` over a window table read in batches (a
    :class:`~seis_assets.core.storage.ParquetTable` with ``features`` and ``qc_*`` columns), so the features of a
    3-D survey are never all in memory; the rows of the result are the table's, in order."""
    from seis_assets.core.dataset import stack_vectors  # lazy: keeps this module's imports light
    from seis_assets.core.survey_models import window_qc

    qc_columns = [c for c in table.columns if c.startswith("qc_")]
    parts, first = [], 0
    for batch in table.iter_batches(["features", *qc_columns], batch_size):
        parts.append(classify_windows(stack_vectors(batch["features"]), models, window_qc(batch, first=first)))
        first += len(batch)
    return pd.concat(parts, ignore_index=True) if parts else classify_windows(np.zeros((0, 1), np.float32), models)


def _window_batches(
    survey, windows: Iterable[tuple[dict, np.ndarray]], scaling: str, scale, batch: int
) -> Iterator[tuple[list[dict], list[str], list[np.ndarray], list[np.ndarray]]]:
    """``windows`` in batches of ``batch``: (positions, names, raw amplitudes, scaled windows); a batch is yielded
    before the next window is cut, so only one batch is held."""
    rows: list[dict] = []
    names: list[str] = []
    raws: list[np.ndarray] = []
    scaled: list[np.ndarray] = []
    for position, window in windows:
        name = window_name(survey.info.path, position)
        scaled.append(scale_window(window, scaling, scale, name=name))
        raws.append(np.asarray(window, dtype=np.float32))
        names.append(name)
        rows.append(position)
        if len(scaled) >= batch:
            yield rows, names, raws, scaled
            rows, names, raws, scaled = [], [], [], []
    if scaled:
        yield rows, names, raws, scaled


def survey_features(
    survey,
    identity: dict,
    *,
    scaling: str = "survey",
    n_traces: int = 99,
    n_samples: int = 99,
    stride: int = DEFAULT_STRIDE,
    directions=("inline",),
    batch: int = 256,
    weights_path=None,
    device: str = "auto",
    logger: logging.Logger | None = None,
) -> tuple[pd.DataFrame, np.ndarray, dict, pd.DataFrame]:
    """Cut, scale and featurise every window of an open survey, ``batch`` windows in memory at a time.

    Returns
    -------
    positions : DataFrame of :data:`seis_assets.core.segy_windows.WINDOW_COLUMNS`, one row per window
    X : ndarray (n_windows, dim) float32, the backbone features (what grows with the survey, as for patches)
    info : dict (``scaling``; ``scale`` and ``percentile`` for survey-wide scaling; ``dead_windows`` and
        ``short_runs``, the windows and runs of traces :func:`~seis_assets.core.segy_windows.line_cut` left out)
    qc : DataFrame of :func:`seis_assets.core.qc.qc_table` rows, one per window, from the raw (unscaled) amplitudes
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    scale = survey_scale(survey) if scaling == "survey" else None
    embedder = Embedder.build(identity, weights_path, device, logger)  # once per survey, not per batch
    counts: dict = {}
    windows = iter_windows(survey, n_traces=n_traces, n_samples=n_samples, stride=stride, directions=directions,
                           counts=counts)
    rows: list[dict] = []
    qcs: list[pd.DataFrame] = []
    feats: list[np.ndarray] = []
    for positions, names, raws, scaled in _window_batches(survey, windows, scaling, scale, batch):
        feats.append(_embed_in_batches(embedder, np.stack(scaled)))
        qcs.append(qc_table(names, raws))  # QC from the amplitudes before any scaling
        rows.extend(positions)
    info = {"scaling": scaling}
    if scale is not None:
        info.update(scale=float(scale), percentile=SURVEY_PERCENTILE)
    qc = pd.concat(qcs, ignore_index=True) if qcs else qc_table([], [])
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS), np.concatenate(feats), {**info, **counts}, qc
