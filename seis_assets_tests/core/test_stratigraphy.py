"""Stratigraphic units of a line (``seis_assets.core.stratigraphy``) on generated sections whose layers and units are
known: dip, relative geologic time, the exact segmentation, the units, and the facies outputs that carry them."""

import numpy as np
import pandas as pd
import pytest
import segyio
from scipy import ndimage
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from seis_assets.core.cube_model import generated_section, make_cube
from seis_assets.core.facies import count_votes, write_facies_outputs
from seis_assets.core.section_scores import depth_bands
from seis_assets.core.segy import open_survey
from seis_assets.core.segy_windows import cut_windows
from seis_assets.core.segy_write import write_section
from seis_assets.core.stratigraphy import (
    dip_field,
    level_correspondence,
    relative_geologic_time,
    segment_profile,
    unit_map,
)

N_SAMPLES, N_TRACES, SLOPE = 240, 160, 0.4  # layers deepen 0.4 samples per trace: 64 samples across the line
TOPS = (70, 150)  # unit boundaries, in samples at trace 0


def _section(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(section, units), samples x traces: three packages that dip together, each of its own character: continuous
    layers of high frequency, a chaotic package (noise with no lateral continuity), continuous layers of low
    frequency; plus a little noise."""
    rng = np.random.default_rng(seed)
    tau = np.arange(N_SAMPLES)[:, None] - SLOPE * np.arange(N_TRACES)[None, :] + 70  # layer time, constant on a layer
    units = np.digitize(tau, [140, 220])
    grid = np.arange(N_SAMPLES + 200)
    layers = np.where(grid < 140, np.sin(0.9 * grid), np.sin(0.3 * grid))
    section = np.interp(tau, grid, layers)
    chaos = ndimage.gaussian_filter(rng.standard_normal((N_SAMPLES, N_TRACES)), 1.5)
    section = np.where(units == 1, chaos / chaos.std(), section) + 0.05 * rng.standard_normal((N_SAMPLES, N_TRACES))
    return section, units


def test_the_dip_of_planar_layers_is_measured():
    section, units = _section()
    slope, coherence = dip_field(section)
    inner = np.zeros_like(units, dtype=bool)
    inner[15:-15, 15:-15] = True
    layered, chaotic = inner & (units != 1), inner & (units == 1)
    assert np.median(slope[layered]) == pytest.approx(SLOPE, abs=0.05)
    assert np.median(coherence[layered]) > 0.8 > 0.5 > np.median(coherence[chaotic])


def test_relative_time_is_constant_along_a_layer_and_grows_downwards():
    section, _ = _section()
    rgt = relative_geologic_time(section)
    assert (np.diff(rgt, axis=0) >= 0).all()
    x = np.arange(N_TRACES)
    for t0 in (20, 50, 170):  # layers above and below the chaotic package: t = t0 + SLOPE * x
        along = rgt[np.round(t0 + SLOPE * x).astype(int), x]
        assert along.std() < 2.0, (t0, along.std())
        flat = rgt[t0, x]  # a horizontal line cuts 64 samples of layers
        assert flat.std() > 10 * along.std()


def test_segmentation_finds_the_steps_of_a_profile_exactly():
    profile = np.concatenate([np.zeros(10), np.ones(7), 3 * np.ones(13)])[:, None]
    np.testing.assert_array_equal(segment_profile(profile, 3), [10, 17])
    assert segment_profile(profile, 1).size == 0
    with pytest.raises(ValueError, match="cannot cut 30 levels into 31 units"):
        segment_profile(profile, 31)


def test_units_follow_the_dipping_packages_and_beat_depth_bands():
    section, units = _section()
    mapped = unit_map(section.T, 3).T  # the facies maps' layout is traces x samples
    assert mapped.dtype == np.int16 and set(np.unique(mapped)) == {0, 1, 2}
    assert mapped[0].max() == 0 and mapped[-1].min() == 2  # numbered from the top
    ari = adjusted_rand_score(units.ravel(), mapped.ravel())
    bands = adjusted_rand_score(units.ravel(), depth_bands(N_SAMPLES, N_TRACES, 3).ravel())
    assert ari > 0.85 and ari > bands + 0.2, (ari, bands)


def test_a_corrupt_trace_gets_no_unit_and_the_runs_beside_it_are_cut_on_their_own():
    section, units = _section()
    line = section.T.copy()  # traces x samples
    line[100, 40:50] = np.nan  # a corrupt trace, as a map made around it reads it
    line[158] = np.inf  # one good trace left at the end: too narrow for a dip
    mapped = unit_map(line, 3)
    assert (mapped[100] == -1).all() and (mapped[158:] == -1).all()
    good = np.r_[0:100, 101:158]
    assert (mapped[good] >= 0).all() and set(np.unique(mapped[good])) == {0, 1, 2}
    np.testing.assert_array_equal(mapped[:100], unit_map(section.T[:100], 3))  # the left run, as a line of its own
    assert adjusted_rand_score(units.T[good].ravel(), mapped[good].ravel()) > 0.8


def test_a_dead_trace_gets_no_unit_like_a_corrupt_one():
    section, _ = _section()
    line = section.T.copy()
    line[:30] = 0.0  # zero padding at the edge of the survey
    line[100] = 3.0  # one dead trace of another value
    mapped = unit_map(line, 3)
    assert (mapped[:30] == -1).all() and (mapped[100] == -1).all()
    np.testing.assert_array_equal(mapped[30:100], unit_map(section.T[30:100], 3))


def test_cluster_shares_split_packages_the_attributes_cannot_tell_apart():
    rng = np.random.default_rng(1)
    tau = np.arange(N_SAMPLES)[:, None] - SLOPE * np.arange(N_TRACES)[None, :] + 70
    section = np.sin(0.9 * tau) + 0.05 * rng.standard_normal((N_SAMPLES, N_TRACES))  # one character throughout
    units = (tau >= 150).astype(int)
    shares = np.stack([(units == u).astype(float) for u in range(2)]).transpose(0, 2, 1)  # clusters that differ
    without = adjusted_rand_score(units.ravel(), unit_map(section.T, 2).T.ravel())
    with_shares = adjusted_rand_score(units.ravel(), unit_map(section.T, 2, shares).T.ravel())
    assert with_shares > 0.95 and without < 0.5, (with_shares, without)
    with pytest.raises(ValueError, match="n_units must be between 1 and the line's 240 samples"):
        unit_map(section.T, 0)


def test_count_votes_keeps_each_clusters_share_when_asked():
    windows = pd.DataFrame({"direction": ["inline"] * 2, "inline": [1, 1], "xline": [10, 11], "sample": [0, 1],
                            "n_traces": [2, 2], "n_samples": [3, 3], "trace_step": [1, 1]})
    votes = count_votes(windows, np.array([0, 1]), None, 2, 3, 4, "inline", 1, np.arange(10, 13), keep_shares=True)
    assert votes.shares.shape == (2, 3, 4)
    assert votes.shares[:, 1, 1].tolist() == [0.5, 0.5] and votes.shares[:, 0, 0].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(votes.shares.max(axis=0)[votes.cluster_map >= 0], votes.confidence[votes.cluster_map >= 0])
    assert count_votes(windows, np.array([0, 1]), None, 2, 3, 4, "inline", 1, np.arange(10, 13)).shares is None


def test_facies_outputs_carry_units_numbered_from_the_top(tmp_path):
    section, units = _section()
    src = write_section(tmp_path / "line.sgy", np.ascontiguousarray(section.T, dtype=np.float32))
    with open_survey(src) as survey:
        pos, _, _ = cut_windows(survey, n_traces=40, n_samples=40, stride=20, directions=("inline",))
        clusters = (pos["sample"].to_numpy() // 60).astype(int)  # window clusters from their depth, 4 of them
        result = write_facies_outputs(survey, pos, clusters, None, {}, 4, tmp_path / "out", units=3)
    legend = pd.read_csv(tmp_path / "out" / "facies_legend.csv")
    assert legend["category"].tolist() == ["unit 0", "unit 1", "unit 2"]
    assert set(result["category_share"]) == {"unit 0", "unit 1", "unit 2"}
    with segyio.open(str(tmp_path / "out" / "facies_labels.sgy"), ignore_geometry=True) as f:
        mapped = f.trace.raw[:].T.astype(int)
    assert adjusted_rand_score(units.ravel(), mapped.ravel()) > 0.8
    table = pd.read_csv(tmp_path / "out" / "section_assignments.csv")
    np.testing.assert_array_equal(table["cluster"], clusters)  # the windows keep their clusters
    with pytest.raises(ValueError, match="units map clusters without categories"):
        with open_survey(src) as survey:
            write_facies_outputs(survey, pos, clusters, None, {0: "chaotic"}, 4, tmp_path / "out2", units=3)


def _cube_units(tmp_path, tie_lines: int) -> list[np.ndarray]:
    """The unit map of each inline of a small generated cube, 4 units over 4 texture clusters."""
    src = tmp_path / "cube.sgy"
    if not src.exists():
        make_cube(src, generated_section(seed=3), n_inlines=30, n_xlines=160, n_samples=200, first_inline=10,
                  first_xline=300, seed=1)
    with open_survey(src) as survey:
        pos, patches, _ = cut_windows(survey, n_traces=40, n_samples=40, stride=33, directions=("inline",))
        texture = np.stack([patches.reshape(len(patches), -1).std(1), np.abs(np.diff(patches, axis=2)).mean((1, 2))], 1)
        clusters = KMeans(4, n_init=4, random_state=0).fit_predict((texture - texture.mean(0)) / texture.std(0))
        result = write_facies_outputs(survey, pos, clusters, None, {}, 4, tmp_path / f"out{tie_lines}",
                                      keep_maps=True, units=4, tie_lines=tie_lines)
        lines = survey.lines("inline")
    return [result["maps"][("inline", n)][0] for n in lines]


def _neighbour_agreement(maps: list[np.ndarray]) -> float:
    return float(np.mean([(a == b).mean() for a, b in zip(maps[:-1], maps[1:])]))


def test_tying_a_cubes_inlines_keeps_units_from_stepping_between_them(tmp_path):
    own = _cube_units(tmp_path, 0)
    tied = _cube_units(tmp_path, 2)
    # the cube's inlines change slowly; cut on their own, some cut at other reflectors than their neighbours
    assert _neighbour_agreement(own) < 0.9
    assert _neighbour_agreement(tied) > 0.95
    assert all(set(np.unique(m)) == {0, 1, 2, 3} for m in tied)


def test_level_correspondence_reads_a_neighbours_levels_on_the_same_samples():
    levels = np.tile(np.arange(0, 100, 2), (7, 1))  # 7 traces, 50 samples on the even levels 0..98 only
    shifted = np.minimum(levels + 3, 99)  # the neighbour's relative time runs 3 levels later on the same samples
    shifted[0] = 0  # one trace of nonsense: the median ignores it
    got = level_correspondence(levels, shifted, 100)
    assert got[0] == 3 and got[50] == 53 and got[96] == 99
    assert got[51] == 54  # an empty level (odd) between 53 and 55
