"""Per-sample confidence (vote share), per-window confidence in section_assignments.csv, distinct cluster colours and
the figures that show them."""

import os

import matplotlib
import numpy as np
import pandas as pd
import pytest
import segyio

from seis_assets.core.cube_model import generated_section, make_cube
from seis_assets.core.facies import count_votes, legend_table, vote_line, write_facies_outputs
from seis_assets.core.facies_figures import (
    CATEGORY_COLOURS,
    NO_CLASS_LABEL,
    anomaly_map_figure,
    category_colours,
    distinct_colours,
    facies_map_figure,
    srgb_to_lab,
)
from seis_assets.core.segy import open_survey
from seis_assets.core.segy_windows import cut_windows
from seis_assets.core.segy_write import write_cube

# Four windows on inline 1 (traces = crosslines 10..16, 6 samples), clusters 0, 1, 1, 2:
#   A xline 10, traces 0-3, samples 0-3, cluster 0
#   B xline 12, traces 2-5, samples 0-3, cluster 1
#   C xline 13, traces 3-4, samples 1-4, cluster 1
#   D xline 14, traces 4-5, samples 2-5, cluster 2
WINDOWS = pd.DataFrame({
    "direction": ["inline"] * 4, "inline": [1] * 4, "xline": [10, 12, 13, 14], "sample": [0, 0, 1, 2],
    "n_traces": [4, 4, 2, 2], "n_samples": [4, 4, 4, 4], "trace_step": [1] * 4,
})
CLUSTERS = np.array([0, 1, 1, 2])


def _votes(scores=None):
    return count_votes(WINDOWS, CLUSTERS, scores, 3, 7, 6, "inline", 1, np.arange(10, 17))


def test_confidence_is_the_winners_vote_share_counted_by_hand():
    v = _votes()
    conf = v.confidence
    assert conf[0, 0] == 1.0 and v.cluster_map[0, 0] == 0            # A alone
    assert conf[2, 0] == 0.5 and v.cluster_map[2, 0] == 0            # A, B: a tie, the lower index wins with 1/2
    assert conf[3, 1] == pytest.approx(2 / 3) and v.cluster_map[3, 1] == 1  # A, B, C: 1 + 2 votes
    assert conf[4, 2] == pytest.approx(2 / 3) and v.cluster_map[4, 2] == 1  # B, C, D
    assert conf[5, 4] == 1.0 and v.cluster_map[5, 4] == 2            # D alone
    assert conf[4, 4] == 0.5 and v.cluster_map[4, 4] == 1            # C, D tie: cluster 1
    assert np.isnan(conf[6, 0]) and v.cluster_map[6, 0] == -1        # uncovered
    covered = ~np.isnan(conf)
    assert ((conf[covered] > 0) & (conf[covered] <= 1)).all()
    assert [row for row, _, _ in v.spans] == [0, 1, 2, 3]


def test_count_votes_agrees_with_vote_line():
    scores = np.array([1.0, 3.0, 5.0, 7.0])
    v = _votes(scores)
    cmap, smap = vote_line(WINDOWS, CLUSTERS, scores, 3, 7, 6, "inline", 1, np.arange(10, 17))
    np.testing.assert_array_equal(cmap, v.cluster_map)
    np.testing.assert_array_equal(smap, v.score_map)
    assert v.score_map[3, 1] == pytest.approx(3.0)


def _min_delta_e(colours):
    lab = srgb_to_lab(np.array([matplotlib.colors.to_rgb(c) for c in colours]))
    d = np.linalg.norm(lab[:, None] - lab[None], axis=2)
    return d[~np.eye(len(colours), dtype=bool)].min()


@pytest.mark.parametrize("n", [10, 20, 30])
def test_distinct_colours_are_far_apart_in_cielab(n):
    colours = distinct_colours(n)
    assert len(set(colours)) == n
    assert _min_delta_e(colours) > (25 if n <= 20 else 15)  # CIE76; ~2.3 is a just-noticeable difference
    assert distinct_colours(n + 5)[:n] == colours  # a cluster keeps its colour when k grows


