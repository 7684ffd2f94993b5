"""Physical scale (issue 16, item 1): the sample interval from the headers, resampling to the patches' rate before
windows are cut, and labels written back at the survey's own rate, on generated sections."""

import logging

import numpy as np
import pytest
import segyio
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from seis_assets.core.attributes import attribute_vectors
from seis_assets.core.facies import write_facies_outputs
from seis_assets.core.section_grid import ResampledSurvey, at_patch_scale, resample_factor, scale_record
from seis_assets.core.segy import SegyError, open_survey
from seis_assets.core.segy_windows import cut_windows, iter_windows
from seis_assets.core.segy_write import write_cube, write_section

SPAN_MS = 760  # 0..760 ms: 381 samples at 2 ms, 191 at 4 ms, 96 at 8 ms
N_TRACES = 48


def geology(dt_ms: float, seed: int = 0) -> np.ndarray:
    """One made-up section (N_TRACES, samples) sampled at ``dt_ms`` from the same continuous model, band-limited
    below 8 ms's Nyquist (62.5 Hz): flat 25 Hz layers above 300 ms, flat 10 Hz layers from 300 to 560 ms,
    chaotic 15-30 Hz (a random phase per trace) below."""
    rng = np.random.default_rng(seed)
    t = np.arange(0, SPAN_MS + 1e-9, dt_ms) / 1000.0
    phases = rng.uniform(0, 2 * np.pi, (N_TRACES, 4))
    freqs = np.array([15.0, 19.0, 23.0, 29.0])
    chaotic = np.sum(np.sin(2 * np.pi * freqs[None, :, None] * t[None, None, :] + phases[:, :, None]), axis=1)
    upper = np.broadcast_to(np.sin(2 * np.pi * 25 * t), (N_TRACES, len(t)))
    middle = np.broadcast_to(2 * np.sin(2 * np.pi * 10 * t), (N_TRACES, len(t)))
    ms = t * 1000
    return np.where(ms < 300, upper, np.where(ms < 560, middle, chaotic)).astype(np.float32) * 1000


def _windows(survey):
    positions, patches, _ = cut_windows(at_patch_scale(survey), scaling="per_window", n_traces=16, n_samples=24,
                                        stride=4)
    return positions, attribute_vectors(patches)


def test_the_same_section_at_2_4_and_8_ms_gives_the_same_map(tmp_path):
    files = {dt: write_section(tmp_path / f"section_{dt}ms.sgy", geology(dt), dt_us=dt * 1000) for dt in (2, 4, 8)}
    with open_survey(files[4]) as survey:
        _, X4 = _windows(survey)
    scaler = StandardScaler().fit(X4)
    kmeans = KMeans(3, n_init=4, random_state=0).fit(scaler.transform(X4))
    labels = {}
    for dt, path in files.items():
        with open_survey(path) as survey:
            positions, X = _windows(survey)
            clusters = kmeans.predict(scaler.transform(X))
            write_facies_outputs(at_patch_scale(survey), positions, clusters, None, {}, 3, tmp_path / f"out{dt}")
        with segyio.open(str(tmp_path / f"out{dt}" / "facies_labels.sgy"), ignore_geometry=True) as f:
            labels[dt] = f.trace.raw[:]
            assert labels[dt].shape == (N_TRACES, len(np.arange(0, SPAN_MS + 1e-9, dt)))  # the file's own samples
    reference = labels[4]
    assert len(np.unique(reference)) == 3  # three units found, so agreement below means something
    agree_2 = (labels[2][:, ::2] == reference).mean()
    agree_8 = (labels[8] == reference[:, ::2]).mean()
    assert agree_2 >= 0.9 and agree_8 >= 0.9, (agree_2, agree_8)


def test_without_resampling_an_8ms_section_maps_differently(tmp_path):
    """The check above can fail: windows cut in samples from the 8 ms file span twice the time and disagree."""
    path8 = write_section(tmp_path / "s8.sgy", geology(8), dt_us=8000)
    path4 = write_section(tmp_path / "s4.sgy", geology(4), dt_us=4000)
    with open_survey(path4) as a, open_survey(path8) as b:
        pa, _, _ = cut_windows(a, n_traces=16, n_samples=24, stride=4)
        pb, _, _ = cut_windows(b, n_traces=16, n_samples=24, stride=4)
        pr, _, _ = cut_windows(at_patch_scale(b), n_traces=16, n_samples=24, stride=4)
    assert len(pb) < len(pa) and len(pr) == len(pa)
    assert pr["time_ms"].tolist() == pa["time_ms"].tolist()


def test_resampling_is_anti_aliased_and_keeps_the_time_span(tmp_path):
    path2 = write_section(tmp_path / "s2.sgy", geology(2), dt_us=2000)
    path4 = write_section(tmp_path / "s4.sgy", geology(4), dt_us=4000)
    with open_survey(path2) as fine, open_survey(path4) as coarse:
        grid = at_patch_scale(fine, 4.0)
        assert isinstance(grid, ResampledSurvey) and grid.factor == resample_factor(2, 4) == 0.5
        assert (grid.info.n_samples, grid.info.sample_interval_ms, grid.info.t0_ms) == (191, 4.0, 0.0)
        down, idx = grid.read_line("inline", 1)
        direct, _ = coarse.read_line("inline", 1)
    assert down.shape == direct.shape and down.dtype == np.float32
    t = np.arange(191) * 4.0
    smooth = (t > 40) & (t < SPAN_MS - 40) & (np.abs(t - 300) > 40) & (np.abs(t - 560) > 40)  # no edge, no step
    assert np.abs(down[:, smooth] - direct[:, smooth]).max() < 0.02 * np.abs(direct).max()
    # a 200 Hz tone at 2 ms is above 4 ms's Nyquist (125 Hz): filtered out, not folded back to 50 Hz
    tone = 1000 * np.sin(2 * np.pi * 200 * np.arange(381) * 0.002)[None, :].repeat(20, 0)
    path = write_section(tmp_path / "tone.sgy", tone, dt_us=2000)
    with open_survey(path) as survey:
        data, _ = at_patch_scale(survey).read_line("inline", 1)
    assert np.abs(data[:, 10:-10]).max() < 0.05 * 1000


