"""The feature asset runs on the configured engine, records it, and caches the export under the data folder."""

import dagster as dg

from seis_assets.core.feature_table import read_identity
from seis_assets.definitions import ALL_ASSETS, build_resources
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import AnalysisSettings, FeatureSettings
from seis_assets_tests.dagster_tests.helpers import INGEST_KEYS, paths_for


def test_resnet_features_records_the_engine_and_caches_the_export_in_the_data_folder(small_dataset):
    paths = paths_for(small_dataset)
    resources = build_resources(
        paths,
        feature_settings=FeatureSettings(backbone="efficientnet_lite0", input_size="native", engine="onnxruntime"),
        analysis=AnalysisSettings(),
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, ["fault"])
    result = dg.materialize(ALL_ASSETS, selection=INGEST_KEYS, partition_key="fault", resources=resources,
                            instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node("resnet_features")[0].metadata
    assert meta["engine"].value == "onnxruntime" and meta["precision"].value == "fp32"
    assert meta["threads"].value >= 1 and meta["n_extracted"].value > 0
    assert read_identity(paths.table("resnet_features", "fault"))["engine"] == "onnxruntime"
    exported = list((small_dataset / "cache" / "engines").glob("efficientnet_lite0-*.onnx"))
    assert len(exported) == 1
