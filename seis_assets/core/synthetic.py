"""Synthetic seismic patches built from a convolutional earth model.

Every patch is made the same way a seismic section is (the physics was tuned against
1000 real F3 patches with ``benchmarks/compare_synthetic.py``):

1. a layered earth: thin beds (exponential thicknesses, 1-3 samples on average) whose
   log-impedance reverts towards its mean (a blue reflectivity spectrum, as in wells), a
   few strong contrasts, and for some classes a thick marker bed of strongly different
   impedance (the bright, often clipped events of F3);
2. structure: each pixel (z, x) looks up the layer at "relative geologic time"
   ``t = z - u(z, x)``, where ``u`` is a smooth displacement field (regional dip
   plus folds whose wavelength and amplitude vary laterally and with depth);
   faults add a throw on one side of steep dipping planes (a staircase offsetting a
   bright marker), chaotic facies add a hummocky displacement in a band with brighter,
   broken reflector segments whose traces jitter (shift and scale) one by one, a salt dome drags the layers on its flanks steeply upwards,
   replaces the body by weakly reflective salt under a strong top reflector and adds
   migration swings of the opposite dip (conflicting dips);
3. reflectivity convolved trace by trace with a broadband zero-phase Ormsby wavelet
   (flat from ~0.03 to ~0.23 cycles/sample, as the spectrally balanced F3 data) followed by an
   opposite-polarity echo 13.5-15.5 samples later (:func:`with_echo`; F3's spectral notches every
   ~0.07 cycles/sample and negative trace autocorrelation at ~14.5 samples); in a salt dome the
   interior absorbs (constant-Q, ``exp(-pi k path / Q)`` with the path travelled inside the salt),
   so the body and what lies below its top lose high frequencies;
4. amplitudes in units of the survey's typical trace RMS: quiet intervals (the
   ``horizon`` class, F3's "other") stay quiet, and band-limited noise of a survey-wide
   level is added, so quiet patches are relatively noisier;
5. a survey-wide clip (2.5-3.5 x the typical RMS: the data were stored with a fixed
   dynamic range, so bright events clip as in F3), then per-patch min-max scaling to
   [-1, 1] (float32), as the F3/LANDMASS patches.

``difficulty`` in [0, 1] raises noise, fold amplitude and dip spread and lowers
fault throw, the marker contrast, chaotic disruption and the salt-body contrast, so
classes overlap more. A seed makes every data set reproducible: each patch has its own
generator seeded by ``(seed, split, class, index)``.

Anomalies for the test set (:data:`ANOMALY_KINDS`): ``dead_traces`` (zeroed
columns), ``clipped`` (amplitude clipping), ``spikes`` (isolated full-scale
samples), ``polarity_block`` (a block with reversed polarity) and
``absent_class`` (an igneous sill, :data:`ABSENT_CLASS`: a bright saucer-shaped
reflector cutting across the layering, a class not in training).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from scipy import ndimage

__all__ = [
    "CLASSES",
    "ABSENT_CLASS",
    "ANOMALY_KINDS",
    "DEFAULT_DIFFICULTY",
    "DEFAULT_SIZE",
    "DEFAULT_N_TRAIN",
    "DEFAULT_N_TEST",
    "DEFAULT_SEED",
    "DEFAULT_ANOMALY_SHARE",
    "MANIFEST_COLUMNS",
    "ricker",
    "ormsby",
    "with_echo",
    "generate_patch",
    "generate_sill",
    "inject_anomaly",
    "write_dataset",
    "parse_size",
    "main",
]

CLASSES: tuple[str, ...] = ("chaotic", "fault", "horizon", "salt dome")
#: The class the ``absent_class`` anomaly draws from (never in training).
ABSENT_CLASS = "igneous sill"
ANOMALY_KINDS: tuple[str, ...] = ("dead_traces", "clipped", "spikes", "polarity_block", "absent_class")
#: Chosen so that EfficientNet-Lite0 -> UMAP 50-d -> KMeans(k=4) gives ARI of about 0.6-0.8
#: (``benchmarks/ari_vs_difficulty.py``, n=100/class, seed 0: 0.3 -> 0.88, 0.5 -> 0.76 (seed 1: 0.78),
#: 0.55 -> 0.58, 0.6 -> 0.57, 0.7 -> 0.51).
#: With the echo, chaotic jitter and salt absorption: make demo's 150/class set at 0.5 -> 0.80
#: (benchmarks/bench_clustering_quality.py, benchmarks/synthetic_vs_real.md).
DEFAULT_DIFFICULTY = 0.5
DEFAULT_SIZE: tuple[int, int] = (99, 99)
DEFAULT_N_TRAIN = 150
DEFAULT_N_TEST = 40
DEFAULT_SEED = 0
DEFAULT_ANOMALY_SHARE = 0.08
DEFAULT_OUT = "data"
#: Columns of the manifest returned by :func:`write_dataset`.
MANIFEST_COLUMNS: tuple[str, ...] = ("file", "split", "category", "generated_class", "anomaly")

_SPLITS = ("train", "test")
_MIN_SIDE = 16


# --------------------------------------------------------------------------- building blocks
def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def ricker(peak_wavenumber: float) -> np.ndarray:
    """Ricker (Mexican-hat) wavelet sampled at unit spacing.

    Parameters
    ----------
    peak_wavenumber : float
        Peak of the amplitude spectrum in cycles per sample (0 < k < 0.5).

    Returns
    -------
    w : ndarray of shape (2 * half + 1,), float64, with ``half = ceil(1.5 / peak_wavenumber)``
    """
    if not 0.0 < peak_wavenumber < 0.5:
        raise ValueError(f"peak_wavenumber must be in (0, 0.5), got {peak_wavenumber}")
    half = int(np.ceil(1.5 / peak_wavenumber))
    a = (np.pi * peak_wavenumber * np.arange(-half, half + 1)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


def ormsby(f1: float, f2: float, f3: float, f4: float, half: int = 40) -> np.ndarray:
    """Zero-phase Ormsby (trapezoidal band-pass) wavelet sampled at unit spacing, Hann-tapered.

    The amplitude spectrum ramps up from f1 to f2, is flat from f2 to f3 and ramps down
    to 0 at f4 (cycles per sample). Processed marine data such as F3 is spectrally
    balanced: its trace spectra are flat from a few hundredths up to about 0.25
    cycles/sample, which a single-peaked Ricker wavelet cannot reproduce.

    Parameters
    ----------
    f1, f2, f3, f4 : float
        Corner wavenumbers, 0 <= f1 < f2 <= f3 < f4 <= 0.5.
    half : int
        Half-length in samples.

    Returns
    -------
    w : ndarray of shape (2 * half + 1,), float64, peak value 1 at the centre
    """
    if not 0.0 <= f1 < f2 <= f3 < f4 <= 0.5:
        raise ValueError(f"need 0 <= f1 < f2 <= f3 < f4 <= 0.5, got {(f1, f2, f3, f4)}")
    t = np.arange(-half, half + 1, dtype=float)

    def ramp(fa: float, fb: float) -> np.ndarray:  # inverse transform of a ramp from fa to fb
        return (fb**2 * np.sinc(fb * t) ** 2 - fa**2 * np.sinc(fa * t) ** 2) / (fb - fa)

    w = (ramp(f3, f4) - ramp(f1, f2)) * np.hanning(2 * half + 3)[1:-1]
    return w / w[half]


def with_echo(wavelet: np.ndarray, lag: float, strength: float) -> np.ndarray:
    """The wavelet followed by an opposite-polarity copy ``lag`` samples later (a ghost / short-period multiple).

    ``w(t) - strength * w(t - lag)``: its amplitude spectrum is the wavelet's times
    ``|1 - strength * exp(-2 pi i k lag)|``, with notches (depth ``(1 - strength) / (1 + strength)``) at
    wavenumbers ``k = n / lag`` and a negative trace autocorrelation near ``lag``, as in F3 (lag about 14.5
    samples). The fractional delay is an exact phase shift in the Fourier domain (zero-padded, no wrap-around).

    Parameters
    ----------
    wavelet : ndarray of shape (2 * half + 1,), centred
    lag : float
        Delay in samples, > 0.
    strength : float in [0, 1)

    Returns
    -------
    w : ndarray of shape (2 * (half + ceil(lag)) + 1,), centred on the primary (the echo lies below it)
    """
    if lag <= 0 or not 0.0 <= strength < 1.0:
        raise ValueError(f"need lag > 0 and 0 <= strength < 1, got {lag}, {strength}")
    half = len(wavelet) // 2
    ext = half + int(np.ceil(lag))
    primary = np.zeros(2 * ext + 1)
    primary[ext - half : ext + half + 1] = wavelet
    n = 2 * len(primary)  # zero padding: the delayed copy does not wrap around
    k = np.fft.rfftfreq(n)
    echo = np.fft.irfft(np.fft.rfft(primary, n) * np.exp(-2j * np.pi * k * lag), n)[: len(primary)]
    return primary - strength * echo


def _absorb(seis: np.ndarray, path: np.ndarray, q: float) -> np.ndarray:
    """Constant-Q absorption along traces: each sample's spectrum times ``exp(-pi k path / q)``.

    ``path`` (same shape, samples) is how far the wave has travelled through the absorbing body above each
    sample. Applied as a bank of zero-phase filters (path levels 0, 4, 8, 16, ...), interpolated per sample.
    The local RMS amplitude along each trace is then restored (gaussian window of 6 samples), as processing gain does: the
    spectrum changes, the brightness does not.
    """
    k = np.fft.rfftfreq(seis.shape[0] * 2)
    spec = np.fft.rfft(np.concatenate([seis, seis[::-1]]), axis=0)  # even extension: no wrap-around
    top = float(path.max())
    levels = [0.0, 4.0]
    while levels[-1] < top:
        levels.append(levels[-1] * 2.0)
    bank = [np.fft.irfft(spec * np.exp(-np.pi * k * lv / q)[:, None], axis=0)[: seis.shape[0]] for lv in levels]
    lv = np.asarray(levels)
    j = np.clip(np.searchsorted(lv, path, side="right") - 1, 0, len(lv) - 2)
    frac = np.clip((path - lv[j]) / (lv[j + 1] - lv[j]), 0.0, 1.0)
    stack = np.stack(bank)
    rows, cols = np.indices(seis.shape)
    out = (1.0 - frac) * stack[j, rows, cols] + frac * stack[j + 1, rows, cols]
    local_rms = lambda a: np.sqrt(ndimage.gaussian_filter1d(a**2, 6.0, axis=0, mode="reflect")) + 1e-9  # noqa: E731
    return out * (local_rms(seis) / local_rms(out))


def _layered_earth(rng: np.random.Generator, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Random layer tops spanning t0..t1 and the reflection coefficient at each top.

    Thin beds (exponential thicknesses of 1-3 samples on average) whose log-impedance
    reverts towards its mean (so the reflectivity spectrum is blue, as measured in wells),
    with a few strong contrasts (bright reflectors in F3). Coefficients are in
    units of a typical contrast (unit std for the ordinary steps).
    """
    mean_thickness = rng.uniform(1.2, 3.0)
    n = int((t1 - t0) / mean_thickness * 1.5) + 8
    thickness = rng.exponential(mean_thickness, n) + 0.5
    tops = t0 + np.cumsum(thickness)
    e = rng.standard_normal(n + 1)
    steps = e[1:] - rng.uniform(0.3, 0.6) * e[:-1]  # mean-reverting impedance: blue reflectivity
    steps /= steps.std() + 1e-12
    strong = rng.random(n) < 0.03
    steps[strong] *= rng.uniform(1.5, 3.0, strong.sum())
    return tops, steps


