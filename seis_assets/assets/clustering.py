"""KMeans on the 50-d embedding, the k sweep, and the cluster -> category mappings (majority and one-to-one)."""


import dagster as dg
import numpy as np
import pandas as pd

from seis_assets.assets import CLUSTERING
from seis_assets.assets._metadata import image_metadata, markdown_preview
from seis_assets.core.cluster import (
    choose_k, contingency_table, fit_kmeans, hungarian_mapping, k_sweep, majority_mapping,
)
from seis_assets.core.dataset import stack_vectors
from seis_assets.core.plots import k_sweep_plot
from seis_assets.core.report import has_labels
from seis_assets.core.storage import save_joblib_atomic, save_npy_atomic
from seis_assets.resources import AnalysisSettings, SeisPaths


def _train(umap_50d: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    train = umap_50d[umap_50d["split"] == "train"].reset_index(drop=True)
    return train, stack_vectors(train["embedding"])


def configured_k(analysis: AnalysisSettings, categories, sweep: pd.DataFrame | None) -> tuple[int, str]:
    """The k to fit and the rule that gave it (:func:`seis_assets.core.cluster.choose_k`): by default the number
    of categories on labelled data, ``auto`` on unlabelled data."""
    n_categories = len(set(categories)) if has_labels(categories) else None
    return choose_k(analysis.k, sweep, n_categories)


@dg.asset(
    name="k_sweep",
    io_manager_key="parquet_io_manager",
    group_name=CLUSTERING,
    kinds={"sklearn", "parquet"},
    description=(
        "Silhouette, Davies-Bouldin, inertia and stability across seeds of KMeans for k = 2..k_sweep_max: do the "
        "data suggest k? k = auto picks from this table."
    ),
)
def k_sweep_asset(
    context: dg.AssetExecutionContext, umap_50d: pd.DataFrame, paths: SeisPaths, analysis: AnalysisSettings
) -> pd.DataFrame:
    train, Z = _train(umap_50d)
    sweep = k_sweep(
        Z, range(2, analysis.k_sweep_max + 1), random_state=analysis.seed, stability_runs=analysis.stability_runs
    )
    k, rule = configured_k(analysis, train["category"], sweep)
    auto_k, _ = choose_k("auto", sweep, None)
    png = k_sweep_plot(sweep, paths.output("k_sweep.png"), configured_k=k, auto_k=auto_k, k_rule=rule)
    best = int(sweep.loc[sweep["silhouette"].idxmax(), "k"])
    context.add_output_metadata(
        {
            "best_k_silhouette": best,
            "auto_k": auto_k,
            "configured_k": k,
            "k_rule": rule,
            "table": dg.MetadataValue.md(markdown_preview(sweep, n=20)),
            "plot": image_metadata(str(png)),
        }
    )
    return sweep


@dg.asset(
    group_name=CLUSTERING,
    kinds={"sklearn"},
    description=(
        "KMeans fitted on the training patches' 50-d embedding (k = number of categories on labelled data, chosen "
        "from the k sweep on unlabelled data, unless set)."
    ),
)
def kmeans_model(
    context: dg.AssetExecutionContext, umap_50d: pd.DataFrame, k_sweep: pd.DataFrame, paths: SeisPaths,
    analysis: AnalysisSettings,
):
    train, Z = _train(umap_50d)
    k, rule = configured_k(analysis, train["category"], k_sweep)
    model = fit_kmeans(Z, k, random_state=analysis.seed)
    save_joblib_atomic(model, paths.model("kmeans_model.joblib"))
    save_npy_atomic(model.labels_.astype(np.int64), paths.output("cluster_assignments.npy"))
    sizes = np.bincount(model.labels_, minlength=k)
    context.add_output_metadata(
        {
            "k": k,
            "k_rule": rule,
            "inertia": float(model.inertia_),
            "cluster_sizes": ", ".join(f"{i}: {n}" for i, n in enumerate(sizes)),
        }
    )
    return model


@dg.asset(
    io_manager_key="parquet_io_manager",
    group_name=CLUSTERING,
    kinds={"parquet"},
    description=(
        "Each cluster's size and category by majority vote and by the optimal one-to-one (Hungarian) assignment "
        "(null without labels)."
    ),
)
def cluster_mapping(
    context: dg.AssetExecutionContext, umap_50d: pd.DataFrame, kmeans_model, paths: SeisPaths
) -> pd.DataFrame:
    train, _ = _train(umap_50d)
    clusters, labels = kmeans_model.labels_, train["category"].to_numpy()
    if not has_labels(labels):  # unlabelled: clusters have sizes, no category
        sizes = np.bincount(clusters, minlength=kmeans_model.n_clusters)
        table = pd.DataFrame(
            {"cluster": np.arange(len(sizes)), "size": sizes, "majority": pd.Series([None] * len(sizes), dtype=object),
             "hungarian": pd.Series([None] * len(sizes), dtype=object), "purity": np.full(len(sizes), np.nan)}
        )
        if paths.output("cluster_to_label_mapping.npy").exists():
            paths.output("cluster_to_label_mapping.npy").unlink()
            context.log.info("unlabelled data: removed the previous run's cluster_to_label_mapping.npy")
        context.add_output_metadata({"mapping": "none: the training patches have no labels", "n_clusters": len(sizes)})
        return table
    majority, hungarian = majority_mapping(clusters, labels), hungarian_mapping(clusters, labels)
    counts = contingency_table(clusters, labels)
    table = pd.DataFrame(
        {
            "cluster": counts.index.astype(int),
            "size": counts.sum(axis=1).to_numpy(),
            "majority": [majority[c] for c in counts.index],
            "hungarian": [hungarian[c] for c in counts.index],
            "purity": (counts.max(axis=1) / counts.sum(axis=1)).to_numpy(),
        }
    )
    for label in counts.columns:
        table[f"n_{label}"] = counts[label].to_numpy()
    # the seed's artifact: the majority label of cluster i at position i
    save_npy_atomic(np.array(table["majority"].tolist()), paths.output("cluster_to_label_mapping.npy"))
    context.add_output_metadata({"mapping": dg.MetadataValue.md(markdown_preview(table, n=50))})
    return table
