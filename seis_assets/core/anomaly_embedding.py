"""Anomaly scores of patches in the clustering embedding (:class:`AnomalyScorer`), kept as diagnostics beside the
published QC and novelty scores of :mod:`seis_assets.core.anomaly`, and the robust statistics both use.

These scores need a distance-preserving embedding: the clustering space
(the 50-d UMAP, or PCA of the features), never the 2-d plot embedding, which
squeezes distances for display. Two complementary scores, both robust z-like
numbers ("how many robust standard deviations further out than a typical
training patch"):

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

``feature_knn_z`` (only when the scorer is fitted with ``X_train``, the raw backbone features)
    The same kNN score (``feature_knn``, then its robust z) in a PCA of the
    backbone features (``feature_pca_components``, default 50; centred, not
    whitened or standardised), fitted on the training rows. No UMAP: it sees
    what ``UMAP.transform`` hides when it pulls an unseen patch onto a known
    cluster.

``score = (centroid_z + knn_z + feature_knn_z) / 3`` when the scorer was fitted
with ``X_train``, else ``(centroid_z + knn_z) / 2``.

Why the feature term: with it the ROC AUC rose on every generator seed and
every injected anomaly kind, and on every held-out class of the real F3 patches;
the feature kNN alone loses on fault and chaotic. Variants tried and not kept:
``(knn_z + feature_knn_z) / 2`` (lower for ``other`` and for spikes), a whitened
PCA (no gain), standardising the features first (worse). Figures:
benchmarks/README.md, "Anomaly detection" (measured with benchmarks/bench_anomaly.py).

Why the mean of robust z-scores rather than of rank-normalised scores: a
z-score depends only on the patch and the fitted training statistics, so a new
file scored alone gets the same score as in a batch, and scores of different
batches are comparable; ranks would change with whatever else is scored.
Median/MAD keeps the scale from being inflated by the anomalies that may sit in
the training set itself.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "DEFAULT_FEATURE_PCA_COMPONENTS",
    "DEFAULT_N_NEIGHBORS",
    "FEATURE_SCORE_COLUMNS",
    "MIN_CLUSTER_SIZE",
    "SCORE_COLUMNS",
    "AnomalyScorer",
    "fit_anomaly_scorer",
    "floor_scale",
    "mean_knn_distance",
    "robust_location_scale",
]

DEFAULT_N_NEIGHBORS = 10
#: PCA components of the backbone features for ``feature_knn`` (capped at n_train and the feature dimension).
DEFAULT_FEATURE_PCA_COMPONENTS = 50
DEFAULT_RANDOM_STATE = 42
#: Clusters with fewer training members than this use pooled median/MAD.
MIN_CLUSTER_SIZE = 5
#: MAD -> standard deviation for normal data.
MAD_TO_SD = 1.4826
SCORE_COLUMNS = ["cluster", "centroid_distance", "centroid_z", "knn", "knn_z", "score"]
#: Columns when the scorer was fitted with features (``X_train``).
FEATURE_SCORE_COLUMNS = [*SCORE_COLUMNS, "feature_knn", "feature_knn_z"]

_log = logging.getLogger(__name__)


def robust_location_scale(d: np.ndarray) -> tuple[float, float]:
    """Median of ``d`` and its MAD scaled to a standard deviation (``MAD_TO_SD``)."""
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * MAD_TO_SD
    return med, mad


def floor_scale(scale: float, reference: float) -> float:
    """``scale``, at least a millionth of ``reference``: a zero spread (duplicated training points) would divide by
    zero."""
    return max(scale, 1e-6 * max(reference, 1e-12), 1e-12)


def mean_knn_distance(nn: NearestNeighbors, k: int, Y: np.ndarray, exclude_self: bool) -> np.ndarray:
    """Mean distance of each row of ``Y`` to its ``k`` nearest points in ``nn`` (fitted with k + 1 neighbours)."""
    if exclude_self:
        dist, idx = nn.kneighbors(Y, n_neighbors=k + 1)
        own = idx == np.arange(len(Y))[:, None]
        # drop the point itself; if a duplicate pushed it out of the list, drop the farthest
        no_self = ~own.any(axis=1)
        own[no_self, -1] = True
        dist = dist[~own].reshape(len(Y), k)
    else:
        dist, _ = nn.kneighbors(Y, n_neighbors=k)
    return dist.mean(axis=1)


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
    uses_features : bool
        True when fitted with ``X_train``: then :meth:`score` needs ``X``.
    feature_pca_ : fitted sklearn PCA or None
        PCA of the training features (None without ``X_train``).
    feature_knn_median_, feature_knn_scale_ : float or None
        Robust location/scale of the training kNN distances in the feature PCA space.
    training_scores_ : DataFrame (n_train, SCORE_COLUMNS or FEATURE_SCORE_COLUMNS)
        Scores of the training points themselves (kNN excludes self).
    """

    def __init__(
        self,
        Z_train: np.ndarray,
        centers: np.ndarray,
        n_neighbors: int,
        X_train: np.ndarray | None = None,
        feature_pca_components: int = DEFAULT_FEATURE_PCA_COMPONENTS,
        random_state: int | None = DEFAULT_RANDOM_STATE,
    ):
        self.Z_train_ = Z_train
        self.centers_ = centers
        n_train = Z_train.shape[0]
        if n_train < 2:
            raise ValueError(f"need at least 2 training points, got {n_train}")
        self.n_neighbors = int(min(n_neighbors, n_train - 1))
        self._nn = NearestNeighbors(n_neighbors=self.n_neighbors + 1).fit(Z_train)

        cl, dist = self._assign(Z_train)
        pooled_med, pooled_scale = robust_location_scale(dist)
        pooled_scale = floor_scale(pooled_scale, pooled_med)
        rows = []
        for c in range(centers.shape[0]):
            d = dist[cl == c]
            med, scale = (robust_location_scale(d) if len(d) else (np.nan, 0.0))
            pooled = len(d) < MIN_CLUSTER_SIZE or not scale > 0
            if pooled:
                med, scale = pooled_med, pooled_scale
            rows.append({"cluster": c, "n_train": int(len(d)), "median": med, "scale": scale, "pooled": pooled})
        self.cluster_stats_ = pd.DataFrame(rows)
        self._med = self.cluster_stats_["median"].to_numpy(float)
        self._scale = self.cluster_stats_["scale"].to_numpy(float)

        knn_train = self._knn(Z_train, exclude_self=True)
        self.knn_median_, s = robust_location_scale(knn_train)
        self.knn_scale_ = floor_scale(s, self.knn_median_)

        self.feature_pca_ = self._feature_nn = None
        self.feature_knn_median_ = self.feature_knn_scale_ = None
        feature_knn_train = None
        if X_train is not None:
            n_comp = int(min(feature_pca_components, *X_train.shape))
            self.feature_pca_ = PCA(n_components=n_comp, random_state=random_state).fit(X_train)
            P_train = self.feature_pca_.transform(X_train)
            self._feature_nn = NearestNeighbors(n_neighbors=self.n_neighbors + 1).fit(P_train)
            feature_knn_train = mean_knn_distance(self._feature_nn, self.n_neighbors, P_train, exclude_self=True)
            self.feature_knn_median_, s = robust_location_scale(feature_knn_train)
            self.feature_knn_scale_ = floor_scale(s, self.feature_knn_median_)
        self.training_scores_ = self._frame(cl, dist, knn_train, feature_knn_train)

    @property
    def uses_features(self) -> bool:
        # getattr: scorers pickled before the feature term existed have no feature_pca_
        return getattr(self, "feature_pca_", None) is not None

    @property
    def columns(self) -> list[str]:
        """Columns of :meth:`score` and ``training_scores_``."""
        return FEATURE_SCORE_COLUMNS if self.uses_features else SCORE_COLUMNS

    def _assign(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d2 = euclidean_distances(Z, self.centers_, squared=True)  # (n, k)
        cl = np.argmin(d2, axis=1)
        return cl, np.sqrt(np.maximum(d2[np.arange(len(Z)), cl], 0.0))

    def _knn(self, Z: np.ndarray, exclude_self: bool) -> np.ndarray:
        return mean_knn_distance(self._nn, self.n_neighbors, Z, exclude_self)

    def _frame(self, cl, dist, knn, feature_knn=None) -> pd.DataFrame:
        cz = (dist - self._med[cl]) / self._scale[cl]
        kz = (knn - self.knn_median_) / self.knn_scale_
        cols = {
            "cluster": cl.astype("int64"),
            "centroid_distance": dist,
            "centroid_z": cz,
            "knn": knn,
            "knn_z": kz,
            "score": (cz + kz) / 2.0,
        }
        if feature_knn is not None:
            fz = (feature_knn - self.feature_knn_median_) / self.feature_knn_scale_
            cols.update(feature_knn=feature_knn, feature_knn_z=fz, score=(cz + kz + fz) / 3.0)
        return pd.DataFrame(cols, columns=self.columns)

    def score(self, Z, X=None) -> pd.DataFrame:
        """Score new points (not the training points: use ``training_scores_``).

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_dims)
            The new points in the embedding the scorer was fitted on.
        X : array-like of shape (n_samples, n_features), optional
            The same points' raw backbone features. Required when the scorer
            was fitted with ``X_train``; must be None otherwise.

        Returns
        -------
        scores : DataFrame (n_samples rows, positional index) with columns
            cluster (int, nearest centroid), centroid_distance, centroid_z, knn
            (mean distance to the n_neighbors nearest training points), knn_z,
            score (higher = more anomalous), and, when fitted with features,
            feature_knn (the same kNN distance in the feature PCA space) and
            feature_knn_z.
        """
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.centers_.shape[1]:
            raise ValueError(f"expected shape (n, {self.centers_.shape[1]}), got {Z.shape}")
        if self.uses_features:
            if X is None:
                raise ValueError(
                    "this scorer was fitted with X_train (backbone features): pass the same rows' features as "
                    "score(Z, X=features)"
                )
            X = np.asarray(X, dtype=np.float64)
            n_features = self.feature_pca_.n_features_in_
            if X.ndim != 2 or X.shape != (Z.shape[0], n_features):
                raise ValueError(f"expected X of shape ({Z.shape[0]}, {n_features}), got {X.shape}")
            if not np.isfinite(X).all():
                raise ValueError("X contains NaN or Inf")
        elif X is not None:
            raise ValueError("this scorer was fitted without X_train: refit with fit_anomaly_scorer(..., X_train=...) "
                             "to use features, or call score(Z)")
        if Z.shape[0] == 0:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "cluster" else "float64") for c in self.columns})
        cl, dist = self._assign(Z)
        feature_knn = None
        if self.uses_features:
            P = self.feature_pca_.transform(X)
            feature_knn = mean_knn_distance(self._feature_nn, self.n_neighbors, P, exclude_self=False)
        return self._frame(cl, dist, self._knn(Z, exclude_self=False), feature_knn)


