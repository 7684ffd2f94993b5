"""Shard partitions of one large folder: each ingests only its files, the feature cache stays per file, and when
the shard count doubles the new shards reuse their parent shard's features (nothing is extracted again)."""

import shutil

import dagster as dg
import numpy as np
import pytest
import scipy.io

from seis_assets.core import sources
from seis_assets.core.storage import read_parquet
from seis_assets.definitions import ALL_ASSETS, build_resources
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import FeatureSettings, SeisPaths

from .helpers import INGEST_KEYS, paths_for

pytestmark = pytest.mark.slow


def _ingest(instance, paths, key):
    resources = build_resources(paths, feature_settings=FeatureSettings(backbone="texture", input_size="native"))
    result = dg.materialize(ALL_ASSETS, selection=INGEST_KEYS, partition_key=key, resources=resources,
                            instance=instance)
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("resnet_features")]
    meta = event.materialization.metadata
    return meta["n_extracted"].value, meta["n_reused"].value


def test_shards_ingest_their_own_files_and_keep_the_cache_per_file(small_dataset_master, tmp_path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    shutil.copytree(small_dataset_master / "train" / "fault", root / "train" / "fault")
    base = paths_for(root).model_dump()
    four = SeisPaths(**{**base, "shard_size": 4})  # 16 files -> 4 shards
    keys = sources.current_partition_keys(four.train, four.test, "folders", 4)
    assert keys == [f"fault~{i}of4" for i in range(4)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, keys)
        extracted = {key: _ingest(instance, four, key)[0] for key in keys}
        assert sum(extracted.values()) == 16  # every file once, in exactly one shard
        tables = [read_parquet(root / "warehouse" / "resnet_features" / f"{k}.parquet") for k in keys]
        assert sorted(p for t in tables for p in t["path"]) == sorted(str(p) for p in (root / "train" / "fault").glob("*.mat"))
        assert all(t["category"].eq("fault").all() for t in tables)

        name = "fault_new.mat"
        scipy.io.savemat(root / "train" / "fault" / name, {"img": np.random.default_rng(1).uniform(-1, 1, (99, 99))})
        key = f"fault~{sources.stable_shard(name, 4)}of4"
        n_before = extracted[key]
        assert _ingest(instance, four, key) == (1, n_before)  # only the new file is extracted

        eight = SeisPaths(**{**base, "shard_size": 2})  # 17 files -> 16 shards: every new shard has a parent
        finer = sources.current_partition_keys(eight.train, eight.test, "folders", 2)
        assert len(finer) == 16
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, finer)
        reused = 0
        for fine in finer:
            n_extracted, n_reused = _ingest(instance, eight, fine)
            assert n_extracted == 0
            reused += n_reused
        assert reused == 17
