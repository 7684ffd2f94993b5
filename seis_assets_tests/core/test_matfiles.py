"""Tests for the .mat path: matfiles (formats, keys, bad files), patches (checks, scaling), listing and
mat_index (folder listings and scans)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
from upath import UPath

from seis_assets.core import listing, mat_index
from seis_assets.core import matfiles as mf
from seis_assets.core import patches as pt
from seis_assets.core.matfiles import PatchLoadError

F3_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "f3_patches"

# --------------------------------------------------------------------------- writers


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _patch(shape=(12, 20), lo=-1.0, hi=1.0, seed=0) -> np.ndarray:
    return _rng(seed).uniform(lo, hi, size=shape)


def save_v5(path: Path, variables: dict, compress: bool = True) -> Path:
    scipy.io.savemat(path, variables, do_compression=compress)
    return path


_MATLAB_CLASS = {
    "float64": "double",
    "float32": "single",
    "uint8": "uint8",
    "int16": "int16",
    "bool": "logical",
}


def save_v73(path: Path, variables: dict) -> Path:
    """Write a MATLAB v7.3 file the way MATLAB does.

    HDF5 with a 512-byte user block holding the MATLAB text header, each
    variable a dataset with a ``MATLAB_class`` attribute, arrays stored
    column-major (so the HDF5 shape is the MATLAB shape reversed), char as
    uint16 codes, cells as object references into ``#refs#``, structs as groups.
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            if isinstance(value, str):
                codes = np.array([[ord(c)] for c in value], dtype=np.uint16)  # 1xN -> (N, 1)
                ds = f.create_dataset(name, data=codes)
                ds.attrs["MATLAB_class"] = np.bytes_("char")
                ds.attrs["MATLAB_int_decode"] = np.int32(2)
            elif isinstance(value, dict):
                group = f.create_group(name)
                group.attrs["MATLAB_class"] = np.bytes_("struct")
                for field, field_value in value.items():
                    group.create_dataset(field, data=np.asarray(field_value, dtype=float).T)
            elif isinstance(value, list):
                refs = f.require_group("#refs#")
                cell = f.create_dataset(name, shape=(len(value), 1), dtype=h5py.ref_dtype)
                for i, item in enumerate(value):
                    target = refs.create_dataset(f"{name}_{i}", data=np.asarray(item, dtype=float).T)
                    target.attrs["MATLAB_class"] = np.bytes_("double")
                    cell[i, 0] = target.ref
                cell.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                arr = np.asarray(value)
                ds = f.create_dataset(name, data=arr.T)  # column-major: reversed axes
                ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[arr.dtype.name])
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))
    return path


# --------------------------------------------------------------------------- formats


def test_v5_roundtrip_exact(tmp_path):
    a = _patch()
    for compress in (True, False):
        path = save_v5(tmp_path / f"a{compress}.mat", {"img": a}, compress)
        np.testing.assert_array_equal(mf.read_mat_array(path), a)


def test_v4_file(tmp_path):
    a = _patch((10, 14))
    path = tmp_path / "v4.mat"
    scipy.io.savemat(path, {"img": a}, format="4")
    assert path.read_bytes()[:4] == b"\x00\x00\x00\x00"  # v4: no text header
    np.testing.assert_array_equal(mf.read_mat_array(path), a)
    assert pt.load_patch(path).shape == (10, 14)


def test_v73_header_is_matlab_like(tmp_path):
    path = save_v73(tmp_path / "v73.mat", {"img": _patch()})
    assert scipy.io.matlab.matfile_version(str(path)) == (2, 0)
    assert h5py.is_hdf5(path)
    with h5py.File(path, "r") as f:
        assert f["img"].shape == (20, 12)  # stored transposed, as MATLAB does


def test_v73_orientation_non_square(tmp_path):
    a = np.arange(12 * 20, dtype=np.float64).reshape(12, 20)
    path = save_v73(tmp_path / "v73.mat", {"img": a})
    got = mf.read_mat_array(path)
    assert got.shape == (12, 20)
    np.testing.assert_array_equal(got, a)
    patch = pt.load_patch(path)
    assert patch[0, 0] == -1.0 and patch[-1, -1] == 1.0
    assert patch[0, 1] > patch[0, 0]  # increasing along a row, as in MATLAB