def fit_anomaly_scorer(
    Z_train,
    kmeans,
    n_neighbors: int = DEFAULT_N_NEIGHBORS,
    X_train=None,
    feature_pca_components: int = DEFAULT_FEATURE_PCA_COMPONENTS,
    random_state: int | None = DEFAULT_RANDOM_STATE,
) -> AnomalyScorer:
    """Fit the anomaly scorer on the training embedding and its k-means.

    Parameters
    ----------
    Z_train : array-like of shape (n_train, n_dims)
        Training embedding (the clustering space, e.g. 50-d UMAP).
    kmeans : fitted KMeans, or array (k, n_dims) of centroids
        Anything with ``cluster_centers_`` works.
    n_neighbors : int, default 10
    X_train : array-like of shape (n_train, n_features), optional
        The raw backbone features of the same training rows, in the same order.
        When given, the scorer also fits a PCA on them and adds
        ``feature_knn_z`` to ``score`` (see the module docstring for why); its
        :meth:`AnomalyScorer.score` then needs the features too.
    feature_pca_components : int, default 50
        PCA components for the feature kNN (capped at n_train and n_features).
    random_state : int or None, default 42
        For the PCA solver.

    Returns
    -------
    scorer : AnomalyScorer
        ``scorer.score(Z_new)`` (or ``scorer.score(Z_new, X_new)`` when fitted
        with ``X_train``) for new points, ``scorer.training_scores_`` for the
        training points (kNN excluding each point itself).
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
    if X_train is not None:
        X_train = _check_training_features(X_train, len(Z_train), feature_pca_components)
    return AnomalyScorer(Z_train, centers, n_neighbors, X_train, feature_pca_components, random_state)


def _check_training_features(X_train, n_train: int, feature_pca_components: int) -> np.ndarray:
    """``X_train`` as float64, or ValueError when it does not fit the training embedding or the PCA size is not
    positive."""
    X_train = np.asarray(X_train, dtype=np.float64)
    if X_train.ndim != 2 or X_train.shape[0] != n_train:
        raise ValueError(f"X_train {X_train.shape} must have one row per Z_train row ({n_train})")
    if not np.isfinite(X_train).all():
        raise ValueError("X_train contains NaN or Inf")
    if feature_pca_components < 1:
        raise ValueError(f"feature_pca_components must be >= 1, got {feature_pca_components}")
    return X_train
