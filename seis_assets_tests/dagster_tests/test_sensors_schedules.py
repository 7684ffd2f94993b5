"""Sensors and the schedule, evaluated with Dagster's build contexts against a test instance."""

import json
import os

import dagster as dg
import numpy as np
import scipy.io

from seis_assets.definitions import defs
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.schedules import DEFAULT_RECLUSTER_CRON, recluster_schedule
from seis_assets.sensors import train_folder_sensor

from .helpers import paths_for


def _tick(sensor, instance, paths, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"paths": paths})
    return sensor(context)


def test_train_folder_sensor_adds_partitions_and_requests_one_run_per_changed_category(small_dataset):
    paths = paths_for(small_dataset)
    with dg.instance_for_test() as instance:
        first = _tick(train_folder_sensor, instance, paths)
        [add] = first.dynamic_partitions_requests
        assert add.partitions_def_name == CATEGORY_PARTITIONS_NAME
        assert sorted(add.partition_keys) == ["chaotic", "fault", "horizon", "salt dome"]
        assert sorted(r.partition_key for r in first.run_requests) == ["chaotic", "fault", "horizon", "salt dome"]
        cursor = json.loads(first.cursor)["fingerprints"]
        assert set(cursor) == {"chaotic", "fault", "horizon", "salt dome"}
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, add.partition_keys)

        unchanged = _tick(train_folder_sensor, instance, paths, cursor=first.cursor)
        assert unchanged.run_requests == [] and unchanged.dynamic_partitions_requests == []

        scipy.io.savemat(small_dataset / "train" / "fault" / "fault_0999.mat",
                         {"img": np.random.default_rng(0).uniform(-1, 1, (99, 99))})
        changed = _tick(train_folder_sensor, instance, paths, cursor=first.cursor)
        [request] = changed.run_requests
        assert request.partition_key == "fault"
        # the run key carries the folder's fingerprint: a later change gets a new run, a repeat does not
        assert request.run_key.startswith("fault:") and request.run_key != f"fault:{cursor['fault']}"

        for f in (small_dataset / "train" / "salt dome").iterdir():
            f.unlink()
        (small_dataset / "train" / "salt dome").rmdir()
        gone = _tick(train_folder_sensor, instance, paths, cursor=changed.cursor)
        [delete] = gone.dynamic_partitions_requests
        assert isinstance(delete, dg.DeleteDynamicPartitionsRequest)
        assert delete.partition_keys == ["salt dome"]


def test_train_folder_sensor_skips_when_the_folder_is_missing(tmp_path):
    with dg.instance_for_test() as instance:
        result = _tick(train_folder_sensor, instance, paths_for(tmp_path))
        assert isinstance(result, dg.SkipReason) and "does not exist" in result.skip_message


# the incoming sensor's rules (stability, claims, names): test_incoming.py


def test_recluster_schedule_targets_the_recluster_job_and_is_off_by_default():
    assert recluster_schedule.cron_schedule == os.environ.get("SEIS_RECLUSTER_CRON", DEFAULT_RECLUSTER_CRON)
    assert recluster_schedule.job_name == "recluster_job"
    assert recluster_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        [request] = recluster_schedule.evaluate_tick(context).run_requests
        assert request.partition_key is None  # one run over all categories, not per partition
    job = defs.resolve_job_def("recluster_job")
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert {"umap_50d", "umap_2d", "kmeans_model", "cluster_mapping", "metrics", "plots", "anomalies"} <= selected
    assert "resnet_features" not in selected