def _marker_bed(rng: np.random.Generator, t: np.ndarray, contrast: tuple[float, float]):
    """A thick bed of strongly different impedance (a regional marker such as a carbonate
    stringer or a gas sand) crossing the patch: its top and base tops and coefficients."""
    lo, hi = np.quantile(t, [0.15, 0.85])
    top = rng.uniform(lo, hi)
    thickness = rng.uniform(2.0, 7.0)
    c = rng.choice([-1.0, 1.0]) * rng.uniform(*contrast)
    return np.array([top, top + thickness]), np.array([c, -c * rng.uniform(0.6, 1.0)])


def _reflectivity_at(tops: np.ndarray, steps: np.ndarray, t: np.ndarray, t0: float) -> np.ndarray:
    """Reflectivity of the layered earth (spikes ``steps`` at relative times ``tops``),
    evaluated at relative times t (any shape).

    The spikes are smeared by a narrow gaussian on a fine t grid and looked up at t(z, x),
    so steep fault planes juxtapose layers without acting as reflectors.
    """
    step = 0.1
    grid = np.zeros(int(np.ceil((tops.max() - t0) / step)) + 2)
    np.add.at(grid, np.clip((tops - t0) / step, 0, None).astype(int), steps)
    grid = ndimage.gaussian_filter1d(grid, 0.45 / step, mode="constant") * (1.0 / step)
    return np.interp(t, t0 + step * np.arange(grid.size), grid)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Gaussian random field of unit std with correlation lengths sigma (rows, cols)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return f / (f.std() + 1e-12)


