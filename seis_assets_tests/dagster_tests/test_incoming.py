"""Dropped files: the incoming sensor's eligibility and claims, prediction runs (retries, duplicates, bounds), and
model generations (a failed re-clustering keeps the previous generation serving)."""

import json
import os
import shutil
import time

import dagster as dg
import h5py
import numpy as np
import pandas as pd
import pytest

from seis_assets.assets import incoming as incoming_module
from seis_assets.assets.incoming import CLAIM_TAG, IncomingFiles
from seis_assets.core.claims import CLAIMS_DIR, OutsideIncomingError, claim_record, open_claims, take_over
from seis_assets.core.generations import CURRENT_FILE, promote, serving_generation
from seis_assets.core.listing import list_categories
from seis_assets.core.matfiles import PatchLoadError
from seis_assets.core.patches import load_patch
from seis_assets.core.predict import mark_duplicates
from seis_assets.core.storage import read_parquet
from seis_assets.definitions import ALL_ASSETS
from seis_assets.resources import SeisPaths
from seis_assets.sensors import incoming_files_sensor

from .helpers import materialize_all, paths_for, resources_for

OLD = time.time() - 3600  # an mtime long past any stability window
def _tick(instance, paths, cursor=None):
    return incoming_files_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"paths": paths}))


def _drop(folder, name, data: bytes, mtime=OLD):
    (folder / name).write_bytes(data)
    os.utime(folder / name, (mtime, mtime))
    return folder / name


def _fake_generation(root):
    """A serving generation as far as the sensor looks (it only checks that one serves)."""
    (root / "models" / "generations" / "g1").mkdir(parents=True)
    (root / "models" / CURRENT_FILE).write_text("g1\n")


def _files(request):
    return request.run_config["ops"]["new_file_predictions"]["config"]["files"]


# ------------------------------------------------------------------ sensor: eligibility, claims, names


def test_sensor_claims_stable_files_once_and_never_hides_a_later_drop(small_dataset):
    paths = paths_for(small_dataset).model_copy(update={"incoming_stable_s": 30})
    incoming = small_dataset / "incoming"
    incoming.mkdir()
    patch = (small_dataset / "test" / "fault" / "fault_0001.mat").read_bytes()
    with dg.instance_for_test() as instance:
        _drop(incoming, "a.mat", patch)
        _drop(incoming, "b.mat", patch)
        _drop(incoming, "fresh.mat", patch, mtime=time.time())  # still being written, as far as anyone can tell
        _drop(incoming, ".c.mat.part", patch)  # the writer convention: hidden while written
        (incoming / "sub.mat").mkdir()  # a folder with a .mat name is not a file
        (incoming / "notes.txt").write_text("not a patch")
        waiting = _tick(instance, paths)
        assert isinstance(waiting, dg.SkipReason) and "no fitted models" in waiting.skip_message
        assert (incoming / "a.mat").exists()  # nothing claimed before a model generation serves

        _fake_generation(small_dataset)
        first = _tick(instance, paths)
        [request] = first.run_requests
        claim = request.tags[CLAIM_TAG]
        assert request.run_key == f"claim:{claim}"
        assert [os.path.basename(f) for f in _files(request)] == ["a.mat", "b.mat"]
        assert all(f"{CLAIMS_DIR}/{claim}/" in f for f in _files(request))
        assert not (incoming / "a.mat").exists() and (incoming / "fresh.mat").exists()
        assert (incoming / ".c.mat.part").exists() and (incoming / "notes.txt").exists()

        # the claimed files are never handed to a second run while their run is queued or running
        again = _tick(instance, paths, cursor=first.cursor)
        assert isinstance(again, dg.SkipReason) and "still settling" in again.skip_message

        # same name again, and the same bytes with the same mtime (cp -p): both are new drops, new claim, new key
        _drop(incoming, "a.mat", b"other bytes under a used name")
        _drop(incoming, "b2.mat", patch)
        later = _tick(instance, paths, cursor=first.cursor)
        [request2] = later.run_requests
        assert sorted(os.path.basename(f) for f in _files(request2)) == ["a.mat", "b2.mat"]
        assert request2.run_key != request.run_key

        # the writer finishes: the file becomes eligible only once its mtime is old enough and unchanged
        os.utime(incoming / "fresh.mat", (OLD, OLD))
        changed = _tick(instance, paths, cursor=later.cursor)
        assert isinstance(changed, dg.SkipReason)  # size/mtime differ from the last look: wait one more look
        settled = _tick(instance, paths, cursor=json.dumps(
            {**json.loads(later.cursor), "state": {"fresh.mat": [len(patch), OLD]}}))
        assert [os.path.basename(f) for f in _files(settled.run_requests[0])] == ["fresh.mat"]