def test_srgb_to_lab_matches_reference_values():
    lab = srgb_to_lab(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(lab, [[100, 0, 0], [53.24, 80.09, 67.20], [0, 0, 0]], atol=0.05)


@pytest.mark.parametrize("k", [10, 20])
def test_survey_clusters_each_get_their_own_colour(k):
    legend = legend_table({}, k)
    assert legend["colour"].nunique() == k  # with 10 clusters, 0 and 6, 1 and 7, ... used to share a colour
    assert legend["colour"].tolist() == distinct_colours(k)
    names = category_colours([f"cluster {i}" for i in range(k)])
    assert len(set(names.values())) == k


def test_patch_models_keep_their_category_colours():
    legend = legend_table({0: "salt dome", 1: "other", 2: "salt dome", 3: "chaotic", 4: "river"}, 5)
    fixed = [CATEGORY_COLOURS[c] for c in ("salt dome", "other", "salt dome", "chaotic")]
    assert legend["colour"].tolist()[:4] == fixed
    assert legend["colour"][4] not in CATEGORY_COLOURS.values()


def _survey_map(tmp_path, mapping, k):
    src = write_cube(tmp_path / "survey.sgy", range(5, 23), range(1, 41), n_samples=64)
    with open_survey(src) as survey:
        pos, patches, _ = cut_windows(survey, n_traces=16, n_samples=16, stride=8, directions=("inline", "xline"))
        clusters = np.arange(len(pos)) % k
        result = write_facies_outputs(survey, pos, clusters, None if mapping else np.linspace(0, 1, len(pos)),
                                      mapping, k, tmp_path / "out", keep_maps=True)
    return pos, clusters, result


def test_assignments_carry_each_windows_mean_vote_share(tmp_path):
    pos, clusters, result = _survey_map(tmp_path, {}, 4)
    table = pd.read_csv(tmp_path / "out" / "section_assignments.csv")
    assert len(table) == len(pos) and table["confidence"].between(0, 1).all()
    assert table["confidence"].min() < 1.0  # clusters alternate along the grid, so overlapping windows disagree
    # an inline window's confidence is the mean of the inline's vote shares over its samples; an xline window's the
    # mean over the one trace it has on each inline it crosses
    for i in (0, int(np.flatnonzero(pos["direction"] == "xline")[0])):
        w = pos.iloc[i]
        t0, s0 = int(w["xline"]) - 1, int(w["sample"])  # crosslines 1..40 are trace indices 0..39
        if w["direction"] == "inline":
            part = result["confidence"][("inline", int(w["inline"]))][t0:t0 + 16, s0:s0 + 16]
        else:
            lines = range(int(w["inline"]), int(w["inline"]) + int(w["n_traces"]))
            part = np.stack([result["confidence"][("inline", il)][t0, s0:s0 + 16] for il in lines])
        assert table["confidence"][i] == pytest.approx(float(part.mean()))


def test_survey_map_figures_render_with_confidence(tmp_path):
    _, _, result = _survey_map(tmp_path, {}, 4)
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["anomaly_map.png", "facies_labels.sgy", "facies_legend.csv", "facies_map.pdf",
                                       "facies_map.png", "section_assignments.csv"]
    assert b"/Count 18 " in (out / "facies_map.pdf").read_bytes()  # the page tree holds one page per inline
    assert result["legend"]["category"].tolist() == [f"cluster {i}" for i in range(4)]


@pytest.mark.parametrize("units", [0, 3])
def test_crossline_pages_show_the_labels_volumes_crosslines(tmp_path, units):
    # units are cut along each inline: a crossline page must show those, not units cut along the crossline
    src = make_cube(tmp_path / "cube.sgy", generated_section(seed=3), n_inlines=5, n_xlines=120, n_samples=160,
                    first_inline=10, first_xline=300, seed=1)
    with open_survey(src) as survey:
        pos, _, _ = cut_windows(survey, n_traces=40, n_samples=40, stride=33, directions=("inline",))
        clusters = np.random.default_rng(0).integers(0, 3, len(pos))
        result = write_facies_outputs(survey, pos, clusters, None, {}, 3, tmp_path / "out", keep_maps=True,
                                      units=units, map_xlines=True, page_lines=3)
    with segyio.open(str(tmp_path / "out" / "facies_labels.sgy")) as f:
        volume = segyio.tools.cube(f)  # (inline, crossline, sample)
    pages = sorted(n for d, n in result["maps"] if d == "xline")
    assert pages == [300, 360, 419]
    for x in pages:
        page, inlines = result["maps"][("xline", x)]
        assert inlines.tolist() == list(range(10, 15))
        np.testing.assert_array_equal(page, volume[:, x - 300])
        assert len(np.unique(page)) == 3
    for n in (10, 12, 14):  # the inline pages, drawn after the labels pass, show its units too
        np.testing.assert_array_equal(result["maps"][("inline", n)][0], volume[n - 10])


def test_anomaly_figure_has_confidence_beside_it_with_colour_bars(tmp_path):
    src = write_cube(tmp_path / "s.sgy", [1], range(1, 31), n_samples=40)
    v = count_votes(WINDOWS, CLUSTERS, np.arange(4.0), 3, 7, 6, "inline", 1, np.arange(10, 17))
    with open_survey(src) as survey:
        info = survey.info
    section = np.random.default_rng(0).normal(size=(7, 6))
    both = anomaly_map_figure(section, v.score_map, info, "inline", 1, np.arange(10, 17), confidence=v.confidence)
    assert len(both.axes) == 4 and "confidence" in both.axes[1].get_title()  # two maps + two colour bars
    alone = anomaly_map_figure(section, None, info, "inline", 1, np.arange(10, 17), confidence=v.confidence)
    assert len(alone.axes) == 2
    with pytest.raises(ValueError, match="neither"):
        anomaly_map_figure(section, None, info, "inline", 1, np.arange(10, 17))


def test_facies_figure_by_cluster_names_20_clusters_by_number(tmp_path):
    src = write_cube(tmp_path / "s.sgy", [1], range(1, 31), n_samples=40)
    with open_survey(src) as survey:
        info = survey.info
    cmap = (np.arange(30 * 40).reshape(30, 40) // 60 % 20).astype(np.int16)
    fig = facies_map_figure(np.zeros((30, 40)), cmap, legend_table({}, 20), info, "inline", 1, np.arange(1, 31),
                            by="cluster")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == [f"cluster {i}" for i in range(20)]
    colours = [matplotlib.colors.to_hex(h.get_facecolor()) for h in fig.axes[0].get_legend().legend_handles]
    assert len(set(colours)) == 20
    cmap[:5] = -1  # e.g. dead traces: a "no class" entry, by category as by cluster
    for by, first in (("cluster", "cluster 0"), ("category", "cluster 0")):
        fig = facies_map_figure(np.zeros((30, 40)), cmap, legend_table({}, 20), info, "inline", 1, np.arange(1, 31),
                                by=by)
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert texts[0] == first and texts[-1] == NO_CLASS_LABEL and texts.count(NO_CLASS_LABEL) == 1
