"""Anomaly scores of patches as the pipeline and the predictions publish them: :func:`score_anomalies` (QC
artefacts, novelty, the combined ``anomaly_score`` and ``kind``) with a fitted :class:`AnomalyModel`.

The model also carries the scores in the clustering embedding (:mod:`seis_assets.core.anomaly_embedding`,
diagnostics). The novelty terms (:class:`NoveltyScorer`) are, like those, robust z-scores against the training
patches (why robust z: that module's docstring). How well the scores flag anomalies is measured in
:mod:`seis_assets.core.anomaly_evaluation`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

# AnomalyScorer is named here as well as used: models pickled before the embedding scores had their own module
# (anomaly_scorer.joblib of older generations) look it up as seis_assets.core.anomaly.AnomalyScorer.
from seis_assets.core.anomaly_embedding import (
    DEFAULT_FEATURE_PCA_COMPONENTS,
    DEFAULT_N_NEIGHBORS,
    DEFAULT_RANDOM_STATE,
    AnomalyScorer,
    fit_anomaly_scorer,
    floor_scale,
    mean_knn_distance,
    robust_location_scale,
)
from seis_assets.core.qc import fit_qc
from seis_assets.core.reduce import BlockScaler

__all__ = [
    "ANOMALY_COLUMNS",
    "DEFAULT_NOVELTY_TERMS",
    "AnomalyModel",
    "NoveltyScorer",
    "fit_anomaly_model",
    "score_anomalies",
]

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
            med, s = robust_location_scale(v)
            self.location_[t], self.scale_[t] = med, floor_scale(s, med)
        self.training_scores_ = self._frame(raw)

    def _raw(self, P, exclude_self):
        out = {}
        if "knn" in self.terms:
            out["knn"] = mean_knn_distance(self._nn, self.n_neighbors, P, exclude_self)
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

    def __init__(self, scorer: AnomalyScorer, novelty, qc, train_paths, quantile, feature_scaler=None):
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
