"""The code location loads and validates the way `dagster dev` and `dg` load it."""

import os
import subprocess
import sys
from pathlib import Path

from seis_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[2]
DESIGN_ASSETS = {"raw_mat_index", "resnet_features", "umap_50d", "umap_2d", "kmeans_model", "cluster_mapping",
                 "metrics", "plots"}


def test_dagster_definitions_validate():
    env = dict(os.environ, DAGSTER_HOME=str(ROOT / ".dagster_home"))
    run = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "seis_assets.definitions"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Validation successful" in run.stdout + run.stderr


def test_design_assets_jobs_sensors_schedule_are_defined():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert DESIGN_ASSETS | {"quarantine", "k_sweep", "anomalies", "predictions", "new_file_predictions"} <= keys
    for name in ("raw_mat_index", "resnet_features", "quarantine"):
        assert graph.get(dg_key(name)).partitions_def.name == "category"
    assert {s.name for s in defs.sensors} == {"train_folder_sensor", "incoming_files_sensor"}
    assert {s.name for s in defs.schedules} == {"recluster_schedule"}
    for job in ("ingest_job", "recluster_job", "predict_incoming_job"):
        assert defs.resolve_job_def(job).name == job


def dg_key(name):
    import dagster as dg

    return dg.AssetKey(name)


def test_folders_come_from_the_environment_and_test_sits_beside_train(monkeypatch, tmp_path):
    from seis_assets.resources import SeisPaths

    for var in ("SEIS_TRAIN_DIR", "SEIS_TEST_DIR", "SEIS_OUTPUT_DIR", "SEIS_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    default = SeisPaths.from_env()
    assert default.train_dir == os.path.abspath("data/train") and default.test_dir == os.path.abspath("data/test")
    assert default.output_dir == os.path.abspath("data/outputs")

    monkeypatch.setenv("SEIS_TRAIN_DIR", str(tmp_path / "LANDMASS1"))
    real = SeisPaths.from_env()
    # a real survey never picks up the demo's generated test set
    assert real.train_dir == str(tmp_path / "LANDMASS1") and real.test_dir == str(tmp_path / "test")

    monkeypatch.setenv("SEIS_TEST_DIR", str(tmp_path / "held_out"))
    monkeypatch.setenv("SEIS_OUTPUT_DIR", str(tmp_path / "out"))
    explicit = SeisPaths.from_env()
    assert explicit.test_dir == str(tmp_path / "held_out") and explicit.output_dir == str(tmp_path / "out")


def test_every_setting_has_a_description_in_the_launchpad():
    from seis_assets.definitions import build_resources

    for key, resource in build_resources().items():
        if key in ("parquet_io_manager", "io_manager"):
            continue
        fields = type(resource).to_config_schema().as_field().config_type.fields
        assert fields and all(f.description for f in fields.values()), key
