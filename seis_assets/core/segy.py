"""SEG-Y surveys: open and check a file with segyio, read it line by line.

Cutting a survey into windows and scaling them is :mod:`seis_assets.core.segy_windows`; writing SEG-Y (the
class-index labels file, generated surveys) is :mod:`seis_assets.core.segy_write`.

A survey is one SEG-Y file: a structured 3-D cube (full inline x crossline grid, one or more inlines), a 3-D cube
whose outline leaves cells of its grid without a trace (:func:`is_grid`), or a 2-D line (traces ordered by their
crossline/CDP number). The inline and crossline numbers are read from trace-header byte positions
(defaults 189 and 193, SEG-Y rev 1).

Memory
------
Files are read with segyio's plain reads, not its memory map: a memory map makes every page of the file that was
ever touched (all of it, once the headers are checked) count in the process's resident memory, so a mapped cube's
RSS grows with its size. One line (``n_traces_in_line x n_samples`` float32) is in memory at a time, plus one integer
per trace for the line numbers; nothing holds the whole cube.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import struct
from collections.abc import Iterator, Sequence

import numpy as np
import segyio

from seis_assets.core.storage import path_str, to_upath

LOG = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ILINE_BYTE",
    "DEFAULT_XLINE_BYTE",
    "DIRECTIONS",
    "SegyError",
    "SurveyInfo",
    "Survey",
    "open_survey",
    "sample_interval",
    "trace_spacing",
    "list_segy_files",
    "is_grid",
    "section_direction",
    "byte_order",
    "survey_name",
]

DEFAULT_ILINE_BYTE = 189
DEFAULT_XLINE_BYTE = 193
SEGY_SUFFIXES = (".sgy", ".segy")
#: MDIO stores found in a folder (a store named directly may have any name)
MDIO_SUFFIX = ".mdio"
DIRECTIONS = ("inline", "xline")


class SegyError(ValueError):
    """A SEG-Y file that cannot be used, with the file and the reason."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


@dataclasses.dataclass(frozen=True)
class SurveyInfo:
    """Geometry of one survey file (JSON-able with :meth:`as_dict`)."""

    path: str
    name: str
    structured: bool
    n_traces: int
    n_samples: int
    sample_interval_ms: float
    t0_ms: float
    format: str
    inlines: tuple[int, ...] = dataclasses.field(repr=False)
    xlines: tuple[int, ...] = dataclasses.field(repr=False)
    iline_byte: int
    xline_byte: int
    #: where ``sample_interval_ms`` came from: "binary header", "trace headers" or "setting"
    interval_source: str = "binary header"
    #: metres between neighbouring traces of an inline / of a crossline, from the trace headers' coordinates
    #: (None where the headers hold none)
    trace_spacing_m: dict = dataclasses.field(default_factory=dict)
    #: byte order of the file (:func:`byte_order`): SEG-Y rev 2 allows little-endian files
    endian: str = "big"

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["inlines"] = [int(i) for i in self.inlines]
        d["xlines"] = [int(x) for x in self.xlines]
        return d

    def time_ms(self, sample: int | np.ndarray) -> float | np.ndarray:
        return self.t0_ms + np.asarray(sample) * self.sample_interval_ms


def is_grid(info: SurveyInfo) -> bool:
    """Whether the survey's traces lie on an inline x crossline grid: a full one (``structured``), or one of more
    than one inline and crossline whose outline leaves cells empty (an irregular 3-D survey exported without its
    missing traces). Crossline windows and pages are cut, and a grid of several inlines gets the volume views
    (:func:`seis_assets.core.volume_views.is_volume`). The headers cannot tell a file of several 2-D lines with line
    numbers of their own from such a cube: it reads as one, and its inline maps are the same either way."""
    return bool(info.structured) or (len(info.inlines) > 1 and len(info.xlines) > 1)