def _fold_field(rng: np.random.Generator, z: np.ndarray, x: np.ndarray, amplitude: float) -> np.ndarray:
    """Smooth folding: a few lateral sinusoids whose amplitude changes with depth."""
    h, w = z.shape[0], x.shape[1]
    u = np.zeros(np.broadcast_shapes(z.shape, x.shape))
    for _ in range(rng.integers(1, 4)):
        wavelength = rng.uniform(0.8, 3.0) * w
        growth = 1.0 + rng.uniform(-0.6, 0.6) * (z / h - 0.5)
        u += rng.uniform(0.3, 1.0) * amplitude * growth * np.sin(2 * np.pi * x / wavelength + rng.uniform(0, 2 * np.pi))
    return u


def _band_limited_noise(rng: np.random.Generator, shape: tuple[int, int], wavelet: np.ndarray) -> np.ndarray:
    """Unit-std noise with the data's spectrum along traces and a short lateral correlation."""
    n = ndimage.convolve1d(rng.standard_normal(shape), wavelet, axis=0, mode="reflect")
    n = ndimage.gaussian_filter1d(n, 0.8, axis=1)
    return n / (n.std() + 1e-12)


def _extra_rng(rng: np.random.Generator) -> np.random.Generator:
    """An independent child generator for a process added to the model (echo, jitter, absorption).

    Spawning does not draw from ``rng``, so every earlier draw (layers, structure, noise) stays what it was: a
    patch keeps its geology when physics is added, and before/after comparisons are paired. Still reproducible:
    the n-th spawn of a generator seeded the same way is the same.
    """
    return rng.spawn(1)[0]


