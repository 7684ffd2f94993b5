"""Composition helpers: combining feature tables, known anomalies, predictions/metrics tables, new-file prediction."""

import numpy as np
import pandas as pd
import pytest

from seis_assets.core.backbones import load_backbone
from seis_assets.core.dataset import (
    combine_feature_tables, embedding_frame, features_for, known_anomaly_kinds, read_known_anomalies, stack_vectors,
)
from seis_assets.core.feature_table import BackboneMismatchError
from seis_assets.core.predict import archive_files, backbone_for_models
from seis_assets.core.report import classification_metrics, summarise, predict_test_set


def _features(category, n, backbone="texture", dim=3, split="train"):
    return pd.DataFrame({
        "path": [f"/d/{split}/{category}/{i}.mat" for i in range(n)], "category": category, "split": split,
        "sha256": [f"{category}{i}" for i in range(n)], "height": 99, "width": 99, "backbone": backbone,
        "weights": "none", "input_size": "native", "precision": "fp32",
        "features": [np.full(dim, i, dtype=np.float32) for i in range(n)],
    })


def test_combine_feature_tables_aligns_rows_and_refuses_mixed_backbones():
    fs = combine_feature_tables({"b": _features("b", 2), "a": _features("a", 3), "empty": _features("c", 0)})
    assert fs.X.shape == (5, 3)
    assert fs.meta["category"].tolist() == ["a", "a", "a", "b", "b"]
    assert np.array_equal(fs.X[:, 0], [0, 1, 2, 0, 1])  # rows follow their metadata
    assert fs.identity["backbone"] == "texture" and fs.standardize
    with pytest.raises(ValueError, match=r"different backbones cannot be mixed.*efficientnet_lite0.*\['b'\]"):
        combine_feature_tables({"a": _features("a", 2), "b": _features("b", 2, backbone="efficientnet_lite0")})
    with pytest.raises(ValueError, match="no feature rows"):
        combine_feature_tables({"a": _features("a", 0)})


def test_features_for_lines_feature_rows_up_with_other_tables():
    fs = combine_feature_tables({"a": _features("a", 3), "b": _features("b", 2)})
    order = pd.Series(["/d/train/b/1.mat", "/d/train/a/0.mat", "/d/train/a/2.mat"])
    assert features_for(fs, order)[:, 0].tolist() == [1.0, 0.0, 2.0]
    with pytest.raises(ValueError, match="no feature row, e.g. /d/train/c/9.mat"):
        features_for(fs, pd.Series(["/d/train/a/0.mat", "/d/train/c/9.mat"]))


def test_embedding_frame_round_trips_vectors():
    meta = _features("a", 4)
    Z = np.arange(8, dtype=np.float32).reshape(4, 2)
    assert np.array_equal(stack_vectors(embedding_frame(meta, Z)["embedding"]), Z)
    with pytest.raises(ValueError, match="4 rows but 3"):
        embedding_frame(meta, Z[:3])


def test_known_anomalies_are_read_relative_to_the_test_root(tmp_path):
    assert read_known_anomalies(tmp_path).empty
    (tmp_path / "anomalies.csv").write_text("file,kind\nsalt dome/s_0001.mat,spikes\n")
    known = read_known_anomalies(tmp_path)
    assert known["path"].tolist() == [str(tmp_path / "salt dome" / "s_0001.mat")]
    meta = pd.DataFrame({"path": [str(tmp_path / "salt dome" / "s_0001.mat"), "/other.mat"]})
    assert known_anomaly_kinds(meta, known).tolist() == ["spikes", ""]
    (tmp_path / "anomalies.csv").write_text("name\nx.mat\n")
    with pytest.raises(ValueError, match="anomalies.csv: missing column"):
        read_known_anomalies(tmp_path)


def _scored():
    return pd.DataFrame({
        "path": ["t/a1", "t/a2", "t/b1", "t/b2", "t/x"], "category": ["a", "a", "b", "b", "a"],
        "split": "test", "cluster": [0, 0, 1, 0, 1], "score": [0.1, 0.2, 0.3, 0.4, 5.0],
        "rank": [5, 4, 3, 2, 1], "known_anomaly": ["", "", "", "", "spikes"],
    })


def test_predictions_and_classification_leave_injected_anomalies_out():
    mapping = pd.DataFrame({"cluster": [0, 1], "majority": ["a", "b"], "hungarian": ["a", "b"]})
    pred = predict_test_set(_scored(), mapping)
    assert pred["predicted_label"].tolist() == ["a", "a", "b", "a", "b"]
    assert pred["injected_anomaly"].tolist() == [False, False, False, False, True]
    table = classification_metrics(pred, ["a", "b"]).set_index(["mapping", "class"])
    # clean rows: a->a, a->a, b->b, b->a: recall(a)=1, precision(a)=2/3, recall(b)=0.5
    assert table.loc[("majority", "a"), "recall"] == pytest.approx(1.0)
    assert table.loc[("majority", "a"), "precision"] == pytest.approx(2 / 3)
    assert table.loc[("majority", "b"), "recall"] == pytest.approx(0.5)
    assert table.loc[("majority", "a"), "support"] + table.loc[("majority", "b"), "support"] == 4


def test_summary_reports_undefined_values_as_none_not_numbers():
    empty = pd.DataFrame(columns=["file", "true_label", "predicted_label", "predicted_hungarian", "injected_anomaly"])
    empty["injected_anomaly"] = empty["injected_anomaly"].astype(bool)
    scored = _scored().assign(split="train")
    doc = summarise(
        train_labels=np.array(["a", "a", "b", "b"]), train_clusters=np.array([0, 0, 1, 1]),
        Z_train=np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.1]]), predictions=empty, classification=pd.DataFrame(),
        scored=scored, identity={"backbone": "texture"}, k=2, n_quarantined=1, n_files=5, random_state=0,
    )
    assert doc["ari"] == pytest.approx(1.0)
    assert doc["accuracy_test"] is None and doc["anomaly_roc_auc"] is None
    assert doc["quarantine_share"] == pytest.approx(0.2)


def test_prediction_refuses_a_backbone_other_than_the_models_one():
    recorded = dict(load_backbone("efficientnet_lite0").identity)
    assert backbone_for_models(recorded, None, "cpu", None).identity["backbone"] == "efficientnet_lite0"
    with pytest.raises(BackboneMismatchError, match="weights_sha256 'deadbeef0000'"):
        backbone_for_models(dict(recorded, weights_sha256="deadbeef0000"), None, "cpu", None)


def test_archive_never_overwrites(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(2):
        (tmp_path / "in" / "x.mat").write_bytes(bytes([i]))
        archive_files([str(tmp_path / "in" / "x.mat")], tmp_path / "done")
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["x.1.mat", "x.mat"]
    assert (tmp_path / "done" / "x.mat").read_bytes() == b"\x00"