def section_direction(info: SurveyInfo) -> str:
    """The lines a survey is mapped along: ``"xline"`` for a file that holds one crossline across several inlines
    (a crossline exported on its own, each of whose inlines is a single trace), else ``"inline"`` (a 2-D line, an
    inline, a cube)."""
    return "xline" if len(info.xlines) == 1 and len(info.inlines) > 1 else "inline"


def list_segy_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """SEG-Y files named by ``source``: a file, a folder (its ``*.sgy`` / ``*.segy``, sorted), or a list of either.

    A string may hold several entries separated by ``os.pathsep`` (``:``), as in ``SEIS_SEGY=a.sgy:b.sgy``.

    Raises
    ------
    FileNotFoundError
        An entry that does not exist, or a folder without SEG-Y files.
    """
    if isinstance(source, (str, os.PathLike)):
        entries = [e for e in str(source).split(os.pathsep) if e.strip()]
    else:
        entries = [str(e) for e in source]
    files: list[str] = []
    for entry in entries:
        p = to_upath(entry)
        if not p.exists():
            raise FileNotFoundError(f"SEG-Y source {entry} does not exist")
        if p.is_dir() and _is_zarr_store(p):  # an MDIO store (seis_assets.core.mdio_survey) is one survey
            files.append(path_str(p).rstrip("/"))
        elif p.is_dir():
            found = sorted(path_str(c).rstrip("/") for c in p.iterdir()
                           if c.name.lower().endswith(SEGY_SUFFIXES)
                           or (c.name.lower().endswith(MDIO_SUFFIX) and _is_zarr_store(c)))
            if not found:
                raise FileNotFoundError(f"folder {entry} holds no .sgy/.segy file or .mdio store")
            files.extend(found)
        else:
            files.append(path_str(p))
    names = [os.path.basename(f) for f in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"SEG-Y files must have distinct names (they name the survey partitions): {dupes}")
    return files


def _is_zarr_store(p) -> bool:
    """A folder holding a Zarr group (``zarr.json`` v3, ``.zgroup`` v2): how an MDIO store is recognised (the reader,
    :mod:`seis_assets.core.mdio_survey`, imports this module, so the test lives here)."""
    return (p / "zarr.json").exists() or (p / ".zgroup").exists()


def survey_name(path: str) -> str:
    """The partition key of a survey file: its file name."""
    return os.path.basename(str(path).rstrip("/"))


# --------------------------------------------------------------------------- reading
_FORMATS = {1: "ibm32", 2: "int32", 3: "int16", 5: "ieee32", 6: "ieee64", 8: "int8"}


def _local_path(path: str) -> str:
    p = to_upath(path)
    if p.protocol not in ("", "file", "local"):
        raise SegyError(path, "SEG-Y is read from a local file (segyio): copy the file to a local disk first")
    return path_str(p)


def _expected_size(f: segyio.SegyFile, n_ext: int) -> int:
    bytes_per_sample = _BYTES_PER_SAMPLE.get(int(f.format or 0), 4)
    return 3600 + 3200 * n_ext + f.tracecount * (240 + len(f.samples) * bytes_per_sample)


_BYTES_PER_SAMPLE = {1: 4, 2: 4, 3: 2, 5: 4, 6: 8, 8: 1, 10: 4, 11: 2, 16: 1}


def byte_order(path: str | os.PathLike) -> str:
    """``"big"`` or ``"little"``: the byte order of a SEG-Y file's headers and samples.

    SEG-Y rev 2's byte-order word (bytes 3297-3300, 0x01020304 as the writer's order stores it) when set; else the
    order in which the binary header's sample format code (bytes 3225-3226) is a known one; big-endian (rev 0 and 1,
    and segyio's default) when both or neither are.
    """
    with open(path, "rb") as fh:
        head = fh.read(3600)
    word = head[3296:3300]
    if word == b"\x01\x02\x03\x04":
        return "big"
    if word == b"\x04\x03\x02\x01":
        return "little"
    if len(head) < 3226:
        return "big"
    big, little = struct.unpack(">H", head[3224:3226])[0], struct.unpack("<H", head[3224:3226])[0]
    return "little" if big not in _BYTES_PER_SAMPLE and little in _BYTES_PER_SAMPLE else "big"