def test_v73_colour_and_single(tmp_path):
    rgb = _patch((12, 20, 3))
    path = save_v73(tmp_path / "rgb.mat", {"img": rgb, "scale": np.array([[2.0]])})
    np.testing.assert_array_equal(mf.read_mat_array(path), rgb)
    single = _patch((9, 11)).astype(np.float32)
    path = save_v73(tmp_path / "single.mat", {"data": single})
    np.testing.assert_array_equal(mf.read_mat_array(path, key=None), single)


def test_v73_cell_refs_are_not_candidates(tmp_path):
    """'#refs#' is MATLAB's internal group; a cell is not an image."""
    path = save_v73(tmp_path / "c.mat", {"patch": _patch(), "notes": [_patch((9, 9))]})
    assert mf.read_mat_array(path, key="img").shape == (12, 20)  # fell back to 'patch'


def test_hxwx1_and_hxwx3(tmp_path):
    a = _patch((12, 20, 1))
    p1 = save_v5(tmp_path / "one.mat", {"img": a})
    out = pt.load_patch(p1)
    assert out.shape == (12, 20)
    np.testing.assert_allclose(out, pt.normalise_patch(a[..., 0]))
    rgb = _patch((12, 20, 3), lo=0, hi=255).astype(np.uint8)
    p3 = save_v5(tmp_path / "rgb.mat", {"img": rgb})
    out = pt.load_patch(p3)
    np.testing.assert_allclose(out, pt.normalise_patch(rgb.astype(float).mean(axis=2)), atol=1e-6)


# --------------------------------------------------------------------------- values


def test_normalise_ranges():
    f3 = _patch(lo=0.0, hi=1.0)
    landmass = _patch(lo=-1.0, hi=1.0, seed=1)
    for a in (f3, landmass, (f3 * 255).astype(np.uint8), f3.astype(np.float32) + 1000):
        out = pt.normalise_patch(a)
        assert out.dtype == np.float32 and out.shape == a.shape
        assert out.min() == -1.0 and out.max() == 1.0
    # affine map: order and relative spacing are kept
    out = pt.normalise_patch(f3)
    expected = (f3 - f3.min()) / (f3.max() - f3.min()) * 2 - 1
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_normalise_does_not_modify_input():
    a = _patch()
    before = a.copy()
    pt.normalise_patch(a)
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize(
    "array, reason",
    [
        (np.full((12, 12), 0.5), "constant"),
        (1000 + np.eye(12) * 1e-9, "nearly constant"),
        (np.where(np.eye(12) > 0, np.nan, 0.5), "NaN"),
        (np.where(np.eye(12) > 0, np.inf, 0.5), "Inf"),
        (np.arange(20.0), "1-D"),
        (np.zeros((10, 10, 2, 2)) + np.arange(4).reshape(2, 2), "4-D"),
        (np.arange(10.0 * 10 * 2).reshape(10, 10, 2), "H x W x 3"),
        (np.arange(16.0).reshape(4, 4), "too small"),
        (np.arange(30.0).reshape(1, 30), "vector"),
        (np.ones((5000, 9)) * np.arange(9), "too large"),
        (np.array(["abc"]), "char"),
        (np.ones((12, 12)) * (1 + 1j), "complex"),
    ],
)
def test_normalise_rejects(array, reason):
    with pytest.raises(PatchLoadError) as info:
        pt.normalise_patch(array, name="thing.mat")
    assert reason in info.value.reason
    assert info.value.path == "thing.mat"
    assert "thing.mat" in str(info.value) and info.value.reason in str(info.value)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- keys


def test_key_auto_detect_single_array(tmp_path, caplog):
    a = _patch()
    path = save_v5(tmp_path / "k.mat", {"seismic": a, "dt": np.array([[0.004]]), "name": "x"})
    with caplog.at_level("WARNING", logger="seis_assets.core.matfiles"):
        np.testing.assert_array_equal(mf.read_mat_array(path, key=None), a)
        assert not caplog.records  # no key asked for: nothing to warn about
        np.testing.assert_array_equal(mf.read_mat_array(path, key="img"), a)  # missing -> the only candidate
        [record] = caplog.records  # ... and said so, naming the file and both keys
        assert "k.mat" in record.getMessage() and "'img' not found" in record.getMessage()
        assert "'seismic'" in record.getMessage()
    np.testing.assert_array_equal(mf.read_mat_array(path, key="seismic"), a)


def test_missing_key_lists_keys(tmp_path):
    path = save_v5(tmp_path / "two.mat", {"data": _patch(), "other": _patch(seed=2)})
    with pytest.raises(PatchLoadError) as info:
        pt.load_patch(path, key="img")
    msg = str(info.value)
    assert str(path) in msg
    assert "'img' not found" in msg and "'data' (double 12x20)" in msg and "'other'" in msg


