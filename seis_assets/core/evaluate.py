"""Scores of a clustering against true labels, and of mapped predictions.

* :func:`clustering_scores` - label-free comparison of cluster ids with true
  labels (ARI, AMI, NMI, homogeneity, completeness, V-measure) plus the
  silhouette of the clusters in the embedding.
* :func:`classification_table` - per-class precision / recall / F1 / support of
  mapped predictions, with macro and weighted averages and the accuracy.
* :func:`confusion` - the confusion matrix as a labelled DataFrame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics

from seis_assets.core.cluster import DEFAULT_SILHOUETTE_SAMPLE, clustering_stability, sampled_silhouette

__all__ = [
    "DEFAULT_RANDOM_STATE",
    "classification_table",
    "clustering_scores",
    "confusion",
    "label_free_scores",
]

DEFAULT_RANDOM_STATE = 42

TABLE_COLUMNS = ["class", "precision", "recall", "f1", "support"]


def _pair(a, b, names=("labels", "clusters")) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or b.ndim != 1 or len(a) != len(b):
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D of equal length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty")
    return a, b


def _class_pair(y_true, y_pred, classes: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """True and predicted labels as str, and the classes to report (default: the sorted union of both)."""
    y_true, y_pred = _pair(y_true, y_pred, ("y_true", "y_pred"))
    y_true, y_pred = y_true.astype(str), y_pred.astype(str)
    if classes is None:
        classes = sorted(set(y_true) | set(y_pred))
    return y_true, y_pred, [str(c) for c in classes]


def _embedding_of(Z, clusters) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] != len(clusters):
        raise ValueError(f"Z must have shape (n_samples={len(clusters)}, n_dims), got {Z.shape}")
    return Z


def clustering_scores(
    labels,
    clusters,
    Z=None,
    *,
    silhouette_sample: int | None = DEFAULT_SILHOUETTE_SAMPLE,
    random_state: int | None = DEFAULT_RANDOM_STATE,
) -> dict[str, float]:
    """Agreement between cluster ids and true labels.

    Parameters
    ----------
    labels : array-like of str, shape (n_samples,)
        True class names.
    clusters : array-like of int, shape (n_samples,)
        Cluster ids (any integer ids; permutations do not matter).
    Z : array-like of shape (n_samples, n_dims), optional
        The embedding the clusters were found in, for the silhouette. Use the
        clustering space (e.g. the 50-d UMAP), not the 2-d plot space.
    silhouette_sample : int or None, default 5000
        Above this many samples the silhouette uses a seeded random sample.
    random_state : int or None, default 42

    Returns
    -------
    scores : dict of float with keys ari, ami, nmi, homogeneity, completeness,
        v_measure, silhouette. ``silhouette`` is NaN when ``Z`` is None or the
        clustering has fewer than 2 or more than n_samples - 1 distinct clusters.
    """
    labels, clusters = _pair(labels, clusters)
    labels = labels.astype(str)
    h, c, v = metrics.homogeneity_completeness_v_measure(labels, clusters)
    out = {
        "ari": float(metrics.adjusted_rand_score(labels, clusters)),
        "ami": float(metrics.adjusted_mutual_info_score(labels, clusters)),
        "nmi": float(metrics.normalized_mutual_info_score(labels, clusters)),
        "homogeneity": float(h),
        "completeness": float(c),
        "v_measure": float(v),
        "silhouette": float("nan"),
    }
    if Z is not None:
        Z = _embedding_of(Z, clusters)
        if 2 <= len(np.unique(clusters)) <= len(clusters) - 1:
            out["silhouette"] = sampled_silhouette(Z, clusters, silhouette_sample, random_state)
    return out


def label_free_scores(
    Z,
    clusters,
    *,
    stability_runs: int = 5,
    silhouette_sample: int | None = DEFAULT_SILHOUETTE_SAMPLE,
    random_state: int | None = DEFAULT_RANDOM_STATE,
) -> dict[str, float]:
    """Quality of a k-means clustering without labels.

    Parameters
    ----------
    Z : array-like (n_samples, n_dims), the space the clusters were found in
    clusters : array-like of int (n_samples,)
    stability_runs : k-means runs compared by :func:`seis_assets.core.cluster.clustering_stability`

    Returns
    -------
    dict with ``silhouette`` (higher is better, -1..1), ``davies_bouldin`` (lower is better, >= 0) and
    ``stability_ari`` (mean ARI between runs with different seeds and subsamples, 1 = always the same partition);
    each NaN where undefined (fewer than 2 or more than n - 1 clusters, fewer than 2 runs).
    """
    clusters = np.asarray(clusters)
    Z = _embedding_of(Z, clusters)
    n, n_clusters = len(clusters), len(np.unique(clusters))
    out = {"silhouette": float("nan"), "davies_bouldin": float("nan"), "stability_ari": float("nan")}
    if 2 <= n_clusters <= n - 1:
        out["silhouette"] = sampled_silhouette(Z, clusters, silhouette_sample, random_state)
        out["davies_bouldin"] = float(metrics.davies_bouldin_score(Z, clusters))
        out["stability_ari"] = clustering_stability(Z, n_clusters, runs=stability_runs, random_state=random_state)
    return out


def classification_table(
    y_true,
    y_pred,
    classes: Sequence[str] | None = None,
    *,
    zero_division: float = 0.0,
) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, plus averages and accuracy.

    Parameters
    ----------
    y_true, y_pred : array-like of str, shape (n_samples,)
    classes : sequence of str, optional
        Row order and the classes to report; default: sorted union of both.
        A class never predicted has precision ``zero_division``; a class absent
        from ``y_true`` has recall ``zero_division`` and support 0.
    zero_division : float, default 0.0
        Value used where a ratio has a zero denominator (explicit, no warning).

    Returns
    -------
    table : DataFrame with columns class, precision, recall, f1, support. One row
        per class, then rows "macro avg" (unweighted mean over ``classes``),
        "weighted avg" (weighted by support) and "accuracy" (f1 column = the
        fraction of all samples predicted correctly, support = n_samples,
        precision/recall NaN). ``table.attrs["accuracy"]`` holds the same float.
    """
    y_true, y_pred, classes = _class_pair(y_true, y_pred, classes)
    p, r, f, s = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=zero_division
    )
    rows = [
        {"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)
    ]
    rows += _average_rows(p, r, f, s)
    accuracy = float(np.mean(y_true == y_pred))
    rows.append(
        {"class": "accuracy", "precision": float("nan"), "recall": float("nan"), "f1": accuracy,
         "support": int(len(y_true))}
    )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS).astype({"support": "int64"})
    table.attrs["accuracy"] = accuracy
    return table


