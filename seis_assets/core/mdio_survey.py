"""MDIO surveys: open a post-stack MDIO (Zarr) store lazily as a :class:`~seis_assets.core.segy.Survey`, convert a
SEG-Y cube to MDIO, and write a facies volume into a store as a new variable.

MDIO (PyPI ``multidimio``, imported as ``mdio``; the optional extra ``seis_assets[mdio]``) keeps a 3-D post-stack
survey as a Zarr group: the amplitude variable (``amplitude``) with dims ``(inline, crossline, time)`` (or
``depth``), the line numbers and times as dimension coordinates, a ``trace_mask`` (inline, crossline) of live traces,
the SEG-Y trace headers (``headers``) and the CDP coordinates (``cdp_x``, ``cdp_y``, scaled to metres or feet).
A store is a folder, typically named ``*.mdio``, on a local disk or in a bucket (``s3://...``).

The same interface as a SEG-Y survey
------------------------------------
:class:`MdioSurvey` has :class:`~seis_assets.core.segy.Survey`'s ``info`` (a
:class:`~seis_assets.core.segy.SurveyInfo`), ``trace_inline`` / ``trace_xline``, ``line_traces``, ``lines``,
``read_line``, ``trace`` and ``file_samples``, so windows (:mod:`seis_assets.core.segy_windows`), resampling
(:mod:`seis_assets.core.section_grid`) and painting (:mod:`seis_assets.core.facies`) work on it unchanged. Traces are
the live cells of the grid numbered inline-major (increasing inline, then increasing crossline): the order of a
SEG-Y cube sorted by inline, so such a cube and its MDIO conversion give the same trace indices, lines, windows and
maps. Line numbers come from the dimension coordinates (the header byte positions only matter when converting,
:func:`segy_to_mdio_store`); the sample interval from the time coordinate; the first sample's time from the first
live trace's header (bytes 109-110, as the SEG-Y reader takes it: MDIO's time coordinate starts at 0).

Memory
------
Nothing reads the whole cube. A line is cut from a *slab*: the chunks of one chunk row along the line's direction
(``chunk_inlines x all crosslines x all samples`` for an inline), read once and kept until a line of another slab is
asked for, so walking the inlines in order reads every chunk once. One slab is held at a time; a slab larger than
``cache_mb`` is never held, and each line is then read straight from the store (the chunks it crosses, decoded once
per line). Store chunks of 64-128 along each axis (MDIO's default is 128) keep a slab of a F3-sized cube
(951 crosslines x 462 samples) near 100-250 MB.

Labels out
----------
:func:`write_mdio_labels` writes the class index per sample (``int16``, -1 where the grid has no trace) as a new
variable beside the amplitudes, with their dims, coordinates and chunks, from the same ``(trace indices, values)``
blocks :func:`seis_assets.core.segy_write.write_like` takes. It is written under a temporary name, moved onto its
name, and marked complete (attribute ``seis_assets_complete``) last: :func:`open_mdio_survey` refuses a variable
whose mark says it is incomplete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from seis_assets.core.segy import (
    DEFAULT_ILINE_BYTE,
    DEFAULT_XLINE_BYTE,
    DIRECTIONS,
    SegyError,
    SurveyInfo,
    _along,
    open_survey,
    survey_name,
)
from seis_assets.core.storage import path_str, to_upath

LOG = logging.getLogger(__name__)

__all__ = [
    "AMPLITUDE_VARIABLE",
    "COMPLETE_ATTR",
    "DEFAULT_CACHE_MB",
    "LABELS_VARIABLE",
    "MDIO_SUFFIX",
    "MdioError",
    "MdioSurvey",
    "is_mdio",
    "open_any_survey",
    "open_mdio_survey",
    "segy_to_mdio_store",
    "write_mdio_labels",
]

MDIO_SUFFIX = ".mdio"
#: MDIO's name for the seismic samples of a post-stack template (the dataset's ``defaultVariableName``)
AMPLITUDE_VARIABLE = "amplitude"
LABELS_VARIABLE = "facies"
#: largest slab (one chunk row of a line direction) held in memory, MB
DEFAULT_CACHE_MB = 512
#: attribute of a variable written by :func:`write_mdio_labels`: False while it is written, True once it is whole
COMPLETE_ATTR = "seis_assets_complete"
LABELS_FILL = -1
_LINE_DIMS = ("inline", "crossline")
_VERTICAL_DIMS = ("time", "depth")
_INSTALL = "MDIO surveys need the optional extra: pip install 'seis_assets[mdio]' (PyPI multidimio)"


class MdioError(SegyError):
    """An MDIO store that cannot be used, with the store and the reason (a :class:`SegyError`, so whatever reports
    bad SEG-Y files reports bad stores the same way)."""


def _mdio():
    try:
        import mdio
    except ImportError as exc:  # the extra is optional
        raise ImportError(f"{_INSTALL} ({exc})") from None
    return mdio


def _root_markers(path) -> tuple[bool, bool]:
    """(the path exists, it holds a Zarr group's metadata: ``zarr.json`` (v3) or ``.zgroup`` (v2))."""
    p = to_upath(path)
    if not p.exists():
        return False, False
    return True, (p / "zarr.json").exists() or (p / ".zgroup").exists()


def is_mdio(path: str | os.PathLike) -> bool:
    """True when ``path`` is a Zarr store (a folder with ``zarr.json`` or ``.zgroup``), as MDIO stores are; a local
    folder or a bucket URL. No ``mdio`` import needed."""
    try:
        return _root_markers(path)[1]
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- reading
class MdioSurvey:
    """An open, checked MDIO survey with the :class:`~seis_assets.core.segy.Survey` interface. Use
    :func:`open_mdio_survey` (a context manager).

    Attributes
    ----------
    info : SurveyInfo (``format`` is ``"mdio <dtype>"``, ``interval_source`` ``"time coordinate"`` or ``"setting"``)
    file : the store's ``xarray.Dataset`` (lazy: nothing is read until a line is)
    trace_inline, trace_xline : ndarray of int (n_traces,), the live traces' numbers, inline-major
    slab_reads : how many slabs (or, above ``cache_mb``, single lines) were read from the store
    """

    def __init__(self, dataset, path: str, variable: str, info: SurveyInfo, mask: np.ndarray,
                 inline_values: np.ndarray, xline_values: np.ndarray, chunks: tuple[int, ...], cache_mb: float):
        self.file = dataset
        self.path = path
        self.variable = variable
        self.info = info
        self._data = dataset[variable].variable  # lazily indexed: slicing reads only the chunks it covers
        self._mask = mask
        self._il_values, self._xl_values = inline_values, xline_values
        self._il_pos = {int(v): i for i, v in enumerate(inline_values)}
        self._xl_pos = {int(v): i for i, v in enumerate(xline_values)}
        self._chunks = chunks
        self._cache_bytes = float(cache_mb) * 2**20
        self._slab_key: tuple[str, int] | None = None
        self._slab: np.ndarray | None = None
        self.slab_reads = 0
        self._ii, self._xx = _live_traces(mask, inline_values, xline_values)
        self.trace_inline = inline_values[self._ii].astype(np.int64)
        self.trace_xline = xline_values[self._xx].astype(np.int64)
        self._trace_id = np.full(mask.shape, -1, dtype=np.int64)
        self._trace_id[self._ii, self._xx] = np.arange(len(self._ii))

    # the Survey interface -------------------------------------------------
    def line_traces(self, direction: str, number: int) -> np.ndarray:
        """Trace indices of one line in order: an inline by increasing crossline, a crossline by increasing inline."""
        axis, pos = self._position(direction, number)
        ids = self._trace_id[pos, :] if axis == 0 else self._trace_id[:, pos]
        other = self._xl_values if axis == 0 else self._il_values
        live = np.flatnonzero(ids >= 0)
        if not len(live):
            raise MdioError(self.path, f"no traces with {direction} {number}")
        return ids[live[np.argsort(other[live], kind="stable")]]

    def lines(self, direction: str) -> list[int]:
        return list(self.info.inlines if direction == "inline" else self.info.xlines)

    def read_line(self, direction: str, number: int, *, keep_corrupt: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One line as ``(data (n_traces_in_line, n_samples) float32, trace indices)``, from the chunks it lies in;
        NaN or Inf samples raise MdioError unless ``keep_corrupt`` (as :meth:`seis_assets.core.segy.Survey.read_line`)."""
        idx = self.line_traces(direction, number)
        axis, pos = self._position(direction, number)
        others = self._xx[idx] if axis == 0 else self._ii[idx]
        where = f"{direction} {number}"
        slab = self._slab_for(axis, pos, where)
        if slab is None:  # slab above cache_mb: this line alone
            self.slab_reads += 1
            line = self._load(self._data[pos] if axis == 0 else self._data[:, pos], where)
        else:
            offset = pos - self._slab_key[1] * self._chunks[axis]
            line = slab[offset] if axis == 0 else slab[:, offset]
        data = np.ascontiguousarray(line[others], dtype=np.float32)
        if not keep_corrupt and not np.isfinite(data).all():
            raise MdioError(self.path, f"{direction} {number} holds NaN or Inf samples")
        return data, idx

    def trace(self, index: int) -> np.ndarray:
        """One trace's samples (float32), from its inline's slab (evenly spaced traces in index order read each slab
        once)."""
        i, x = int(self._ii[int(index)]), int(self._xx[int(index)])
        where = f"trace {int(index)} (inline {int(self._il_values[i])}, crossline {int(self._xl_values[x])})"
        slab = self._slab_for(0, i, where)
        if slab is None:
            return self._load(self._data[i, x], where)
        return np.array(slab[i - self._slab_key[1] * self._chunks[0], x], dtype=np.float32)

    def file_samples(self, values: np.ndarray) -> np.ndarray:
        """Values painted on this grid at the store's own samples: the same (see
        :meth:`seis_assets.core.segy.Survey.file_samples`)."""
        return values

    # internals -------------------------------------------------------------
    def _position(self, direction: str, number: int) -> tuple[int, int]:
        if direction == "inline":
            table, axis = self._il_pos, 0
        elif direction == "xline":
            table, axis = self._xl_pos, 1
        else:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if int(number) not in table:
            raise MdioError(self.path, f"no traces with {direction} {number}")
        return axis, table[int(number)]

    def _load(self, block, where: str) -> np.ndarray:
        """``block`` (a lazy slice of the variable) read from the store as float32; a chunk that cannot be read or
        decoded is an :class:`MdioError` naming the store and what was read."""
        try:
            return np.asarray(block.values, dtype=np.float32)
        except Exception as exc:  # zarr / numcodecs / fsspec raise many kinds
            raise MdioError(self.path, f"{where}: cannot read the chunks of {self.variable!r} "
                                       f"({type(exc).__name__}: {exc})") from None

    def _slab_for(self, axis: int, pos: int, where: str) -> np.ndarray | None:
        """The chunk row of ``axis`` that holds line position ``pos`` (read once, kept until another is asked for);
        None when such a slab is larger than ``cache_mb``."""
        n_il, n_xl = self._mask.shape
        step = self._chunks[axis]
        rows = min(step, (n_il if axis == 0 else n_xl))
        nbytes = rows * (n_xl if axis == 0 else n_il) * self.info.n_samples * 4
        if nbytes > self._cache_bytes:
            return None
        key = ("inline" if axis == 0 else "xline", pos // step)
        if key != self._slab_key:
            self._slab = self._slab_key = None  # free the old slab before reading the next
            sl = slice(key[1] * step, (key[1] + 1) * step)
            block = self._data[sl] if axis == 0 else self._data[:, sl]
            self._slab = self._load(block, where)
            self._slab_key = key
            self.slab_reads += 1
        return self._slab


def _live_traces(mask: np.ndarray, il: np.ndarray, xl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid positions ``(inline positions, crossline positions)`` of the live traces in trace order: by inline
    number, then crossline number (a sorted SEG-Y cube's order), whatever the order of the coordinates."""
    ii, xx = np.nonzero(mask)
    order = np.lexsort((xl[xx], il[ii]))
    return ii[order], xx[order]


def _open_dataset(path: str):
    """``mdio.open_mdio`` on a checked location, with clear errors for a missing store or one that is not Zarr."""
    exists, is_store = _root_markers(path)
    if not exists:
        raise MdioError(path, "no such MDIO store (expected a folder, e.g. survey.mdio, holding zarr.json)")
    if not is_store:
        raise MdioError(path, "not an MDIO store: no zarr.json (Zarr v3) or .zgroup (Zarr v2) in it")
    mdio = _mdio()
    try:
        return mdio.open_mdio(path)
    except Exception as exc:  # zarr / xarray raise many kinds
        raise MdioError(path, f"not a readable MDIO store ({type(exc).__name__}: {exc})") from None


def _check_variable(ds, path: str, variable: str) -> tuple[str, tuple[int, ...]]:
    """The variable's vertical dim and chunk shape, after checking it is a 3-D post-stack variable, whole."""
    if variable not in ds.data_vars:
        raise MdioError(path, f"no variable {variable!r} (expected a post-stack MDIO store with dims inline, "
                              f"crossline, time); it holds {sorted(ds.data_vars)}")
    var = ds[variable]
    if var.dims[:2] != _LINE_DIMS or len(var.dims) != 3 or var.dims[2] not in _VERTICAL_DIMS:
        raise MdioError(path, f"variable {variable!r} has dims {var.dims}; a post-stack 3-D survey has "
                              f"(inline, crossline, time) or (inline, crossline, depth)")
    if var.attrs.get(COMPLETE_ATTR) is False:
        raise MdioError(path, f"variable {variable!r} was not written to the end (its {COMPLETE_ATTR} mark is "
                              "false): write it again")
    chunks = var.encoding.get("chunks") or var.shape
    return var.dims[2], tuple(int(c) for c in chunks)


def _sample_interval(path: str, times: np.ndarray, setting_ms: float) -> tuple[float, str]:
    if setting_ms < 0:
        raise MdioError(path, f"segy_settings.sample_interval_ms is {setting_ms}: give a positive interval, or 0 to "
                              "read it from the store")
    steps = np.unique(np.round(np.diff(times.astype(np.float64)), 6))
    if setting_ms > 0:
        if len(steps) == 1 and abs(steps[0] - setting_ms) > 1e-9:
            LOG.warning("%s: sample interval set to %s ms, the store's time coordinate says %s ms", path, setting_ms,
                        steps[0])
        return float(setting_ms), "setting"
    if len(steps) != 1 or not steps[0] > 0:
        raise MdioError(path, f"the time coordinate has no single positive step ({steps[:5].tolist()}): set "
                              "segy_settings.sample_interval_ms")
    return float(steps[0]), "time coordinate"


def _first_delay_ms(ds, i: int, x: int, fallback: float) -> float:
    """The first live trace's delay recording time (trace header bytes 109-110), as the SEG-Y reader's ``t0_ms``."""
    if "headers" not in ds.variables:
        return fallback
    header = ds["headers"].variable[i, x].values
    names = header.dtype.names or ()
    return float(header["delay_recording_time"]) if "delay_recording_time" in names else fallback


def _trace_spacing(ds, il: np.ndarray, xl: np.ndarray, ii: np.ndarray, xx: np.ndarray) -> dict:
    """As :func:`seis_assets.core.segy.trace_spacing`, from the store's scaled ``cdp_x`` / ``cdp_y`` (None for a
    direction without coordinates)."""
    if "cdp_x" in ds.variables and "cdp_y" in ds.variables:
        x = np.asarray(ds["cdp_x"].values, dtype=np.float64)[ii, xx]
        y = np.asarray(ds["cdp_y"].values, dtype=np.float64)[ii, xx]
        x, y = np.nan_to_num(x), np.nan_to_num(y)
        if x.any() or y.any():
            return {"inline": _along(il, xl, x, y), "xline": _along(xl, il, x, y)}
    return {"inline": None, "xline": None}


@contextlib.contextmanager
def open_mdio_survey(
    path: str | os.PathLike,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
    sample_interval_ms: float = 0.0,
    *,
    variable: str = AMPLITUDE_VARIABLE,
    cache_mb: float = DEFAULT_CACHE_MB,
) -> Iterator[MdioSurvey]:
    """Open an MDIO store (local folder or ``s3://...``) lazily as a survey and check it.

    ``iline_byte`` / ``xline_byte`` are recorded in ``info`` only (the store's dims hold the line numbers; the bytes
    matter when converting), so the signature is :func:`~seis_assets.core.segy.open_survey`'s. ``sample_interval_ms``
    > 0 replaces the time coordinate's step. ``variable`` is the one read as samples (``facies`` reads a labels
    volume back); ``cache_mb`` bounds the slab held in memory (module docstring).

    Raises
    ------
    ImportError
        ``mdio`` is not installed (``pip install 'seis_assets[mdio]'``).
    MdioError
        Naming the store and the problem: missing, not Zarr, unreadable, no such variable, not (inline, crossline,
        time|depth), a variable marked incomplete, no live trace, a time coordinate without one positive step.
    """
    path = path_str(path)
    ds = _open_dataset(path)
    try:
        vertical, chunks = _check_variable(ds, path, variable)
        mask = np.asarray(ds["trace_mask"].values, dtype=bool) if "trace_mask" in ds.variables else None
        var = ds[variable]
        if mask is None:
            mask = np.ones(var.shape[:2], dtype=bool)
        if not mask.any():
            raise MdioError(path, "no live trace (trace_mask is false everywhere)")
        il = np.asarray(ds["inline"].values, dtype=np.int64)
        xl = np.asarray(ds["crossline"].values, dtype=np.int64)
        times = np.asarray(ds[vertical].values)
        dt, source = _sample_interval(path, times, float(sample_interval_ms))
        ii, xx = _live_traces(mask, il, xl)
        t0 = _first_delay_ms(ds, int(ii[0]), int(xx[0]), float(times[0]))
        live_il, live_xl = il[ii], xl[xx]
        info = SurveyInfo(
            path=path,
            name=survey_name(path.rstrip("/")),
            structured=bool(mask.all()),
            n_traces=int(len(ii)),
            n_samples=int(var.shape[2]),
            sample_interval_ms=dt,
            t0_ms=t0,
            format=f"mdio {var.dtype}",
            inlines=tuple(int(i) for i in np.unique(live_il)),
            xlines=tuple(int(x) for x in np.unique(live_xl)),
            iline_byte=int(iline_byte),
            xline_byte=int(xline_byte),
            interval_source=source,
            trace_spacing_m=_trace_spacing(ds, live_il, live_xl, ii, xx),
        )
        yield MdioSurvey(ds, path, variable, info, mask, il, xl, chunks, cache_mb)
    finally:
        ds.close()


@contextlib.contextmanager
def open_any_survey(
    path: str | os.PathLike,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
    sample_interval_ms: float = 0.0,
    *,
    mdio_variable: str = AMPLITUDE_VARIABLE,
):
    """:func:`open_mdio_survey` for an MDIO store (:func:`is_mdio`; its variable ``mdio_variable``, e.g.
    :data:`LABELS_VARIABLE` to read a map back), else :func:`~seis_assets.core.segy.open_survey`."""
    if is_mdio(path):
        with open_mdio_survey(path, iline_byte, xline_byte, sample_interval_ms, variable=mdio_variable) as survey:
            yield survey
    else:
        with open_survey(path, iline_byte, xline_byte, sample_interval_ms) as survey:
            yield survey


# --------------------------------------------------------------------------- SEG-Y -> MDIO
def segy_to_mdio_store(
    segy_path: str | os.PathLike,
    mdio_path: str | os.PathLike,
    *,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
    chunks: Sequence[int] | None = None,
    domain: str = "time",
    overwrite: bool = False,
) -> str:
    """Convert a post-stack 3-D SEG-Y cube to an MDIO store with ``mdio.segy_to_mdio`` (template
    ``PostStack3DTime`` / ``PostStack3DDepth``, SEG-Y rev 1 headers with the inline and crossline numbers at
    ``iline_byte`` / ``xline_byte``). Returns the store's path.

    ``chunks``: ``(inlines, crosslines, samples)`` per chunk (MDIO's default 128 each). A coordinate scalar of 0
    (bytes 71-72; MDIO refuses it in a rev 1 file) is read as 1, as :func:`seis_assets.core.segy.trace_spacing`
    reads it. MDIO scans and writes with a process pool of ``MDIO__IMPORT__CPU_COUNT`` workers (default: every
    core), so call this from a script guarded by ``if __name__ == "__main__"`` (or from ``python -m
    seis_assets.core.mdio_survey``). multidimio 1.1.3's own ``mdio segy import`` command does not run (it calls the
    0.x signature).

    Raises
    ------
    SegyError
        ``segy_path`` is not a usable SEG-Y cube (:func:`~seis_assets.core.segy.open_survey`'s checks).
    FileExistsError
        ``mdio_path`` exists and ``overwrite`` is False.
    """
    mdio = _mdio()
    from mdio.builder.template_registry import get_template
    from segy.config import SegyHeaderOverrides
    from segy.schema import HeaderField
    from segy.standards import get_segy_standard

    import segyio

    with open_survey(segy_path, iline_byte, xline_byte) as survey:  # our checks first, with our messages
        if not survey.info.structured:
            LOG.warning("%s: not a full inline x crossline grid; MDIO marks the missing traces dead", segy_path)
        scalar = int(survey.file.header[0][segyio.TraceField.SourceGroupScalar])
        endian = survey.info.endian
    spec = get_segy_standard(1.0)
    if endian == "little":  # SEG-Y rev 2 allows it; the segy library reads big-endian unless told
        from segy.schema import Endianness

        spec.endianness = Endianness.LITTLE
        spec.update_submodel_endianness()
    if (iline_byte, xline_byte) != (DEFAULT_ILINE_BYTE, DEFAULT_XLINE_BYTE):
        spec = spec.customize(trace_header_fields=[
            HeaderField(name="inline", byte=int(iline_byte), format="int32"),
            HeaderField(name="crossline", byte=int(xline_byte), format="int32"),
        ])
    template = get_template("PostStack3DTime" if domain == "time" else "PostStack3DDepth")
    if chunks is not None:
        template.full_chunk_shape = tuple(int(c) for c in chunks)
    overrides = SegyHeaderOverrides(trace_header={"coordinate_scalar": 1}) if scalar == 0 else None
    mdio.segy_to_mdio(spec, template, path_str(segy_path), path_str(mdio_path), overwrite=overwrite,
                      segy_header_overrides=overrides)
    return path_str(mdio_path)


# --------------------------------------------------------------------------- labels -> MDIO
def _store_parts(path: str):
    """(fsspec file system, root path on it, zarr store argument, storage options) of a store location."""
    p = to_upath(path)
    return p.fs, p.path, p.as_posix() if p.protocol in ("", "file", "local") else str(p), dict(p.storage_options)


def _copy_geometry(source: str, dest: str, vertical: str) -> None:
    """A new store at ``dest`` with ``source``'s dimension and CDP coordinates and trace mask (no samples); an
    existing store there is kept (its other variables too) when its dimension coordinates are the source's."""
    mdio = _mdio()
    if is_mdio(dest):
        src, old = _open_dataset(source), _open_dataset(dest)
        try:
            same = all(d in old.variables and np.array_equal(src[d].values, old[d].values)
                       for d in ("inline", "crossline", vertical))
        finally:
            src.close()
            old.close()
        if not same:
            raise MdioError(dest, f"holds a store whose inline, crossline or {vertical} coordinates differ from "
                                  f"{source}'s: write the labels elsewhere or remove it")
        return
    ds = mdio.open_mdio(source)
    try:
        geometry = ds.drop_vars([v for v in ds.data_vars if v != "trace_mask"]).load()  # every coordinate, the mask
        geometry.attrs = dict(ds.attrs)
        for name in geometry.variables:  # keep the on-disk chunks; drop encodings of what is not copied
            enc = ds[name].encoding
            geometry[name].encoding = {k: enc[k] for k in ("chunks",) if k in enc}
        mdio.to_mdio(geometry, dest, mode="w")
    finally:
        ds.close()


class _SlabWriter:
    """Class indices into a Zarr array one chunk row of inlines at a time (whole chunks, each written once when the
    blocks come in inline order; a chunk row left and come back to is read back first)."""

    def __init__(self, array, ii: np.ndarray, xx: np.ndarray, n_samples: int, fill: int):
        self.array, self.ii, self.xx, self.n_samples, self.fill = array, ii, xx, n_samples, fill
        self.step = int(array.chunks[0])
        self.written = np.zeros(len(ii), dtype=bool)
        self.flushed: set[int] = set()
        self.row: int | None = None
        self.buffer: np.ndarray | None = None
        self.info = np.iinfo(array.dtype)

    def add(self, idx: np.ndarray, values: np.ndarray) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        values = np.asarray(values)
        if values.shape != (len(idx), self.n_samples):
            raise ValueError(f"block of shape {values.shape} for {len(idx)} traces of {self.n_samples} samples")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self.written)):
            raise ValueError(f"trace index outside 0..{len(self.written) - 1}")
        if self.written[idx].any():
            raise ValueError(f"trace {int(idx[self.written[idx]][0])} written twice")
        rounded = np.rint(values)
        if not np.isfinite(values).all() or (rounded != values).any():
            raise ValueError("class indices must be whole numbers (no NaN, Inf or fractions)")
        if len(idx) and (rounded.min() < 0 or rounded.max() > self.info.max):
            raise ValueError(f"class indices must lie in 0..{self.info.max}, got {rounded.min()}..{rounded.max()}")
        rows = self.ii[idx] // self.step
        for row in np.unique(rows):
            sel = rows == row
            buf = self._row(int(row))
            buf[self.ii[idx[sel]] - int(row) * self.step, self.xx[idx[sel]]] = rounded[sel].astype(self.array.dtype)
        self.written[idx] = True

    def _row(self, row: int) -> np.ndarray:
        if row != self.row:
            self.flush()
            sl = slice(row * self.step, (row + 1) * self.step)
            if row in self.flushed:
                self.buffer = np.asarray(self.array[sl])
            else:
                n = len(range(*sl.indices(self.array.shape[0])))
                self.buffer = np.full((n,) + tuple(self.array.shape[1:]), self.fill, dtype=self.array.dtype)
            self.row = row
        return self.buffer

    def flush(self) -> None:
        if self.row is not None:
            start = self.row * self.step
            self.array[start : start + len(self.buffer)] = self.buffer
            self.flushed.add(self.row)
            self.row, self.buffer = None, None

    def check_complete(self) -> None:
        if not self.written.all():
            missing = np.flatnonzero(~self.written)
            raise ValueError(f"{len(missing)} of {len(self.written)} traces were not written, "
                             f"e.g. trace {int(missing[0])}")


