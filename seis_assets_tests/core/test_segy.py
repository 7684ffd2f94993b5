"""SEG-Y reading, windows, scaling, facies voting and the class-index SEG-Y, on generated files and the real F3 ones."""

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import segyio
from sklearn.cluster import KMeans

from seis_assets.core.attributes import attribute_vectors
from seis_assets.core.facies import legend_table, region_share, vote_line, write_facies_outputs
from seis_assets.core.section_grid import at_patch_scale
from seis_assets.core.map_vs_labels import read_map_segy
from seis_assets.core.segy import SegyError, byte_order, list_segy_files, open_survey
from seis_assets.core.segy_windows import (
    cut_windows, iter_windows, line_runs, run_window_starts, scale_window, survey_scale, window_starts,
)
from seis_assets.core.segy_write import write_cube, write_like

SECTIONS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sections"
INLINE362 = SECTIONS / "f3_inline362.sgy"
CUBE = SECTIONS / "F3_very_small.sgy"


@pytest.fixture
def cube(tmp_path):
    return write_cube(tmp_path / "cube.sgy", range(10, 13), range(100, 140))


# --------------------------------------------------------------------------- windows
def _little_endian_copy(src, dest):
    with segyio.open(str(src), ignore_geometry=True) as f:
        spec = segyio.tools.metadata(f)
        spec.endian = "little"
        with segyio.create(str(dest), spec) as g:
            g.text[0], g.bin = f.text[0], f.bin
            for i in range(f.tracecount):
                g.header[i], g.trace[i] = f.header[i], f.trace[i]
    return dest


def test_a_little_endian_file_reads_and_writes_as_its_big_endian_twin(tmp_path):
    big = write_cube(tmp_path / "big.sgy", [1, 2, 3], range(10, 30), n_samples=50)
    little = _little_endian_copy(big, tmp_path / "little.sgy")
    assert (byte_order(big), byte_order(little)) == ("big", "little")
    with open_survey(big) as b, open_survey(little) as s:
        assert s.info.endian == "little" and s.info.structured
        assert {k: v for k, v in s.info.as_dict().items() if k not in ("path", "name", "endian")} == {
            k: v for k, v in b.info.as_dict().items() if k not in ("path", "name", "endian")}
        for n in (1, 3):
            np.testing.assert_array_equal(s.read_line("inline", n)[0], b.read_line("inline", n)[0])
        blocks = [(s.line_traces("inline", n), np.full((20, 50), float(n), np.float32)) for n in (1, 2, 3)]
    labels = write_like(little, tmp_path / "labels.sgy", blocks)
    assert byte_order(labels) == "little"  # the input's layout, byte order included
    assert read_map_segy(labels)[0].tolist() == [1] * 20 + [2] * 20 + [3] * 20
    # SEG-Y rev 2's byte-order word decides when set
    raw = bytearray(Path(big).read_bytes())
    raw[3296:3300] = b"\x04\x03\x02\x01"
    (tmp_path / "word.sgy").write_bytes(bytes(raw))
    assert byte_order(tmp_path / "word.sgy") == "little"


def test_windows_are_cut_along_each_run_of_neighbouring_traces():
    full = np.arange(300, 330)
    assert run_window_starts(full, 1, 10, 7) == (window_starts(30, 10, 7), [])  # no gap: the line's own windows
    # crosslines 300-311, 320-324 (too short for a window of 10), 330-359
    gappy = np.r_[300:312, 320:325, 330:360]
    assert line_runs(gappy) == [(0, 12), (12, 17), (17, 47)]
    starts, short = run_window_starts(gappy, 1, 10, 7)
    assert short == [(12, 17)]
    assert starts == [0, 2] + [17 + s for s in window_starts(30, 10, 7)]
    assert all(np.all(np.diff(gappy[s : s + 10]) == 1) for s in starts)  # no window spans a gap
    assert line_runs(np.arange(0, 40, 2)) == [(0, 20)]  # the step is the line's own (every 2nd CDP)
    assert run_window_starts(np.arange(5), 1, 10, 7) == ([], [(0, 5)])  # a line narrower than the window


def test_window_starts_cover_the_end_and_refuse_oversized_windows():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 3) == [0]
    with pytest.raises(ValueError, match="does not fit"):
        window_starts(3, 4, 1)