def test_sensor_requests_a_claim_whose_request_was_lost_again(small_dataset):
    paths = paths_for(small_dataset)
    incoming = small_dataset / "incoming"
    (incoming / CLAIMS_DIR / "20260101T000000-abcd1234").mkdir(parents=True)
    _drop(incoming / CLAIMS_DIR / "20260101T000000-abcd1234", "x.mat", b"claimed by a tick that crashed")
    _fake_generation(small_dataset)
    with dg.instance_for_test() as instance:
        [request] = _tick(instance, paths).run_requests
        assert request.run_key == "claim:20260101T000000-abcd1234"
        assert open_claims(incoming) == {"20260101T000000-abcd1234": _files(request)}


def test_sensor_tick_survives_undecodable_names_and_a_missing_folder(small_dataset, tmp_path):
    paths = paths_for(small_dataset)
    incoming = small_dataset / "incoming"
    incoming.mkdir()
    _fake_generation(small_dataset)
    patch = (small_dataset / "test" / "fault" / "fault_0001.mat").read_bytes()
    bad = os.path.join(os.fsencode(incoming), b"caf\xe9.mat")  # Latin-1 name: not UTF-8
    with open(bad, "wb") as handle:
        handle.write(patch)
    os.utime(bad, (OLD, OLD))
    _drop(incoming, "a...b.mat", patch)
    _drop(incoming, "line\nbreak.mat", patch)
    with dg.instance_for_test() as instance:
        [request] = _tick(instance, paths).run_requests
        assert sorted(os.path.basename(f) for f in _files(request)) == ["a...b.mat", "line\nbreak.mat"]
        rejected = os.path.join(os.fsencode(incoming), b"rejected")
        assert sorted(os.listdir(rejected)) == [b"caf\xe9.mat", b"caf\xe9.mat.reason.txt"]
        reason = open(os.path.join(rejected, b"caf\xe9.mat.reason.txt"), "rb").read().decode()
        assert "not valid UTF-8" in reason
        gone = _tick(instance, paths_for(tmp_path / "nowhere"))
        assert isinstance(gone, dg.SkipReason) and "does not exist" in gone.skip_message


# ------------------------------------------------------------------ plain rules