def test_missing_key_without_candidate(tmp_path):
    path = save_v5(tmp_path / "text.mat", {"note": "hello", "dt": np.array([[0.004]])})
    with pytest.raises(PatchLoadError, match=r"'img' not found.*'note' \(char.*'dt' \(double 1x1\)"):
        pt.load_patch(path)


def test_ambiguous_auto_detect(tmp_path):
    for path in (
        save_v5(tmp_path / "amb.mat", {"a": _patch(), "b": _patch(seed=3)}),
        save_v73(tmp_path / "amb73.mat", {"a": _patch(), "b": _patch(seed=3)}),
    ):
        with pytest.raises(PatchLoadError, match="several image-like arrays") as info:
            mf.read_mat_array(path, key=None)
        assert "no key given" in info.value.reason and "'a'" in info.value.reason
        assert info.value.path == str(path)


# --------------------------------------------------------------------------- bad files

_GOOD = {
    "good_v5.mat": lambda p: save_v5(p, {"img": _patch(lo=0, hi=1)}),
    "good_v5_raw.mat": lambda p: save_v5(p, {"img": _patch(seed=4)}, compress=False),
    "good_v4.mat": lambda p: scipy.io.savemat(p, {"img": _patch(seed=5)}, format="4"),
    "good_v73.mat": lambda p: save_v73(p, {"img": _patch(seed=6)}),
    "good_hw1.mat": lambda p: save_v5(p, {"img": _patch((12, 20, 1), seed=7)}),
    "good_hw3.mat": lambda p: save_v5(p, {"img": _patch((12, 20, 3), seed=8)}),
    "GOOD_UPPER.MAT": lambda p: save_v5(p, {"img": _patch(seed=9)}),
    "good_other_key.mat": lambda p: save_v5(p, {"patch": _patch(seed=10)}),
}


def _truncated(path: Path, writer) -> None:
    writer(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# file name -> (writer, substring expected in the reason)
_BAD = {
    "corrupt.mat": (lambda p: p.write_bytes(b"MATLAB 5.0" + _rng(1).bytes(400)), "corrupt, truncated or not a MAT-file"),
    "text.mat": (lambda p: p.write_text("just some notes, not a matrix\n" * 10), "corrupt, truncated or not a MAT-file"),
    "truncated_v5.mat": (
        lambda p: _truncated(p, lambda q: save_v5(q, {"img": _patch((40, 40))}, compress=False)),
        "corrupt, truncated or not a MAT-file",
    ),
    "truncated_v5z.mat": (
        lambda p: _truncated(p, lambda q: save_v5(q, {"img": _patch((40, 40))})),
        "corrupt, truncated or not a MAT-file",
    ),
    "truncated_v73.mat": (
        lambda p: _truncated(p, lambda q: save_v73(q, {"img": _patch((40, 40))})),
        "corrupt or truncated v7.3",
    ),
    "empty.mat": (lambda p: p.write_bytes(b""), "empty file"),
    "missing_key.mat": (lambda p: save_v5(p, {"a": _patch(), "b": _patch(seed=1)}), "keys present: 'a'"),
    "nan.mat": (lambda p: save_v5(p, {"img": np.where(np.eye(12) > 0, np.nan, 1.0)}), "NaN"),
    "inf.mat": (lambda p: save_v5(p, {"img": np.where(np.eye(12) > 0, -np.inf, 1.0)}), "Inf"),
    "constant.mat": (lambda p: save_v5(p, {"img": np.zeros((12, 12))}), "constant"),
    "vector.mat": (lambda p: save_v5(p, {"img": np.arange(50.0)}), "vector"),
    "four_d.mat": (lambda p: save_v5(p, {"img": _patch((10, 10, 3, 2))}), "4-D"),
    "tiny.mat": (lambda p: save_v5(p, {"img": _patch((4, 4))}), "too small"),
    "char.mat": (lambda p: save_v5(p, {"img": "hello"}), "char"),
    "cell.mat": (lambda p: save_v5(p, {"img": np.array([_patch(), "x"], dtype=object)}), "cell"),
    "struct.mat": (lambda p: save_v5(p, {"img": {"data": _patch()}}), "struct"),
    "char_v73.mat": (lambda p: save_v73(p, {"img": "hello"}), "char"),
    "cell_v73.mat": (lambda p: save_v73(p, {"img": [_patch()]}), "cell"),
    "struct_v73.mat": (lambda p: save_v73(p, {"img": {"data": _patch()}}), "struct"),
    "nan_v73.mat": (lambda p: save_v73(p, {"img": np.full((12, 12), np.nan)}), "NaN"),
}


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "train" / "salt dome"
    folder.mkdir(parents=True)
    for name, writer in _GOOD.items():
        writer(folder / name)
    for name, (writer, _) in _BAD.items():
        writer(folder / name)
    (folder / "notes.txt").write_text("not a patch")
    (folder / "._good_v5.mat").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "sub.mat").mkdir()  # a folder named like a file
    return folder


