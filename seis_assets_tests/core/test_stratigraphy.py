"""Stratigraphic units of a line (``seis_assets.core.stratigraphy``) on generated sections whose layers and units are
known: dip, relative geologic time, the exact segmentation, the units, and the facies outputs that carry them."""

import numpy as np
import pandas as pd
import pytest
import segyio
from scipy import ndimage
from sklearn.metrics import adjusted_rand_score

from seis_assets.core.facies import count_votes, write_facies_outputs
from seis_assets.core.section_scores import depth_bands
from seis_assets.core.segy import open_survey
from seis_assets.core.segy_windows import cut_windows
from seis_assets.core.segy_write import write_section
from seis_assets.core.stratigraphy import dip_field, relative_geologic_time, segment_profile, unit_map

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
