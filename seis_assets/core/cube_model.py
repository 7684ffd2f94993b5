"""The benchmark cube: one 2-D section carried across inlines with smooth, geologically plausible changes.

An F3-sized post-stack cube (651 inlines x 951 crosslines x 462 samples) made from one line, with no download. Every
inline is the source section warped by smooth random fields of the inline number (:class:`CarryModel`,
:func:`carry_fields`):

- **dip**: a tilt that grows with time (a time shift proportional to the distance from the line's centre and to
  time), so deeper layers dip more;
- **thickness**: a vertical stretch about time zero;
- **the body's extent**: a lateral stretch about the body's centre, confined to a gaussian window around it (the
  salt dome of F3 inline 362 widens and narrows);
- **shift**: a small lateral shift of the whole line;
- **relief**: a smooth map over inlines x crosslines of time shifts growing with time (gentle folds along both axes,
  so a time slice is not a set of straight stripes);
- band-limited **noise**, drawn anew for every inline.

Every field is zero at the *anchor* inline (the source's own inline number when the cube holds it, else the middle
inline), so that inline is the source plus noise; the fields drift away from it, by a fraction of a sample between
neighbouring inlines and by tens of samples and traces across the survey. Samples are looked up with cubic splines
(:func:`scipy.ndimage.map_coordinates`), one inline at a time (:func:`carried_inlines`), and written as they come by
:func:`seis_assets.core.segy_write.write_inlines`, so memory is one inline plus one (inlines x crosslines) relief
map whatever the cube's size.

Geometry: the cube keeps the source's sample interval. Its crosslines span the source line: resampled (cubic) when
their number differs from the source's traces (low-passed first when fewer). Its samples are the source's first
``n_samples``; past the source's last sample (more samples asked for than the source has, or a stretch reaching
below it) the section is its mirror image about that sample.

What it is not: a real 3-D survey. One line's geology is carried with smooth warps: there is no real crossline
structure (a crossline is the same geology seen through the warps), faults, channels and the salt body do not
change shape as they would in 3-D, and the noise is not the survey's. It is a benchmark input of the right size and
texture, not a test of how well a map follows 3-D geology.

:func:`generated_section` draws a section with layers, a chaotic band, a faulted lower part and a salt dome
(:func:`seis_assets.core.synthetic_model.render`), so the cube can be made where no real line is at hand (tests).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from seis_assets.core.segy import open_survey
from seis_assets.core.segy_write import write_inlines
from seis_assets.core.synthetic_model import Scene, fold_field, ormsby, render, smooth_field

__all__ = [
    "Section",
    "CarryModel",
    "CarryFields",
    "read_section",
    "generated_section",
    "carry_fields",
    "Carrier",
    "carried_inlines",
    "make_cube",
]


@dataclasses.dataclass(frozen=True)
class Section:
    """A 2-D section to carry: ``data`` (n_traces, n_samples) float32, its sample interval, its inline number (None
    for a generated one), a name for the cube's text header and the crossline number of its first trace."""

    data: np.ndarray
    dt_ms: float
    inline: int | None
    name: str
    first_xline: int = 1


@dataclasses.dataclass(frozen=True)
class CarryModel:
    """How much the carried section changes from inline to inline: the standard deviations of the smooth fields.

    correlation_inlines : correlation length (gaussian sigma, inlines) of every field along the inline axis
    tilt_samples : time shift at the line's ends, at the source's last sample (samples)
    thickness : log of the vertical stretch factor
    body_extent : log of the lateral stretch factor about ``body_centre``
    body_centre : where the body is, as a fraction of the source line (0: first trace, 1: last)
    body_width : gaussian half-width of the stretched window, as a fraction of the line
    shift_traces : lateral shift of the whole line (source traces)
    relief_samples : time shift of the relief map at the source's last sample (samples)
    relief_correlation_xlines : correlation length of the relief map along crosslines (source traces)
    noise : band-limited noise RMS, as a fraction of the source's RMS
    """

    correlation_inlines: float = 50.0
    tilt_samples: float = 8.0
    thickness: float = 0.025
    body_extent: float = 0.2
    body_centre: float = 0.5
    body_width: float = 0.12
    shift_traces: float = 6.0
    relief_samples: float = 4.0
    relief_correlation_xlines: float = 60.0
    noise: float = 0.1


