"""train_folder_sensor's failure rules (issue 7 item 5) and shards (issue 9 item 3), with Dagster's build contexts."""

import json
import os
import shutil

import dagster as dg
import numpy as np
import scipy.io
from dagster._core.test_utils import create_run_for_test

from seis_assets.core import sources
from seis_assets.core.ingest_requests import MAX_INGEST_RETRIES
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.sensors import train_folder_sensor

from .helpers import paths_for

CATEGORIES = ["chaotic", "fault", "horizon", "salt dome"]


def _tick(instance, paths, cursor=None):
    result = train_folder_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"paths": paths}))
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests:  # what the daemon would do
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(CATEGORY_PARTITIONS_NAME, key)
    return result


def _finish(instance, request, status):
    """A run of ``request`` that ended with ``status`` (as the daemon and the run would leave it)."""
    create_run_for_test(instance, job_name="ingest_job", status=status,
                        tags={"dagster/partition": request.partition_key, "dagster/run_key": request.run_key})


def _deletions(result):
    return [k for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)
            for k in r.partition_keys]


def test_a_failed_ingest_is_requested_again_until_it_succeeds(small_dataset):
    paths = paths_for(small_dataset)
    with dg.instance_for_test() as instance:
        first = _tick(instance, paths)
        by_key = {r.partition_key: r for r in first.run_requests}
        assert sorted(by_key) == CATEGORIES
        for key, request in by_key.items():
            _finish(instance, request, dg.DagsterRunStatus.FAILURE if key == "fault" else dg.DagsterRunStatus.SUCCESS)

        second = _tick(instance, paths, first.cursor)
        [retry] = second.run_requests
        assert retry.partition_key == "fault" and retry.run_key == by_key["fault"].run_key + ":retry1"
        assert json.loads(second.cursor)["pending"] == {"fault": {"run_key": retry.run_key, "attempt": 1}}

        waiting = _tick(instance, paths, second.cursor)  # the retry has not run yet: nothing new is asked
        assert waiting.run_requests == []

        _finish(instance, retry, dg.DagsterRunStatus.SUCCESS)
        done = _tick(instance, paths, waiting.cursor)
        assert done.run_requests == [] and json.loads(done.cursor)["pending"] == {}
        assert _tick(instance, paths, done.cursor).run_requests == []


