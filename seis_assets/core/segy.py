"""SEG-Y surveys: open and check a file with segyio, read it line by line.

Cutting a survey into windows and scaling them is :mod:`seis_assets.core.segy_windows`; writing SEG-Y (the
class-index labels file, generated surveys) is :mod:`seis_assets.core.segy_write`.

A survey is one SEG-Y file: a structured 3-D cube (inline x crossline grid, one or more inlines) or a 2-D line
(unstructured: traces in file order). The inline and crossline numbers are read from trace-header byte positions
(defaults 189 and 193, SEG-Y rev 1).

Memory
------
Files are opened with segyio's memory map. One line (``n_traces_in_line x n_samples`` float32) is in memory at a
time, plus one integer per trace for the line numbers; nothing holds the whole cube.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import struct
from collections.abc import Iterator, Sequence

import numpy as np
import segyio

from seis_assets.core.storage import path_str, to_upath

__all__ = [
    "DEFAULT_ILINE_BYTE",
    "DEFAULT_XLINE_BYTE",
    "DIRECTIONS",
    "SegyError",
    "SurveyInfo",
    "Survey",
    "open_survey",
    "list_segy_files",
    "survey_name",
]

DEFAULT_ILINE_BYTE = 189
DEFAULT_XLINE_BYTE = 193
SEGY_SUFFIXES = (".sgy", ".segy")
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

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["inlines"] = [int(i) for i in self.inlines]
        d["xlines"] = [int(x) for x in self.xlines]
        return d

    def time_ms(self, sample: int | np.ndarray) -> float | np.ndarray:
        return self.t0_ms + np.asarray(sample) * self.sample_interval_ms


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
        if p.is_dir():
            found = sorted(path_str(c) for c in p.iterdir() if c.name.lower().endswith(SEGY_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"folder {entry} holds no .sgy/.segy file")
            files.extend(found)
        else:
            files.append(path_str(p))
    names = [os.path.basename(f) for f in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"SEG-Y files must have distinct names (they name the survey partitions): {dupes}")
    return files


def survey_name(path: str) -> str:
    """The partition key of a survey file: its file name."""
    return os.path.basename(str(path))


# --------------------------------------------------------------------------- reading
_FORMATS = {1: "ibm32", 2: "int32", 3: "int16", 5: "ieee32", 6: "ieee64", 8: "int8"}


def _local_path(path: str) -> str:
    p = to_upath(path)
    if p.protocol not in ("", "file", "local"):
        raise SegyError(path, "SEG-Y is read through a memory map: copy the file to a local disk first")
    return path_str(p)


def _expected_size(f: segyio.SegyFile, n_ext: int) -> int:
    bytes_per_sample = _BYTES_PER_SAMPLE.get(int(f.format or 0), 4)
    return 3600 + 3200 * n_ext + f.tracecount * (240 + len(f.samples) * bytes_per_sample)


_BYTES_PER_SAMPLE = {1: 4, 2: 4, 3: 2, 5: 4, 6: 8, 8: 1, 10: 4, 11: 2, 16: 1}


def _check_size(path: str, size: int) -> None:
    """File size against the binary header (samples per trace, format, extended headers), before segyio's terse
    "trace count inconsistent with file size"."""
    with open(path, "rb") as fh:
        head = fh.read(3600)
    n_samples, fmt = struct.unpack(">H", head[3220:3222])[0], struct.unpack(">H", head[3224:3226])[0]
    n_ext = struct.unpack(">h", head[3504:3506])[0]
    if fmt not in _BYTES_PER_SAMPLE or n_samples == 0 or n_ext < 0:
        return  # little-endian or unusual headers: segyio decides
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
    file : segyio.SegyFile (memory-mapped)
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
            if not self.info.structured:
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

    def read_line(self, direction: str, number: int) -> tuple[np.ndarray, np.ndarray]:
        """One line as ``(data (n_traces_in_line, n_samples) float32, trace indices)``."""
        idx = self.line_traces(direction, number)
        if len(idx) > 1 and np.all(np.diff(idx) == idx[1] - idx[0]) and idx[1] > idx[0]:
            step = int(idx[1] - idx[0])
            data = self.file.trace.raw[int(idx[0]) : int(idx[-1]) + 1 : step]
        else:
            data = np.stack([self.file.trace.raw[int(i)] for i in idx])
        data = np.asarray(data, dtype=np.float32).reshape(len(idx), self.info.n_samples)
        if not np.isfinite(data).all():
            raise SegyError(self.info.path, f"{direction} {number} holds NaN or Inf samples")
        return data, idx


@contextlib.contextmanager
def open_survey(
    path: str | os.PathLike, iline_byte: int = DEFAULT_ILINE_BYTE, xline_byte: int = DEFAULT_XLINE_BYTE
) -> Iterator[Survey]:
    """Open a SEG-Y file read-only through a memory map and check it.

    A file with a full inline x crossline grid is ``structured`` (a 3-D cube, or one inline of it); otherwise it
    is read as 2-D lines: traces grouped by their inline number (one line for a typical 2-D file, whose inline
    number may be 0), ordered by crossline (CDP) number.

    Raises
    ------
    SegyError
        Naming the file and the problem: unreadable or not SEG-Y, truncated (size shorter than the headers
        promise), trace length not a whole number of traces (inconsistent trace counts), no samples, a byte
        position outside the 240-byte trace header, line numbers that are all zero at those bytes (wrong byte
        positions), or duplicate (inline, crossline) pairs.
    """
    path = _local_path(str(path))
    for name, byte in (("inline", iline_byte), ("crossline", xline_byte)):
        if not 1 <= int(byte) <= 237:
            raise SegyError(path, f"{name} byte position {byte} is outside the 240-byte trace header (1..237)")
    if iline_byte == xline_byte:
        raise SegyError(path, f"inline and crossline byte positions are both {iline_byte}")
    size = os.path.getsize(path)
    if size < 3600 + 240:
        raise SegyError(path, f"truncated: {size} bytes, shorter than the 3600-byte file header plus one trace header")
    _check_size(path, size)
    try:
        f = segyio.open(path, "r", ignore_geometry=True)
    except Exception as exc:  # segyio raises RuntimeError / OSError / ValueError with terse texts
        raise SegyError(path, f"not a readable SEG-Y file ({type(exc).__name__}: {exc})") from None
    try:
        yield _checked_survey(f, path, int(iline_byte), int(xline_byte), size)
    finally:
        f.close()


def _checked_survey(f: segyio.SegyFile, path: str, iline_byte: int, xline_byte: int, size: int) -> Survey:
    """The checks of :func:`open_survey` on an open file, in order, and its :class:`Survey`."""
    n_samples = len(f.samples)
    if n_samples == 0 or f.tracecount == 0:
        raise SegyError(path, f"no data: {f.tracecount} traces of {n_samples} samples")
    _check_layout(f, path, size, n_samples)
    with contextlib.suppress(Exception):
        f.mmap()
    _check_trace_lengths(f, path, n_samples)
    il, xl = _line_numbers(f, path, iline_byte, xline_byte)
    inlines, xlines = np.unique(il), np.unique(xl)
    structured = len(inlines) * len(xlines) == len(il)
    dt = float(segyio.tools.dt(f)) / 1000.0
    if not dt > 0:
        raise SegyError(path, "sample interval is zero in the binary and trace headers")
    samples = np.asarray(f.samples, dtype=float)
    info = SurveyInfo(
        path=path,
        name=survey_name(path),
        structured=bool(structured),
        n_traces=int(f.tracecount),
        n_samples=int(n_samples),
        sample_interval_ms=dt,
        t0_ms=float(samples[0]),
        format=_FORMATS.get(int(f.format or 0), str(f.format)),
        inlines=tuple(int(i) for i in inlines),
        xlines=tuple(int(x) for x in xlines),
        iline_byte=iline_byte,
        xline_byte=xline_byte,
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
