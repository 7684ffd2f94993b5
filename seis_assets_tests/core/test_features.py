"""Feature extraction: preprocessing, streamed Parquet output, identity, cache and failures."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.io
import torch
from scipy import ndimage

from seis_assets.core.backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, load_backbone
import seis_assets.core.features as features_module
from seis_assets.core.engines import resolve_precision
from seis_assets.core.feature_table import (
    FEATURE_COLUMNS,
    IDENTITY_METADATA_KEY,
    BackboneMismatchError,
    check_identity,
    feature_matrix,
)
from seis_assets.core.features import embed, extract_features
from seis_assets.core.preprocess import preprocess


# --------------------------------------------------------------------------- helpers
def _write_patch(path, rng, shape=(24, 24)):
    a = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    scipy.io.savemat(path, {"img": a / np.abs(a).max()})


def _index_row(path, category="a", split="train"):
    data = path.read_bytes()
    a = scipy.io.loadmat(path)["img"]
    return dict(
        path=str(path),
        category=category,
        split=split,
        sha256=hashlib.sha256(data).hexdigest(),
        height=a.shape[0],
        width=a.shape[1],
        extra="not copied",
    )


def _dataset(folder, n, start=0, seed=0, shape=(24, 24)):
    """n .mat patches in folder and their index rows (an index may carry extra columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + start)
    rows = []
    for i in range(start, start + n):
        p = folder / f"p_{i:04d}.mat"
        _write_patch(p, rng, shape)
        rows.append(_index_row(p))
    return pd.DataFrame(rows)


