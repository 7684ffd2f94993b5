"""Sources (unlabelled folders, shards, bad names), k = auto, label-free scores and the assignments rows."""

import os

import numpy as np
import pandas as pd
import pytest
import scipy.io
from sklearn.datasets import make_blobs

from seis_assets.core import cluster, sources
from seis_assets.core.evaluate import label_free_scores
from seis_assets.core.report import assignment_rows, summarise


def _patch(path, seed):
    scipy.io.savemat(path, {"img": np.random.default_rng(seed).uniform(-1, 1, (16, 16))})


# ----------------------------------------------------------------------------------------------- k = auto
@pytest.mark.parametrize("true_k", [2, 3, 5, 6])
def test_k_auto_recovers_the_true_number_of_well_separated_classes(true_k):
    Z, _ = make_blobs(n_samples=60 * true_k, centers=true_k, n_features=10, cluster_std=0.6, center_box=(-12, 12),
                      random_state=true_k)
    sweep = cluster.k_sweep(Z, range(2, 9), random_state=0, stability_runs=5)
    assert "stability" in sweep and sweep.loc[sweep.k == true_k, "stability"].item() > 0.95
    k, rule = cluster.choose_k("auto", sweep, None)
    assert (k, rule) == (true_k, "auto: largest stable k")


def test_default_k_is_categories_on_labelled_and_auto_on_unlabelled_data():
    sweep = pd.DataFrame({"k": [2, 3, 4, 5], "silhouette": [0.2, 0.6, 0.5, 0.25], "davies_bouldin": [1.0, 0.5, 0.6, 0.9],
                          "inertia": [9.0, 5.0, 4.0, 3.5], "stability": [1.0, 0.9, 0.4, 0.99]})
    assert cluster.choose_k("default", sweep, 4) == (4, "number of categories")
    assert cluster.choose_k("0", sweep, 4) == (4, "number of categories")
    # no k both stable (>= 0.95) and separated (silhouette >= half the best, 0.3): k=2 and k=5 are stable but
    # poorly separated -> the largest silhouette x stability
    assert cluster.choose_k("default", sweep, None) == (3, "auto: max silhouette x stability (no k stable)")
    assert cluster.choose_k("auto", sweep, 4)[0] == 3
    # the demo set's sweep (benchmarks/README.md): silhouette peaks at k=2, but k=4 is the largest stable k
    demo = pd.DataFrame({"k": [2, 3, 4, 5, 6], "silhouette": [0.828, 0.610, 0.596, 0.607, 0.597],
                         "davies_bouldin": [0.2, 0.5, 0.7, 0.6, 0.6], "inertia": [5.0, 4.0, 3.0, 2.0, 1.0],
                         "stability": [1.0, 0.997, 0.985, 0.884, 0.834]})
    assert cluster.choose_k("auto", demo, None) == (4, "auto: largest stable k")
    assert cluster.choose_k("auto", demo.drop(columns="stability"), None) == (2, "auto: max silhouette")
    assert cluster.choose_k("7", sweep, None) == (7, "set")
    with pytest.raises(ValueError, match="needs labelled data"):
        cluster.choose_k("categories", sweep, None)
    with pytest.raises(ValueError, match="positive integer"):
        cluster.choose_k("many", sweep, None)


def test_stability_is_high_for_the_true_k_and_lower_for_an_arbitrary_split():
    Z, _ = make_blobs(n_samples=300, centers=3, n_features=5, cluster_std=0.5, random_state=1)
    assert cluster.clustering_stability(Z, 3, runs=5, random_state=0) > 0.95
    uniform = np.random.default_rng(0).uniform(size=(300, 5))
    assert cluster.clustering_stability(uniform, 7, runs=5, random_state=0) < 0.9


def test_label_free_scores_without_labels():
    Z, y = make_blobs(n_samples=200, centers=4, n_features=6, cluster_std=0.5, random_state=3)
    scores = label_free_scores(Z, y, stability_runs=4, random_state=0)
    assert scores["silhouette"] > 0.6 and 0 <= scores["davies_bouldin"] < 0.6 and scores["stability_ari"] > 0.9
    single = label_free_scores(Z, np.zeros(200, dtype=int))
    assert all(np.isnan(v) for v in single.values())


def test_summarise_without_labels_gives_null_label_metrics():
    Z, clusters = make_blobs(n_samples=40, centers=2, n_features=3, random_state=0)
    empty = pd.DataFrame({"true_label": pd.Series(dtype=object), "predicted_label": pd.Series(dtype=object),
                          "predicted_hungarian": pd.Series(dtype=object), "injected_anomaly": pd.Series(dtype=bool)})
    scored = pd.DataFrame({"split": ["train"] * 40, "known_anomaly": [""] * 40, "score": np.arange(40.0)})
    doc = summarise(train_labels=[None] * 40, train_clusters=clusters, Z_train=Z, predictions=empty,
                    classification=pd.DataFrame(), scored=scored, identity={"backbone": "texture"}, k=2,
                    n_quarantined=0, n_files=40, random_state=0, k_rule="auto: max silhouette x stability")
    for key in ("ari", "ami", "nmi", "homogeneity", "completeness", "v_measure", "accuracy_test"):
        assert doc[key] is None, key
    assert doc["labelled"] is False and doc["categories"] == [] and doc["k_rule"].startswith("auto")
    assert doc["silhouette"] > 0.5 and doc["davies_bouldin"] > 0 and doc["stability_ari"] == 1.0


# ------------------------------------------------------------------------------------------------ assignments
def test_assignment_rows_join_clusters_mapping_and_anomaly_scores():
    scored = pd.DataFrame({
        "path": ["/d/b.mat", "/d/a.mat", "/d/c.mat"], "category": ["x", "y", "x"], "split": ["train", "train", "test"],
        "cluster": [1, 0, 1], "score": [3.0, 1.0, 2.0], "rank": [1, 3, 2],
    })
    mapping = pd.DataFrame({"cluster": [0, 1], "majority": ["y", "x"], "hungarian": ["y", "x"]})
    rows = assignment_rows(scored, mapping)
    assert rows["path"].tolist() == ["/d/c.mat", "/d/a.mat", "/d/b.mat"]  # test first, then by path
    assert rows["mapped_category"].tolist() == ["x", "y", "x"]
    assert rows.set_index("path").loc["/d/b.mat", ["anomaly_score", "anomaly_rank"]].tolist() == [3.0, 1]
    unlabelled = scored.assign(category=None)
    no_map = mapping.assign(majority=None, hungarian=None)
    rows = assignment_rows(unlabelled, no_map)
    assert rows["mapped_category"].isna().all() and rows["category"].isna().all()


# ----------------------------------------------------------------------------------------------------- shards
def test_shards_are_stable_and_split_when_a_folder_doubles():
    names = [f"p{i:05d}.mat" for i in range(5000)]
    assert sources.n_shards_for(2000, 2000) == 1 and sources.n_shards_for(2001, 2000) == 2
    assert sources.n_shards_for(10_000, 2000) == 8 and sources.n_shards_for(10_000, 0) == 1
    for name in names[:500]:
        # shard j of 2n is inside shard j mod n of n: the old table is the new shard's feature cache
        assert sources.stable_shard(name, 8) % 4 == sources.stable_shard(name, 4)
    counts = np.bincount([sources.stable_shard(n, 8) for n in names], minlength=8)
    assert counts.min() > 500  # roughly even
    spec = sources.parse_partition_key("salt dome~3of8")
    assert (spec.group, spec.shard, spec.n_shards, spec.key) == ("salt dome", 3, 8, "salt dome~3of8")
    assert sources.parse_partition_key("salt dome").key == "salt dome"
    assert sources.previous_keys("g~5of8") == ["g~5of8", "g~1of4", "g~1of2", "g", "g~05of16"]


