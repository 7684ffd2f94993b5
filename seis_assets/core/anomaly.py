"""Anomaly scores for patches in a distance-preserving embedding.

Use the clustering space (the 50-d UMAP, or PCA of the features), never the 2-d
plot embedding: 2-d UMAP squeezes distances for display.

Two complementary scores, both robust z-like numbers ("how many robust standard
deviations further out than a typical training patch"):

``centroid_z``
    Distance to the nearest k-means centroid (the assigned cluster), minus the
    median training distance of that cluster, divided by 1.4826 x the MAD of
    those distances. A patch at the same absolute distance scores higher in a
    tight cluster than in a spread one. Clusters with fewer than
    ``MIN_CLUSTER_SIZE`` training members or zero MAD use the pooled statistics
    of all training distances (listed in ``scorer.cluster_stats_``).
``knn_z``
    Mean distance to the ``n_neighbors`` nearest training patches (``knn``,
    the raw value), robust-z-scored against the same quantity on the training
    set, where each training patch excludes itself. Catches patches that sit in
    an empty region *between* clusters, close enough to a centroid to look
    ordinary to ``centroid_z``.

``score = (centroid_z + knn_z) / 2``. Why the mean of robust z-scores rather
than of rank-normalised scores: a z-score depends only on the patch and the
fitted training statistics, so a new file scored alone gets the same score as
in a batch, and scores of different batches are comparable; ranks would change
with whatever else is scored. Median/MAD keeps the scale from being inflated
by the anomalies that may sit in the training set itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "DEFAULT_N_NEIGHBORS",
    "MIN_CLUSTER_SIZE",
    "SCORE_COLUMNS",
    "AnomalyScorer",
    "fit_anomaly_scorer",
    "leave_one_class_out_auc",
    "roc_auc",
]

DEFAULT_N_NEIGHBORS = 10
#: Clusters with fewer training members than this use pooled median/MAD.
MIN_CLUSTER_SIZE = 5
#: MAD -> standard deviation for normal data.
MAD_TO_SD = 1.4826
SCORE_COLUMNS = ["cluster", "centroid_distance", "centroid_z", "knn", "knn_z", "score"]

_log = logging.getLogger(__name__)


def _robust_location_scale(d: np.ndarray) -> tuple[float, float]:
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * MAD_TO_SD
    return med, mad


def _floor_scale(scale: float, reference: float) -> float:
    # A zero spread (duplicated training points) would divide by zero.
    return max(scale, 1e-6 * max(reference, 1e-12), 1e-12)


class AnomalyScorer:
    """Fitted anomaly scorer. Build it with :func:`fit_anomaly_scorer`.

    Attributes
    ----------
    centers_ : ndarray (k, n_dims)
    n_neighbors : int
        Neighbours used for the kNN score (capped at n_train - 1).
    cluster_stats_ : DataFrame, one row per cluster: cluster, n_train, median,
        scale, pooled (True where the pooled statistics were used).
    knn_median_, knn_scale_ : float
        Robust location/scale of the training kNN distances.
    training_scores_ : DataFrame (n_train, SCORE_COLUMNS)
        Scores of the training points themselves (kNN excludes self).
    """

    def __init__(self, Z_train: np.ndarray, centers: np.ndarray, n_neighbors: int):
        self.Z_train_ = Z_train
        self.centers_ = centers
        n_train = Z_train.shape[0]
        if n_train < 2:
            raise ValueError(f"need at least 2 training points, got {n_train}")
        self.n_neighbors = int(min(n_neighbors, n_train - 1))
        self._nn = NearestNeighbors(n_neighbors=self.n_neighbors + 1).fit(Z_train)

        cl, dist = self._assign(Z_train)
        pooled_med, pooled_scale = _robust_location_scale(dist)
        pooled_scale = _floor_scale(pooled_scale, pooled_med)
        rows = []
        for c in range(centers.shape[0]):
            d = dist[cl == c]
            med, scale = (_robust_location_scale(d) if len(d) else (np.nan, 0.0))
            pooled = len(d) < MIN_CLUSTER_SIZE or not scale > 0
            if pooled:
                med, scale = pooled_med, pooled_scale
            rows.append({"cluster": c, "n_train": int(len(d)), "median": med, "scale": scale, "pooled": pooled})
        self.cluster_stats_ = pd.DataFrame(rows)
        self._med = self.cluster_stats_["median"].to_numpy(float)
        self._scale = self.cluster_stats_["scale"].to_numpy(float)

        knn_train = self._knn(Z_train, exclude_self=True)
        self.knn_median_, s = _robust_location_scale(knn_train)
        self.knn_scale_ = _floor_scale(s, self.knn_median_)
        self.training_scores_ = self._frame(cl, dist, knn_train)

    def _assign(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = euclidean_distances(Z, self.centers_, squared=True)  # (n, k)
        cl = np.argmin(d2, axis=1)
        return cl, np.sqrt(np.maximum(d2[np.arange(len(Z)), cl], 0.0))

    def _knn(self, Z: np.ndarray, exclude_self: bool) -> np.ndarray:
        if exclude_self:
            dist, idx = self._nn.kneighbors(Z, n_neighbors=self.n_neighbors + 1)
            own = idx == np.arange(len(Z))[:, None]
            # drop the point itself; if a duplicate pushed it out of the list, drop the farthest
            no_self = ~own.any(axis=1)
            own[no_self, -1] = True
            dist = dist[~own].reshape(len(Z), self.n_neighbors)
        else:
            dist, _ = self._nn.kneighbors(Z, n_neighbors=self.n_neighbors)
        return dist.mean(axis=1)

    def _frame(self, cl, dist, knn) -> pd.DataFrame:
        cz = (dist - self._med[cl]) / self._scale[cl]
        kz = (knn - self.knn_median_) / self.knn_scale_
        return pd.DataFrame(
            {
                "cluster": cl.astype("int64"),
                "centroid_distance": dist,
                "centroid_z": cz,
                "knn": knn,
                "knn_z": kz,
                "score": (cz + kz) / 2.0,
            },
            columns=SCORE_COLUMNS,
        )

    def score(self, Z) -> pd.DataFrame:
        """Score new points (not the training points: use ``training_scores_``).

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_dims)

        Returns
        -------
        scores : DataFrame (n_samples rows, positional index) with columns
            cluster (int, nearest centroid), centroid_distance, centroid_z, knn
            (mean distance to the n_neighbors nearest training points), knn_z,
            score (higher = more anomalous).
        """
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.centers_.shape[1]:
            raise ValueError(f"expected shape (n, {self.centers_.shape[1]}), got {Z.shape}")
        if Z.shape[0] == 0:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "cluster" else "float64") for c in SCORE_COLUMNS})
        cl, dist = self._assign(Z)
        return self._frame(cl, dist, self._knn(Z, exclude_self=False))


def fit_anomaly_scorer(Z_train, kmeans, n_neighbors: int = DEFAULT_N_NEIGHBORS) -> AnomalyScorer:
    """Fit the anomaly scorer on the training embedding and its k-means.

    Parameters
    ----------
    Z_train : array-like of shape (n_train, n_dims)
        Training embedding (the clustering space, e.g. 50-d UMAP).
    kmeans : fitted KMeans, or array (k, n_dims) of centroids
        Anything with ``cluster_centers_`` works.
    n_neighbors : int, default 10

    Returns
    -------
    scorer : AnomalyScorer
        ``scorer.score(Z_new)`` for new points, ``scorer.training_scores_`` for
        the training points (kNN excluding each point itself).
    """
    Z_train = np.asarray(Z_train, dtype=np.float64)
    centers = np.asarray(getattr(kmeans, "cluster_centers_", kmeans), dtype=np.float64)
    if Z_train.ndim != 2 or centers.ndim != 2 or centers.shape[1] != Z_train.shape[1]:
        raise ValueError(f"Z_train {Z_train.shape} and centroids {centers.shape} do not match")
    if not np.isfinite(Z_train).all():
        raise ValueError("Z_train contains NaN or Inf")
    if Z_train.shape[1] <= 2:
        _log.warning(
            "anomaly scores in a %d-d space: use the clustering embedding (e.g. 50-d), not the plot space",
            Z_train.shape[1],
        )
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    return AnomalyScorer(Z_train, centers, n_neighbors)


def roc_auc(is_anomaly, score) -> float:
    """ROC AUC of ``score`` for separating anomalies (True) from the rest.

    Parameters
    ----------
    is_anomaly : array-like of bool, shape (n_samples,)
    score : array-like of float, shape (n_samples,), higher = more anomalous

    Returns
    -------
    auc : float in [0, 1]; NaN when only one of the two groups is present.
    """
    y = np.asarray(is_anomaly).astype(bool)
    s = np.asarray(score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"is_anomaly and score must be 1-D of equal length, got {y.shape} and {s.shape}")
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def leave_one_class_out_auc(
    X,
    labels,
    held_out: str,
    *,
    embed: Callable | None = None,
    k: int | None = None,
    n_neighbors: int = DEFAULT_N_NEIGHBORS,
    eval_fraction: float = 0.2,
    split: str = "random",
    random_state: int | None = 42,
) -> dict:
    """How well the scores flag a class the model never saw.

    The non-held-out classes are split into a fit part and an evaluation part.
    The embedding (optional), k-means and the scorer are fitted on the fit part
    only; the evaluation part (normal) and every patch of ``held_out``
    (anomalies) are then embedded with ``transform`` and scored the same way, and
    the ROC AUC is computed for ``score``, ``centroid_z`` and ``knn``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features, or an already distance-preserving embedding when ``embed`` is None.
    labels : array-like of str, shape (n_samples,)
    held_out : str
        The class treated as unseen (e.g. "fault").
    embed : callable, optional
        ``embed(X_fit) -> (model, Z_fit)`` where ``model.transform(X)`` embeds new
        rows, e.g. ``functools.partial(reduce.fit_reducer, n_components=50)``.
        None: use ``X`` as is.
    k : int, optional
        Clusters; default the number of remaining classes.
    n_neighbors : int, default 10
    eval_fraction : float, default 0.2
        Share of each remaining class kept out of fitting as normal examples.
    split : {"random", "tail"}, default "random"
        "random": stratified random split. "tail": the last ``eval_fraction`` of
        each class in input order - use it when neighbouring rows overlap (F3
        patches are cut with overlap, so a random split puts near-duplicates on
        both sides and makes normals look too normal).
    random_state : int or None, default 42

    Returns
    -------
    result : dict with held_out, auc (of ``score``), auc_centroid_z, auc_knn,
        n_fit, n_normal, n_anomaly, k.
    """
    from seis_assets.core.cluster import fit_kmeans  # sibling module

    X = np.asarray(X)
    labels = np.asarray(labels).astype(str)
    if X.ndim != 2 or len(X) != len(labels):
        raise ValueError(f"X {X.shape} and labels {labels.shape} do not match")
    if held_out not in set(labels):
        raise ValueError(f"held_out class {held_out!r} not in labels {sorted(set(labels))}")
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    rng = np.random.default_rng(random_state)
    fit_idx, eval_idx = [], []
    for cls in sorted(set(labels) - {held_out}):
        idx = np.flatnonzero(labels == cls)
        n_eval = max(1, int(round(eval_fraction * len(idx))))
        if split == "random":
            idx = rng.permutation(idx)
            eval_idx.append(idx[:n_eval]), fit_idx.append(idx[n_eval:])
        elif split == "tail":
            eval_idx.append(idx[-n_eval:]), fit_idx.append(idx[:-n_eval])
        else:
            raise ValueError(f"split must be 'random' or 'tail', got {split!r}")
    fit_idx, eval_idx = np.concatenate(fit_idx), np.concatenate(eval_idx)
    anom_idx = np.flatnonzero(labels == held_out)

    if embed is None:
        Z_fit = np.asarray(X[fit_idx], dtype=np.float64)
        Z_eval = np.asarray(X[np.concatenate([eval_idx, anom_idx])], dtype=np.float64)
    else:
        model, Z_fit = embed(X[fit_idx])
        Z_eval = model.transform(X[np.concatenate([eval_idx, anom_idx])])
    k = int(k or len(set(labels)) - 1)
    km = fit_kmeans(Z_fit, k, random_state=random_state)
    scores = fit_anomaly_scorer(Z_fit, km, n_neighbors=n_neighbors).score(Z_eval)
    is_anom = np.r_[np.zeros(len(eval_idx), bool), np.ones(len(anom_idx), bool)]
    return {
        "held_out": held_out,
        "auc": roc_auc(is_anom, scores["score"]),
        "auc_centroid_z": roc_auc(is_anom, scores["centroid_z"]),
        "auc_knn": roc_auc(is_anom, scores["knn"]),
        "n_fit": int(len(fit_idx)),
        "n_normal": int(len(eval_idx)),
        "n_anomaly": int(len(anom_idx)),
        "k": k,
    }
