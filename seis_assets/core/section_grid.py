"""A survey at the patches' physical scale: resampled in time so a window covers what a training patch covers.

A 99 x 99 window is a stretch of time and distance, not of samples: the patches were cut at
``patch_sample_interval_ms`` (4 ms for F3 and LANDMASS) and ``patch_trace_spacing_m`` (25 m). A survey at another
sample rate is resampled along time (anti-aliased polyphase filtering, :func:`scipy.signal.resample_poly`) to the
patches' rate before windows are cut: :func:`at_patch_scale` returns a :class:`ResampledSurvey`, which has the
:class:`~seis_assets.core.segy.Survey` interface (``info``, ``lines``, ``read_line``, ``line_traces``, ``trace``,
``trace_inline`` / ``trace_xline``) on the resampled grid, so windows, voting and figures work on it unchanged and
the figures' time axes stay true. Its :meth:`ResampledSurvey.file_samples` maps values painted on that grid back to
the file's own samples (nearest sample: class indices are never blended), so the labels SEG-Y keeps the input's
traces, sample count and interval. A survey already at the patches' rate is returned as it is (windows byte for
byte the file's samples).

Along the line the traces are kept as they are: the trace spacing read from the headers is recorded (and a
different one is logged), not resampled.
"""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from seis_assets.core.segy import Survey

__all__ = [
    "DEFAULT_PATCH_SAMPLE_INTERVAL_MS",
    "DEFAULT_PATCH_TRACE_SPACING_M",
    "ResampledSurvey",
    "at_patch_scale",
    "resample_factor",
    "scale_record",
]

#: The F3 and LANDMASS patches' sample interval and trace spacing (``SegySettings.patch_*``).
DEFAULT_PATCH_SAMPLE_INTERVAL_MS = 4.0
DEFAULT_PATCH_TRACE_SPACING_M = 25.0
#: Trace spacings within this share of the patches' are taken as the same.
SPACING_TOLERANCE = 0.05

LOG = logging.getLogger(__name__)


def resample_factor(survey_ms: float, patch_ms: float) -> Fraction:
    """``up / down`` that takes samples at ``survey_ms`` to ``patch_ms`` (e.g. 8 ms -> 4 ms: 2/1), from the intervals
    in whole microseconds (SEG-Y stores them so)."""
    survey_us, patch_us = round(survey_ms * 1000), round(patch_ms * 1000)
    if survey_us <= 0 or patch_us <= 0:
        raise ValueError(f"sample intervals must be positive, got {survey_ms} ms (survey) and {patch_ms} ms (patches)")
    return Fraction(survey_us, patch_us)


class ResampledSurvey:
    """An open :class:`~seis_assets.core.segy.Survey` presented at another sample interval (same traces).

    ``info`` is the file's with ``n_samples`` and ``sample_interval_ms`` of the new grid (same ``t0_ms``, the same
    time span: no sample past the file's last time); ``source`` is the file's own survey.
    """

    def __init__(self, source: Survey, sample_interval_ms: float):
        self.source = source
        self.factor = resample_factor(source.info.sample_interval_ms, sample_interval_ms)
        span = (source.info.n_samples - 1) * self.factor
        n_new = int(span) + 1  # floor: the last new sample at or before the file's last sample time
        self.info = dataclasses.replace(source.info, n_samples=n_new, sample_interval_ms=float(sample_interval_ms))
        self.trace_inline = source.trace_inline
        self.trace_xline = source.trace_xline
        self.file = source.file

    def _resample(self, data: np.ndarray) -> np.ndarray:
        """(n_traces, n_file_samples) -> (n_traces, n_samples) along time, anti-aliased (Kaiser-windowed FIR)."""
        up, down = self.factor.numerator, self.factor.denominator
        out = resample_poly(np.asarray(data, dtype=np.float64), up, down, axis=-1)
        return out[..., : self.info.n_samples].astype(np.float32)

    def lines(self, direction: str) -> list[int]:
        return self.source.lines(direction)

    def line_traces(self, direction: str, number: int) -> np.ndarray:
        return self.source.line_traces(direction, number)

    def read_line(self, direction: str, number: int, *, keep_corrupt: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One line on the new grid: ``(data (n_traces_in_line, n_samples) float32, trace indices)``; a corrupt trace
        (``keep_corrupt``) stays wholly not finite, never blended into its neighbours (resampling is along time)."""
        data, idx = self.source.read_line(direction, number, keep_corrupt=keep_corrupt)
        bad = ~np.isfinite(data).all(axis=1)
        out = self._resample(np.where(bad[:, None], 0.0, data))
        out[bad] = np.nan
        return out, idx

    def trace(self, index: int) -> np.ndarray:
        return self._resample(self.source.trace(index)[None, :])[0]

    def file_samples(self, values: np.ndarray) -> np.ndarray:
        """``values`` (n_traces, n_samples) on the new grid at the file's own samples, each taking the nearest new
        sample in time (class indices stay class indices)."""
        n_file = self.source.info.n_samples
        nearest = np.rint(np.arange(n_file) * float(self.factor)).astype(np.int64)
        return np.ascontiguousarray(np.asarray(values)[:, np.clip(nearest, 0, self.info.n_samples - 1)])


def at_patch_scale(
    survey: Survey,
    patch_sample_interval_ms: float = DEFAULT_PATCH_SAMPLE_INTERVAL_MS,
    patch_trace_spacing_m: float = DEFAULT_PATCH_TRACE_SPACING_M,
    logger: logging.Logger | None = None,
) -> Survey | ResampledSurvey:
    """The survey as windows must be cut from it: itself at the patches' sample interval, else a
    :class:`ResampledSurvey` at that interval. A trace spacing from the headers that differs from the patches' by
    more than :data:`SPACING_TOLERANCE` is logged as a warning (windows then span another distance)."""
    log = logger or LOG
    info = survey.info
    for direction, spacing in info.trace_spacing_m.items():
        if spacing and abs(spacing / patch_trace_spacing_m - 1) > SPACING_TOLERANCE:
            log.warning(
                f"{info.path}: traces along {direction}s are {spacing:.1f} m apart, the patches' "
                f"{patch_trace_spacing_m} m: windows span {spacing / patch_trace_spacing_m:.2f}x the patches' width (not resampled along lines)"
            )
    if resample_factor(info.sample_interval_ms, patch_sample_interval_ms) == 1:
        return survey
    log.info(f"{info.path}: resampled from {info.sample_interval_ms} ms to the patches' {patch_sample_interval_ms} ms")
    return ResampledSurvey(survey, patch_sample_interval_ms)


def scale_record(
    survey: Survey | ResampledSurvey, patch_sample_interval_ms: float, patch_trace_spacing_m: float
) -> dict:
    """What the facies map records of the scale: the survey's interval and where it came from, the patches',
    the resampling factor (new samples per file sample), the samples before and after, the trace spacings."""
    source = survey.source if isinstance(survey, ResampledSurvey) else survey
    factor = resample_factor(source.info.sample_interval_ms, patch_sample_interval_ms)
    return {
        "survey_sample_interval_ms": source.info.sample_interval_ms,
        "sample_interval_source": source.info.interval_source,
        "patch_sample_interval_ms": float(patch_sample_interval_ms),
        "resample_factor": f"{factor.numerator}/{factor.denominator}",
        "survey_samples": source.info.n_samples,
        "window_grid_samples": survey.info.n_samples,
        "survey_trace_spacing_m": dict(source.info.trace_spacing_m),
        "patch_trace_spacing_m": float(patch_trace_spacing_m),
    }