def test_at_the_patches_rate_windows_are_the_files_samples(tmp_path):
    cube = write_cube(tmp_path / "cube.sgy", range(10, 12), range(100, 130))
    with open_survey(cube) as survey:
        assert at_patch_scale(survey, 4.0) is survey
        record = scale_record(survey, 4.0, 25.0)
        for pos, window in iter_windows(at_patch_scale(survey), n_traces=16, n_samples=32, stride=10):
            line, idx = survey.read_line("inline", pos["inline"])
            t0 = pos["xline"] - 100
            assert window.tobytes() == line[t0 : t0 + 16, pos["sample"] : pos["sample"] + 32].T.tobytes()
    assert record["resample_factor"] == "1/1" and record["survey_sample_interval_ms"] == 4.0
    assert record["survey_trace_spacing_m"] == {"inline": pytest.approx(25.0), "xline": pytest.approx(25.0)}


def test_labels_segy_keeps_the_inputs_geometry_and_rate(tmp_path):
    src = write_section(tmp_path / "s8.sgy", geology(8), dt_us=8000, first_xline=300)
    with open_survey(src) as survey:
        grid = at_patch_scale(survey)
        positions, patches, _ = cut_windows(grid, n_traces=16, n_samples=24, stride=4)
        clusters = (positions["time_ms"].to_numpy() >= 300).astype(int)  # a known map: 1 from 300 ms down
        write_facies_outputs(grid, positions, clusters, None, {}, 2, tmp_path / "out")
    with segyio.open(str(src), ignore_geometry=True) as a, \
            segyio.open(str(tmp_path / "out" / "facies_labels.sgy"), ignore_geometry=True) as b:
        assert (a.tracecount, list(a.samples), dict(a.bin)) == (b.tracecount, list(b.samples), dict(b.bin))
        assert all(dict(a.header[i]) == dict(b.header[i]) for i in range(a.tracecount))
        assert b.bin[segyio.BinField.Interval] == 8000 and len(b.samples) == 96
        labels = b.trace.raw[:]
    times = np.arange(96) * 8.0
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert (labels[:, times < 250] == 0).all() and (labels[:, times > 420] == 1).all()


def test_a_missing_interval_is_an_error_naming_the_file_and_the_setting(tmp_path):
    path = write_section(tmp_path / "no_dt.sgy", geology(4), dt_us=0, trace_dt_us=0)
    with pytest.raises(SegyError, match=r"no_dt\.sgy: sample interval missing .* set segy_settings.sample_interval_ms"):
        with open_survey(path):
            pass
    with open_survey(path, sample_interval_ms=4.0) as survey:
        assert (survey.info.sample_interval_ms, survey.info.interval_source) == (4.0, "setting")
    with pytest.raises(SegyError, match=r"no_dt\.sgy: segy_settings.sample_interval_ms is -4.0"):
        with open_survey(path, sample_interval_ms=-4.0):
            pass
    several = write_section(tmp_path / "several.sgy", geology(4), dt_us=0, trace_dt_us=4000)
    with segyio.open(str(several), "r+", ignore_geometry=True) as f:
        f.header[3] = {segyio.TraceField.TRACE_SAMPLE_INTERVAL: 2000}
    with pytest.raises(SegyError, match=r"several\.sgy: .*trace headers give several \(\[2000, 4000\] us\)"):
        with open_survey(several):
            pass


def test_binary_interval_wins_over_trace_headers_with_a_warning(tmp_path, caplog):
    path = write_section(tmp_path / "disagree.sgy", geology(4), dt_us=4000, trace_dt_us=2000)
    with caplog.at_level(logging.WARNING, logger="seis_assets.core.segy"), open_survey(path) as survey:
        assert (survey.info.sample_interval_ms, survey.info.interval_source) == (4.0, "binary header")
    assert "binary header sample interval 4000 us, trace headers [2000] us" in caplog.text
    only_traces = write_section(tmp_path / "traces.sgy", geology(4), dt_us=0, trace_dt_us=4000)
    with open_survey(only_traces) as survey:
        assert (survey.info.sample_interval_ms, survey.info.interval_source) == (4.0, "trace headers")


def test_trace_spacing_from_the_coordinates_and_its_warning(tmp_path, caplog):
    path = write_section(tmp_path / "wide.sgy", geology(4), spacing_m=12.5)
    with open_survey(path) as survey, caplog.at_level(logging.WARNING, logger="seis_assets.core.section_grid"):
        assert survey.info.trace_spacing_m["inline"] == pytest.approx(12.5)
        assert at_patch_scale(survey, 4.0, 25.0) is survey
    assert "traces along inlines are 12.5 m apart, the patches' 25.0 m" in caplog.text
