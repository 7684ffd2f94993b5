"""How well anomaly scores flag what they should: ROC AUC, and a class the model never saw.

The scores themselves are made in :mod:`seis_assets.core.anomaly` and :mod:`seis_assets.core.anomaly_embedding`;
this module measures them (the pipeline's ``anomaly_roc_auc`` and ``benchmarks/bench_anomaly.py``, whose figures
are in benchmarks/README.md, "Anomaly detection").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from seis_assets.core.anomaly_embedding import DEFAULT_FEATURE_PCA_COMPONENTS, DEFAULT_N_NEIGHBORS, fit_anomaly_scorer
from seis_assets.core.cluster import fit_kmeans

__all__ = ["leave_one_class_out_auc", "roc_auc"]


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
    feature_pca_components: int | None = DEFAULT_FEATURE_PCA_COMPONENTS,
) -> dict:
    """How well the scores flag a class the model never saw.

    The other classes are split into a fit part and an evaluation part. The embedding (optional), k-means and the
    scorer are fitted on the fit part only; the evaluation part (normal) and every patch of ``held_out``
    (anomalies) are embedded with ``transform`` and scored, and the ROC AUC is computed for ``score``,
    ``centroid_z``, ``knn`` and ``feature_knn``. With an ``embed``, ``X`` is the raw features and the scorer is
    also given them (``X_train``), so ``score`` is the three-term default; without one, ``X`` is the embedding
    itself and ``score`` is ``(centroid_z + knn_z) / 2``.

    Parameters
    ----------
    X : array-like (n_samples, n_features), features, or already a distance-preserving embedding without ``embed``
    labels : array-like of str (n_samples,); held_out : the class treated as unseen (e.g. "fault")
    embed : ``embed(X_fit) -> (model, Z_fit)`` where ``model.transform(X)`` embeds new rows, e.g.
        ``functools.partial(reduce.fit_reducer, n_components=50)``; None: ``X`` as is
    k : clusters; default the number of remaining classes
    n_neighbors : of the kNN terms
    eval_fraction : share of each remaining class kept out of fitting as normal examples
    split : "random" (stratified random) or "tail" (the last ``eval_fraction`` of each class in input order: F3
        patches are cut with overlap, so a random split puts near-duplicates on both sides)
    random_state : seed of the split and of k-means
    feature_pca_components : PCA components of the feature kNN term (only with ``embed``); None leaves it out

    Returns
    -------
    dict with held_out, auc (of ``score``), auc_centroid_z, auc_knn, auc_feature_knn (NaN without the feature term),
    n_fit, n_normal, n_anomaly, k.
    """
    X = np.asarray(X)
    labels = np.asarray(labels).astype(str)
    _check_held_out(X, labels, held_out, eval_fraction)
    fit_idx, eval_idx = _split_known_classes(labels, held_out, eval_fraction, split, random_state)
    anom_idx = np.flatnonzero(labels == held_out)
    scored_idx = np.concatenate([eval_idx, anom_idx])
    Z_fit, Z_eval = _embed(X, fit_idx, scored_idx, embed)
    k = int(k or len(set(labels)) - 1)
    km = fit_kmeans(Z_fit, k, random_state=random_state)
    with_features = embed is not None and feature_pca_components is not None  # else no feature term
    scorer = fit_anomaly_scorer(Z_fit, km, n_neighbors=n_neighbors, X_train=X[fit_idx] if with_features else None,
                                feature_pca_components=feature_pca_components, random_state=random_state)
    scores = scorer.score(Z_eval, X[scored_idx] if with_features else None)
    is_anom = np.r_[np.zeros(len(eval_idx), bool), np.ones(len(anom_idx), bool)]
    return {"held_out": held_out, **_aucs(is_anom, scores), "n_fit": int(len(fit_idx)), "n_normal": int(len(eval_idx)),
            "n_anomaly": int(len(anom_idx)), "k": k}


def _check_held_out(X: np.ndarray, labels: np.ndarray, held_out: str, eval_fraction: float) -> None:
    if X.ndim != 2 or len(X) != len(labels):
        raise ValueError(f"X {X.shape} and labels {labels.shape} do not match")
    if held_out not in set(labels):
        raise ValueError(f"held_out class {held_out!r} not in labels {sorted(set(labels))}")
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")


def _split_known_classes(labels: np.ndarray, held_out: str, eval_fraction: float, split: str,
                         random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the fit part and of the evaluation part of every class but ``held_out``."""
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
    return np.concatenate(fit_idx), np.concatenate(eval_idx)


def _embed(X: np.ndarray, fit_idx: np.ndarray, scored_idx: np.ndarray,
           embed: Callable | None) -> tuple[np.ndarray, np.ndarray]:
    """The fit rows and the scored rows in the embedding fitted on the fit rows (``X`` itself without ``embed``)."""
    if embed is None:
        return np.asarray(X[fit_idx], dtype=np.float64), np.asarray(X[scored_idx], dtype=np.float64)
    model, Z_fit = embed(X[fit_idx])
    return Z_fit, model.transform(X[scored_idx])


def _aucs(is_anom: np.ndarray, scores: pd.DataFrame) -> dict[str, float]:
    return {
        "auc": roc_auc(is_anom, scores["score"]),
        "auc_centroid_z": roc_auc(is_anom, scores["centroid_z"]),
        "auc_knn": roc_auc(is_anom, scores["knn"]),
        "auc_feature_knn": roc_auc(is_anom, scores["feature_knn"]) if "feature_knn" in scores else float("nan"),
    }
