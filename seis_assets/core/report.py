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

from seis_assets.core.anomaly import score_anomalies
from seis_assets.core.anomaly_evaluation import roc_auc
from seis_assets.core.cluster import apply_mapping
from seis_assets.core.evaluate import classification_table, clustering_scores, confusion, label_free_scores

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
    train = (embedding["split"] == "train").to_numpy()
    qc_attrs = qc_attrs.reset_index(drop=True)
    parts = [score_anomalies(model, Z[train], X[train], qc_attrs[train], training=True)]
    parts[0].index = np.flatnonzero(train)
    if (~train).any():  # a survey without a test folder (real LANDMASS, F3) has only training patches
        parts.append(score_anomalies(model, Z[~train], X[~train], qc_attrs[~train]))
        parts[1].index = np.flatnonzero(~train)
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


def has_labels(labels) -> bool:
    """Whether a label column names a category for every patch (``False`` for unlabelled data: all null)."""
    labels = pd.Series(labels, dtype=object)
    return len(labels) > 0 and bool(labels.notna().all())


def mapping_has_labels(mapping: pd.DataFrame | None) -> bool:
    """Whether a ``cluster_mapping`` table maps clusters to categories (it does not on unlabelled data)."""
    return mapping is not None and len(mapping) > 0 and has_labels(mapping["majority"])


ASSIGNMENT_COLUMNS = ["split", "cluster", "category", "mapped_category", "anomaly_score", "anomaly_rank"]


def assignment_rows(
    scored: pd.DataFrame, mapping: pd.DataFrame | None = None, id_columns: tuple[str, ...] = ("path",)
) -> pd.DataFrame:
    """One row per patch: where it is, its split, cluster, label, mapped category, anomaly score and rank.

    The one place that joins clusters, the cluster -> category mapping and the anomaly table.

    Parameters
    ----------
    scored : the ``anomalies`` table (every patch, train and test): ``id_columns``, split, category (null on
        unlabelled data), cluster, ``score``, ``rank`` (whatever score the anomaly step publishes)
    mapping : the ``cluster_mapping`` table, or None; its majority category becomes ``mapped_category`` when it
        maps to categories (labelled data or a model fitted on labelled data), else ``mapped_category`` is null
    id_columns : what locates a patch: ``("path",)`` for files, e.g. ``("inline", "xline", "sample")`` for windows

    Returns
    -------
    DataFrame with ``id_columns`` then ASSIGNMENT_COLUMNS, sorted by split then the id columns.
    """
    clusters = scored["cluster"].astype(int)
    if mapping_has_labels(mapping):
        lookup = cluster_labels(mapping, "majority")
        mapped = pd.Series(apply_mapping(clusters.to_numpy(), lookup), index=scored.index, dtype=object)
    else:
        mapped = pd.Series([None] * len(scored), index=scored.index, dtype=object)
    category = scored["category"] if "category" in scored else pd.Series([None] * len(scored), index=scored.index)
    out = scored[list(id_columns)].copy()
    out["split"] = scored["split"].astype(str)
    out["cluster"] = clusters.to_numpy()
    out["category"] = category.astype(object).where(category.notna(), None)
    out["mapped_category"] = mapped
    out["anomaly_score"] = scored["score"].astype(float)
    out["anomaly_rank"] = scored["rank"].astype("int64")
    if "kind" in scored:  # artefact | novel | normal (seis_assets.core.anomaly.score_anomalies)
        out["anomaly_kind"] = scored["kind"].astype(str)
    return out.sort_values(["split", *id_columns], kind="stable").reset_index(drop=True)