@dataclasses.dataclass(frozen=True)
class CarryFields:
    """The warps of every inline (index 0 = the cube's first inline), all zero (factors 1) at ``anchor``.

    tilt : (n_inlines,) samples at the line's ends at the source's last sample
    stretch : (n_inlines,) vertical stretch factor
    extent : (n_inlines,) lateral stretch factor about the body's centre
    shift : (n_inlines,) source traces
    relief : (n_inlines, n_xlines) samples at the source's last sample
    anchor : the inline index where the cube is the source
    """

    tilt: np.ndarray
    stretch: np.ndarray
    extent: np.ndarray
    shift: np.ndarray
    relief: np.ndarray
    anchor: int


def read_section(path: str | os.PathLike, inline: int | None = None) -> Section:
    """One inline of a SEG-Y file (default: the middle one) as a :class:`Section`; a 2-D line is its one inline.

    Raises :class:`~seis_assets.core.segy.SegyError` for an unusable file or a missing inline.
    """
    with open_survey(path) as survey:
        lines = survey.lines("inline")
        number = lines[len(lines) // 2] if inline is None else int(inline)
        data, idx = survey.read_line("inline", number)
        return Section(data, survey.info.sample_interval_ms, number, survey.info.name, int(survey.trace_xline[idx[0]]))


def generated_section(n_traces: int = 951, n_samples: int = 463, *, seed: int = 0, dt_ms: float = 4.0) -> Section:
    """A generated section laid out like F3 inline 362: gently folded layers with a bright marker, a chaotic band at
    ~65-72 % of the time range, steep normal faults in the lower left, and a salt dome near 60 % of the line whose
    top rises to ~75 % of the time range, with layers dragged up on its flanks and a dim, absorbing interior.

    Returns a :class:`Section` of ``(n_traces, n_samples)`` float32 in [-1, 1] (``inline`` None).
    """
    if n_traces < 32 or n_samples < 64:
        raise ValueError(f"generated_section needs >= 32 traces and >= 64 samples, got {n_traces} x {n_samples}")
    rng = np.random.default_rng(seed)
    h, w = n_samples, n_traces
    z = np.arange(h, dtype=float)[:, None]
    x = np.arange(w, dtype=float)[None, :]
    u = 0.01 * h * (x - w / 2) / w + fold_field(rng, z, x, 0.01 * h)  # regional dip and gentle folds (samples)
    u = np.broadcast_to(u, (h, w)).copy()
    scene = Scene((h, w))
    scene.marker = (6.0, 10.0)
    # a chaotic band: hummocky, laterally short reflectors
    band = 0.5 * (np.tanh((z - 0.65 * h) / 3.0) - np.tanh((z - 0.72 * h) / 3.0))
    u += 0.008 * h * band * smooth_field(rng, (h, w), (4.0, 8.0))
    scene.gain = scene.gain * (1.0 + 0.8 * band)
    # normal faults in the lower left, dying out upwards
    deep = 0.5 * (1.0 + np.tanh((z - 0.8 * h) / 4.0))
    for x0 in np.sort(rng.uniform(0.08, 0.42, 4)) * w:
        dist = (x - x0) - (z - 0.9 * h) / np.tan(np.radians(rng.uniform(70.0, 80.0)))
        u += rng.uniform(0.008, 0.015) * h * deep * 0.5 * (1.0 + np.tanh(dist / 0.5))
    # the salt dome
    xc, half_width = 0.6 * w, 0.09 * w
    top = 0.75 * h + 0.35 * h * (np.abs(x - xc) / half_width) ** 1.6 + 1.5 * smooth_field(rng, (1, w), (0.0, 3.0))
    above = top - z
    u -= 0.06 * h * np.exp(-np.clip(above, 0, None) / (0.12 * h)) * np.exp(-0.5 * ((x - xc) / (2 * half_width)) ** 2)
    inside = 0.5 * (1.0 - np.tanh(above / 0.8))
    scene.body = (inside, 0.3, 4.0, smooth_field(rng, (h, w), (1.0, 1.5)))
    scene.absorption_q = 15.0
    data = render(rng, (h, w), 0.3, z - u, scene).T
    return Section(np.ascontiguousarray(data, dtype=np.float32), float(dt_ms), None, f"generated section (seed {seed})")


def _series(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """A smooth unit-std random series of length ``n`` (gaussian sigma ``sigma``), padded so its ends are free."""
    pad = int(4 * sigma) + 1
    return smooth_field(rng, (n + 2 * pad, 1), (sigma, 0.0))[pad : pad + n, 0]


def carry_fields(n_inlines: int, n_xlines: int, anchor: int, *, seed: int = 0,
                 model: CarryModel = CarryModel()) -> CarryFields:
    """The smooth random fields of :class:`CarryFields` for a cube of ``n_inlines`` x ``n_xlines``, zero at
    inline index ``anchor``; reproducible from ``seed``."""
    if not 0 <= anchor < n_inlines:
        raise ValueError(f"anchor {anchor} is not an inline index of a cube of {n_inlines} inlines")
    rng = np.random.default_rng(seed)
    sigma = model.correlation_inlines

    def drift(scale: float) -> np.ndarray:
        s = _series(rng, n_inlines, sigma)
        return scale * (s - s[anchor])

    tilt = drift(model.tilt_samples)
    stretch = np.exp(drift(model.thickness))
    extent = np.exp(np.clip(drift(model.body_extent), -0.5, 0.5))  # 0.6..1.65: the lateral map stays monotonic
    shift = drift(model.shift_traces)
    sx = model.relief_correlation_xlines
    pad_i, pad_x = int(4 * sigma) + 1, int(4 * sx) + 1
    relief = smooth_field(rng, (n_inlines + 2 * pad_i, n_xlines + 2 * pad_x), (sigma, sx))
    relief = relief[pad_i : pad_i + n_inlines, pad_x : pad_x + n_xlines]
    relief = model.relief_samples * (relief - relief[anchor])
    return CarryFields(tilt, stretch, extent, shift, relief.astype(np.float32), int(anchor))


def _spline_coefficients(section: np.ndarray, n_xlines: int) -> np.ndarray:
    """Cubic-spline coefficients of the section, low-passed along the line first when it is subsampled."""
    data = np.asarray(section, dtype=np.float64)
    step = (data.shape[0] - 1) / max(n_xlines - 1, 1)
    if step > 1.0:
        data = ndimage.gaussian_filter1d(data, 0.5 * step, axis=0, mode="mirror")
    return ndimage.spline_filter(data, order=3, mode="mirror")


def _noise_filter(n_samples: int) -> np.ndarray:
    """The noise's wavelet: F3's flat band (~0.03-0.2 cycles/sample), short enough for a short trace."""
    return ormsby(0.01, 0.03, 0.2, 0.3, half=min(20, (n_samples - 1) // 2))


class Carrier:
    """The source section carried across ``n_inlines`` inlines: :meth:`inline` makes any one of them, iterating
    yields them in order, one ``(n_xlines, n_samples)`` float32 array at a time.

    Parameters
    ----------
    section : :class:`Section` or ndarray (n_traces, n_samples) of the source line
    n_inlines, n_xlines, n_samples : the cube's size (see the module's text for resampling and extension)
    seed : the fields' and the noise's seed (same seed, same cube)
    anchor : inline index where the cube is the source plus noise (default: the middle one)
    model : how much the section changes from inline to inline
    """

    def __init__(self, section: Section | np.ndarray, n_inlines: int, n_xlines: int, n_samples: int, *,
                 seed: int = 0, anchor: int | None = None, model: CarryModel = CarryModel()):
        data = np.asarray(section.data if isinstance(section, Section) else section, dtype=np.float32)
        if data.ndim != 2 or min(data.shape) < 4:
            raise ValueError(f"the source section must be (n_traces >= 4, n_samples >= 4), got shape {data.shape}")
        if min(n_inlines, n_xlines, n_samples) < 1:
            raise ValueError(f"a cube needs at least one inline, crossline and sample, got "
                             f"{n_inlines} x {n_xlines} x {n_samples}")
        self.n_inlines, self.seed, self.model = int(n_inlines), int(seed), model
        self.fields = carry_fields(n_inlines, n_xlines, n_inlines // 2 if anchor is None else int(anchor), seed=seed,
                                   model=model)
        self._coeffs = _spline_coefficients(data, n_xlines)
        n_src, ns_src = data.shape
        self._noise_rms = model.noise * float(np.sqrt(np.mean(data.astype(np.float64) ** 2)))
        self._wavelet = _noise_filter(n_samples)
        self._x0 = np.arange(n_xlines, dtype=float) * ((n_src - 1) / max(n_xlines - 1, 1))  # source trace per xline
        self._centre, self._half = model.body_centre * (n_src - 1), model.body_width * (n_src - 1)
        self._across = (self._x0 - (n_src - 1) / 2) / ((n_src - 1) / 2)  # -1 at the first trace, 1 at the last
        self._z = np.arange(n_samples, dtype=float)
        self._zf = self._z / (ns_src - 1)  # 1 at the source's last sample

    def inline(self, i: int) -> np.ndarray:
        """Inline index ``i`` (0 = the first): the source warped by the fields of ``i``, plus its noise."""
        f = self.fields
        x1 = self._x0 - f.shift[i]
        window = np.exp(-0.5 * ((x1 - self._centre) / self._half) ** 2)
        xs = x1 - (1.0 - 1.0 / f.extent[i]) * (x1 - self._centre) * window
        down = f.tilt[i] * self._across + f.relief[i]  # (n_xlines,) time shift at the last source sample
        zs = self._z[None, :] / f.stretch[i] - down[:, None] * self._zf[None, :]
        coords = np.stack([np.broadcast_to(xs[:, None], zs.shape), zs])
        block = ndimage.map_coordinates(self._coeffs, coords, order=3, mode="mirror", prefilter=False)
        return _with_noise(block, self._noise_rms, self._wavelet, self.seed, i)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.n_inlines):
            yield self.inline(i)


def carried_inlines(section: Section | np.ndarray, n_inlines: int, n_xlines: int, n_samples: int, *, seed: int = 0,
                    anchor: int | None = None, model: CarryModel = CarryModel()) -> Iterator[np.ndarray]:
    """The cube's inlines in order, one ``(n_xlines, n_samples)`` float32 array at a time (:class:`Carrier`'s
    parameters)."""
    return iter(Carrier(section, n_inlines, n_xlines, n_samples, seed=seed, anchor=anchor, model=model))


def _with_noise(block: np.ndarray, level: float, wavelet: np.ndarray, seed: int, i: int) -> np.ndarray:
    """``block`` plus band-limited noise of RMS ``level``: the data's band along traces, a short lateral correlation;
    drawn from ``(seed, i)`` so every inline's noise is its own and reproducible."""
    if level <= 0:
        return block.astype(np.float32)
    rng = np.random.default_rng([seed, 1, i])
    n = ndimage.convolve1d(rng.standard_normal(block.shape), wavelet, axis=1, mode="reflect")
    n = ndimage.gaussian_filter1d(n, 0.8, axis=0)
    return (block + n * (level / (n.std() + 1e-12))).astype(np.float32)


def make_cube(
    path: str | os.PathLike,
    section: Section,
    n_inlines: int = 651,
    n_xlines: int = 951,
    n_samples: int = 462,
    *,
    first_inline: int = 100,
    first_xline: int = 300,
    seed: int = 0,
    model: CarryModel = CarryModel(),
) -> str:
    """Write the carried cube to ``path`` (a local SEG-Y, atomically), one inline in memory at a time.

    Inlines ``first_inline..``, crosslines ``first_xline..``, the source's sample interval; the anchor inline is the
    source's own inline number when the cube holds it, else the middle one. The text header says the cube is
    generated, from what, with which seed. Returns the path (:func:`~seis_assets.core.storage.path_str`).
    """
    inlines = list(range(first_inline, first_inline + n_inlines))
    xlines = list(range(first_xline, first_xline + n_xlines))
    anchor = section.inline - first_inline if section.inline in inlines else n_inlines // 2
    blocks = carried_inlines(section, n_inlines, n_xlines, n_samples, seed=seed, anchor=anchor, model=model)
    return write_inlines(path, inlines, xlines, blocks, dt_us=int(round(section.dt_ms * 1000)),
                         text=_text_header(section, inlines, xlines, n_samples, seed, inlines[anchor], model))


def _text_header(section: Section, inlines: Sequence[int], xlines: Sequence[int], n_samples: int, seed: int,
                 anchor: int, model: CarryModel) -> list[str]:
    """The cube's text header: generated, from what, how; never mistaken for a real survey."""
    n_src, ns_src = section.data.shape
    origin = section.name + ("" if section.inline is None else f" inline {section.inline}")
    return [
        "GENERATED BENCHMARK CUBE - NOT A REAL 3-D SURVEY",
        "made by seis_assets.core.cube_model (benchmarks/make_cube.py)",
        f"source: {origin}",
        f"  {n_src} traces x {ns_src} samples at {section.dt_ms:g} ms",
        "every inline is the source warped by smooth random fields of the",
        "inline number (dip, thickness, body extent, shift, relief) plus",
        f"band-limited noise; seed {seed}; the source itself at inline {anchor}",
        f"fields: corr {model.correlation_inlines:g} inlines, tilt {model.tilt_samples:g} smp, "
        f"thick {model.thickness:g}, body {model.body_extent:g}",
        "no real crossline structure; faults and bodies not moved as in 3-D",
        f"inlines {inlines[0]}-{inlines[-1]} (byte 189), crosslines {xlines[0]}-{xlines[-1]} (byte 193)",
        f"{n_samples} samples at {section.dt_ms:g} ms, IEEE float (format 5)",
        "CDP = bin number; CDP_X/CDP_Y made up, 25 m bins, scalar 1",
    ]
