"""Anomaly ranking, test predictions, metrics and plots: what a geoscientist reads after a run."""


import json

import dagster as dg
import pandas as pd

from seis_assets.assets import EVALUATION
from seis_assets.assets._metadata import image_metadata, markdown_preview
from seis_assets.assets.clustering import configured_k
from seis_assets.core.anomaly import fit_anomaly_model
from seis_assets.core.dataset import (
    combine_feature_tables, features_for, known_anomaly_kinds, read_known_anomalies, stack_vectors,
)
from seis_assets.core.outputs import write_evaluation_plots, write_metrics_files
from seis_assets.core.report import (
    assignment_rows, classification_metrics, has_labels, mapping_has_labels, predict_test_set, score_patches,
    summarise,
)
from seis_assets.core.storage import atomic_write_bytes, save_joblib_atomic
from seis_assets.resources import AnalysisSettings, SeisPaths


def qc_rows_for(qc_attributes: dict[str, pd.DataFrame], paths: pd.Series) -> pd.DataFrame:
    """The QC rows of ``paths`` in that order; a path without QC row is an error naming it."""
    table = pd.concat(list(qc_attributes.values()), ignore_index=True).drop_duplicates("path", keep="last")
    table = table.set_index("path")
    missing = paths[~paths.isin(table.index)]
    if len(missing):
        raise ValueError(
            f"{len(missing)} patch(es) have no qc_attributes row, e.g. {missing.iloc[0]}: materialize qc_attributes "
            "for every category (the ingest job does) and re-run the recluster job"
        )
    return table.loc[paths.to_numpy()].reset_index()


@dg.asset(
    ins={
        "resnet_features": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
        "qc_attributes": dg.AssetIn(partition_mapping=dg.AllPartitionMapping()),
    },
    io_manager_key="parquet_io_manager",
    group_name=EVALUATION,
    kinds={"parquet"},
    description=(
        "Every patch (train and test) ranked by a combined anomaly score, with its kind (artefact | novel | "
        "normal): qc_score and qc_reason (damage: dead traces, clipping, spikes, polarity reversal, noise burst, "
        "from the raw amplitudes), novelty_score (density in a 50-d PCA of the backbone features) and its nearest "
        "training patches; thresholds come from the training patches (99.5th percentile of qc_score, 99th of "
        "novelty_score)."
    ),
)
def anomalies(
    context: dg.AssetExecutionContext,
    umap_50d: pd.DataFrame,
    kmeans_model,
    resnet_features: dict[str, pd.DataFrame],
    qc_attributes: dict[str, pd.DataFrame],
    paths: SeisPaths,
    analysis: AnalysisSettings,
) -> pd.DataFrame:
    Z = stack_vectors(umap_50d["embedding"])
    features = combine_feature_tables(resnet_features)
    X = features_for(features, umap_50d["path"])
    qc = qc_rows_for(qc_attributes, umap_50d["path"])
    train = (umap_50d["split"] == "train").to_numpy()
    model = fit_anomaly_model(
        Z[train], kmeans_model, X[train], qc[train], umap_50d["path"].to_numpy()[train],
        n_neighbors=analysis.anomaly_neighbors, random_state=analysis.seed, feature_blocks=features.blocks,
    )
    save_joblib_atomic(model, paths.model("anomaly_scorer.joblib"))
    kinds = known_anomaly_kinds(umap_50d, read_known_anomalies(paths.test))
    scored = score_patches(umap_50d, Z, model, kmeans_model, kinds, X, qc)
    counts = scored["kind"].value_counts()
    context.add_output_metadata(
        {
            "n_scored": len(scored),
            "n_known_anomalies": int((scored["known_anomaly"] != "").sum()),
            **{f"n_{k}": int(counts.get(k, 0)) for k in ("artefact", "novel", "normal")},
            "qc_threshold": float(model.qc_threshold),
            "novelty_threshold": float(model.novelty_threshold),
            "top": dg.MetadataValue.md(
                markdown_preview(
                    scored[["rank", "path", "split", "kind", "anomaly_score", "qc_reason", "known_anomaly"]], n=15
                )
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
        "and accuracy on test under both mappings; anomaly ROC AUC on known anomalies. Written to metrics.json, "
        "classification_metrics.csv and confusion_matrix.csv."
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
    written = write_metrics_files(paths.outputs, doc, classification, predictions, classes, labelled)
    numbers = {k: v for k, v in doc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    context.add_output_metadata(
        {
            **{k: dg.MetadataValue.float(float(v)) for k, v in numbers.items() if isinstance(v, float)},
            **{k: dg.MetadataValue.int(int(v)) for k, v in numbers.items() if isinstance(v, int)},
            "backbone": doc["backbone"],
            "k_rule": str(k_rule),
            "labelled": labelled,
            "classification": dg.MetadataValue.md(markdown_preview(classification, n=40)),
            "metrics_json": dg.MetadataValue.path(str(written)),
        }
    )
    return doc


@dg.asset(
    group_name=EVALUATION,
    kinds={"matplotlib"},
    description=(
        "PNG plots in the output folder: UMAP 2-d by true class and by cluster, confusion matrix, sample patches "
        "per cluster, the most anomalous patches with their kind and reason, novel patches beside their nearest "
        "training patches."
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
    out = write_evaluation_plots(
        umap_2d, kmeans_model.labels_, cluster_mapping, predictions, anomalies, paths.outputs,
        mat_key=paths.mat_key, random_state=analysis.seed, n_top_anomalies=analysis.n_top_anomalies,
        logger=context.log,
    )
    context.add_output_metadata({name: image_metadata(str(path)) for name, path in out.items()})
    return {name: str(path) for name, path in out.items()}
