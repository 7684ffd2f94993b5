"""K-means on the embedding, the k sweep, and cluster -> label mappings.

Cluster ids are plain ``int`` (0 .. k-1); labels are ``str`` class names.

Two mappings from clusters to class names, both computed on the training
contingency table (rows clusters, columns labels):

* :func:`majority_mapping` - each cluster takes its most frequent label. Several
  clusters may share a label and some labels may get none. Ties go to the label
  that sorts first, so the result never depends on input order.
* :func:`hungarian_mapping` - an optimal one-to-one assignment that maximises
  the number of correctly mapped training samples
  (``scipy.optimize.linear_sum_assignment`` on the contingency table). When
  ``k > n_labels`` only ``n_labels`` clusters can be matched; the remaining
  clusters fall back to their majority label (so every cluster gets a name and
  predictions stay defined). When ``k < n_labels`` some labels get no cluster
  and are never predicted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import davies_bouldin_score, silhouette_score

__all__ = [
    "DEFAULT_K",
    "DEFAULT_KS",
    "DEFAULT_N_INIT",
    "DEFAULT_RANDOM_STATE",
    "DEFAULT_SILHOUETTE_SAMPLE",
    "apply_mapping",
    "best_k",
    "contingency_table",
    "fit_kmeans",
    "hungarian_mapping",
    "k_sweep",
    "majority_mapping",
]

DEFAULT_K = 4
DEFAULT_KS = tuple(range(2, 13))
DEFAULT_N_INIT = 10
DEFAULT_RANDOM_STATE = 42
#: Silhouette is O(n^2); above this many samples it is computed on a seeded sample.
DEFAULT_SILHOUETTE_SAMPLE = 5000

SWEEP_COLUMNS = ["k", "silhouette", "davies_bouldin", "inertia"]


def _check_Z(Z) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-D embedding (n_samples, n_dims), got shape {Z.shape}")
    if not np.isfinite(Z).all():
        raise ValueError("embedding contains NaN or Inf")
    return Z


def fit_kmeans(
    Z,
    k: int = DEFAULT_K,
    *,
    n_init: int = DEFAULT_N_INIT,
    random_state: int | None = DEFAULT_RANDOM_STATE,
) -> KMeans:
    """Fit k-means on an embedding.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
    k : int, default 4
        Number of clusters, ``1 <= k <= n_samples``.
    n_init : int, default 10
        Number of k-means++ restarts (explicit, not sklearn's "auto").
    random_state : int or None, default 42

    Returns
    -------
    kmeans : sklearn.cluster.KMeans
        Fitted; ``kmeans.labels_`` (n_samples,) int32 cluster ids,
        ``kmeans.cluster_centers_`` (k, n_dims), ``kmeans.predict(Z_new)``.
    """
    Z = _check_Z(Z)
    if not 1 <= k <= Z.shape[0]:
        raise ValueError(f"k must be between 1 and n_samples={Z.shape[0]}, got {k}")
    return KMeans(n_clusters=int(k), n_init=int(n_init), random_state=random_state).fit(Z)


def k_sweep(
    Z,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    n_init: int = DEFAULT_N_INIT,
    random_state: int | None = DEFAULT_RANDOM_STATE,
    silhouette_sample: int | None = DEFAULT_SILHOUETTE_SAMPLE,
) -> pd.DataFrame:
    """Fit k-means for each k and report internal quality scores.

    Values of k with ``k < 2`` or ``k >= n_samples`` are skipped (silhouette and
    Davies-Bouldin are undefined there).

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
    ks : iterable of int, default 2..12
    n_init, random_state : see :func:`fit_kmeans`
    silhouette_sample : int or None, default 5000
        Silhouette on a seeded random sample of this size when n_samples is larger
        (None: always exact).

    Returns
    -------
    sweep : DataFrame with columns k (int), silhouette (higher is better),
        davies_bouldin (lower is better), inertia (within-cluster sum of squares);
        one row per evaluated k, sorted by k. Empty (same columns) if no k fits.
    """
    Z = _check_Z(Z)
    n = Z.shape[0]
    rows = []
    for k in sorted({int(k) for k in ks}):
        if k < 2 or k >= n:
            continue
        km = fit_kmeans(Z, k, n_init=n_init, random_state=random_state)
        labels = km.labels_
        if len(np.unique(labels)) < 2:  # degenerate (duplicate points)
            sil, db = float("nan"), float("nan")
        else:
            sample = silhouette_sample if silhouette_sample and n > silhouette_sample else None
            sil = float(silhouette_score(Z, labels, sample_size=sample, random_state=random_state))
            db = float(davies_bouldin_score(Z, labels))
        rows.append({"k": k, "silhouette": sil, "davies_bouldin": db, "inertia": float(km.inertia_)})
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS).astype({"k": "int64"})


def best_k(sweep: pd.DataFrame, by: str = "silhouette") -> int:
    """The k with the best score in a :func:`k_sweep` table.

    ``by="silhouette"`` takes the maximum, ``by="davies_bouldin"`` the minimum;
    ties go to the smaller k.
    """
    if sweep.empty:
        raise ValueError("empty k sweep")
    if by == "silhouette":
        idx = sweep[by].to_numpy()
        i = int(np.nanargmax(idx))
    elif by == "davies_bouldin":
        i = int(np.nanargmin(sweep[by].to_numpy()))
    else:
        raise ValueError(f"by must be 'silhouette' or 'davies_bouldin', got {by!r}")
    return int(sweep["k"].iloc[i])


def _check_pair(clusters, labels) -> tuple[np.ndarray, np.ndarray]:
    clusters = np.asarray(clusters)
    labels = np.asarray(labels)
    if clusters.ndim != 1 or labels.ndim != 1 or len(clusters) != len(labels):
        raise ValueError(
            f"clusters and labels must be 1-D of equal length, got {clusters.shape} and {labels.shape}"
        )
    if len(clusters) == 0:
        raise ValueError("clusters and labels are empty")
    if not np.issubdtype(clusters.dtype, np.integer):
        if not np.all(np.equal(np.mod(clusters.astype(float), 1), 0)):
            raise ValueError("cluster ids must be integers")
        clusters = clusters.astype(np.int64)
    return clusters.astype(np.int64), labels.astype(str)


def contingency_table(clusters, labels) -> pd.DataFrame:
    """Counts of each (cluster, label) pair.

    Parameters
    ----------
    clusters : array-like of int, shape (n_samples,)
    labels : array-like of str, shape (n_samples,)

    Returns
    -------
    table : DataFrame, index = sorted cluster ids (int, name "cluster"),
        columns = sorted labels (name "label"), int64 counts.
    """
    clusters, labels = _check_pair(clusters, labels)
    table = pd.crosstab(pd.Series(clusters, name="cluster"), pd.Series(labels, name="label"))
    return table.sort_index(axis=0).sort_index(axis=1).astype("int64")


def majority_mapping(clusters, labels) -> dict[int, str]:
    """Map each cluster to its most frequent label.

    Ties are broken by label name (the label that sorts first wins).

    Parameters
    ----------
    clusters : array-like of int, shape (n_samples,)
    labels : array-like of str, shape (n_samples,)

    Returns
    -------
    mapping : dict {cluster id (int): label (str)} for every cluster present.
    """
    table = contingency_table(clusters, labels)
    counts = table.to_numpy()
    cols = list(table.columns)
    # argmax returns the first maximum; columns are sorted, so ties -> first label by name
    return {int(c): str(cols[int(np.argmax(counts[i]))]) for i, c in enumerate(table.index)}


def hungarian_mapping(clusters, labels) -> dict[int, str]:
    """Optimal one-to-one cluster -> label assignment (Hungarian algorithm).

    Maximises the number of training samples whose cluster maps to their own
    label, with each label used by at most one cluster. If there are more
    clusters than labels, the unmatched clusters take their majority label
    (see :func:`majority_mapping`); if fewer, some labels are never assigned.

    Parameters
    ----------
    clusters : array-like of int, shape (n_samples,)
    labels : array-like of str, shape (n_samples,)

    Returns
    -------
    mapping : dict {cluster id (int): label (str)} for every cluster present.
    """
    table = contingency_table(clusters, labels)
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    mapping = {int(table.index[r]): str(table.columns[c]) for r, c in zip(rows, cols)}
    fallback = majority_mapping(clusters, labels)
    for c in table.index:
        mapping.setdefault(int(c), fallback[int(c)])
    return dict(sorted(mapping.items()))


def apply_mapping(clusters, mapping: Mapping[int, str]) -> np.ndarray:
    """Translate cluster ids to class names.

    Parameters
    ----------
    clusters : array-like of int, shape (n_samples,)
    mapping : dict {cluster id: label}

    Returns
    -------
    predicted : ndarray of str, shape (n_samples,)

    Raises
    ------
    KeyError
        If a cluster id has no entry in ``mapping`` (lists the missing ids).
    """
    clusters = np.asarray(clusters).astype(np.int64).ravel()
    lookup = {int(k): str(v) for k, v in mapping.items()}
    missing = sorted(set(np.unique(clusters).tolist()) - set(lookup))
    if missing:
        raise KeyError(f"cluster ids without a mapping: {missing}; mapping covers {sorted(lookup)}")
    if len(clusters) == 0:
        return np.array([], dtype=str)
    return np.array([lookup[int(c)] for c in clusters], dtype=str)