def _average_rows(p: np.ndarray, r: np.ndarray, f: np.ndarray, s: np.ndarray) -> list[dict]:
    """The "macro avg" (unweighted) and "weighted avg" (by support ``s``) rows of :func:`classification_table`."""
    total = int(np.sum(s))
    w = s / total if total else np.zeros_like(s, dtype=float)
    return [
        {"class": "macro avg", "precision": float(np.mean(p)), "recall": float(np.mean(r)),
         "f1": float(np.mean(f)), "support": total},
        {"class": "weighted avg", "precision": float(np.sum(w * p)), "recall": float(np.sum(w * r)),
         "f1": float(np.sum(w * f)), "support": total},
    ]


def confusion(y_true, y_pred, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Confusion matrix with named rows (true) and columns (predicted).

    Parameters
    ----------
    y_true, y_pred : array-like of str, shape (n_samples,)
    classes : sequence of str, optional
        Row/column order; default sorted union of both. Samples whose true or
        predicted label is not in ``classes`` are not counted.

    Returns
    -------
    cm : DataFrame of int64, shape (n_classes, n_classes); index name "true",
        columns name "predicted"; ``cm.loc[t, p]`` = samples of class t predicted p.
    """
    y_true, y_pred, classes = _class_pair(y_true, y_pred, classes)
    cm = metrics.confusion_matrix(y_true, y_pred, labels=classes)
    return pd.DataFrame(
        cm.astype("int64"),
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )
