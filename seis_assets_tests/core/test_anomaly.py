import joblib
import numpy as np
import pandas as pd
import pytest

from seis_assets.core import anomaly, anomaly_embedding, anomaly_evaluation, qc, report, synthetic
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
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, km, n_neighbors=5)
    far = np.array([[10.0, 30.0, 0.0], [-15.0, 0.0, 5.0]])
    s = scorer.score(far)
    assert list(s.columns) == anomaly_embedding.SCORE_COLUMNS
    train = scorer.training_scores_
    assert len(train) == len(Z)
    assert s["score"].min() > train["score"].max()
    assert s["centroid_z"].min() > train["centroid_z"].quantile(0.99)
    assert s["knn"].min() > train["knn"].max()
    # training points sit around z = 0 by construction of the robust scale
    assert abs(train["centroid_z"].median()) < 0.1


def test_same_distance_is_more_anomalous_in_a_tight_cluster(two_clusters):
    Z, km = two_clusters
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, km, n_neighbors=5)
    tight_center = km.cluster_centers_[np.argmin(np.abs(km.cluster_centers_[:, 0]))]
    spread_center = km.cluster_centers_[np.argmax(km.cluster_centers_[:, 0])]
    offset = np.array([0.0, 3.0, 0.0])
    s = scorer.score(np.vstack([tight_center + offset, spread_center + offset]))
    assert s["centroid_distance"].to_numpy() == pytest.approx([3.0, 3.0], abs=1e-6)
    assert s.loc[0, "centroid_z"] > 10 * max(s.loc[1, "centroid_z"], 0.1)
    assert s.loc[0, "score"] > s.loc[1, "score"]


def test_training_knn_excludes_self():
    Z = np.array([[0.0], [1.0], [3.0], [6.0]])
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, np.array([[2.5]]), n_neighbors=1)
    # nearest other point: 1, 1, 2, 3 (self, at distance 0, excluded)
    assert scorer.training_scores_["knn"].tolist() == pytest.approx([1.0, 1.0, 2.0, 3.0])
    # a new point equal to a training point is at distance 0 from it
    assert scorer.score(np.array([[3.0]]))["knn"].tolist() == pytest.approx([0.0])


def test_duplicate_training_points_do_not_break_self_exclusion():
    Z = np.array([[0.0, 0.0]] * 4 + [[5.0, 5.0]] * 4)
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, np.array([[0.0, 0.0], [5.0, 5.0]]), n_neighbors=2)
    t = scorer.training_scores_
    assert np.isfinite(t.to_numpy(dtype=float)).all()
    assert t["knn"].tolist() == pytest.approx([0.0] * 8)


def test_small_clusters_use_pooled_statistics(two_clusters):
    Z, km = two_clusters
    Zs = np.vstack([Z, [[100.0, 100.0, 100.0]]])
    centers = np.vstack([km.cluster_centers_, [[100.0, 100.0, 100.0]]])
    scorer = anomaly_embedding.fit_anomaly_scorer(Zs, centers)
    stats = scorer.cluster_stats_.set_index("cluster")
    assert bool(stats.loc[2, "pooled"]) and stats.loc[2, "n_train"] == 1
    assert not bool(stats.loc[0, "pooled"])


def test_score_rejects_wrong_dimension(two_clusters):
    Z, km = two_clusters
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, km)
    with pytest.raises(ValueError, match="expected shape"):
        scorer.score(np.zeros((2, 5)))
    assert len(scorer.score(np.zeros((0, 3)))) == 0


