"""Attributes on constructed arrays with known answers."""

import numpy as np
import pytest

from seis_assets.core import attributes as A

H = W = 99


def plane_wave(dip_deg: float, k: float = 0.08, shape=(H, W)) -> np.ndarray:
    """Reflectors z = x * tan(dip) + c (deeper to the right for positive dip), vertical wavenumber k."""
    z, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    return np.cos(2 * np.pi * k * (z - x * np.tan(np.radians(dip_deg)))).astype(np.float32)


def interior(a: np.ndarray, m: int = 10) -> np.ndarray:
    return a[m:-m, m:-m]


@pytest.mark.parametrize("dip", [0.0, 12.0, -25.0, 40.0])
def test_plane_wave_dip_and_coherence(dip):
    d, c = A.dip_coherence(plane_wave(dip))
    assert d.shape == c.shape == (H, W)
    assert d.dtype == c.dtype == np.float32
    assert abs(np.median(interior(d)) - dip) < 0.5
    assert interior(c).mean() > 0.98


def test_white_noise_has_low_coherence_and_no_trace_correlation():
    noise = np.random.default_rng(0).standard_normal((H, W))
    _, c = A.dip_coherence(noise)
    assert 0.0 <= c.min() and c.max() <= 1.0
    assert c.mean() < 0.35
    assert abs(A.trace_correlation(noise)) < 0.05


def test_trace_correlation_identical_and_alternating_traces():
    trace = np.random.default_rng(1).standard_normal(H)
    same = np.repeat(trace[:, None], W, axis=1)
    assert A.trace_correlation(same) == pytest.approx(1.0, abs=1e-5)
    flip = same * np.where(np.arange(W) % 2 == 0, 1.0, -1.0)[None, :]
    assert A.trace_correlation(flip) == pytest.approx(-1.0, abs=1e-5)


def test_dead_traces_correlate_zero_not_nan():
    p = plane_wave(0.0)
    p[:, 40:45] = 0.0
    corr = A.trace_correlations(p)
    assert corr.shape == (W - 1,)
    assert np.all(np.isfinite(corr))
    assert np.all(corr[39:44] == 0.0)
    stats = A.patch_statistics(p)
    assert stats["lateral_discontinuity"] == pytest.approx(1.0, abs=1e-6)


def test_lagged_correlation_recovers_dipping_continuity():
    trace = np.random.default_rng(4).standard_normal(H)
    p = np.stack([np.roll(trace, 2 * j) for j in range(20)], axis=1)  # each trace 2 samples below the last
    assert np.all(A.trace_correlations(p, lag=0) < 0.5)
    np.testing.assert_allclose(A.trace_correlations(p, lag=2), 1.0, atol=1e-5)
    assert A.patch_statistics(p)["trace_correlation_lag"] > 0.99


@pytest.mark.parametrize("k", [0.05, 0.1, 0.2])
def test_dominant_wavenumber_and_centroid(k):
    p = plane_wave(0.0, k=k, shape=(128, 64))
    kk, amp = A.amplitude_spectrum(p)
    assert kk.shape == amp.shape == (65,)
    assert A.dominant_wavenumber(p) == pytest.approx(k, abs=1 / 128)
    assert A.spectral_centroid(p) == pytest.approx(k, abs=0.02)


def test_envelope_sees_a_quiet_block():
    p = plane_wave(0.0)
    p[30:70, 30:70] *= 0.05
    env = A.envelope(p)
    assert env.shape == (H, W)
    assert env[50, 50] < 0.2 < 0.8 < env[10, 10]
    assert A.patch_statistics(p)["envelope_frac_low"] > 0.1
    assert A.patch_statistics(plane_wave(0.0))["envelope_frac_low"] == 0.0


def test_patch_statistics_keys_and_values():
    s = A.patch_statistics(plane_wave(20.0))
    assert tuple(s) == A.STATISTIC_NAMES
    assert all(isinstance(v, float) and np.isfinite(v) for v in s.values())
    assert s["dip_mean_abs"] == pytest.approx(20.0, abs=1.0)
    assert s["dip_std"] < 3.0
    assert s["coherence_mean"] > 0.95
    noise = A.patch_statistics(np.random.default_rng(2).uniform(-1, 1, (H, W)))
    assert noise["coherence_mean"] < s["coherence_mean"] - 0.5
    assert noise["spectral_centroid"] > s["spectral_centroid"]


def test_attribute_vector_length_names_and_batch_consistency():
    rng = np.random.default_rng(3)
    patches = [plane_wave(10.0), rng.uniform(-1, 1, (H, W)), rng.uniform(-1, 1, (150, 300)), plane_wave(-30.0)]
    V = A.attribute_vectors(patches, chunk_size=1, n_jobs=2)
    assert V.shape == (4, A.ATTRIBUTE_DIM) and V.dtype == np.float32
    assert len(A.ATTRIBUTE_NAMES) == A.ATTRIBUTE_DIM == len(set(A.ATTRIBUTE_NAMES))
    assert np.all(np.isfinite(V))
    for i, p in enumerate(patches):
        np.testing.assert_allclose(V[i], A.attribute_vector(p), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(A.attribute_vectors(patches, n_jobs=1), V, rtol=1e-4, atol=1e-5)
    hist = V[:, : A.N_DIP_BINS]
    np.testing.assert_allclose(hist.sum(axis=1), 1.0, atol=1e-4)
    assert np.argmax(hist[0]) == 6 + round(10 / 15)  # bin 6 is centred on 0 degrees, 15 degrees per bin
    assert A.attribute_vectors([]).shape == (0, A.ATTRIBUTE_DIM)


@pytest.mark.parametrize(
    "bad", [np.zeros((5, 99)), np.zeros((99, 99, 3)), np.full((20, 20), np.nan), np.array([["a"] * 10] * 10)]
)
def test_invalid_patches_are_rejected(bad):
    with pytest.raises(ValueError):
        A.patch_statistics(bad)
