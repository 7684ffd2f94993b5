"""Seismic attributes of image patches: dip, coherence, trace correlation, spectrum.

Conventions
-----------
A patch is a 2-D float array of shape (H, W): rows are time/depth (the vertical
axis, increasing downwards), columns are traces (the lateral axis). Patches are
expected to be scaled to [-1, 1] (as ``patches.normalise_patch`` returns them);
every attribute except the amplitude statistics is invariant to the scale.

- Dip (degrees, in (-90, 90]) is the angle of the reflectors from horizontal,
  positive when a reflector gets deeper (row index grows) to the right. It is
  computed from the gradient structure tensor (gaussian-smoothed products of
  gaussian-derivative gradients).
- Coherence (0..1) is the structure-tensor anisotropy
  ``(l1 - l2) / (l1 + l2)`` of its two eigenvalues: 1 for a clean plane wave,
  near 0 for isotropic noise.
- Trace correlation is the Pearson correlation of adjacent columns.
- Wavenumbers are in cycles per sample (0..0.5) along the vertical axis.

Everything is vectorised over stacks of equally sized patches; the batch entry
point :func:`attribute_vectors` groups patches by shape, so a list may mix
sizes (e.g. 99x99 and 150x300).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from seis_assets.core.attribute_stacks import (
    EPS, band_energies, dip_coherence_from_tensor, envelope_stack, lateral_spectrum_stack, moments, spectrum_moments,
    tensor_stack, trace_corr_stack, vertical_spectrum_stack,
)

__all__ = [
    "SIGMA_GRADIENT",
    "SIGMA_TENSOR",
    "SIGMA_ENVELOPE",
    "MAX_LAG",
    "N_DIP_BINS",
    "CHUNK_SIZE",
    "N_JOBS",
    "ATTRIBUTE_NAMES",
    "ATTRIBUTE_DIM",
    "STATISTIC_NAMES",
    "structure_tensor",
    "dip_coherence",
    "trace_correlations",
    "trace_correlation",
    "amplitude_spectrum",
    "dominant_wavenumber",
    "spectral_centroid",
    "envelope",
    "patch_statistics",
    "attribute_vector",
    "attribute_vectors",
]

#: Gaussian scale (pixels) of the derivative filters of the structure tensor.
SIGMA_GRADIENT = 1.0
#: Gaussian scale (pixels) of the averaging window of the structure tensor.
SIGMA_TENSOR = 2.5
#: Gaussian scale (pixels) of the local RMS amplitude (envelope) window.
SIGMA_ENVELOPE = 4.0
#: Largest vertical shift (samples) tried by the lag-tolerant trace correlation.
MAX_LAG = 2
#: Number of dip-histogram bins over 180 degrees (bin centred on 0 degrees).
N_DIP_BINS = 12
#: Patches per vectorised chunk in :func:`attribute_vectors`.
CHUNK_SIZE = 128
#: Threads used by :func:`attribute_vectors` (the project machines have 2 cores).
N_JOBS = 2

_COHERENCE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_ENVELOPE_QUANTILES = (0.1, 0.5, 0.9)
_N_VERTICAL_BANDS = 8
_N_LATERAL_BANDS = 4
_GLCM_LAGS = (1, 2, 4)

ATTRIBUTE_NAMES: tuple[str, ...] = (
    *(f"dip_hist_{i:02d}" for i in range(N_DIP_BINS)),
    *(f"coherence_q{int(q * 100):02d}" for q in _COHERENCE_QUANTILES),
    "coherence_mean",
    "coherence_frac_high",
    "trace_corr_mean",
    "trace_corr_std",
    "trace_corr_min",
    "trace_corr_q10",
    "trace_corr_lag_mean",
    *(f"vspec_band_{i}" for i in range(_N_VERTICAL_BANDS)),
    "vspec_dominant",
    "vspec_centroid",
    "vspec_bandwidth",
    *(f"hspec_band_{i}" for i in range(_N_LATERAL_BANDS)),
    "amp_std",
    "amp_mean_abs",
    "amp_skew",
    "amp_kurtosis",
    "amp_frac_extreme",
    "amp_frac_small",
    *(f"envelope_q{int(q * 100):02d}" for q in _ENVELOPE_QUANTILES),
    "envelope_frac_low",
    "gradient_lateral_share",
    *(f"diff_lateral_lag{lag}" for lag in _GLCM_LAGS),
    *(f"diff_vertical_lag{lag}" for lag in _GLCM_LAGS),
)
#: Length of :func:`attribute_vector` (the "texture" feature dimension).
ATTRIBUTE_DIM = len(ATTRIBUTE_NAMES)

#: Keys of :func:`patch_statistics`, in order.
STATISTIC_NAMES: tuple[str, ...] = (
    "coherence_mean",
    "dip_mean_abs",
    "dip_std",
    "trace_correlation",
    "trace_correlation_lag",
    "dominant_wavenumber",
    "spectral_centroid",
    "amplitude_std",
    "amplitude_kurtosis",
    "envelope_frac_low",
    "lateral_discontinuity",
)


# --------------------------------------------------------------------------- helpers
def _as_patch(patch: np.ndarray) -> np.ndarray:
    a = np.asarray(patch)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D patch (H, W), got shape {a.shape}")
    if min(a.shape) < 8:
        raise ValueError(f"patch sides must be >= 8 pixels, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"expected a real numeric patch, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError("patch contains NaN or Inf")
    return a.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- public API
def structure_tensor(
    patch: np.ndarray, sigma_gradient: float = SIGMA_GRADIENT, sigma_tensor: float = SIGMA_TENSOR
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient structure tensor of a patch.

    Parameters
    ----------
    patch : ndarray of shape (H, W)
        Rows are time/depth, columns are traces.
    sigma_gradient : float
        Scale (pixels) of the gaussian-derivative gradient filters.
    sigma_tensor : float
        Scale (pixels) of the gaussian window averaging the gradient products.

    Returns
    -------
    jzz, jxx, jxz : ndarray of shape (H, W), float32
        Smoothed ``gz*gz``, ``gx*gx`` and ``gx*gz`` (z vertical, x lateral).
    """
    x = _as_patch(patch)[None]
    jzz, jxx, jxz, _, _ = tensor_stack(x, sigma_gradient, sigma_tensor)
    return jzz[0], jxx[0], jxz[0]


