"""The whole asset graph, in process, on a small generated set in a temporary folder."""

import json
import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import scipy.io

from seis_assets.checks import features_finite, single_backbone
from seis_assets.core.listing import list_categories
from seis_assets.core.anomaly import ANOMALY_COLUMNS
from seis_assets.core.storage import read_parquet
from seis_assets.assets.incoming import IncomingFiles
from seis_assets.definitions import ALL_ASSETS

from .helpers import INGEST_KEYS, materialize_all, resources_for

pytestmark = pytest.mark.slow

SEED_ARTIFACTS = [
    "umap_reducer.joblib", "umap_reducer_2d.joblib", "kmeans_model.joblib", "cluster_assignments.npy",
    "cluster_to_label_mapping.npy", "classification_metrics.csv", "predictions.csv", "umap_true_labels.png",
    "umap_kmeans_clusters.png",
]
METRIC_KEYS = ["ari", "ami", "nmi", "homogeneity", "completeness", "v_measure", "silhouette", "accuracy_test",
               "anomaly_roc_auc", "backbone", "n_train", "n_quarantined", "k"]


def _materializations(result, key):
    return [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]


@pytest.fixture(scope="module")
def materialized(small_dataset_master, tmp_path_factory):
    """The whole graph materialized once for this module on a private copy of the small set."""
    root = tmp_path_factory.mktemp("materialized") / "data"
    shutil.copytree(small_dataset_master, root)
    categories = list_categories(root / "train")
    with dg.instance_for_test() as instance:
        result = materialize_all(root, instance, categories, resources_for(root))
        yield root, instance, result


