"""Anomaly scores of patches: what the pipeline and the predictions publish (:func:`score_anomalies`: QC and novelty,
:class:`AnomalyModel`), and the scores in the clustering embedding kept as diagnostics (:class:`AnomalyScorer`).
How well they flag anomalies is measured in :mod:`seis_assets.core.anomaly_evaluation`.

The embedding scores need a distance-preserving embedding: the clustering space
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
the feature kNN alone loses on fault and chaotic. The figures, and the variants
tried (``(knn_z + feature_knn_z) / 2``, a whitened PCA, standardised features),
are in benchmarks/anomaly_results.md (benchmarks/README.md, "Anomaly detection").

Why the mean of robust z-scores rather than of rank-normalised scores: a z-score depends only on the patch and the
fitted training statistics, so a new file scored alone gets the same score as
in a batch, and scores of different batches are comparable; ranks would change
with whatever else is scored. Median/MAD keeps the scale from being inflated
by the anomalies that may sit in the training set itself.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors

from seis_assets.core.qc import fit_qc
from seis_assets.core.reduce import BlockScaler

__all__ = [
    "DEFAULT_FEATURE_PCA_COMPONENTS",
    "DEFAULT_N_NEIGHBORS",
    "FEATURE_SCORE_COLUMNS",
    "MIN_CLUSTER_SIZE",
    "SCORE_COLUMNS",
    "AnomalyScorer",
    "fit_anomaly_scorer",
    "ANOMALY_COLUMNS",
    "NoveltyScorer",
    "AnomalyModel",
    "fit_anomaly_model",
    "score_anomalies",
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


def _robust_location_scale(d: np.ndarray) -> tuple[float, float]:
    med = float(np.median(d))
    mad = float(np.median(np.abs(d - med))) * MAD_TO_SD
    return med, mad


def _floor_scale(scale: float, reference: float) -> float:
    # A zero spread (duplicated training points) would divide by zero.
    return max(scale, 1e-6 * max(reference, 1e-12), 1e-12)


def _mean_knn_distance(nn: NearestNeighbors, k: int, Y: np.ndarray, exclude_self: bool) -> np.ndarray:
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

        self.feature_pca_ = self._feature_nn = None
        self.feature_knn_median_ = self.feature_knn_scale_ = None
        feature_knn_train = None
        if X_train is not None:
            n_comp = int(min(feature_pca_components, *X_train.shape))
            self.feature_pca_ = PCA(n_components=n_comp, random_state=random_state).fit(X_train)
            P_train = self.feature_pca_.transform(X_train)
            self._feature_nn = NearestNeighbors(n_neighbors=self.n_neighbors + 1).fit(P_train)
            feature_knn_train = _mean_knn_distance(self._feature_nn, self.n_neighbors, P_train, exclude_self=True)
            self.feature_knn_median_, s = _robust_location_scale(feature_knn_train)
            self.feature_knn_scale_ = _floor_scale(s, self.feature_knn_median_)
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
        return _mean_knn_distance(self._nn, self.n_neighbors, Z, exclude_self)

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
            feature_knn = _mean_knn_distance(self._feature_nn, self.n_neighbors, P, exclude_self=False)
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
        X_train = np.asarray(X_train, dtype=np.float64)
        if X_train.ndim != 2 or X_train.shape[0] != Z_train.shape[0]:
            raise ValueError(f"X_train {X_train.shape} must have one row per Z_train row ({Z_train.shape[0]})")
        if not np.isfinite(X_train).all():
            raise ValueError("X_train contains NaN or Inf")
        if feature_pca_components < 1:
            raise ValueError(f"feature_pca_components must be >= 1, got {feature_pca_components}")
    return AnomalyScorer(Z_train, centers, n_neighbors, X_train, feature_pca_components, random_state)


# --------------------------------------------------------------------------- novelty, QC and the one anomaly table
#: Terms of the novelty score (see NoveltyScorer); what benchmarks/bench_anomaly.py measured best.
DEFAULT_NOVELTY_TERMS: tuple[str, ...] = ("knn", "cluster_mahalanobis")
NOVELTY_TERMS: tuple[str, ...] = ("knn", "gauss", "cluster_mahalanobis")
#: Quantile of the training scores that sets the artefact and novelty thresholds.
DEFAULT_THRESHOLD_QUANTILE = 0.99
#: Nearest training patches listed per patch (``novelty_neighbours``).
N_NEIGHBOURS_LISTED = 3
#: Columns :func:`score_anomalies` returns (besides the per-attribute ``qc_<attribute>`` and per-term columns).
ANOMALY_COLUMNS = [
    "qc_score", "qc_attribute", "qc_reason", "novelty_score", "novelty_neighbours", "anomaly_score", "kind",
]
KINDS = ("artefact", "novel", "normal")


class NoveltyScorer:
    """Is this patch geologically unlike the training set? Density in a PCA of the backbone features, no UMAP.

    Terms, each a robust z against the training patches (median and 1.4826 MAD of the training values, training
    points scored without themselves where it matters):

    ``knn``
        mean distance to the ``n_neighbors`` nearest training patches in PCA space (leave-self-out on training);
    ``gauss``
        Mahalanobis distance to one Gaussian of all training patches (Ledoit-Wolf shrunk covariance);
    ``cluster_mahalanobis``
        the smallest Mahalanobis distance to the Gaussians of ``n_clusters`` k-means clusters fitted in PCA space
        (Ledoit-Wolf per cluster): a patch between or beyond the known groups.

    ``novelty_score`` is the mean of the chosen terms' z-scores.
    """

    def __init__(self, X_train, *, n_components=DEFAULT_FEATURE_PCA_COMPONENTS, n_neighbors=DEFAULT_N_NEIGHBORS,
                 n_clusters=4, terms=DEFAULT_NOVELTY_TERMS, random_state=DEFAULT_RANDOM_STATE):
        X_train = np.asarray(X_train, dtype=np.float64)
        unknown = set(terms) - set(NOVELTY_TERMS)
        if unknown or not terms:
            raise ValueError(f"novelty terms must be a non-empty subset of {NOVELTY_TERMS}, got {terms}")
        n = len(X_train)
        if n < 4:
            raise ValueError(f"need at least 4 training patches for the novelty score, got {n}")
        self.terms = tuple(terms)
        n_comp = int(min(n_components, X_train.shape[0] - 1, X_train.shape[1]))
        self.pca_ = PCA(n_components=n_comp, random_state=random_state).fit(X_train)
        P = self.pca_.transform(X_train)
        self.n_neighbors = int(min(n_neighbors, n - 1))
        self._nn = NearestNeighbors(n_neighbors=max(self.n_neighbors, N_NEIGHBOURS_LISTED) + 1).fit(P)
        self._gauss = LedoitWolf().fit(P) if "gauss" in self.terms else None
        self._clusters = []
        if "cluster_mahalanobis" in self.terms:
            k = int(max(1, min(n_clusters, n // 10)))
            labels = KMeans(k, n_init=10, random_state=random_state).fit_predict(P)
            self._clusters = [LedoitWolf().fit(P[labels == c]) for c in range(k) if (labels == c).sum() >= 3]
        raw = self._raw(P, exclude_self=True)
        self.location_, self.scale_ = {}, {}
        for t, v in raw.items():
            med, s = _robust_location_scale(v)
            self.location_[t], self.scale_[t] = med, _floor_scale(s, med)
        self.training_scores_ = self._frame(raw)

    def _raw(self, P, exclude_self):
        out = {}
        if "knn" in self.terms:
            out["knn"] = _mean_knn_distance(self._nn, self.n_neighbors, P, exclude_self)
        if "gauss" in self.terms:
            out["gauss"] = np.sqrt(self._gauss.mahalanobis(P))
        if "cluster_mahalanobis" in self.terms:
            out["cluster_mahalanobis"] = np.sqrt(np.min([c.mahalanobis(P) for c in self._clusters], axis=0))
        return out

    def _frame(self, raw) -> pd.DataFrame:
        cols = {f"novelty_{t}_z": (raw[t] - self.location_[t]) / self.scale_[t] for t in self.terms}
        frame = pd.DataFrame(cols)
        frame["novelty_score"] = frame.mean(axis=1)
        return frame

    def neighbours(self, X, exclude_self=False, n=N_NEIGHBOURS_LISTED) -> np.ndarray:
        """Indices (n_rows, n) of the nearest training patches in PCA space (without the row itself on training)."""
        P = self.pca_.transform(np.asarray(X, dtype=np.float64))
        _, idx = self._nn.kneighbors(P, n_neighbors=n + 1)
        if exclude_self:
            keep = idx != np.arange(len(P))[:, None]
            return np.array([row[k][:n] for row, k in zip(idx, keep)])
        return idx[:, :n]

    def score(self, X) -> pd.DataFrame:
        """``novelty_<term>_z`` and ``novelty_score`` of new rows (not training rows: ``training_scores_``)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.pca_.n_features_in_:
            raise ValueError(f"expected features of shape (n, {self.pca_.n_features_in_}), got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("features contain NaN or Inf")
        return self._frame(self._raw(self.pca_.transform(X), exclude_self=False))


class AnomalyModel:
    """Everything that scores a patch as artefact, novel or normal; saved as ``anomaly_scorer.joblib``.

    Build it with :func:`fit_anomaly_model`, use it through :func:`score_anomalies`.

    Attributes
    ----------
    scorer : AnomalyScorer (centroid_z and knn in the clustering embedding; kept as diagnostics)
    novelty : NoveltyScorer
    qc : seis_assets.core.qc.QCCalibration
    train_paths : ndarray of str, the training patches in fit order (for ``novelty_neighbours``)
    novelty_threshold, qc_threshold : float, the training ``quantile`` of each score
    training_scores_ : DataFrame, :func:`score_anomalies` of the training patches (kNN terms leave each one out)
    """

    def __init__(self, scorer, novelty, qc, train_paths, quantile, feature_scaler=None):
        self.scorer, self.novelty, self.qc = scorer, novelty, qc
        #: ``reduce.BlockScaler`` of CNN + texture features (applied to every ``X`` by :func:`score_anomalies`), or None
        self.feature_scaler_ = feature_scaler
        self.train_paths = np.asarray(train_paths, dtype=str)
        self.quantile = float(quantile)
        self.novelty_threshold = float(np.quantile(novelty.training_scores_["novelty_score"], quantile))
        if not self.novelty_threshold > 0:
            raise ValueError(f"novelty threshold {self.novelty_threshold} is not positive: too few training patches?")

    @property
    def qc_threshold(self) -> float:
        return float(self.qc.threshold)

    @property
    def uses_features(self) -> bool:
        return True

    @property
    def columns(self) -> list[str]:
        return ANOMALY_COLUMNS


def fit_anomaly_model(Z_train, kmeans, X_train, qc_train: pd.DataFrame, train_paths, *,
                      n_neighbors=DEFAULT_N_NEIGHBORS, novelty_terms=DEFAULT_NOVELTY_TERMS,
                      feature_pca_components=DEFAULT_FEATURE_PCA_COMPONENTS,
                      quantile=DEFAULT_THRESHOLD_QUANTILE, random_state=DEFAULT_RANDOM_STATE,
                      feature_blocks: list | None = None) -> AnomalyModel:
    """Fit the QC calibration, the novelty scorer and the embedding scorer on the training patches.

    Parameters
    ----------
    Z_train : (n_train, d) clustering embedding; kmeans: fitted KMeans (or centroids)
    X_train : (n_train, dim) backbone features of the same rows
    qc_train : DataFrame of :func:`seis_assets.core.qc.qc_attributes` rows, same rows and order
    train_paths : the same rows' paths
    quantile : training quantile of the novelty threshold (default 0.99); the QC threshold is
        :func:`seis_assets.core.qc.fit_qc`'s (99.5th percentile of the training ``qc_score``)
    feature_blocks : list of (start, stop, mode) or None
        CNN + texture features: the blocks of :class:`seis_assets.core.reduce.BlockScaler`, fitted on ``X_train``
        and applied to every ``X`` before the feature-space scores (the attributes' mixed units would otherwise
        dominate the PCA and the distances).
    """
    X_raw = X_train
    feature_scaler = BlockScaler(feature_blocks).fit(X_raw) if feature_blocks else None
    X_train = np.asarray(X_raw if feature_scaler is None else feature_scaler.transform(X_raw), dtype=np.float64)
    n = len(X_train)
    if len(qc_train) != n or len(train_paths) != n:
        raise ValueError(f"X_train ({n}), qc_train ({len(qc_train)}) and train_paths ({len(train_paths)}) must "
                         "have one row per training patch")
    k = int(np.asarray(getattr(kmeans, "cluster_centers_", kmeans)).shape[0])
    scorer = fit_anomaly_scorer(Z_train, kmeans, n_neighbors=n_neighbors, X_train=X_train,
                                feature_pca_components=feature_pca_components, random_state=random_state)
    novelty = NoveltyScorer(X_train, n_components=feature_pca_components, n_neighbors=n_neighbors, n_clusters=k,
                            terms=novelty_terms, random_state=random_state)
    qc_train = qc_train.reset_index(drop=True)
    model = AnomalyModel(scorer, novelty, fit_qc(qc_train), train_paths, quantile, feature_scaler)
    model.training_scores_ = score_anomalies(model, Z_train, X_raw, qc_train, training=True)
    return model


def score_anomalies(model: AnomalyModel, Z, X, qc_attrs: pd.DataFrame, *, training: bool = False) -> pd.DataFrame:
    """The one place where patches get their QC, novelty and combined anomaly scores (pipeline and prediction).

    Parameters
    ----------
    model : AnomalyModel
    Z : (n, d) clustering embedding; X : (n, dim) backbone features; qc_attrs : QC attribute rows; all aligned
    training : True when the rows are the model's training patches in fit order (then kNN terms leave each patch
        out and ``novelty_neighbours`` never lists the patch itself)

    Returns
    -------
    DataFrame (positional index) with cluster, centroid_z, knn, feature_knn_z (diagnostics in the embedding),
    qc_<attribute> (robust score per QC attribute), qc_score, qc_attribute, qc_reason ("" unless it is an
    artefact), novelty_<term>_z, novelty_score, novelty_neighbours (paths of the nearest training patches, nearest
    first), anomaly_score = max(qc_score / qc_threshold, novelty_score / novelty_threshold) (> 1: above a
    threshold), and kind: "artefact" (qc_score above its threshold), else "novel" (novelty_score above its
    threshold), else "normal".
    """
    if not isinstance(model, AnomalyModel):
        raise TypeError(
            f"expected an AnomalyModel (fit_anomaly_model), got {type(model).__name__}: anomaly_scorer.joblib was "
            "written before QC and novelty scores existed; re-run the recluster job to refit it"
        )
    scaler = getattr(model, "feature_scaler_", None)  # None: CNN features alone, or a model pickled before fusion
    if scaler is not None:
        X = scaler.transform(X)
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if len(qc_attrs) != n or len(Z) != n:
        raise ValueError(f"Z ({len(Z)}), X ({n}) and qc_attrs ({len(qc_attrs)}) must be aligned")
    if training:
        if n != len(model.train_paths):
            raise ValueError(f"training=True needs the {len(model.train_paths)} training rows, got {n}")
        emb = model.scorer.training_scores_.reset_index(drop=True)
        nov = model.novelty.training_scores_.reset_index(drop=True)
    else:
        emb = model.scorer.score(Z, X)
        nov = model.novelty.score(X)
    qc = model.qc.score(qc_attrs.reset_index(drop=True))
    out = pd.concat([emb[["cluster", "centroid_z", "knn", "feature_knn_z"]], qc, nov], axis=1)
    nb = model.novelty.neighbours(X, exclude_self=training) if n else np.zeros((0, N_NEIGHBOURS_LISTED), int)
    out["novelty_neighbours"] = [list(model.train_paths[row]) for row in nb]
    q = out["qc_score"].to_numpy(float) / model.qc_threshold
    v = out["novelty_score"].to_numpy(float) / model.novelty_threshold
    out["anomaly_score"] = np.maximum(q, v)
    out["kind"] = np.where(out["qc_artefact"], "artefact", np.where(v > 1, "novel", "normal"))
    return out.drop(columns=["qc_artefact"])