def dip_coherence(
    patch: np.ndarray, sigma_gradient: float = SIGMA_GRADIENT, sigma_tensor: float = SIGMA_TENSOR
) -> tuple[np.ndarray, np.ndarray]:
    """Local dip and coherence maps from the structure tensor.

    Parameters
    ----------
    patch : ndarray of shape (H, W)
    sigma_gradient, sigma_tensor : float
        See :func:`structure_tensor`.

    Returns
    -------
    dip : ndarray of shape (H, W), float32
        Reflector dip in degrees, in (-90, 90]; positive = deeper to the right.
    coherence : ndarray of shape (H, W), float32
        Anisotropy ``(l1 - l2) / (l1 + l2)`` in [0, 1].
    """
    jzz, jxx, jxz = structure_tensor(patch, sigma_gradient, sigma_tensor)
    return dip_coherence_from_tensor(jzz, jxx, jxz)


def trace_correlations(patch: np.ndarray, lag: int = 0) -> np.ndarray:
    """Pearson correlation of each pair of adjacent traces (columns).

    Parameters
    ----------
    patch : ndarray of shape (H, W)
    lag : int
        Vertical shift (samples) of trace j+1 against trace j; 0 is the plain correlation.

    Returns
    -------
    corr : ndarray of shape (W - 1,), float32
        Zero-variance traces (dead traces) correlate 0 with their neighbours.
    """
    return trace_corr_stack(_as_patch(patch)[None], lag)[0]


def trace_correlation(patch: np.ndarray) -> float:
    """Mean zero-lag Pearson correlation of adjacent traces (columns); float in [-1, 1]."""
    return float(trace_correlations(patch).mean())