def test_full_graph_writes_tables_models_metrics_and_plots(materialized):
    small_dataset, instance, result = materialized
    categories = list_categories(small_dataset / "train")
    assert categories == ["chaotic", "fault", "horizon", "salt dome"]
    assert result.success

    # every category's table at the IO manager's documented path, one row per patch
    for category in categories:
        table = read_parquet(small_dataset / "warehouse" / "resnet_features" / f"{category}.parquet")
        assert len(table) == 16 + 6
        assert set(table["backbone"]) == {"texture"}
        assert table["category"].eq(category).all()

    outputs = small_dataset / "outputs"
    for name in SEED_ARTIFACTS + ["metrics.json", "confusion_matrix.png", "cluster_gallery.png",
                                  "top_anomalies.png", "k_sweep.png"]:
        assert (outputs / name).stat().st_size > 0, name

    doc = json.loads((outputs / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(doc)
    assert doc["n_train"] == 4 * 16 and doc["n_quarantined"] == 0 and doc["k"] == 4
    assert doc["backbone"] == "texture"
    assert 0.0 < doc["ari"] <= 1.0
    assert doc["n_known_anomalies_test"] == round(0.25 * 4 * 6)
    assert 0.0 <= doc["anomaly_roc_auc"] <= 1.0

    ranked = read_parquet(small_dataset / "warehouse" / "anomalies.parquet")
    assert len(ranked) == 4 * (16 + 6) and ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["score"].is_monotonic_decreasing and ranked["feature_knn_z"].notna().all()
    # one table: QC and novelty with their reasons, a combined rank and the kind
    assert set(ANOMALY_COLUMNS) <= set(ranked.columns)
    assert set(ranked["kind"]) <= {"artefact", "novel", "normal"}
    artefacts = ranked[ranked["kind"] == "artefact"]
    assert (artefacts["qc_reason"] != "").all() and (ranked.loc[ranked["kind"] != "artefact", "qc_reason"] == "").all()
    train_paths = set(ranked.loc[ranked["split"] == "train", "path"])
    assert all(len(nb) == 3 and set(nb) <= train_paths for nb in ranked["novelty_neighbours"])
    # injected dead traces, clipping and spikes are told apart as artefacts, with the attribute that fired
    known = ranked[ranked["known_anomaly"].isin(["dead_traces", "clipped"])]
    assert (known["kind"] == "artefact").all(), known[["known_anomaly", "kind", "qc_score"]]

    predictions = pd.read_csv(outputs / "predictions.csv")
    assert list(predictions.columns[:4]) == ["file", "true_label", "cluster", "predicted_label"]
    assert len(predictions) == 4 * 6
    assert predictions["injected_anomaly"].sum() == doc["n_known_anomalies_test"]
    classification = pd.read_csv(outputs / "classification_metrics.csv")
    # injected anomalies are kept out of the per-class metrics
    support = classification.query("mapping == 'majority' and `class` in @categories")["support"].sum()
    assert support == len(predictions) - doc["n_known_anomalies_test"]

    assert np.load(outputs / "cluster_assignments.npy").shape == (4 * 16,)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert {"features_finite", "single_backbone", "no_degenerate_cluster", "ari_above_floor",
            "quarantine_share_below_limit"} <= set(checks)
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}

    [metrics_event] = _materializations(result, "metrics")
    assert metrics_event.materialization.metadata["backbone"].value == "texture"
    [plots_event] = _materializations(result, "plots")
    # plots are thumbnails in markdown (small enough for the UI) that name the full-size file
    thumb = plots_event.materialization.metadata["umap_true_labels"].value
    assert "umap_true_labels.png" in thumb and len(thumb) < 100_000


def test_dropped_files_are_predicted_appended_and_moved(materialized):
    root, instance, _ = materialized
    incoming = root / "incoming"
    incoming.mkdir(exist_ok=True)
    for name in ("fault_0002.mat", "horizon_0003.mat"):
        category = name.split("_")[0]
        shutil.copy(root / "test" / category / name, incoming / f"new_{name}")
    (incoming / "broken.mat").write_bytes(b"not a MAT-file at all")
    files = sorted(str(p) for p in incoming.glob("*.mat"))
    result = dg.materialize(
        ALL_ASSETS, selection=["new_file_predictions"], resources=resources_for(root), instance=instance,
        run_config=dg.RunConfig(ops={"new_file_predictions": IncomingFiles(files=files)}),
    )
    assert result.success
    [part] = (root / "warehouse" / "new_file_predictions").glob("*.parquet")
    predicted = read_parquet(part)
    assert sorted(predicted["file_name"]) == ["new_fault_0002.mat", "new_horizon_0003.mat"]
    assert set(predicted["predicted_label"]) <= {"chaotic", "fault", "horizon", "salt dome"}
    assert predicted["anomaly_score"].notna().all() and predicted["backbone"].eq("texture").all()
    # the same anomaly columns as the anomalies table, and the same values for the same patch
    assert set(ANOMALY_COLUMNS) - {"qc_attribute"} <= set(predicted.columns)
    ranked = read_parquet(root / "warehouse" / "anomalies.parquet").set_index("path")
    for row in predicted.itertuples():
        category = row.file_name.removeprefix("new_").split("_")[0]
        same = ranked.loc[str(root / "test" / category / row.file_name.removeprefix("new_"))]
        assert row.kind == same["kind"] and row.qc_score == pytest.approx(same["qc_score"])
        assert row.novelty_score == pytest.approx(same["novelty_score"], abs=1e-6)
        assert list(row.novelty_neighbours) == list(same["novelty_neighbours"])
    # the same patch predicted again gets the cluster it has in the test predictions
    test_predictions = pd.read_csv(root / "outputs" / "predictions.csv")
    original = test_predictions.set_index(test_predictions["file"].map(lambda p: p.rsplit("/", 1)[-1]))
    for row in predicted.itertuples():
        assert row.cluster == original.loc[row.file_name.removeprefix("new_"), "cluster"]
    assert sorted(p.name for p in (incoming / "processed").iterdir()) == predicted["file_name"].sort_values().tolist()
    assert (incoming / "rejected" / "broken.mat").exists()
    assert "MAT-file" in (incoming / "rejected" / "broken.mat.reason.txt").read_text()
    assert not list(incoming.glob("*.mat"))


def test_bad_files_are_quarantined_with_reasons_and_counted(small_dataset):
    fault = small_dataset / "train" / "fault"
    (fault / "fault_9001.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    scipy.io.savemat(fault / "fault_9002.mat", {"img": np.full((99, 99), np.nan)})
    rng = np.random.default_rng(1)
    # no 'img' and two candidate arrays: the key cannot be guessed
    scipy.io.savemat(fault / "fault_9003.mat", {"seismic": rng.normal(size=(99, 99)), "vel": rng.normal(size=(99, 99))})
    with dg.instance_for_test() as instance:
        result = materialize_all(small_dataset, instance, ["fault", "horizon"], resources_for(small_dataset, k=2))
        assert result.success
    quarantine = read_parquet(small_dataset / "warehouse" / "quarantine" / "fault.parquet")
    assert sorted(quarantine["path"].map(lambda p: p.rsplit("/", 1)[-1])) == [
        "fault_9001.mat", "fault_9002.mat", "fault_9003.mat"]
    reasons = dict(zip(quarantine["path"].map(lambda p: p.rsplit("/", 1)[-1]), quarantine["reason"]))
    assert "NaN" in reasons["fault_9002.mat"]
    assert "img" in reasons["fault_9003.mat"]  # names the missing key
    index = read_parquet(small_dataset / "warehouse" / "raw_mat_index" / "fault.parquet")
    assert not index["path"].str.contains("fault_900").any()
    assert len(index) == 16 + 6  # every good file kept
    doc = json.loads((small_dataset / "outputs" / "metrics.json").read_text())
    assert doc["n_quarantined"] == 3


def test_second_ingest_reuses_every_row_and_extracts_only_new_files(small_dataset):
    resources = resources_for(small_dataset)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("category", ["chaotic"])

        def ingest():
            result = dg.materialize(ALL_ASSETS, selection=INGEST_KEYS, partition_key="chaotic",
                                    resources=resources, instance=instance)
            [event] = _materializations(result, "resnet_features")
            return event.materialization.metadata

        first = ingest()
        assert first["n_extracted"].value == 22 and first["n_reused"].value == 0
        second = ingest()
        assert second["n_extracted"].value == 0 and second["n_reused"].value == 22
        rng = np.random.default_rng(0)
        for i in range(3):
            scipy.io.savemat(small_dataset / "train" / "chaotic" / f"chaotic_8{i:03d}.mat",
                             {"img": rng.uniform(-1, 1, (99, 99))})
        (small_dataset / "train" / "chaotic" / "chaotic_0001.mat").unlink()
        third = ingest()
        assert third["n_extracted"].value == 3 and third["n_reused"].value == 21 and third["n_dropped"].value == 1


def test_features_from_two_backbones_are_refused(small_dataset):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("category", ["fault", "horizon"])
        for category, backbone in (("fault", "texture"), ("horizon", "efficientnet_lite0")):
            dg.materialize(ALL_ASSETS, selection=INGEST_KEYS, partition_key=category,
                           resources=resources_for(small_dataset, backbone=backbone), instance=instance)
        result = dg.materialize(ALL_ASSETS, selection=["umap_50d"], resources=resources_for(small_dataset),
                                instance=instance, raise_on_error=False)
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        message = failure.step_failure_data.error.cause.message
        assert "different backbones cannot be mixed" in message and "efficientnet_lite0" in message
        tables = {c: read_parquet(small_dataset / "warehouse" / "resnet_features" / f"{c}.parquet")
                  for c in ("fault", "horizon")}
        check = single_backbone(resnet_features=tables)
        assert not check.passed and "2 feature identities" in check.description


def test_checks_fail_on_nan_features_and_unreachable_ari_floor(small_dataset):
    with dg.instance_for_test() as instance:
        result = materialize_all(small_dataset, instance, ["chaotic", "horizon"],
                                 resources_for(small_dataset, k=2, ari_floor=1.01))
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["ari_above_floor"].passed
        assert "floor 1.010" in checks["ari_above_floor"].description
        assert checks["ari_above_floor"].severity == dg.AssetCheckSeverity.ERROR

    path = small_dataset / "warehouse" / "resnet_features" / "horizon.parquet"
    table = read_parquet(path)
    vectors = [np.asarray(v, dtype=np.float32) for v in table["features"]]
    vectors[3] = vectors[3].copy()
    vectors[3][5] = np.nan
    table["features"] = vectors
    check = features_finite(resnet_features={"horizon": table})
    assert not check.passed
    assert check.metadata["n_bad_rows"].value == 1
    assert table["path"].iloc[3] in check.description
    assert features_finite(resnet_features={"horizon": read_parquet(path)}).passed


def test_cnn_and_texture_fusion_runs_through_the_graph_and_predictions(small_dataset):
    """``backbone=efficientnet_lite0+texture``: features are the CNN's followed by the texture attributes, the
    reducer and the anomaly model scale the two blocks (so the attributes' units do not matter), and a dropped copy
    of a test patch gets the same cluster and novelty score as in the anomalies table."""
    from seis_assets.core.attributes import ATTRIBUTE_DIM
    from seis_assets.core.storage import load_joblib

    resources = resources_for(small_dataset, backbone="efficientnet_lite0+texture")
    categories = list_categories(small_dataset / "train")
    with dg.instance_for_test() as instance:
        assert materialize_all(small_dataset, instance, categories, resources).success
        table = read_parquet(small_dataset / "warehouse" / "resnet_features" / "fault.parquet")
        assert set(table["backbone"]) == {"efficientnet_lite0+texture"}
        assert {len(v) for v in table["features"]} == {1280 + ATTRIBUTE_DIM}
        reducer = load_joblib(small_dataset / "outputs" / "umap_reducer.joblib")  # the served generation's copy
        assert reducer.settings["standardize"] == [[0, 1280, "rms"], [1280, 1280 + ATTRIBUTE_DIM, "zscore"]]

        incoming = small_dataset / "incoming"
        incoming.mkdir(exist_ok=True)
        source = sorted((small_dataset / "test" / "fault").glob("*.mat"))[0]
        shutil.copy(source, incoming / f"new_{source.name}")
        result = dg.materialize(
            ALL_ASSETS, selection=["new_file_predictions"], resources=resources, instance=instance,
            run_config=dg.RunConfig(ops={"new_file_predictions": IncomingFiles(files=[str(incoming / f"new_{source.name}")])}),
        )
        assert result.success
        [part] = (small_dataset / "warehouse" / "new_file_predictions").glob("*.parquet")
        [row] = read_parquet(part).itertuples()
        same = read_parquet(small_dataset / "warehouse" / "anomalies.parquet").set_index("path").loc[str(source)]
        assert row.backbone == "efficientnet_lite0+texture"
        assert row.cluster == same["cluster"]
        assert row.novelty_score == pytest.approx(same["novelty_score"], rel=1e-4)
