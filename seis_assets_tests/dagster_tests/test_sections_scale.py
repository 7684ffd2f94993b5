"""The SEG-Y assets at a survey's own sample rate: windows cut at the patches' rate, labels written at the file's."""

import dagster as dg
import numpy as np
import pytest
import segyio

from seis_assets.core.segy import SegyError
from seis_assets.core.segy_write import write_section
from seis_assets.core.storage import read_parquet
from seis_assets.definitions import ALL_ASSETS
from seis_assets.partitions import SURVEY_PARTITIONS_NAME
from seis_assets.resources import SegySettings

from ..core.test_section_grid import geology
from .helpers import resources_for

pytestmark = pytest.mark.slow
SECTION_KEYS = ["survey_windows", "facies_map"]


def _run(resources, key, raise_on_error=True):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, [key])
        return dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key=key, resources=resources,
                              instance=instance, raise_on_error=raise_on_error)


def test_an_8ms_section_is_cut_at_4ms_and_labelled_at_8ms(tmp_path):
    line = write_section(tmp_path / "s8.sgy", geology(8), dt_us=8000)
    root = tmp_path / "data"
    resources = resources_for(root)
    resources["segy_settings"] = SegySettings(segy=str(line), models="survey", k=3, window_traces=16,
                                              window_samples=24, stride=8)
    result = _run(resources, "s8.sgy")
    assert result.success
    windows = read_parquet(root / "warehouse" / "survey_windows" / "s8.sgy.parquet")
    assert (np.diff(sorted(set(windows["time_ms"]))) % 4 == 0).all() and windows["time_ms"].max() == 760 - 23 * 4
    with segyio.open(str(root / "outputs" / "sections" / "s8.sgy" / "facies_labels.sgy"), ignore_geometry=True) as f:
        assert (len(f.samples), f.bin[segyio.BinField.Interval], f.tracecount) == (96, 8000, 48)
    [mat] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("facies_map")]
    scale = mat.materialization.metadata["scale"].value
    assert (scale["survey_sample_interval_ms"], scale["patch_sample_interval_ms"], scale["resample_factor"]) == \
           (8.0, 4.0, "2/1")
    assert (scale["survey_samples"], scale["window_grid_samples"], scale["sample_interval_source"]) == \
           (96, 191, "binary header")


def test_a_missing_interval_fails_naming_the_file_unless_set(tmp_path):
    line = write_section(tmp_path / "nodt.sgy", geology(4), dt_us=0, trace_dt_us=0)
    resources = resources_for(tmp_path / "data")
    resources["segy_settings"] = SegySettings(segy=str(line), models="survey", k=2, window_traces=16,
                                              window_samples=24, stride=8)
    with pytest.raises(SegyError, match="nodt.sgy: sample interval missing"):
        _run(resources, "nodt.sgy")
    resources["segy_settings"] = SegySettings(segy=str(line), models="survey", k=2, window_traces=16,
                                              window_samples=24, stride=8, sample_interval_ms=4.0)
    assert _run(resources, "nodt.sgy").success