@pytest.mark.parametrize("name", sorted(_BAD))
def test_bad_file_raises_naming_file_and_reason(mixed_folder, name):
    path = mixed_folder / name
    with pytest.raises(PatchLoadError) as info:
        pt.load_patch(path)
    err = info.value
    assert err.path == str(path)
    assert _BAD[name][1] in err.reason
    assert str(path) in str(err) and err.reason in str(err)


def test_list_mat_files(mixed_folder):
    listed = listing.list_mat_files(mixed_folder)
    names = [os.path.basename(p) for p in listed]
    assert sorted(names) == sorted([*_GOOD, *_BAD])
    assert listed == sorted(listed)
    assert all(os.path.isabs(p) for p in listed)


def test_scan_category_quarantines_bad_keeps_good(mixed_folder):
    root = mixed_folder.parent
    index, quarantine = mat_index.scan_category(root, "salt dome", "train")
    assert list(index.columns) == list(mat_index.INDEX_COLUMNS)
    assert list(quarantine.columns) == list(mat_index.QUARANTINE_COLUMNS)
    good = {os.path.basename(p) for p in index["path"]}
    bad = {os.path.basename(p): r for p, r in zip(quarantine["path"], quarantine["reason"])}
    assert good == set(_GOOD)
    assert set(bad) == set(_BAD)
    assert len(index) + len(quarantine) == len(listing.list_mat_files(mixed_folder))
    for name, (_, reason) in _BAD.items():
        assert reason in bad[name]
    assert (index["category"] == "salt dome").all() and (index["split"] == "train").all()
    assert (quarantine["category"] == "salt dome").all()
    for row in index.itertuples():
        assert os.path.isabs(row.path)
        assert row.sha256 == hashlib.sha256(Path(row.path).read_bytes()).hexdigest()
        assert row.sha256 == mat_index.file_sha256(row.path)
        assert (row.height, row.width) == pt.load_patch(row.path).shape
    assert index["height"].dtype == np.int64 and index["width"].dtype == np.int64
    # a scan is a pure function of the folder
    again, _ = mat_index.scan_category(str(root), "salt dome", "train", max_workers=4)
    pd.testing.assert_frame_equal(index, again)


def test_scan_category_missing_folder(tmp_path):
    index, quarantine = mat_index.scan_category(tmp_path, "fault", "test")
    assert index.empty and quarantine.empty
    assert list(index.columns) == list(mat_index.INDEX_COLUMNS)
    assert list(quarantine.columns) == list(mat_index.QUARANTINE_COLUMNS)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "fault")):
        mat_index.scan_category(tmp_path, "fault", "train")


