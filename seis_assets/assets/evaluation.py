"""Anomaly ranking, test predictions, metrics and plots: what a geoscientist reads after a run."""


import json
import os

import dagster as dg
import pandas as pd

from seis_assets.assets import EVALUATION
from seis_assets.assets._metadata import image_metadata, markdown_preview
from seis_assets.assets.clustering import configured_k
from seis_assets.core import plots as P
from seis_assets.core.anomaly import fit_anomaly_scorer
from seis_assets.core.dataset import (
    combine_feature_tables, features_for, known_anomaly_kinds, read_known_anomalies, stack_vectors,
)
from seis_assets.core.matfiles import load_patch
from seis_assets.core.report import (
    assignment_rows, classification_metrics, cluster_labels, confusion_table, has_labels, mapping_has_labels,
    predict_test_set, score_patches, summarise,
)
from seis_assets.core.storage import atomic_write_bytes, save_joblib_atomic
from seis_assets.resources import AnalysisSettings, SeisPaths


@dg.asset(
    ins={"resnet_features": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    io_manager_key="parquet_io_manager",
    group_name=EVALUATION,
    kinds={"parquet"},
    description=(
        "Every patch (train and test) ranked by anomaly score: distance to its centroid in the 50-d embedding scaled "
        "by the cluster's spread, the k-nearest-neighbour distance to the training patches in that embedding, and "
        "the same in a 50-d PCA of the backbone features (where UMAP cannot pull unseen patches into a cluster)."
    ),
)
def anomalies(
    context: dg.AssetExecutionContext,
    umap_50d: pd.DataFrame,
    kmeans_model,
    resnet_features: dict[str, pd.DataFrame],
    paths: SeisPaths,
    analysis: AnalysisSettings,
) -> pd.DataFrame:
    Z = stack_vectors(umap_50d["embedding"])
    X = features_for(combine_feature_tables(resnet_features), umap_50d["path"])
    train = (umap_50d["split"] == "train").to_numpy()
    scorer = fit_anomaly_scorer(
        Z[train], kmeans_model, n_neighbors=analysis.anomaly_neighbors, X_train=X[train], random_state=analysis.seed
    )
    save_joblib_atomic(scorer, paths.model("anomaly_scorer.joblib"))
    kinds = known_anomaly_kinds(umap_50d, read_known_anomalies(paths.test))
    scored = score_patches(umap_50d, Z, scorer, kmeans_model, kinds, X)
    context.add_output_metadata(
        {
            "n_scored": len(scored),
            "n_known_anomalies": int((scored["known_anomaly"] != "").sum()),
            "top": dg.MetadataValue.md(
                markdown_preview(scored[["rank", "path", "split", "category", "score", "known_anomaly"]], n=15)
            ),
        }
    )
    return scored


@dg.asset(
    io_manager_key="parquet_io_manager",
    group_name=EVALUATION,
    kinds={"parquet"},
    description="Cluster and predicted category of each test patch (seed columns first), with its anomaly score.",
)
def predictions(
    context: dg.AssetExecutionContext, anomalies: pd.DataFrame, cluster_mapping: pd.DataFrame, paths: SeisPaths
) -> pd.DataFrame:
    table = predict_test_set(anomalies, cluster_mapping)
    csv = table.to_csv(index=False).encode()
    atomic_write_bytes(paths.output("predictions.csv"), csv)
    context.add_output_metadata(
        {
            "n_test": len(table),
            "n_injected_anomalies": int(table["injected_anomaly"].sum()),
            "preview": dg.MetadataValue.md(markdown_preview(table.drop(columns=["file"]))),
        }
    )
    return table


@dg.asset(
    io_manager_key="parquet_io_manager",
    group_name=EVALUATION,
    kinds={"parquet", "csv"},
    description=(
        "One row per patch (train and test): file, split, cluster, its folder's category (null when unlabelled), "
        "the cluster's mapped category (null without labels), anomaly score and rank. Also assignments.csv."
    ),
)
def assignments(
    context: dg.AssetExecutionContext, anomalies: pd.DataFrame, cluster_mapping: pd.DataFrame, paths: SeisPaths
) -> pd.DataFrame:
    table = assignment_rows(anomalies, cluster_mapping)
    atomic_write_bytes(paths.output("assignments.csv"), table.to_csv(index=False).encode())
    context.add_output_metadata(
        {
            "n_patches": len(table),
            "n_clusters": int(table["cluster"].nunique()),
            "mapped": bool(mapping_has_labels(cluster_mapping)),
            "csv": dg.MetadataValue.path(str(paths.output("assignments.csv"))),
            "preview": dg.MetadataValue.md(markdown_preview(table)),
        }
    )
    return table


@dg.asset(
    ins={"quarantine": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    group_name=EVALUATION,
    kinds={"json"},
    description=(
        "ARI, AMI, NMI, homogeneity, completeness, V-measure on train (null without labels); label-free silhouette, "
        "Davies-Bouldin and stability across seeds; per-class precision, recall, F1 "
        "and accuracy on test under both mappings; anomaly ROC AUC on known anomalies. Written to metrics.json and "
        "classification_metrics.csv."
    ),
)
def metrics(
    context: dg.AssetExecutionContext,
    umap_50d: pd.DataFrame,
    kmeans_model,
    k_sweep: pd.DataFrame,
    predictions: pd.DataFrame,
    anomalies: pd.DataFrame,
    quarantine: dict[str, pd.DataFrame],
    paths: SeisPaths,
    analysis: AnalysisSettings,
) -> dict:
    train = umap_50d[umap_50d["split"] == "train"]
    labelled = has_labels(train["category"])
    classes = sorted(train["category"].unique()) if labelled else []
    _, k_rule = configured_k(analysis, train["category"], k_sweep)
    identity = json.loads(paths.model("backbone.json").read_text())
    n_quarantined = int(sum(len(q) for q in quarantine.values()))
    classification = classification_metrics(predictions, classes)
    doc = summarise(
        train_labels=train["category"].to_numpy(),
        train_clusters=kmeans_model.labels_,
        Z_train=stack_vectors(train["embedding"]),
        predictions=predictions,
        classification=classification,
        scored=anomalies,
        identity=identity,
        k=int(kmeans_model.n_clusters),
        n_quarantined=n_quarantined,
        n_files=len(umap_50d) + n_quarantined,
        random_state=analysis.seed,
        stability_runs=analysis.stability_runs,
        k_rule=k_rule,
    )
    doc["fallback_reason"] = identity.get("fallback_reason")
    atomic_write_bytes(paths.output("metrics.json"), json.dumps(doc, indent=2).encode())
    atomic_write_bytes(paths.output("classification_metrics.csv"), classification.to_csv(index=False).encode())
    confusion = confusion_table(predictions, classes) if len(predictions) and labelled else pd.DataFrame()
    atomic_write_bytes(paths.output("confusion_matrix.csv"), confusion.to_csv().encode())
    numbers = {k: v for k, v in doc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    context.add_output_metadata(
        {
            **{k: dg.MetadataValue.float(float(v)) for k, v in numbers.items() if isinstance(v, float)},
            **{k: dg.MetadataValue.int(int(v)) for k, v in numbers.items() if isinstance(v, int)},
            "backbone": doc["backbone"],
            "k_rule": str(k_rule),
            "labelled": labelled,
            "classification": dg.MetadataValue.md(markdown_preview(classification, n=40)),
            "metrics_json": dg.MetadataValue.path(str(paths.output("metrics.json"))),
        }
    )
    return doc


@dg.asset(
    group_name=EVALUATION,
    kinds={"matplotlib"},
    description=(
        "PNG plots in the output folder: UMAP 2-d by true class and by cluster, confusion matrix, sample patches "
        "per cluster, the most anomalous patches."
    ),
)
def plots(
    context: dg.AssetExecutionContext,
    umap_2d: pd.DataFrame,
    kmeans_model,
    cluster_mapping: pd.DataFrame,
    predictions: pd.DataFrame,
    anomalies: pd.DataFrame,
    paths: SeisPaths,
    analysis: AnalysisSettings,
) -> dict[str, str]:
    train = umap_2d[umap_2d["split"] == "train"].reset_index(drop=True)
    xy = stack_vectors(train["embedding"])
    labelled = has_labels(train["category"])
    mapping = cluster_labels(cluster_mapping, "majority") if mapping_has_labels(cluster_mapping) else None
    classes = sorted(train["category"].unique()) if labelled else []
    key = paths.mat_key
    out = {}
    if labelled:
        out["umap_true_labels"] = P.scatter_labels(
            xy, train["category"], "UMAP 2-d, training patches by true category", paths.output("umap_true_labels.png"),
            classes=classes,
        )
    elif paths.output("umap_true_labels.png").exists():
        paths.output("umap_true_labels.png").unlink()
        context.log.info("unlabelled data: removed the previous run's umap_true_labels.png")
    out = {
        **out,
        "umap_kmeans_clusters": P.scatter_clusters(
            xy, kmeans_model.labels_, "UMAP 2-d, training patches by KMeans cluster",
            paths.output("umap_kmeans_clusters.png"), mapping=mapping,
        ),
        "cluster_gallery": P.cluster_gallery(
            lambda i: load_patch(train["path"].iloc[i], key), kmeans_model.labels_,
            paths.output("cluster_gallery.png"), mapping=mapping, random_state=analysis.seed,
        ),
    }
    top = anomalies.head(analysis.n_top_anomalies).reset_index(drop=True)
    out["top_anomalies"] = P.anomaly_gallery(
        lambda i: load_patch(top["path"].iloc[i], key), top["score"].to_numpy(),
        paths.output("top_anomalies.png"),
        labels=[f"{r.split}/{r.category if isinstance(r.category, str) else os.path.basename(r.path)}"
                + (f"\n[{r.known_anomaly}]" if r.known_anomaly else "") for r in top.itertuples()],
        n=len(top),
    )
    if len(predictions) and predictions["true_label"].notna().all():
        out["confusion_matrix"] = P.confusion_heatmap(
            confusion_table(predictions, classes), paths.output("confusion_matrix.png"), classes=classes
        )
    elif paths.output("confusion_matrix.png").exists():
        # no test set this time: a confusion matrix left by an earlier run would describe other data
        paths.output("confusion_matrix.png").unlink()
        context.log.info("no test patches: removed the previous run's confusion_matrix.png")
    context.add_output_metadata({name: image_metadata(str(path)) for name, path in out.items()})
    return {name: str(path) for name, path in out.items()}
