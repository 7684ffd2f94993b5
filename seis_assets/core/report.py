"""Putting the pieces together: per-patch predictions with anomaly scores, and the metrics summary.

These functions compose the single-idea modules (cluster, evaluate, anomaly) into the tables the pipeline
publishes: ``predictions.csv`` (test patches), the ranked anomalies (all patches), ``classification_metrics.csv``
and ``metrics.json``.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from seis_assets.core.anomaly import roc_auc
from seis_assets.core.cluster import apply_mapping
from seis_assets.core.evaluate import classification_table, clustering_scores, confusion

MAPPINGS = ("majority", "hungarian")


def score_patches(
    embedding: pd.DataFrame, Z: np.ndarray, model, kmeans, known_kinds: pd.Series, X: np.ndarray,
    qc_attrs: pd.DataFrame,
) -> pd.DataFrame:
    """QC, novelty and combined anomaly score of every patch, most anomalous first (the ``anomalies`` table).

    Parameters
    ----------
    embedding : DataFrame with path, category, split (n_samples rows)
    Z : ndarray (n_samples, d), the clustering embedding, rows aligned with ``embedding``
    model : fitted :class:`seis_assets.core.anomaly.AnomalyModel`, fitted on the training rows in order
    kmeans : the fitted KMeans (training rows' ``labels_`` in order)
    known_kinds : Series (n_samples,) of known/injected anomaly kinds ("" for ordinary patches)
    X : ndarray (n_samples, dim), the backbone features of the same rows
    qc_attrs : DataFrame (n_samples rows, aligned) of QC attributes (``seis_assets.core.qc.qc_table``)

    Returns
    -------
    DataFrame with path, category, split, then the columns of :func:`seis_assets.core.anomaly.score_anomalies`
    (qc_score, qc_reason, novelty_score, novelty_neighbours, anomaly_score, kind, ...), ``score`` (=
    anomaly_score, the name earlier tables used), known_anomaly and rank (1 = most anomalous).
    """
    from seis_assets.core.anomaly import score_anomalies

    train = (embedding["split"] == "train").to_numpy()
    qc_attrs = qc_attrs.reset_index(drop=True)
    parts = [
        score_anomalies(model, Z[train], X[train], qc_attrs[train], training=True),
        score_anomalies(model, Z[~train], X[~train], qc_attrs[~train]),
    ]
    for part, mask in zip(parts, (train, ~train)):
        part.index = np.flatnonzero(mask)
    scores = pd.concat(parts).sort_index()
    scores.loc[train, "cluster"] = np.asarray(kmeans.labels_, dtype=int)
    out = pd.concat([embedding[["path", "category", "split"]].reset_index(drop=True), scores], axis=1)
    out["cluster"] = out["cluster"].astype(int)
    out["score"] = out["anomaly_score"]
    out["known_anomaly"] = known_kinds.reset_index(drop=True).astype(str).to_numpy()
    out = out.sort_values("anomaly_score", ascending=False, kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def cluster_labels(mapping: pd.DataFrame, column: str = "majority") -> dict[int, str]:
    """``{cluster id: category}`` from the ``cluster_mapping`` table (``column``: "majority" or "hungarian")."""
    return dict(zip(mapping["cluster"].astype(int), mapping[column]))


def predict_test_set(scored: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """Predictions for the test patches, with the seed's columns first.

    Columns: file, true_label, cluster, predicted_label (majority mapping, as the seed did), then
    predicted_hungarian, anomaly_score, anomaly_rank, injected_anomaly (bool), anomaly_kind.
    """
    test = scored[scored["split"] == "test"].sort_values("path", kind="stable").reset_index(drop=True)
    majority, hungarian = cluster_labels(mapping, "majority"), cluster_labels(mapping, "hungarian")
    clusters = test["cluster"].astype(int).to_numpy()
    return pd.DataFrame(
        {
            "file": test["path"],
            "true_label": test["category"],
            "cluster": clusters,
            "predicted_label": apply_mapping(clusters, majority) if len(test) else [],
            "predicted_hungarian": apply_mapping(clusters, hungarian) if len(test) else [],
            "anomaly_score": test["score"],
            "anomaly_rank": test["rank"],
            "injected_anomaly": test["known_anomaly"] != "",
            "anomaly_kind": test["known_anomaly"],
        }
    )


def classification_metrics(predictions: pd.DataFrame, classes) -> pd.DataFrame:
    """Per-class precision/recall/F1/support and accuracy on the test set, under both mappings.

    Injected anomalies are left out (they are not examples of their folder's class). Columns: mapping, class,
    precision, recall, f1, support (the rows of :func:`seis_assets.core.evaluate.classification_table`).
    """
    clean = predictions[~predictions["injected_anomaly"]]
    parts = []
    for mapping, column in (("majority", "predicted_label"), ("hungarian", "predicted_hungarian")):
        if clean.empty:
            continue
        table = classification_table(clean["true_label"], clean[column], classes)
        table.insert(0, "mapping", mapping)
        parts.append(table)
    if not parts:
        return pd.DataFrame(columns=["mapping", "class", "precision", "recall", "f1", "support"])
    return pd.concat(parts, ignore_index=True)


def _finite_or_none(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def summarise(
    *,
    train_labels,
    train_clusters,
    Z_train: np.ndarray,
    predictions: pd.DataFrame,
    classification: pd.DataFrame,
    scored: pd.DataFrame,
    identity: Mapping,
    k: int,
    n_quarantined: int,
    n_files: int,
    random_state: int,
) -> dict:
    """The metrics.json document: clustering agreement on train, accuracy on test, anomaly ROC AUC.

    Values that are undefined on the data (no test set, no known anomalies) are ``None``, never a made-up number.
    """
    scores = clustering_scores(train_labels, train_clusters, Z_train, random_state=random_state)
    clean = predictions[~predictions["injected_anomaly"]]
    accuracy = {
        m: (float((clean["true_label"] == clean[col]).mean()) if len(clean) else None)
        for m, col in (("majority", "predicted_label"), ("hungarian", "predicted_hungarian"))
    }
    test = scored[scored["split"] == "test"]
    known = test["known_anomaly"] != ""
    auc = _finite_or_none(roc_auc(known.to_numpy(), test["score"].to_numpy())) if len(test) else None
    doc = {key: _finite_or_none(value) for key, value in scores.items()}
    doc.update(
        {
            "accuracy_test": accuracy["majority"],
            "accuracy_test_hungarian": accuracy["hungarian"],
            "anomaly_roc_auc": auc,
            "n_known_anomalies_test": int(known.sum()),
            "backbone": str(identity.get("backbone")),
            "weights": str(identity.get("weights")),
            "input_size": str(identity.get("input_size")),
            "precision": str(identity.get("precision")),
            "n_train": int(len(Z_train)),
            "n_test": int(len(predictions)),
            "n_quarantined": int(n_quarantined),
            "quarantine_share": (n_quarantined / n_files) if n_files else 0.0,
            "k": int(k),
            "categories": sorted(map(str, set(train_labels))),
        }
    )
    return doc


def confusion_table(predictions: pd.DataFrame, classes, column: str = "predicted_label") -> pd.DataFrame:
    """Confusion matrix of the test set (rows true, columns predicted), injected anomalies left out."""
    clean = predictions[~predictions["injected_anomaly"]]
    return confusion(clean["true_label"], clean[column], classes)