def test_roc_auc_known_values():
    assert anomaly_evaluation.roc_auc([False, False, True, True], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert anomaly_evaluation.roc_auc([False, False, True, True], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert anomaly_evaluation.roc_auc([False, True, False, True], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.75)
    assert np.isnan(anomaly_evaluation.roc_auc([True, True], [0.1, 0.2]))


def test_leave_one_class_out_flags_the_unseen_class():
    rng = np.random.default_rng(1)
    centers = {"a": [0, 0, 0, 0], "b": [8, 0, 0, 0], "c": [0, 8, 0, 0], "odd": [4, 4, 8, 0]}
    X = np.vstack([rng.normal(size=(60, 4)) * 0.7 + np.array(c) for c in centers.values()])
    labels = np.repeat(list(centers), 60)
    res = anomaly_evaluation.leave_one_class_out_auc(X, labels, "odd", random_state=0)
    assert res["k"] == 3 and res["n_anomaly"] == 60 and res["n_normal"] == 36 and res["n_fit"] == 144
    assert res["auc"] > 0.95

    class Identity:  # an embedding callable is fitted on the fit part only
        seen = None

        def transform(self, X):
            return X

    def embed(X_fit):
        Identity.seen = len(X_fit)
        return Identity(), X_fit

    res2 = anomaly_evaluation.leave_one_class_out_auc(X, labels, "odd", embed=embed, split="tail")
    assert Identity.seen == 144 and res2["auc"] > 0.95
    with pytest.raises(ValueError, match="not in labels"):
        anomaly_evaluation.leave_one_class_out_auc(X, labels, "nope")


# --------------------------------------------------------------------------- feature-space kNN term
def _project(X):
    """A stand-in for UMAP.transform: keeps the first 3 feature dims, drops the rest."""
    return np.asarray(X)[:, :3]


@pytest.fixture(scope="module")
def features_and_embedding():
    """Two clusters in 20-d features; the 'embedding' sees only the first 3 dims."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(scale=0.5, size=(150, 20)), rng.normal(scale=0.5, size=(150, 20)) + 10.0])
    Z = _project(X)
    return X, Z, fit_kmeans(Z, 2, random_state=0)


def test_point_inside_a_cluster_in_the_embedding_but_far_in_features_scores_high(features_and_embedding):
    X, Z, km = features_and_embedding
    x_new = np.zeros((1, 20))
    x_new[0, 3:] = 6.0  # at cluster 0's centre in the embedded dims, far from everything in the other 17
    z_new = _project(x_new)

    plain = anomaly_embedding.fit_anomaly_scorer(Z, km, n_neighbors=5)
    s_plain = plain.score(z_new)
    # without features the point looks ordinary: below the median training score
    assert s_plain.loc[0, "score"] < plain.training_scores_["score"].median()

    scorer = anomaly_embedding.fit_anomaly_scorer(Z, km, n_neighbors=5, X_train=X)
    s = scorer.score(z_new, x_new)
    train = scorer.training_scores_
    assert scorer.uses_features and not plain.uses_features
    assert list(s.columns) == anomaly_embedding.FEATURE_SCORE_COLUMNS
    assert list(train.columns) == anomaly_embedding.FEATURE_SCORE_COLUMNS
    # the UMAP-space columns are exactly those of the plain scorer
    for col in anomaly_embedding.SCORE_COLUMNS[:-1]:
        np.testing.assert_allclose(s[col].to_numpy(), s_plain[col].to_numpy())
    assert s.loc[0, "feature_knn_z"] > 10 * train["feature_knn_z"].max()
    assert s.loc[0, "score"] > train["score"].max()
    np.testing.assert_allclose(s["score"], (s["centroid_z"] + s["knn_z"] + s["feature_knn_z"]) / 3)
    np.testing.assert_allclose(train["score"], (train["centroid_z"] + train["knn_z"] + train["feature_knn_z"]) / 3)
    # fresh draws from cluster 0 stay ordinary
    fresh = np.random.default_rng(4).normal(scale=0.5, size=(30, 20))
    assert scorer.score(_project(fresh), fresh)["score"].median() < train["score"].quantile(0.75)


def test_without_features_score_is_the_mean_of_the_two_embedding_scores(two_clusters):
    Z, km = two_clusters
    s = anomaly_embedding.fit_anomaly_scorer(Z, km).score(Z[:5] + 0.3)
    np.testing.assert_allclose(s["score"], (s["centroid_z"] + s["knn_z"]) / 2)


def test_training_feature_knn_excludes_self_and_is_robust_z_scaled():
    X = np.array([[0.0], [1.0], [3.0], [6.0]])
    Z = np.array([[0.0], [1.0], [2.0], [3.0]])
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, np.array([[1.5]]), n_neighbors=1, X_train=X)
    t = scorer.training_scores_
    # a 1-component PCA of 1-d data keeps distances: nearest other point at 1, 1, 2, 3
    assert t["feature_knn"].tolist() == pytest.approx([1.0, 1.0, 2.0, 3.0])
    med, mad = 1.5, 0.5 * anomaly_embedding.MAD_TO_SD  # median of [1, 1, 2, 3]; median of |d - 1.5| = 0.5
    assert scorer.feature_knn_median_ == pytest.approx(med) and scorer.feature_knn_scale_ == pytest.approx(mad)
    assert t["feature_knn_z"].tolist() == pytest.approx([(d - med) / mad for d in (1.0, 1.0, 2.0, 3.0)])
    s = scorer.score(np.array([[1.0]]), np.array([[10.0]]))
    assert s.loc[0, "feature_knn"] == pytest.approx(4.0)  # new points: nearest training point (6) counts


def test_feature_pca_components_are_capped_and_settable(features_and_embedding):
    X, Z, km = features_and_embedding
    assert anomaly_embedding.fit_anomaly_scorer(Z, km, X_train=X).feature_pca_.n_components_ == 20  # 20 features < 50
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, km, X_train=X, feature_pca_components=5)
    assert scorer.feature_pca_.n_components_ == 5


def test_features_are_required_exactly_when_fitted_with_them(features_and_embedding):
    X, Z, km = features_and_embedding
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, km, X_train=X)
    with pytest.raises(ValueError, match="fitted with X_train"):
        scorer.score(Z[:2])
    with pytest.raises(ValueError, match="expected X of shape"):
        scorer.score(Z[:2], X[:3])
    with pytest.raises(ValueError, match="expected X of shape"):
        scorer.score(Z[:2], X[:2, :5])
    with pytest.raises(ValueError, match="fitted without X_train"):
        anomaly_embedding.fit_anomaly_scorer(Z, km).score(Z[:2], X[:2])
    with pytest.raises(ValueError, match="one row per Z_train row"):
        anomaly_embedding.fit_anomaly_scorer(Z, km, X_train=X[:-1])
    empty = scorer.score(np.zeros((0, 3)), np.zeros((0, 20)))
    assert len(empty) == 0 and list(empty.columns) == anomaly_embedding.FEATURE_SCORE_COLUMNS


def test_scorer_with_features_survives_joblib(features_and_embedding, tmp_path):
    X, Z, km = features_and_embedding
    scorer = anomaly_embedding.fit_anomaly_scorer(Z, km, X_train=X)
    joblib.dump(scorer, tmp_path / "scorer.joblib")
    loaded = joblib.load(tmp_path / "scorer.joblib")
    x_new = X[:4] + 1.0
    np.testing.assert_allclose(loaded.score(_project(x_new), x_new).to_numpy(float),
                               scorer.score(_project(x_new), x_new).to_numpy(float))


def test_leave_one_class_out_uses_the_features_behind_the_embedding():
    """An unseen class that the embedding maps onto a known one is found only through the feature term."""
    rng = np.random.default_rng(2)
    centers = {"a": [0] * 8, "b": [8] + [0] * 7, "c": [0, 8] + [0] * 6, "odd": [0, 0, 0, 6, 6, 6, 6, 6]}
    X = np.vstack([rng.normal(size=(60, 8)) * 0.7 + np.array(c, float) for c in centers.values()])
    labels = np.repeat(list(centers), 60)

    class Project:
        def transform(self, X):
            return _project(X)

    def embed(X_fit):
        return Project(), _project(X_fit)

    with_f = anomaly_evaluation.leave_one_class_out_auc(X, labels, "odd", embed=embed, split="tail")
    without = anomaly_evaluation.leave_one_class_out_auc(X, labels, "odd", embed=embed, split="tail",
                                                         feature_pca_components=None)
    assert with_f["auc"] > 0.95 and with_f["auc_feature_knn"] > 0.95
    assert without["auc"] < 0.8 and np.isnan(without["auc_feature_knn"])


def _training_set(n, dim, z_dim, category, seed):
    """Random features X, an embedding Z (X's first columns), KMeans k=3 on Z, n generated patches of ``category``,
    their names and QC table: the inputs of ``fit_anomaly_model``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    Z = X[:, :z_dim]
    km = fit_kmeans(Z, 3, random_state=0)
    patches = [synthetic.generate_patch(category, rng, (32, 32)) for _ in range(n)]
    names = [f"p{i}" for i in range(n)]
    return X, Z, km, patches, names, qc.qc_table(names, patches), rng


def test_score_anomalies_tells_artefacts_from_novelty():
    X, Z, km, patches, names, table, rng = _training_set(120, 30, 5, "horizon", 0)
    model = anomaly.fit_anomaly_model(Z, km, X, table, names)
    train = model.training_scores_
    assert (train["kind"] == "normal").mean() >= 0.97
    # training rows never list themselves as their own neighbour
    assert all(names[i] not in nb for i, nb in enumerate(train["novelty_neighbours"]))

    clipped = synthetic.inject_anomaly(patches[0], "clipped", rng)
    X_new = np.vstack([X[:1], X[1:2] + 10.0, X[2:3]])
    s = anomaly.score_anomalies(model, X_new[:, :5], X_new, qc.qc_table(["a", "b", "c"], [clipped, patches[1], patches[2]]))
    assert set(anomaly.ANOMALY_COLUMNS) <= set(s.columns)
    assert s["kind"].tolist() == ["artefact", "novel", "normal"]
    assert s.loc[0, "qc_attribute"] == "clipped" and s.loc[0, "qc_reason"].startswith("clipped")
    assert s.loc[1, "qc_reason"] == "" and s.loc[1, "novelty_score"] > model.novelty_threshold
    assert s["novelty_neighbours"].iloc[2][0] == "p2"  # an unchanged training patch's nearest one is itself
    assert s.loc[0, "anomaly_score"] > 1 and s.loc[1, "anomaly_score"] > 1 and s.loc[2, "anomaly_score"] < 1
    np.testing.assert_allclose(s["anomaly_score"], np.maximum(s["qc_score"] / model.qc_threshold,
                                                              s["novelty_score"] / model.novelty_threshold))


def test_feature_blocks_make_novelty_scores_independent_of_the_attributes_units():
    """CNN + texture features: the anomaly model scales the two blocks, so the attributes' units cannot dominate."""
    X, Z, km, patches, names, table, rng = _training_set(100, 34, 5, "horizon", 2)
    blocks = [(0, 30, "rms"), (30, 34, "zscore")]
    X_new = np.vstack([X[:3], X[3:4] + 5.0])
    scores = []
    for unit in (1.0, 1000.0):
        Xu = X.copy()
        Xu[:, 30:] *= unit
        Xn = X_new.copy()
        Xn[:, 30:] *= unit
        model = anomaly.fit_anomaly_model(Z, km, Xu, table, names, feature_blocks=blocks)
        scores.append(anomaly.score_anomalies(model, Xn[:, :5], Xn, table.iloc[:4])["novelty_score"].to_numpy())
        # the training rows scored again from raw features equal the fitted training scores
        again = anomaly.score_anomalies(model, Z[:4], Xu[:4], table.iloc[:4])
        assert list(again["novelty_neighbours"].iloc[0][:1]) == ["p0"]
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)
    # without the blocks, attributes in large units swamp the features and the scores change
    Xu = X.copy()
    Xu[:, 30:] *= 1000.0
    Xn = X_new.copy()
    Xn[:, 30:] *= 1000.0
    raw = anomaly.fit_anomaly_model(Z, km, Xu, table, names)
    assert not np.allclose(anomaly.score_anomalies(raw, Xn[:, :5], Xn, table.iloc[:4])["novelty_score"], scores[0],
                           rtol=1e-3)


def test_score_anomalies_refuses_an_old_scorer_with_a_clear_message(two_clusters):
    Z, km = two_clusters
    old = anomaly_embedding.fit_anomaly_scorer(Z, km)
    with pytest.raises(TypeError, match="re-run the recluster job"):
        anomaly.score_anomalies(old, Z[:2], Z[:2], None)


def test_score_patches_without_a_test_split():
    """Real surveys (LANDMASS, F3) have no test folder: every patch is a training patch, and all get ranked."""
    X, Z, km, patches, names, table, rng = _training_set(60, 20, 4, "chaotic", 1)
    model = anomaly.fit_anomaly_model(Z, km, X, table, names)
    embedding = pd.DataFrame({"path": names, "category": ["chaotic"] * 60, "split": ["train"] * 60})
    scored = report.score_patches(embedding, Z, model, km, pd.Series([""] * 60), X, table)
    assert sorted(scored["path"]) == sorted(names) and scored["rank"].tolist() == list(range(1, 61))
    assert (scored["split"] == "train").all() and scored["anomaly_score"].is_monotonic_decreasing