def test_windows_of_a_generated_cube_equal_the_traces_at_their_positions(cube):
    with open_survey(cube) as survey, segyio.open(str(cube)) as ref:
        assert survey.info.structured and survey.info.inlines == (10, 11, 12) and len(survey.info.xlines) == 40
        n = 0
        for pos, window in iter_windows(survey, n_traces=16, n_samples=32, stride=10, directions=("inline",)):
            expected = ref.iline[pos["inline"]][pos["xline"] - 100 : pos["xline"] - 100 + 16, pos["sample"] : pos["sample"] + 32]
            np.testing.assert_array_equal(window, expected.T)
            n += 1
        assert n == 3 * 4 * 10  # 3 inlines x crossline starts 0,10,20,24 x sample starts 0..80 step 10 and 88
    with open_survey(cube) as survey, pytest.raises(
        SegyError, match=r"no window: 40 runs of traces are narrower than the window's 16 traces \(e.g. xline 100: 3 traces\)"
    ):
        list(iter_windows(survey, n_traces=16, n_samples=32, directions=("xline",)))


def test_crossline_windows_of_a_cube(cube):
    with open_survey(cube) as survey, segyio.open(str(cube)) as ref:
        windows = list(iter_windows(survey, n_traces=2, n_samples=50, stride=1, directions=("xline",)))
        assert {p["direction"] for p, _ in windows} == {"xline"}
        for pos, window in windows:
            line = ref.xline[pos["xline"]]
            j = pos["inline"] - 10
            np.testing.assert_array_equal(window, line[j : j + 2, pos["sample"] : pos["sample"] + 50].T)


def test_unstructured_2d_line_is_read_in_trace_order(tmp_path):
    path = write_cube(tmp_path / "line.sgy", [7], range(1, 61), structured=False)
    with open_survey(path) as survey, segyio.open(str(path), ignore_geometry=True) as ref:
        assert survey.info.inlines == (7,)
        pos, patches, info = cut_windows(survey, scaling="per_window", n_traces=20, n_samples=40, stride=20)
        data = ref.trace.raw[:]
        for row, patch in zip(pos.itertuples(), patches):
            raw = data[row.xline - 1 : row.xline - 1 + 20, row.sample : row.sample + 40].T
            np.testing.assert_allclose(patch, scale_window(raw, "per_window"), atol=0)
            assert patch.min() == -1 and patch.max() == 1


def test_survey_scaling_keeps_relative_amplitudes(cube):
    with open_survey(cube) as survey:
        scale = survey_scale(survey)
        pos, patches, info = cut_windows(survey, scaling="survey", n_traces=16, n_samples=32, stride=16)
        raw = [w for _, w in iter_windows(survey, n_traces=16, n_samples=32, stride=16)]
    assert info == {"scaling": "survey", "scale": scale, "percentile": 99.5, "dead_windows": 0, "short_runs": 0}
    np.testing.assert_allclose(patches, np.clip(np.stack(raw) / scale, -1, 1), rtol=1e-6)
    assert np.abs(patches).max() == 1.0  # the brightest 0.5 % clip
    with pytest.raises(ValueError, match="scaling must be one of"):
        scale_window(raw[0], "minmax")


# --------------------------------------------------------------------------- real files
@pytest.fixture(scope="module")
def real_sections():
    if not INLINE362.exists() or not CUBE.exists():
        pytest.skip(f"real SEG-Y files not found in {SECTIONS}")
    return SECTIONS


def _ibm_to_float(word: bytes) -> float:
    (u,) = struct.unpack(">I", word)
    sign = -1.0 if u >> 31 else 1.0
    exponent = (u >> 24) & 0x7F
    return sign * (u & 0xFFFFFF) / float(1 << 24) * 16.0 ** (exponent - 64)


def test_real_inline362_ieee_2d_geometry_and_windows(real_sections):
    with open_survey(INLINE362) as survey:
        info = survey.info
        assert (info.format, info.n_traces, info.n_samples, info.sample_interval_ms) == ("ieee32", 951, 463, 4.0)
        # at the patches' 4 ms: windows come from the file itself, byte for byte (issue 16); no coordinates in it
        assert at_patch_scale(survey) is survey and info.interval_source == "binary header"
        assert info.trace_spacing_m == {"inline": None, "xline": None}
        assert info.inlines == (362,) and info.xlines == tuple(range(300, 1251))
        pos, patches, _ = cut_windows(survey, scaling="survey", n_traces=99, n_samples=99, stride=33)
        raw = {(p["xline"], p["sample"]): w for p, w in iter_windows(survey)}
    # the IEEE samples, decoded by hand from the file's bytes: big-endian float32 after 3600 + 240 bytes per trace
    blob = INLINE362.read_bytes()
    trace_bytes = 240 + 463 * 4
    for row in pos.sample(20, random_state=0).itertuples():
        t = row.xline - 300
        for dt in (0, 98):
            start = 3600 + (t + dt) * trace_bytes + 240 + row.sample * 4
            by_hand = np.frombuffer(blob[start : start + 99 * 4], dtype=">f4")
            np.testing.assert_array_equal(raw[(row.xline, row.sample)][:, dt], by_hand)
    assert np.all(raw[(300, 0)] == np.round(raw[(300, 0)]))  # the README: integer-valued amplitudes
    assert len(pos) == 351 and pos["inline"].eq(362).all()
    assert pos["xline"].max() == 1250 - 98 and pos["sample"].max() == 463 - 99  # the last windows end at the edges