def amplitude_spectrum(patch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean amplitude spectrum along traces (vertical axis), Hann-tapered, trace mean removed.

    Parameters
    ----------
    patch : ndarray of shape (H, W)

    Returns
    -------
    k : ndarray of shape (H // 2 + 1,)
        Vertical wavenumber in cycles per sample (0..0.5).
    amplitude : ndarray of shape (H // 2 + 1,)
        ``|FFT|`` averaged over traces.
    """
    k, amp = vertical_spectrum_stack(_as_patch(patch)[None])
    return k, amp[0]


def dominant_wavenumber(patch: np.ndarray) -> float:
    """Vertical wavenumber (cycles/sample) of the peak of :func:`amplitude_spectrum`, DC excluded."""
    k, amp = vertical_spectrum_stack(_as_patch(patch)[None])
    return float(spectrum_moments(k, amp)[0][0])


def spectral_centroid(patch: np.ndarray) -> float:
    """Amplitude-weighted mean vertical wavenumber (cycles/sample), DC excluded."""
    k, amp = vertical_spectrum_stack(_as_patch(patch)[None])
    return float(spectrum_moments(k, amp)[1][0])


def envelope(patch: np.ndarray, sigma: float = SIGMA_ENVELOPE) -> np.ndarray:
    """Local RMS amplitude (gaussian window ``sigma``) divided by the patch RMS; (H, W) float32."""
    return envelope_stack(_as_patch(patch)[None], sigma)[0].astype(np.float32)


def patch_statistics(patch: np.ndarray) -> dict[str, float]:
    """Scalar summary of a patch, used to compare synthetic and real data.

    Parameters
    ----------
    patch : ndarray of shape (H, W), values in [-1, 1]

    Returns
    -------
    stats : dict[str, float] with keys :data:`STATISTIC_NAMES`
        coherence_mean : mean structure-tensor coherence (0..1).
        dip_mean_abs, dip_std : coherence-weighted mean |dip| and std of dip (degrees).
        trace_correlation : mean zero-lag correlation of adjacent traces.
        trace_correlation_lag : mean over trace pairs of the best correlation over
            vertical shifts -MAX_LAG..MAX_LAG (continuity that tolerates dip).
        dominant_wavenumber, spectral_centroid : vertical wavenumbers (cycles/sample).
        amplitude_std, amplitude_kurtosis : of the pixel values (excess kurtosis).
        envelope_frac_low : share of pixels whose local RMS is below 0.4 x the patch RMS.
        lateral_discontinuity : 1 - min over trace pairs of the lag-tolerant correlation.
    """
    x = _as_patch(patch)[None]
    jzz, jxx, jxz, _, _ = tensor_stack(x, SIGMA_GRADIENT, SIGMA_TENSOR)
    dip, coh = dip_coherence_from_tensor(jzz, jxx, jxz)
    w = coh[0].astype(np.float64)
    wsum = w.sum() + EPS
    d = dip[0].astype(np.float64)
    dip_mean = (w * d).sum() / wsum
    dip_std = np.sqrt((w * (d - dip_mean) ** 2).sum() / wsum)
    lagged = np.max(np.stack([trace_corr_stack(x, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)]), axis=0)[0]
    k, amp = vertical_spectrum_stack(x)
    dominant, centroid, _ = spectrum_moments(k, amp)
    std, _, _, kurt = moments(x)
    env = envelope_stack(x, SIGMA_ENVELOPE)
    return {
        "coherence_mean": float(coh.mean()),
        "dip_mean_abs": float((w * np.abs(d)).sum() / wsum),
        "dip_std": float(dip_std),
        "trace_correlation": float(trace_corr_stack(x, 0).mean()),
        "trace_correlation_lag": float(lagged.mean()),
        "dominant_wavenumber": float(dominant[0]),
        "spectral_centroid": float(centroid[0]),
        "amplitude_std": float(std[0]),
        "amplitude_kurtosis": float(kurt[0]),
        "envelope_frac_low": float((env < 0.4).mean()),
        "lateral_discontinuity": float(1.0 - lagged.min()),
    }


def _attribute_stack(x: np.ndarray) -> np.ndarray:
    """Attribute vectors of a stack of equally sized patches (n, H, W) -> (n, ATTRIBUTE_DIM).

    The blocks in :data:`ATTRIBUTE_NAMES` order: structure tensor, trace correlation, spectra, amplitude
    distribution, envelope, gradient share and mean absolute differences.
    """
    n = x.shape[0]
    jzz, jxx, jxz, gz, gx = tensor_stack(x, SIGMA_GRADIENT, SIGMA_TENSOR)
    std, mean_abs, skew, kurt = moments(x)
    parts = [
        *_structure_parts(jzz, jxx, jxz, n),
        _trace_correlation_part(x),
        *_spectrum_parts(x),
        _amplitude_part(x, std, mean_abs, skew, kurt),
        *_envelope_parts(x, n),
        *_lateral_parts(x, gz, gx, std),
    ]
    out = np.concatenate([np.asarray(p, dtype=np.float64).reshape(n, -1) for p in parts], axis=1)
    if out.shape[1] != ATTRIBUTE_DIM:  # a programming error, not a data condition
        raise AssertionError(f"attribute vector has {out.shape[1]} entries, expected {ATTRIBUTE_DIM}")
    return out.astype(np.float32)


def _structure_parts(jzz, jxx, jxz, n: int) -> list[np.ndarray]:
    """Structure tensor: coherence-weighted dip histogram, coherence quantiles, mean and share above 0.8."""
    dip, coh = dip_coherence_from_tensor(jzz, jxx, jxz)
    width = 180.0 / N_DIP_BINS
    bins = (np.floor((dip + 90.0 + width / 2) / width).astype(np.int64)) % N_DIP_BINS
    bins = bins.reshape(n, -1) + (np.arange(n) * N_DIP_BINS)[:, None]
    hist = np.bincount(bins.ravel(), weights=coh.reshape(n, -1).ravel(), minlength=n * N_DIP_BINS)
    hist = hist.reshape(n, N_DIP_BINS)
    cflat = coh.reshape(n, -1)
    return [
        hist / (hist.sum(axis=1, keepdims=True) + EPS),
        np.quantile(cflat, _COHERENCE_QUANTILES, axis=1).T,
        cflat.mean(axis=1)[:, None],
        (cflat > 0.8).mean(axis=1)[:, None],
    ]


def _trace_correlation_part(x: np.ndarray) -> np.ndarray:
    """Trace-to-trace correlation: mean, std, min, 10th percentile, and the mean lag-tolerant correlation."""
    c0 = trace_corr_stack(x, 0)
    lagged = np.max(np.stack([trace_corr_stack(x, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)]), axis=0)
    return np.stack(
        [c0.mean(axis=1), c0.std(axis=1), c0.min(axis=1), np.quantile(c0, 0.1, axis=1), lagged.mean(axis=1)],
        axis=1,
    )


def _spectrum_parts(x: np.ndarray) -> list[np.ndarray]:
    """Spectra: vertical band energies and moments, lateral band energies."""
    k, amp = vertical_spectrum_stack(x)
    kx, ampx = lateral_spectrum_stack(x)
    return [
        band_energies(k, amp, _N_VERTICAL_BANDS),
        np.stack(spectrum_moments(k, amp), axis=1),
        band_energies(kx, ampx, _N_LATERAL_BANDS),
    ]


def _amplitude_part(x: np.ndarray, std, mean_abs, skew, kurt) -> np.ndarray:
    """Amplitude distribution: moments, share of extreme (> 0.9) and small (< 0.05) samples."""
    flat = np.abs(x.reshape(x.shape[0], -1))
    return np.stack([std, mean_abs, skew, kurt, (flat > 0.9).mean(axis=1), (flat < 0.05).mean(axis=1)], axis=1)


def _envelope_parts(x: np.ndarray, n: int) -> list[np.ndarray]:
    """Envelope (local RMS) quantiles and its low share: low-amplitude bodies such as salt."""
    env = envelope_stack(x, SIGMA_ENVELOPE).reshape(n, -1)
    return [np.quantile(env, _ENVELOPE_QUANTILES, axis=1).T, (env < 0.4).mean(axis=1)[:, None]]


def _lateral_parts(x: np.ndarray, gz: np.ndarray, gx: np.ndarray, std: np.ndarray) -> list[np.ndarray]:
    """Gradient energy share across traces, GLCM-like mean absolute differences across and along traces."""
    ex = (gx * gx).sum(axis=(1, 2))
    ez = (gz * gz).sum(axis=(1, 2))
    scale = std[:, None] + EPS
    return [
        (ex / (ex + ez + EPS))[:, None],
        np.stack([np.abs(x[:, :, lag:] - x[:, :, :-lag]).mean(axis=(1, 2)) for lag in _GLCM_LAGS], 1) / scale,
        np.stack([np.abs(x[:, lag:, :] - x[:, :-lag, :]).mean(axis=(1, 2)) for lag in _GLCM_LAGS], 1) / scale,
    ]


def attribute_vector(patch: np.ndarray) -> np.ndarray:
    """Fixed-length "texture" descriptor of one patch.

    Parameters
    ----------
    patch : ndarray of shape (H, W), values in [-1, 1]

    Returns
    -------
    v : ndarray of shape (ATTRIBUTE_DIM,), float32
        Entries named by :data:`ATTRIBUTE_NAMES`: coherence-weighted dip histogram,
        coherence quantiles, trace-correlation statistics, vertical and lateral
        spectrum band energies, amplitude moments, envelope quantiles and
        GLCM-like mean absolute differences. Not standardised.
    """
    return _attribute_stack(_as_patch(patch)[None])[0]


def attribute_vectors(
    patches: Sequence[np.ndarray], chunk_size: int = CHUNK_SIZE, n_jobs: int = N_JOBS
) -> np.ndarray:
    """Attribute vectors of many patches, vectorised per patch shape.

    Parameters
    ----------
    patches : sequence of ndarray, each of shape (H_i, W_i)
        Sizes may differ; patches of equal shape are processed as stacks.
    chunk_size : int
        Number of patches filtered at once (bounds memory).
    n_jobs : int
        Threads working on chunks in parallel (numpy and scipy.ndimage release the GIL).

    Returns
    -------
    V : ndarray of shape (n_patches, ATTRIBUTE_DIM), float32
        Row i describes ``patches[i]`` (speed: benchmarks/README.md, feature extraction).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    arrays = [_as_patch(p) for p in patches]
    out = np.empty((len(arrays), ATTRIBUTE_DIM), dtype=np.float32)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arrays):
        by_shape.setdefault(a.shape, []).append(i)
    chunks = [idx[s : s + chunk_size] for idx in by_shape.values() for s in range(0, len(idx), chunk_size)]

    def work(sel: list[int]) -> None:
        out[sel] = _attribute_stack(np.stack([arrays[i] for i in sel]))

    if n_jobs == 1 or len(chunks) <= 1:
        for sel in chunks:
            work(sel)
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            list(pool.map(work, chunks))
    return out