def _check_size(path: str, size: int, endian: str = "big") -> None:
    """File size against the binary header (samples per trace, format, extended headers), before segyio's terse
    "trace count inconsistent with file size"."""
    with open(path, "rb") as fh:
        head = fh.read(3600)
    order = ">" if endian == "big" else "<"
    n_samples, fmt = struct.unpack(order + "H", head[3220:3222])[0], struct.unpack(order + "H", head[3224:3226])[0]
    n_ext = struct.unpack(order + "h", head[3504:3506])[0]
    if fmt not in _BYTES_PER_SAMPLE or n_samples == 0 or n_ext < 0:
        return  # unusual headers: segyio decides
    trace_bytes = 240 + n_samples * _BYTES_PER_SAMPLE[fmt]
    body = size - 3600 - 3200 * n_ext
    whole, rest = divmod(body, trace_bytes)
    if rest or whole == 0:
        raise SegyError(
            path,
            f"truncated or inconsistent trace count: {size} bytes hold {whole} whole traces of {trace_bytes} bytes "
            f"({n_samples} samples, format {fmt}) and {rest} bytes more",
        )


class Survey:
    """An open, checked SEG-Y survey. Use :func:`open_survey` (a context manager).

    Attributes
    ----------
    info : SurveyInfo
    file : segyio.SegyFile (open for reading)
    trace_inline, trace_xline : ndarray of int (n_traces,), the header numbers of each trace
    """

    def __init__(self, f: segyio.SegyFile, info: SurveyInfo, trace_inline: np.ndarray, trace_xline: np.ndarray):
        self.file = f
        self.info = info
        self.trace_inline = trace_inline
        self.trace_xline = trace_xline

    def line_traces(self, direction: str, number: int) -> np.ndarray:
        """Trace indices of one line in order: an inline by increasing crossline, a crossline by increasing inline."""
        if direction == "inline":
            idx = np.flatnonzero(self.trace_inline == number)
            order = np.argsort(self.trace_xline[idx], kind="stable")
        elif direction == "xline":
            if not is_grid(self.info):
                raise SegyError(self.info.path, "a 2-D line has no crosslines to cut windows along")
            idx = np.flatnonzero(self.trace_xline == number)
            order = np.argsort(self.trace_inline[idx], kind="stable")
        else:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if not len(idx):
            raise SegyError(self.info.path, f"no traces with {direction} {number}")
        return idx[order]

    def lines(self, direction: str) -> list[int]:
        return list(self.info.inlines if direction == "inline" else self.info.xlines)

    def read_line(self, direction: str, number: int, *, keep_corrupt: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One line as ``(data (n_traces_in_line, n_samples) float32, trace indices)``.

        A line with NaN or Inf samples raises SegyError, unless ``keep_corrupt``: then they are returned as read, for
        a caller that reports and skips corrupt traces (:mod:`seis_assets.core.window_features`)."""
        idx = self.line_traces(direction, number)
        if len(idx) > 1 and np.all(np.diff(idx) == idx[1] - idx[0]) and idx[1] > idx[0]:
            step = int(idx[1] - idx[0])
            data = self.file.trace.raw[int(idx[0]) : int(idx[-1]) + 1 : step]
        else:
            data = np.stack([self.file.trace.raw[int(i)] for i in idx])
        data = np.asarray(data, dtype=np.float32).reshape(len(idx), self.info.n_samples)
        if not keep_corrupt and not np.isfinite(data).all():
            raise SegyError(self.info.path, f"{direction} {number} holds NaN or Inf samples")
        return data, idx

    def trace(self, index: int) -> np.ndarray:
        """One trace's samples (float32), on the grid windows are cut from (here the file's own)."""
        return np.asarray(self.file.trace.raw[int(index)], dtype=np.float32)

    def file_samples(self, values: np.ndarray) -> np.ndarray:
        """Values painted on this grid, ``(n_traces, n_samples)``, at the file's own samples: here the same (a
        resampled view, :class:`seis_assets.core.section_grid.ResampledSurvey`, maps them back)."""
        return values


@contextlib.contextmanager
def open_survey(
    path: str | os.PathLike,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
    sample_interval_ms: float = 0.0,
) -> Iterator[Survey]:
    """Open a SEG-Y file read-only and check it.

    A file with a full inline x crossline grid is ``structured`` (a 3-D cube, or one inline of it); otherwise it
    is read as 2-D lines: traces grouped by their inline number (one line for a typical 2-D file, whose inline
    number may be 0), ordered by crossline (CDP) number.

    The sample interval is :func:`sample_interval`'s: the headers', or ``sample_interval_ms`` when it is positive
    (``SegySettings.sample_interval_ms``; 0 = from the headers).

    Raises
    ------
    SegyError
        Naming the file and the problem: unreadable or not SEG-Y, truncated (size shorter than the headers
        promise), trace length not a whole number of traces (inconsistent trace counts), no samples, a byte
        position outside the 240-byte trace header, line numbers that are all zero at those bytes (wrong byte
        positions), duplicate (inline, crossline) pairs, or a sample interval missing from the headers and not set.
    """
    with _opened(path, iline_byte, xline_byte, sample_interval_ms, need_interval=True) as survey:
        yield survey


@contextlib.contextmanager
def _opened(path, iline_byte: int, xline_byte: int, sample_interval_ms: float, need_interval: bool) -> Iterator[Survey]:
    """:func:`open_survey`; ``need_interval=False`` opens a file whose interval is missing (to copy its layout)."""
    path = _local_path(str(path))
    for name, byte in (("inline", iline_byte), ("crossline", xline_byte)):
        if not 1 <= int(byte) <= 237:
            raise SegyError(path, f"{name} byte position {byte} is outside the 240-byte trace header (1..237)")
    if iline_byte == xline_byte:
        raise SegyError(path, f"inline and crossline byte positions are both {iline_byte}")
    size = os.path.getsize(path)
    if size < 3600 + 240:
        raise SegyError(path, f"truncated: {size} bytes, shorter than the 3600-byte file header plus one trace header")
    endian = byte_order(path)
    _check_size(path, size, endian)
    try:
        f = segyio.open(path, "r", ignore_geometry=True, endian=endian)
    except Exception as exc:  # segyio raises RuntimeError / OSError / ValueError with terse texts
        raise SegyError(path, f"not a readable SEG-Y file ({type(exc).__name__}: {exc}; read as {endian}-endian)") from None
    try:
        yield _checked_survey(f, path, int(iline_byte), int(xline_byte), size, float(sample_interval_ms), need_interval,
                              endian)
    finally:
        f.close()


def _checked_survey(f: segyio.SegyFile, path: str, iline_byte: int, xline_byte: int, size: int,
                    setting_ms: float = 0.0, need_interval: bool = True, endian: str = "big") -> Survey:
    """The checks of :func:`open_survey` on an open file, in order, and its :class:`Survey`."""
    n_samples = len(f.samples)
    if n_samples == 0 or f.tracecount == 0:
        raise SegyError(path, f"no data: {f.tracecount} traces of {n_samples} samples")
    _check_layout(f, path, size, n_samples)
    _check_trace_lengths(f, path, n_samples)
    il, xl = _line_numbers(f, path, iline_byte, xline_byte)
    inlines, xlines = np.unique(il), np.unique(xl)
    structured = len(inlines) * len(xlines) == len(il)
    if need_interval or setting_ms > 0:
        dt, source = sample_interval(f, path, setting_ms)
    else:
        dt, source = float("nan"), "missing"
    t0 = float(f.header[0][segyio.TraceField.DelayRecordingTime])
    info = SurveyInfo(
        path=path,
        name=survey_name(path),
        structured=bool(structured),
        n_traces=int(f.tracecount),
        n_samples=int(n_samples),
        sample_interval_ms=dt,
        t0_ms=t0,
        format=_FORMATS.get(int(f.format or 0), str(f.format)),
        inlines=tuple(int(i) for i in inlines),
        xlines=tuple(int(x) for x in xlines),
        iline_byte=iline_byte,
        xline_byte=xline_byte,
        interval_source=source,
        trace_spacing_m=trace_spacing(f, il, xl),
        endian=endian,
    )
    return Survey(f, info, il, xl)


def _check_layout(f: segyio.SegyFile, path: str, size: int, n_samples: int) -> None:
    """The file size against what segyio read of the headers: whole traces, none missing."""
    n_ext = int(f.ext_headers or 0)
    expected = _expected_size(f, n_ext)
    if size != expected:
        trace_bytes = (expected - 3600 - 3200 * n_ext) // f.tracecount
        whole, rest = divmod(size - 3600 - 3200 * n_ext, trace_bytes)
        if size < expected or rest:
            raise SegyError(
                path,
                f"truncated or inconsistent trace count: {size} bytes hold {whole} whole traces of {trace_bytes} "
                f"bytes ({n_samples} samples) and {rest} bytes more; the headers imply {expected} bytes",
            )


def _check_trace_lengths(f: segyio.SegyFile, path: str, n_samples: int) -> None:
    """Every trace header must agree with the binary header's sample count (the file layout assumes it)."""
    counts = np.asarray(f.attributes(segyio.TraceField.TRACE_SAMPLE_COUNT)[:], dtype=np.int64)
    bad = np.flatnonzero((counts != 0) & (counts != n_samples))
    if len(bad):
        raise SegyError(
            path,
            f"inconsistent trace lengths: {len(bad)} trace header(s) give a sample count other than {n_samples}, "
            f"e.g. trace {int(bad[0])} says {int(counts[bad[0]])}",
        )


