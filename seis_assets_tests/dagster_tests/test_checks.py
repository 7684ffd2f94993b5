"""Each asset check passing and failing, invoked directly on hand-made inputs."""

import types

import dagster as dg
import numpy as np

from seis_assets.checks import ari_above_floor, no_degenerate_cluster, quarantine_share_below_limit
from seis_assets.resources import AnalysisSettings


def _kmeans(sizes):
    labels = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    return types.SimpleNamespace(labels_=labels, n_clusters=len(sizes))


def test_degenerate_cluster_check():
    assert no_degenerate_cluster(kmeans_model=_kmeans([50, 40, 30])).passed
    failed = no_degenerate_cluster(kmeans_model=_kmeans([150, 140, 1, 0]))
    assert not failed.passed
    assert "cluster(s) [2, 3]" in failed.description and "lower k" in failed.description
    assert failed.severity == dg.AssetCheckSeverity.WARN


def test_ari_floor_check():
    metrics = {"ari": 0.72}
    assert ari_above_floor(metrics=metrics, analysis=AnalysisSettings(ari_floor=0.7)).passed
    failed = ari_above_floor(metrics=metrics, analysis=AnalysisSettings(ari_floor=0.8))
    assert not failed.passed and failed.description == "ARI 0.720 < floor 0.800"


def test_quarantine_share_check():
    metrics = {"quarantine_share": 0.1, "n_quarantined": 10}
    assert quarantine_share_below_limit(metrics=metrics, analysis=AnalysisSettings(max_quarantine_share=0.2)).passed
    failed = quarantine_share_below_limit(metrics=metrics, analysis=AnalysisSettings(max_quarantine_share=0.05))
    assert not failed.passed
    assert "10 file(s) quarantined (10.0%)" in failed.description and "quarantine table" in failed.description
