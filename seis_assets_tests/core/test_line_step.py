"""A line step for large cubes: windows on every n-th line only, each line between voted on by its nearest cut
line's windows; the lines between are still read for their corrupt traces."""

import numpy as np
import pandas as pd
import pytest
import segyio

from seis_assets.core.backbones import load_backbone
from seis_assets.core.facies import write_facies_outputs
from seis_assets.core.feature_table import table_identity
from seis_assets.core.predict import Embedder
from seis_assets.core.segy import open_survey
from seis_assets.core.segy_windows import cut_windows, line_sources, picked_lines
from seis_assets.core.segy_write import write_cube
from seis_assets.core.storage import read_parquet
from seis_assets.core.window_features import (
    WindowSpec, local_runner, read_corrupt_traces, read_line_step, write_survey_windows,
)


def test_picked_lines_keep_the_last_and_every_line_is_near_one():
    assert picked_lines(range(1, 11), 1) == list(range(1, 11))
    assert picked_lines(range(1, 11), 3) == [1, 4, 7, 10]
    assert picked_lines(range(1, 12), 3) == [1, 4, 7, 10, 11]
    assert picked_lines([100, 102, 104, 106, 108], 2) == [100, 104, 108]  # by position, not by number
    for n in (7, 10, 11, 651):
        for step in (2, 3, 4, 5):
            lines = list(range(n))
            picks = np.array(picked_lines(lines, step))
            assert max(np.abs(picks - i).min() for i in lines) <= step // 2
    with pytest.raises(ValueError, match="line step"):
        picked_lines(range(5), 0)


def test_each_line_takes_its_nearest_picked_lines_both_when_equally_near():
    assert line_sources([1, 2, 3], 1) == {1: [1], 2: [2], 3: [3]}
    assert line_sources(range(1, 8), 3) == {1: [1], 2: [1], 3: [4], 4: [4], 5: [4], 6: [7], 7: [7]}
    assert line_sources(range(1, 6), 2) == {1: [1], 2: [1, 3], 3: [3], 4: [3, 5], 5: [5]}


def _positions(cube, stride):
    with open_survey(cube) as survey:
        pos, _, _ = cut_windows(survey, n_traces=10, n_samples=10, stride=stride)
    return pos


def _labels(path):
    with segyio.open(str(path)) as f:
        return segyio.tools.cube(f)  # (inline, crossline, sample)


def test_lines_between_are_painted_with_their_nearest_cut_lines_clusters(tmp_path):
    cube = write_cube(tmp_path / "c.sgy", list(range(1, 8)), range(1, 31), n_samples=20)
    pos = _positions(cube, 5)
    picks = picked_lines(range(1, 8), 3)  # 1, 4, 7
    cut = pos[pos["inline"].isin(picks)].reset_index(drop=True)
    clusters = cut["inline"].map({1: 0, 4: 1, 7: 2}).to_numpy()  # one cluster per cut line
    with open_survey(cube) as survey:
        result = write_facies_outputs(survey, cut, clusters, None, {}, 3, tmp_path / "out", line_step=3,
                                      keep_maps=True)
    labels = _labels(tmp_path / "out" / "facies_labels.sgy")
    for i, expected in enumerate([0, 0, 1, 1, 1, 2, 2]):  # inlines 1..7: 2 -> 1, 3 and 5 -> 4, 6 -> 7
        assert (labels[i] == expected).all(), i + 1
    assert all(np.allclose(result["confidence"][("inline", n)], 1.0) for n in range(1, 8))
    # each window's confidence counts the lines it votes on: all agree here
    assert np.allclose(result["assignments"]["confidence"], 1.0)


def test_a_line_between_two_equally_near_cut_lines_gets_both_votes(tmp_path):
    cube = write_cube(tmp_path / "c.sgy", list(range(1, 6)), range(1, 31), n_samples=20)
    pos = _positions(cube, 5)
    cut = pos[pos["inline"].isin([1, 3, 5])].reset_index(drop=True)
    clusters = cut["inline"].map({1: 1, 3: 0, 5: 1}).to_numpy()
    with open_survey(cube) as survey:
        result = write_facies_outputs(survey, cut, clusters, None, {}, 2, tmp_path / "out", line_step=2,
                                      keep_maps=True)
    labels = _labels(tmp_path / "out" / "facies_labels.sgy")
    assert (labels[1] == 0).all() and (labels[3] == 0).all()  # inlines 2 and 4: a tie, the lower cluster wins
    assert np.allclose(result["confidence"][("inline", 2)], 0.5)
    assert (labels[[0, 4]] == 1).all() and (labels[2] == 0).all()


