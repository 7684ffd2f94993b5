"""Shared fixtures: one small generated data set per session, and helpers to build the pipeline's resources."""

import os
import shutil
from pathlib import Path

import pytest

from seis_assets.core.synthetic import write_dataset

F3_PATCHES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "f3_patches"

#: Patches per class in the session's small set: enough for UMAP/KMeans to be meaningful, small enough for seconds.
SMALL_N_TRAIN = 16
SMALL_N_TEST = 6


@pytest.fixture(scope="session")
def small_dataset_master(tmp_path_factory) -> Path:
    """A generated LANDMASS-like set (train/test, 4 classes, injected test anomalies), made once per session."""
    root = tmp_path_factory.mktemp("small_dataset")
    write_dataset(root, n_train=SMALL_N_TRAIN, n_test=SMALL_N_TEST, seed=7, anomaly_share=0.25)
    return root


@pytest.fixture
def small_dataset(small_dataset_master, tmp_path) -> Path:
    """A private copy of the small set, so a test may add, break or remove files."""
    root = tmp_path / "data"
    shutil.copytree(small_dataset_master, root)
    return root


@pytest.fixture(scope="session")
def f3_dir() -> Path:
    """The real F3 patches beside the repository (never copied into it)."""
    if not F3_PATCHES.exists():
        pytest.skip(f"real patches not found at {F3_PATCHES}")
    return F3_PATCHES


@pytest.fixture(autouse=True)
def _no_network_for_weights(monkeypatch, tmp_path):
    """Tests never download: an empty torch hub cache, so `auto` resolves the same on every machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("SEIS_ENGINE_CACHE", str(tmp_path / "engine_cache"))  # exported ONNX models stay private
    os.environ.pop("SEIS_TRAIN_DIR", None)
