"""A flat folder of unlabelled patches, end to end in process: sensor-planned shard partitions, ingest, re-cluster
with k = auto, null label metrics, label-free quality figures and the assignments table."""

import json
import shutil

import dagster as dg
import pandas as pd
import pytest

from seis_assets.checks import ALL_CHECKS
from seis_assets.core.cluster import choose_k
from seis_assets.core.sources import ROOT_GROUP, parse_partition_key
from seis_assets.core.storage import read_parquet
from seis_assets.definitions import ALL_ASSETS, build_resources
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import AnalysisSettings, FeatureSettings, SeisPaths
from seis_assets.sensors import train_folder_sensor

from .helpers import ANALYSIS_KEYS, INGEST_KEYS, paths_for

pytestmark = pytest.mark.slow


def _flatten(src, dst):
    dst.mkdir(parents=True)
    for f in src.glob("*/*.mat"):
        shutil.copy(f, dst / f.name)  # names carry the class (fault_0001.mat): unique in one folder


def test_flat_unlabelled_folder_runs_end_to_end(small_dataset_master, tmp_path):
    root = tmp_path / "data"
    _flatten(small_dataset_master / "train", root / "train")
    _flatten(small_dataset_master / "test", root / "test")
    n_train, n_test = len(list((root / "train").glob("*.mat"))), len(list((root / "test").glob("*.mat")))
    paths = SeisPaths(**{**paths_for(root).model_dump(), "labels": "none", "shard_size": 30})
    resources = build_resources(
        paths,
        feature_settings=FeatureSettings(backbone="texture", input_size="native"),
        analysis=AnalysisSettings(umap_n_neighbors=8, k_sweep_max=6),  # k left at its default: auto here
    )
    with dg.instance_for_test() as instance:
        tick = train_folder_sensor(dg.build_sensor_context(instance=instance, resources={"paths": paths}))
        [add] = tick.dynamic_partitions_requests
        keys = sorted(add.partition_keys)
        # 88 files in shards of at most ~30: four shards of the root group, one ingest run each
        assert [parse_partition_key(k).group for k in keys] == [ROOT_GROUP] * 4
        assert sorted(r.partition_key for r in tick.run_requests) == keys
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, keys)
        for key in keys:
            assert dg.materialize(ALL_ASSETS, selection=INGEST_KEYS, partition_key=key, resources=resources,
                                  instance=instance).success
        result = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=dg.AssetSelection.assets(*ANALYSIS_KEYS),
                                resources=resources, instance=instance, raise_on_error=False)
        assert result.success

    outputs = root / "outputs"
    doc = json.loads((outputs / "metrics.json").read_text())
    for key in ("ari", "ami", "nmi", "homogeneity", "completeness", "v_measure", "accuracy_test"):
        assert doc[key] is None, key
    assert doc["labelled"] is False and doc["n_train"] == n_train and doc["n_test"] == n_test
    assert -1 <= doc["silhouette"] <= 1 and doc["davies_bouldin"] > 0 and 0 < doc["stability_ari"] <= 1
    sweep = read_parquet(root / "warehouse" / "k_sweep.parquet")
    assert doc["k_rule"].startswith("auto: ") and (doc["k"], doc["k_rule"]) == choose_k("auto", sweep, None)
    assert not (outputs / "cluster_to_label_mapping.npy").exists() and not (outputs / "umap_true_labels.png").exists()

    table = read_parquet(root / "warehouse" / "assignments.parquet")
    csv = pd.read_csv(outputs / "assignments.csv")
    assert len(table) == len(csv) == n_train + n_test
    assert set(table["path"]) == {str(p) for p in [*(root / "train").glob("*.mat"), *(root / "test").glob("*.mat")]}
    assert table["category"].isna().all() and table["mapped_category"].isna().all()
    assert set(table["cluster"]) == set(range(doc["k"]))
    assert sorted(table["anomaly_rank"]) == list(range(1, len(table) + 1))
    anomalies = read_parquet(root / "warehouse" / "anomalies.parquet").set_index("path")
    joined = table.set_index("path")
    assert (joined["anomaly_score"] == anomalies.loc[joined.index, "score"]).all()
    assert (joined["cluster"] == anomalies.loc[joined.index, "cluster"]).all()
    assert (joined["anomaly_kind"] == anomalies.loc[joined.index, "kind"]).all()
    assert list(csv.columns) == ["path", "split", "cluster", "category", "mapped_category", "anomaly_score",
                                 "anomaly_rank", "anomaly_kind"]
