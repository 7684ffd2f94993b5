"""Stratigraphic units of one seismic line: layers followed along the reflectors, cut where their character changes.

A window classifier sees texture: it splits a section into zones that look alike, which is not how an interpreter
splits it into units (packages of layers bounded by horizons, numbered from the top). This module turns a line and
the window clusters voted onto it into ``n`` units, without labels, in three steps:

1. **Relative geologic time** (:func:`relative_geologic_time`). The local dip of the reflectors comes from the
   structure tensor (:func:`dip_field`: Gaussian-derivative gradients, their smoothed outer products, the
   orientation of the dominant eigenvector). From several reference traces, one horizon per sample is followed
   along the dip across the line; each sample's relative time is the seed time of the horizons around it, and the
   median over the reference traces damps the errors of a horizon that jumps a fault. Samples of one reflector get
   one time, however the layer dips or thins.
2. **A character profile along that time** (:func:`character_profile`). Every sample carries a few attributes
   (log envelope, coherence of the dip, log ratio of vertical-gradient energy to amplitude energy: a frequency
   proxy) and, when given, the share of each window cluster among the windows that voted on it. Their means over
   all samples of one relative-time level make a profile (levels x features), each group of features weighing the
   same.
3. **Optimal cuts** (:func:`segment_profile`). The profile is cut into ``n`` contiguous runs of levels that minimise
   the summed within-run squared deviation (dynamic programming, exact); run ``i`` is unit ``i`` from the top.

A line is segmented on its own, or with its neighbours on a 3-D cube (:func:`cut_profiles`: the mean of their
profiles, each read at the line's own levels through :func:`level_correspondence`, is cut, so an inline's
boundaries do not step to other reflectors than its neighbours'); unit ``i`` is the ``i``-th package from the top of
each line, not a unit matched along a whole survey. No Dagster imports here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.signal import hilbert

from seis_assets.core.patches import live_traces

__all__ = ["UNIT_TEXTURE_CLUSTERS", "dip_field", "relative_geologic_time", "time_levels", "character_attributes",
           "character_profile", "segment_profile", "optimal_cuts", "unit_map", "line_profile", "cut_profiles",
           "level_correspondence", "units_at"]

#: Gaussian sigmas (samples) of the gradients and of the tensor smoothing.
SIGMA_GRADIENT, SIGMA_TENSOR = 1.0, 6.0
#: Largest dip followed, in samples per trace (steeper estimates are clipped: fault planes and noise).
MAX_SLOPE = 3.0
#: Reference traces the horizons are followed from (their median is kept).
N_REFERENCES = 5
#: Sigma (samples) of the amplitude balancing before the dip is measured, and of the attributes' smoothing.
SIGMA_BALANCE, SIGMA_ATTRIBUTE = 20.0, 5.0
#: Sigma (levels) of the profile's smoothing along relative time.
SIGMA_PROFILE = 3.0
#: Window clusters whose vote shares feed the profile when units are mapped and no k is set: finer than the units,
#: so a unit's character is a mix of clusters rather than one cluster.
UNIT_TEXTURE_CLUSTERS = 16


def _balanced(section: np.ndarray) -> np.ndarray:
    """The section divided by its smoothed absolute amplitude, so weak and strong reflectors count alike."""
    section = np.asarray(section, dtype=np.float64)
    return section / (ndimage.gaussian_filter(np.abs(section), SIGMA_BALANCE) + 1e-6 * (np.abs(section).max() + 1e-12))


def dip_field(section: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local reflector slope (samples per trace, positive when the reflector deepens with the trace index) and
    coherence (0..1) of a section (n_samples, n_traces), from the structure tensor."""
    gz = ndimage.gaussian_filter(section, SIGMA_GRADIENT, order=(1, 0))
    gx = ndimage.gaussian_filter(section, SIGMA_GRADIENT, order=(0, 1))
    jzz = ndimage.gaussian_filter(gz * gz, SIGMA_TENSOR)
    jxx = ndimage.gaussian_filter(gx * gx, SIGMA_TENSOR)
    jxz = ndimage.gaussian_filter(gx * gz, SIGMA_TENSOR)
    theta = 0.5 * np.arctan2(2.0 * jxz, jzz - jxx)  # the gradient's dominant direction, from the time axis
    nz, nx = np.cos(theta), np.sin(theta)
    slope = -nx / np.where(np.abs(nz) < 1e-3, 1e-3, nz)
    coherence = np.sqrt((jzz - jxx) ** 2 + 4.0 * jxz**2) / (jzz + jxx + 1e-12)
    return np.clip(slope, -MAX_SLOPE, MAX_SLOPE), np.clip(coherence, 0.0, 1.0)


