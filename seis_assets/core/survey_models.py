"""The models a survey's windows are classified with, and the windows' QC table, for the ``facies_map`` asset.

``models=patches``: the models the recluster job fitted on the patches (clusters and their categories); the windows
must have been made with the same feature identity (:func:`check_window_identity`). ``models=survey``: UMAP +
KMeans + anomaly scorer fitted on the survey's own windows (:func:`fit_survey_models`: clusters, no categories).
No Dagster imports here.
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd

from seis_assets.core.anomaly import fit_anomaly_model
from seis_assets.core.cluster import fit_kmeans
from seis_assets.core.feature_table import CACHE_KEYS, BackboneMismatchError
from seis_assets.core.reduce import fit_reducer

#: Where ``facies_map`` takes its models from (``SegySettings.models``).
MODEL_SOURCES = ("patches", "survey")

#: The identity columns every window row carries (``survey_windows``).
WINDOW_IDENTITY = ("backbone", "weights", "input_size", "precision")


def window_qc(windows: pd.DataFrame, first: int = 0) -> pd.DataFrame:
    """The QC attributes of each window (its ``qc_*`` columns, without the prefix), first column ``path`` naming
    the window (``window <i>``, counted from ``first``), as the anomaly scorer takes them."""
    qc_columns = [c for c in windows.columns if c.startswith("qc_")]
    qc = windows[qc_columns].rename(columns=lambda c: c[len("qc_"):]).reset_index(drop=True)
    qc.insert(0, "path", [f"window {i}" for i in range(first, first + len(qc))])
    return qc


#: models=survey fits on at most this many windows, evenly spaced through the survey (every window of a section;
#: a sample of a 3-D cube's): the seeded, reproducible UMAP path (``reduce.LARGE_N``), features of one sample in memory
SURVEY_FIT_WINDOWS = 5000


def fit_sample(table, n_max: int = SURVEY_FIT_WINDOWS) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """``(rows, features, qc)`` of at most ``n_max`` windows evenly spaced through a window table read in batches
    (a :class:`~seis_assets.core.storage.ParquetTable`); all rows when the table is no larger."""
    from seis_assets.core.dataset import stack_vectors  # lazy, as the other table readers

    n = len(table)
    rows = np.unique(np.linspace(0, n - 1, min(n, n_max)).round().astype(np.int64)) if n else np.zeros(0, np.int64)
    qc_columns = [c for c in table.columns if c.startswith("qc_")]
    picked, first = [], 0
    for batch in table.iter_batches(["features", *qc_columns]):
        mine = rows[(rows >= first) & (rows < first + len(batch))] - first
        picked.append(batch.iloc[mine])
        first += len(batch)
    sample = pd.concat(picked, ignore_index=True)
    return rows, stack_vectors(sample["features"]), window_qc(sample)


def check_window_identity(windows: pd.DataFrame, identity: dict, survey: str) -> None:
    """Raise :class:`BackboneMismatchError` naming what differs when the windows' features were not made like the
    fitted models' (backbone, weights, input size, precision)."""
    diffs = [
        f"{k} {windows[k].iloc[0]!r} (windows) != {identity.get(k)!r} (models)"
        for k in WINDOW_IDENTITY
        if k in CACHE_KEYS and str(windows[k].iloc[0]) != str(identity.get(k))
    ]
    if diffs:
        raise BackboneMismatchError(
            f"survey {survey}: window features and fitted models differ: {'; '.join(diffs)}. "
            "Re-materialize survey_windows with the models' backbone settings, or re-cluster."
        )


def fit_survey_models(X: np.ndarray, qc: pd.DataFrame, k: int, seed: int, log):
    """UMAP + KMeans + anomaly scorer fitted on one survey's windows (``models=survey``): clusters, no categories.

    Returns an object with ``reducer``, ``kmeans``, ``mapping`` (every cluster unnamed) and ``scorer``, as
    :class:`seis_assets.core.predict.FittedModels` has them.
    """
    reducer, Z = fit_reducer(X, 50, random_state=seed, logger=log)
    kmeans = fit_kmeans(Z, k, random_state=seed)
    scorer = fit_anomaly_model(Z, kmeans, X, qc, [f"window {i}" for i in range(len(X))], random_state=seed)
    mapping = pd.DataFrame({"cluster": range(k), "majority": [""] * k, "hungarian": [""] * k})
    return types.SimpleNamespace(reducer=reducer, kmeans=kmeans, mapping=mapping, scorer=scorer)
