"""Tests for seis_assets.core.storage: atomic writes, Parquet, joblib, local and memory://."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from upath import UPath

from seis_assets.core import storage as st

TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-[0-9a-f]{32}$")


def _memory_dir() -> UPath:
    return UPath(f"memory://test-{uuid.uuid4().hex}")


def _listing(folder) -> list[str]:
    folder = st.to_upath(folder)
    return sorted(p.name for p in folder.iterdir())


def test_path_str(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert st.path_str("rel/x.mat") == str(tmp_path / "rel" / "x.mat")
    assert st.path_str(Path("a b.mat")) == str(tmp_path / "a b.mat")
    assert st.path_str(UPath(tmp_path / "c.mat")) == str(tmp_path / "c.mat")
    assert st.path_str(f"file://{tmp_path}/d.mat") == str(tmp_path / "d.mat")
    assert st.path_str("memory://bucket/salt dome/x.mat") == "memory://bucket/salt dome/x.mat"
    assert st.is_local(tmp_path) and not st.is_local("s3://bucket/key")


@pytest.mark.parametrize("kind", [str, Path, UPath])
def test_atomic_path_local_success(tmp_path, kind):
    target = tmp_path / "deep" / "table.bin"
    with st.atomic_path(kind(target)) as tmp:
        assert tmp.parent == target.parent  # sibling, parents created
        match = TMP_NAME.match(tmp.name)
        assert match and match["name"] == "table.bin"
        with tmp.open("wb") as handle:
            handle.write(b"new")
        assert not target.exists()  # not visible before the block ends
    assert target.read_bytes() == b"new"
    assert _listing(target.parent) == ["table.bin"]


def test_atomic_path_local_failure_keeps_old(tmp_path):
    target = tmp_path / "table.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with st.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == ["table.bin"]  # temporary file removed


def test_atomic_path_nothing_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with st.atomic_path(tmp_path / "x.bin"):
            pass
    assert _listing(tmp_path) == []


def test_atomic_write_bytes_overwrites(tmp_path):
    target = tmp_path / "a.bin"
    assert st.atomic_write_bytes(target, b"one") == str(target)
    st.atomic_write_bytes(str(target), b"two")
    assert target.read_bytes() == b"two"
    assert _listing(tmp_path) == ["a.bin"]


def test_atomic_memory(tmp_path):
    folder = _memory_dir()
    target = folder / "sub" / "a.bin"
    assert st.atomic_write_bytes(target, b"one") == str(target)
    assert target.read_bytes() == b"one"
    with pytest.raises(RuntimeError):
        with st.atomic_path(str(target)) as tmp:
            assert isinstance(tmp, UPath) and TMP_NAME.match(tmp.name)
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"one"
    assert _listing(folder / "sub") == ["a.bin"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": ["/d/salt dome/a.mat", "/d/fault/b.mat"],
            "height": np.array([99, 40], dtype=np.int64),
            "score": np.array([0.5, -1.25], dtype=np.float32),
        }
    )


@pytest.mark.parametrize("where", ["local", "memory"])
def test_parquet_roundtrip_with_metadata(tmp_path, where):
    folder = tmp_path if where == "local" else _memory_dir()
    path = folder / "warehouse" / "index.parquet"
    identity = {"backbone": "resnet50", "dim": 2048}
    written = st.write_parquet_atomic(
        _frame(), path, metadata={"seis_assets.backbone": json.dumps(identity)}
    )
    assert written == st.path_str(path)
    back = st.read_parquet(path)
    pd.testing.assert_frame_equal(back, _frame(), check_dtype=False)
    assert back["height"].dtype == np.int64 and back["score"].dtype == np.float32
    assert st.read_parquet(str(path), columns=["height"]).columns.tolist() == ["height"]
    meta = st.read_parquet_metadata(path)
    assert meta == {"seis_assets.backbone": json.dumps(identity)}  # pandas' own entry left out
    assert _listing(folder / "warehouse") == ["index.parquet"]


def test_parquet_metadata_merges_into_table_metadata(tmp_path):
    table = pa.table({"x": [1, 2]}).replace_schema_metadata({"origin": "generator", "v": "1"})
    path = tmp_path / "t.parquet"
    st.write_parquet_atomic(table, path, metadata={"v": "2", "k": "x"})
    assert st.read_parquet_metadata(path) == {"origin": "generator", "v": "2", "k": "x"}
    assert st.read_parquet(path)["x"].tolist() == [1, 2]


def test_parquet_errors(tmp_path):
    with pytest.raises(TypeError, match="json.dumps"):
        st.write_parquet_atomic(_frame(), tmp_path / "t.parquet", metadata={"k": {"a": 1}})
    assert _listing(tmp_path) == []
    with pytest.raises(TypeError, match="DataFrame"):
        st.write_parquet_atomic([1, 2], tmp_path / "t.parquet")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none.parquet"))):
        st.read_parquet(tmp_path / "none.parquet")
    with pytest.raises(FileNotFoundError, match="none.parquet"):
        st.read_parquet_metadata(tmp_path / "none.parquet")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_joblib_roundtrip(tmp_path, where):
    folder = tmp_path if where == "local" else _memory_dir()
    obj = {"centres": np.arange(6.0).reshape(2, 3), "mapping": {0: "fault", 1: "salt dome"}}
    path = folder / "models" / "kmeans.joblib"
    assert st.save_joblib_atomic(obj, path) == st.path_str(path)
    back = st.load_joblib(path)
    np.testing.assert_array_equal(back["centres"], obj["centres"])
    assert back["mapping"] == obj["mapping"]


def test_load_joblib_missing_names_path_and_hint(tmp_path):
    missing = tmp_path / "models" / "kmeans.joblib"
    with pytest.raises(FileNotFoundError) as info:
        st.load_joblib(missing, hint="materialize the kmeans_model asset first")
    assert str(missing) in str(info.value)
    assert "materialize the kmeans_model asset first" in str(info.value)


def test_read_bytes(tmp_path):
    (tmp_path / "a b.bin").write_bytes(b"\x00\x01")
    assert st.read_bytes(str(tmp_path / "a b.bin")) == b"\x00\x01"
    folder = _memory_dir()
    (folder / "x.bin").write_bytes(b"remote")
    assert st.read_bytes(str(folder / "x.bin")) == b"remote"
    with pytest.raises(FileNotFoundError):
        st.read_bytes(tmp_path / "missing.bin")
    assert os.listdir(tmp_path) == ["a b.bin"]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_save_npy_atomic_round_trip_leaves_no_temporary(tmp_path, where):
    folder = tmp_path / "out" if where == "local" else _memory_dir()
    labels = np.array([3, 1, 2, 0], dtype=np.int64)
    names = np.array(["chaotic", "salt dome"])
    st.save_npy_atomic(labels, st.to_upath(folder) / "cluster_assignments.npy")
    st.save_npy_atomic(names, st.to_upath(folder) / "cluster_to_label_mapping.npy")
    assert _listing(folder) == ["cluster_assignments.npy", "cluster_to_label_mapping.npy"]
    got = st.load_npy(st.to_upath(folder) / "cluster_assignments.npy")
    assert got.dtype == np.int64 and got.tolist() == [3, 1, 2, 0]
    assert st.load_npy(st.to_upath(folder) / "cluster_to_label_mapping.npy").tolist() == ["chaotic", "salt dome"]
    if where == "local":  # the seed's readers use np.load on the file name
        assert np.load(tmp_path / "out" / "cluster_assignments.npy").tolist() == [3, 1, 2, 0]


def test_save_npy_atomic_failure_keeps_previous_file(tmp_path):
    target = tmp_path / "cluster_assignments.npy"
    st.save_npy_atomic(np.arange(3), target)
    with pytest.raises(ValueError):  # object arrays would need pickles: refused, nothing replaced
        st.save_npy_atomic(np.array([{"a": 1}], dtype=object), target)
    assert np.load(target).tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster_assignments.npy"]
