"""Views a geoscientist reads a facies volume by: time slices (map views) and the share of each class per time bin.

Both read the written labels one inline at a time: a labels SEG-Y (``facies_labels.sgy``: the survey's headers, each
sample the ``index`` of its class in ``facies_legend.csv``) or an MDIO survey's labels store (``facies_labels.mdio``,
variable ``facies``, read chunk by chunk). Memory is one
inline plus the requested slices (inlines x crosslines each) and the summary's counts, never the cube.

- :func:`write_time_slices`: one PNG per requested time, ``time_slice_<t>ms.png``, the class at the sample nearest to
  ``t`` over the inline x crossline grid (crossline along x, inline numbers along y, increasing upwards), coloured and
  named as the inline pages of ``facies_map.pdf`` (:mod:`seis_assets.core.facies_figures`: by category, or one colour
  per cluster / unit for maps without categories), with a legend. Samples that carry no class (a value that is no
  ``index`` of the legend, e.g. -1 for uncovered samples) and grid nodes without a trace are blank.
- :func:`volume_summary` / :func:`write_volume_summary`: ``facies_volume_summary.csv``, long format ``inline,
  time_from_ms, time_to_ms, class, share``: the share of that inline's samples in ``[time_from_ms, time_to_ms)``
  with that class (the legend's ``category``: a category, ``cluster i`` or ``unit i``). Bins start at multiples of
  ``bin_ms`` (the first and last may hold fewer samples); every class of the legend has a row (share 0 included),
  plus a ``no class`` row per bin when some sample of the cube carries none, so the shares of one (inline, bin) sum
  to 1.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from upath import UPath

from seis_assets.core.facies_figures import (
    DPI, _classes_by_category, _classes_by_cluster, _new_figure, with_no_class,
)
from seis_assets.core.mdio_survey import LABELS_VARIABLE, open_any_survey
from seis_assets.core.segy import DEFAULT_ILINE_BYTE, DEFAULT_XLINE_BYTE, Survey, SurveyInfo, is_grid
from seis_assets.core.storage import atomic_write_bytes

__all__ = [
    "NO_CLASS", "SUMMARY_COLUMNS", "write_time_slices", "volume_summary", "write_volume_summary", "check_times",
    "is_volume", "write_volume_views", "write_corrupt_traces",
]

#: The ``class`` of samples whose value is no ``index`` of the legend.
NO_CLASS = "no class"
#: Columns of ``facies_volume_summary.csv``.
SUMMARY_COLUMNS = ["inline", "time_from_ms", "time_to_ms", "class", "share"]


def _legend_by(legend: pd.DataFrame) -> str:
    """How the map is coloured, as :func:`seis_assets.core.facies.write_facies_outputs` does: ``"cluster"`` (one colour
    per row) when every row is an unnamed ``cluster i`` or a ``unit i``, else ``"category"``."""
    names = list(legend["category"])
    return "cluster" if all(n in (f"cluster {i}", f"unit {i}") for i, n in enumerate(names)) else "category"


def _check_legend(legend: pd.DataFrame) -> np.ndarray:
    """The legend's ``index`` values (int); refuses a legend without ``index`` / ``category`` or with repeats."""
    missing = {"index", "category"} - set(legend.columns)
    if missing:
        raise ValueError(f"the legend needs the columns index and category (facies_legend.csv); "
                         f"{sorted(missing)} missing")
    index = legend["index"].to_numpy()
    if len(set(index.tolist())) != len(index) or not len(index):
        raise ValueError(f"the legend's index values must be distinct and at least one, got {index.tolist()}")
    return index.astype(np.int64)


def _open_labels(labels, iline_byte: int, xline_byte: int):
    """The written labels as a survey: an MDIO labels store (its ``facies`` variable) or a labels SEG-Y."""
    return open_any_survey(labels, iline_byte, xline_byte, mdio_variable=LABELS_VARIABLE)


