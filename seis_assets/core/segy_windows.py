"""Windows of a SEG-Y survey: cut along its lines, one line in memory at a time, and scaled like the patches.

Windows
-------
A window is ``n_traces`` neighbouring traces x ``n_samples`` samples of one line: along an inline (``direction =
"inline"``: fixed inline, increasing crossline) or, in a 3-D cube, along a crossline (``"xline"``: fixed crossline,
increasing inline). Windows start every ``stride`` traces / samples, and one more window is aligned to the end of
the line and of the trace when the stride does not land there, so every sample of a line is covered. Each window
records where it came from: ``direction, inline, xline, sample`` (the line's number and the first trace's other
number, the first sample index), ``time_ms`` of the first sample, and its size.

Physical scale
--------------
Windows are cut from the survey as given: pass a survey at another sample rate through
:func:`seis_assets.core.section_grid.at_patch_scale` first, so a window covers the time a training patch covers.

Scaling
-------
``per_window`` (the patches' scaling): each window min-max scaled to [-1, 1] on its own.
``survey`` (robust, survey-wide): every window divided by one amplitude of the whole survey, the
``SURVEY_PERCENTILE`` (99.5th) percentile of ``|amplitude|`` over an evenly spaced sample of its traces, then
clipped to [-1, 1]: bright spots stay bright and dim zones dim.

Where a line's windows go
-------------------------
:func:`line_cut` is the one rule, for the pipeline (:mod:`seis_assets.core.window_features`) and for
:func:`iter_windows` / :func:`cut_windows` alike: windows are cut along each run of traces whose numbers follow each
other (:func:`run_window_starts`: never across a gap in a line's numbering; a run narrower than the window gets none
and is counted), a window holding a corrupt trace is left out, and so is a dead window (:func:`dead_windows`: one
value throughout, as zero traces padding a survey's outline to a rectangle or a muted zone give; it carries no
seismic, and :func:`scale_window` would refuse it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Iterable

import numpy as np
import pandas as pd

from seis_assets.core.patches import has_signal, normalise_patch
from seis_assets.core.section_grid import ResampledSurvey
from seis_assets.core.segy import DIRECTIONS, SegyError, Survey, SurveyInfo, is_grid, section_direction

__all__ = [
    "DEFAULT_WINDOW_TRACES",
    "DEFAULT_WINDOW_SAMPLES",
    "DEFAULT_STRIDE",
    "SCALINGS",
    "SURVEY_PERCENTILE",
    "WINDOW_COLUMNS",
    "window_starts",
    "line_runs",
    "run_window_starts",
    "picked_lines",
    "line_sources",
    "survey_scale",
    "scale_window",
    "dead_windows",
    "LineCut",
    "line_cut",
    "window_position",
    "window_name",
    "window_directions",
    "iter_windows",
    "cut_windows",
]

DEFAULT_WINDOW_TRACES = 99
DEFAULT_WINDOW_SAMPLES = 99
#: Step between windows, in traces and samples. 11, not 33: thin layers (the chaotic band of F3 inline 362) map
#: right whatever the offset of the window grid, at several times the windows (benchmarks/README.md, facies map of
#: F3 inline 362, third round); set 33 for large cubes.
DEFAULT_STRIDE = 11
SCALINGS = ("per_window", "survey")
SURVEY_PERCENTILE = 99.5
#: Traces read to estimate the survey-wide amplitude (evenly spaced; all of them for smaller surveys).
SURVEY_SCALE_TRACES = 4000
WINDOW_COLUMNS = [
    "survey", "direction", "inline", "xline", "sample", "time_ms", "n_traces", "n_samples", "trace_step",
]


def window_starts(n: int, size: int, stride: int) -> list[int]:
    """First indices of windows of ``size`` every ``stride`` over ``n``, plus one aligned to the end if needed.

    Raises ValueError when ``size > n`` or a non-positive size/stride.
    """
    if size < 1 or stride < 1:
        raise ValueError(f"window size and stride must be >= 1, got {size}, {stride}")
    if size > n:
        raise ValueError(f"window of {size} does not fit in {n}")
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def line_runs(other: np.ndarray, step: int | None = None) -> list[tuple[int, int]]:
    """``(first, stop)`` positions of the runs of a line's traces whose numbers ``other`` follow each other by
    ``step`` (default: the line's median step), in order; one run for a line without gaps."""
    other = np.asarray(other)
    if step is None:
        step = int(np.median(np.diff(other))) if len(other) > 1 else 1
    bounds = [0, *(np.flatnonzero(np.diff(other) != step) + 1).tolist(), len(other)]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def run_window_starts(other: np.ndarray, step: int, size: int, stride: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Window starts along a line (indices into it) that never span a gap in its trace numbering, and the runs too
    short for a window.

    ``other`` holds the numbers of the line's traces in order (an inline's crosslines); a run is a stretch of traces
    ``step`` apart. Windows are cut along each run as :func:`window_starts` cuts a whole line (so a line without
    gaps gets exactly its windows); a run of fewer than ``size`` traces gets none and is returned as ``(first,
    stop)`` positions. An irregular survey outline, or a 2-D line with missing CDPs, has such gaps.
    """
    starts: list[int] = []
    short: list[tuple[int, int]] = []
    for first, stop in line_runs(other, step):
        if stop - first < size:
            short.append((first, stop))
        else:
            starts += [first + s for s in window_starts(stop - first, size, stride)]
    return starts, short


def picked_lines(lines: Sequence[int], step: int) -> list[int]:
    """The lines of ``lines`` that get windows with a line step of ``step``: every ``step``-th from the first, and
    the last, so no line is more than ``step // 2`` lines from a picked one (``step`` 1: every line).

    Raises ValueError for a step below 1.
    """
    if step < 1:
        raise ValueError(f"line step must be >= 1, got {step}")
    lines = list(lines)
    picks = lines[::step]
    if lines and picks[-1] != lines[-1]:
        picks.append(lines[-1])
    return picks


def line_sources(lines: Sequence[int], step: int) -> dict[int, list[int]]:
    """Each line of ``lines`` -> the picked line(s) (:func:`picked_lines`) whose windows vote on it: itself when it
    is picked, else the nearest picked line by position in ``lines`` (both when two are equally near).

    With a line step a window stands for a slab of lines around its own, ``step`` lines thick: its votes go to the
    lines nearer to it than to any other picked line.
    """
    lines = list(lines)
    picks = picked_lines(lines, step)
    position = {n: i for i, n in enumerate(lines)}
    where = np.array([position[p] for p in picks])
    out: dict[int, list[int]] = {}
    for i, n in enumerate(lines):
        d = np.abs(where - i)
        out[n] = [picks[j] for j in np.flatnonzero(d == d.min())]
    return out


def survey_scale(
    survey: Survey | ResampledSurvey, percentile: float = SURVEY_PERCENTILE, max_traces: int = SURVEY_SCALE_TRACES
) -> float:
    """One robust amplitude for the whole survey: the ``percentile`` of ``|amplitude|`` over evenly spaced traces
    (on the grid the windows are cut from: a resampled survey's resampled traces).

    Raises SegyError when the survey is silent (the percentile is zero).
    """
    n = survey.info.n_traces
    picks = np.unique(np.linspace(0, n - 1, min(n, max_traces)).astype(int))
    chunk = []
    for i in picks:
        chunk.append(np.abs(survey.trace(int(i))))
    values = np.concatenate(chunk)
    values = values[np.isfinite(values)]
    scale = float(np.percentile(values, percentile)) if len(values) else 0.0
    if not scale > 0:
        raise SegyError(survey.info.path, f"the {percentile}th percentile of |amplitude| is {scale}: a silent survey")
    return scale


def scale_window(window: np.ndarray, scaling: str, scale: float | None = None, name: str = "<window>") -> np.ndarray:
    """A window (n_samples, n_traces) as a [-1, 1] float32 patch.

    ``per_window``: min-max to [-1, 1] (as the ``.mat`` patches; a constant window is an error, never made up).
    ``survey``: ``window / scale`` clipped to [-1, 1].
    """
    if scaling == "per_window":
        return normalise_patch(window, name=name)
    if scaling == "survey":
        if scale is None or not scale > 0:
            raise ValueError("survey scaling needs the survey's positive scale (survey_scale)")
        return np.clip(np.asarray(window, dtype=np.float32) / np.float32(scale), -1.0, 1.0)
    raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")


def dead_windows(
    data: np.ndarray, trace_starts: Sequence[int], sample_starts: Sequence[int], n_traces: int, n_samples: int
) -> np.ndarray:
    """Which windows of a line are dead: (len(trace_starts), len(sample_starts)) bool, True where the window
    ``data[t0 : t0 + n_traces, s0 : s0 + n_samples]`` has no spread :func:`seis_assets.core.patches.has_signal`
    accepts, the test :func:`scale_window` applies to each window, here on the line's per-trace minima and maxima.

    ``data`` is the line, (n_traces, n_samples). A window with a non-finite sample counts as dead too: leave out
    the windows with corrupt traces first.
    """
    data = np.asarray(data)
    lo = np.stack([data[:, s0 : s0 + n_samples].min(axis=1) for s0 in sample_starts], axis=1)
    hi = np.stack([data[:, s0 : s0 + n_samples].max(axis=1) for s0 in sample_starts], axis=1)
    lo = np.stack([lo[t0 : t0 + n_traces].min(axis=0) for t0 in trace_starts])
    hi = np.stack([hi[t0 : t0 + n_traces].max(axis=0) for t0 in trace_starts])
    return ~has_signal(lo, hi)


@dataclasses.dataclass(frozen=True)
class LineCut:
    """Where one line's windows go (:func:`line_cut`): ``starts`` ``(first trace, first sample)`` (indices into the
    line) of the windows kept, in order; how many windows were ``dead``; the ``short`` runs of traces (``(first,
    stop)`` in the line) too narrow for a window; the line's ``trace_step`` (median step of its trace numbers)."""

    starts: list[tuple[int, int]]
    dead: int
    short: list[tuple[int, int]]
    trace_step: int


def line_cut(
    data: np.ndarray,
    other: np.ndarray,
    n_traces: int,
    n_samples: int,
    stride: int,
    stride_samples: int | None = None,
    corrupt: Sequence[int] = (),
    path: str = "<survey>",
) -> LineCut:
    """The windows of one line that span no gap in its numbering (:func:`run_window_starts`), contain none of the
    ``corrupt`` traces (positions in the line) and are not dead (:func:`dead_windows`).

    ``data`` is the line (n_traces_in_line, n_samples), ``other`` its traces' numbers in order (an inline's
    crosslines). Raises SegyError (naming ``path``) when the traces are shorter than the window.
    """
    n_tr, n_s = data.shape
    try:
        sample_starts = window_starts(n_s, n_samples, stride_samples or stride)
    except ValueError:
        raise SegyError(path, f"traces hold {n_s} samples, fewer than the window's {n_samples}") from None
    other = np.asarray(other)
    step = int(np.median(np.diff(other))) if len(other) > 1 else 1
    trace_starts, short = run_window_starts(other, step, n_traces, stride)
    if not trace_starts:
        return LineCut([], 0, short, step)
    bad = np.zeros(n_tr + 1, dtype=np.int64)
    bad[1:] = np.cumsum(np.isin(np.arange(n_tr), list(corrupt)))
    clean = [t0 for t0 in trace_starts if not bad[t0 + n_traces] - bad[t0]]  # before the dead test: NaN reads as dead
    if not clean:
        return LineCut([], 0, short, step)
    dead = dead_windows(data, clean, sample_starts, n_traces, n_samples)
    starts = [(t0, s0) for i, t0 in enumerate(clean) for j, s0 in enumerate(sample_starts) if not dead[i, j]]
    return LineCut(starts, int(dead.sum()), short, step)


def window_position(survey: str, direction: str, number: int, first_other: int, sample: int, time_ms: float,
                    n_traces: int, n_samples: int, trace_step: int) -> dict:
    """A window's row of :data:`WINDOW_COLUMNS`: on line ``number`` of ``direction``, from the trace numbered
    ``first_other`` across it (an inline window's first crossline) and sample ``sample``."""
    return {
        "survey": survey, "direction": direction,
        "inline": int(number) if direction == "inline" else int(first_other),
        "xline": int(first_other) if direction == "inline" else int(number),
        "sample": int(sample), "time_ms": float(time_ms), "n_traces": int(n_traces), "n_samples": int(n_samples),
        "trace_step": int(trace_step),
    }


def window_name(path: str, position: dict) -> str:
    """How errors and QC rows name a window: its file, line, first trace and first sample."""
    return f"{path} {position['direction']} {position['inline']}/{position['xline']} sample {position['sample']}"


def _check_directions(directions: Iterable[str]) -> tuple[str, ...]:
    directions = tuple(directions)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad or not directions:
        raise ValueError(f"directions must be a non-empty subset of {DIRECTIONS}, got {directions}")
    return directions


def window_directions(info: SurveyInfo, requested: Iterable[str]) -> tuple[str, ...]:
    """The directions a survey's windows are cut along: ``requested``, except on a file that holds one crossline
    (:func:`~seis_assets.core.segy.section_direction`), whose only line runs along that crossline: ``("xline",)``
    whatever was asked (its inlines are single traces, too narrow for any window)."""
    requested = _check_directions(requested)
    return ("xline",) if section_direction(info) == "xline" else requested


def iter_windows(
    survey: Survey,
    *,
    n_traces: int = DEFAULT_WINDOW_TRACES,
    n_samples: int = DEFAULT_WINDOW_SAMPLES,
    stride: int = DEFAULT_STRIDE,
    stride_samples: int | None = None,
    directions: Sequence[str] = ("inline",),
    counts: dict | None = None,
) -> Iterator[tuple[dict, np.ndarray]]:
    """Yield ``(position, window)`` for every window of the survey, one line in memory at a time, each line cut by
    :func:`line_cut` as the pipeline cuts it: no window across a gap in a line's numbering, dead windows left out.

    ``window`` is (n_samples, n_traces) float32, time down and traces across (as the patches), the file's
    amplitudes unscaled (scaling is :func:`scale_window`'s job).
    ``position`` holds the :data:`WINDOW_COLUMNS`. Crossline windows need a 3-D grid (:func:`~seis_assets.core.segy.is_grid`).
    ``counts`` (a dict, optional) gets what was left out added to its ``dead_windows`` and ``short_runs``.

    Raises
    ------
    SegyError
        When the trace is shorter than ``n_samples``, a line holds NaN or Inf samples, or the survey gives no
        window at all (every run of traces narrower than the window, or every window dead).
    """
    info = survey.info
    directions = _check_directions(directions)
    for direction in directions:
        if direction == "xline" and not is_grid(info):
            raise SegyError(info.path, "crossline windows need a 3-D cube; this file is a 2-D line")
    left = {"dead_windows": 0, "short_runs": 0}
    example, n = "", 0
    for direction in directions:
        for number in survey.lines(direction):
            data, idx = survey.read_line(direction, number)
            other = survey.trace_xline[idx] if direction == "inline" else survey.trace_inline[idx]
            cut = line_cut(data, other, n_traces, n_samples, stride, stride_samples, path=info.path)
            left["dead_windows"] += cut.dead
            left["short_runs"] += len(cut.short)
            if cut.short and not example:
                first, stop = cut.short[0]
                example = f" (e.g. {direction} {number}: {stop - first} traces)"
            for t0, s0 in cut.starts:
                n += 1
                yield (window_position(info.name, direction, number, other[t0], s0, info.time_ms(s0), n_traces,
                                       n_samples, cut.trace_step),
                       data[t0 : t0 + n_traces, s0 : s0 + n_samples].T.copy())
    if counts is not None:
        for key, value in left.items():
            counts[key] = counts.get(key, 0) + value
    if not n:
        raise SegyError(info.path, f"no window: {left['short_runs']} runs of traces are narrower than the window's "
                                   f"{n_traces} traces{example}, {left['dead_windows']} windows are dead")


def cut_windows(
    survey: Survey,
    *,
    scaling: str = "per_window",
    n_traces: int = DEFAULT_WINDOW_TRACES,
    n_samples: int = DEFAULT_WINDOW_SAMPLES,
    stride: int = DEFAULT_STRIDE,
    stride_samples: int | None = None,
    directions: Sequence[str] = ("inline",),
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """All windows of a survey (:func:`iter_windows`), scaled, as ``(positions, patches (n, n_samples, n_traces)
    float32, info)``.

    ``info`` records ``scaling`` and, for ``survey``, the ``scale`` and its ``percentile``; and what was left out,
    ``dead_windows`` and ``short_runs`` (:func:`line_cut`).
    Memory: the patches of this survey (a 3-D cube's windows are better streamed with :func:`iter_windows`).
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    scale = survey_scale(survey) if scaling == "survey" else None
    rows, patches, counts = [], [], {}
    for position, window in iter_windows(
        survey, n_traces=n_traces, n_samples=n_samples, stride=stride, stride_samples=stride_samples,
        directions=directions, counts=counts,
    ):
        patches.append(scale_window(window, scaling, scale, name=window_name(survey.info.path, position)))
        rows.append(position)
    info = {"scaling": scaling}
    if scale is not None:
        info.update(scale=scale, percentile=SURVEY_PERCENTILE)
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS), np.stack(patches), {**info, **counts}