def test_plan_shards_a_large_flat_folder_and_index_reads_exactly_its_shard(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for i in range(9):
        _patch(train / f"f{i}.mat", i)
    listing = sources.list_groups(train, tmp_path / "test", "none")
    assert list(listing.files) == [sources.ROOT_GROUP]
    plan = sources.plan_partitions(listing.files, shard_size=4)
    assert sorted(plan) == [f"(root)~{i}of4" for i in range(4)]
    seen = []
    for key in plan:
        index, quarantine = sources.index_partition(key, {"train": train, "test": tmp_path / "test"}, "none")
        assert len(quarantine) == 0 and index["category"].isna().all()
        seen += index["path"].tolist()
    assert sorted(seen) == sorted(str(p) for p in train.glob("*.mat"))  # every file in exactly one shard
    # labelled: root files are ignored, folders are categories
    assert sources.list_groups(train, None, "folders").files == {}


def test_unlabelled_tree_uses_folders_as_groups_with_null_labels(tmp_path):
    for folder in ("line_a", "line_b"):
        (tmp_path / folder).mkdir()
        _patch(tmp_path / folder / "x.mat", 1)
    listing = sources.list_groups(tmp_path, None, "none")
    assert sorted(listing.files) == ["line_a", "line_b"]
    index, _ = sources.index_partition("line_a", {"train": tmp_path}, "none")
    assert len(index) == 1 and index["category"].isna().all()
    labelled, _ = sources.index_partition("line_a", {"train": tmp_path}, "folders")
    assert labelled["category"].tolist() == ["line_a"]


def test_bad_names_are_reported_and_skipped_while_the_others_go_on(tmp_path):
    train = tmp_path / "train"
    for folder in ("good", "a...b", "x~1of2"):
        (train / folder).mkdir(parents=True)
        _patch(train / folder / "p.mat", 0)
    (train / "empty").mkdir()
    bad_dir = os.path.join(os.fsencode(train), b"caf\xe9")
    os.mkdir(bad_dir)
    bad_file = os.path.join(os.fsencode(train / "good"), b"r\xe9sum\xe9.mat")
    with open(bad_file, "wb") as fh:
        fh.write((train / "good" / "p.mat").read_bytes())
    listing = sources.list_groups(train, None, "folders")
    assert list(listing.files) == ["good"] and [os.path.basename(f.path) for f in listing.files["good"]] == ["p.mat"]
    assert listing.empty == {"empty"}
    reasons = dict(listing.skipped)
    assert "Dagster does not allow" in reasons[str(train / "a...b")] and "shard key" in reasons[str(train / "x~1of2")]
    assert reasons[str(train / "caf\\xe9")] == "name is not valid UTF-8"
    assert reasons[str(train / "good" / "r\\xe9sum\\xe9.mat")] == "name is not valid UTF-8"
    # at ingest the undecodable file is a quarantine row with its reason (nothing lost), the good one is indexed
    index, quarantine = sources.index_partition("good", {"train": train}, "folders")
    assert index["path"].tolist() == [str(train / "good" / "p.mat")]
    assert quarantine["reason"].tolist() == ["file name is not valid UTF-8"]
    quarantine.to_parquet(tmp_path / "q.parquet")  # storable


def test_missing_train_folder_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError):
        sources.list_groups(tmp_path / "nowhere", None)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sources.index_partition("nowhere", {"train": tmp_path}, "folders")


def test_labels_shard_size_and_k_come_from_the_environment(monkeypatch):
    from seis_assets.resources import AnalysisSettings, SeisPaths

    monkeypatch.setenv("SEIS_LABELS", "none")
    monkeypatch.setenv("SEIS_SHARD_SIZE", "500")
    monkeypatch.setenv("SEIS_K", "auto")
    paths = SeisPaths.from_env()
    assert (paths.labels, paths.shard_size) == ("none", 500)
    assert AnalysisSettings.from_env().k == "auto"
    assert AnalysisSettings(k=3).k == "3" and AnalysisSettings().k == "default"
    with pytest.raises(Exception, match="labels must be 'folders'"):
        SeisPaths(labels="maybe")