def _line_numbers(f: segyio.SegyFile, path: str, iline_byte: int, xline_byte: int) -> tuple[np.ndarray, np.ndarray]:
    """Each trace's inline and crossline number, checked: not all zero, no (inline, crossline) pair twice."""
    il = np.asarray(f.attributes(iline_byte)[:], dtype=np.int64)
    xl = np.asarray(f.attributes(xline_byte)[:], dtype=np.int64)
    if not il.any() and not xl.any():
        raise SegyError(
            path,
            f"inline (byte {iline_byte}) and crossline (byte {xline_byte}) numbers are zero in every trace header: "
            "wrong byte positions? Set the inline/crossline byte settings",
        )
    if not xl.any():
        raise SegyError(path, f"crossline numbers (byte {xline_byte}) are zero in every trace header: wrong byte position?")
    pairs = il * (2**32) + xl
    n_unique = len(np.unique(pairs))
    if n_unique != len(pairs):
        raise SegyError(
            path,
            f"{len(pairs) - n_unique} traces repeat an (inline, crossline) pair read at bytes {iline_byte}/{xline_byte}: "
            "wrong byte positions, or a prestack file",
        )
    return il, xl


# --------------------------------------------------------------------------- scale from the headers
def sample_interval(f: segyio.SegyFile, path: str, setting_ms: float = 0.0) -> tuple[float, str]:
    """The survey's sample interval in ms and where it came from.

    The binary header's interval (bytes 3217-3218) wins over the trace headers' (bytes 117-118): it is the one
    interval of the file's fixed layout (every trace has the binary header's sample count), while trace headers
    are per trace and are the ones processing tools leave stale. When both are given and differ, a warning is
    logged. A zero binary interval takes the trace headers', which must then agree with each other. A positive
    ``setting_ms`` (``SegySettings.sample_interval_ms``) wins over both (logged when it differs from them).

    Raises
    ------
    SegyError
        Naming the file and the setting, when neither header holds an interval and no setting gives one, or when
        the trace headers alone give different intervals.
    """
    if setting_ms < 0:
        raise SegyError(path, f"segy_settings.sample_interval_ms is {setting_ms}: give a positive interval, or 0 to "
                              "read it from the headers")
    binary = int(f.bin[segyio.BinField.Interval])
    traces = np.asarray(f.attributes(segyio.TraceField.TRACE_SAMPLE_INTERVAL)[:], dtype=np.int64)
    given = np.unique(traces[traces > 0])
    if setting_ms > 0:
        headers = binary if binary > 0 else (int(given[0]) if len(given) == 1 else 0)
        if headers and abs(headers / 1000.0 - setting_ms) > 1e-9:
            LOG.warning("%s: sample interval set to %s ms, the headers say %s ms", path, setting_ms, headers / 1000.0)
        return float(setting_ms), "setting"
    if binary > 0:
        if len(given) and (given != binary).any():
            LOG.warning(
                "%s: binary header sample interval %s us, trace headers %s us: using the binary header's",
                path, binary, [int(g) for g in given],
            )
        return binary / 1000.0, "binary header"
    if len(given) == 1:
        return float(given[0]) / 1000.0, "trace headers"
    if len(given) > 1:
        raise SegyError(path, f"the binary header has no sample interval and the trace headers give several "
                              f"({[int(g) for g in given]} us): set segy_settings.sample_interval_ms")
    raise SegyError(path, "sample interval missing (zero in the binary header, bytes 3217-3218, and in every trace "
                          "header, bytes 117-118): set segy_settings.sample_interval_ms")