def test_an_ingest_that_keeps_failing_is_given_up_until_its_files_change(small_dataset):
    paths = paths_for(small_dataset)
    with dg.instance_for_test() as instance:
        result = _tick(instance, paths)
        request = next(r for r in result.run_requests if r.partition_key == "horizon")
        for r in result.run_requests:
            _finish(instance, r, dg.DagsterRunStatus.SUCCESS if r is not request else dg.DagsterRunStatus.FAILURE)
        for attempt in range(1, MAX_INGEST_RETRIES + 1):
            result = _tick(instance, paths, result.cursor)
            [request] = result.run_requests
            assert request.run_key.endswith(f":retry{attempt}")
            _finish(instance, request, dg.DagsterRunStatus.FAILURE)
        given_up = _tick(instance, paths, result.cursor)
        assert given_up.run_requests == [] and "horizon" in json.loads(given_up.cursor)["gave_up"]
        assert _tick(instance, paths, given_up.cursor).run_requests == []
        scipy.io.savemat(small_dataset / "train" / "horizon" / "new.mat",
                         {"img": np.random.default_rng(0).uniform(-1, 1, (99, 99))})
        changed = _tick(instance, paths, given_up.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["horizon"]


def test_missing_unmounted_or_unreadable_train_folder_removes_no_partition(small_dataset, monkeypatch):
    paths = paths_for(small_dataset)
    train = small_dataset / "train"
    with dg.instance_for_test() as instance:
        first = _tick(instance, paths)
        cursor = first.cursor

        moved = small_dataset / "elsewhere"
        train.rename(moved)  # missing (e.g. an unmounted share whose mount point is gone)
        missing = _tick(instance, paths, cursor)
        assert isinstance(missing, dg.SkipReason) and "no partition is removed" in missing.skip_message

        train.mkdir()  # an empty mount point
        empty = _tick(instance, paths, cursor)
        assert isinstance(empty, dg.SkipReason) and "4 partition(s) kept" in empty.skip_message
        train.rmdir()
        moved.rename(train)

        real_entries = sources.list_folder

        def unreadable(folder):
            if str(folder) == str(train):
                raise PermissionError(13, "Permission denied", str(folder))
            return real_entries(folder)

        monkeypatch.setattr(sources, "list_folder", unreadable)
        denied = _tick(instance, paths, cursor)
        assert isinstance(denied, dg.SkipReason) and "PermissionError" in denied.skip_message
        assert sorted(instance.get_dynamic_partitions(CATEGORY_PARTITIONS_NAME)) == CATEGORIES

        def one_unreadable(folder):
            if str(folder) == str(train / "fault"):
                raise PermissionError(13, "Permission denied", str(folder))
            return real_entries(folder)

        monkeypatch.setattr(sources, "list_folder", one_unreadable)
        partial = _tick(instance, paths, cursor)
        assert _deletions(partial) == [] and partial.run_requests == []
        assert json.loads(partial.cursor)["fingerprints"]["fault"] == json.loads(cursor)["fingerprints"]["fault"]
        monkeypatch.setattr(sources, "list_folder", real_entries)

        for f in (train / "fault").iterdir():  # a folder emptied for a moment keeps its partition and features
            f.unlink()
        emptied = _tick(instance, paths, cursor)
        assert _deletions(emptied) == [] and emptied.run_requests == []

        shutil.rmtree(train / "fault")  # only a folder really deleted loses its partition
        deleted = _tick(instance, paths, emptied.cursor)
        assert _deletions(deleted) == ["fault"]
        assert sorted(instance.get_dynamic_partitions(CATEGORY_PARTITIONS_NAME)) == ["chaotic", "horizon", "salt dome"]


def test_bad_folder_and_file_names_are_logged_and_skipped_while_the_others_go_on(small_dataset, capfd):
    paths = paths_for(small_dataset)
    train = small_dataset / "train"
    shutil.copytree(train / "fault", train / "a...b")
    os.mkdir(os.path.join(os.fsencode(train), b"caf\xe9"))
    with open(os.path.join(os.fsencode(train / "horizon"), b"r\xe9sum\xe9.mat"), "wb") as fh:
        fh.write((train / "horizon" / "horizon_0001.mat").read_bytes())
    with dg.instance_for_test() as instance:
        result = _tick(instance, paths)
        assert sorted(r.partition_key for r in result.run_requests) == CATEGORIES
        assert sorted(instance.get_dynamic_partitions(CATEGORY_PARTITIONS_NAME)) == CATEGORIES
    logged = capfd.readouterr().err  # the sensor's log (Dagster's console handler)
    assert "a...b: name contains '...', which Dagster does not allow in a partition key" in logged
    assert "caf\\xe9: name is not valid UTF-8" in logged
    assert "r\\xe9sum\\xe9.mat: name is not valid UTF-8" in logged


def test_a_large_folder_becomes_shards_and_only_the_changed_shard_is_ingested_again(small_dataset):
    paths = paths_for(small_dataset).model_dump()
    from seis_assets.resources import SeisPaths

    sharded = SeisPaths(**{**paths, "shard_size": 8})  # 16 train + 6 test files per category -> 4 shards each
    with dg.instance_for_test() as instance:
        first = _tick(instance, sharded)
        keys = sorted(r.partition_key for r in first.run_requests)
        assert len(keys) == 16 and "salt dome~2of4" in keys
        for r in first.run_requests:
            _finish(instance, r, dg.DagsterRunStatus.SUCCESS)
        name = "fault_0999.mat"
        scipy.io.savemat(small_dataset / "train" / "fault" / name,
                         {"img": np.random.default_rng(0).uniform(-1, 1, (99, 99))})
        again = _tick(instance, sharded, first.cursor)
        assert [r.partition_key for r in again.run_requests] == [f"fault~{sources.stable_shard(name, 4)}of4"]
        assert _deletions(again) == []

        # unsharded (the default size): the shard keys give way to one key per folder
        whole = _tick(instance, SeisPaths(**paths), again.cursor)
        assert sorted(r.partition_key for r in whole.run_requests) == CATEGORIES
        assert sorted(_deletions(whole)) == keys