def _follow(slope: np.ndarray, reference: int) -> np.ndarray:
    """The time (samples) of the horizon through each sample of trace ``reference`` on every trace: (n_samples,
    n_traces), kept in order down each trace (horizons never cross)."""
    n_samples, n_traces = slope.shape
    grid = np.arange(n_samples, dtype=np.float64)
    horizons = np.empty((n_samples, n_traces))
    horizons[:, reference] = grid
    for step, stop in ((1, n_traces), (-1, -1)):
        for x in range(reference + step, stop, step):
            h = horizons[:, x - step]
            s = 0.5 * (np.interp(h, grid, slope[:, x - step]) + np.interp(h, grid, slope[:, x]))
            horizons[:, x] = h + step * s
    return np.maximum.accumulate(horizons, axis=0)


def _time_from_horizons(horizons: np.ndarray) -> np.ndarray:
    """Each sample's relative time: the seed time of the horizons around it, linear between them and beyond."""
    n_samples, n_traces = horizons.shape
    seeds = np.arange(n_samples, dtype=np.float64)
    t = seeds
    rgt = np.empty((n_samples, n_traces))
    ramp = np.arange(n_samples) * 1e-9  # strictly increasing where horizons merged
    for x in range(n_traces):
        h = horizons[:, x] + ramp
        r = np.interp(t, h, seeds)
        r[t < h[0]] = t[t < h[0]] - h[0]
        r[t > h[-1]] = seeds[-1] + t[t > h[-1]] - h[-1]
        rgt[:, x] = r
    return rgt


def relative_geologic_time(section: np.ndarray) -> np.ndarray:
    """Relative geologic time of every sample of a section (n_samples, n_traces), in samples of the reference
    traces: constant along a reflector, increasing downwards."""
    section = np.asarray(section, dtype=np.float64)
    if section.ndim != 2 or min(section.shape) < 2:
        raise ValueError(f"a section must be samples x traces with at least 2 of each, got shape {section.shape}")
    slope, _ = dip_field(_balanced(section))
    n_traces = section.shape[1]
    references = np.unique(np.linspace(0, n_traces - 1, N_REFERENCES + 2)[1:-1].round().astype(int))
    return np.median([_time_from_horizons(_follow(slope, r)) for r in references], axis=0)


def character_attributes(section: np.ndarray) -> np.ndarray:
    """Per-sample attributes (n_samples, n_traces, 3): log envelope, dip coherence, log(vertical-gradient energy /
    amplitude energy), each smoothed."""
    balanced = _balanced(section)
    envelope = np.abs(hilbert(balanced, axis=0))
    log_envelope = np.log(ndimage.gaussian_filter(envelope, SIGMA_ATTRIBUTE) + 1e-6)
    _, coherence = dip_field(balanced)
    gz = ndimage.gaussian_filter(balanced, 1.0, order=(1, 0))
    frequency = (np.log(ndimage.gaussian_filter(gz**2, SIGMA_ATTRIBUTE) + 1e-9)
                 - np.log(ndimage.gaussian_filter(balanced**2, SIGMA_ATTRIBUTE) + 1e-9))
    return np.stack([log_envelope, coherence, frequency], axis=-1)


def _levels(rgt: np.ndarray, n_levels: int) -> np.ndarray:
    """Relative time binned into ``n_levels`` levels between its 0.5th and 99.5th percentiles."""
    lo, hi = np.percentile(rgt, 0.5), np.percentile(rgt, 99.5)
    scaled = (rgt - lo) / max(hi - lo, 1e-9) * (n_levels - 1)
    return np.clip(np.round(scaled), 0, n_levels - 1).astype(np.int64)


