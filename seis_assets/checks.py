"""Asset checks: the guards a user relies on before trusting a re-clustering.

- ``features_finite`` / ``single_backbone`` on ``umap_50d`` (they read every category's features)
- ``no_degenerate_cluster`` on ``kmeans_model``
- ``ari_above_floor`` and ``quarantine_share_below_limit`` on ``metrics``
"""


import dagster as dg
import numpy as np
import pandas as pd

from seis_assets.core.dataset import identities_by_category, stack_vectors
from seis_assets.resources import AnalysisSettings

#: A cluster smaller than this share of the training patches (or than 2 patches) is degenerate.
MIN_CLUSTER_SHARE = 0.01

#: Checks on ``umap_50d`` that read every category's features (all partitions of ``resnet_features``); blocking:
#: a failing one stops everything downstream of umap_50d.
_ON_ALL_FEATURES = dict(
    blocking=True,
    asset="umap_50d",
    additional_ins={"resnet_features": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
)


@dg.asset_check(
    **_ON_ALL_FEATURES,
    description="Every feature vector is finite (no NaN/Inf).",
)
def features_finite(resnet_features: dict[str, pd.DataFrame]) -> dg.AssetCheckResult:
    bad = []
    for category, table in sorted(resnet_features.items()):
        if len(table) == 0:
            continue
        rows = ~np.isfinite(stack_vectors(table["features"])).all(axis=1)
        bad.extend(table.loc[rows, "path"].tolist())
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{len(bad)} feature row(s) hold NaN/Inf, e.g. {bad[0]}" if bad else "all feature rows finite"),
        metadata={"n_bad_rows": len(bad), "examples": dg.MetadataValue.json(bad[:10])},
    )


@dg.asset_check(
    **_ON_ALL_FEATURES,
    description="All categories' features come from one backbone, weights, input size and precision.",
)
def single_backbone(resnet_features: dict[str, pd.DataFrame]) -> dg.AssetCheckResult:
    identities = identities_by_category(resnet_features)
    return dg.AssetCheckResult(
        passed=len(identities) == 1,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "one feature identity" if len(identities) == 1
            else f"{len(identities)} feature identities mixed: {identities}; re-materialize resnet_features"
        ),
        metadata={"identities": dg.MetadataValue.json(identities)},
    )


@dg.asset_check(blocking=True, asset="kmeans_model", description="No empty or near-empty (degenerate) cluster.")
def no_degenerate_cluster(kmeans_model) -> dg.AssetCheckResult:
    sizes = np.bincount(kmeans_model.labels_, minlength=kmeans_model.n_clusters)
    floor = max(2, int(np.ceil(MIN_CLUSTER_SHARE * sizes.sum())))
    small = [int(i) for i in np.flatnonzero(sizes < floor)]
    return dg.AssetCheckResult(
        passed=not small,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"cluster(s) {small} have fewer than {floor} patches: lower k" if small else f"every cluster has >= {floor}"
        ),
        metadata={"sizes": dg.MetadataValue.json(sizes.tolist()), "min_size": floor},
    )


@dg.asset_check(blocking=True, asset="metrics", description="Training ARI at or above the configured floor (a regression guard).")
def ari_above_floor(metrics: dict, analysis: AnalysisSettings) -> dg.AssetCheckResult:
    ari = metrics["ari"]
    if ari is None:  # unlabelled data: nothing to compare with, and no made-up value
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            description="no labels: ARI is undefined (see silhouette, davies_bouldin, stability_ari)",
            metadata={"floor": float(analysis.ari_floor)},
        )
    return dg.AssetCheckResult(
        passed=ari >= analysis.ari_floor,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"ARI {ari:.3f} {'>=' if ari >= analysis.ari_floor else '<'} floor {analysis.ari_floor:.3f}",
        metadata={"ari": float(ari), "floor": float(analysis.ari_floor)},
    )


@dg.asset_check(blocking=True, asset="metrics", description="Share of quarantined files below the configured limit.")
def quarantine_share_below_limit(metrics: dict, analysis: AnalysisSettings) -> dg.AssetCheckResult:
    share = metrics["quarantine_share"]
    limit = analysis.max_quarantine_share
    return dg.AssetCheckResult(
        passed=share <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{metrics['n_quarantined']} file(s) quarantined ({share:.1%}), limit {limit:.1%}"
            + ("" if share <= limit else ": see the quarantine table for the reasons")
        ),
        metadata={"share": float(share), "limit": float(limit), "n_quarantined": int(metrics["n_quarantined"])},
    )


ALL_CHECKS = [features_finite, single_backbone, no_degenerate_cluster, ari_above_floor, quarantine_share_below_limit]
