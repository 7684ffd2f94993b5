"""Tests for seis_assets.core.listing: which names are patch files, folder listings, remote modification times."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest
from upath import UPath

from seis_assets.core import listing


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.mat", True), ("B.MAT", True), ("salt dome 1.Mat", True), (".a.mat", False), ("._a.mat", False),
     ("a.mat.tmp", False), ("a.txt", False)],
)
def test_is_mat_name(name, expected):
    assert listing.is_mat_name(name) is expected


def _fill(folder) -> None:
    for name in ("b.mat", "a.MAT", ".hidden.mat", "notes.txt"):
        (folder / name).write_bytes(b"x" * len(name))
    for name in ("sub", "z.mat", ".git"):  # a folder named like a .mat file is a folder
        (folder / name).mkdir()
        (folder / name / "inner.mat").write_bytes(b"y")


def test_list_folder_local(tmp_path):
    _fill(tmp_path)
    files, folders = listing.list_folder(tmp_path)
    assert [f.path for f in files] == [str(tmp_path / "a.MAT"), str(tmp_path / "b.mat")]
    assert [f.size for f in files] == [len("a.MAT"), len("b.mat")]
    assert all(f.mtime == os.stat(f.path).st_mtime for f in files)
    assert folders == ["sub", "z.mat"]
    assert listing.list_mat_files_detailed(tmp_path) == files
    assert listing.list_mat_files(tmp_path) == [f.path for f in files]
    assert listing.list_categories(tmp_path) == ["sub", "z.mat"]


def test_list_folder_memory_bucket():
    root = UPath(f"memory://bucket-{uuid.uuid4().hex}/train")
    root.mkdir(parents=True, exist_ok=True)
    _fill(root)
    files, folders = listing.list_folder(root)
    assert [f.path for f in files] == [str(root / "a.MAT"), str(root / "b.mat")]
    assert [f.size for f in files] == [len("a.MAT"), len("b.mat")]
    assert folders == ["sub", "z.mat"]
    assert listing.list_mat_files(root) == [f.path for f in files]
    (root / "c.mat").write_bytes(b"new")  # seen at once: the listing is asked of the server, not a cache
    assert listing.list_mat_files(root)[-1] == str(root / "c.mat")


def test_remote_mtime_reads_each_store_s_field():
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert listing.remote_mtime({"mtime": 12.5}) == 12.5
    assert listing.remote_mtime({"LastModified": when}) == when.timestamp()  # S3
    assert listing.remote_mtime({"updated": "2024-05-01T12:00:00Z"}) == when.timestamp()  # GCS: a string
    assert listing.remote_mtime({"size": 3}) == 0.0  # none known