def _to_unit_range(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi - lo <= 1e-12:
        raise ValueError("generated a constant patch")  # cannot happen with noise > 0; never rescale silently
    return np.clip((a - lo) / (hi - lo) * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- the classes
class _Scene:
    """What :func:`_structure` hands to :func:`_render` besides the relative-time map."""

    def __init__(self, size: tuple[int, int]):
        self.gain = np.ones(size)  # multiplies the layer reflectivity
        self.strength = 1.0  # reflectivity of the interval relative to the survey's typical one
        self.marker: tuple[float, float] | None = None  # contrast range of a marker bed, if any
        self.body = None  # (mask, interior level, top level, interior field) of a salt body
        self.extra: list[np.ndarray] = []  # further reflectivity, in units of the layer RMS
        self.absorption_q: float | None = None  # effective Q of the body (salt): high frequencies fade inside it


def _structure(category: str, rng: np.random.Generator, size: tuple[int, int], d: float):
    """Relative-time map t (H, W) and a :class:`_Scene` for one class at difficulty d."""
    h, w = size
    z = np.arange(h, dtype=float)[:, None]
    x = np.arange(w, dtype=float)[None, :]
    dip_spread = _lerp(2.0, 9.0, d)
    dip = np.tan(np.radians(rng.normal(0.0, dip_spread)))
    fold_amp = _lerp(0.5, 4.0, d) * h / 99.0
    u = dip * (x - w / 2) + _fold_field(rng, z, x, fold_amp)
    u = np.broadcast_to(u, (h, w)).copy()
    scene = _Scene((h, w))

    if category == "horizon":
        # F3 "other": quiet, thinly layered intervals, sometimes with one bright marker
        scene.strength = rng.uniform(0.3, 0.55)
        if rng.random() < 0.7:
            scene.marker = (6.0, 12.0)
    elif category == "fault":
        # a staircase of sub-parallel, steep normal faults offsetting a bright marker
        scene.marker = (_lerp(7.0, 4.0, d), _lerp(12.0, 7.0, d)) if rng.random() < 0.9 else None
        scene.strength = rng.uniform(0.5, 0.9)
        side = rng.choice([-1.0, 1.0])
        n_faults = int(rng.integers(1, 6))
        x0s = np.sort(rng.uniform(0.1, 0.9, n_faults)) * w
        for x0 in x0s:
            theta = np.radians(rng.uniform(75.0, 89.0))
            z0 = rng.uniform(0.3, 0.7) * h
            dist = (x - x0) - side * (z - z0) / np.tan(theta)  # lateral distance to the fault plane
            throw = _lerp(7.0, 2.0, d) * rng.uniform(0.5, 1.3) * h / 99.0
            hanging = 0.5 * (1.0 + np.tanh(side * dist / 0.3))  # hanging wall drops: normal fault
            drag = 0.15 * throw * np.exp(-np.abs(dist) / 3.0) * np.tanh(side * dist / 0.3)
            u += throw * hanging - drag
    elif category == "chaotic":
        # a band of bright, hummocky (mounded, laterally short but smooth) reflector segments
        # within ordinary layering: mass-transport or slumped deposits
        zc = rng.uniform(0.3, 0.7) * h
        half = rng.uniform(0.1, 0.3) * h
        band = 0.5 * (np.tanh((z - (zc - half)) / 3.0) - np.tanh((z - (zc + half)) / 3.0))
        strength = _lerp(4.0, 1.5, d) * h / 99.0
        u += strength * band * _smooth_field(rng, (h, w), (rng.uniform(3.0, 6.0), rng.uniform(6.0, 12.0)))
        seg = _smooth_field(rng, (h, w), (1.5, rng.uniform(3.0, 7.0)))
        scene.gain *= 1.0 + band * rng.uniform(1.0, 2.4) * _lerp(1.0, 0.6, d)
        scene.gain *= 1.0 - band * _lerp(0.8, 0.4, d) * (seg < rng.uniform(-0.5, 0.3))
        # trace-scale jitter inside the band: each trace shifted and scaled on its own (unresolved scatterers,
        # short-wavelength statics), so neighbouring traces decorrelate as in F3's chaotic band
        jit = _extra_rng(rng)
        shift = ndimage.gaussian_filter1d(jit.standard_normal((h, w)), 3.0, axis=0)
        u += band * jit.uniform(0.25, 0.65) * shift / (shift.std() + 1e-12)
        scene.gain *= np.clip(1.0 + band * jit.uniform(0.04, 0.1) * jit.standard_normal((1, w)), 0.5, None)
        scene.strength = rng.uniform(0.5, 0.8)
    elif category == "salt dome":
        xc = rng.uniform(0.2, 0.8) * w
        apex = rng.uniform(-0.2, 0.35) * h
        width = rng.uniform(0.3, 0.7) * w
        power = rng.uniform(1.2, 2.2)
        rugose = 1.5 * _smooth_field(rng, (1, w), (0.0, 3.0))  # a rough salt top
        top = apex + h * (np.abs(x - xc) / width) ** power + rugose  # (1, W) depth of the salt top
        above = top - z  # > 0 above the salt
        drag_amp = _lerp(30.0, 12.0, d) * h / 99.0
        u -= drag_amp * np.exp(-np.clip(above, 0, None) / rng.uniform(12.0, 30.0))
        inside = 0.5 * (1.0 - np.tanh(above / 0.8))
        interior_level = _lerp(0.1, 0.5, d)  # interior reflectivity RMS relative to the layers'
        top_level = rng.uniform(3.0, 6.0)  # salt is faster: a strong top reflector
        scene.body = (inside, interior_level, top_level, _smooth_field(rng, (h, w), (1.0, 1.5)))
        scene.strength = rng.uniform(0.9, 1.3)  # steep, dragged, bright flank reflectors
        # migration swings: steep events of the opposite dip near the flanks (conflicting dips)
        for _ in range(int(rng.integers(1, 4))):
            slope = -np.sign(x - xc) * np.tan(np.radians(rng.uniform(25.0, 55.0)))
            z_line = rng.uniform(0.2, 0.8) * h + slope * (x - xc)
            near = np.exp(-np.abs(x - xc - rng.normal(0.0, 0.2 * w)) / (0.25 * w))
            scene.extra.append(rng.uniform(1.0, 3.0) * near * np.exp(-0.5 * ((z - z_line) / 0.7) ** 2) * 0.7)
        scene.absorption_q = _extra_rng(rng).uniform(8.0, 25.0)  # the dim, scattering salt interior loses high frequencies
    else:
        raise ValueError(f"unknown category {category!r}; expected one of {CLASSES} (or {ABSENT_CLASS!r})")
    return z - u, scene


def _render(rng, size, d, t, scene: _Scene):
    """Convolutional model: reflectivity * wavelet + noise, survey clip, per-patch scaling."""
    h, w = size
    t0, t1 = float(t.min()) - 8.0, float(t.max()) + 8.0
    tops, steps = _layered_earth(rng, t0, t1)
    refl = _reflectivity_at(tops, steps, t, t0)
    rms = float(np.sqrt(np.mean(refl**2))) + 1e-12
    refl = refl * (1.0 + 0.25 * _smooth_field(rng, (h, w), (3.0, 20.0))) * scene.gain  # lateral variation
    if scene.marker is not None:
        m_tops, m_steps = _marker_bed(rng, t, scene.marker)
        refl = refl + rms / 2.4 * _reflectivity_at(m_tops, m_steps, t, t0)  # 2.4: peak of a smeared unit spike
    for extra in scene.extra:
        refl = refl + rms * extra
    if scene.body is not None:
        # a body (mask ~ 1) with weak, unlayered internal reflectivity and a strong top reflector
        mask, interior_level, top_level, field = scene.body
        inner = np.diff(field, axis=0, prepend=field[:1])
        top = np.diff(mask, axis=0, prepend=mask[:1])
        refl = (1.0 - mask) * refl + mask * inner * (interior_level * rms / (inner.std() + 1e-12))
        refl = refl + top * (top_level * rms / (np.abs(top).max() + 1e-12))
    wavelet = ormsby(rng.uniform(0.005, 0.015), rng.uniform(0.025, 0.045), rng.uniform(0.22, 0.25), rng.uniform(0.3, 0.34))
    # F3's wavelet is followed by an opposite-polarity echo ~14.5 samples later: spectral notches every ~0.07
    echo = _extra_rng(rng)
    wavelet = with_echo(wavelet, echo.uniform(13.5, 15.5), echo.uniform(0.15, 0.35))
    seis = ndimage.convolve1d(refl, wavelet, axis=0, mode="reflect")
    # amplitudes in units of the survey's typical trace RMS: quiet intervals stay quiet
    reference = float(np.std(ndimage.convolve1d(_reflectivity_at(tops, steps, t, t0), wavelet, axis=0, mode="reflect")))
    seis = seis * (scene.strength / (reference + 1e-12))
    seis = seis + _lerp(0.12, 0.55, d) * _band_limited_noise(rng, (h, w), wavelet)  # survey-wide noise level
    if scene.absorption_q is not None and scene.body is not None:
        # what reaches the salt interior (reflections and scattered energy alike) travelled through the salt
        seis = _absorb(seis, np.cumsum(scene.body[0], axis=0), scene.absorption_q)
    clip = rng.uniform(2.5, 3.5)  # the survey was stored with a fixed dynamic range: bright events clip
    return _to_unit_range(np.clip(seis, -clip, clip))


def _check(size: tuple[int, int], difficulty: float) -> tuple[int, int]:
    if len(size) != 2 or min(size) < _MIN_SIDE:
        raise ValueError(f"size must be (height, width) with sides >= {_MIN_SIDE}, got {size}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    return int(size[0]), int(size[1])


def generate_patch(
    category: str,
    rng: np.random.Generator,
    size: tuple[int, int] = DEFAULT_SIZE,
    difficulty: float = DEFAULT_DIFFICULTY,
) -> np.ndarray:
    """One synthetic seismic patch of a class.

    Parameters
    ----------
    category : {"chaotic", "fault", "horizon", "salt dome"}
    rng : numpy.random.Generator
        The only source of randomness; the same generator state gives the same patch.
    size : (int, int)
        (height, width) = (samples per trace, traces).
    difficulty : float in [0, 1]
        0 = textbook examples, 1 = noisy, folded, small throws: classes overlap.

    Returns
    -------
    patch : ndarray of shape size, float32, min -1 and max 1
    """
    size = _check(size, difficulty)
    if category not in CLASSES:
        raise ValueError(f"unknown category {category!r}; expected one of {CLASSES}")
    t, scene = _structure(category, rng, size, difficulty)
    return _render(rng, size, difficulty, t, scene)


def generate_sill(
    rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE, difficulty: float = DEFAULT_DIFFICULTY
) -> np.ndarray:
    """A patch of the absent class: an igneous sill, a bright saucer-shaped reflector
    cutting across gently folded layers. Same parameters and return as :func:`generate_patch`."""
    h, w = _check(size, difficulty)
    t, scene = _structure("horizon", rng, (h, w), difficulty)
    z = np.arange(h, dtype=float)[:, None]
    x = np.arange(w, dtype=float)[None, :]
    xc, base = rng.uniform(0.3, 0.7) * w, rng.uniform(0.35, 0.75) * h
    rim = rng.uniform(0.2, 0.45) * h
    depth = base - rim * np.clip((np.abs(x - xc) / (rng.uniform(0.25, 0.45) * w)) ** 2 - 1.0, 0.0, None)
    thickness = rng.uniform(2.0, 4.0)
    sill = 0.5 * (np.tanh((z - depth) / 0.6) - np.tanh((z - depth - thickness) / 0.6))
    edge = np.diff(sill, axis=0, prepend=sill[:1])  # top and base reflections of the sill
    scene.marker = None
    scene.extra.append(rng.uniform(5.0, 8.0) * edge)  # igneous rock: far stronger than any sedimentary contrast
    return _render(rng, (h, w), difficulty, t, scene)


def inject_anomaly(patch: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Corrupt a patch (or replace it by an absent-class patch).

    Parameters
    ----------
    patch : ndarray of shape (H, W), values in [-1, 1]
    kind : one of ANOMALY_KINDS
        dead_traces: 4-15 % of the traces (some in a block) set to 0;
        clipped: amplitudes clipped at 15-35 % of the peak, rescaled to [-1, 1];
        spikes: 0.5-2 % of the samples set to +-1;
        polarity_block: a rectangle of 1/6 to 1/2 of each side with reversed sign;
        absent_class: a new :func:`generate_sill` patch of the same size.
    rng : numpy.random.Generator

    Returns
    -------
    out : ndarray of shape (H, W), float32, values in [-1, 1] (the input is not modified)
    """
    p = np.asarray(patch, dtype=np.float32)
    if p.ndim != 2:
        raise ValueError(f"expected a 2-D patch, got shape {p.shape}")
    h, w = p.shape
    out = p.copy()
    if kind == "dead_traces":
        n = max(2, int(round(w * rng.uniform(0.04, 0.15))))
        start = int(rng.integers(0, w - n // 2))
        cols = np.unique(np.concatenate([np.arange(start, min(w, start + n // 2)), rng.choice(w, n - n // 2)]))
        out[:, cols] = 0.0
    elif kind == "clipped":
        c = rng.uniform(0.15, 0.35) * float(np.abs(out).max())
        out = np.clip(out, -c, c) / c
    elif kind == "spikes":
        n = max(3, int(h * w * rng.uniform(0.005, 0.02)))
        idx = rng.choice(h * w, n, replace=False)
        out.flat[idx] = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)
    elif kind == "polarity_block":
        bh, bw = int(h * rng.uniform(1 / 6, 1 / 2)), int(w * rng.uniform(1 / 6, 1 / 2))
        r0, c0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        out[r0 : r0 + bh, c0 : c0 + bw] *= -1.0
    elif kind == "absent_class":
        return generate_sill(rng, (h, w))
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}; expected one of {ANOMALY_KINDS}")
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- data set on disk
def _patch_rng(seed: int, split: int, cls: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, split, cls, index])


def write_dataset(
    root: str | Path,
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    size: tuple[int, int] = DEFAULT_SIZE,
    difficulty: float = DEFAULT_DIFFICULTY,
    seed: int = DEFAULT_SEED,
    anomaly_share: float = DEFAULT_ANOMALY_SHARE,
    force: bool = False,
) -> pd.DataFrame:
    """Write a LANDMASS-like data set of MATLAB v5 files.

    Layout: ``root/train/<cls>/<cls>_0001.mat`` and ``root/test/<cls>/<cls>_0001.mat``
    (key ``img``, float32 in [-1, 1]) for every class in :data:`CLASSES`, and
    ``root/test/anomalies.csv`` (columns ``file`` = path relative to ``root/test`` with
    forward slashes, ``kind``). ``round(anomaly_share * 4 * n_test)`` test files, at
    random positions over all classes, are anomalies (kinds drawn uniformly from
    :data:`ANOMALY_KINDS`); they keep the naming of their folder.

    Parameters
    ----------
    root : path
    n_train, n_test : int
        Patches per class and split (n_test may be 0: no test folder).
    size : (int, int)
    difficulty : float in [0, 1]
    seed : int
        Same seed and parameters give identical arrays.
    anomaly_share : float in [0, 1]
    force : bool
        Without it, a non-empty ``root/train`` raises FileExistsError; with it,
        ``root/train`` and ``root/test`` are deleted first.

    Returns
    -------
    manifest : DataFrame with columns MANIFEST_COLUMNS, one row per file
        file: path relative to root (forward slashes); split; category (folder);
        generated_class (the class drawn, ABSENT_CLASS for a sill); anomaly (kind or "").
    """
    size = _check(size, difficulty)
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    if not 0.0 <= anomaly_share <= 1.0:
        raise ValueError(f"anomaly_share must be in [0, 1], got {anomaly_share}")
    root = Path(root)
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and any(train_dir.iterdir()):
        if not force:
            raise FileExistsError(
                f"{train_dir} is not empty; refusing to overwrite it. Pass force=True (--force) to replace "
                f"{train_dir} and {test_dir}, or choose another --out."
            )
        shutil.rmtree(train_dir)
        if test_dir.exists():
            shutil.rmtree(test_dir)

    n_test_total = n_test * len(CLASSES)
    plan_rng = np.random.default_rng([seed, 99])
    n_anom = int(round(anomaly_share * n_test_total))
    positions = plan_rng.choice(n_test_total, n_anom, replace=False) if n_anom else np.array([], int)
    kinds = {int(p): str(plan_rng.choice(ANOMALY_KINDS)) for p in positions}

    rows = []
    anomalies = []
    for s, (split, n) in enumerate(zip(_SPLITS, (n_train, n_test))):
        for c, cls in enumerate(CLASSES):
            if n == 0:
                continue
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                rng = _patch_rng(seed, s, c, i)
                patch = generate_patch(cls, rng, size, difficulty)
                kind = kinds.get(c * n + i, "") if split == "test" else ""
                generated = cls
                if kind:
                    patch = inject_anomaly(patch, kind, rng)
                    generated = ABSENT_CLASS if kind == "absent_class" else cls
                name = f"{cls}_{i + 1:04d}.mat"
                scipy.io.savemat(folder / name, {"img": patch})
                rows.append((f"{split}/{cls}/{name}", split, cls, generated, kind))
                if kind:
                    anomalies.append((f"{cls}/{name}", kind))
    if n_test > 0:
        with open(test_dir / "anomalies.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "kind"])
            writer.writerows(anomalies)
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


# --------------------------------------------------------------------------- CLI
def parse_size(text: str) -> tuple[int, int]:
    """Parse "HxW" (e.g. "99x99", "150x300") into (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 99x99 (height x width), got {text!r}") from None
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m seis_assets.synthetic --out data [--n-train 150] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m seis_assets.synthetic",
        description="Write synthetic LANDMASS-like seismic patches (chaotic, fault, horizon, salt dome).",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help="data root (train/ and test/ go inside)")
    parser.add_argument("--n-train", type=int, default=DEFAULT_N_TRAIN, help="training patches per class")
    parser.add_argument("--n-test", type=int, default=DEFAULT_N_TEST, help="test patches per class")
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, help="HxW, e.g. 99x99 or 150x300")
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY, help="0 (easy) .. 1 (hard)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--anomaly-share", type=float, default=DEFAULT_ANOMALY_SHARE, help="share of test files")
    parser.add_argument("--force", action="store_true", help="replace an existing non-empty train/ (and test/)")
    args = parser.parse_args(argv)
    try:
        manifest = write_dataset(
            args.out,
            n_train=args.n_train,
            n_test=args.n_test,
            size=args.size,
            difficulty=args.difficulty,
            seed=args.seed,
            anomaly_share=args.anomaly_share,
            force=args.force,
        )
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts = manifest.groupby("split").size().to_dict()
    n_anom = int((manifest["anomaly"] != "").sum())
    print(
        f"wrote {counts.get('train', 0)} train and {counts.get('test', 0)} test patches "
        f"({n_anom} anomalies) of size {args.size[0]}x{args.size[1]} to {args.out} "
        f"(difficulty {args.difficulty}, seed {args.seed})"
    )
    return 0
