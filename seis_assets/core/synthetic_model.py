"""The convolutional earth model behind the synthetic patches: wavelets, layered earth, random fields, absorption.

:mod:`seis_assets.core.synthetic` draws a class's structure (a relative-geologic-time map and a :class:`Scene`);
:func:`render` turns it into a patch the same way a seismic section is made:

1. a layered earth: thin beds (exponential thicknesses, 1-3 samples on average) whose
   log-impedance reverts towards its mean (a blue reflectivity spectrum, as in wells), a
   few strong contrasts, and for some classes a thick marker bed of strongly different
   impedance (the bright, often clipped events of F3), looked up at each pixel's relative time;
2. reflectivity convolved trace by trace with a broadband zero-phase Ormsby wavelet
   (flat from ~0.03 to ~0.23 cycles/sample, as the spectrally balanced F3 data) followed by an
   opposite-polarity echo 13.5-15.5 samples later (:func:`with_echo`, F3's spectral notches and
   negative trace autocorrelation); in a salt dome the interior absorbs (constant-Q,
   ``exp(-pi k path / Q)`` with the path travelled inside the salt), so the body and what lies
   below its top lose high frequencies;
3. amplitudes in units of the survey's typical trace RMS: quiet intervals (the
   ``horizon`` class, F3's "other") stay quiet, and band-limited noise of a survey-wide
   level is added, so quiet patches are relatively noisier;
4. a survey-wide clip (2.5-3.5 x the typical RMS: the data were stored with a fixed
   dynamic range, so bright events clip as in F3), then per-patch min-max scaling to
   [-1, 1] (float32), as the F3/LANDMASS patches.

The F3 properties these follow are measured in ``benchmarks/synthetic_vs_real.md``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def lerp(a: float, b: float, t: float) -> float:
    """``a`` at ``t = 0``, ``b`` at ``t = 1``: how a parameter moves with the difficulty."""
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
    wavenumbers ``k = n / lag`` and a negative trace autocorrelation near ``lag``, as in F3
    (benchmarks/synthetic_vs_real.md). The fractional delay is an exact phase shift in the Fourier domain (zero-padded, no wrap-around).

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


def absorb(seis: np.ndarray, path: np.ndarray, q: float) -> np.ndarray:
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


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Gaussian random field of unit std with correlation lengths sigma (rows, cols)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return f / (f.std() + 1e-12)


def fold_field(rng: np.random.Generator, z: np.ndarray, x: np.ndarray, amplitude: float) -> np.ndarray:
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


def child_rng(rng: np.random.Generator) -> np.random.Generator:
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


class Scene:
    """What a class's structure (``synthetic._structure``) hands to :func:`render` besides the relative-time map."""

    def __init__(self, size: tuple[int, int]):
        self.gain = np.ones(size)  # multiplies the layer reflectivity
        self.strength = 1.0  # reflectivity of the interval relative to the survey's typical one
        self.marker: tuple[float, float] | None = None  # contrast range of a marker bed, if any
        self.body = None  # (mask, interior level, top level, interior field) of a salt body
        self.extra: list[np.ndarray] = []  # further reflectivity, in units of the layer RMS
        self.absorption_q: float | None = None  # effective Q of the body (salt): high frequencies fade inside it


def render(rng: np.random.Generator, size: tuple[int, int], d: float, t: np.ndarray, scene: Scene) -> np.ndarray:
    """Convolutional model: reflectivity * wavelet + noise, survey clip, per-patch scaling (steps 1, 3-5 above).

    ``t`` is the relative-time map (H, W) of the structure, ``d`` the difficulty; returns float32 (H, W) in [-1, 1].
    """
    h, w = size
    t0, t1 = float(t.min()) - 8.0, float(t.max()) + 8.0
    tops, steps = _layered_earth(rng, t0, t1)
    refl = _reflectivity_at(tops, steps, t, t0)
    rms = float(np.sqrt(np.mean(refl**2))) + 1e-12
    refl = refl * (1.0 + 0.25 * smooth_field(rng, (h, w), (3.0, 20.0))) * scene.gain  # lateral variation
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
    # F3's wavelet is followed by an opposite-polarity echo that notches its spectrum (benchmarks/synthetic_vs_real.md)
    echo = child_rng(rng)
    wavelet = with_echo(wavelet, echo.uniform(13.5, 15.5), echo.uniform(0.15, 0.35))
    seis = ndimage.convolve1d(refl, wavelet, axis=0, mode="reflect")
    # amplitudes in units of the survey's typical trace RMS: quiet intervals stay quiet
    reference = float(np.std(ndimage.convolve1d(_reflectivity_at(tops, steps, t, t0), wavelet, axis=0, mode="reflect")))
    seis = seis * (scene.strength / (reference + 1e-12))
    seis = seis + lerp(0.12, 0.55, d) * _band_limited_noise(rng, (h, w), wavelet)  # survey-wide noise level
    if scene.absorption_q is not None and scene.body is not None:
        # what reaches the salt interior (reflections and scattered energy alike) travelled through the salt
        seis = absorb(seis, np.cumsum(scene.body[0], axis=0), scene.absorption_q)
    clip = rng.uniform(2.5, 3.5)  # the survey was stored with a fixed dynamic range: bright events clip
    return _to_unit_range(np.clip(seis, -clip, clip))