def test_real_cube_ibm_3d_geometry_and_windows(real_sections):
    blob = CUBE.read_bytes()
    with open_survey(CUBE) as survey:
        info = survey.info
        assert info.format == "ibm32" and info.structured
        assert info.trace_spacing_m == {"inline": pytest.approx(25.0, abs=0.02), "xline": pytest.approx(25.0, abs=0.02)}
        assert info.inlines == tuple(range(200, 211)) and info.xlines == tuple(range(400, 411))
        trace_of = {(int(i), int(x)): n for n, (i, x) in enumerate(zip(survey.trace_inline, survey.trace_xline))}
        checked = 0
        for pos, window in iter_windows(survey, n_traces=8, n_samples=64, stride=3, directions=("inline", "xline")):
            for j in (0, 7):
                il = pos["inline"] + (j if pos["direction"] == "xline" else 0)
                xl = pos["xline"] + (j if pos["direction"] == "inline" else 0)
                start = 3600 + trace_of[(il, xl)] * (240 + 463 * 4) + 240 + pos["sample"] * 4
                by_hand = [_ibm_to_float(blob[start + 4 * s : start + 4 * s + 4]) for s in (0, 31, 63)]
                np.testing.assert_allclose(window[[0, 31, 63], j], by_hand, rtol=1e-6)
                checked += 1
        assert checked > 1000