def test_list_categories(tmp_path):
    train = tmp_path / "train"
    for cat in ("salt dome", "fault", "empty", ".hidden"):
        (train / cat).mkdir(parents=True)
    save_v5(train / "salt dome" / "a.mat", {"img": _patch()})
    save_v5(train / "fault" / "b.mat", {"img": _patch()})
    save_v5(train / ".hidden" / "c.mat", {"img": _patch()})
    (train / "empty" / "readme.txt").write_text("x")
    save_v5(train / "stray.mat", {"img": _patch()})
    assert listing.list_categories(train) == ["fault", "salt dome"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        listing.list_categories(tmp_path / "nowhere")


def test_load_patches(tmp_path):
    paths = [save_v5(tmp_path / f"{i}.mat", {"img": _patch(seed=i)}) for i in range(3)]
    patches = pt.load_patches(paths)
    assert [p.shape for p in patches] == [(12, 20)] * 3
    (tmp_path / "bad.mat").write_bytes(b"")
    with pytest.raises(PatchLoadError, match="bad.mat"):
        pt.load_patches([*paths, tmp_path / "bad.mat"])


def test_missing_file_is_patch_load_error(tmp_path):
    with pytest.raises(PatchLoadError, match="cannot read file") as info:
        pt.load_patch(tmp_path / "gone.mat")
    assert info.value.path == str(tmp_path / "gone.mat")


def test_read_patch_bytes_matches_load_patch(tmp_path):
    path = save_v5(tmp_path / "a.mat", {"img": _patch()})
    np.testing.assert_array_equal(
        pt.read_patch_bytes(path.read_bytes(), "img", str(path)), pt.load_patch(path)
    )
    with pytest.raises(PatchLoadError, match="^cannot load patch <bytes>: empty file"):
        pt.read_patch_bytes(b"")


# --------------------------------------------------------------------------- remote (fsspec memory://)


def test_memory_bucket_scan(tmp_path):
    root = UPath(f"memory://bucket-{uuid.uuid4().hex}/train")
    folder = root / "salt dome"
    folder.mkdir(parents=True, exist_ok=True)
    local = save_v5(tmp_path / "a.mat", {"img": _patch()})
    (folder / "a.mat").write_bytes(local.read_bytes())
    (folder / "b.mat").write_bytes(b"garbage bytes")
    (folder / "c.txt").write_bytes(b"ignored")
    (root / "empty").mkdir(parents=True, exist_ok=True)

    assert listing.list_categories(root) == ["salt dome"]
    assert listing.list_mat_files(folder) == [str(folder / "a.mat"), str(folder / "b.mat")]
    detailed = listing.list_mat_files_detailed(folder)
    assert [f.path for f in detailed] == listing.list_mat_files(folder)
    assert [f.size for f in detailed] == [len(local.read_bytes()), len(b"garbage bytes")]
    index, quarantine = mat_index.scan_category(root, "salt dome", "train")
    assert index["path"].tolist() == [str(folder / "a.mat")]
    assert index["path"][0].startswith("memory://")
    assert index["sha256"][0] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert quarantine["path"].tolist() == [str(folder / "b.mat")]
    np.testing.assert_array_equal(pt.load_patch(index["path"][0]), pt.load_patch(local))
    np.testing.assert_array_equal(pt.load_patch(folder / "a.mat"), pt.load_patch(local))


# --------------------------------------------------------------------------- real F3 subset


@pytest.mark.skipif(not (F3_ROOT / "salt dome").is_dir(), reason="F3 patches not on this machine")
def test_real_f3_salt_dome_subset():
    paths = listing.list_mat_files(F3_ROOT / "salt dome")[:20]
    assert len(paths) == 20
    for path, patch in zip(paths, pt.load_patches(paths)):
        assert " " in path  # "salt dome": the folder name has a space
        assert patch.shape == (99, 99) and patch.dtype == np.float32
        assert patch.min() == -1.0 and patch.max() == 1.0
        raw = mf.read_mat_array(path)
        assert 0.0 <= raw.min() and raw.max() <= 1.0  # F3 is stored in 0..1


def test_index_category_over_splits_keeps_every_file_once(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        folder = tmp_path / split / "salt dome"
        folder.mkdir(parents=True)
        for i in range(n):
            save_v5(folder / f"s{i}.mat", {"img": _patch(seed=i)})
    (tmp_path / "test" / "salt dome" / "bad.mat").write_bytes(b"garbage")
    index, quarantine = mat_index.index_category("salt dome", {"train": tmp_path / "train", "test": tmp_path / "test"})
    assert sorted(index["split"]) == ["test", "test", "train", "train", "train"]
    assert quarantine[["split", "category"]].values.tolist() == [["test", "salt dome"]]
    # no test folder at all is fine; a missing train folder is not
    index, _ = mat_index.index_category("salt dome", {"train": tmp_path / "train", "test": tmp_path / "nowhere"})
    assert len(index) == 3
    with pytest.raises(FileNotFoundError, match="nowhere"):
        mat_index.index_category("salt dome", {"train": tmp_path / "nowhere"})


def test_detailed_listing_matches_stat(tmp_path):
    """Size and mtime come from the one directory listing and agree with os.stat; hidden and non-.mat are skipped."""
    save_v5(tmp_path / "b.mat", {"img": _patch()})
    save_v5(tmp_path / "a.MAT", {"img": _patch()})
    (tmp_path / ".a.mat.tmp").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_bytes(b"x")
    files = listing.list_mat_files_detailed(tmp_path)
    assert [f.path for f in files] == [str(tmp_path / "a.MAT"), str(tmp_path / "b.mat")]
    for f in files:
        st = os.stat(f.path)
        assert (f.size, f.mtime) == (st.st_size, st.st_mtime)
