"""A map read back from its labels SEG-Y, scored against interpreters' labels found beside the section, drawn beside
them (``seis_assets.core.map_vs_labels``)."""

import numpy as np
import pytest

from seis_assets.core.facies_figures import NO_CLASS_LABEL
from seis_assets.core.map_vs_labels import (
    compare_map,
    labels_beside,
    load_labels,
    map_vs_labels_figure,
    png_bytes,
    read_map_segy,
    read_section,
)
from seis_assets.core.segy_write import write_section

N_SAMPLES, N_TRACES = 60, 40


def _units() -> np.ndarray:
    """Three layered units, samples x traces, with a dipping boundary so depth bands do not fit them exactly."""
    t = np.arange(N_SAMPLES)[:, None] + 0.3 * np.arange(N_TRACES)[None, :]
    return np.digitize(t, [20, 45]).astype(np.int64)


def test_labels_are_found_beside_the_section_by_their_stem(tmp_path):
    segy = tmp_path / "inline_7.sgy"
    segy.write_bytes(b"")
    assert labels_beside(segy) is None
    np.save(tmp_path / "inline_7_labels.npy", _units())
    assert labels_beside(segy) == tmp_path / "inline_7_labels.npy"
    assert labels_beside(tmp_path / "inline_8.sgy") is None


def test_the_map_is_read_back_from_its_labels_segy_as_samples_by_traces(tmp_path):
    cluster_map = (_units() + 1) % 3  # clusters numbered otherwise than the units
    path = write_section(tmp_path / "facies_labels.sgy", np.ascontiguousarray(cluster_map.T, dtype=np.float32), dt_us=2000)
    read = read_map_segy(path)
    assert read.dtype == np.int64
    np.testing.assert_array_equal(read, cluster_map)
    _, times = read_section(path)
    assert times[1] - times[0] == pytest.approx(2.0)


def test_a_segy_of_amplitudes_is_not_taken_for_a_map(tmp_path):
    path = write_section(tmp_path / "seismic.sgy", np.full((N_TRACES, N_SAMPLES), 0.25, dtype=np.float32))
    with pytest.raises(ValueError, match="seismic.sgy: not a labels SEG-Y"):
        read_map_segy(path)


def test_labels_of_another_shape_or_type_are_refused_naming_the_file(tmp_path):
    np.save(tmp_path / "a_labels.npy", _units().T)
    with pytest.raises(ValueError, match=r"a_labels.npy: labels have shape \(40, 60\), the section's map \(60, 40\)"):
        load_labels(tmp_path / "a_labels.npy", (N_SAMPLES, N_TRACES))
    np.save(tmp_path / "b_labels.npy", _units().astype(float))
    with pytest.raises(ValueError, match="b_labels.npy: labels must be integers"):
        load_labels(tmp_path / "b_labels.npy", (N_SAMPLES, N_TRACES))


def test_a_relabelled_copy_of_the_units_scores_one_and_beats_depth_bands():
    units = _units()
    cluster_map = np.array([2, 0, 1])[units]
    result = compare_map(cluster_map, units, 3)
    assert result["ari"] == pytest.approx(1.0) and result["nmi"] == pytest.approx(1.0)
    assert result["miou"] == pytest.approx(1.0)
    assert result["matching"] == {0: 2, 1: 0, 2: 1}
    assert result["k"] == 3
    assert 0 < result["depth_band_ari"] < 0.9  # dipping units: equal bands fit them only in part


def test_the_figure_shows_units_and_clusters_with_matched_colours():
    units = _units()
    cluster_map = np.array([2, 0, 1])[units]
    cluster_map[:5, :5] = 3  # a fourth cluster no unit is matched to
    result = compare_map(cluster_map, units, 4)
    section = np.random.default_rng(0).standard_normal((N_SAMPLES, N_TRACES))
    fig = map_vs_labels_figure(section, cluster_map, units, result["matching"], "inline_7.sgy", result, dt_ms=4.0)
    top, bottom = fig.axes[:2]
    assert top.get_title() == "interpreters' units" and bottom.get_title() == "survey map (no labels used)"
    unit_colour = {t.get_text(): h.get_facecolor() for t, h in zip(top.get_legend().get_texts(),
                                                                     top.get_legend().legend_handles)}
    cluster_colour = {t.get_text(): h.get_facecolor() for t, h in zip(bottom.get_legend().get_texts(),
                                                                        bottom.get_legend().legend_handles)}
    assert len(unit_colour) == 3 and len(cluster_colour) == 4
    for unit, cluster in result["matching"].items():
        assert unit_colour[f"unit {unit}"] == cluster_colour[f"cluster {cluster}"]
    assert cluster_colour["cluster 3"] not in unit_colour.values()
    assert "ARI 1.00" not in fig._suptitle.get_text() and "depth bands" in fig._suptitle.get_text()
    assert png_bytes(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    assert bottom.get_xlabel() == "trace" and bottom.get_xlim() == (-0.5, N_TRACES - 0.5)
    # an inline's traces numbered by their crosslines, every second one
    numbered = map_vs_labels_figure(section, cluster_map, units, result["matching"], "inline_7.sgy", result,
                                    trace_axis=("crossline", 300, 300 + 2 * (N_TRACES - 1)))
    assert numbered.axes[1].get_xlabel() == "crossline"
    assert numbered.axes[1].get_xlim() == (299.0, 300 + 2 * (N_TRACES - 1) + 1.0)


def test_samples_without_a_class_are_read_scored_and_drawn_uncoloured(tmp_path):
    units = _units()
    cluster_map = units.copy()
    cluster_map[:, -4:] = -1  # dead traces at the end of the line, as crossline 575's
    path = write_section(tmp_path / "facies_labels.sgy", np.ascontiguousarray(cluster_map.T, dtype=np.float32))
    np.testing.assert_array_equal(read_map_segy(path), cluster_map)
    result = compare_map(cluster_map, units, 3)
    assert result["no_class"] == pytest.approx(4 / N_TRACES) and -1 not in result["matching"].values()
    fig = map_vs_labels_figure(np.ones((N_SAMPLES, N_TRACES)), cluster_map, units, result["matching"], "x", result)
    texts = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert texts == ["cluster 0", "cluster 1", "cluster 2", NO_CLASS_LABEL]
    bad = write_section(tmp_path / "bad.sgy", np.full((N_TRACES, N_SAMPLES), -2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="bad.sgy: not a labels SEG-Y"):
        read_map_segy(bad)