def test_list_segy_files_takes_files_folders_and_colon_lists(real_sections, tmp_path):
    assert list_segy_files(str(SECTIONS)) == [str(CUBE), str(INLINE362)]
    assert list_segy_files(f"{INLINE362}:{CUBE}") == [str(INLINE362), str(CUBE)]
    with pytest.raises(FileNotFoundError, match="holds no .sgy"):
        list_segy_files(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_segy_files(str(tmp_path / "nope.sgy"))


# --------------------------------------------------------------------------- bad files
def test_truncated_file_is_refused_naming_file_and_problem(cube, tmp_path):
    bad = tmp_path / "truncated.sgy"
    bad.write_bytes(cube.read_bytes()[:-1000])
    with pytest.raises(SegyError, match=r"truncated\.sgy: truncated or inconsistent trace count"):
        with open_survey(bad):
            pass
    tiny = tmp_path / "tiny.sgy"
    tiny.write_bytes(cube.read_bytes()[:2000])
    with pytest.raises(SegyError, match="tiny.sgy: truncated: 2000 bytes"):
        with open_survey(tiny):
            pass


def test_extra_bytes_and_inconsistent_trace_lengths_are_refused(cube, tmp_path):
    extra = tmp_path / "extra.sgy"
    extra.write_bytes(cube.read_bytes() + b"\0" * 100)
    with pytest.raises(SegyError, match="extra.sgy: truncated or inconsistent trace count: .* and 100 bytes more"):
        with open_survey(extra):
            pass
    lengths = tmp_path / "lengths.sgy"
    shutil.copyfile(cube, lengths)
    with segyio.open(str(lengths), "r+") as f:
        f.header[5] = {segyio.TraceField.TRACE_SAMPLE_COUNT: 99}
    with pytest.raises(SegyError, match="lengths.sgy: inconsistent trace lengths: 1 trace header.* trace 5 says 99"):
        with open_survey(lengths):
            pass


def test_wrong_byte_positions_are_refused(cube):
    with pytest.raises(SegyError, match="cube.sgy: inline .byte 233. and crossline .byte 229. numbers are zero"):
        with open_survey(cube, iline_byte=233, xline_byte=229):
            pass
    # the sample count (byte 115) is the same in every trace: every trace repeats one (inline, crossline) pair
    with pytest.raises(SegyError, match="cube.sgy: 117 traces repeat an .inline, crossline. pair read at bytes 189/115"):
        with open_survey(cube, iline_byte=189, xline_byte=115):
            pass
    with pytest.raises(SegyError, match="outside the 240-byte trace header"):
        with open_survey(cube, iline_byte=239):
            pass


def test_not_segy_and_window_too_large_are_refused(cube, tmp_path):
    junk = tmp_path / "junk.sgy"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(SegyError, match="junk.sgy"):
        with open_survey(junk):
            pass
    with open_survey(cube) as survey, pytest.raises(
        SegyError, match=r"cube.sgy: no window: 3 runs of traces are narrower than the window's 99 traces \(e.g. inline 10: 40 traces\)"
    ):
        cut_windows(survey)
    with open_survey(cube) as survey, pytest.raises(SegyError, match="traces hold 120 samples, fewer than the window's 121"):
        cut_windows(survey, n_traces=10, n_samples=121)


# --------------------------------------------------------------------------- voting and outputs
def test_vote_line_takes_the_majority_and_marks_uncovered_samples():
    windows = pd.DataFrame({
        "direction": ["inline"] * 3, "inline": [1, 1, 1], "xline": [10, 12, 14], "sample": [0, 0, 2],
        "n_traces": [4, 4, 2], "n_samples": [4, 4, 4], "trace_step": [1, 1, 1],
    })
    cmap, smap = vote_line(windows, np.array([0, 1, 1]), np.array([1.0, 3.0, 5.0]), 2, 7, 6, "inline", 1,
                           np.arange(10, 17))
    assert cmap[0, 0] == 0 and cmap[2, 0] == 0  # one vote each for 0 and 1: the lower index wins the tie
    assert cmap[4, 3] == 1 and cmap[5, 5] == 1
    assert cmap[6, 0] == -1 and np.isnan(smap[6, 0])
    assert smap[2, 0] == pytest.approx(2.0) and smap[4, 3] == pytest.approx(4.0)
    cat = np.where(cmap == 0, "a", np.where(cmap == 1, "b", ""))
    assert region_share(cat, "b", np.arange(10, 17), np.arange(6) * 4.0, (14, 15), (8, 20)) == 1.0


def test_round_trip_cut_cluster_write_and_read_back_headers_identical(tmp_path):
    src = write_cube(tmp_path / "survey.sgy", range(5, 23), range(1, 41), n_samples=100, fmt=1)
    out = tmp_path / "out"
    with open_survey(src) as survey:
        pos, patches, _ = cut_windows(survey, scaling="survey", n_traces=16, n_samples=32, stride=8,
                                      directions=("inline", "xline"))
        clusters = KMeans(3, n_init=4, random_state=0).fit_predict(attribute_vectors(patches))
        result = write_facies_outputs(survey, pos, clusters, np.linspace(0, 1, len(pos)), {0: "a", 1: "b", 2: "a"}, 3,
                                      out, keep_maps=True)
    assert sorted(os.listdir(out)) == ["anomaly_map.png", "facies_labels.sgy", "facies_legend.csv", "facies_map.pdf",
                                       "facies_map.png", "section_assignments.csv"]
    with segyio.open(str(src)) as a, segyio.open(str(out / "facies_labels.sgy")) as b:
        assert (a.sorting, list(a.ilines), list(a.xlines), list(a.samples)) == \
               (b.sorting, list(b.ilines), list(b.xlines), list(b.samples))
        assert a.text[0] == b.text[0] and dict(a.bin) == dict(b.bin)
        assert all(dict(a.header[i]) == dict(b.header[i]) for i in range(a.tracecount))
        labels = b.trace.raw[:]
        for il in a.ilines:
            cmap, _ = result["maps"][("inline", il)]
            np.testing.assert_array_equal(b.iline[il], cmap)
    assert set(np.unique(labels)) <= {0.0, 1.0, 2.0}
    legend = pd.read_csv(out / "facies_legend.csv")
    assert list(legend.columns) == ["index", "cluster", "category", "colour"]
    assert legend["category"].tolist() == ["a", "b", "a"] and legend["colour"][0] == legend["colour"][2]
    table = pd.read_csv(out / "section_assignments.csv")
    assert len(table) == len(pos) and {"inline", "xline", "sample", "cluster", "predicted_label", "anomaly_score"} <= set(table)
    assert table["predicted_label"].tolist() == [{0: "a", 1: "b", 2: "a"}[c] for c in clusters]


def test_write_like_refuses_missing_or_repeated_traces(cube, tmp_path):
    with open_survey(cube) as survey:
        ns = survey.info.n_samples
    with pytest.raises(ValueError, match="of 120 traces were not written"):
        write_like(cube, tmp_path / "x.sgy", [(np.arange(3), np.zeros((3, ns)))])
    with pytest.raises(ValueError, match="written twice"):
        write_like(cube, tmp_path / "x.sgy", [(np.arange(3), np.zeros((3, ns))), (np.arange(2), np.zeros((2, ns)))])
    assert not (tmp_path / "x.sgy").exists()


def test_legend_names_unmapped_clusters():
    legend = legend_table({}, 3)
    assert legend["category"].tolist() == ["cluster 0", "cluster 1", "cluster 2"]
    assert legend["colour"].nunique() == 3
