"""What a re-clustering leaves in the output folder for a reader: the evaluation plots and the metrics files.

:func:`write_evaluation_plots` decides which plots the data allow (true-class scatter only with labels, novel
patches only when there are some, a confusion matrix only with labelled test patches), draws them with
``seis_assets.core.plots`` and removes a plot left by an earlier run that would now describe other data.
:func:`write_metrics_files` writes ``metrics.json``, ``classification_metrics.csv`` and ``confusion_matrix.csv``.
No Dagster imports here.
"""

from __future__ import annotations

import json
import logging
import textwrap

import pandas as pd
from upath import UPath

from seis_assets.core.dataset import stack_vectors
from seis_assets.core.patches import load_patch
from seis_assets.core.plots import (
    anomaly_gallery, cluster_gallery, confusion_heatmap, novelty_neighbours_gallery, scatter_clusters, scatter_labels,
)
from seis_assets.core.report import cluster_labels, confusion_table, has_labels, mapping_has_labels
from seis_assets.core.storage import atomic_write_bytes

_LOG = logging.getLogger(__name__)

#: novel patches shown beside their nearest training patches (novel_neighbours.png)
N_NOVEL_SHOWN = 8


def _short_name(path: str) -> str:
    parts = str(path).replace("\\", "/").split("/")
    return "/".join(parts[-2:])[-28:]


def anomaly_label(r) -> str:
    """Gallery title lines: split/category, kind and its reason (QC reason, or the novelty score)."""
    text = f"{r.split}/{r.category}\n{r.kind}"
    if r.kind == "artefact":
        text += ":\n" + "\n".join(textwrap.wrap(r.qc_reason, 24))
    elif r.kind == "novel":
        text += f" (novelty {r.novelty_score:.1f})"
    if r.known_anomaly:
        text += f"\n[known: {r.known_anomaly}]"
    return text


def _remove_stale(path: UPath, why: str, logger) -> None:
    """Remove a plot an earlier run wrote that this run's data do not make."""
    if path.exists():
        path.unlink()
        logger.info(f"{why}: removed the previous run's {path.name}")


def _anomaly_plots(anomalies: pd.DataFrame, folder: UPath, load, n_top: int, logger) -> dict[str, str]:
    """The most anomalous patches with their kind and reason; novel patches beside their nearest training ones."""
    top = anomalies.head(n_top).reset_index(drop=True)
    out = {
        "top_anomalies": anomaly_gallery(
            lambda i: load(top["path"].iloc[i]), top["anomaly_score"].to_numpy(), folder / "top_anomalies.png",
            labels=[anomaly_label(r) for r in top.itertuples()], n=len(top),
        )
    }
    novel = anomalies[anomalies["kind"] == "novel"].head(N_NOVEL_SHOWN).reset_index(drop=True)
    if len(novel):
        out["novel_neighbours"] = novelty_neighbours_gallery(
            lambda i: load(novel["path"].iloc[i]),
            [lambda j, nb=list(r.novelty_neighbours): load(nb[j]) for r in novel.itertuples()],
            [f"#{r.rank} novelty {r.novelty_score:.1f}\n{r.split}/{r.category}"
             + (f" [{r.known_anomaly}]" if r.known_anomaly else "") for r in novel.itertuples()],
            [[_short_name(p) for p in r.novelty_neighbours] for r in novel.itertuples()],
            folder / "novel_neighbours.png",
        )
    else:
        _remove_stale(folder / "novel_neighbours.png", "no novel patches this run", logger)
    return out


def write_evaluation_plots(
    umap_2d: pd.DataFrame,
    clusters,
    cluster_mapping: pd.DataFrame,
    predictions: pd.DataFrame,
    anomalies: pd.DataFrame,
    folder: UPath,
    *,
    mat_key: str | None,
    random_state: int,
    n_top_anomalies: int,
    logger=None,
) -> dict[str, str]:
    """Write the PNG plots of a re-clustering into ``folder``; ``{plot name: path}``.

    UMAP 2-d by true category (labelled data) and by KMeans cluster (``clusters``: the training patches' labels, in
    ``umap_2d``'s train order), sample patches per cluster, the ``n_top_anomalies`` most anomalous patches, novel
    patches beside their nearest training patches, the test confusion matrix (every test patch labelled).
    """
    logger = logger or _LOG
    folder.mkdir(parents=True, exist_ok=True)
    train = umap_2d[umap_2d["split"] == "train"].reset_index(drop=True)
    xy = stack_vectors(train["embedding"])
    labelled = has_labels(train["category"])
    mapping = cluster_labels(cluster_mapping, "majority") if mapping_has_labels(cluster_mapping) else None
    classes = sorted(train["category"].unique()) if labelled else []

    def load(path):
        return load_patch(path, mat_key)

    out = {}
    if labelled:
        out["umap_true_labels"] = scatter_labels(
            xy, train["category"], "UMAP 2-d, training patches by true category", folder / "umap_true_labels.png",
            classes=classes,
        )
    else:
        _remove_stale(folder / "umap_true_labels.png", "unlabelled data", logger)
    out["umap_kmeans_clusters"] = scatter_clusters(
        xy, clusters, "UMAP 2-d, training patches by KMeans cluster", folder / "umap_kmeans_clusters.png",
        mapping=mapping,
    )
    out["cluster_gallery"] = cluster_gallery(
        lambda i: load(train["path"].iloc[i]), clusters, folder / "cluster_gallery.png", mapping=mapping,
        random_state=random_state,
    )
    out.update(_anomaly_plots(anomalies, folder, load, n_top_anomalies, logger))
    if len(predictions) and predictions["true_label"].notna().all():
        out["confusion_matrix"] = confusion_heatmap(
            confusion_table(predictions, classes), folder / "confusion_matrix.png", classes=classes
        )
    else:  # no test set this time: a confusion matrix left by an earlier run would describe other data
        _remove_stale(folder / "confusion_matrix.png", "no test patches", logger)
    return out


def write_metrics_files(
    folder: UPath, doc: dict, classification: pd.DataFrame, predictions: pd.DataFrame, classes, labelled: bool
) -> UPath:
    """``metrics.json`` (``doc``), ``classification_metrics.csv`` and ``confusion_matrix.csv`` (empty without
    labelled test patches) in ``folder``; returns the path of ``metrics.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "metrics.json", json.dumps(doc, indent=2).encode())
    atomic_write_bytes(folder / "classification_metrics.csv", classification.to_csv(index=False).encode())
    confusion = confusion_table(predictions, classes) if len(predictions) and labelled else pd.DataFrame()
    atomic_write_bytes(folder / "confusion_matrix.csv", confusion.to_csv().encode())
    return folder / "metrics.json"
