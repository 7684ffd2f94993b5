"""A small 3-D cube end to end through survey_windows and facies_map: a corrupt trace reported and mapped around,
the volume views, and the windows' cache re-used by a second run (only classification and voting run again)."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import segyio

from seis_assets.core.cube_model import generated_section, make_cube
from seis_assets.core.storage import read_parquet
from seis_assets.definitions import ALL_ASSETS
from seis_assets.partitions import SURVEY_PARTITIONS_NAME
from seis_assets.resources import SegySettings
from seis_assets_tests.segy_files import without_traces

from .helpers import resources_for

pytestmark = pytest.mark.slow
SECTION_KEYS = ["survey_windows", "facies_map"]
BAD_INLINE, BAD_XLINE = 12, 380  # the 3rd inline of 6 (10..15), a crossline in the middle (300..459)


def _small_cube(path, corrupt: bool):
    make_cube(path, generated_section(seed=3), n_inlines=6, n_xlines=160, n_samples=200, first_inline=10,
              first_xline=300, seed=1)
    if corrupt:
        with segyio.open(str(path), "r+") as f:
            i = [j for j in range(f.tracecount)
                 if f.header[j][segyio.TraceField.INLINE_3D] == BAD_INLINE
                 and f.header[j][segyio.TraceField.CROSSLINE_3D] == BAD_XLINE][0]
            trace = f.trace[i].copy()
            trace[50:60] = np.nan
            f.trace[i] = trace
    return path


def _events(result, asset):
    return [e.materialization.metadata for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(asset)]


def _map(cube, root, **settings):
    """survey_windows and facies_map of ``cube`` (partition ``cube.sgy``) into ``root``, with ``models=survey``,
    k = 3, 40 x 40 windows every 33 unless ``settings`` say otherwise."""
    resources = resources_for(root)
    defaults = dict(models="survey", k=3, stride=33, window_traces=40, window_samples=40)
    resources["segy_settings"] = SegySettings(segy=str(cube), **(defaults | settings))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["cube.sgy"])
        result = dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key="cube.sgy", resources=resources,
                                instance=instance)
    assert result.success
    return result


def test_cube_maps_around_a_corrupt_trace_and_reuses_its_windows(tmp_path):
    cube = _small_cube(tmp_path / "cube.sgy", corrupt=True)
    root = tmp_path / "data"
    resources = resources_for(root)
    resources["segy_settings"] = SegySettings(segy=str(cube), models="survey", k=3, stride=33, window_traces=40,
                                              window_samples=40, map_times_ms=[100, 400], page_lines=3)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["cube.sgy"])
        first = dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key="cube.sgy", resources=resources,
                               instance=instance)
        assert first.success
        out = root / "outputs" / "sections" / "cube.sgy"
        # the corrupt trace is named, by inline and crossline, in the outputs and the metadata
        corrupt = pd.read_csv(out / "corrupt_traces.csv")
        assert corrupt[["direction", "inline", "xline"]].values.tolist() == [["inline", BAD_INLINE, BAD_XLINE]]
        assert "10 NaN" in corrupt["reason"].iloc[0]
        [windows_meta] = _events(first, "survey_windows")
        assert windows_meta["lines"].value["lines_reused"] == 0 and windows_meta["lines"].value["lines"] == 6
        # no window contains it, the rest of its inline is mapped, the trace itself has no class
        windows = read_parquet(root / "warehouse" / "survey_windows" / "cube.sgy.parquet")
        bad = windows[(windows["inline"] == BAD_INLINE)]
        assert not ((bad["xline"] <= BAD_XLINE) & (BAD_XLINE < bad["xline"] + 40)).any()
        assert len(bad) > 0 and len(windows[windows["inline"] == 10]) > len(bad)
        with segyio.open(str(out / "facies_labels.sgy")) as f:
            labels = segyio.tools.cube(f)  # (inline, crossline, sample)
        col = BAD_XLINE - 300
        assert (labels[2, col] == -1).all()
        assert set(np.unique(labels[[0, 1, 3, 4, 5]])) <= {0.0, 1.0, 2.0}
        assert (labels[2, :col - 40] >= 0).all()
        # volume views
        summary = pd.read_csv(out / "facies_volume_summary.csv")
        assert sorted(summary["inline"].unique()) == list(range(10, 16))
        sums = summary.groupby(["inline", "time_from_ms"])["share"].sum()
        assert np.allclose(sums, 1.0)
        assert {"time_slice_100ms.png", "time_slice_400ms.png"} <= {p.name for p in out.iterdir()}
        labels_before = labels.copy()

        # a second run: every line's windows come from the cache, the map is the same
        again = dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key="cube.sgy", resources=resources,
                               instance=instance)
        [meta] = _events(again, "survey_windows")
        assert meta["lines"].value["lines_reused"] == 6 and meta["lines"].value["lines_made"] == 0
        assert meta["lines"].value["seconds"]["forward"] == 0
        with segyio.open(str(out / "facies_labels.sgy")) as f:
            assert np.array_equal(segyio.tools.cube(f), labels_before)


def test_a_line_step_cuts_windows_on_every_third_inline_and_paints_every_inline(tmp_path):
    cube = _small_cube(tmp_path / "cube.sgy", corrupt=True)  # the corrupt trace's inline 12 gets no windows
    root = tmp_path / "data"
    resources = resources_for(root)
    resources["segy_settings"] = SegySettings(segy=str(cube), models="survey", k=3, stride=33, window_traces=40,
                                              window_samples=40, line_step=3)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["cube.sgy"])
        result = dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key="cube.sgy", resources=resources,
                                instance=instance)
        assert result.success
        [windows_meta] = _events(result, "survey_windows")
        assert {k: windows_meta["lines"].value[k] for k in ("lines", "lines_between", "line_step")} == {
            "lines": 3, "lines_between": 3, "line_step": 3}
        windows = read_parquet(root / "warehouse" / "survey_windows" / "cube.sgy.parquet")
        assert sorted(windows["inline"].unique()) == [10, 13, 15]
        # the map follows the table's step, not the settings of the moment
        resources["segy_settings"] = SegySettings(segy=str(cube), models="survey", k=3, stride=33, window_traces=40,
                                                  window_samples=40, line_step=1)
        again = dg.materialize(ALL_ASSETS, selection=["facies_map"], partition_key="cube.sgy", resources=resources,
                               instance=instance)
        [facies_meta] = _events(again, "facies_map")
        assert facies_meta["line_step"].value == 3
    out = root / "outputs" / "sections" / "cube.sgy"
    corrupt = pd.read_csv(out / "corrupt_traces.csv")  # found on a line that got no windows
    assert corrupt[["inline", "xline"]].values.tolist() == [[BAD_INLINE, BAD_XLINE]]
    with segyio.open(str(out / "facies_labels.sgy")) as f:
        labels = segyio.tools.cube(f)  # (inline, crossline, sample); inlines 10..15
    col = BAD_XLINE - 300
    assert (labels[2, col] == -1).all() and (np.delete(labels[2], col, axis=0) >= 0).all()
    assert np.array_equal(labels[1], labels[0])  # inline 11: inline 10's windows
    assert np.array_equal(np.delete(labels[2], col, axis=0), np.delete(labels[3], col, axis=0))  # 12: 13's
    assert set(np.unique(labels[[0, 3, 5]])) == {0.0, 1.0, 2.0}


def test_a_cube_padded_with_zero_traces_maps_its_live_part(tmp_path):
    """An irregular outline exported as a rectangle: inlines 10-11, crosslines 300-379 hold zero traces."""
    cube = _small_cube(tmp_path / "cube.sgy", corrupt=False)
    with segyio.open(str(cube), "r+") as f:
        for j in range(f.tracecount):
            h = f.header[j]
            if h[segyio.TraceField.INLINE_3D] <= 11 and h[segyio.TraceField.CROSSLINE_3D] < 380:
                f.trace[j] = np.zeros(200, np.float32)
    root = tmp_path / "data"
    result = _map(cube, root, map_times_ms=[400])
    # trace starts 0, 33 (of 0, 33, 66, 99, 120) lie wholly in the padding, at every sample start (0, 33, 66, 99,
    # 132, 160), on both inlines
    [windows_meta] = _events(result, "survey_windows")
    assert windows_meta["dead_windows"].value == 2 * 6 * 2
    assert windows_meta["lines"].value["lines_with_dead_windows"] == 2
    [facies_meta] = _events(result, "facies_map")
    assert facies_meta["dead_windows"].value == 24
    windows = read_parquet(root / "warehouse" / "survey_windows" / "cube.sgy.parquet")
    padded = windows[windows["inline"] <= 11]
    assert sorted(padded["xline"].unique()) == [366, 399, 420]
    out = root / "outputs" / "sections" / "cube.sgy"
    with segyio.open(str(out / "facies_labels.sgy")) as f:
        labels = segyio.tools.cube(f)  # (inline, crossline, sample)
    # no class on the zero traces, even those a window with live traces covers (crosslines 366-379)
    assert (labels[:2, :80] == -1).all()
    assert (labels[:2, 80:] >= 0).all() and (labels[2:] >= 0).all()
    summary = pd.read_csv(out / "facies_volume_summary.csv")
    assert np.allclose(summary.groupby(["inline", "time_from_ms"])["share"].sum(), 1.0)
    assert (out / "time_slice_400ms.png").exists()


def _irregular_cube(path):
    """The small cube without the traces outside an irregular outline: inline 10 keeps crosslines 430-459 only (30
    traces, narrower than a 40-trace window), inline 11 has a notch at crosslines 350-369."""
    full = _small_cube(path.with_name("full.sgy"), corrupt=False)
    return without_traces(full, path, lambda il, xl: (il == 10 and xl < 430) or (il == 11 and 350 <= xl < 370))


@pytest.mark.parametrize("units", [0, 3])
def test_an_irregular_cube_maps_without_windows_across_its_gaps(tmp_path, units):
    cube = _irregular_cube(tmp_path / "cube.sgy")
    root = tmp_path / "data"
    result = _map(cube, root, units=units, map_times_ms=[400])
    [windows_meta] = _events(result, "survey_windows")
    assert not windows_meta["geometry"].value["structured"]  # a grid with empty cells
    assert windows_meta["short_runs"].value["runs"] == 1 and windows_meta["short_runs"].value["traces"] == 30
    assert windows_meta["short_runs"].value["e.g."] == ["inline 10 traces 430-459"]
    [facies_meta] = _events(result, "facies_map")
    assert facies_meta["short_runs"].value == {"runs": 1, "traces": 30}
    windows = read_parquet(root / "warehouse" / "survey_windows" / "cube.sgy.parquet")
    assert 10 not in set(windows["inline"])
    notched = windows[windows["inline"] == 11]
    assert len(notched) and not ((notched["xline"] < 370) & (notched["xline"] + 40 > 350)).any()
    assert {300, 370} <= set(notched["xline"])  # both sides of the notch have windows
    with segyio.open(str(root / "outputs" / "sections" / "cube.sgy" / "facies_labels.sgy"),
                     ignore_geometry=True) as f:
        il = f.attributes(segyio.TraceField.INLINE_3D)[:]
        labels = segyio.tools.collect(f.trace[:])
    assert len(labels) == 6 * 160 - 430 + 300 - 20  # the input's traces, none added
    assert (labels[il != 10] >= 0).all()
    if units:  # units are cut from each line's own layers: inline 10, which no window covers, still gets them
        assert set(np.unique(labels[il == 10])) == {0.0, 1.0, 2.0}
    else:
        assert (labels[il == 10] == -1).all()
    # still a cube: its volume views, the empty cells blank and not counted
    out = root / "outputs" / "sections" / "cube.sgy"
    assert (out / "time_slice_400ms.png").exists()
    summary = pd.read_csv(out / "facies_volume_summary.csv")
    assert sorted(summary["inline"].unique()) == list(range(10, 16))
    assert np.allclose(summary.groupby(["inline", "time_from_ms"])["share"].sum(), 1.0)
    ten = summary[summary["inline"] == 10]
    no_class = ten.loc[ten["class"] == "no class", "share"]
    assert (no_class == 0.0).all() if units else np.allclose(no_class, 1.0)


def test_map_times_outside_the_cube_fail_before_painting(tmp_path):
    cube = _small_cube(tmp_path / "cube.sgy", corrupt=False)
    root = tmp_path / "data"
    resources = resources_for(root)
    resources["segy_settings"] = SegySettings(segy=str(cube), models="survey", k=3, stride=33, window_traces=40,
                                              window_samples=40, map_times_ms=[5000])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["cube.sgy"])
        with pytest.raises(ValueError, match="5000"):
            dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key="cube.sgy", resources=resources,
                           instance=instance)
        assert not (root / "outputs" / "sections" / "cube.sgy" / "facies_labels.sgy").exists()


def test_units_of_a_cube_leave_out_its_corrupt_trace(tmp_path):
    cube = _small_cube(tmp_path / "cube.sgy", corrupt=True)
    root = tmp_path / "data"
    _map(cube, root, units=3, page_lines=3)
    with segyio.open(str(root / "outputs" / "sections" / "cube.sgy" / "facies_labels.sgy")) as f:
        labels = segyio.tools.cube(f)  # (inline, crossline, sample)
    col = BAD_XLINE - 300
    assert (labels[2, col] == -1).all()  # the corrupt trace: no unit, nothing filled in
    assert (labels[2, :col] >= 0).all() and (labels[2, col + 1:] >= 0).all()  # both sides cut on their own
    assert all(set(np.unique(labels[i])) == {0.0, 1.0, 2.0} for i in (0, 1, 3, 4, 5))
    assert set(np.unique(labels[2, :col])) == set(np.unique(labels[2, col + 1:])) == {0.0, 1.0, 2.0}


def test_a_cube_and_its_mdio_conversion_give_the_same_map(tmp_path, monkeypatch):
    mdio_survey = pytest.importorskip("seis_assets.core.mdio_survey")
    pytest.importorskip("mdio", reason="the mdio extra (pip install 'seis_assets[mdio]') is not installed")
    monkeypatch.setenv("MDIO__IMPORT__CPU_COUNT", "1")  # MDIO converts with a process pool otherwise
    cube = _small_cube(tmp_path / "cube.sgy", corrupt=False)
    store = mdio_survey.segy_to_mdio_store(str(cube), str(tmp_path / "cube.mdio"))
    root = tmp_path / "data"
    resources = resources_for(root)
    resources["segy_settings"] = SegySettings(segy=f"{cube}:{store}", models="survey", k=3, stride=33,
                                              window_traces=40, window_samples=40, map_times_ms=[400])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, ["cube.sgy", "cube.mdio"])
        for key in ("cube.sgy", "cube.mdio"):
            assert dg.materialize(ALL_ASSETS, selection=SECTION_KEYS, partition_key=key, resources=resources,
                                  instance=instance).success
    sections = root / "outputs" / "sections"
    with segyio.open(str(sections / "cube.sgy" / "facies_labels.sgy")) as f:
        from_segy = segyio.tools.cube(f)
    with mdio_survey.open_mdio_survey(str(sections / "cube.mdio" / "facies_labels.mdio"), variable="facies") as s:
        from_mdio = np.stack([s.read_line("inline", n)[0] for n in s.lines("inline")])
    assert from_segy.shape == from_mdio.shape and np.array_equal(from_segy, from_mdio)
    a = pd.read_csv(sections / "cube.sgy" / "section_assignments.csv")
    b = pd.read_csv(sections / "cube.mdio" / "section_assignments.csv")
    assert a["cluster"].tolist() == b["cluster"].tolist()
    # the volume views are read back from either labels store, and agree
    summary_segy = pd.read_csv(sections / "cube.sgy" / "facies_volume_summary.csv")
    summary_mdio = pd.read_csv(sections / "cube.mdio" / "facies_volume_summary.csv")
    assert len(summary_segy) and summary_segy.equals(summary_mdio)
    assert (sections / "cube.mdio" / "time_slice_400ms.png").stat().st_size > 0


def test_a_negative_tie_lines_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="segy_settings.tie_lines must be >= 0"):
        SegySettings(segy="x.sgy", models="survey", units=3, tie_lines=-1).check_map_settings()