def time_levels(section: np.ndarray) -> np.ndarray:
    """The relative-time level (0 at the top .. n_samples - 1) of every sample of a section (n_samples, n_traces):
    what the units are cut along; unit ``i`` of :func:`unit_map` is a contiguous run of these levels."""
    section = np.asarray(section, dtype=np.float64)
    return _levels(relative_geologic_time(section), section.shape[0])


def character_profile(levels: np.ndarray, groups: list[np.ndarray], n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean of each feature over the samples of each level: ``(profile (n_levels, features), samples per
    level)``. Each group (samples x traces x features) is standardised and weighs the same; empty levels take the
    mean; the profile is smoothed along the levels."""
    flat = levels.ravel()
    count = np.bincount(flat, minlength=n_levels).astype(np.float64)
    parts = []
    for group in groups:
        means = np.stack([np.bincount(flat, weights=group[..., d].ravel(), minlength=n_levels)
                          for d in range(group.shape[-1])], axis=1) / np.maximum(count, 1.0)[:, None]
        filled = count > 0
        means[~filled] = means[filled].mean(axis=0)
        means = (means - means.mean(axis=0)) / (means.std(axis=0) + 1e-9)
        parts.append(means / np.sqrt(group.shape[-1]))
    profile = ndimage.gaussian_filter1d(np.hstack(parts), SIGMA_PROFILE, axis=0)
    return profile, count


def segment_profile(profile: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """The ``n - 1`` cut levels (ascending) that split the rows of ``profile`` into ``n`` contiguous runs with the
    least summed within-run squared deviation (rows weighted by ``weights``, default 1). Exact (dynamic
    programming over all cuts); run ``i`` holds rows ``cuts[i-1]`` to ``cuts[i] - 1``."""
    profile = np.asarray(profile, dtype=np.float64)
    rows = len(profile)
    if not 1 <= n <= rows:
        raise ValueError(f"cannot cut {rows} levels into {n} units")
    w = np.ones(rows) if weights is None else np.asarray(weights, dtype=np.float64)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cs = np.vstack([np.zeros(profile.shape[1]), np.cumsum(profile * w[:, None], axis=0)])
    cs2 = np.concatenate([[0.0], np.cumsum(w * (profile**2).sum(axis=1))])
    cost = np.full((rows + 1, rows + 1), np.inf)  # cost[i, j]: rows i..j-1 in one run
    for i in range(rows):
        s = cs[i + 1:] - cs[i]
        cost[i, i + 1:] = cs2[i + 1:] - cs2[i] - (s * s).sum(axis=1) / np.maximum(cw[i + 1:] - cw[i], 1e-12)
    return optimal_cuts(cost, n)


def optimal_cuts(cost: np.ndarray, n: int) -> np.ndarray:
    """The ``n - 1`` cuts (ascending) of least summed cost that split ``rows`` rows into ``n`` contiguous runs, given
    ``cost[i, j]`` (shape ``(rows + 1, rows + 1)``), the cost of rows ``i..j-1`` as one run (``inf`` where
    ``j <= i``). Exact dynamic programming."""
    rows = cost.shape[0] - 1
    best = np.full(rows + 1, np.inf)
    best[0] = 0.0
    back = np.zeros((n + 1, rows + 1), dtype=np.int64)
    for m in range(1, n + 1):
        total = best[:, None] + cost
        back[m] = np.argmin(total, axis=0)
        best = total[back[m], np.arange(rows + 1)]
    cuts, end = [], rows
    for m in range(n, 1, -1):
        end = int(back[m, end])
        cuts.append(end)
    return np.array(sorted(cuts), dtype=np.int64)


def unit_map(section: np.ndarray, n_units: int, shares: np.ndarray | None = None) -> np.ndarray:
    """The unit (0 at the top) of every sample of a line.

    A trace with NaN or Inf samples (a corrupt trace the map was made around) or one value throughout (a dead trace,
    zero padding) gets no unit (-1), and nothing is filled in for it: each run of good traces between such traces is
    cut on its own, as a line of its own (a run of a single trace has no dip and gets -1 too).

    Parameters
    ----------
    section : ndarray (n_traces, n_samples), the line's amplitudes (the facies maps' layout)
    n_units : how many units to cut
    shares : ndarray (k, n_traces, n_samples) or None, each window cluster's share of the votes on each sample

    Returns
    -------
    ndarray (n_traces, n_samples) int16
    """
    section = np.asarray(section, dtype=np.float64)
    n_samples = section.shape[1]
    if not 1 <= n_units <= n_samples:
        raise ValueError(f"n_units must be between 1 and the line's {n_samples} samples, got {n_units}")
    good = live_traces(section)
    if good.all():
        return _units(section, n_units, shares)
    out = np.full(section.shape, -1, dtype=np.int16)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], good.astype(np.int8), [0]])))
    for first, stop in zip(edges[::2], edges[1::2]):
        if stop - first >= 2:
            part = None if shares is None else np.asarray(shares)[:, first:stop]
            out[first:stop] = _units(section[first:stop], n_units, part)
    return out


def _units(section: np.ndarray, n_units: int, shares: np.ndarray | None) -> np.ndarray:
    """:func:`unit_map` of a line whose every sample is finite."""
    levels, profile, count = line_profile(section, shares)
    return units_at(levels, cut_profiles([profile], [count], n_units))


def line_profile(section: np.ndarray, shares: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a line's units are cut from: ``(levels, profile, samples per level)``.

    Parameters
    ----------
    section : ndarray (n_traces, n_samples), a line (or a run of its traces) whose every sample is finite
    shares : ndarray (k, n_traces, n_samples) or None, each window cluster's share of the votes on each sample

    Returns
    -------
    levels : ndarray (n_traces, n_samples), each sample's relative-time level (:func:`time_levels`)
    profile, count : :func:`character_profile` over those levels (n_samples levels)
    """
    section = np.asarray(section, dtype=np.float64).T
    levels = time_levels(section)
    groups = [character_attributes(section)]
    if shares is not None:
        groups.append(np.moveaxis(np.asarray(shares, dtype=np.float64), 0, -1).transpose(1, 0, 2))
    profile, count = character_profile(levels, groups, section.shape[0])
    return levels.T, profile, count