class _TinyNet(torch.nn.Module):
    """Small CNN standing in for a real backbone (fast); pooled 8-d features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def _tiny_backbone(weights="w1"):
    ident = dict(backbone="tiny", weights=weights, dim=8, requested="tiny", fallback_reason=None, weights_sha256=weights)
    return Backbone("tiny", 8, ident, "cpu", IMAGENET_MEAN, IMAGENET_STD, lambda: _TinyNet().eval())



# --------------------------------------------------------------------------- preprocessing
def test_preprocess_maps_minus_one_to_one_onto_imagenet_normalised_intensity():
    x = np.stack([np.full((10, 12), -1.0), np.full((10, 12), 1.0)]).astype(np.float32)
    out = preprocess(x, 16, IMAGENET_MEAN, IMAGENET_STD)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    for c in range(3):
        assert torch.allclose(out[0, c], torch.tensor((0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
        assert torch.allclose(out[1, c], torch.tensor((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
    assert preprocess(x, "native", IMAGENET_MEAN, IMAGENET_STD).shape == (2, 3, 10, 12)
    with pytest.raises(ValueError, match="input_size"):
        preprocess(x, "big", IMAGENET_MEAN, IMAGENET_STD)


def test_preprocess_resize_is_bilinear_like_the_seed():
    ramp = np.linspace(-1, 1, 8, dtype=np.float32)[None, :].repeat(8, 0)[None]
    out = preprocess(ramp, 16, (0, 0, 0), (1, 1, 1))[0, 0].numpy()
    assert np.all(np.diff(out[0]) >= 0) and out.min() >= 0 and out.max() <= 1  # monotone, no overshoot


@pytest.mark.skipif(resolve_precision("auto", "cpu") != "bf16", reason="CPU has no native bf16")
def test_bf16_features_match_fp32(random_resnet_file):
    bb = load_backbone("resnet50", weights_path=random_resnet_file, device="cpu")
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32)).astype(np.float32)
    a, b = embed(bb, x, "native", "fp32"), embed(bb, x, "native", "bf16")
    assert b.dtype == np.float32
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


# --------------------------------------------------------------------------- table
def test_streamed_table_schema_row_groups_and_metadata(tmp_path, monkeypatch):
    monkeypatch.setattr(features_module, "ROW_GROUP_ROWS", 4)  # a row group per 4 rows instead of 256
    index = _dataset(tmp_path / "a", 10)
    out = tmp_path / "f.parquet"
    report = extract_features(index, out, _tiny_backbone(), input_size="native", precision="fp32", batch_size=4)
    assert (report.n_rows, report.n_extracted, report.n_reused) == (10, 10, 0)
    pf = pq.ParquetFile(out)
    assert pf.num_row_groups == 3  # 4 + 4 + 2 rows
    assert tuple(pf.schema_arrow.names) == FEATURE_COLUMNS
    assert pf.schema_arrow.field("features").type == pa.list_(pa.float32(), 8)
    ident = json.loads(pf.schema_arrow.metadata[IDENTITY_METADATA_KEY])
    assert ident == report.identity
    assert ident["backbone"] == "tiny" and ident["input_size"] == "native" and ident["precision"] == "fp32"
    assert (report.precision, report.input_size) == ("fp32", "native")
    table = pf.read()
    assert set(table.column("path").to_pylist()) == set(index["path"])
    assert table.column("backbone").unique().to_pylist() == ["tiny"]
    assert not list(tmp_path.glob(".f.parquet.tmp-*"))  # temp file renamed away
    # the stored vectors are the backbone's output for those files
    X = feature_matrix(table)
    assert X.shape == (10, 8) and X.dtype == np.float32
    first = scipy.io.loadmat(table.column("path")[0].as_py())["img"].astype(np.float32)
    first = 2 * (first - first.min()) / (first.max() - first.min()) - 1
    np.testing.assert_allclose(X[0], embed(_tiny_backbone(), first[None], "native", "fp32")[0], rtol=1e-5, atol=1e-6)


def test_feature_matrix_table_and_dataframe_agree(tmp_path):
    index = _dataset(tmp_path / "a", 5)
    out = tmp_path / "f.parquet"
    extract_features(index, out, _tiny_backbone(), input_size="native", precision="fp32", batch_size=2)
    table = pq.read_table(out)
    X = feature_matrix(table)
    np.testing.assert_array_equal(X, feature_matrix(table.to_pandas()))
    np.testing.assert_array_equal(X, feature_matrix(out))
    np.testing.assert_array_equal(X[2:4], feature_matrix(table.slice(2, 2)))


def test_mixed_sizes_are_batched_by_size(tmp_path):
    index = pd.concat([_dataset(tmp_path / "a", 3, shape=(24, 24)), _dataset(tmp_path / "b", 2, shape=(16, 30))])
    bb = _tiny_backbone()
    report = extract_features(index, tmp_path / "f.parquet", bb, input_size="native", precision="fp32", batch_size=8)
    assert report.n_extracted == 5 and bb.n_forward == 2
    table = pq.read_table(tmp_path / "f.parquet")
    assert sorted(zip(table.column("height").to_pylist(), table.column("width").to_pylist())) == [(16, 30)] * 2 + [
        (24, 24)
    ] * 3


def test_failures_are_reported_not_replaced(tmp_path):
    index = _dataset(tmp_path / "a", 6)
    (tmp_path / "a" / "p_0001.mat").write_bytes(b"not a mat file")  # corrupted after indexing
    changed = tmp_path / "a" / "p_0002.mat"
    _write_patch(changed, np.random.default_rng(99))  # still loads, but not what was indexed
    (tmp_path / "a" / "p_0003.mat").unlink()  # vanished
    out = tmp_path / "f.parquet"
    report = extract_features(index, out, _tiny_backbone(), input_size="native", precision="fp32")
    assert report.n_rows == 3 and report.n_extracted == 3
    failed = dict(zip(report.failures["path"], report.failures["reason"]))
    assert set(failed) == {str(tmp_path / "a" / f"p_000{i}.mat") for i in (1, 2, 3)}
    assert "sha256" in failed[str(changed)]
    paths = set(pq.read_table(out, columns=["path"]).column(0).to_pylist())
    assert paths.isdisjoint(failed)


def test_progress_reports_done_total_rate_and_eta(tmp_path):
    index = _dataset(tmp_path / "a", 5)
    seen = []
    extract_features(
        index, tmp_path / "f.parquet", _tiny_backbone(), input_size="native", precision="fp32", batch_size=2,
        progress=seen.append, progress_every_s=0.0,
    )
    assert [p.files_done for p in seen[:5]] == [1, 2, 3, 4, 5]
    last = seen[-1]
    assert (last.files_done, last.files_total, last.eta_s) == (5, 5, 0.0) and last.img_per_s > 0
    assert "5/5" in str(last)
    quiet = []
    extract_features(index, tmp_path / "g.parquet", _tiny_backbone(), input_size="native", precision="fp32",
                     progress=quiet.append, progress_every_s=3600)
    assert len(quiet) == 1  # only the final report


# --------------------------------------------------------------------------- cache
def test_unchanged_input_does_no_forward_and_builds_no_model(tmp_path, random_resnet_file):
    index = _dataset(tmp_path / "a", 6, shape=(32, 32))
    out = tmp_path / "f.parquet"
    first = load_backbone("resnet50", weights_path=random_resnet_file, device="cpu")
    r1 = extract_features(index, out, first, input_size="native", precision="fp32", batch_size=4)
    assert r1.n_extracted == 6 and first.n_forward == 2
    X1 = feature_matrix(out)
    second = load_backbone("resnet50", weights_path=random_resnet_file, device="cpu")
    r2 = extract_features(index, out, second, input_size="native", precision="fp32", previous_path=out)
    assert (r2.n_extracted, r2.n_reused, r2.n_dropped) == (0, 6, 0)
    assert second.n_forward == 0 and not second.loaded
    np.testing.assert_array_equal(np.sort(X1, axis=0), np.sort(feature_matrix(out), axis=0))


def test_adding_files_extracts_only_them_and_removing_drops_rows(tmp_path):
    index = _dataset(tmp_path / "a", 5)
    out = tmp_path / "f.parquet"
    extract_features(index, out, _tiny_backbone(), input_size="native", precision="fp32")
    bigger = pd.concat([index, _dataset(tmp_path / "a", 10, start=5)], ignore_index=True)
    bb = _tiny_backbone()
    r = extract_features(bigger, out, bb, input_size="native", precision="fp32", batch_size=4, previous_path=out)
    assert (r.n_extracted, r.n_reused, r.n_rows) == (10, 5, 15) and bb.n_forward == 3
    smaller = bigger.drop(index=[0, 7])
    r = extract_features(smaller, out, _tiny_backbone(), input_size="native", precision="fp32", previous_path=out)
    assert (r.n_extracted, r.n_reused, r.n_dropped, r.n_rows) == (0, 13, 2, 13)
    assert set(pq.read_table(out, columns=["path"]).column(0).to_pylist()) == set(smaller["path"])


def test_changed_file_is_re_extracted_and_index_columns_are_refreshed(tmp_path):
    index = _dataset(tmp_path / "a", 4)
    out = tmp_path / "f.parquet"
    extract_features(index, out, _tiny_backbone(), input_size="native", precision="fp32")
    p = tmp_path / "a" / "p_0000.mat"
    _write_patch(p, np.random.default_rng(42))
    index2 = index.copy()
    index2.loc[0] = _index_row(p)
    index2["category"] = "renamed"
    r = extract_features(index2, out, _tiny_backbone(), input_size="native", precision="fp32", previous_path=out)
    assert (r.n_extracted, r.n_reused, r.n_dropped) == (1, 3, 1)
    assert pq.read_table(out, columns=["category"]).column(0).unique().to_pylist() == ["renamed"]


@pytest.mark.parametrize(
    "change",
    [
        dict(backbone="texture"),
        dict(weights="w2"),
        dict(input_size=16),
        dict(precision="bf16"),
    ],
)
def test_changing_identity_invalidates_the_cache(tmp_path, change):
    index = _dataset(tmp_path / "a", 4)
    out = tmp_path / "f.parquet"
    extract_features(index, out, _tiny_backbone(), input_size="native", precision="fp32")
    bb = load_backbone("texture") if "backbone" in change else _tiny_backbone(change.get("weights", "w1"))
    r = extract_features(
        index, out, bb, input_size=change.get("input_size", "native"), precision=change.get("precision", "fp32"),
        previous_path=out,
    )
    assert (r.n_reused, r.n_extracted, r.n_dropped) == (0, 4, 4)
    key = next(iter(change))
    assert "cache invalidated" in r.cache_note and key in r.cache_note
    check_identity(out, r.identity)


def test_check_identity_refuses_mixed_tables(tmp_path):
    index = _dataset(tmp_path / "a", 3)
    extract_features(index, tmp_path / "x.parquet", _tiny_backbone(), input_size="native", precision="fp32")
    extract_features(index, tmp_path / "y.parquet", _tiny_backbone("w2"), input_size="native", precision="fp32")
    x, y = pq.read_table(tmp_path / "x.parquet"), pq.read_table(tmp_path / "y.parquet")
    assert check_identity(x)["weights"] == "w1"
    with pytest.raises(BackboneMismatchError, match="weights"):
        check_identity(y, expected=check_identity(x))
    mixed = pd.concat([x.to_pandas(), y.to_pandas()])
    with pytest.raises(BackboneMismatchError, match="mixes weights"):
        check_identity(mixed)


def test_index_must_have_the_index_columns(tmp_path):
    with pytest.raises(ValueError, match="sha256"):
        extract_features(pd.DataFrame({"path": ["x"]}), tmp_path / "f.parquet", _tiny_backbone())
