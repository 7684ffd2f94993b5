"""The kernels behind :mod:`seis_assets.core.attributes`, vectorised over a stack of equally sized patches.

Every function takes a stack ``x`` of shape (n, H, W) (rows time/depth, columns traces) and works on its last two
axes; the per-patch functions and the texture vector of :mod:`seis_assets.core.attributes` call them with ``n = 1``
or a chunk of patches.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "smooth", "gradients", "tensor_stack", "dip_coherence_from_tensor", "trace_corr_stack", "vertical_spectrum_stack",
    "lateral_spectrum_stack", "band_energies", "spectrum_moments", "moments", "envelope_stack",
]

#: Gaussian filters reach this many sigmas.
TRUNCATE = 3.0
#: Added to denominators so silent patches give 0, not NaN.
EPS = 1e-12


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a stack (n, H, W) over its last two axes."""
    return ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma), mode="nearest", truncate=TRUNCATE)


def gradients(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-derivative gradients (gz vertical, gx lateral) of a stack (n, H, W)."""
    gz = ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma), order=(0, 1, 0), mode="nearest", truncate=TRUNCATE)
    gx = ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma), order=(0, 0, 1), mode="nearest", truncate=TRUNCATE)
    return gz, gx


def tensor_stack(x: np.ndarray, sigma_gradient: float, sigma_tensor: float):
    gz, gx = gradients(x, sigma_gradient)
    jzz = smooth(gz * gz, sigma_tensor)
    jxx = smooth(gx * gx, sigma_tensor)
    jxz = smooth(gx * gz, sigma_tensor)
    return jzz, jxx, jxz, gz, gx


def dip_coherence_from_tensor(jzz, jxx, jxz):
    dip = 0.5 * np.arctan2(-2.0 * jxz, jzz - jxx)
    trace = jzz + jxx
    scale = trace.mean(axis=(-2, -1), keepdims=True)
    coherence = np.sqrt((jzz - jxx) ** 2 + 4.0 * jxz**2) / (trace + 1e-6 * scale + EPS)
    return np.degrees(dip).astype(np.float32), np.clip(coherence, 0.0, 1.0).astype(np.float32)


def trace_corr_stack(x: np.ndarray, lag: int = 0) -> np.ndarray:
    """Pearson correlation of column j (rows r) with column j+1 (rows r+lag); (n, W-1).

    Columns with zero variance (e.g. dead traces) give correlation 0.
    """
    h = x.shape[-2]
    if lag >= 0:
        a = x[:, : h - lag, :-1]
        b = x[:, lag:, 1:]
    else:
        a = x[:, -lag:, :-1]
        b = x[:, : h + lag, 1:]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    num = (a * b).sum(axis=1)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > EPS)
    return out


def vertical_spectrum_stack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean amplitude spectrum along traces; returns k (H//2+1,) and A (n, H//2+1)."""
    h = x.shape[-2]
    taper = np.hanning(h).astype(np.float32)[None, :, None]
    xc = (x - x.mean(axis=1, keepdims=True)) * taper
    amp = np.abs(np.fft.rfft(xc, axis=1)).mean(axis=2)
    return np.fft.rfftfreq(h).astype(np.float32), amp.astype(np.float32)


def lateral_spectrum_stack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean amplitude spectrum across traces (along rows); k (W//2+1,), A (n, W//2+1)."""
    w = x.shape[-1]
    taper = np.hanning(w).astype(np.float32)[None, None, :]
    xc = (x - x.mean(axis=2, keepdims=True)) * taper
    amp = np.abs(np.fft.rfft(xc, axis=2)).mean(axis=1)
    return np.fft.rfftfreq(w).astype(np.float32), amp.astype(np.float32)


def band_energies(k: np.ndarray, amp: np.ndarray, n_bands: int) -> np.ndarray:
    """Share of spectral energy (amp**2, DC excluded) in n equal bands of 0..0.5; (n, n_bands)."""
    power = amp[:, 1:] ** 2
    band = np.minimum((k[1:] / 0.5 * n_bands).astype(int), n_bands - 1)
    onehot = np.zeros((band.size, n_bands), dtype=np.float32)
    onehot[np.arange(band.size), band] = 1.0
    e = power @ onehot
    return e / (e.sum(axis=1, keepdims=True) + EPS)


def spectrum_moments(k: np.ndarray, amp: np.ndarray):
    """Dominant wavenumber, centroid and bandwidth (std) of amp over k, DC excluded; each (n,)."""
    kk, a = k[1:], amp[:, 1:]
    dominant = kk[np.argmax(a, axis=1)]
    w = a / (a.sum(axis=1, keepdims=True) + EPS)
    centroid = (w * kk).sum(axis=1)
    bandwidth = np.sqrt((w * (kk[None, :] - centroid[:, None]) ** 2).sum(axis=1))
    return dominant, centroid, bandwidth


def moments(x: np.ndarray):
    """Per-patch std, mean |x|, skewness and excess kurtosis of a stack; each (n,)."""
    flat = x.reshape(x.shape[0], -1)
    mu = flat.mean(axis=1, keepdims=True, dtype=np.float64).astype(flat.dtype)
    d = flat - mu
    d2 = d * d
    var = d2.mean(axis=1, dtype=np.float64)
    std = np.sqrt(var)
    safe = np.where(var > EPS, var, 1.0)
    skew = np.where(var > EPS, (d2 * d).mean(axis=1, dtype=np.float64) / safe**1.5, 0.0)
    kurt = np.where(var > EPS, (d2 * d2).mean(axis=1, dtype=np.float64) / safe**2 - 3.0, 0.0)
    return std, np.abs(flat).mean(axis=1, dtype=np.float64), skew, kurt


def envelope_stack(x: np.ndarray, sigma: float) -> np.ndarray:
    """Local RMS amplitude divided by the patch RMS; (n, H, W)."""
    local = np.sqrt(np.maximum(smooth(x * x, sigma), 0.0))
    rms = np.sqrt((x * x).mean(axis=(1, 2), keepdims=True))
    return local / (rms + EPS)