def cut_profiles(profiles: list[np.ndarray], counts: list[np.ndarray], n_units: int) -> np.ndarray:
    """The ``n_units - 1`` cut levels of one or more lines cut together: :func:`segment_profile` of their mean
    profile, each level weighted by the square root of its summed samples. For one line, its own cuts; for a line
    and its neighbours on a cube, their profiles read at the line's own levels (:func:`level_correspondence`), cuts
    that do not step to other reflectors from one line to the next where a line's own character is ambiguous."""
    profile = np.mean(np.asarray(profiles, dtype=np.float64), axis=0)
    count = np.sum(np.asarray(counts, dtype=np.float64), axis=0)
    return segment_profile(profile, n_units, weights=np.sqrt(count / count.max()))


def level_correspondence(levels: np.ndarray, other_levels: np.ndarray, n_levels: int) -> np.ndarray:
    """For each of a line's ``n_levels`` levels, the level another line has on the same samples (its median there):
    how the relative times of two neighbouring lines correspond, whose levels are each their own line's.

    ``levels`` and ``other_levels`` are (n_traces, n_samples) over the same traces and times (neighbouring inlines
    matched by crossline number). A level with no samples takes the interpolation of the levels around it.
    """
    key = np.sort(np.asarray(levels, dtype=np.int64).ravel() * n_levels + np.asarray(other_levels).ravel())
    bounds = np.searchsorted(key, np.arange(n_levels + 1) * n_levels)
    counts = np.diff(bounds)
    filled = np.flatnonzero(counts > 0)
    median = key[bounds[filled] + (counts[filled] - 1) // 2] % n_levels  # the lower median of each level's samples
    return np.rint(np.interp(np.arange(n_levels), filled, median)).astype(np.int64)


def units_at(levels: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """The unit of every sample (int16): the run of ``cuts`` its level falls in, 0 above the first cut."""
    return np.ascontiguousarray(np.searchsorted(cuts, levels, side="right"), dtype=np.int16)
