"""The whole graph on ``s3://``: train folder, warehouse, models, outputs and incoming in a bucket of a real
S3-compatible server (moto, started on 127.0.0.1), read and written through s3fs. Nothing local but the Dagster
instance."""

import io
import json
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from upath import UPath

from seis_assets.assets.incoming import read_new_file_predictions
from seis_assets.core.generations import CURRENT_FILE, serving_generation
from seis_assets.core.storage import load_npy, read_parquet
from seis_assets.definitions import ALL_ASSETS
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import SeisPaths
from seis_assets.sensors import incoming_files_sensor, train_folder_sensor
from seis_assets_tests.dagster_tests.helpers import ANALYSIS_KEYS, INGEST_KEYS, resources_for
from seis_assets_tests.dagster_tests.test_pipeline import SEED_ARTIFACTS

from .servers import count_s3_requests

pytestmark = pytest.mark.slow
CATEGORIES = ["chaotic", "fault", "horizon", "salt dome"]


def _s3_paths(root: str, stable_s: float = 0.5) -> SeisPaths:
    # incoming_stable_s: an object's mtime is its upload time, so dropped files become eligible after stable_s
    return SeisPaths(
        train_dir=f"{root}/train", test_dir=f"{root}/test", output_dir=f"{root}/outputs", data_dir=root,
        incoming_dir=f"{root}/incoming", incoming_stable_s=stable_s,
    )


def _files(result) -> list[str]:
    return [f for r in result.run_requests for f in r.run_config["ops"]["new_file_predictions"]["config"]["files"]]


def _tick(sensor, instance, paths, cursor=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"paths": paths}))


def test_whole_graph_runs_on_s3(s3, small_dataset):
    fs, root = s3
    fs.put(f"{small_dataset}/train/", f"{root}/train/", recursive=True)
    fs.put(f"{small_dataset}/test/", f"{root}/test/", recursive=True)
    paths = _s3_paths(root)
    resources = resources_for(UPath(root))
    resources["paths"] = paths
    with dg.instance_for_test() as instance:
        # the train sensor finds the categories in the bucket and asks for one ingest run each
        first = _tick(train_folder_sensor, instance, paths)
        [add] = first.dynamic_partitions_requests
        assert sorted(add.partition_keys) == CATEGORIES
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, add.partition_keys)
        for request in first.run_requests:
            result = dg.materialize(ALL_ASSETS, selection=INGEST_KEYS, partition_key=request.partition_key,
                                    resources=resources, instance=instance)
            assert result.success
        analysis = dg.materialize(ALL_ASSETS, selection=ANALYSIS_KEYS, resources=resources, instance=instance)
        assert analysis.success

        # every table, model and output is in the bucket, none half-written (no temporary names left)
        for category in CATEGORIES:
            features = read_parquet(paths.table("resnet_features", category))
            assert len(features) == 16 + 6 and features["path"].str.startswith(f"{root}/").all()
        outputs = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/outputs"))
        assert set(SEED_ARTIFACTS) <= set(outputs) and "metrics.json" in outputs
        stored = fs.find(root)
        assert len(stored) > 100 and not [p for p in stored if ".tmp-" in p.rsplit("/", 1)[-1]]
        assignments = load_npy(f"{root}/outputs/cluster_assignments.npy")
        assert assignments.dtype == np.int64 and assignments.shape == (4 * 16,)
        mapping = load_npy(f"{root}/outputs/cluster_to_label_mapping.npy")
        assert set(mapping.tolist()) <= set(CATEGORIES) and len(mapping) == 4
        metrics = json.loads(fs.cat(f"{root}/outputs/metrics.json"))
        assert metrics["n_train"] == 64 and metrics["ari"] > 0.3
        assert serving_generation(paths.models).file("kmeans_model.joblib").exists()
        predictions_csv = pd.read_csv(io.BytesIO(fs.cat(f"{root}/outputs/predictions.csv")))
        assert len(predictions_csv) == 4 * 6

        # a file dropped into the bucket's incoming folder is predicted and moved to processed/
        fs.put(str(sorted((small_dataset / "test" / "fault").glob("*.mat"))[0]), f"{root}/incoming/dropped.mat")
        fs.pipe(f"{root}/incoming/broken.mat", b"not a MATLAB file")
        time.sleep(2 * paths.incoming_stable_s)
        [request] = _tick(incoming_files_sensor, instance, paths).run_requests  # both claimed by one run
        files = request.run_config["ops"]["new_file_predictions"]["config"]["files"]
        assert sorted(f.rsplit("/", 1)[-1] for f in files) == ["broken.mat", "dropped.mat"]
        assert all(f.startswith(f"{root}/incoming/.claims/") for f in files)
        predicted = dg.materialize(ALL_ASSETS, selection=["new_file_predictions"], resources=resources,
                                   instance=instance, run_config=request.run_config)
        assert predicted.success
        rows = read_new_file_predictions(paths)
        assert rows["file_name"].tolist() == ["dropped.mat"]
        assert fs.exists(f"{root}/incoming/processed/dropped.mat")
        assert fs.exists(f"{root}/incoming/rejected/broken.mat.reason.txt")
        assert not fs.exists(f"{root}/incoming/dropped.mat") and not fs.exists(f"{root}/incoming/broken.mat")