def predict_test_set(scored: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """Predictions for the test patches, with the seed's columns first.

    Columns: file, true_label, cluster, predicted_label (majority mapping, as the seed did), then
    predicted_hungarian, anomaly_score, anomaly_rank, injected_anomaly (bool), anomaly_kind.
    """
    test = scored[scored["split"] == "test"].sort_values("path", kind="stable").reset_index(drop=True)
    clusters = test["cluster"].astype(int).to_numpy()
    if not mapping_has_labels(mapping):  # unlabelled: no category to predict
        none = [None] * len(test)
        return pd.DataFrame(
            {
                "file": test["path"], "true_label": none, "cluster": clusters, "predicted_label": none,
                "predicted_hungarian": none, "anomaly_score": test["score"], "anomaly_rank": test["rank"],
                "injected_anomaly": test["known_anomaly"] != "", "anomaly_kind": test["known_anomaly"],
            }
        )
    majority, hungarian = cluster_labels(mapping, "majority"), cluster_labels(mapping, "hungarian")
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
    clean = predictions[~predictions["injected_anomaly"] & predictions["true_label"].notna()]
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
    stability_runs: int = 5,
    k_rule: str | None = None,
) -> dict:
    """The metrics.json document: clustering agreement on train, accuracy on test, anomaly ROC AUC, and the
    label-free quality of the clustering (silhouette, Davies-Bouldin, stability across seeds).

    Values that are undefined on the data (no test set, no known anomalies, no labels: ARI and the other label
    metrics) are ``None``, never a made-up number.
    """
    labelled = has_labels(train_labels)
    scores = _clustering_quality(train_labels, train_clusters, Z_train, labelled, random_state, stability_runs)
    doc = {key: _finite_or_none(value) for key, value in scores.items()}
    doc.update(_test_results(predictions, scored))
    doc.update(
        {
            "backbone": str(identity.get("backbone")),
            "weights": str(identity.get("weights")),
            "input_size": str(identity.get("input_size")),
            "precision": str(identity.get("precision")),
            "n_train": int(len(Z_train)),
            "n_test": int(len(predictions)),
            "n_quarantined": int(n_quarantined),
            "quarantine_share": (n_quarantined / n_files) if n_files else 0.0,
            "k": int(k),
            "k_rule": k_rule,
            "labelled": labelled,
            "categories": sorted(map(str, set(train_labels))) if labelled else [],
        }
    )
    return doc


def _clustering_quality(train_labels, train_clusters, Z_train, labelled: bool, random_state: int,
                        stability_runs: int) -> dict[str, float]:
    """Agreement with the labels (NaN on unlabelled data) and the label-free scores of the training clustering."""
    if labelled:
        scores = clustering_scores(train_labels, train_clusters, Z_train, random_state=random_state)
    else:
        scores = dict.fromkeys(["ari", "ami", "nmi", "homogeneity", "completeness", "v_measure"], float("nan"))
    scores.update(
        label_free_scores(Z_train, train_clusters, stability_runs=stability_runs, random_state=random_state)
    )
    return scores


def _test_results(predictions: pd.DataFrame, scored: pd.DataFrame) -> dict:
    """Test accuracy under both mappings (injected anomalies left out) and the ROC AUC of the known anomalies."""
    clean = predictions[~predictions["injected_anomaly"] & predictions["true_label"].notna()]
    accuracy = {
        m: (float((clean["true_label"] == clean[col]).mean()) if len(clean) else None)
        for m, col in (("majority", "predicted_label"), ("hungarian", "predicted_hungarian"))
    }
    test = scored[scored["split"] == "test"]
    known = test["known_anomaly"] != ""
    auc = _finite_or_none(roc_auc(known.to_numpy(), test["score"].to_numpy())) if len(test) else None
    return {
        "accuracy_test": accuracy["majority"],
        "accuracy_test_hungarian": accuracy["hungarian"],
        "anomaly_roc_auc": auc,
        "n_known_anomalies_test": int(known.sum()),
    }


def confusion_table(predictions: pd.DataFrame, classes, column: str = "predicted_label") -> pd.DataFrame:
    """Confusion matrix of the test set (rows true, columns predicted), injected anomalies left out."""
    clean = predictions[~predictions["injected_anomaly"]]
    return confusion(clean["true_label"], clean[column], classes)
