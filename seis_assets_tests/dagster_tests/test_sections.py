"""The SEG-Y assets in process: survey_windows and facies_map per survey partition."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import segyio

from seis_assets.core.feature_table import BackboneMismatchError
from seis_assets.core.section_scores import score_map
from seis_assets.core.segy_write import write_cube
from seis_assets.core.storage import read_parquet
from seis_assets.definitions import ALL_ASSETS
from seis_assets.partitions import SURVEY_PARTITIONS_NAME
from seis_assets.resources import FeatureSettings, SegySettings

from .helpers import materialize_all, resources_for

pytestmark = pytest.mark.slow
SECTION_KEYS = ["survey_windows", "facies_map"]
OUTPUTS = ["anomaly_map.png", "facies_labels.sgy", "facies_legend.csv", "facies_map.pdf", "facies_map.png",
           "section_assignments.csv"]


def _materialize(resources, instance, key, raise_on_error=True):
    return dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key=key, resources=resources,
                          instance=instance, raise_on_error=raise_on_error)


def test_survey_models_map_a_2d_line_without_patches(tmp_path):
    line = write_cube(tmp_path / "line2d.sgy", [3], range(1, 161), n_samples=128, structured=False)
    root = tmp_path / "data"
    resources = resources_for(root)
    resources["segy_settings"] = SegySettings(segy=str(line), models="survey", k=3, scaling="survey", window_traces=40,
                                              window_samples=40, stride=20)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["line2d.sgy"])
        result = _materialize(resources, instance, "line2d.sgy")
    assert result.success
    windows = read_parquet(root / "warehouse" / "survey_windows" / "line2d.sgy.parquet")
    assert len(windows) == 7 * 6 and windows["scaling"].eq("survey").all() and windows["backbone"].eq("texture").all()
    out = root / "outputs" / "sections" / "line2d.sgy"
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS
    legend = pd.read_csv(out / "facies_legend.csv")
    assert legend["category"].tolist() == ["cluster 0", "cluster 1", "cluster 2"]
    with segyio.open(str(out / "facies_labels.sgy"), ignore_geometry=True) as f:
        assert set(np.unique(f.trace.raw[:])) <= {0.0, 1.0, 2.0}
    [mat] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("facies_map")]
    assert "this survey's 42 windows" in mat.materialization.metadata["models"].value
    assert 0 < mat.materialization.metadata["confidence_mean"].value <= 1
    assert pd.read_csv(out / "section_assignments.csv")["confidence"].between(0, 1).all()


def test_facies_map_scores_the_map_against_labels_beside_the_section(tmp_path):
    """Labels beside a section are scored by facies_map itself (metadata, json, figure); labels that do not fit are
    named and the map stands; scores of an earlier run never outlive the labels they came from."""
    line = write_cube(tmp_path / "line2d.sgy", [3], range(1, 161), n_samples=128, structured=False)
    labels = tmp_path / "line2d_labels.npy"
    np.save(labels, np.repeat(np.arange(4), 32)[:, None].repeat(160, axis=1).astype(np.uint8))  # 4 depth bands
    root = tmp_path / "data"
    resources = resources_for(root)
    resources["segy_settings"] = SegySettings(segy=str(line), models="survey", k=3, window_traces=40,
                                              window_samples=40, stride=20)
    out = root / "outputs" / "sections" / "line2d.sgy"

    def facies_metadata(instance):
        result = _materialize(resources, instance, "line2d.sgy")
        [mat] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("facies_map")]
        return mat.materialization.metadata

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["line2d.sgy"])
        meta = facies_metadata(instance)
        scores = json.loads((out / "map_vs_labels.json").read_text())
        with segyio.open(str(out / "facies_labels.sgy"), ignore_geometry=True) as f:
            expected = score_map(f.trace.raw[:].astype(np.int64).T, np.load(labels))
        assert {k: scores[k] for k in expected} == pytest.approx(expected)
        assert scores["labels"] == str(labels) and scores["k"] == 3
        assert meta["vs_labels_ari"].value == pytest.approx(scores["ari"])
        assert "3 depth bands" in meta["vs_labels"].value and "map_vs_labels.png" in meta["map_vs_labels"].value
        assert (out / "map_vs_labels.png").read_bytes()[:4] == b"\x89PNG"

        np.save(labels, np.zeros((128, 159), np.uint8))  # one trace short: named, not scored, the map stands
        meta = facies_metadata(instance)
        assert meta["vs_labels"].value.startswith(f"not scored: {labels}: labels have shape (128, 159)")
        assert not (out / "map_vs_labels.json").exists() and not (out / "map_vs_labels.png").exists()
        assert (out / "facies_labels.sgy").exists() and "vs_labels_ari" not in meta

        labels.unlink()  # no labels: no scores, and none left from before
        meta = facies_metadata(instance)
        assert "vs_labels" not in meta and sorted(p.name for p in out.iterdir()) == OUTPUTS


def test_patch_models_map_a_survey_and_refuse_other_features(small_dataset, tmp_path):
    cube = write_cube(tmp_path / "cube.sgy", [1, 2], range(1, 121), n_samples=120)
    resources = resources_for(small_dataset)
    with dg.instance_for_test() as instance:
        categories = sorted(p.name for p in (small_dataset / "train").iterdir())
        assert materialize_all(small_dataset, instance, categories, resources).success
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["cube.sgy"])
        resources["segy_settings"] = SegySettings(segy=str(cube), stride=33)
        assert _materialize(resources, instance, "cube.sgy").success
        table = pd.read_csv(small_dataset / "outputs" / "sections" / "cube.sgy" / "section_assignments.csv")
        assert set(table["predicted_label"]) <= set(categories) and len(table) == 2 * 2 * 2
        assert {"inline", "xline", "sample", "cluster", "predicted_hungarian", "anomaly_percentile"} <= set(table)
        # windows made with another backbone are refused, not mixed into the patch models' space
        resources["feature_settings"] = FeatureSettings(backbone="efficientnet_lite0", input_size="native")
        result = dg.materialize(ALL_ASSETS, selection=["survey_windows"], partition_key="cube.sgy",
                                resources=resources, instance=instance)
        assert result.success
        with pytest.raises(BackboneMismatchError, match="window features and fitted models differ"):
            dg.materialize(ALL_ASSETS, selection=["facies_map"], partition_key="cube.sgy", resources=resources,
                           instance=instance)