def write_mdio_labels(
    source_store: str | os.PathLike,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    variable: str = LABELS_VARIABLE,
    dest: str | os.PathLike | None = None,
    amplitude: str = AMPLITUDE_VARIABLE,
    dtype: str = "int16",
) -> str:
    """Write a class-index volume as variable ``variable`` of an MDIO store; return the store's path.

    ``blocks`` yields ``(trace indices, values (len(indices), n_samples))`` that together cover every live trace
    exactly once, the indices :class:`MdioSurvey` gives (inline-major live traces) — the same blocks
    :func:`~seis_assets.core.segy_write.write_like` takes, e.g. :class:`seis_assets.core.facies._LinePainter`'s
    ``label_blocks()``. Values are whole numbers ``0..max(dtype)``; cells without a trace hold -1.

    ``dest`` None writes into ``source_store`` beside ``amplitude``; a path writes a new store there holding the
    source's coordinates, trace mask and the labels (for a source that must stay untouched, or a read-only one), or
    adds the variable to the store already there if it has the source's coordinates.
    The variable has the amplitudes' dims, coordinates and chunk shape. It is written as a temporary variable,
    moved onto ``variable`` (replacing an older one), and only then marked complete (``seis_assets_complete``): a
    write that fails leaves no variable of that name, or one that :func:`open_mdio_survey` refuses.

    Raises
    ------
    MdioError
        The source store is missing or not a post-stack survey (:func:`open_mdio_survey`'s checks).
    ValueError
        A block of the wrong shape, a value that is not a class index, traces left unwritten or written twice.
    """
    import zarr

    source = path_str(source_store)
    ds = _open_dataset(source)
    try:
        vertical, chunks = _check_variable(ds, source, amplitude)
        shape = tuple(int(n) for n in ds[amplitude].shape)
        mask = (np.asarray(ds["trace_mask"].values, dtype=bool) if "trace_mask" in ds.variables
                else np.ones(shape[:2], dtype=bool))
        il, xl = np.asarray(ds["inline"].values), np.asarray(ds["crossline"].values)
        coordinates = ds[amplitude].encoding.get("coordinates") or ds[amplitude].attrs.get("coordinates")
    finally:
        ds.close()
    ii, xx = _live_traces(mask, il, xl)

    target = source if dest is None else path_str(dest)
    if dest is not None:
        _copy_geometry(source, target, vertical)
    fs, root, store, options = _store_parts(target)
    group = zarr.open_group(store, mode="r+", storage_options=options or None)
    tmp_name = f"{variable}.tmp-{uuid.uuid4().hex[:12]}"
    dims = ("inline", "crossline", vertical)
    attributes = {COMPLETE_ATTR: False, "long_name": "facies class index per sample (-1: no trace)"}
    if coordinates:
        attributes["coordinates"] = coordinates
    v2 = group.metadata.zarr_format == 2
    if v2:  # Zarr v2 names dims in an attribute, v3 in the metadata
        attributes["_ARRAY_DIMENSIONS"] = list(dims)
    array = group.create_array(
        tmp_name, shape=shape, chunks=chunks, dtype=dtype, fill_value=LABELS_FILL,
        dimension_names=None if v2 else dims, attributes=attributes,
    )
    tmp_path, final_path = f"{root.rstrip('/')}/{tmp_name}", f"{root.rstrip('/')}/{variable}"
    try:
        writer = _SlabWriter(array, ii, xx, shape[2], LABELS_FILL)
        for idx, values in blocks:
            writer.add(idx, values)
        writer.flush()
        writer.check_complete()
        fs.invalidate_cache(root)  # zarr wrote through its own file system object: no stale listings here
        if fs.exists(final_path):  # an older map: unmark it before it goes, so a half-deleted one never looks whole
            zarr.open_array(store, path=variable, mode="r+", storage_options=options or None).update_attributes(
                {COMPLETE_ATTR: False})
            fs.rm(final_path, recursive=True)
        fs.mv(tmp_path, final_path, recursive=True)  # a rename on a local disk; copy + delete on object stores
    except BaseException:
        with contextlib.suppress(Exception):
            if fs.exists(tmp_path):
                fs.rm(tmp_path, recursive=True)
        raise
    zarr.open_array(store, path=variable, mode="r+", storage_options=options or None).update_attributes(
        {COMPLETE_ATTR: True})
    if v2:  # v2 MDIO stores are read through consolidated metadata: re-consolidate so the variable shows
        zarr.consolidate_metadata(store, storage_options=options or None)
    return target


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m seis_assets.core.mdio_survey in.sgy out.mdio [--chunks 64,64,64] [--iline-byte 189]
    [--xline-byte 193] [--overwrite]``: :func:`segy_to_mdio_store`."""
    import argparse

    parser = argparse.ArgumentParser(description="Convert a post-stack 3-D SEG-Y cube to an MDIO store.")
    parser.add_argument("segy")
    parser.add_argument("mdio")
    parser.add_argument("--chunks", default=None, help="inlines,crosslines,samples per chunk (MDIO's: 128,128,128)")
    parser.add_argument("--iline-byte", type=int, default=DEFAULT_ILINE_BYTE)
    parser.add_argument("--xline-byte", type=int, default=DEFAULT_XLINE_BYTE)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    chunks = tuple(int(c) for c in args.chunks.split(",")) if args.chunks else None
    out = segy_to_mdio_store(args.segy, args.mdio, iline_byte=args.iline_byte, xline_byte=args.xline_byte,
                             chunks=chunks, overwrite=args.overwrite)
    print(out)


if __name__ == "__main__":
    main()