def test_where_every_line_is_alike_the_stepped_map_is_the_every_line_map(tmp_path):
    cube = write_cube(tmp_path / "c.sgy", list(range(1, 10)), range(1, 41), n_samples=30)
    pos = _positions(cube, 4)
    # a cluster by position along the line only (crossline and sample), the same on every inline
    clusters = ((pos["xline"] // 7 + pos["sample"] // 5) % 4).to_numpy()
    cut = pos["inline"].isin(picked_lines(range(1, 10), 4)).to_numpy()
    with open_survey(cube) as survey:
        write_facies_outputs(survey, pos, clusters, None, {}, 4, tmp_path / "every")
        write_facies_outputs(survey, pos[cut].reset_index(drop=True), clusters[cut], None, {}, 4, tmp_path / "step",
                             line_step=4)
    every, step = _labels(tmp_path / "every" / "facies_labels.sgy"), _labels(tmp_path / "step" / "facies_labels.sgy")
    assert len(np.unique(every)) == 4 and np.array_equal(every, step)


def test_crossline_windows_vote_on_the_crosslines_between(tmp_path):
    cube = write_cube(tmp_path / "c.sgy", list(range(1, 13)), range(1, 8), n_samples=20)
    picks = picked_lines(range(1, 8), 3)  # crosslines 1, 4, 7
    windows = pd.DataFrame({"direction": "xline", "inline": 1, "xline": picks, "sample": 0, "n_traces": 12,
                            "n_samples": 20, "trace_step": 1})
    with open_survey(cube) as survey:
        write_facies_outputs(survey, windows, np.array([2, 0, 1]), None, {}, 3, tmp_path / "out", line_step=3)
    labels = _labels(tmp_path / "out" / "facies_labels.sgy")
    assert (labels[:, [0, 1]] == 2).all() and (labels[:, [2, 3, 4]] == 0).all() and (labels[:, [5, 6]] == 1).all()


def test_windows_on_every_second_line_and_a_corrupt_trace_between(tmp_path):
    cube = write_cube(tmp_path / "c.sgy", list(range(1, 6)), range(1, 41), n_samples=30)
    with segyio.open(str(cube), "r+") as f:  # inline 2 (between the cut lines 1 and 3), crossline 25
        t = f.trace[64].copy()
        t[3] = np.inf
        f.trace[64] = t
    spec = WindowSpec(20, 20, 10, "per_window")
    identity = table_identity(load_backbone("texture"), "native", "fp32")
    runner = local_runner(spec, lambda: Embedder.build(identity, None, "cpu", None))
    with open_survey(cube) as survey:
        report = write_survey_windows(survey, ["inline"], spec, identity, tmp_path / "w.parquet", runner,
                                      line_step=2)
    table = read_parquet(tmp_path / "w.parquet")
    assert sorted(table["inline"].unique()) == [1, 3, 5] and report.n_windows == len(table)
    assert (report.lines, report.lines_between, report.metadata()["line_step"]) == (3, 2, 2)
    assert read_line_step(tmp_path / "w.parquet") == 2
    [bad] = read_corrupt_traces(tmp_path / "w.parquet")  # found on a line that got no windows
    assert (bad.inline, bad.xline) == (2, 25) and "1 Inf" in bad.reason
    clusters = table["inline"].map({1: 0, 3: 1, 5: 1}).to_numpy()
    with open_survey(cube) as survey:
        write_facies_outputs(survey, table, clusters, None, {}, 2, tmp_path / "out", line_step=2, gaps=True)
    labels = _labels(tmp_path / "out" / "facies_labels.sgy")
    assert (labels[1, 24] == -1).all()  # the corrupt trace gets no class from its neighbours' windows
    assert (np.delete(labels[1], 24, axis=0) == 0).all()  # the rest of inline 2: tie of 0 and 1, the lower wins


def test_tables_written_before_the_step_was_recorded_read_as_every_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "old.parquet")
    assert read_line_step(tmp_path / "old.parquet") == 1
