import numpy as np
import pytest
from sklearn.datasets import make_blobs

from seis_assets.core import cluster


@pytest.fixture(scope="module")
def blobs():
    Z, y = make_blobs(n_samples=240, centers=4, n_features=5, cluster_std=0.4, random_state=0)
    return Z, y


def test_fit_kmeans_is_seeded_and_int_ids(blobs):
    Z, _ = blobs
    a = cluster.fit_kmeans(Z, 4, random_state=3)
    b = cluster.fit_kmeans(Z, 4, random_state=3)
    assert np.array_equal(a.labels_, b.labels_)
    assert a.n_init == cluster.DEFAULT_N_INIT
    assert np.issubdtype(a.labels_.dtype, np.integer)
    assert set(a.labels_.tolist()) == {0, 1, 2, 3}


def test_fit_kmeans_rejects_k_above_n():
    with pytest.raises(ValueError, match="k must be"):
        cluster.fit_kmeans(np.zeros((3, 2)), 4)


def test_k_sweep_silhouette_peaks_at_true_k_and_skips_large_k(blobs):
    Z, _ = blobs
    sweep = cluster.k_sweep(Z, range(2, 8), random_state=0)
    assert list(sweep.columns) == ["k", "silhouette", "davies_bouldin", "inertia"]
    assert sweep["k"].tolist() == [2, 3, 4, 5, 6, 7]
    assert cluster.best_k(sweep) == 4
    assert cluster.best_k(sweep, by="davies_bouldin") == 4
    assert sweep["inertia"].is_monotonic_decreasing

    small = cluster.k_sweep(Z[:5], [1, 2, 4, 5, 9])
    assert small["k"].tolist() == [2, 4]  # k < 2 and k >= n skipped


def test_perfect_clustering_with_permuted_ids_maps_back():
    labels = np.array(["fault"] * 3 + ["chaotic"] * 2 + ["salt dome"] * 4)
    clusters = np.array([2] * 3 + [0] * 2 + [1] * 4)
    expected = {0: "chaotic", 1: "salt dome", 2: "fault"}
    assert cluster.majority_mapping(clusters, labels) == expected
    assert cluster.hungarian_mapping(clusters, labels) == expected
    assert list(cluster.apply_mapping(clusters, expected)) == list(labels)


def test_majority_and_hungarian_differ_when_two_clusters_prefer_the_same_label():
    # cluster 0: 5 a, 0 b ; cluster 1: 3 a, 2 b -> majority says a, a ; hungarian a, b
    clusters = np.array([0] * 5 + [1] * 5)
    labels = np.array(["a"] * 5 + ["a"] * 3 + ["b"] * 2)
    assert cluster.majority_mapping(clusters, labels) == {0: "a", 1: "a"}
    assert cluster.hungarian_mapping(clusters, labels) == {0: "a", 1: "b"}


def test_majority_tie_goes_to_label_sorting_first_regardless_of_order():
    clusters = np.array([7, 7, 7, 7])
    for labels in (["z", "b", "z", "b"], ["b", "z", "b", "z"]):
        assert cluster.majority_mapping(clusters, np.array(labels)) == {7: "b"}


def test_hungarian_more_clusters_than_labels_falls_back_to_majority():
    clusters = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    labels = np.array(["a", "a", "a", "b", "b", "b", "a", "b"])
    m = cluster.hungarian_mapping(clusters, labels)
    assert m[0] == "a" and m[1] == "b"
    assert m[2] == "a"  # unmatched: majority with tie -> "a"
    assert set(m) == {0, 1, 2}


def test_hungarian_fewer_clusters_than_labels_leaves_labels_unused():
    clusters = np.array([0, 0, 0, 1, 1, 1])
    labels = np.array(["a", "a", "c", "b", "b", "c"])
    m = cluster.hungarian_mapping(clusters, labels)
    assert m == {0: "a", 1: "b"}
    assert "c" not in m.values()


def test_contingency_table_counts():
    t = cluster.contingency_table([1, 1, 0], ["x", "y", "y"])
    assert t.loc[1, "x"] == 1 and t.loc[1, "y"] == 1 and t.loc[0, "y"] == 1 and t.loc[0, "x"] == 0


def test_apply_mapping_accepts_string_keys_and_names_missing_ids():
    out = cluster.apply_mapping(np.array([0, 1, 1]), {"0": "a", "1": "b"})
    assert out.tolist() == ["a", "b", "b"]
    with pytest.raises(KeyError, match=r"\[5\]"):
        cluster.apply_mapping([0, 5], {0: "a"})


def test_mapping_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equal length"):
        cluster.majority_mapping([0, 1], ["a"])