def test_a_run_refuses_files_outside_incoming_and_touches_nothing(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    outside = tmp_path / "elsewhere.mat"
    outside.write_bytes(b"x")
    (incoming / "ok.mat").write_bytes(b"y")
    for path in (outside, incoming / ".." / "elsewhere.mat"):
        with pytest.raises(OutsideIncomingError, match="not in incoming_dir"):
            take_over(incoming, [str(incoming / "ok.mat"), str(path)], "run1")
    assert outside.exists() and (incoming / "ok.mat").exists() and not (incoming / CLAIMS_DIR).exists()
    owned, handled = take_over(incoming, [str(incoming / "ok.mat"), str(incoming / "gone.mat")], "run1")
    assert [os.path.basename(p) for p in owned] == ["ok.mat"] and handled == ["gone.mat"]
    # a retry of the same run finds the file where the first attempt claimed it
    assert take_over(incoming, [str(incoming / "ok.mat")], "run1") == (owned, [])


def test_duplicates_point_at_the_first_row_with_the_same_bytes():
    earlier = pd.DataFrame({"sha256": ["h1"], "prediction_id": ["c0/a.mat"], "predicted_at": ["2026-01-01"]})
    new = pd.DataFrame({"sha256": ["h1", "h2", "h2"], "prediction_id": ["c1/a.mat", "c1/b.mat", "c1/c.mat"]})
    assert mark_duplicates(new, earlier)["duplicate_of"].tolist() == ["c0/a.mat", None, "c1/b.mat"]


def test_v73_declared_size_is_checked_before_decompression(tmp_path):
    path = tmp_path / "bomb.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        # 40000 x 40000 doubles (12.8 GB) declared, nothing written: a few KB on disk
        d = f.create_dataset("img", shape=(40000, 40000), dtype="f8", chunks=(1000, 1000), compression="gzip")
        d.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file".ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    assert path.stat().st_size < 100_000
    with pytest.raises(PatchLoadError, match="too large: variable 'img' declares shape 40000x40000"):
        load_patch(path)


def test_promote_refuses_an_incomplete_generation_and_keeps_the_previous(tmp_path):
    models = tmp_path / "models"
    (models / "generations" / "g2").mkdir(parents=True)
    (models / "generations" / "g2" / "umap_reducer.joblib").write_bytes(b"half a re-clustering")
    with pytest.raises(FileNotFoundError, match="lacks backbone.json"):
        promote(models, "g2")
    assert serving_generation(models) is None and not (models / CURRENT_FILE).exists()


# ------------------------------------------------------------------ prediction runs in process


@pytest.fixture(scope="module")
def fitted(small_dataset_master, tmp_path_factory):
    root = tmp_path_factory.mktemp("incoming") / "data"
    shutil.copytree(small_dataset_master, root)
    with dg.instance_for_test() as instance:
        result = materialize_all(root, instance, list_categories(root / "train"), resources_for(root))
        assert result.success
        yield root, instance


def _predict(root, instance, files, claim="", **resources):
    return dg.materialize(
        ALL_ASSETS, selection=["new_file_predictions"], resources={**resources_for(root), **resources},
        instance=instance, run_config=dg.RunConfig(ops={"new_file_predictions": IncomingFiles(files=files, claim=claim)}),
        raise_on_error=False,
    )


def _all_rows(root):
    return pd.concat([read_parquet(p) for p in (root / "warehouse" / "new_file_predictions").glob("*.parquet")],
                     ignore_index=True)


def test_generation_is_recorded_and_identical_bytes_are_marked_duplicate(fitted):
    root, instance = fitted
    incoming = root / "incoming"
    incoming.mkdir(exist_ok=True)
    gen = serving_generation(root / "models")
    assert gen is not None and gen.id in [r.run_id for r in instance.get_runs()]
    # the seed-named copies are the serving generation's files
    assert (root / "outputs" / "kmeans_model.joblib").read_bytes() == gen.file("kmeans_model.joblib").read_bytes()
    src = root / "test" / "fault" / "fault_0002.mat"
    for name in ("d1.mat", "d2.mat", "d3.mat"):
        shutil.copy(src, incoming / name)
    assert _predict(root, instance, [str(incoming / "d1.mat")]).success
    shutil.copy(src, incoming / "d1.mat")  # the same name and bytes again, after the first was processed
    result = _predict(root, instance, [str(incoming / n) for n in ("d1.mat", "d2.mat", "d3.mat")],
                      feature_settings=resources_for(root)["feature_settings"].model_copy(update={"batch_size": 2}))
    assert result.success
    rows = _all_rows(root)
    assert len(rows) == 4 and rows["generation"].eq(gen.id).all()
    first = rows.sort_values("predicted_at").iloc[0]
    later = rows[rows["prediction_id"] != first["prediction_id"]]
    assert later["duplicate_of"].tolist() == [first["prediction_id"]] * 3
    assert later["cluster"].nunique() == 1 and later["cluster"].iloc[0] == first["cluster"]
    assert sorted(p.name for p in (incoming / "processed").iterdir()) == ["d1.1.mat", "d1.mat", "d2.mat", "d3.mat"]


def test_a_retry_after_a_crash_writes_no_second_row(fitted, monkeypatch):
    root, instance = fitted
    incoming = root / "incoming"
    incoming.mkdir(exist_ok=True)
    for i in range(3):
        shutil.copy(root / "test" / "horizon" / f"horizon_000{i + 1}.mat", incoming / f"r{i}.mat")
    (incoming / "r_bad.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    files = [str(incoming / n) for n in ("r0.mat", "r1.mat", "r2.mat", "r_bad.mat")]
    before = len(_all_rows(root))

    moved = []
    real_archive = incoming_module.archive_files

    def crash_after_one(paths_, folder):  # the run dies after its rows were written and one file was archived
        if moved:
            raise RuntimeError("killed")
        moved.append(paths_[0])
        return real_archive(paths_[:1], folder)

    monkeypatch.setattr(incoming_module, "archive_files", crash_after_one)
    assert not _predict(root, instance, files, claim="retry-claim").success
    assert len(moved) == 1 and len(list((incoming / CLAIMS_DIR / "retry-claim").iterdir())) == 3
    monkeypatch.setattr(incoming_module, "archive_files", real_archive)
    assert len(_all_rows(root)) == before + 3  # rows written before the crash

    assert _predict(root, instance, files, claim="retry-claim").success  # the retry: same config, same claim
    rows = _all_rows(root)
    mine = rows[rows["claim"] == "retry-claim"]
    assert sorted(mine["file_name"]) == ["r0.mat", "r1.mat", "r2.mat"] and len(rows) == before + 3
    assert (incoming / "rejected" / "r_bad.mat").exists()
    assert "MAT-file" in (incoming / "rejected" / "r_bad.mat.reason.txt").read_text()
    assert not (incoming / CLAIMS_DIR / "retry-claim").exists() and not list(incoming.glob("*.mat"))


def test_a_writer_that_stalls_past_the_stability_window_loses_nothing(fitted, monkeypatch):
    """The race of issue 19, on purpose: the sensor claims a half-written file and the run reads it, then the writer
    goes on. The file goes back to incoming/, is claimed again and gets one row; a truncated file that does not
    change is rejected as before."""
    root, instance = fitted
    incoming = root / "incoming"
    incoming.mkdir(exist_ok=True)
    paths = SeisPaths(**{**paths_for(root).model_dump(), "incoming_stable_s": 0.5})
    data = (root / "test" / "fault" / "fault_0003.mat").read_bytes()
    cut = data[:300]
    (incoming / "cut.mat").write_bytes(cut)
    real_predict = incoming_module.predict_files
    with (incoming / "stall.mat").open("wb") as writer:
        writer.write(data[: len(data) // 2])
        writer.flush()
        time.sleep(1.0)  # the writer stalls for longer than the stability window
        [request] = _tick(instance, paths).run_requests  # so the sensor claims its half-written file
        assert sorted(os.path.basename(f) for f in _files(request)) == ["cut.mat", "stall.mat"]
        claim = request.tags[CLAIM_TAG]
        first_seen = claim_record(incoming, claim)["stall.mat"]["first_seen"]

        def read_then_the_writer_goes_on(*args, **kwargs):
            out = real_predict(*args, **kwargs)  # the run reads both files: neither is a whole MAT-file
            writer.write(data[len(data) // 2: 3 * len(data) // 4])  # the writer wakes up, into the claimed file
            writer.flush()
            return out

        monkeypatch.setattr(incoming_module, "predict_files", read_then_the_writer_goes_on)
        first = _predict(root, instance, _files(request), claim=claim)
        monkeypatch.setattr(incoming_module, "predict_files", real_predict)
        assert first.success
        metadata = first.asset_materializations_for_node("new_file_predictions")[0].metadata
        assert metadata["n_still_being_written"].value == 1 and metadata["n_rejected"].value == 1
        assert any("stall.mat is still being written" in (e.message or "") for e in instance.all_logs(first.run_id))
        assert (incoming / "stall.mat").exists() and not (incoming / "rejected" / "stall.mat").exists()
        writer.write(data[3 * len(data) // 4:])  # the writer finishes, through its handle, into incoming/stall.mat
    assert (incoming / "stall.mat").read_bytes() == data
    with pytest.raises(PatchLoadError) as truncated:
        load_patch(incoming / "rejected" / "cut.mat")
    assert (incoming / "rejected" / "cut.mat.reason.txt").read_text().strip() == truncated.value.reason

    time.sleep(1.0)
    [again] = _tick(instance, paths).run_requests
    assert [os.path.basename(f) for f in _files(again)] == ["stall.mat"]
    record = claim_record(incoming, again.tags[CLAIM_TAG])["stall.mat"]
    assert record["first_seen"] == first_seen and record["claims"] == 2  # the bound counts from the first sight
    assert _predict(root, instance, _files(again), claim=again.tags[CLAIM_TAG]).success
    rows = _all_rows(root)
    assert rows["file_name"].tolist().count("stall.mat") == 1 and "cut.mat" not in set(rows["file_name"])
    assert (incoming / "processed" / "stall.mat").read_bytes() == data
    assert not list((incoming / "rejected").glob("stall*")) and (incoming / "rejected" / "cut.mat").exists()
    assert not list(incoming.glob("*.mat")) and not open_claims(incoming)


def test_a_writer_that_stalls_past_the_recheck_gets_its_file_back_from_rejected(fitted):
    """The race of issue 19 with a longer stall (the issue's 40 s): the writer sleeps through the stability window
    and the run's re-check, so the run rejects its half-written file; when it goes on, writing into
    rejected/paused.mat through its handle, the next sensor tick moves the file back, it is claimed again and gets one
    row, and nothing stays in rejected/."""
    root, instance = fitted
    incoming = root / "incoming"
    incoming.mkdir(exist_ok=True)
    paths = SeisPaths(**{**paths_for(root).model_dump(), "incoming_stable_s": 0.5})
    data = (root / "test" / "chaotic" / "chaotic_0003.mat").read_bytes()
    with (incoming / "paused.mat").open("wb") as writer:
        writer.write(data[: len(data) // 2])
        writer.flush()
        time.sleep(1.0)  # the writer stalls for longer than the stability window ...
        [request] = _tick(instance, paths).run_requests
        claim = request.tags[CLAIM_TAG]
        first_seen = claim_record(incoming, claim)["paused.mat"]["first_seen"]
        first = _predict(root, instance, _files(request), claim=claim)  # ... and than the run's re-check
        assert first.success
        metadata = first.asset_materializations_for_node("new_file_predictions")[0].metadata
        assert metadata["n_rejected"].value == 1 and metadata["n_still_being_written"].value == 0
        assert (incoming / "rejected" / "paused.mat").exists()
        assert isinstance(_tick(instance, paths), dg.SkipReason)
        assert (incoming / "rejected" / "paused.mat").exists()  # unchanged: it stays rejected, and watched

        writer.write(data[len(data) // 2:])  # the writer wakes up and finishes, into rejected/paused.mat
    assert (incoming / "rejected" / "paused.mat").read_bytes() == data
    assert isinstance(_tick(instance, paths), dg.SkipReason)  # this tick moves it back; it is not stable yet
    assert (incoming / "paused.mat").read_bytes() == data and not list((incoming / "rejected").glob("paused*"))
    time.sleep(1.0)
    [again] = _tick(instance, paths).run_requests
    assert [os.path.basename(f) for f in _files(again)] == ["paused.mat"]
    record = claim_record(incoming, again.tags[CLAIM_TAG])["paused.mat"]
    assert record["first_seen"] == first_seen and record["claims"] == 2
    assert _predict(root, instance, _files(again), claim=again.tags[CLAIM_TAG]).success
    rows = _all_rows(root)
    assert rows["file_name"].tolist().count("paused.mat") == 1
    assert (incoming / "processed" / "paused.mat").read_bytes() == data
    assert not list((incoming / "rejected").glob("paused*")) and not list(incoming.glob("*.mat"))


def test_a_failed_recluster_keeps_the_previous_generation_serving(fitted):
    root, instance = fitted
    incoming = root / "incoming"
    incoming.mkdir(exist_ok=True)
    before = serving_generation(root / "models")
    seed_copy = (root / "outputs" / "umap_reducer.joblib").read_bytes()
    shutil.copy(root / "test" / "salt dome" / "salt dome_0001.mat", incoming / "g_before.mat")
    assert _predict(root, instance, [str(incoming / "g_before.mat")]).success

    # different UMAP settings refit umap_50d (a new reducer in the run's generation), then KMeans fails (k too big)
    result = dg.materialize(
        ALL_ASSETS, selection=dg.AssetSelection.groups("embedding", "clustering", "evaluation"),
        resources=resources_for(root, umap_n_neighbors=5, k=10_000), instance=instance, raise_on_error=False,
    )
    assert not result.success
    assert any(e.asset_key == dg.AssetKey("umap_50d") for e in result.get_asset_materialization_events())
    assert serving_generation(root / "models") == before
    assert (root / "models" / "generations" / result.run_id / "umap_reducer.joblib").exists()  # staged, not served
    assert (root / "outputs" / "umap_reducer.joblib").read_bytes() == seed_copy

    shutil.copy(root / "test" / "salt dome" / "salt dome_0001.mat", incoming / "g_after.mat")
    assert _predict(root, instance, [str(incoming / "g_after.mat")]).success
    rows = _all_rows(root).set_index("file_name")
    assert rows.loc["g_after.mat", "generation"] == rows.loc["g_before.mat", "generation"] == before.id
    for column in ("cluster", "predicted_label", "anomaly_score"):
        assert rows.loc["g_after.mat", column] == rows.loc["g_before.mat", column]


# ------------------------------------------------------------------ concurrency, monitoring, retries (configuration)


def test_pools_monitoring_and_retries_hold_for_every_way_of_launching(tmp_path):
    from pathlib import Path

    from dagster._core.instance.ref import InstanceRef

    from seis_assets.definitions import defs

    pools = {key: defs.resolve_assets_def(key).op.pool for key in ("resnet_features", "umap_50d", "new_file_predictions")}
    assert pools["resnet_features"] == pools["umap_50d"] == "seis_heavy"
    assert pools["new_file_predictions"] == "seis_predict"  # beside a re-clustering, one prediction at a time
    job = defs.resolve_job_def("predict_incoming_job")
    assert job.tags["dagster/max_retries"] == "2" and job.executor_def.name == "in_process"

    shutil.copy(Path(__file__).resolve().parents[2] / ".dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1  # pools are enforced on runs from the UI and backfills too
        assert config.pool_config.pool_granularity.value == "run"
        assert instance.run_monitoring_enabled and instance.run_retries_enabled


def test_a_switch_keeps_the_serving_previous_and_newest_generations(tmp_path):
    from seis_assets.core.generations import REQUIRED_FILES

    models = tmp_path / "models"
    for i, gen in enumerate(["g0", "g1", "g2", "g3", "g4", "g5"]):  # g0 oldest ... g5 newest (maybe still writing)
        folder = models / "generations" / gen
        folder.mkdir(parents=True)
        for name in REQUIRED_FILES:
            (folder / name).write_bytes(gen.encode())
        os.utime(folder, (OLD + i, OLD + i))
    (models / CURRENT_FILE).write_text("g1\n")
    new, previous = promote(models, "g2")
    assert (new.id, previous.id) == ("g2", "g1") and serving_generation(models).id == "g2"
    assert sorted(p.name for p in (models / "generations").iterdir()) == ["g1", "g2", "g3", "g4", "g5"]