#: trace-header coordinate pairs, in order of preference: CDP (181/185), then source (73/77)
_COORDINATES = (
    (segyio.TraceField.CDP_X, segyio.TraceField.CDP_Y),
    (segyio.TraceField.SourceX, segyio.TraceField.SourceY),
)


def trace_spacing(f: segyio.SegyFile, il: np.ndarray, xl: np.ndarray) -> dict:
    """Metres between neighbouring traces along an inline (``"inline"``) and along a crossline (``"xline"``), from
    the trace headers' coordinates and their scalar (byte 71: negative divides, positive multiplies).

    Per line number step: the median distance between traces of one line, divided by the difference of their line
    numbers. ``None`` for a direction the headers give no coordinates for (all zero, as the F3 sections exported
    from OpendTect) or that has a single trace per line.
    """
    scalar = np.asarray(f.attributes(segyio.TraceField.SourceGroupScalar)[:], dtype=np.float64)
    factor = np.where(scalar < 0, -1.0 / np.where(scalar < 0, scalar, -1), np.where(scalar > 0, scalar, 1.0))
    for kx, ky in _COORDINATES:
        x = np.asarray(f.attributes(kx)[:], dtype=np.float64) * factor
        y = np.asarray(f.attributes(ky)[:], dtype=np.float64) * factor
        if x.any() or y.any():
            return {"inline": _along(il, xl, x, y), "xline": _along(xl, il, x, y)}
    return {"inline": None, "xline": None}


def _along(line: np.ndarray, other: np.ndarray, x: np.ndarray, y: np.ndarray) -> float | None:
    """Median metres per step of ``other`` between consecutive traces of the same ``line``."""
    order = np.lexsort((other, line))
    same = line[order][1:] == line[order][:-1]
    steps = np.diff(other[order])[same]
    dist = np.hypot(np.diff(x[order]), np.diff(y[order]))[same]
    ok = steps != 0
    if not ok.any():
        return None
    return float(np.median(dist[ok] / np.abs(steps[ok])))
