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


def window_qc(windows: pd.DataFrame) -> pd.DataFrame:
    """The QC attributes of each window (its ``qc_*`` columns, without the prefix), first column ``path`` naming
    the window (``window <i>``), as the anomaly scorer takes them."""
    qc_columns = [c for c in windows.columns if c.startswith("qc_")]
    qc = windows[qc_columns].rename(columns=lambda c: c[len("qc_"):]).reset_index(drop=True)
    qc.insert(0, "path", [f"window {i}" for i in range(len(qc))])
    return qc


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
