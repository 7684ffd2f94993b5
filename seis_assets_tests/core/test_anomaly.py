import numpy as np
import pytest

from seis_assets.core import anomaly
from seis_assets.core.cluster import fit_kmeans


@pytest.fixture(scope="module")
def two_clusters():
    """A tight cluster at the origin (sd 0.1) and a spread cluster at (20, 0) (sd 2)."""
    rng = np.random.default_rng(0)
    tight = rng.normal(scale=0.1, size=(200, 3))
    spread = rng.normal(scale=2.0, size=(200, 3)) + np.array([20.0, 0.0, 0.0])
    Z = np.vstack([tight, spread])
    km = fit_kmeans(Z, 2, random_state=0)
    return Z, km


def test_far_points_score_higher_than_members(two_clusters):
    Z, km = two_clusters
    scorer = anomaly.fit_anomaly_scorer(Z, km, n_neighbors=5)
    far = np.array([[10.0, 30.0, 0.0], [-15.0, 0.0, 5.0]])
    s = scorer.score(far)
    assert list(s.columns) == anomaly.SCORE_COLUMNS
    train = scorer.training_scores_
    assert len(train) == len(Z)
    assert s["score"].min() > train["score"].max()
    assert s["centroid_z"].min() > train["centroid_z"].quantile(0.99)
    assert s["knn"].min() > train["knn"].max()
    # training points sit around z = 0 by construction of the robust scale
    assert abs(train["centroid_z"].median()) < 0.1


def test_same_distance_is_more_anomalous_in_a_tight_cluster(two_clusters):
    Z, km = two_clusters
    scorer = anomaly.fit_anomaly_scorer(Z, km, n_neighbors=5)
    tight_center = km.cluster_centers_[np.argmin(np.abs(km.cluster_centers_[:, 0]))]
    spread_center = km.cluster_centers_[np.argmax(km.cluster_centers_[:, 0])]
    offset = np.array([0.0, 3.0, 0.0])
    s = scorer.score(np.vstack([tight_center + offset, spread_center + offset]))
    assert s["centroid_distance"].to_numpy() == pytest.approx([3.0, 3.0], abs=1e-6)
    assert s.loc[0, "centroid_z"] > 10 * max(s.loc[1, "centroid_z"], 0.1)
    assert s.loc[0, "score"] > s.loc[1, "score"]


def test_training_knn_excludes_self():
    Z = np.array([[0.0], [1.0], [3.0], [6.0]])
    scorer = anomaly.fit_anomaly_scorer(Z, np.array([[2.5]]), n_neighbors=1)
    # nearest other point: 1, 1, 2, 3 (self, at distance 0, excluded)
    assert scorer.training_scores_["knn"].tolist() == pytest.approx([1.0, 1.0, 2.0, 3.0])
    # a new point equal to a training point is at distance 0 from it
    assert scorer.score(np.array([[3.0]]))["knn"].tolist() == pytest.approx([0.0])


def test_duplicate_training_points_do_not_break_self_exclusion():
    Z = np.array([[0.0, 0.0]] * 4 + [[5.0, 5.0]] * 4)
    scorer = anomaly.fit_anomaly_scorer(Z, np.array([[0.0, 0.0], [5.0, 5.0]]), n_neighbors=2)
    t = scorer.training_scores_
    assert np.isfinite(t.to_numpy(dtype=float)).all()
    assert t["knn"].tolist() == pytest.approx([0.0] * 8)


def test_small_clusters_use_pooled_statistics(two_clusters):
    Z, km = two_clusters
    Zs = np.vstack([Z, [[100.0, 100.0, 100.0]]])
    centers = np.vstack([km.cluster_centers_, [[100.0, 100.0, 100.0]]])
    scorer = anomaly.fit_anomaly_scorer(Zs, centers)
    stats = scorer.cluster_stats_.set_index("cluster")
    assert bool(stats.loc[2, "pooled"]) and stats.loc[2, "n_train"] == 1
    assert not bool(stats.loc[0, "pooled"])


def test_score_rejects_wrong_dimension(two_clusters):
    Z, km = two_clusters
    scorer = anomaly.fit_anomaly_scorer(Z, km)
    with pytest.raises(ValueError, match="expected shape"):
        scorer.score(np.zeros((2, 5)))
    assert len(scorer.score(np.zeros((0, 3)))) == 0


def test_roc_auc_known_values():
    assert anomaly.roc_auc([False, False, True, True], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert anomaly.roc_auc([False, False, True, True], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert anomaly.roc_auc([False, True, False, True], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.75)
    assert np.isnan(anomaly.roc_auc([True, True], [0.1, 0.2]))


def test_leave_one_class_out_flags_the_unseen_class():
    rng = np.random.default_rng(1)
    centers = {"a": [0, 0, 0, 0], "b": [8, 0, 0, 0], "c": [0, 8, 0, 0], "odd": [4, 4, 8, 0]}
    X = np.vstack([rng.normal(size=(60, 4)) * 0.7 + np.array(c) for c in centers.values()])
    labels = np.repeat(list(centers), 60)
    res = anomaly.leave_one_class_out_auc(X, labels, "odd", random_state=0)
    assert res["k"] == 3 and res["n_anomaly"] == 60 and res["n_normal"] == 36 and res["n_fit"] == 144
    assert res["auc"] > 0.95

    class Identity:  # an embedding callable is fitted on the fit part only
        seen = None

        def transform(self, X):
            return X

    def embed(X_fit):
        Identity.seen = len(X_fit)
        return Identity(), X_fit

    res2 = anomaly.leave_one_class_out_auc(X, labels, "odd", embed=embed, split="tail")
    assert Identity.seen == 144 and res2["auc"] > 0.95
    with pytest.raises(ValueError, match="not in labels"):
        anomaly.leave_one_class_out_auc(X, labels, "nope")
