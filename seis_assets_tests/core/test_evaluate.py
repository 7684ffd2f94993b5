import math

import numpy as np
import pytest

from seis_assets.core import evaluate


def test_perfect_clustering_with_permuted_ids_scores_one():
    labels = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    clusters = np.array([2] * 4 + [0] * 4 + [1] * 4)
    Z = np.repeat(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), 4, axis=0)
    Z = Z + np.random.default_rng(0).normal(scale=0.1, size=Z.shape)
    s = evaluate.clustering_scores(labels, clusters, Z)
    assert set(s) == {"ari", "ami", "nmi", "homogeneity", "completeness", "v_measure", "silhouette"}
    for key in ("ari", "ami", "nmi", "homogeneity", "completeness", "v_measure"):
        assert s[key] == pytest.approx(1.0)
    assert s["silhouette"] > 0.9


def test_single_cluster_scores_zero_and_silhouette_nan():
    labels = np.array(["a", "a", "b", "b"])
    s = evaluate.clustering_scores(labels, np.zeros(4, int), np.zeros((4, 2)))
    assert s["ari"] == pytest.approx(0.0)
    assert s["homogeneity"] == pytest.approx(0.0)
    assert s["completeness"] == pytest.approx(1.0)
    assert math.isnan(s["silhouette"])
    assert math.isnan(evaluate.clustering_scores(labels, [0, 0, 1, 1])["silhouette"])


def test_classification_table_hand_computed():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "a", "a"]
    # a: TP 2, FP 2 (b->a, c->a), FN 1 -> P 0.5, R 2/3, F1 4/7
    # b: TP 1, FP 1, FN 1 -> P 0.5, R 0.5, F1 0.5
    # c: TP 0, never predicted -> P 0 (zero_division), R 0, F1 0
    t = evaluate.classification_table(y_true, y_pred, ["a", "b", "c"]).set_index("class")
    assert t.loc["a", "precision"] == pytest.approx(0.5)
    assert t.loc["a", "recall"] == pytest.approx(2 / 3)
    assert t.loc["a", "f1"] == pytest.approx(4 / 7)
    assert t.loc["b", ["precision", "recall", "f1"]].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert t.loc["c", ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]
    assert t.loc[["a", "b", "c"], "support"].tolist() == [3, 2, 1]
    assert t.loc["macro avg", "f1"] == pytest.approx((4 / 7 + 0.5) / 3)
    assert t.loc["weighted avg", "recall"] == pytest.approx(0.5)  # weighted recall == accuracy
    assert t.loc["accuracy", "f1"] == pytest.approx(3 / 6)
    assert t.loc["accuracy", "support"] == 6


def test_classification_table_attrs_and_zero_division_value():
    t = evaluate.classification_table(["a", "b"], ["a", "a"], ["a", "b"], zero_division=1.0)
    assert t.attrs["accuracy"] == pytest.approx(0.5)
    row_b = t.set_index("class").loc["b"]
    assert row_b["precision"] == 1.0  # never predicted -> zero_division
    assert row_b["recall"] == 0.0
    assert list(t.columns) == ["class", "precision", "recall", "f1", "support"]


def test_confusion_rows_true_cols_predicted():
    cm = evaluate.confusion(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert cm.index.name == "true" and cm.columns.name == "predicted"
    assert cm.loc["a", "a"] == 1 and cm.loc["a", "b"] == 1 and cm.loc["c", "a"] == 1
    assert cm.loc["b", "b"] == 1
    assert int(cm.to_numpy().sum()) == 4
    assert cm.loc["c", "c"] == 0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        evaluate.confusion(["a"], ["a", "b"])