def _requests_per_tick(sensor, instance, paths, cursor=None):
    with count_s3_requests() as counts:
        result = _tick(sensor, instance, paths, cursor)
    return result, counts


def test_sensors_list_the_bucket_without_a_request_per_file(s3, small_dataset):
    """A tick costs no more S3 requests for 16 files per folder than for 4: listings, not one request per file.
    Files another client adds are seen on the next tick (the listing is not served from s3fs's cache)."""
    fs, root = s3
    paths = _s3_paths(root)
    one = str(sorted((small_dataset / "test" / "fault").glob("*.mat"))[0])
    for category in CATEGORIES:
        for f in sorted((small_dataset / "train" / category).glob("*.mat"))[:4]:
            fs.put(str(f), f"{root}/train/{category}/{f.name}")
    fs.put(one, f"{root}/incoming/a.mat")
    # a serving model generation, as far as the incoming sensor looks
    fs.pipe(f"{root}/models/generations/g1/backbone.json", b"{}")
    fs.pipe(f"{root}/models/{CURRENT_FILE}", b"g1\n")
    paths_waiting = _s3_paths(root, stable_s=3600)  # counted ticks only list: nothing is stable long enough
    with dg.instance_for_test() as instance:
        small, small_counts = _requests_per_tick(train_folder_sensor, instance, paths)
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, CATEGORIES)
        _, small_incoming = _requests_per_tick(incoming_files_sensor, instance, paths_waiting)

        for category in CATEGORIES:  # four times the files
            fs.put(f"{small_dataset}/train/{category}/", f"{root}/train/{category}/", recursive=True)
        for i in range(1, 16):
            fs.put(one, f"{root}/incoming/b{i:02d}.mat")
        big, big_counts = _requests_per_tick(train_folder_sensor, instance, paths, cursor=small.cursor)
        _, big_incoming = _requests_per_tick(incoming_files_sensor, instance, paths_waiting)
        time.sleep(2 * paths.incoming_stable_s)
        incoming = _tick(incoming_files_sensor, instance, paths)  # now every file is eligible and claimed

    # the new files were seen: every category changed, and all 16 dropped files are in the run request
    assert sorted(r.partition_key for r in big.run_requests) == CATEGORIES
    assert len(_files(incoming)) == 16
    # with 4x the files a tick makes no more requests of any kind (the first tick also warms a few exists()
    # answers, so it may make more): nothing is asked per file
    for small_c, big_c in ((small_counts, big_counts), (small_incoming, big_incoming)):
        assert all(big_c[kind] <= small_c[kind] for kind in big_c | small_c), (small_c, big_c)
    # no file is read; the incoming sensor reads one object a tick, the models' CURRENT pointer
    assert big_counts["get_object"] == 0 and big_incoming["get_object"] <= 1
    assert sum(big_counts.values()) <= 4 * len(CATEGORIES) + 4