def _rows(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Each stored value's legend row (0..k-1), -1 where the value is no legend index (no class)."""
    order = np.argsort(index)
    rounded = np.rint(values)
    pos = np.clip(np.searchsorted(index[order], rounded), 0, len(index) - 1)
    hit = (index[order][pos] == rounded) & (rounded == values)
    return np.where(hit, order[pos], -1)


def _inline_rows(survey: Survey, number: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(legend row per sample (n_traces, n_samples), column of each trace in the crossline grid)`` of one inline."""
    data, idx = survey.read_line("inline", number)
    cols = np.searchsorted(np.asarray(survey.info.xlines), survey.trace_xline[idx])
    return _rows(data, index), cols


def _time_range(info: SurveyInfo) -> tuple[float, float]:
    return float(info.t0_ms), float(info.time_ms(info.n_samples - 1))


def _nearest_samples(info: SurveyInfo, times_ms: Sequence[float]) -> list[int]:
    """The sample nearest to each time; a time outside the cube's range raises ValueError naming both."""
    lo, hi = _time_range(info)
    out = []
    for t in times_ms:
        if not lo <= float(t) <= hi:
            raise ValueError(f"time {float(t):g} ms is outside {info.name}'s time range {lo:g}-{hi:g} ms")
        out.append(int(np.floor((float(t) - lo) / info.sample_interval_ms + 0.5)))
    return out


def write_time_slices(
    labels_sgy: str | os.PathLike,
    legend: pd.DataFrame,
    times_ms: Sequence[float],
    out_folder: str | os.PathLike,
    *,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
) -> dict[str, str]:
    """One map-view PNG per time in ``times_ms``: ``out_folder/time_slice_<t>ms.png`` (``t`` as given, ``:g``).

    Parameters
    ----------
    labels_sgy : a local labels SEG-Y (each sample a legend ``index``), a structured cube, or an MDIO labels store
        (``facies_labels.mdio``)
    legend : the ``facies_legend.csv`` table (``index``, ``category``; colours as ``facies_map.png``'s)
    times_ms : the times to slice at; the nearest sample is used and its time is in the title
    out_folder : folder (local path, UPath or fsspec URL); files are written atomically

    Returns
    -------
    dict file name -> path (:func:`~seis_assets.core.storage.path_str` form)

    Raises
    ------
    ValueError
        A time outside the cube's time range (before anything is written), or a legend without ``index`` /
        ``category``.
    SegyError
        An unusable labels file.
    """
    index = _check_legend(legend)
    times = list(dict.fromkeys(float(t) for t in times_ms))
    with _open_labels(labels_sgy, iline_byte, xline_byte) as survey:
        info = survey.info
        samples = _nearest_samples(info, times)
        slices = np.full((len(times), len(info.inlines), len(info.xlines)), -1, dtype=np.int32)
        for row, number in enumerate(info.inlines):
            rows, cols = _inline_rows(survey, number, index)
            slices[:, row, cols] = rows[:, samples].T
    out = UPath(str(out_folder))
    files = {}
    for t, s, classes in zip(times, samples, slices):
        name = f"time_slice_{t:g}ms.png"
        files[name] = atomic_write_bytes(out / name, _slice_png(classes, legend, info, t, float(info.time_ms(s))))
    return files


def _slice_png(rows: np.ndarray, legend: pd.DataFrame, info: SurveyInfo, asked_ms: float, time_ms: float) -> bytes:
    """The PNG of one time slice: ``rows`` (n_inlines, n_xlines) legend rows, -1 blank."""
    by = _legend_by(legend)
    paint = _classes_by_category if by == "category" else _classes_by_cluster
    classes, handles, cmap, n_classes = paint(rows, legend.reset_index(drop=True))
    handles = with_no_class(handles, classes)
    il, xl = np.asarray(info.inlines, float), np.asarray(info.xlines, float)
    spacing = info.trace_spacing_m or {}
    aspect = (spacing.get("xline") or 1.0) / (spacing.get("inline") or 1.0)  # metres per inline / per crossline
    width = min(16.0, max(6.0, 3.0 + len(xl) / 90))
    height = min(14.0, max(4.0, 1.5 + (width - 3.0) * aspect * len(il) / max(len(xl), 1)))
    fig = _new_figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(np.ma.masked_less(classes, 0), cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, origin="lower",
              extent=[xl[0] - 0.5, xl[-1] + 0.5, il[0] - 0.5, il[-1] + 0.5], aspect=aspect, interpolation="nearest")
    ax.set_xlabel("crossline")
    ax.set_ylabel("inline")
    second = f"facies by {by}"
    if not np.isclose(time_ms, asked_ms):
        second = f"nearest sample to {asked_ms:g} ms, {second}"
    ax.set_title(f"{info.name}: time slice at {time_ms:g} ms\n{second}")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=by)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def volume_summary(
    labels_sgy: str | os.PathLike,
    legend: pd.DataFrame,
    *,
    bin_ms: float = 100.0,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
) -> pd.DataFrame:
    """The share of each class per inline and time bin of ``bin_ms`` (the module's text): a DataFrame with
    :data:`SUMMARY_COLUMNS`, ordered by inline, bin, then class in the legend's order (``no class`` last)."""
    if not bin_ms > 0:
        raise ValueError(f"bin_ms must be > 0, got {bin_ms}")
    index = _check_legend(legend)
    names = list(dict.fromkeys(legend["category"].astype(str)))
    code = np.array([names.index(str(c)) for c in legend["category"]] + [len(names)])  # legend row -> class, -1 -> none
    n_codes = len(names) + 1
    with _open_labels(labels_sgy, iline_byte, xline_byte) as survey:
        info = survey.info
        bins = np.floor(info.time_ms(np.arange(info.n_samples)) / bin_ms + 1e-9).astype(np.int64)
        first = int(bins[0])
        bins -= first
        n_bins = int(bins[-1]) + 1
        counts = np.zeros((len(info.inlines), n_bins, n_codes), dtype=np.int64)
        for row, number in enumerate(info.inlines):
            rows, _ = _inline_rows(survey, number, index)
            flat = bins[None, :] * n_codes + code[rows]
            counts[row] = np.bincount(flat.ravel(), minlength=n_bins * n_codes).reshape(n_bins, n_codes)
    if not counts[..., -1].any():
        counts = counts[..., :-1]
    else:
        names = names + [NO_CLASS]
    share = counts / np.maximum(counts.sum(axis=2, keepdims=True), 1)
    n_il, n_b, n_c = share.shape
    starts = (first + np.arange(n_b)) * float(bin_ms)
    grid = np.indices((n_il, n_b, n_c)).reshape(3, -1)
    return pd.DataFrame({
        "inline": np.asarray(info.inlines, dtype=np.int64)[grid[0]],
        "time_from_ms": starts[grid[1]],
        "time_to_ms": starts[grid[1]] + float(bin_ms),
        "class": np.asarray(names, dtype=object)[grid[2]],
        "share": share.ravel(),
    })[SUMMARY_COLUMNS]


def write_volume_summary(
    labels_sgy: str | os.PathLike,
    legend: pd.DataFrame,
    out_folder: str | os.PathLike,
    *,
    bin_ms: float = 100.0,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
) -> str:
    """:func:`volume_summary` written atomically to ``out_folder/facies_volume_summary.csv`` (local path, UPath or
    fsspec URL); returns its :func:`~seis_assets.core.storage.path_str`."""
    table = volume_summary(labels_sgy, legend, bin_ms=bin_ms, iline_byte=iline_byte, xline_byte=xline_byte)
    dest = UPath(str(out_folder)) / "facies_volume_summary.csv"
    return atomic_write_bytes(dest, table.to_csv(index=False).encode())



def check_times(info: SurveyInfo, times_ms: Sequence[float]) -> None:
    """Raise ValueError naming the time and the cube's range when a time of ``times_ms`` lies outside it (so a
    long map run fails before it paints, not after)."""
    _nearest_samples(info, [float(t) for t in times_ms])


def is_volume(info: SurveyInfo) -> bool:
    """A 3-D cube of more than one inline and crossline, its grid full or not (:func:`~seis_assets.core.segy.is_grid`):
    what time slices and the volume summary are drawn for (cells without a trace are blank / not counted). A single
    inline or crossline is a section, not a volume."""
    return is_grid(info) and len(info.inlines) > 1 and len(info.xlines) > 1


def write_volume_views(
    labels_sgy, legend: pd.DataFrame, info: SurveyInfo, out_folder, *, times_ms: Sequence[float] = (),
    bin_ms: float = 100.0,
) -> dict[str, str]:
    """The views of a facies volume read back from its labels (SEG-Y or MDIO): a time slice per time of ``times_ms``
    (:func:`write_time_slices`) and ``facies_volume_summary.csv`` (:func:`write_volume_summary`); nothing for a
    single line (``info`` is the mapped survey's)."""
    if not is_volume(info):
        return {}
    kw = {"iline_byte": info.iline_byte, "xline_byte": info.xline_byte}
    files = write_time_slices(labels_sgy, legend, times_ms, out_folder, **kw) if times_ms else {}
    files["facies_volume_summary.csv"] = write_volume_summary(labels_sgy, legend, out_folder, bin_ms=bin_ms, **kw)
    return files


def write_corrupt_traces(corrupt: Sequence, out_folder) -> dict[str, str]:
    """``corrupt_traces.csv`` (direction, inline, xline, reason: the traces whose windows were left out) when there
    are any; an earlier run's file is removed when there are none, so the folder never reports stale traces."""
    path = UPath(str(out_folder)) / "corrupt_traces.csv"
    if not corrupt:
        if path.exists():
            path.unlink()
        return {}
    table = pd.DataFrame([dataclasses.asdict(c) for c in corrupt], columns=["direction", "inline", "xline", "reason"])
    return {"corrupt_traces.csv": atomic_write_bytes(path, table.to_csv(index=False).encode())}
